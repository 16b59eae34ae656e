"""Local weights only: the SHA-256 beside a checkpoint, checked before it is loaded."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from mgrr_pyg.predict.weights import (DigestError, digest_path, read_digest, verify_digest,
                                      write_digest)


def test_digest_is_the_files_sha256_in_sha256sum_format(tmp_path):
    path = tmp_path / "model.pt"
    payload = bytes(range(256)) * 5000  # > 1 MiB: several read chunks
    path.write_bytes(payload)
    target = write_digest(path)
    assert target == tmp_path / "model.pt.sha256"
    assert target.read_text() == f"{hashlib.sha256(payload).hexdigest()}  model.pt\n"
    assert verify_digest(path) == hashlib.sha256(payload).hexdigest()
    # from the bytes in memory (as save_checkpoint has them): the same line
    target.unlink()
    assert write_digest(path, data=payload).read_text() == f"{hashlib.sha256(payload).hexdigest()}  model.pt\n"


def test_a_changed_checkpoint_is_refused_naming_file_and_both_digests(checkpoint, tmp_path):
    copy = tmp_path / "last.pt"
    shutil.copy(checkpoint, copy)
    shutil.copy(digest_path(checkpoint), digest_path(copy))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, e.g. a damaged copy
    copy.write_bytes(bytes(data))
    with pytest.raises(DigestError) as err:
        verify_digest(copy)
    message = str(err.value)
    assert str(copy) in message and read_digest(copy) in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_a_checkpoint_without_digest_warns_or_is_refused_when_required(checkpoint, tmp_path):
    copy = tmp_path / "old.pt"
    shutil.copy(checkpoint, copy)
    with pytest.warns(UserWarning, match="--write-digest"):
        verify_digest(copy)
    with pytest.raises(DigestError, match="no digest file"):
        verify_digest(copy, required=True)


def test_a_malformed_digest_file_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"x")
    digest_path(path).write_text("not a digest\n")
    with pytest.raises(DigestError, match="sha256sum format"):
        verify_digest(path)


def test_no_checkpoint_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        verify_digest(tmp_path / "missing.pt")
    assert "mgrr-train" in str(err.value) and "downloaded" in str(err.value)


def test_detector_loads_only_a_verified_checkpoint(checkpoint, tmp_path):
    from mgrr_pyg.predict import Detector

    copy = tmp_path / "last.pt"
    shutil.copy(checkpoint, copy)
    digest_path(copy).write_text("0" * 64 + "  last.pt\n")
    with pytest.raises(DigestError):
        Detector.from_checkpoint(copy)

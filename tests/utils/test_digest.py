"""Checkpoint digests: written beside a checkpoint when it is saved, in ``sha256sum``
format, checked against the file's SHA-256 computed here with hashlib."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import warnings

import pytest
import torch

from mgrr_pyg.train import checkpoint as checkpoint_module
from mgrr_pyg.train.checkpoint import load_checkpoint, save_checkpoint
from mgrr_pyg.utils.digest import (DigestError, digest_path, read_digest, verify_digest,
                                   write_digest)


def small_checkpoint(path, epoch=1):
    torch.manual_seed(epoch)
    return save_checkpoint(path, model=torch.nn.Linear(3, 2), epoch=epoch)


def test_digest_is_the_files_sha256_in_sha256sum_format(tmp_path):
    path = tmp_path / "model.pt"
    payload = bytes(range(256)) * 5000  # > 1 MiB: several read chunks
    path.write_bytes(payload)
    expected = f"{hashlib.sha256(payload).hexdigest()}  model.pt\n"
    target = write_digest(path)
    assert target == tmp_path / "model.pt.sha256"
    assert target.read_text() == expected
    assert verify_digest(path) == hashlib.sha256(payload).hexdigest()
    # from the bytes in memory, or the digest already computed: the same line
    assert write_digest(path, data=payload).read_text() == expected
    assert write_digest(path, sha256=hashlib.sha256(payload).hexdigest()).read_text() == expected
    with pytest.raises(ValueError, match="sha256: expected 64 lower-case hex digits"):
        write_digest(path, sha256="abc")
    if shutil.which("sha256sum"):  # the coreutils tool reads the same file
        check = subprocess.run(["sha256sum", "-c", target.name], cwd=tmp_path,
                               capture_output=True, text=True)
        assert check.returncode == 0 and "model.pt: OK" in check.stdout


def test_save_checkpoint_writes_the_digest_of_the_bytes_it_wrote(tmp_path):
    path = small_checkpoint(tmp_path / "last.pt")
    assert digest_path(path).read_text() == \
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  last.pt\n"
    # a later save (the next epoch) replaces both
    small_checkpoint(path, epoch=2)
    assert load_checkpoint(path)["epoch"] == 2
    assert read_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a saved checkpoint verifies without a warning
        verify_digest(path)


def test_a_digest_that_cannot_be_written_is_removed_not_left_stale(tmp_path, monkeypatch):
    path = small_checkpoint(tmp_path / "last.pt")

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "write_digest", no_space)
    with pytest.warns(UserWarning, match="last.pt.sha256 could not be"):
        small_checkpoint(path, epoch=2)
    assert load_checkpoint(path)["epoch"] == 2  # the checkpoint itself is written
    # the old digest would call the new checkpoint damaged; without one it loads, warned
    assert not digest_path(path).exists()
    with pytest.warns(UserWarning, match="no digest file"):
        verify_digest(path)


def test_a_changed_file_is_refused_naming_it_and_both_digests(tmp_path):
    path = small_checkpoint(tmp_path / "last.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, e.g. a damaged copy
    path.write_bytes(bytes(data))
    with pytest.raises(DigestError) as err:
        verify_digest(path)
    message = str(err.value)
    assert str(path) in message and read_digest(path) in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_without_a_digest_file_it_is_accepted_with_a_warning_or_refused_when_required(tmp_path):
    path = small_checkpoint(tmp_path / "old.pt")
    digest_path(path).unlink()  # as written before checkpoints had digests
    with pytest.warns(UserWarning, match="loaded unchecked.*--write-digest"):
        assert verify_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DigestError, match="no digest file.*refused"):
        verify_digest(path, required=True)


def test_a_malformed_digest_file_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"x")
    digest_path(path).write_text("not a digest\n")
    with pytest.raises(DigestError, match="sha256sum format"):
        verify_digest(path)
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist; train"):
        verify_digest(tmp_path / "missing.pt", missing_hint="train one")

"""Local weights only: the detector loads a checkpoint only after its SHA-256 matches the
digest the trainer wrote beside it (the digest functions themselves:
``tests/utils/test_digest.py``)."""
from __future__ import annotations

import hashlib
import shutil
import warnings

import pytest

from mgrr_pyg.predict import Detector
from mgrr_pyg.predict.weights import DigestError, digest_path


def copy_of(checkpoint, folder, with_digest=True):
    copy = folder / "last.pt"
    shutil.copy(checkpoint, copy)
    if with_digest:
        shutil.copy(digest_path(checkpoint), digest_path(copy))
    return copy


def test_a_checkpoint_written_by_save_checkpoint_loads_checked_without_a_warning(checkpoint):
    # the fixture only calls save_checkpoint, as the trainer does: the digest is its
    assert digest_path(checkpoint).read_text() == \
        f"{hashlib.sha256(checkpoint.read_bytes()).hexdigest()}  last.pt\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector = Detector.from_checkpoint(checkpoint)
    assert detector.metadata["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_a_tampered_checkpoint_is_refused_naming_the_file(checkpoint, tmp_path):
    copy = copy_of(checkpoint, tmp_path)
    data = bytearray(copy.read_bytes())
    data[len(data) // 3] ^= 0x01  # one flipped bit
    copy.write_bytes(bytes(data))
    with pytest.raises(DigestError, match=f"checkpoint {copy}: SHA-256 .* does not match"):
        Detector.from_checkpoint(copy)


def test_an_older_checkpoint_without_digest_loads_with_a_warning(checkpoint, tmp_path, astronaut):
    copy = copy_of(checkpoint, tmp_path, with_digest=False)
    with pytest.warns(UserWarning, match="no digest file last.pt.sha256.*loaded unchecked"):
        detector = Detector.from_checkpoint(copy)
    assert detector.predict(astronaut)["success"].tolist() == [1]
    with pytest.raises(DigestError, match="refused"):
        Detector.from_checkpoint(copy, require_digest=True)


def test_no_checkpoint_says_how_to_train_one(tmp_path):
    for path in (tmp_path / "missing.pt", tmp_path):
        with pytest.raises(FileNotFoundError) as err:
            Detector.from_checkpoint(path)
        assert str(path) in str(err.value) and "mgrr-train" in str(err.value)
        assert "nothing is ever downloaded" in str(err.value)


def test_the_digest_names_are_the_ones_training_uses():
    from mgrr_pyg.predict import weights
    from mgrr_pyg.utils import digest

    for name in ("DigestError", "digest_path", "file_sha256", "read_digest", "write_digest"):
        assert getattr(weights, name) is getattr(digest, name)

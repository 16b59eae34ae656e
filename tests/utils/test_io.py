"""Atomic writes: the target is either the old file or the complete new one."""
import errno

import pytest

from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text, atomic_write


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_save_text(target, "first")
    atomic_save_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_failure_mid_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "weights.bin"
    atomic_save_bytes(target, b"old")

    with pytest.raises(OSError, match="No space left"):
        with atomic_write(target, "wb") as handle:
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_bad_mode_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"mode: expected 'w' or 'wb', found 'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass

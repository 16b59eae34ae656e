"""Local weights only: a checkpoint file, its SHA-256 digest beside it, and the message
that says how to train one when there is none.

The digest file ``<checkpoint>.sha256`` holds one line in ``sha256sum`` format
(``<64 hex digits>  <file name>``), so ``sha256sum -c last.pt.sha256`` checks it too.
:func:`write_digest` writes it (the trainer calls it after each checkpoint save);
:func:`verify_digest` checks it before the checkpoint is loaded for prediction: a
mismatch (a file changed, copied half-way, or damaged after it was saved) is refused
naming the file and both digests. A checkpoint without a digest file (written before
digests existed, or copied without it) loads with a warning that says how to add one.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

from mgrr_pyg.utils.io import atomic_save_text

DIGEST_SUFFIX = ".sha256"
_CHUNK = 1 << 20
_LINE = re.compile(r"^([0-9a-fA-F]{64})[ \t]+\*?(.+?)\s*$")

#: What to run when there is no checkpoint: every weight comes from training here.
HOW_TO_TRAIN = (
    "train one with this package: `mgrr-train` (no arguments: the synthetic BP4D set, "
    "about 6 minutes on a 2-core CPU, writes runs/BP4D-fold1-tiny-seed0/last.pt) or "
    "`mgrr-train --data-root /data/BP4D` on the licensed dataset for weights that work on "
    "real faces; nothing is ever downloaded"
)


class DigestError(ValueError):
    """A checkpoint whose SHA-256 does not match the digest written beside it."""


def digest_path(path: str | os.PathLike) -> Path:
    """``<path>.sha256``: where the digest of checkpoint ``path`` lives."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (flat memory for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_digest(path: str | os.PathLike, data: bytes | None = None) -> Path:
    """Write ``<path>.sha256`` (atomically) for the file ``path``; returns its path.

    ``data``: the bytes just written to ``path`` (``save_checkpoint`` has them in
    memory), hashed instead of reading the file back."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"write_digest: checkpoint {path} does not exist")
    target = digest_path(path)
    digest = hashlib.sha256(data).hexdigest() if data is not None else file_sha256(path)
    atomic_save_text(target, f"{digest}  {path.name}\n")
    return target


def read_digest(path: str | os.PathLike) -> str | None:
    """The hex digest recorded beside checkpoint ``path``, or None without a digest file.

    Raises:
        DigestError: the digest file is not one ``<64 hex>  <name>`` line.
    """
    target = digest_path(path)
    if not target.is_file():
        return None
    text = target.read_text(encoding="utf-8", errors="replace").strip()
    match = _LINE.match(text.splitlines()[0]) if text else None
    if match is None:
        shown = text[:80] if text else "an empty file"
        raise DigestError(f"{target}: expected one line '<64 hex digits>  {Path(path).name}' "
                          f"(sha256sum format), found {shown!r}; rewrite it with "
                          f"`mgrr-predict --write-digest {path}` if the checkpoint is good")
    return match.group(1).lower()


def verify_digest(path: str | os.PathLike, required: bool = False) -> str:
    """Check checkpoint ``path`` against ``<path>.sha256`` and return its digest.

    Args:
        path: The checkpoint file.
        required (bool): Refuse a checkpoint without a digest file (default: warn).

    Raises:
        FileNotFoundError: no checkpoint at ``path`` (the message says how to train one).
        DigestError: the digests differ, or (``required``) there is no digest file.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"checkpoint {path} {what}; {HOW_TO_TRAIN}")
    expected = read_digest(path)
    found = file_sha256(path)
    if expected is None:
        message = (f"checkpoint {path} has no digest file {digest_path(path).name} beside it, so "
                   "it cannot be checked for damage; if you trust the file, write one with "
                   f"`mgrr-predict --write-digest {path}`")
        if required:
            raise DigestError(message)
        warnings.warn(message, stacklevel=2)
    elif expected != found:
        raise DigestError(
            f"checkpoint {path}: SHA-256 {found} does not match {expected} recorded in "
            f"{digest_path(path)} when it was saved; the file was changed or damaged since "
            "(an interrupted copy?). Copy it again, or retrain")
    return found


__all__ = ["DIGEST_SUFFIX", "DigestError", "HOW_TO_TRAIN", "digest_path", "file_sha256",
           "read_digest", "verify_digest", "write_digest"]

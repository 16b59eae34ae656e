"""SHA-256 digests beside checkpoints: written when a checkpoint is saved, checked before
it is loaded for prediction.

The digest file ``<checkpoint>.sha256`` holds one line in ``sha256sum`` format
(``<64 hex digits>  <file name>``), so ``sha256sum -c last.pt.sha256`` checks it too.
:func:`write_digest` writes it atomically
(:func:`mgrr_pyg.train.checkpoint.save_checkpoint` calls it after every save, hashing
the bytes it has just written); :func:`verify_digest` checks it: a mismatch (a file
changed, copied half-way, or damaged after it was saved) is refused naming the file and
both digests. A checkpoint without a digest file (written before digests existed, or
copied without it) is accepted with a warning that says how to add one, or refused with
``required=True``.

This lives in :mod:`mgrr_pyg.utils` because training writes digests and prediction
checks them, and training does not import the prediction package.
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


def write_digest(path: str | os.PathLike, data: bytes | None = None, *,
                 sha256: str | None = None) -> Path:
    """Write ``<path>.sha256`` (atomically) for the file ``path``; returns its path.

    Args:
        path: The file (it must exist).
        data (bytes, optional): The bytes just written to ``path``, hashed instead of
            reading the file back.
        sha256 (str, optional): Their hex digest, already computed
            (``save_checkpoint`` hashes before it renames the checkpoint into place, so
            that the digest follows it within milliseconds).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"write_digest: checkpoint {path} does not exist")
    target = digest_path(path)
    if sha256 is not None:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"sha256: expected 64 lower-case hex digits, found {sha256!r}")
        digest = sha256
    else:
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


def verify_digest(path: str | os.PathLike, required: bool = False,
                  missing_hint: str | None = None) -> str:
    """Check checkpoint ``path`` against ``<path>.sha256`` and return its digest.

    Args:
        path: The checkpoint file.
        required (bool): Refuse a checkpoint without a digest file (default: warn).
        missing_hint (str, optional): What to do when there is no file at ``path``,
            appended to the FileNotFoundError's message.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        DigestError: the digests differ, or (``required``) there is no digest file.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        hint = f"; {missing_hint}" if missing_hint else ""
        raise FileNotFoundError(f"checkpoint {path} {what}{hint}")
    expected = read_digest(path)
    found = file_sha256(path)
    if expected is None:
        outcome = "refused (a digest is required)" if required else "loaded unchecked"
        message = (f"checkpoint {path} has no digest file {digest_path(path).name} beside it "
                   "(written before checkpoints had digests, or copied without it), so it "
                   f"cannot be checked for damage; it is {outcome}. If you trust the file, "
                   f"write one with `mgrr-predict --write-digest {path}`")
        if required:
            raise DigestError(message)
        warnings.warn(message, stacklevel=3)
    elif expected != found:
        raise DigestError(
            f"checkpoint {path}: SHA-256 {found} does not match {expected} recorded in "
            f"{digest_path(path)} when it was saved; the file was changed or damaged since "
            "(an interrupted copy, or a save killed between writing the checkpoint and its "
            "digest?). Copy it again, or retrain")
    return found


__all__ = ["DIGEST_SUFFIX", "DigestError", "digest_path", "file_sha256", "read_digest",
           "verify_digest", "write_digest"]

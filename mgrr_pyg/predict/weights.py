"""Local weights only: a checkpoint file, its SHA-256 digest beside it, and the message
that says how to train one when there is none.

The digests themselves live in :mod:`mgrr_pyg.utils.digest` (training writes them at
save time, prediction checks them); their names are importable from here as before.
:func:`verify_digest` here is that module's, with the no-checkpoint message saying how
to train one (:data:`HOW_TO_TRAIN`).
"""
from __future__ import annotations

import os

from mgrr_pyg.utils import digest as _digest
from mgrr_pyg.utils.digest import (DIGEST_SUFFIX, DigestError, digest_path, file_sha256,
                                   read_digest, write_digest)

#: What to run when there is no checkpoint: every weight comes from training here.
HOW_TO_TRAIN = (
    "train one with this package: `mgrr-train` (no arguments: the synthetic BP4D set, "
    "about 6 minutes on a 2-core CPU, writes runs/BP4D-fold1-tiny-seed0/last.pt) or "
    "`mgrr-train --data-root /data/BP4D` on the licensed dataset for weights that work on "
    "real faces; nothing is ever downloaded"
)


def verify_digest(path: str | os.PathLike, required: bool = False) -> str:
    """:func:`mgrr_pyg.utils.digest.verify_digest`, a missing checkpoint answered with
    :data:`HOW_TO_TRAIN`."""
    return _digest.verify_digest(path, required=required, missing_hint=HOW_TO_TRAIN)


__all__ = ["DIGEST_SUFFIX", "DigestError", "HOW_TO_TRAIN", "digest_path", "file_sha256",
           "read_digest", "verify_digest", "write_digest"]

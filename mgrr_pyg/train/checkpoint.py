"""Checkpoints: everything needed to resume a run bit for bit, or rebuild a model.

A checkpoint is a dict of plain types and tensors (loadable with
``torch.load(..., weights_only=True)``, the only way this package loads one):

- ``schema_version`` (:data:`SCHEMA_VERSION`) and ``kind``;
- ``model_config``: the model configuration as a plain dict (the model is rebuilt
  from the file alone), ``model_name`` (preset);
- ``metadata``: AU ids, landmark convention, alignment template, crop and
  normalisation, dataset and fold, package version;
- ``train_config``: the :class:`~mgrr_pyg.train.config.TrainConfig` as a dict;
- ``epoch`` (completed epochs), ``step_in_epoch`` (optimiser steps done inside the
  next epoch, 0 at an epoch end), ``global_step``;
- ``model``, ``optimizer``, ``scheduler``, ``scaler`` state dicts;
- ``rng``: torch (CPU and CUDA), numpy and Python ``random`` states as tensors and
  plain lists; ``sampler``: the shuffling epoch and position;
- ``history``: per-epoch records, ``best``: the validation choice so far;
- ``timing``: ``seconds`` of the run so far, summed over the segments of a run that
  was interrupted and resumed, and the number of ``segments`` (absent in older files).

Files are written atomically (serialised to memory, then temp file + rename), so a
crash or a full disk never leaves a half-written checkpoint.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import random
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mgrr_pyg.utils.digest import digest_path, write_digest
from mgrr_pyg.utils.io import atomic_save_bytes

SCHEMA_VERSION = 1
CHECKPOINT_KIND = "mgrr_pyg.train.checkpoint"
#: Entries every checkpoint has (the others may be ``None``).
REQUIRED_KEYS = ("model", "epoch", "step_in_epoch", "global_step")
LANDMARK_CONVENTION = "49-pt, 0-based pixel centres, crop coords"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (unreadable, schema, AU set, architecture)."""

#: What to do about a checkpoint that cannot be read, unless the caller knows better
#: (the trainer names ``--overwrite``).
DEFAULT_UNREADABLE_HINT = "delete it or point at another checkpoint (one written by mgrr_pyg.train)"


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (e.g. a full disk); the previous file is intact."""


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def model_config_dict(model: torch.nn.Module) -> Optional[dict]:
    """``model.config.to_dict()`` if the model has a config, else ``None``."""
    config = getattr(unwrap_model(model), "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return config.to_dict()
    return None


# -- RNG state as weights_only-safe types --------------------------------------------------
def capture_rng_state() -> dict:
    """Torch (CPU and every CUDA device), numpy and Python ``random`` states."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [int(py_state[0]), [int(v) for v in py_state[1]], py_state[2]],
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        count = min(len(cuda), torch.cuda.device_count())
        for i in range(count):
            torch.cuda.set_rng_state(cuda[i].cpu().to(torch.uint8), device=i)


# -- metadata ------------------------------------------------------------------------------
def build_metadata(aus, dataset: Optional[str] = None, fold: Optional[int] = None,
                   **extra) -> dict:
    """The metadata block: AU ids, landmark convention, alignment template, crop and
    normalisation, dataset and fold, package and torch versions."""
    from mgrr_pyg import __version__
    from mgrr_pyg import facs

    meta = {
        "aus": [int(a) for a in aus],
        "landmarks": LANDMARK_CONVENTION,
        "num_landmarks": facs.NUM_LANDMARKS,
        "alignment_template": {k: [float(v[0]), float(v[1])] for k, v in facs.CANONICAL_TEMPLATE.items()},
        "aligned_size": facs.ALIGNED_SIZE,
        "crop_size": facs.CROP_SIZE,
        "centre_crop_offset": facs.CENTRE_CROP_OFFSET,
        "normalisation": "RGB pixels mapped linearly from [0, 255] to [-1, 1]",
        "dataset": dataset,
        "fold": fold,
        "package_version": __version__,
        "torch_version": str(torch.__version__),
    }
    meta.update(extra)
    return meta


# -- save / load ---------------------------------------------------------------------------
def save_checkpoint(path, *, model: torch.nn.Module, epoch: int, step_in_epoch: int = 0,
                    global_step: int = 0, optimizer=None, scheduler=None, scaler=None,
                    model_config: Optional[dict] = None, model_name: Optional[str] = None,
                    train_config: Optional[dict] = None, metadata: Optional[dict] = None,
                    sampler_state: Optional[dict] = None, history: Optional[list] = None,
                    best: Optional[dict] = None, rng_state: Optional[dict] = None,
                    timing: Optional[dict] = None) -> Path:
    """Write a checkpoint atomically, and its SHA-256 beside it (``<path>.sha256``,
    :func:`mgrr_pyg.utils.digest.write_digest`, also atomic), which prediction checks.

    On an ``OSError`` while writing (e.g. ``ENOSPC``, a full disk) raises
    :class:`CheckpointWriteError` whose message says the previous checkpoint at
    ``path`` (if any) is intact: the write goes to a temporary file that is removed,
    and the rename that would replace ``path`` never happens.
    """
    path = Path(path)
    plain = unwrap_model(model)
    state = {
        "schema_version": SCHEMA_VERSION,
        "kind": CHECKPOINT_KIND,
        "model_name": model_name,
        "model_config": model_config if model_config is not None else model_config_dict(plain),
        "metadata": metadata or {},
        "train_config": train_config,
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "global_step": int(global_step),
        "model": plain.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state if rng_state is not None else capture_rng_state(),
        "sampler": sampler_state,
        "history": history or [],
        "best": best,
        "timing": timing or {"seconds": 0.0, "segments": 1},
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    # Hashed before the rename, so that the digest follows the checkpoint within ms.
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        atomic_save_bytes(path, data)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno == errno.ENOSPC:
            reason = "no space left on device"
        previous = ("the previous checkpoint there is intact" if path.exists()
                    else "no previous checkpoint existed there")
        raise CheckpointWriteError(
            err.errno or errno.EIO,
            f"could not write checkpoint {path}: {reason} ({err}); {previous} "
            "(the write went to a temporary file that was removed)",
        ) from err
    try:
        write_digest(path, sha256=sha256)
    except OSError as err:
        # The checkpoint is good; a digest left from the previous one would call it damaged.
        with contextlib.suppress(OSError):
            digest_path(path).unlink(missing_ok=True)
        warnings.warn(f"checkpoint {path} is written, but its digest {digest_path(path).name} "
                      f"could not be ({err}); it will load with a warning, unchecked",
                      stacklevel=2)
    return path


def describe_file(path) -> str:
    """What a file that should be a checkpoint holds, from its first bytes (for error
    messages: "an empty file", "a text file starting ...", "a truncated zip archive")."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK\x03\x04"):  # torch.save writes a zip archive
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return (f"a damaged or truncated zip archive ({size} bytes; torch.save writes zip "
                    "archives, this one has no readable directory at its end)")
        if any(name.endswith("/data.pkl") for name in names):
            return f"a torch.save archive ({size} bytes)"
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return f"a zip archive that torch.save did not write ({size} bytes, holding {shown or 'nothing'})"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (f"a pickle stream ({size} bytes), not torch.save's zip format (a plain pickle, "
                "or a file from torch < 1.6)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        if text.startswith("version https://git-lfs"):
            return (f"a Git LFS pointer ({size} bytes), not the file itself: fetch it with "
                    "`git lfs pull`")
        first = text.splitlines()[0] if text.strip() else ""
        return f"a text file ({size} bytes) starting {first[:60]!r}"
    return f"binary data of an unknown format ({size} bytes, starting {head[:8].hex(' ')})"


def _load_failure(err: Exception) -> str:
    """The useful part of a ``torch.load`` error (its advice to load with
    ``weights_only=False``, which would run code from the file, left out), never empty."""
    text = str(err)
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text) or \
        re.search(r"(Trying to load unsupported GLOBAL [^\n]+)", text)
    if found:
        reason = found.group(1).split(". Please use")[0].strip()
    else:
        boilerplate = ("Weights only load failed", "Check the documentation", "(1)", "(2)")
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith(boilerplate)]
        reason = lines[0].split(". This is an internal miniz error")[0] if lines else ""
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return f"{type(err).__name__}: {reason}" if reason else type(err).__name__


def load_checkpoint(path, map_location: Any = "cpu", hint: Optional[str] = None) -> dict:
    """Load a checkpoint with ``torch.load(..., weights_only=True)`` and check its schema.

    Args:
        path: The checkpoint file.
        map_location: As for ``torch.load``.
        hint (str, optional): What the user can do when the file cannot be used,
            appended to the error message. (default: :data:`DEFAULT_UNREADABLE_HINT`)

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: a folder, a file that is not a checkpoint of this package (the
            message says what the file is: empty, truncated, text, another archive, a
            pickle referring to code...), or another schema version.
    """
    path = Path(path)
    hint = hint or DEFAULT_UNREADABLE_HINT
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a folder, expected a checkpoint file; {hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types, some with an empty message
        code = re.search(r"GLOBAL ([\w.]*\w)", str(err))
        danger = (f"; it names Python code to call while loading ({code.group(1)}), which this "
                  "package never runs (never load it with weights_only=False unless you trust "
                  "where it came from)") if code else ""
        raise CheckpointError(
            f"checkpoint {path}: not a readable checkpoint: it is {describe_file(path)} "
            f"(torch.load(weights_only=True) failed with {_load_failure(err)}){danger}; {hint}"
        ) from err
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        if isinstance(state, dict):
            keys = sorted(str(k) for k in state)
            found = (f"a dict with kind {state['kind']!r}" if "kind" in state else
                     "a dict without a 'kind' entry (keys: " + ", ".join(keys[:5])
                     + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
                     + "), e.g. a bare state_dict")
        else:
            found = f"a {type(state).__name__}"
        raise CheckpointError(
            f"checkpoint {path}: expected a dict with kind {CHECKPOINT_KIND!r} (written by "
            f"mgrr_pyg.train), found {found}; {hint}"
        )
    version = state.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: schema version {version!r}, this version of mgrr_pyg reads "
            f"schema version {SCHEMA_VERSION}; re-create the checkpoint or use the matching "
            "package version"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: incomplete, it has no {', '.join(missing)} "
                              f"entry; {hint}")
    return state


def config_mismatch(expected: Optional[dict], found: Optional[dict]) -> list[str]:
    """Differences between two model config dicts, one ``key: expected vs found`` line each."""
    if expected is None or found is None:
        return []
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key, "<missing>"), found.get(key, "<missing>")
        if a != b:
            out.append(f"{key}: model has {a!r}, checkpoint has {b!r}")
    return out


def check_compatible(state: dict, model: torch.nn.Module, path="checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the config keys (AU set, architecture)
    that differ between ``model`` and the checkpoint, or the parameters whose shapes
    differ when the model has no config."""
    expected = model_config_dict(model)
    found = state.get("model_config")
    diffs = config_mismatch(expected, found)
    if diffs:
        raise CheckpointError(
            f"{path}: the checkpoint was written for another model configuration; keys that "
            "differ:\n  " + "\n  ".join(diffs)
        )
    own = unwrap_model(model).state_dict()
    theirs = state["model"]
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = [f"{k}: model {list(own[k].shape)}, checkpoint {list(theirs[k].shape)}"
              for k in sorted(set(own) & set(theirs)) if own[k].shape != theirs[k].shape]
    if missing or unexpected or shapes:
        lines = ([f"missing in checkpoint: {missing[:10]}"] if missing else []) + \
                ([f"not in model: {unexpected[:10]}"] if unexpected else []) + shapes[:10]
        raise CheckpointError(
            f"{path}: the checkpoint's weights do not fit this model (another AU set or "
            "architecture):\n  " + "\n  ".join(lines)
        )


def restore_training_state(state: dict, model: torch.nn.Module, optimizer=None, scheduler=None,
                           scaler=None, restore_rng: bool = True, path="checkpoint") -> None:
    """Load model / optimiser / scheduler / scaler states and the RNG states."""
    check_compatible(state, model, path)
    unwrap_model(model).load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if restore_rng and state.get("rng") is not None:
        restore_rng_state(state["rng"])


def model_from_checkpoint(path, map_location: Any = "cpu") -> torch.nn.Module:
    """Rebuild an MGRR-Net from a checkpoint file alone (config + weights), in eval mode."""
    state = load_checkpoint(path, map_location)
    config = state.get("model_config")
    if config is None:
        raise CheckpointError(f"{path}: the checkpoint holds no model_config to rebuild the model from")
    from mgrr_pyg.model import MGRRConfig, MGRRNet

    model = MGRRNet(MGRRConfig.from_dict(config))
    model.load_state_dict(state["model"])
    return model.eval()


__all__ = [
    "CHECKPOINT_KIND",
    "DEFAULT_UNREADABLE_HINT",
    "CheckpointError",
    "CheckpointWriteError",
    "LANDMARK_CONVENTION",
    "SCHEMA_VERSION",
    "build_metadata",
    "capture_rng_state",
    "check_compatible",
    "config_mismatch",
    "describe_file",
    "load_checkpoint",
    "model_config_dict",
    "model_from_checkpoint",
    "restore_rng_state",
    "restore_training_state",
    "save_checkpoint",
    "unwrap_model",
]

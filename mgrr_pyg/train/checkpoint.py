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
- ``history``: per-epoch records, ``best``: the validation choice so far.

Files are written atomically (serialised to memory, then temp file + rename), so a
crash or a full disk never leaves a half-written checkpoint.
"""
from __future__ import annotations

import errno
import io
import os
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mgrr_pyg.utils.io import atomic_save_bytes

SCHEMA_VERSION = 1
CHECKPOINT_KIND = "mgrr_pyg.train.checkpoint"
LANDMARK_CONVENTION = "49-pt, 0-based pixel centres, crop coords"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (schema, AU set, architecture)."""


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
                    best: Optional[dict] = None, rng_state: Optional[dict] = None) -> Path:
    """Write a checkpoint atomically.

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
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_save_bytes(path, buffer.getvalue())
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
    return path


def load_checkpoint(path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``torch.load(..., weights_only=True)`` and check its schema.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: not a checkpoint of this package, or another schema version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise CheckpointError(
            f"checkpoint {path}: could not be read with torch.load(weights_only=True): {err}"
        ) from err
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"checkpoint {path}: expected a dict with kind {CHECKPOINT_KIND!r} (written by "
            f"mgrr_pyg.train), found {type(state).__name__}"
            + (f" with kind {state.get('kind')!r}" if isinstance(state, dict) else "")
        )
    version = state.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: schema version {version!r}, this version of mgrr_pyg reads "
            f"schema version {SCHEMA_VERSION}; re-create the checkpoint or use the matching "
            "package version"
        )
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
    "CheckpointError",
    "CheckpointWriteError",
    "LANDMARK_CONVENTION",
    "SCHEMA_VERSION",
    "build_metadata",
    "capture_rng_state",
    "check_compatible",
    "config_mismatch",
    "load_checkpoint",
    "model_config_dict",
    "model_from_checkpoint",
    "restore_rng_state",
    "restore_training_state",
    "save_checkpoint",
    "unwrap_model",
]

"""The typed training configuration.

:class:`TrainConfig` holds everything a training run needs to be repeated: the data
(dataset, root, fold, frame budget), the model (preset name and overrides), the
optimisation schedule of the paper and the runtime switches (device, mixed precision,
``torch.compile``, workers). ``to_dict()`` gives plain Python types (it is stored in
every checkpoint and in ``config.json``) and ``from_dict()`` rebuilds it, rejecting
unknown keys.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

# The ``--ablation`` names (Table 6 settings, Table 7 depths) and the switches they set are
# defined with the model presets; importable from here as before.
from mgrr_pyg.model.presets import ABLATION_FIELDS, ABLATIONS, ablation_overrides

#: "sgd" is the paper's (Nesterov momentum); "adamw" (momentum unused) is the quick CPU
#: schedule's: a few hundred steps from scratch are too few for SGD at lr 0.01.
OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("none", "bf16", "fp16")
DATASETS = ("BP4D", "DISFA")

# Keys that may differ between a checkpoint and the run resuming from it: they change
# where or how fast the run goes, not what it computes (``epochs`` may grow to extend
# a finished run).
RESUME_FREE_KEYS = frozenset(
    {"epochs", "output", "resume", "workers", "log_every", "progress", "tensorboard",
     "checkpoint_every", "checkpoint_minutes", "overwrite", "data_root", "cache_dir",
     "prepared_root", "image_root", "compile", "init_from", "eval_batch_size"}
)


def default_workers() -> int:
    """``min(2, cpus)``: data loading workers that never oversubscribe a small machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return min(2, cpus)


@dataclass
class TrainConfig:
    """Configuration of one training run (one dataset, one fold).

    The defaults are the paper's schedule (section 4.2): SGD with Nesterov momentum
    0.9, weight decay 5e-4, learning rate 0.01 halved every two epochs, 15 epochs,
    joint loss :math:`L = L_{au} + L_{int} + \\lambda L_{align}` with
    :math:`\\lambda = 0.5` (Eq. 11).

    Args:
        dataset (str): ``"BP4D"`` or ``"DISFA"``. (default: ``"BP4D"``)
        data_root (str, optional): Raw or prepared dataset folder; ``None`` uses the
            synthetic dataset generated into the cache. (default: ``None``)
        image_root (str, optional): With prepared lists in ``data_root``: the folder
            their image paths are relative to. (default: from ``prepare.json``, else
            ``<data_root>/images`` or ``data_root``)
        fold (int): Fold 1-3; fold ``f`` tests on part ``f``. (default: ``1``)
        preset (str): Model preset for ``create_model``. (default: ``"mgrr_bp4d"``)
        model_overrides (dict): Extra ``create_model`` keyword arguments.
        ablation (str, optional): A key of :data:`ABLATIONS` (Table 6 / 7 switch).
        epochs (int): Training epochs. (default: ``15``)
        batch_size (int): Images per optimiser step (per process under DDP).
            (default: ``8``)
        lr, momentum, nesterov, weight_decay: SGD settings. (default: ``0.01, 0.9,
            True, 5e-4``)
        lr_step, lr_gamma: StepLR: multiply the learning rate by ``lr_gamma`` every
            ``lr_step`` epochs. (default: ``2, 0.5``)
        lambda_align (float): Weight of the alignment loss. (default: ``0.5``)
        threshold (float): Decision threshold on the probabilities. (default: ``0.5``)
        seed (int): Seed of the model initialisation, shuffling and augmentation.
        max_train_frames, max_test_frames (int, optional): Frame budgets: a seeded
            random subset of the training frames / an evenly strided subset of the
            test frames (CPU-sized runs). ``None`` uses every frame.
        val_subjects (int or float, optional): Hold out this many training-part
            subjects (or this fraction of them) as a validation split that chooses
            the reported epoch (``best.pt``). ``None``: report the last epoch.
        device (str): ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        amp (str): ``"none"``, ``"bf16"`` or ``"fp16"`` autocast (fp16 on CUDA only).
        channels_last (bool): ``channels_last`` memory format (CUDA only).
        compile (bool): Wrap the model in ``torch.compile``.
        workers (int, optional): DataLoader workers; ``None`` is ``min(2, cpus)``.
        checkpoint_every (int): Also checkpoint every this many steps inside an
            epoch (0: not by steps).
        checkpoint_minutes (float): Also checkpoint inside an epoch once this many
            minutes of training have passed since the last checkpoint, so a killed
            run loses at most that much (0: not by time). (default: ``5``)
        output (str, optional): Output folder.
        init_from (str, optional): A BP4D checkpoint to initialise a DISFA model from.
    """

    dataset: str = "BP4D"
    data_root: Optional[str] = None
    prepared_root: Optional[str] = None
    image_root: Optional[str] = None
    cache_dir: Optional[str] = None
    synthetic_preset: str = "default"
    synthetic_seed: int = 0
    fold: int = 1
    preset: str = "mgrr_bp4d"
    model_overrides: dict = field(default_factory=dict)
    ablation: Optional[str] = None
    epochs: int = 15
    batch_size: int = 8
    eval_batch_size: Optional[int] = None
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_step: int = 2
    lr_gamma: float = 0.5
    lambda_align: float = 0.5
    threshold: float = 0.5
    seed: int = 0
    max_train_frames: Optional[int] = None
    max_test_frames: Optional[int] = None
    val_subjects: Optional[Union[int, float]] = None
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    workers: Optional[int] = None
    drop_last: bool = True
    checkpoint_every: int = 0
    checkpoint_minutes: float = 5.0
    log_every: int = 1
    progress: bool = True
    tensorboard: bool = True
    output: Optional[str] = None
    resume: bool = False
    overwrite: bool = False
    init_from: Optional[str] = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        """Check every field; raise ValueError naming the field, expected and found."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {DATASETS}, found {self.dataset!r}")
        if self.fold not in (1, 2, 3):
            raise ValueError(f"fold: expected 1, 2 or 3, found {self.fold!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp: expected one of {AMP_MODES}, found {self.amp!r}")
        if self.ablation is not None and self.ablation not in ABLATIONS:
            raise ValueError(
                f"ablation: expected one of {sorted(ABLATIONS)}, found {self.ablation!r}"
            )
        for name in ("epochs", "batch_size", "lr_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, found {value!r}")
        for name in ("max_train_frames", "max_test_frames", "eval_batch_size", "workers"):
            value = getattr(self, name)
            minimum = 0 if name == "workers" else 1
            if value is not None and (not isinstance(value, int) or value < minimum):
                raise ValueError(
                    f"{name}: expected None or an integer >= {minimum}, found {value!r}"
                )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, found {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, found {self.lr!r}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma: expected a value in (0, 1], found {self.lr_gamma!r}")
        if self.weight_decay < 0 or self.momentum < 0:
            raise ValueError(
                f"weight_decay / momentum: expected >= 0, found {self.weight_decay!r} / "
                f"{self.momentum!r}"
            )
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold: expected a value in (0, 1), found {self.threshold!r}")
        if self.val_subjects is not None:
            v = self.val_subjects
            ok = (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v < 1)
            if not ok:
                raise ValueError(
                    "val_subjects: expected a number of subjects (integer >= 1) or a "
                    f"fraction in (0, 1), found {v!r}"
                )
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every: expected >= 0, found {self.checkpoint_every!r}")
        minutes = self.checkpoint_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or \
                not (minutes >= 0 and minutes < float("inf")):
            raise ValueError(f"checkpoint_minutes: expected a number of minutes >= 0 (0: no "
                             f"time-based checkpoints), found {minutes!r}")
        if self.image_root is not None and self.data_root is None:
            raise ValueError(
                "image_root (--image-root): only used with prepared lists in data_root "
                "(--data-root); the synthetic data is prepared with its images in the cache"
            )
        if self.resume and self.overwrite:
            raise ValueError(
                "resume / overwrite: --resume continues from <output>/last.pt and --overwrite "
                "deletes it to start afresh; pass one of them"
            )
        if not isinstance(self.model_overrides, dict):
            raise ValueError(
                f"model_overrides: expected a dict, found {type(self.model_overrides).__name__}"
            )
        return self

    # -- resolved values ---------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        return default_workers() if self.workers is None else self.workers

    def resolved_model(self) -> tuple[str, dict]:
        """The preset name and ``create_model`` overrides after applying ``ablation``
        (its :data:`ABLATION_FIELDS` taken from the model preset it names)."""
        overrides = {}
        if self.ablation is not None:
            overrides = ablation_overrides(self.ablation)
        overrides.update(self.model_overrides)
        return self.preset, overrides

    # -- plain-type round trip -----------------------------------------------------------
    def to_dict(self) -> dict:
        """The configuration as plain Python types (JSON- and ``weights_only``-safe)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`; unknown keys are a ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"TrainConfig.from_dict: expected a dict, found {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"TrainConfig.from_dict: unknown keys {unknown}; known keys are {sorted(known)}"
            )
        return cls(**data)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_differences(a: dict, b: dict, ignore=RESUME_FREE_KEYS) -> list[str]:
    """Keys whose values differ between two config dicts (``a`` vs ``b``), as
    ``"key: a_value != b_value"`` lines, skipping ``ignore``."""
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignore:
            continue
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if va != vb:
            out.append(f"{key}: {va!r} != {vb!r}")
    return out


__all__ = ["ABLATIONS", "ABLATION_FIELDS", "AMP_MODES", "RESUME_FREE_KEYS", "TrainConfig", "config_differences",
           "default_workers"]

"""The typed training configuration.

:class:`TrainConfig` holds everything a training run needs to be repeated: the data
(dataset, root, fold, frame budget), the model (preset name and overrides), the
optimiser, learning-rate schedule and loss weight, the validation choice of the reported
epoch and the runtime switches (device, mixed precision, ``torch.compile``, workers,
checkpoints). ``to_dict()`` gives plain Python types (it is stored in every checkpoint
and in ``config.json``) and ``from_dict()`` rebuilds it, rejecting unknown keys.

Each field is declared with :func:`setting`: its default, one line of help and its
command-line group. That one declaration is the field's documentation (the ``Args`` of
:class:`TrainConfig` are generated from it) and its ``mgrr-train`` option
(:mod:`mgrr_pyg.train.cli` builds the options from the fields). A new field's default
must reproduce what the code did before the field existed: a checkpoint or
``config.json`` written without it is read as having that default
(:meth:`TrainConfig.complete_dict`).
"""
from __future__ import annotations

import dataclasses
import os
import textwrap
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional, Sequence, Union

# The ``--ablation`` names (Table 6 settings, Table 7 depths) and the switches they set are
# defined with the model presets; importable from here as before.
from mgrr_pyg.model.presets import ABLATION_FIELDS, ABLATIONS, ablation_overrides
from mgrr_pyg.utils import records
from mgrr_pyg.utils.records import plain

# Optimisers, learning-rate schedules and selection metrics are registries, validated by
# name (``list_optimizers()``...): a new one is one entry there, no edit here.
from mgrr_pyg.train.optim import list_optimizers, list_schedulers, optimizer_entry, scheduler_entry
from mgrr_pyg.train.selection import list_selection_metrics, selection_metric
from mgrr_pyg.train.transfer import INIT_ADJACENCY
from mgrr_pyg.data.raw import DISFA_THRESHOLD

AMP_MODES = ("none", "bf16", "fp16")
DATASETS = ("BP4D", "DISFA")

# Keys that may differ between a checkpoint and the run resuming from it: they change
# where or how fast the run goes, not what it computes (``epochs`` may grow to extend
# a finished run).
RESUME_FREE_KEYS = frozenset(
    {"epochs", "output", "resume", "workers", "log_every", "progress", "tensorboard",
     "checkpoint_every", "checkpoint_minutes", "overwrite", "data_root", "cache_dir",
     "prepared_root", "image_root", "compile", "init_from", "eval_batch_size", "curve_frames",
     "keep_epoch_checkpoints", "branch_from", "init_adjacency"}
)
# Keys a branch (``--branch-from``) may change: the learning-rate schedule, from the epoch
# it branches at on (everything else would train another model from that point).
BRANCH_FREE_KEYS = RESUME_FREE_KEYS | frozenset({"lr", "lr_scheduler", "lr_step", "lr_gamma"})


def default_workers() -> int:
    """``min(2, cpus)``: data loading workers that never oversubscribe a small machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return min(2, cpus)


# -- command-line text of the fields -------------------------------------------------------
# Each raises ValueError with the message a person needs; the command line shows it as
# ``argument --name: message``.
def _parse_number(text: str, convert, accept, expected: str):
    """``convert(text)`` if it converts and ``accept``s the value, else the one message
    ``expected ..., found '...'``."""
    try:
        value = convert(text)
    except ValueError:
        raise ValueError(f"expected {expected}, found {text!r}") from None
    if not accept(value):
        raise ValueError(f"expected {expected}, found {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    """``"3"`` -> 3; an integer >= 1."""
    return _parse_number(text, int, lambda v: v >= 1, "a positive integer")


def parse_non_negative_int(text: str) -> int:
    """``"0"`` -> 0; an integer >= 0."""
    return _parse_number(text, int, lambda v: v >= 0, "an integer >= 0")


def parse_minutes(text: str) -> float:
    """``"0.5"`` -> 0.5; a finite number of minutes >= 0."""
    return _parse_number(text, float, lambda v: 0 <= v < float("inf"), "a number of minutes >= 0")


def parse_intensity_cut(text: str) -> int:
    """``"3"`` -> 3; an integer intensity 1-5 (DISFA codes 0-5)."""
    return _parse_number(text, int, lambda v: 1 <= v <= 5, "an integer intensity 1-5")


def parse_subjects(text: str) -> Union[int, float]:
    """``"3"`` -> 3 subjects, ``"0.2"`` -> a fifth of them."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"expected a number of subjects (e.g. 3) or a fraction (e.g. 0.2), found {text!r}"
        ) from None
    if value >= 1:
        if value != int(value):
            raise ValueError(f"expected a whole number of subjects, found {text!r}")
        return int(value)
    if value <= 0:
        raise ValueError(f"expected a positive count or fraction, found {text!r}")
    return value


#: The command-line groups of the fields, in ``--help`` order.
GROUPS = ("data", "model", "optimisation", "runtime")


def setting(default: Any = dataclasses.MISSING, *, help: Union[str, Callable[[], str]], group: str,
            default_factory: Any = dataclasses.MISSING, parse: Optional[Callable[[str], Any]] = None,
            choices: Union[Sequence, Callable[[], Sequence], None] = None,
            shown_default: Optional[str] = None, flag: Optional[str] = None,
            flag_help: Optional[str] = None, metavar: Optional[str] = None, cli: bool = True):
    """A :class:`TrainConfig` field with what documents it and makes its option.

    Args:
        default, default_factory: As for :func:`dataclasses.field`.
        help (str or callable): What the field does, one sentence without the default
            (or a function returning it, for a text read from a registry).
        group (str): Its ``--help`` group, one of :data:`GROUPS`.
        parse (callable, optional): Option text -> value (raising ValueError with a
            message for people). (default: the text itself)
        choices (sequence or callable, optional): The allowed values, or a function
            returning them (a registry read when the options are built).
        shown_default (str, optional): The default in words, where the value alone
            does not say it (``None`` that means "every frame"...).
        flag (str, optional): The option's name. (default: ``--`` and the field name
            with dashes; ``--no-<name>`` for a switch that is on by default)
        flag_help (str, optional): For a switch: what giving the flag does.
        metavar (str, optional): The option's value in ``--help``.
        cli (bool): Whether :func:`mgrr_pyg.train.cli.add_training_arguments` adds it
            (``False``: the command adds it itself, or it has no option).
    """
    if group not in GROUPS:
        raise ValueError(f"setting: group expected one of {GROUPS}, found {group!r}")
    metadata = {"help": help, "group": group, "parse": parse, "choices": choices,
                "shown_default": shown_default, "flag": flag, "flag_help": flag_help,
                "metavar": metavar, "cli": cli}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def _preset_names() -> list[str]:
    from mgrr_pyg.model import list_presets

    return list_presets()


def _synthetic_presets() -> list[str]:
    from mgrr_pyg.data.synthetic import PRESETS

    return list(PRESETS)


def _choices_help(names: Sequence[str], entry) -> str:
    return "; ".join(f"{name}: {entry(name).help}" for name in names)


@dataclass
class TrainConfig:
    """Configuration of one training run (one dataset, one fold).

    The defaults are the paper's schedule (section 4.2): SGD with Nesterov momentum
    0.9, weight decay 5e-4, learning rate 0.01 multiplied by 0.5 every two epochs (the
    ``step`` schedule), 15 epochs, joint loss :math:`L = L_{au} + L_{int} + \\lambda
    L_{align}` with :math:`\\lambda = 0.5` (Eq. 11). ``mgrr-train`` without ``--data-root``
    uses its *quick* schedule instead (:data:`mgrr_pyg.train.cli.SCHEDULES`).
    """

    # -- data ------------------------------------------------------------------------------
    dataset: str = setting("BP4D", group="data", choices=DATASETS,
                           help="the dataset and its AU set: BP4D (12 AUs) or DISFA (8 AUs)")
    data_root: Optional[str] = setting(
        None, group="data", shown_default="synthetic data generated into the cache",
        help="raw BP4D / DISFA folder or prepared lists (detected); with it the default "
             "schedule is the paper's")
    prepared_root: Optional[str] = setting(
        None, group="data", shown_default="in the cache",
        help="where raw data from --data-root is prepared (aligned faces and lists)")
    image_root: Optional[str] = setting(
        None, group="data", shown_default="from prepare.json, else <data-root>/images or <data-root>",
        help="with prepared lists in --data-root: the folder their image paths are relative to")
    cache_dir: Optional[str] = setting(
        None, group="data", shown_default="$MGRR_CACHE or ~/.cache/mgrr_pyg",
        help="cache folder of the synthetic and the prepared data")
    synthetic_preset: str = setting("default", group="data", choices=_synthetic_presets,
                                    help="the synthetic dataset (without --data-root): tiny "
                                         "(tests), default, or tied (default's size, weak AUs "
                                         "tied to strong ones; docs/synthetic-truth.md)")
    synthetic_seed: int = setting(0, group="data", parse=int, help="seed of the synthetic dataset")
    fold: int = setting(1, group="data", parse=int, choices=(1, 2, 3), cli=False,
                        help="the fold: fold f tests on part f and trains on the other two")
    intensity_cut: int = setting(
        DISFA_THRESHOLD, group="data", parse=parse_intensity_cut, metavar="N",
        help="DISFA: an AU occurs in a frame whose coded intensity (0-5) is >= N (2: the "
             "JAA-Net / ME-GraphAU label code; 3: the paper's 'higher than two' read literally; "
             "docs/protocol.md). Raw data is prepared at this cut, in a cache folder of its "
             "own; prepared lists in --data-root must have been prepared at it")
    # -- model -----------------------------------------------------------------------------
    preset: str = setting("mgrr_bp4d", group="model", choices=_preset_names, metavar="PRESET",
                          help="model preset")
    model_overrides: dict = setting(
        group="model", default_factory=dict, flag="--set", metavar="KEY=VALUE",
        help="model config override, e.g. --set num_layers=3 (repeatable; YAML values)")
    ablation: Optional[str] = setting(
        None, group="model", choices=lambda: sorted(ABLATIONS), metavar="SETTING",
        help="Table 6 setting / Table 7 depth: its switches are applied to the preset")
    # -- optimisation ----------------------------------------------------------------------
    epochs: int = setting(15, group="optimisation", parse=parse_positive_int, help="training epochs")
    batch_size: int = setting(8, group="optimisation", parse=parse_positive_int,
                              help="images per optimiser step (per process under DDP)")
    eval_batch_size: Optional[int] = setting(
        None, group="optimisation", parse=parse_positive_int, shown_default="--batch-size",
        help="images per batch in evaluation (no effect on the results)")
    optimizer: str = setting(
        "sgd", group="optimisation", choices=list_optimizers,
        help=lambda: "the optimiser. " + _choices_help(list_optimizers(), optimizer_entry))
    lr: float = setting(0.01, group="optimisation", parse=float, help="initial learning rate")
    momentum: float = setting(0.9, group="optimisation", parse=float,
                              help="SGD momentum (0: plain SGD)")
    nesterov: bool = setting(True, group="optimisation", help="Nesterov momentum (SGD)",
                             flag_help="classical instead of Nesterov momentum (SGD)")
    weight_decay: float = setting(5e-4, group="optimisation", parse=float, help="weight decay")
    lr_scheduler: str = setting(
        "step", group="optimisation", choices=list_schedulers,
        help=lambda: ("the learning-rate schedule, stepped after every epoch. "
                      + _choices_help(list_schedulers(), scheduler_entry)))
    lr_step: int = setting(2, group="optimisation", parse=parse_positive_int,
                           help="step schedule: epochs between two lr changes")
    lr_gamma: float = setting(0.5, group="optimisation", parse=float,
                              help="step schedule: the factor of each lr change, in (0, 1] "
                                   "(1: a constant lr)")
    lambda_align: float = setting(0.5, group="optimisation", parse=float,
                                  help="weight lambda of the landmark alignment loss in "
                                       "L = L_au + L_int + lambda L_align (Eq. 11)")
    threshold: float = setting(0.5, group="optimisation", parse=float,
                               help="decision threshold on the AU probabilities (F1, accuracy)")
    seed: int = setting(0, group="optimisation", parse=int,
                        help="seed of the model initialisation, shuffling, augmentation, frame "
                             "budgets and validation subjects")
    # -- data budgets and the validation split -------------------------------------------
    max_train_frames: Optional[int] = setting(
        None, group="data", parse=parse_positive_int, shown_default="every frame",
        help="train on a seeded random subset of this many frames")
    max_test_frames: Optional[int] = setting(
        None, group="data", parse=parse_positive_int, shown_default="every frame",
        help="evaluate on this many evenly spaced test frames (and as many validation frames)")
    val_subjects: Optional[Union[int, float]] = setting(
        None, group="data", parse=parse_subjects, metavar="N",
        shown_default="none: the last epoch is reported",
        help="hold out N training-part subjects (or a fraction of them, e.g. 0.2) as a "
             "validation split that chooses the reported epoch (best.pt)")
    selection_metric: str = setting(
        "f1", group="optimisation", choices=list_selection_metrics,
        help=lambda: ("the validation metric whose best epoch is reported (with "
                      "--val-subjects). " + _choices_help(list_selection_metrics(), selection_metric)))
    # -- runtime ---------------------------------------------------------------------------
    device: str = setting("auto", group="runtime",
                          help="auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    amp: str = setting("none", group="runtime", choices=AMP_MODES,
                       help="autocast dtype (fp16: CUDA only)")
    channels_last: bool = setting(False, group="runtime",
                                  help="channels_last memory format (CUDA only)")
    compile: bool = setting(False, group="runtime", help="wrap the model in torch.compile")
    workers: Optional[int] = setting(None, group="runtime", parse=parse_non_negative_int,
                                     shown_default="min(2, cpus)", help="DataLoader workers")
    drop_last: bool = setting(
        True, group="runtime", help="drop the last, incomplete batch of every epoch",
        flag_help="also train on the last, smaller batch of every epoch (not a one-frame "
                  "batch: BatchNorm cannot train on it)")
    checkpoint_every: int = setting(0, group="runtime", parse=parse_non_negative_int,
                                    help="also checkpoint every N steps inside an epoch "
                                         "(0: not by steps)")
    checkpoint_minutes: float = setting(
        5.0, group="runtime", parse=parse_minutes, metavar="M",
        help="also checkpoint inside an epoch every M minutes of training, so a killed run "
             "loses at most M minutes (0: not by time)")
    log_every: int = setting(1, group="runtime", parse=parse_non_negative_int,
                             help="a row of log.csv (and TensorBoard) every N steps (0: none)")
    curve_frames: int = setting(
        0, group="data", parse=parse_non_negative_int, shown_default="0: no curve",
        help="after every epoch, evaluate on this many evenly spaced test frames: the learning "
             "curve (curve_* columns of epochs.csv, curve.json); never used to choose the "
             "reported epoch, and training is bit for bit the same with or without it")
    branch_from: Optional[str] = setting(
        None, group="optimisation", metavar="CHECKPOINT", shown_default="a fresh start",
        help="start from another run's end-of-epoch checkpoint (its weights, optimiser state, "
             "data order, RNG and epoch count; e.g. <run>/epochs/epoch-02.pt) and go on with "
             "this run's learning-rate schedule (--lr, --lr-scheduler, --lr-step, --lr-gamma and "
             "--epochs may differ, nothing else): a branch at epoch e trains exactly as a fresh "
             "run of this schedule when both schedules agree on the first e epochs")
    keep_epoch_checkpoints: bool = setting(
        False, group="runtime",
        help="keep the checkpoint of every epoch as <output>/epochs/epoch-NN.pt (for a learning "
             "curve afterwards: python -m mgrr_pyg.train.curve <output>)")
    progress: bool = setting(True, group="runtime", help="progress bars",
                             flag_help="no progress bars")
    tensorboard: bool = setting(True, group="runtime", help="TensorBoard logs in <output>/tensorboard",
                                flag_help="no TensorBoard logs")
    output: Optional[str] = setting(
        None, group="runtime", shown_default="runs/<dataset>-fold<f>-<preset>[-<ablation>]-seed<s>",
        help="output folder (checkpoints, logs, results)")
    resume: bool = setting(False, group="runtime",
                           help="resume from <output>/last.pt, an error if there is none (a run "
                                "with the same configuration resumes automatically)")
    overwrite: bool = setting(False, group="runtime",
                              help="start afresh: delete the checkpoints (last.pt, best.pt) and "
                                   "logs an earlier run left in --output")
    init_from: Optional[str] = setting(
        None, group="model", metavar="CHECKPOINT", shown_default="the preset's initialisation",
        help="checkpoint of another AU set to initialise the model from (DISFA from BP4D); "
             "{fold} in the path is replaced by the run's fold, e.g. "
             "runs/bp4d/fold{fold}/last.pt with run_folds.py")
    init_adjacency: str = setting(
        "prior", group="model", choices=INIT_ADJACENCY,
        help="with --init-from: where the region adjacencies A start. prior: as without "
             "--init-from, the training fold's co-occurrence prior (Eq. 1-2); checkpoint: the "
             "checkpoint's learned A, remapped AU by AU (docs/protocol.md, DISFA from BP4D)")

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
        if self.branch_from and self.init_from:
            raise ValueError("branch_from (--branch-from) and init_from (--init-from): expected at "
                             "most one; a branch continues a run of this dataset, --init-from "
                             "starts one from another dataset's weights")
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
        optimizer_entry(self.optimizer)  # a ValueError listing the registered names
        scheduler_entry(self.lr_scheduler)
        selection_metric(self.selection_metric)
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
        cut = self.intensity_cut
        if isinstance(cut, bool) or not isinstance(cut, int) or not 1 <= cut <= 5:
            raise ValueError(f"intensity_cut: expected an integer intensity 1-5, found {cut!r}")
        if self.dataset != "DISFA" and cut != DISFA_THRESHOLD:
            raise ValueError(
                f"intensity_cut (--intensity-cut): {cut} given, but only DISFA's labels are "
                f"intensities (0-5); {self.dataset}'s are coded occurrence (0 / 1): leave it "
                f"at {DISFA_THRESHOLD}"
            )
        if self.init_adjacency not in INIT_ADJACENCY:
            raise ValueError(f"init_adjacency: expected one of {INIT_ADJACENCY}, found "
                             f"{self.init_adjacency!r}")
        if self.init_adjacency != "prior" and not self.init_from:
            raise ValueError(
                f"init_adjacency (--init-adjacency): {self.init_adjacency!r} takes A from the "
                "--init-from checkpoint, and no --init-from is given"
            )
        if self.val_subjects is not None:
            v = self.val_subjects
            ok = (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v < 1)
            if not ok:
                raise ValueError(
                    "val_subjects: expected a number of subjects (integer >= 1) or a "
                    f"fraction in (0, 1), found {v!r}"
                )
        for name in ("checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected an integer >= 0, found {value!r}")
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
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

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

    @classmethod
    def complete_dict(cls, data: dict) -> dict:
        """``data`` (a stored :meth:`to_dict`, possibly of an older version) with every
        field it lacks set to its default: a field added later defaults to what the code
        did before it existed, so this is the configuration the older run ran. Keys that
        are not fields stay, for the caller to report."""
        defaults = {f.name: plain(f.default_factory() if f.default_factory is not dataclasses.MISSING
                                  else f.default) for f in fields(cls)}
        completed = {**defaults, **data}
        if "init_adjacency" not in data and data.get("init_from"):
            # before --init-adjacency existed, --init-from copied the checkpoint's A
            completed["init_adjacency"] = "checkpoint"
        return completed

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def field_help(f: dataclasses.Field) -> str:
    """The help of a :class:`TrainConfig` field (:func:`setting`)."""
    text = f.metadata["help"]
    return text() if callable(text) else text


def _document_fields(cls):
    """Append the ``Args`` section of ``cls``'s docstring, one entry per field, from the
    :func:`setting` declarations (so every field is documented, once)."""
    lines = ["", "    Args:"]
    for f in fields(cls):
        meta = f.metadata
        if f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = repr(f.default)
        if meta.get("shown_default") and f.default is None:
            default = f"``None``: {meta['shown_default']}"
        else:
            default = f"``{default}``"
        entry = f"{f.name} ({f.type}): {field_help(f)}. (default: {default})"
        lines.append(textwrap.fill(entry, width=92, initial_indent=" " * 8,
                                   subsequent_indent=" " * 12, break_on_hyphens=False))
    cls.__doc__ = cls.__doc__.rstrip() + "\n" + "\n".join(lines) + "\n"
    return cls


_document_fields(TrainConfig)


def __getattr__(name: str):
    if name == "OPTIMIZERS":  # the tuple of names before the registry (mgrr_pyg.train.optim)
        warnings.warn("mgrr_pyg.train.config.OPTIMIZERS is deprecated; use "
                      "mgrr_pyg.train.optim.list_optimizers()", DeprecationWarning, stacklevel=2)
        return tuple(list_optimizers())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def config_differences(a: dict, b: dict, ignore=RESUME_FREE_KEYS) -> list[str]:
    """Deprecated: use :func:`mgrr_pyg.utils.records.config_differences`, passing
    ``ignore=RESUME_FREE_KEYS`` for the keys this name skipped by default."""
    warnings.warn("mgrr_pyg.train.config.config_differences is deprecated; use "
                  "mgrr_pyg.utils.records.config_differences(a, b, ignore=RESUME_FREE_KEYS)",
                  DeprecationWarning, stacklevel=2)
    return records.config_differences(a, b, ignore)


__all__ = ["ABLATIONS", "ABLATION_FIELDS", "AMP_MODES", "GROUPS", "RESUME_FREE_KEYS", "TrainConfig",
           "default_workers", "field_help", "setting"]

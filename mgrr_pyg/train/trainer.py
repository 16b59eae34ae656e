"""The training loop: the optimiser and learning-rate schedule the config names, the
validation choice of the reported epoch, checkpoints, resume, DDP, AMP.

:class:`Trainer` is generic: ``model(images)`` returns an object with
``.probs [B, n]`` (and ``.landmarks [B, 49, 2]`` if it predicts landmarks; the
MGRR-Net output also has ``.local_logits`` / ``.integrated_logits``), ``loss_fn(out,
labels, label_mask, landmarks, interocular)`` returns a dict with a ``"total"``
tensor (:class:`~mgrr_pyg.model.MGRRLoss`), and a dataset item is a dict with
``image``, ``labels``, ``label_mask``, ``landmarks``, ``interocular`` (the contract of
:class:`~mgrr_pyg.data.PreparedListDataset`). Building the model and the data of one
fold from a :class:`~mgrr_pyg.train.config.TrainConfig` is
:func:`mgrr_pyg.train.pipeline.run_training`.

Set-up is one method per concern, called in this order by ``__init__``: the model on
the device (``_setup_model``: SyncBatchNorm, memory format), DDP (``_setup_distributed``),
``torch.compile`` (``_setup_compile``), the optimiser and the learning-rate schedule,
built by name from the config (``_setup_optimizer``, ``_setup_lr_scheduler``:
:mod:`mgrr_pyg.train.optim`), the fp16 loss scaler, the seeded sampler and loader
(``_setup_data``), the run's progress that checkpoints store (``_setup_run_state``) and
the logs. With a validation split the reported epoch is the best one on
``config.selection_metric`` (:mod:`mgrr_pyg.train.selection`).

Determinism and resume: the shuffling of epoch ``e`` is a seeded permutation
(:class:`~mgrr_pyg.train.distributed.EpochSampler`), augmentation is seeded per sample
by the dataset (``dataset.set_epoch(e)``), and the checkpoint stores the RNG states,
so a run killed at any moment and resumed from ``last.pt`` ends with the same weights
as an uninterrupted run (checkpoints at every epoch end, and inside an epoch, with the
sampler position, every ``checkpoint_minutes`` of training and every
``checkpoint_every`` steps). A resume says where it continues from; the checkpoint
carries the run time so far, so the reported time covers every segment of the run.
"""
from __future__ import annotations

import contextlib
import gc
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from mgrr_pyg.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_config_dict,
    restore_training_state,
    save_checkpoint,
    unwrap_model,
)
from mgrr_pyg.train.config import BRANCH_FREE_KEYS, RESUME_FREE_KEYS, TrainConfig
from mgrr_pyg.train.distributed import (
    DistContext,
    EpochSampler,
    barrier,
    context_from_process_group,
    epoch_seed,
    gather_by_position,
    resolve_device,
    shard_positions,
)
from mgrr_pyg.train.logging import CSVLogger, TensorBoardLogger, console, main_process_only, progress_bar
from mgrr_pyg.train.metrics import (
    MISSING_LABEL,
    AUMetrics,
    evaluate_predictions,
    landmark_metrics,
)
from mgrr_pyg.train.optim import build_optimizer, build_scheduler
from mgrr_pyg.train.selection import list_selection_metrics, selection_metric
from mgrr_pyg.utils.records import config_differences

LAST = "last.pt"
BEST = "best.pt"
EPOCHS_DIR = "epochs"  # --keep-epoch-checkpoints: <output>/epochs/epoch-NN.pt


def epoch_checkpoint_name(epoch: int) -> str:
    """The file name of the kept checkpoint of ``epoch`` (completed epochs, from 1)."""
    return f"epoch-{int(epoch):02d}.pt"


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12.3 min"`` or ``"2 h 05 min"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"


def resume_hint(last: Path) -> str:
    """What to do about an output folder whose ``last.pt`` cannot be resumed."""
    return (f"the run would resume from it: rerun with --overwrite to start afresh in "
            f"{last.parent} (deleting last.pt, best.pt and the logs there), delete {last}, or "
            "choose another --output folder")


def check_resume_config(state: dict, config: TrainConfig, path, branch: bool = False) -> None:
    """Raise :class:`CheckpointError` listing the training settings that differ between
    the run that wrote ``state`` and ``config`` (up to
    :data:`~mgrr_pyg.train.config.RESUME_FREE_KEYS`). A setting the checkpoint's
    version did not have yet counts as its default (:meth:`TrainConfig.complete_dict`),
    which is what that version ran."""
    written = state.get("train_config") or {}
    if written:
        written = TrainConfig.complete_dict(written)
    diffs = config_differences(written, config.to_dict(),
                               ignore=BRANCH_FREE_KEYS if branch else RESUME_FREE_KEYS)
    if diffs and branch:
        raise CheckpointError(
            f"{path}: cannot branch from it (--branch-from): a branch may change only the "
            "learning-rate schedule (--lr, --lr-scheduler, --lr-step, --lr-gamma, --epochs); "
            "keys that differ (checkpoint != this run):\n  " + "\n  ".join(diffs))
    if diffs:
        raise CheckpointError(
            f"{path}: cannot resume, the checkpoint was written by a run with another "
            "training configuration; keys that differ (checkpoint != this run):\n  "
            + "\n  ".join(diffs)
            + "\nUse another --output folder, or --overwrite to start afresh there."
        )


def check_resumable(config: TrainConfig, output_dir) -> Optional[dict]:
    """What :meth:`Trainer.maybe_resume` will do in ``output_dir``, checked up front (a
    run calls it before generating or preparing any data): ``None`` for a fresh start,
    else the checkpoint it will resume from.

    Raises:
        FileNotFoundError: ``config.resume`` and no ``last.pt``.
        CheckpointError: an unreadable ``last.pt`` (the message says what the file is
            and names ``--overwrite``) or one written with other training settings.
    """
    last = Path(output_dir) / LAST
    if config.overwrite:
        return None
    if not last.exists():
        if config.resume:
            raise FileNotFoundError(
                f"resume: no checkpoint {last} to resume from; run without --resume to start"
            )
        return None
    state = load_checkpoint(last, map_location="cpu", hint=resume_hint(last))
    check_resume_config(state, config, last)
    return state


@dataclass
class EvalOutput:
    """Predictions of every frame of an evaluated dataset, in dataset order.

    ``labels`` holds 9 where a label is not coded; ``metrics`` are the per-AU metrics,
    ``landmarks`` the landmark error summary (``None`` if the model predicts none)."""

    probs: np.ndarray  # [N, n]
    labels: np.ndarray  # [N, n] in {0, 1, 9}
    landmarks_pred: Optional[np.ndarray]  # [N, 49, 2]
    landmarks_true: Optional[np.ndarray]
    interocular: Optional[np.ndarray]  # [N]
    metrics: AUMetrics
    landmarks: Optional[dict]


def set_dataset_epoch(dataset, epoch: int) -> None:
    """Call ``set_epoch`` on the dataset, looking through ``Subset`` wrappers."""
    while dataset is not None:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
            return
        dataset = getattr(dataset, "dataset", None)


def _to_device(batch: dict, device: torch.device, non_blocking: bool) -> dict:
    return {k: (v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v)
            for k, v in batch.items()}


def _default_context(config: TrainConfig) -> DistContext:
    """The initialised process group (torchrun), if any, else one process; on
    ``config.device`` (``cuda`` is this process's ``LOCAL_RANK`` GPU)."""
    import os

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return context_from_process_group(resolve_device(config.device, local_rank))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python ``random`` (call before building the model)."""
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    """Train and evaluate one model on one fold.

    Args:
        model (torch.nn.Module): Returns an output with ``.probs`` (and ``.landmarks``).
        loss_fn (callable): ``loss_fn(out, labels, label_mask, landmarks, interocular)``
            -> dict with ``"total"`` (and any other terms, which are logged).
        train_dataset: Items as in the data contract; may be a ``Subset``.
        config (TrainConfig): Optimiser, learning-rate schedule, selection metric and
            runtime switches.
        val_dataset (optional): Validation split (training-part subjects) that picks
            the reported epoch (``best.pt``, the best on ``config.selection_metric``);
            evaluated after every epoch.
        output_dir (str or Path, optional): Where checkpoints and logs go
            (default ``config.output``; ``None``: nothing is written).
        aus (sequence of int, optional): AU numbers of the label columns
            (default ``model.config.aus`` or ``0..n-1``).
        metadata (dict, optional): Stored in every checkpoint.
        model_name (str, optional): Preset name stored in checkpoints.
        callbacks (sequence): Objects with optional ``on_step_end(trainer, epoch,
            step)`` / ``on_epoch_end(trainer, epoch)`` methods (``epoch`` 0-based
            for steps, the number of completed epochs at epoch ends).
        dist_ctx (DistContext, optional): Default: the initialised process group
            (torchrun), if any, else one process.
        log (callable, optional): Where console messages go (the resume message) on
            rank 0. (default: :func:`print`)
        clock (callable, optional): Seconds on a monotonic clock, for time-based
            checkpoints and the run time. (default: :func:`time.perf_counter`)
        started (float, optional): ``clock()`` when this segment of the run began
            (the pipeline passes its start, before the data work). (default: now)
    """

    def __init__(self, model: torch.nn.Module, loss_fn, train_dataset, config: TrainConfig, *,
                 val_dataset=None, curve_dataset=None, output_dir=None,
                 aus: Optional[Sequence[int]] = None,
                 metadata: Optional[dict] = None, model_name: Optional[str] = None,
                 callbacks: Sequence[Any] = (), dist_ctx: Optional[DistContext] = None,
                 log: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.perf_counter,
                 started: Optional[float] = None) -> None:
        self.config = config.validate()
        self.clock = clock
        self._segment_started = clock() if started is None else started
        self._last_checkpoint_time = self._segment_started
        self.ctx = dist_ctx if dist_ctx is not None else _default_context(config)
        self.device = self.ctx.device
        self.pin_memory = self.device.type == "cuda"
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.curve_dataset = curve_dataset  # learning-curve frames: looked at, never chosen on
        self.output_dir = Path(output_dir if output_dir is not None else config.output) \
            if (output_dir is not None or config.output) else None
        self.metadata = metadata or {}
        self.model_name = model_name
        self.callbacks = list(callbacks)
        self.log = main_process_only(log or console, self.ctx.is_main)
        if aus is None:
            aus = getattr(getattr(model, "config", None), "aus", None)
        self.aus = tuple(int(a) for a in aus) if aus is not None else None
        self._check_setup(train_dataset)  # before anything is moved or built

        # One method per concern, in this order (the model's parameters, and so the
        # optimiser's, are those of the module on the device).
        self.model = self._setup_model(model)  # the plain module: checkpoints, evaluation
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, torch.nn.Module) else loss_fn
        self.train_model = self._setup_distributed(self.model)
        self.train_model, self.eval_model = self._setup_compile(self.train_model)
        self.optimizer = self._setup_optimizer()
        self.scheduler = self._setup_lr_scheduler()
        self.scaler = self._setup_grad_scaler()
        self.sampler, self.train_loader = self._setup_data(train_dataset)
        self._setup_run_state()
        self._setup_logs()

    # -- set-up ----------------------------------------------------------------------------
    def _check_setup(self, train_dataset) -> None:
        """The settings that cannot work with this device or dataset."""
        cfg = self.config
        if cfg.amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp: 'fp16' autocast needs a CUDA device; use 'bf16' on CPU or 'none'")
        n_train, world = len(train_dataset), self.ctx.world_size
        if cfg.drop_last and n_train < cfg.batch_size * world:
            raise ValueError(
                f"train_dataset: {n_train} frames, fewer than one batch ({cfg.batch_size} per "
                f"process x {world} processes); lower --batch-size or use more frames"
            )

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on the device: SyncBatchNorm under DDP on CUDA, the
        ``channels_last`` memory format if asked (CUDA only)."""
        is_cuda = self.device.type == "cuda"
        if self.ctx.distributed and is_cuda:
            # BatchNorm statistics over the global batch; on CPU (gloo) each rank keeps
            # its own statistics, which is what the DDP test reproduces.
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        if self.config.channels_last and is_cuda:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _setup_distributed(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module that trains: ``model`` in DistributedDataParallel under DDP."""
        if not self.ctx.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _setup_compile(self, train_model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
        """``(train_model, eval_model)``, compiled with ``config.compile``. Evaluation
        runs the compiled module too, except under DDP: each rank evaluates its own shard
        with the plain module (a DDP forward expects a backward to follow)."""
        if not self.config.compile:
            return train_model, self.model
        compiled = torch.compile(train_model)
        return compiled, (self.model if self.ctx.distributed else compiled)

    def _setup_optimizer(self) -> torch.optim.Optimizer:
        """``config.optimizer`` by name (:mod:`mgrr_pyg.train.optim`) over the trainable
        parameters."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        return build_optimizer(params, self.config)

    def _setup_lr_scheduler(self):
        """``config.lr_scheduler`` by name (:mod:`mgrr_pyg.train.optim`), stepped after every
        epoch."""
        return build_scheduler(self.optimizer, self.config)

    def _setup_grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 autocast on CUDA (a no-op otherwise)."""
        return torch.amp.GradScaler("cuda", enabled=(self.config.amp == "fp16"
                                                     and self.device.type == "cuda"))

    def _setup_data(self, train_dataset) -> tuple[EpochSampler, DataLoader]:
        """The seeded per-epoch shuffling of this rank's share and its loader."""
        cfg = self.config
        sampler = EpochSampler(len(train_dataset), cfg.batch_size, seed=cfg.seed,
                               rank=self.ctx.rank, world_size=self.ctx.world_size,
                               shuffle=True, drop_last=cfg.drop_last)
        self._loader_generator = torch.Generator()  # seeded per epoch in _train_epoch
        # Without config.drop_last the last batch may hold one frame, which BatchNorm cannot
        # train on (it needs >= 2 samples per batch): that one frame is dropped each epoch.
        # Only that tail is ever ragged and a mid-epoch resume skips whole batches, so the
        # resumed epoch drops the same frame. (One frame per process in all is kept: the
        # model then says why it cannot train, rather than an epoch of no steps.)
        loader = DataLoader(
            train_dataset, batch_size=cfg.batch_size, sampler=sampler,
            num_workers=cfg.num_workers, pin_memory=self.pin_memory,
            drop_last=len(sampler) % cfg.batch_size == 1 and len(sampler) > 1,
            generator=self._loader_generator, persistent_workers=False,
        )
        return sampler, loader

    def _setup_run_state(self) -> None:
        """The progress of the run: what a checkpoint stores and :meth:`resume` restores."""
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # optimiser steps done in the current epoch
        self.global_step = 0
        self.history: list[dict] = []
        self.best: Optional[dict] = None  # {"epoch": e, "val_<selection_metric>": score}
        self._epoch_sums: dict[str, float] = {}
        self._epoch_count = 0
        self._epoch_seconds_before = 0.0  # of the current epoch, in earlier segments
        self._epoch_started = self._segment_started
        self.resumed_from: Optional[str] = None
        self.seconds_before = 0.0  # run time of the earlier segments (from the checkpoint)
        self.segments = 1  # this one and the earlier ones

    def _setup_logs(self) -> None:
        """``log.csv`` (steps) and ``epochs.csv`` in the output folder, on rank 0;
        TensorBoard is opened by :meth:`fit`."""
        self.csv_log = self.epoch_log = None
        self.tb = None
        if self.output_dir is not None and self.ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.csv_log = CSVLogger(self.output_dir / "log.csv")
            self.epoch_log = CSVLogger(self.output_dir / "epochs.csv")

    # -- paths ---------------------------------------------------------------------------
    @property
    def last_path(self) -> Optional[Path]:
        return self.output_dir / LAST if self.output_dir is not None else None

    @property
    def best_path(self) -> Optional[Path]:
        return self.output_dir / BEST if self.output_dir is not None else None

    # -- checkpoints ---------------------------------------------------------------------
    @property
    def elapsed_seconds(self) -> float:
        """Run time so far: the earlier segments' (from the checkpoint) plus this one's."""
        return self.seconds_before + (self.clock() - self._segment_started)

    def _sampler_state(self) -> dict:
        epoch_seconds = self._epoch_seconds_before + (self.clock() - self._epoch_started) \
            if self.step_in_epoch else 0.0
        return {"epoch": self.epoch, "start_batch": self.step_in_epoch,
                "seed": self.config.seed, "world_size": self.ctx.world_size,
                "epoch_sums": dict(self._epoch_sums), "epoch_count": self._epoch_count,
                "epoch_seconds": epoch_seconds}

    def save(self, path) -> Optional[Path]:
        """Write a checkpoint of the current state (rank 0 only; others wait)."""
        written = None
        if self.ctx.is_main:
            written = save_checkpoint(
                path, model=self.model, epoch=self.epoch, step_in_epoch=self.step_in_epoch,
                global_step=self.global_step, optimizer=self.optimizer, scheduler=self.scheduler,
                scaler=self.scaler, model_name=self.model_name,
                train_config=self.config.to_dict(), metadata=self.metadata,
                sampler_state=self._sampler_state(), history=self.history, best=self.best,
                timing={"seconds": self.elapsed_seconds, "segments": self.segments},
            )
        barrier(self.ctx)
        self._last_checkpoint_time = self.clock()
        return written

    def resume(self, path) -> None:
        """Continue from a checkpoint written by this trainer (same training config up
        to :data:`~mgrr_pyg.train.config.RESUME_FREE_KEYS`, same model)."""
        path = Path(path)
        state = load_checkpoint(path, map_location="cpu", hint=resume_hint(path))
        check_resume_config(state, self.config, path)
        sampler = state.get("sampler") or {}
        if sampler.get("world_size", self.ctx.world_size) != self.ctx.world_size and state["step_in_epoch"]:
            raise CheckpointError(
                f"{path}: written mid-epoch by {sampler.get('world_size')} processes; resume it "
                f"with the same number of processes (found {self.ctx.world_size})"
            )
        restore_training_state(state, self.model, self.optimizer, self.scheduler, self.scaler,
                               path=path)
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history") or [])
        self.best = state.get("best")
        self._epoch_sums = dict(sampler.get("epoch_sums") or {})
        self._epoch_count = int(sampler.get("epoch_count") or 0)
        self._epoch_seconds_before = float(sampler.get("epoch_seconds") or 0.0)
        timing = state.get("timing") or {}
        self.seconds_before = float(timing.get("seconds") or 0.0)
        self.segments = int(timing.get("segments") or 1) + 1
        self.resumed_from = str(path)
        if self.csv_log is not None:
            self.csv_log.truncate_after("global_step", self.global_step)
            self.epoch_log.truncate_after("epoch", self.epoch)

    def branch(self, path) -> None:
        """Start this run from another run's end-of-epoch checkpoint (``--branch-from``): its
        weights, optimiser state (momentum), data order, RNG and epoch count, with this run's
        learning-rate schedule replayed up to that epoch. A branch at epoch ``e`` is the
        fresh run of this schedule, bit for bit, when the two schedules agree on the first
        ``e`` epochs (the momentum buffers hold no lr). The parent's logs up to the branch
        point are copied into this run's, so its curve starts at epoch 1."""
        path = Path(path)
        state = load_checkpoint(path, map_location="cpu", hint=resume_hint(path))
        if int(state.get("step_in_epoch") or 0):
            raise CheckpointError(
                f"{path}: written inside epoch {int(state['epoch']) + 1} (step "
                f"{state['step_in_epoch']}); --branch-from needs an end-of-epoch checkpoint, "
                f"e.g. <run>/epochs/epoch-NN.pt of a run with --keep-epoch-checkpoints")
        check_resume_config(state, self.config, path, branch=True)
        restore_training_state(state, self.model, self.optimizer, None, self.scaler, path=path)
        for group in self.optimizer.param_groups:  # this run's schedule, replayed
            group["lr"] = group["initial_lr"] = self.config.lr
        self.scheduler = self._setup_lr_scheduler()
        self.epoch = int(state["epoch"])
        with warnings.catch_warnings():
            # replaying the schedule before this run's first optimiser step is the point
            # here; torch would warn that the first lr of the schedule gets skipped
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            for _ in range(self.epoch):
                self.scheduler.step()
        self.step_in_epoch = 0
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history") or [])
        if self.history:  # the lr after the branch epoch is this run's
            self.history[-1] = {**self.history[-1], "lr": self.optimizer.param_groups[0]["lr"]}
        self.best = state.get("best")
        timing = state.get("timing") or {}
        self.seconds_before = float(timing.get("seconds") or 0.0)
        self.segments = int(timing.get("segments") or 1) + 1
        self.resumed_from = f"{path} (branch)"
        parent = path.parent.parent if path.parent.name == EPOCHS_DIR else path.parent
        if self.csv_log is not None:
            self.csv_log.truncate_after("global_step", 0)  # rows of a killed earlier attempt
            self.epoch_log.truncate_after("epoch", 0)
            for mine, name, key, upto in ((self.csv_log, "log.csv", "global_step", self.global_step),
                                          (self.epoch_log, "epochs.csv", "epoch", self.epoch)):
                rows = [r for r in CSVLogger(parent / name).read()
                        if r.get(key) not in (None, "") and float(r[key]) <= upto]
                if name == "epochs.csv" and rows:
                    rows[-1]["lr"] = self.history[-1]["lr"] if self.history else rows[-1].get("lr")
                for row in rows:
                    mine.log(row)

    def maybe_resume(self) -> bool:
        """Resume from ``<output>/last.pt`` if it exists (``--resume`` or automatic);
        ``--overwrite`` ignores it. Returns whether a checkpoint was loaded."""
        last = self.last_path
        if last is None:
            if self.config.resume:
                raise ValueError("resume: asked to resume but no output folder is set (--output)")
            return False
        if self.config.overwrite:
            if self.ctx.is_main:
                deleted = [name for name in (LAST, BEST, "log.csv", "epochs.csv")
                           if (self.output_dir / name).exists()]
                for name in deleted:
                    (self.output_dir / name).unlink()
                if deleted:
                    self.log(f"--overwrite: deleted {', '.join(deleted)} in {self.output_dir}; "
                             "starting afresh")
            barrier(self.ctx)
            return False
        if not last.exists():
            if self.config.resume:
                raise FileNotFoundError(
                    f"resume: no checkpoint {last} to resume from; run without --resume to start"
                )
            if self.config.branch_from:
                self.branch(self.config.branch_from)
                self.log(f"branched from {self.config.branch_from} at the end of epoch "
                         f"{self.epoch} (global step {self.global_step}); lr "
                         f"{self.optimizer.param_groups[0]['lr']:.3g} from here "
                         f"({self.config.lr_scheduler} schedule of this run)")
                return True
            return False
        self.resume(last)
        self.log(self.resume_message())
        return True

    def resume_message(self) -> str:
        """Where a resumed run continues from: epoch, step within it, file, time so far."""
        epochs = self.config.epochs
        if self.step_in_epoch:
            where = (f"epoch {self.epoch + 1}/{epochs} at step {self.step_in_epoch}/"
                     f"{self.sampler.batches_per_epoch} of that epoch")
        elif self.epoch >= epochs:
            where = f"the end: all {epochs} epochs are done, nothing left to train"
        else:
            where = f"the start of epoch {self.epoch + 1}/{epochs}"
        earlier = self.segments - 1
        return (f"resuming from {self.resumed_from} at {where} (global step {self.global_step}); "
                f"{format_duration(self.seconds_before)} of run time so far in {earlier} earlier "
                f"segment{'s' if earlier != 1 else ''}")

    # -- training ------------------------------------------------------------------------
    def autocast(self):
        """The autocast context of ``--amp`` (nothing for ``none``): what the training step
        and the evaluation run the model under."""
        if self.config.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.amp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def model_images(self, batch: dict) -> torch.Tensor:
        """The batch's images as the model takes them (channels-last on CUDA when set)."""
        images = batch["image"]
        if self.config.channels_last and self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def loss_terms(self, out, batch: dict) -> dict:
        """The loss terms of the model output ``out`` for ``batch`` (a dict of tensors with
        ``total``), checked to be one."""
        terms = self.loss_fn(out, batch["labels"], batch["label_mask"], batch["landmarks"],
                             batch["interocular"])
        if not isinstance(terms, dict) or "total" not in terms:
            raise TypeError(
                "loss_fn: expected a dict with a 'total' tensor, found "
                f"{type(terms).__name__}" + (f" with keys {sorted(terms)}" if isinstance(terms, dict) else "")
            )
        return terms

    def train_step(self, batch: dict) -> dict:
        """One optimiser step on one (per-rank) batch; returns the loss terms as floats."""
        batch = _to_device(batch, self.device, self.pin_memory)
        with self.autocast():
            out = self.train_model(self.model_images(batch))
            terms = self.loss_terms(out, batch)
        total = terms["total"]
        if not torch.isfinite(total.detach()).all():
            values = {k: float(v.detach().float()) for k, v in terms.items() if torch.is_tensor(v)}
            raise FloatingPointError(
                f"non-finite loss at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}: {values} "
                "(lower --lr, or check the labels / landmarks of this batch)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach().float()) for k, v in terms.items() if torch.is_tensor(v)}

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def _mid_epoch_checkpoint_due(self) -> bool:
        """Every ``checkpoint_every`` steps, and once ``checkpoint_minutes`` have passed
        since the last checkpoint (rank 0's clock decides for every rank)."""
        cfg = self.config
        if self.last_path is None:
            return False
        if cfg.checkpoint_every and self.step_in_epoch % cfg.checkpoint_every == 0:
            return True
        if not cfg.checkpoint_minutes:
            return False
        due = self.clock() - self._last_checkpoint_time >= 60.0 * cfg.checkpoint_minutes
        if self.ctx.distributed:  # every rank must take part in save()'s barrier, or none
            flag = torch.tensor([int(due)], device=self.device)
            dist.broadcast(flag, src=0)
            due = bool(flag.item())
        return due

    def _train_epoch(self, epoch: int) -> None:
        cfg = self.config
        self.train_model.train()
        self.sampler.set_epoch(epoch, self.step_in_epoch)
        set_dataset_epoch(self.train_dataset, epoch)
        self._loader_generator.manual_seed(epoch_seed(cfg.seed, epoch))
        if self.step_in_epoch == 0:
            self._epoch_sums, self._epoch_count = {}, 0
            self._epoch_seconds_before = 0.0
        self._epoch_started = self.clock()
        total_steps = self.sampler.batches_per_epoch
        bar = progress_bar(total_steps, f"epoch {epoch + 1}/{cfg.epochs}",
                           enabled=cfg.progress and self.ctx.is_main, initial=self.step_in_epoch)
        tick = time.perf_counter()
        try:
            for batch in self.train_loader:
                n_images = int(batch["image"].shape[0]) * self.ctx.world_size
                terms = self.train_step(batch)
                self.step_in_epoch += 1
                self.global_step += 1
                now = time.perf_counter()
                rate = n_images / max(now - tick, 1e-9)
                tick = now
                for k, v in terms.items():
                    self._epoch_sums[k] = self._epoch_sums.get(k, 0.0) + v
                self._epoch_count += 1
                lr = self.optimizer.param_groups[0]["lr"]
                bar.update(1)
                bar.set_postfix(loss=f"{terms['total']:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
                if self.ctx.is_main and cfg.log_every and self.global_step % cfg.log_every == 0:
                    row = {"epoch": epoch + 1, "step": self.step_in_epoch, "global_step": self.global_step,
                           **{f"loss_{k}": v for k, v in terms.items()}, "lr": lr, "img_per_s": rate}
                    if self.csv_log is not None:
                        self.csv_log.log(row)
                    if self.tb is not None:
                        self.tb.log({**{f"loss/{k}": v for k, v in terms.items()}, "lr": lr,
                                     "images_per_s": rate}, self.global_step, "train/")
                if self.step_in_epoch < total_steps and self._mid_epoch_checkpoint_due():
                    self.save(self.last_path)
                self._call("on_step_end", epoch, self.step_in_epoch)
        finally:
            bar.close()

    def fit(self) -> list[dict]:
        """Train to ``config.epochs`` (resuming from ``<output>/last.pt`` if present) and
        return the per-epoch history."""
        cfg = self.config
        if getattr(self, "_closed", False):
            raise RuntimeError("fit: this trainer was closed (its DistributedDataParallel wrapper released); "
                               "make a new Trainer to train again")
        if not self.maybe_resume() and self.csv_log is not None:
            # a fresh start: drop rows a killed earlier attempt left in the logs
            self.csv_log.truncate_after("global_step", 0)
            self.epoch_log.truncate_after("epoch", 0)
        if self.output_dir is not None and self.ctx.is_main and self.tb is None:
            self.tb = TensorBoardLogger(self.output_dir / "tensorboard", enabled=cfg.tensorboard)
        self._last_checkpoint_time = self.clock()  # the data work before fit() is not training
        try:
            while self.epoch < cfg.epochs:
                epoch = self.epoch
                self._train_epoch(epoch)
                self.scheduler.step()
                self.epoch, self.step_in_epoch = epoch + 1, 0
                count = max(self._epoch_count, 1)
                record = {"epoch": self.epoch, **{f"train_{k}": v / count for k, v in self._epoch_sums.items()},
                          "lr": self.optimizer.param_groups[0]["lr"],
                          "seconds": self._epoch_seconds_before + self.clock() - self._epoch_started}
                improved = False
                if self.val_dataset is not None:
                    val = self.evaluate(self.val_dataset, desc="validation")
                    scores = {name: selection_metric(name).compute(val)
                              for name in list_selection_metrics()}
                    record.update({f"val_{name}": score for name, score in scores.items()})
                    improved = self._choose_best(scores)
                if self.curve_dataset is not None:
                    record.update(self.curve_point())
                self.history.append(record)
                if self.epoch_log is not None:
                    self.epoch_log.log(record)
                if self.tb is not None:
                    self.tb.log(record, self.epoch, "epoch/")
                if self.last_path is not None:
                    self.save(self.last_path)
                    if self.ctx.is_main:
                        if improved:
                            shutil.copyfile(self.last_path, self.best_path)
                        if cfg.keep_epoch_checkpoints:
                            self._keep_epoch_checkpoint()
                    barrier(self.ctx)
                self._call("on_epoch_end", self.epoch)
        finally:
            if self.tb is not None:
                self.tb.close()
                self.tb = None
        return self.history

    def curve_point(self) -> dict:
        """The epoch's point of the learning curve: the metrics on ``curve_dataset`` (the
        ``config.curve_frames`` evenly spaced test frames) as ``curve_<metric>`` columns.
        Evaluated under a forked RNG (the evaluation loader draws its seed from the global
        generator), so a run with a curve trains bit for bit as one without."""
        with torch.random.fork_rng(devices=[]):
            ev = self.evaluate(self.curve_dataset, desc="curve")
        point = {"curve_f1": ev.metrics.f1_mean, "curve_accuracy": ev.metrics.accuracy_mean,
                 "curve_auc": ev.metrics.auc_mean}
        if ev.landmarks is not None:
            point["curve_landmark_error"] = ev.landmarks["mean_error"]
        return point

    def _keep_epoch_checkpoint(self) -> Path:
        """A copy of the end-of-epoch ``last.pt`` (and its digest) as
        ``<output>/epochs/epoch-NN.pt`` (``config.keep_epoch_checkpoints``), written through
        a temporary name so an interrupted copy never leaves a truncated epoch file."""
        folder = self.output_dir / EPOCHS_DIR
        folder.mkdir(exist_ok=True)
        target = folder / epoch_checkpoint_name(self.epoch)
        for source, dest in ((self.last_path, target),
                             (self.last_path.with_name(self.last_path.name + ".sha256"),
                              target.with_name(target.name + ".sha256"))):
            if source.exists():
                partial = dest.with_name(dest.name + ".partial")
                shutil.copyfile(source, partial)
                os.replace(partial, dest)
        return target

    def _choose_best(self, scores: dict) -> bool:
        """Whether this epoch's validation ``scores`` beat the best epoch so far on
        ``config.selection_metric`` (:mod:`mgrr_pyg.train.selection`); if so it becomes
        :attr:`best`."""
        metric = selection_metric(self.config.selection_metric)
        key = f"val_{metric.name}"
        if not metric.better(scores[metric.name], None if self.best is None else self.best.get(key)):
            return False
        self.best = {"epoch": self.epoch, key: scores[metric.name]}
        return True

    def load_best(self) -> Optional[int]:
        """Load the validation-chosen weights (``best.pt``); returns its epoch, or
        ``None`` when there is no validation split (the last epoch is reported)."""
        if self.val_dataset is None or self.best_path is None or not self.best_path.exists():
            return None
        state = load_checkpoint(self.best_path)
        unwrap_model(self.model).load_state_dict(state["model"])
        return int(state["epoch"])

    def close(self) -> None:
        """Release the DistributedDataParallel wrapper (and a compiled one around it): the
        process group then outlives every gradient reducer, so that
        :func:`~mgrr_pyg.train.distributed.shutdown` destroys it safely (see there). The
        plain module stays: :meth:`predict`, :meth:`evaluate` and :meth:`save` still work;
        :meth:`fit` does not. Idempotent; nothing to do without DDP."""
        if self.ctx.distributed and self.train_model is not self.model:
            self.train_model = self.eval_model = self.model
            self._closed = True
            gc.collect()

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, dataset, desc: str = "evaluation") -> dict:
        """Probabilities (and landmarks) of every frame of ``dataset`` in dataset order.

        Under DDP each rank evaluates positions ``rank::world`` (no padding) and the
        results are gathered, so every frame is counted exactly once."""
        n = len(dataset)
        if self.ctx.distributed:
            # BatchNorm running statistics drift apart on CPU ranks (no SyncBatchNorm);
            # evaluate every shard with rank 0's buffers so the ranks agree.
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer.data, src=0)
        positions = shard_positions(n, self.ctx.rank, self.ctx.world_size)
        batch_size = self.config.eval_batch_size or self.config.batch_size
        loader = DataLoader(Subset(dataset, positions), batch_size=batch_size, shuffle=False,
                            num_workers=self.config.num_workers, pin_memory=self.pin_memory)
        was_training = self.model.training
        self.eval_model.eval()
        chunks: dict[str, list] = {"probs": [], "labels": [], "landmarks_pred": [],
                                   "landmarks_true": [], "interocular": []}
        bar = progress_bar(len(loader), desc, enabled=self.config.progress and self.ctx.is_main)
        try:
            for batch in loader:
                batch = _to_device(batch, self.device, self.pin_memory)
                with self.autocast():
                    out = self.eval_model(self.model_images(batch))
                chunks["probs"].append(out.probs.float().cpu().numpy())
                mask = batch["label_mask"].bool()
                labels = torch.where(mask, batch["labels"].round().long(),
                                     torch.full_like(mask, MISSING_LABEL, dtype=torch.long))
                chunks["labels"].append(labels.cpu().numpy())
                pred_landmarks = getattr(out, "landmarks", None)
                if pred_landmarks is not None and "landmarks" in batch:
                    chunks["landmarks_pred"].append(pred_landmarks.float().cpu().numpy())
                    chunks["landmarks_true"].append(batch["landmarks"].float().cpu().numpy())
                    chunks["interocular"].append(batch["interocular"].float().reshape(-1).cpu().numpy())
                bar.update(1)
        finally:
            bar.close()
            self.model.train(was_training)
            self.eval_model.train(was_training)
        arrays = {k: np.concatenate(v, 0) for k, v in chunks.items() if v}
        if not positions:  # this rank had no frame: empty arrays of the right width
            arrays = {}
        return gather_by_position(np.asarray(positions), arrays, n, self.ctx)

    def evaluate(self, dataset, desc: str = "evaluation") -> EvalOutput:
        """:meth:`predict` then the per-AU and landmark metrics."""
        arrays = self.predict(dataset, desc)
        aus = self.aus if self.aus is not None else tuple(range(arrays["probs"].shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            metrics = evaluate_predictions(arrays["probs"], arrays["labels"], aus, self.config.threshold)
        lm = None
        if "landmarks_pred" in arrays:
            lm = landmark_metrics(arrays["landmarks_pred"], arrays["landmarks_true"], arrays["interocular"])
        return EvalOutput(arrays["probs"], arrays["labels"], arrays.get("landmarks_pred"),
                          arrays.get("landmarks_true"), arrays.get("interocular"), metrics, lm)


__all__ = ["BEST", "EPOCHS_DIR", "LAST", "EvalOutput", "epoch_checkpoint_name", "Trainer", "check_resumable", "format_duration", "resume_hint",
           "seed_everything", "set_dataset_epoch"]

"""One training run from a :class:`~mgrr_pyg.train.config.TrainConfig`: data, fold,
model, training, evaluation on the fold's test part, and the written results.

:func:`run_training` is what ``mgrr-train`` / ``examples/train_bp4d.py`` run:

0. every check that needs no data, before any data is generated or prepared: the
   options, the model configuration (preset, ablation, ``--set`` overrides: the model
   is built on the meta device), ``--init-from``, and the checkpoint in the output
   folder that the run would resume from;
1. the data: ``data_root`` raw (prepared into a cache folder) or prepared lists; with
   no ``data_root`` the synthetic dataset is generated (or reused) in the cache
   (``$MGRR_CACHE`` or ``~/.cache/mgrr_pyg``) and prepared there;
2. the fold (its mapping to parts is printed), an optional validation split of
   training-part subjects, optional frame budgets;
3. class weights and the co-occurrence prior from the *training* frames only;
4. the model (``create_model``), ``set_prior`` for ``prior_init="cooccurrence"``,
   ``--init-from`` a checkpoint of another AU set;
5. :class:`~mgrr_pyg.train.trainer.Trainer` (resumes from ``<output>/last.pt``);
6. evaluation of the test part with the last epoch's weights, or the epoch chosen on
   the validation split — the test part never chooses — and label-only baselines;
7. ``results.md`` / ``results.csv`` / ``results.json``, ``predictions_test.npz`` /
   ``.csv`` in the output folder (rank 0 only).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Subset

from mgrr_pyg.data import protocol
from mgrr_pyg.facs import AU_SETS
from mgrr_pyg.train.checkpoint import build_metadata
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.distributed import DistContext, barrier, init_distributed
from mgrr_pyg.train.metrics import (
    AUMetrics,
    best_baseline,
    label_only_baselines,
    results_tables,
    save_predictions,
)
from mgrr_pyg.train.report import RESULTS_FORMAT, RunRecord, describe_schedule, environment_parts, run_parts
from mgrr_pyg.train.trainer import Trainer, check_resumable, seed_everything
from mgrr_pyg.utils.environment import prepared_data_digest, run_environment
from mgrr_pyg.utils.io import atomic_save_text

Log = Callable[[str], None]


def _print(message: str) -> None:
    print(message, flush=True)


# -- data --------------------------------------------------------------------------------
def cache_dir(config: TrainConfig) -> Path:
    """``config.cache_dir``, else ``$MGRR_CACHE``, else ``~/.cache/mgrr_pyg``."""
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    if os.environ.get("MGRR_CACHE"):
        return Path(os.environ["MGRR_CACHE"]).expanduser()
    return Path.home() / ".cache" / "mgrr_pyg"


def synthetic_name(config: TrainConfig) -> str:
    """Cache folder name of a synthetic set: dataset, preset, seed and a digest of the
    generator's full configuration (sizes, rendering settings, generator version), so a
    package update that changes the generator never reuses data made by the old one."""
    from mgrr_pyg.data.synthetic import SynthConfig

    generator = SynthConfig.from_preset(config.synthetic_preset, config.dataset).to_dict()
    digest = hashlib.sha1(json.dumps(_jsonable(generator), sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.dataset}-{config.synthetic_preset}-seed{config.synthetic_seed}-{digest}"


def ensure_synthetic(config: TrainConfig, log: Log = _print) -> Path:
    """Generate the synthetic raw dataset into the cache, unless a finished copy is there."""
    from mgrr_pyg.data.synthetic import generate

    root = cache_dir(config) / "synthetic" / synthetic_name(config)
    marker = root.parent / f"{root.name}.complete.json"
    if marker.exists() and root.exists():
        log(f"synthetic {config.dataset} data: reusing {root}")
        return root
    log(f"synthetic {config.dataset} data: generating preset {config.synthetic_preset!r} "
        f"(seed {config.synthetic_seed}) into {root}")
    summary = generate(root, dataset=config.dataset, preset=config.synthetic_preset,
                       seed=config.synthetic_seed, workers=max(1, config.num_workers),
                       progress=config.progress)
    atomic_save_text(marker, json.dumps(_jsonable(summary), indent=2, sort_keys=True))
    return root


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def prepared_root(config: TrainConfig, log: Log = _print) -> tuple[Path, str]:
    """The folder of prepared lists for ``config`` (preparing raw data if needed) and a
    description of where the data came from."""
    from mgrr_pyg.data import detect_layout, prepare_dataset

    if config.data_root is None:
        raw = ensure_synthetic(config, log)
        out = Path(config.prepared_root) if config.prepared_root else \
            cache_dir(config) / "prepared" / synthetic_name(config)
        source = (f"synthetic {config.dataset}-layout data (preset {config.synthetic_preset!r}, "
                  f"seed {config.synthetic_seed})")
    else:
        raw = Path(config.data_root).expanduser()
        if not raw.exists():
            raise FileNotFoundError(f"data_root: {raw} does not exist")
        layout = detect_layout(raw)  # ValueError if neither raw nor prepared
        if layout == "prepared":
            return raw, f"prepared lists in {raw}"
        if config.image_root is not None:
            raise ValueError(
                f"image_root (--image-root): only used with prepared lists in --data-root; {raw} "
                f"holds {layout} data, which is prepared with its own image folder"
            )
        expected = f"raw-{config.dataset.lower()}"
        if layout != expected:
            raise ValueError(
                f"data_root: {raw} has the {layout} layout, but dataset is {config.dataset} "
                f"(expected {expected} or prepared lists); pass --dataset accordingly"
            )
        digest = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:10]
        out = Path(config.prepared_root) if config.prepared_root else \
            cache_dir(config) / "prepared" / f"{config.dataset}-{digest}"
        source = f"raw {config.dataset} in {raw}"
    log(f"preparing (aligning) {raw} -> {out} (reused when already prepared)")
    prepare_dataset(raw, out, dataset=config.dataset, workers=max(1, config.num_workers),
                    progress=config.progress)
    return out, source + f", prepared in {out}"


def _frame_ids(dataset) -> list[str]:
    """Relative image paths of the prepared list (``P_path.txt`` lines)."""
    try:
        from mgrr_pyg.data.prepared import list_file

        lines = list_file(dataset.root, dataset.prefix, "path").read_text().splitlines()
        ids = [line.strip() for line in lines if line.strip()]
        if len(ids) == len(dataset):
            return ids
    except (AttributeError, OSError, ImportError):
        pass
    table = getattr(dataset, "table", None)
    if table is not None:
        return [f"{s}/{q}/{f}" for s, q, f in zip(table.subject, table.sequence, table.frame)]
    return [str(i) for i in range(len(dataset))]


def _subjects(dataset) -> np.ndarray:
    table = getattr(dataset, "table", None)
    if table is not None and getattr(table, "subject", None) is not None:
        return np.asarray(table.subject, dtype=str)
    if hasattr(dataset, "subjects"):
        return np.asarray(dataset.subjects, dtype=str)
    raise ValueError("val_subjects: the training dataset does not tell the subject of each frame")


def choose_validation_subjects(subjects: Sequence[str], val_subjects, seed: int) -> list[str]:
    """A seeded choice of ``val_subjects`` subjects (a count, or a fraction of them)."""
    unique = sorted(set(str(s) for s in subjects))
    if len(unique) < 2:
        raise ValueError(
            f"val_subjects: the training part has {len(unique)} subject(s); at least 2 are needed "
            "to hold some out for validation"
        )
    if isinstance(val_subjects, float):
        count = int(round(val_subjects * len(unique)))
    else:
        count = int(val_subjects)
    count = max(1, count)
    if count >= len(unique):
        raise ValueError(
            f"val_subjects: asked for {val_subjects!r} of {len(unique)} training subjects; leave at "
            "least one subject to train on"
        )
    rng = np.random.default_rng([seed, 7])
    return sorted(rng.choice(unique, size=count, replace=False).tolist())


def strided(n: int, budget: Optional[int]) -> np.ndarray:
    """``budget`` evenly spaced positions of ``range(n)`` (all when ``budget`` is None)."""
    if budget is None or budget >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, budget).round().astype(np.int64))


def sampled(positions: np.ndarray, budget: Optional[int], seed: int) -> np.ndarray:
    """A seeded random subset of ``positions`` of size ``budget``, sorted."""
    if budget is None or budget >= len(positions):
        return positions
    rng = np.random.default_rng([seed, 11])
    return np.sort(rng.choice(positions, size=budget, replace=False))


def _missing_images_hint(config: TrainConfig, root: Path) -> str:
    """What a command-line user can do about listed images that are not there."""
    if config.data_root is not None and Path(root) == Path(config.data_root).expanduser():
        return ("point --image-root at the folder the listed paths are relative to, or "
                "--data-root at the folder of the right lists")
    return (f"the prepared data in {root} is incomplete (files deleted after it was prepared?): "
            f"delete {root} and run again to prepare it afresh")


# -- model -------------------------------------------------------------------------------
def _preset_and_overrides(config: TrainConfig, aus: Sequence[int]) -> tuple[str, dict]:
    from mgrr_pyg.model import get_config, list_presets

    preset, overrides = config.resolved_model()
    if preset not in list_presets():
        raise ValueError(f"preset (--preset): expected one of {list_presets()}, found {preset!r}")
    if "aus" not in overrides and tuple(get_config(preset).aus) != tuple(aus):
        overrides["aus"] = tuple(aus)
    return preset, overrides


def check_model_config(config: TrainConfig, aus: Sequence[int]) -> None:
    """Build the run's model on the meta device (no memory, no random draw, a fraction
    of a second) so an unknown preset, a misspelt or invalid ``--set`` override or an
    unknown layer name is found before any data is generated or prepared."""
    import difflib

    from mgrr_pyg.model import MGRRConfig, create_model

    known = sorted(MGRRConfig.override_keys())  # flat keys, sections, dotted paths
    for key, value in config.model_overrides.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise ValueError(
                f"--set {key}={value!r} (model_overrides): unknown model config key {key!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; known keys: {', '.join(known)}"
            )
    preset, overrides = _preset_and_overrides(config, aus)
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            create_model(preset, **overrides)
    except (ValueError, TypeError, KeyError) as err:
        given = " ".join(f"--set {k}={v!r}" for k, v in config.model_overrides.items())
        reason = str(err) if isinstance(err, ValueError) else f"a value of the wrong type ({err})"
        raise ValueError(
            f"model config of preset {preset!r}"
            + (f" with ablation {config.ablation!r}" if config.ablation else "")
            + (f" and {given}" if given else "") + f": {reason}"
        ) from None


def check_run(config: TrainConfig, ctx: DistContext, output: Path) -> None:
    """Every check of a run that needs no data (see the module docstring, step 0)."""
    check_model_config(config, AU_SETS[config.dataset])
    if config.amp == "fp16" and ctx.device.type != "cuda":
        raise ValueError("amp: 'fp16' autocast needs a CUDA device; use 'bf16' on CPU or 'none'")
    if config.image_root is not None and not Path(config.image_root).expanduser().is_dir():
        raise FileNotFoundError(f"image_root (--image-root): {config.image_root} is not a folder")
    if config.init_from:
        from mgrr_pyg.train.checkpoint import load_checkpoint

        if not Path(config.init_from).exists():
            raise FileNotFoundError(f"init_from (--init-from): checkpoint {config.init_from} "
                                    "does not exist")
        load_checkpoint(config.init_from, hint="point --init-from at a checkpoint written by "
                        "mgrr-train (the last.pt or best.pt of a run on the other dataset)")
    check_resumable(config, output)


def build_model(config: TrainConfig, aus: Sequence[int]):
    """``create_model(preset, **overrides)`` with the dataset's AU set; returns
    ``(model, preset, overrides)``."""
    from mgrr_pyg.model import create_model

    preset, overrides = _preset_and_overrides(config, aus)
    seed_everything(config.seed)
    return create_model(preset, **overrides), preset, overrides


# -- results -----------------------------------------------------------------------------
@dataclass
class RunResult:
    """The outcome of :func:`run_training` (on every rank; files on rank 0 only)."""

    output_dir: Optional[Path]
    config: TrainConfig
    metrics: AUMetrics
    baselines: dict
    landmarks: Optional[dict]
    reported_epoch: int
    selection: str
    history: list
    seconds: float
    fold: str
    markdown: str
    info: dict = field(default_factory=dict)
    #: What the run ran on (:func:`mgrr_pyg.utils.environment.run_environment`: command,
    #: versions, threads, machine, git commit); recorded when the result is made.
    environment: dict = field(default_factory=dict)
    #: The data it ran on: the synthetic set's cache name (dataset, preset, seed and the
    #: generator-config digest; ``None`` for real data) and a digest of the prepared lists
    #: and images (:func:`mgrr_pyg.utils.environment.prepared_data_digest`).
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.environment:
            self.environment = run_environment()
        if not self.data:
            self.data = {
                "synthetic_set": synthetic_name(self.config) if self.config.data_root is None else None,
                "prepared_digest": prepared_data_digest(self.info.get("prepared_root")),
            }

    @property
    def f1_margin(self) -> float:
        """Mean F1 minus the best label-only baseline's mean F1 (fractions)."""
        return self.metrics.f1_mean - best_baseline(self.baselines)[1].f1_mean

    def to_dict(self) -> dict:
        """Everything ``results.json`` holds; :mod:`mgrr_pyg.train.report` makes the
        README's and ``docs/results``' tables from it."""
        name, best = best_baseline(self.baselines)
        return {
            "format": RESULTS_FORMAT,
            "config": self.config.to_dict(),
            "fold": self.fold,
            "metrics": self.metrics.to_dict(),
            "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
            "best_baseline": name,
            "f1_margin_over_best_baseline": self.f1_margin,
            "landmarks": self.landmarks,
            "reported_epoch": self.reported_epoch,
            "selection": self.selection,
            "history": self.history,
            "seconds": self.seconds,
            "info": _jsonable(self.info),
            "environment": _jsonable(self.environment),
            "data": _jsonable(self.data),
        }


def default_output(config: TrainConfig) -> Path:
    preset, _ = config.resolved_model()
    parts = [config.dataset, f"fold{config.fold}", preset]
    if config.ablation:
        parts.append(config.ablation)
    parts.append(f"seed{config.seed}")
    return Path("runs") / "-".join(parts)


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None or np.isnan(v) else f"{100 * v:.1f}"


def results_markdown(result: RunResult) -> str:
    cfg, info = result.config, result.info
    name, best = best_baseline(result.baselines)
    lines = [
        f"# MGRR-Net on {cfg.dataset}, fold {cfg.fold}",
        "",
        f"- Fold: {result.fold}",
        f"- Data: {info.get('source', '?')}"
        + (f"; synthetic set `{result.data['synthetic_set']}`" if result.data.get("synthetic_set") else "")
        + (f"; prepared-data digest `{result.data['prepared_digest'][:12]}`"
           if result.data.get("prepared_digest") else ""),
        f"- Frames: train {info.get('train_frames')} ({info.get('train_subjects')} subjects)"
        + (f", validation {info.get('val_frames')} (subjects {', '.join(info.get('val_subject_ids', []))})"
           if info.get("val_frames") else "")
        + f", test {info.get('test_frames')} ({info.get('test_subjects')} subjects)",
        f"- Model: preset `{info.get('preset')}`"
        + (f" with {info.get('overrides')}" if info.get("overrides") else "")
        + f", {info.get('parameters', 0) / 1e6:.2f} M parameters"
        + (f", ablation `{cfg.ablation}`" if cfg.ablation else ""),
        f"- Schedule: {describe_schedule(cfg.to_dict())}",
        f"- Reported weights: {result.selection} (epoch {result.reported_epoch}); the test part "
        "chose nothing",
        f"- Time: {result.seconds / 60:.1f} min on {info.get('device', '?')}",
        f"- Command: {run_parts(RunRecord('results.json', result.to_dict()))['Command']}",
    ]
    lines += [f"- {part}: {text}" for part, text in environment_parts(result.environment).items()]
    if info.get("transfer"):
        lines.append(f"- Initialised from `{cfg.init_from}` (see results.json for the mapping)")
    lines += ["", results_tables({"MGRR-Net": result.metrics, **{f"label-only: {k}": v
                                                               for k, v in result.baselines.items()}}),
              ""]
    if result.landmarks:
        lines.append(f"Landmarks: mean error {_pct(result.landmarks['mean_error'])}% of the "
                     f"inter-ocular distance, failure rate (> 10%) "
                     f"{_pct(result.landmarks['failure_rate'])}% over {result.landmarks['frames']} frames.")
    lines.append(f"Mean F1 {_pct(result.metrics.f1_mean)} vs best label-only baseline ({name}) "
                 f"{_pct(best.f1_mean)}: margin {100 * result.f1_margin:+.1f} points.")
    for note in result.metrics.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def _write_results(result: RunResult, out: Path, test_eval, frame_ids, aus) -> None:
    save_predictions(out / "predictions_test", test_eval.probs, test_eval.labels, aus, frame_ids,
                     test_eval.landmarks_pred, test_eval.landmarks_true, test_eval.interocular,
                     threshold=result.config.threshold)
    atomic_save_text(out / "results.md", result.markdown)
    named = {"MGRR-Net": result.metrics, **{f"label-only: {k}": v for k, v in result.baselines.items()}}
    atomic_save_text(out / "results.csv", results_tables(named, fmt="csv"))
    atomic_save_text(out / "results.json", json.dumps(_jsonable(result.to_dict()), indent=2))


# -- the run -----------------------------------------------------------------------------
def run_training(config: TrainConfig, callbacks: Sequence[Any] = (), log: Log = _print,
                 dist_ctx: Optional[DistContext] = None) -> RunResult:
    """Train and evaluate one fold as described in the module docstring."""
    started = time.perf_counter()
    config.validate()
    ctx = dist_ctx if dist_ctx is not None else init_distributed(config.device)
    quiet = (lambda message: None) if not ctx.is_main else log
    output = Path(config.output) if config.output else default_output(config)
    config = config.replace(output=str(output))
    check_run(config, ctx, output)  # before any data is generated or prepared
    fold = protocol.fold(config.dataset, config.fold)
    quiet(protocol.describe_folds(config.dataset))
    quiet(f"-> this run: {fold.describe()}")

    # Data: rank 0 generates / prepares, the others wait and reuse it.
    root = source = None
    if ctx.is_main:
        root, source = prepared_root(config, quiet)
    barrier(ctx)
    if not ctx.is_main:
        root, source = prepared_root(config, quiet)

    from mgrr_pyg.data import PreparedListDataset, class_weights
    from mgrr_pyg.graphs import au_cooccurrence_prior
    from mgrr_pyg.model import MGRRLoss

    aus = AU_SETS[config.dataset]
    model, preset, overrides = build_model(config, aus)
    model_aus = tuple(model.config.aus)
    from mgrr_pyg.data.prepared import MissingImagesError

    lists = dict(aus=model_aus, image_root=config.image_root)
    try:  # every listed image of both parts is looked for before training starts
        train_full = PreparedListDataset(root, fold.train_prefix, train=True, seed=config.seed, **lists)
        test_full = PreparedListDataset(root, fold.test_prefix, train=False, **lists)
    except MissingImagesError as err:
        raise err.with_hint(_missing_images_hint(config, root)) from None

    train_positions = np.arange(len(train_full))
    val_dataset, val_ids, val_positions = None, [], np.zeros(0, np.int64)
    if config.val_subjects is not None:
        subjects = _subjects(train_full)
        val_ids = choose_validation_subjects(subjects, config.val_subjects, config.seed)
        is_val = np.isin(subjects, val_ids)
        train_positions = np.flatnonzero(~is_val)
        val_positions = np.flatnonzero(is_val)
        val_positions = val_positions[strided(len(val_positions), config.max_test_frames)]
        val_dataset = Subset(PreparedListDataset(root, fold.train_prefix, train=False, **lists),
                             val_positions.tolist())
    train_positions = sampled(train_positions, config.max_train_frames, config.seed)
    test_positions = strided(len(test_full), config.max_test_frames)
    train_set = Subset(train_full, train_positions.tolist())
    test_set = Subset(test_full, test_positions.tolist())
    train_labels = train_full.labels.numpy()[train_positions]
    test_labels = test_full.labels.numpy()[test_positions]
    if len(train_set) == 0 or len(test_set) == 0:
        raise ValueError(f"fold {config.fold}: found {len(train_set)} training and {len(test_set)} "
                         f"test frames in {root}; both parts need frames")

    # Class weights and prior from the training frames only.
    weights = class_weights(train_labels)
    loss_fn = MGRRLoss(weights, lambda_align=config.lambda_align)
    if getattr(model.config, "prior_init", None) == "cooccurrence":
        model.set_prior(au_cooccurrence_prior(train_labels))
    transfer = None
    if config.init_from:
        from mgrr_pyg.train.transfer import init_from_checkpoint

        transfer = init_from_checkpoint(model, config.init_from)
        quiet(f"initialised from {config.init_from}:\n{transfer.summary()}")

    metadata = build_metadata(model_aus, config.dataset, config.fold, model_preset=preset,
                              train_prefix=fold.train_prefix, test_prefix=fold.test_prefix)
    trainer = Trainer(model, loss_fn, train_set, config, val_dataset=val_dataset, output_dir=output,
                      aus=model_aus, metadata=metadata, model_name=preset, callbacks=callbacks,
                      dist_ctx=ctx, log=quiet, started=started)
    if ctx.is_main:
        atomic_save_text(output / "config.json", json.dumps(config.to_dict(), indent=2))
        atomic_save_text(output / "model_config.json", json.dumps(model.config.to_dict(), indent=2))
    n_params = sum(p.numel() for p in model.parameters())
    quiet(f"model: preset {preset!r}{' ' + str(overrides) if overrides else ''}, "
          f"{n_params / 1e6:.2f} M parameters; device {trainer.device}"
          + (f", {ctx.world_size} processes" if ctx.distributed else ""))
    quiet(f"frames: train {len(train_set)}, validation {len(val_positions)}, test {len(test_set)}; "
          f"output {output}")
    history = trainer.fit()

    best_epoch = trainer.load_best()
    if best_epoch is not None:
        selection, reported = "epoch chosen on the validation subjects", best_epoch
    else:
        selection, reported = "last epoch", trainer.epoch
    test_eval = trainer.evaluate(test_set, desc="test")
    baselines = label_only_baselines(train_labels, test_labels, model_aus, seed=config.seed,
                                     threshold=config.threshold)
    train_subjects = len(set(_subjects(train_full)[train_positions].tolist())) \
        if getattr(train_full, "table", None) is not None else None
    info = {
        "source": source, "prepared_root": str(root), "preset": preset, "overrides": overrides,
        "parameters": n_params, "device": str(trainer.device), "world_size": ctx.world_size,
        "train_frames": len(train_set), "val_frames": int(len(val_positions)),
        "val_subject_ids": val_ids, "test_frames": len(test_set), "train_subjects": train_subjects,
        "test_subjects": len(set(_subjects(test_full)[test_positions].tolist()))
        if getattr(test_full, "table", None) is not None else None,
        "resumed_from": trainer.resumed_from, "segments": trainer.segments,
        "seconds_this_segment": time.perf_counter() - started,
        "transfer": transfer.to_dict() if transfer is not None else None,
    }
    result = RunResult(output, config, test_eval.metrics, baselines, test_eval.landmarks, reported,
                       selection, history, trainer.elapsed_seconds, fold.describe(), "", info)
    result.markdown = results_markdown(result)
    if ctx.is_main:
        frame_ids = [_frame_ids(test_full)[i] for i in test_positions]
        _write_results(result, output, test_eval, frame_ids, model_aus)
        quiet("\n" + result.markdown)
        quiet(f"written: {output}/results.md, results.csv, results.json, predictions_test.npz/.csv, "
              f"last.pt{', best.pt' if best_epoch is not None else ''}, log.csv")
    barrier(ctx)
    return result


__all__ = ["RunResult", "build_model", "cache_dir", "check_model_config", "check_run",
           "choose_validation_subjects", "default_output",
           "ensure_synthetic", "prepared_root", "results_markdown", "run_training"]

"""What a training run writes into its output folder, besides its checkpoints and logs.

:func:`write_outputs` writes (rank 0 only, each file atomically):

- ``results.json``: :meth:`RunResult.to_dict`, everything the run found and ran on,
  from which :mod:`mgrr_pyg.train.report` makes the README's and ``docs/results``' tables;
- ``results.md``: :func:`results_markdown`, the same for people;
- ``results.csv``: the tables of the model and of the label-only baselines;
- ``predictions_test.npz`` / ``.csv``: the per-frame test predictions
  (:func:`~mgrr_pyg.train.metrics.save_predictions`), from which any metric can be
  recomputed later.

The folder is ``output``, else :func:`default_output` (``runs/<dataset>-fold<k>-<preset>
[-<ablation>]-seed<s>``). A new output file is one more line in :func:`write_outputs`
(and its name in :data:`OUTPUT_FILES`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.data_sources import synthetic_name
from mgrr_pyg.train.metrics import AUMetrics, best_baseline, results_tables, save_predictions
from mgrr_pyg.train.report import RESULTS_FORMAT, RunRecord, describe_schedule, environment_parts, run_parts
from mgrr_pyg.utils.environment import prepared_data_digest, run_environment
from mgrr_pyg.utils.io import atomic_save_text
from mgrr_pyg.utils.records import plain

#: The files :func:`write_outputs` writes, as the run's last message names them.
OUTPUT_FILES = ("results.md", "results.csv", "results.json", "predictions_test.npz/.csv")


@dataclass
class RunResult:
    """The outcome of :func:`~mgrr_pyg.train.pipeline.run_training` (on every rank;
    files on rank 0 only)."""

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
            "info": plain(self.info),
            "environment": plain(self.environment),
            "data": plain(self.data),
        }


def default_output(config: TrainConfig) -> Path:
    """``runs/<dataset>-fold<k>-<preset>[-<ablation>]-seed<s>``."""
    preset, _ = config.resolved_model()
    parts = [config.dataset, f"fold{config.fold}", preset]
    if config.ablation:
        parts.append(config.ablation)
    parts.append(f"seed{config.seed}")
    return Path("runs") / "-".join(parts)


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None or np.isnan(v) else f"{100 * v:.1f}"


def _named_results(result: RunResult) -> dict:
    """The model's metrics and the label-only baselines', as the tables name them."""
    return {"MGRR-Net": result.metrics, **{f"label-only: {k}": v for k, v in result.baselines.items()}}


def results_markdown(result: RunResult) -> str:
    """``results.md``: the run's data, model, schedule and environment, then its tables."""
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
    lines += ["", results_tables(_named_results(result)), ""]
    if result.landmarks:
        lines.append(f"Landmarks: mean error {_pct(result.landmarks['mean_error'])}% of the "
                     f"inter-ocular distance, failure rate (> 10%) "
                     f"{_pct(result.landmarks['failure_rate'])}% over {result.landmarks['frames']} frames.")
    lines.append(f"Mean F1 {_pct(result.metrics.f1_mean)} vs best label-only baseline ({name}) "
                 f"{_pct(best.f1_mean)}: margin {100 * result.f1_margin:+.1f} points.")
    for note in result.metrics.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def write_outputs(result: RunResult, out: Path, test_eval, frame_ids: Sequence[str],
                  aus: Sequence[int], subjects: Optional[Sequence[str]] = None) -> None:
    """Write :data:`OUTPUT_FILES` into ``out``: ``test_eval`` is the trainer's evaluation
    of the test frames (:class:`~mgrr_pyg.train.trainer.EvalOutput`), ``frame_ids`` names
    them in order (``subjects``: their subjects, when known), ``aus`` are the model's AU
    columns."""
    save_predictions(out / "predictions_test", test_eval.probs, test_eval.labels, aus, frame_ids,
                     test_eval.landmarks_pred, test_eval.landmarks_true, test_eval.interocular,
                     threshold=result.config.threshold, subjects=subjects)
    atomic_save_text(out / "results.md", result.markdown)
    atomic_save_text(out / "results.csv", results_tables(_named_results(result), fmt="csv"))
    atomic_save_text(out / "results.json", json.dumps(plain(result.to_dict()), indent=2))


__all__ = ["OUTPUT_FILES", "RunResult", "default_output", "results_markdown", "write_outputs"]

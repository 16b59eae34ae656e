"""The 3-fold protocol and the ablation study, on top of
:func:`~mgrr_pyg.train.pipeline.run_training`.

- :func:`run_folds`: every fold, then per-fold and mean F1 / accuracy / AUC tables in
  the paper's layout (markdown + CSV) and a per-AU F1 box plot over the folds (paper
  Fig. 3).
- :func:`run_ablation`: Table 6 settings and Table 7 depths on one fold and budget,
  several seeds each; a markdown table of the mean F1's mean and spread.

Each run keeps its own output folder, so an interrupted study resumes run by run
(finished runs are re-evaluated from their checkpoint, unfinished ones continue).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from mgrr_pyg.train.config import ABLATIONS, TrainConfig
from mgrr_pyg.train.metrics import AUMetrics, csv_table, markdown_table, METRIC_TITLES
from mgrr_pyg.train.pipeline import RunResult, default_output, run_training
from mgrr_pyg.utils.io import atomic_save_text

Log = Callable[[str], None]


def _print(message: str) -> None:
    print(message, flush=True)


def _base_output(config: TrainConfig, kind: str) -> Path:
    if config.output:
        return Path(config.output)
    run = default_output(config.replace(fold=1))
    return run.parent / f"{kind}-{run.name.replace('-fold1', '')}"


def fold_tables(per_fold: dict[str, AUMetrics], fmt: str = "markdown") -> str:
    """Per-fold rows and their mean (per AU, then Avg.) for F1, accuracy and AUC."""
    aus = next(iter(per_fold.values())).aus
    parts = []
    for metric, title in METRIC_TITLES.items():
        rows = {name: getattr(m, metric) for name, m in per_fold.items()}
        rows["Mean"] = np.nanmean(np.stack([np.asarray(v, dtype=np.float64) for v in rows.values()]), 0)
        if fmt == "markdown":
            parts.append(f"**{title}**\n\n" + markdown_table(rows, aus))
        else:
            text = csv_table(rows, aus, metric=metric)
            parts.append(text if not parts else text.split("\n", 1)[1])
    return ("\n\n" if fmt == "markdown" else "").join(parts)


@dataclass
class FoldsResult:
    output_dir: Path
    runs: dict  # fold -> RunResult
    markdown: str
    boxplot: Optional[Path]


def run_folds(config: TrainConfig, folds: Sequence[int] = (1, 2, 3), log: Log = _print) -> FoldsResult:
    """Train and evaluate each fold (outputs ``<output>/fold<f>``), then write
    ``folds.md``, ``folds.csv``, ``folds.json`` and ``f1_boxplot.png``."""
    base = _base_output(config, "folds")
    runs: dict[int, RunResult] = {}
    for f in folds:
        log(f"\n=== fold {f} ===")
        runs[f] = run_training(config.replace(fold=f, output=str(base / f"fold{f}")), log=log)
    per_fold = {f"Fold {f}": r.metrics for f, r in runs.items()}
    baselines = {f"Fold {f}": max(r.baselines.values(), key=lambda m: m.f1_mean) for f, r in runs.items()}
    cfg = config
    lines = [f"# MGRR-Net on {cfg.dataset}: {len(runs)}-fold protocol", ""]
    lines += [f"- {r.fold}; reported: {r.selection} (epoch {r.reported_epoch})" for r in runs.values()]
    lines += [f"- Data: {next(iter(runs.values())).info.get('source')}",
              f"- Model: preset `{next(iter(runs.values())).info.get('preset')}`"
              + (f", ablation `{cfg.ablation}`" if cfg.ablation else "")
              + f"; {cfg.epochs} epochs, batch {cfg.batch_size}, seed {cfg.seed}",
              f"- Time: {sum(r.seconds for r in runs.values()) / 60:.1f} min", "",
              fold_tables(per_fold), "",
              "**Best label-only baseline per fold, F1-frame (%)**", "",
              markdown_table({k: v.f1 for k, v in baselines.items()}, next(iter(per_fold.values())).aus)]
    markdown = "\n".join(lines) + "\n"
    boxplot = None
    try:
        from mgrr_pyg.plots.boxplot import f1_boxplot

        boxplot = f1_boxplot({name: m for name, m in per_fold.items()}, base / "f1_boxplot.png",
                             title=f"Per-AU F1 over {len(runs)} folds ({cfg.dataset})")
        markdown += f"\nBox plot of per-AU F1 over the folds: {boxplot.name}\n"
    except ImportError as err:  # matplotlib missing: the tables still stand
        log(f"box plot skipped: {err}")
    atomic_save_text(base / "folds.md", markdown)
    atomic_save_text(base / "folds.csv", fold_tables(per_fold, fmt="csv"))
    atomic_save_text(base / "folds.json", json.dumps(
        {f"fold{f}": r.to_dict() for f, r in runs.items()}, indent=2, default=str))
    log("\n" + markdown)
    log(f"written: {base}/folds.md, folds.csv, folds.json" + (f", {boxplot.name}" if boxplot else ""))
    return FoldsResult(base, runs, markdown, boxplot)


@dataclass
class AblationResult:
    output_dir: Path
    runs: dict  # (setting, seed) -> RunResult
    markdown: str


def _switches(setting: str) -> dict:
    from mgrr_pyg.model import PRESETS

    source = PRESETS[ABLATIONS[setting]]
    return {"D_G": source.use_region_graph, "O_G": source.use_global, "C_G": source.use_channel,
            "P_G": source.use_pixel, "K": source.num_layers}


def run_ablation(config: TrainConfig, settings: Sequence[str] = tuple(ABLATIONS),
                 seeds: Sequence[int] = (0, 1, 2), log: Log = _print) -> AblationResult:
    """Each setting x seed on ``config``'s fold and budget (outputs
    ``<output>/<setting>-seed<s>``); writes ``ablation.md`` / ``ablation.json``."""
    unknown = [s for s in settings if s not in ABLATIONS]
    if unknown:
        raise ValueError(f"settings: unknown {unknown}; expected some of {sorted(ABLATIONS)}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    base = _base_output(config, "ablation")
    runs: dict[tuple[str, int], RunResult] = {}
    for setting in settings:
        for seed in seeds:
            log(f"\n=== {setting}, seed {seed} ===")
            runs[(setting, seed)] = run_training(
                config.replace(ablation=setting, seed=seed, output=str(base / f"{setting}-seed{seed}")),
                log=log)
    first = next(iter(runs.values()))
    lines = [f"# Ablations on {config.dataset}, fold {config.fold}", "",
             f"- Budget: preset `{config.preset}`, {config.epochs} epochs, batch {config.batch_size}, "
             f"train frames {first.info.get('train_frames')}, test frames {first.info.get('test_frames')}; "
             f"data: {first.info.get('source')}",
             f"- Seeds: {', '.join(map(str, seeds))}; mean F1 over AUs (%), mean ± sample std over seeds",
             f"- Time: {sum(r.seconds for r in runs.values()) / 60:.1f} min", "",
             "| setting | D_G | O_G | C_G | P_G | K | mean F1 | std | " +
             " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(seeds)]
    summary = {}
    for setting in settings:
        values = np.array([100 * runs[(setting, s)].metrics.f1_mean for s in seeds])
        std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        sw = _switches(setting)
        mark = {True: "✓", False: "–"}
        lines.append(f"| {setting} | {mark[sw['D_G']]} | {mark[sw['O_G']]} | {mark[sw['C_G']]} | "
                     f"{mark[sw['P_G']]} | {sw['K']} | {values.mean():.1f} | "
                     + ("n/a" if np.isnan(std) else f"{std:.1f}") + " | "
                     + " | ".join(f"{v:.1f}" for v in values) + " |")
        summary[setting] = {"switches": sw, "f1_mean": float(values.mean()), "f1_std": std,
                            "per_seed": values.tolist()}
    baseline = np.array([100 * max(m.f1_mean for m in runs[(settings[0], s)].baselines.values())
                         for s in seeds])
    lines += ["", f"Best label-only baseline on the same test frames: {baseline.mean():.1f} mean F1."]
    markdown = "\n".join(lines) + "\n"
    atomic_save_text(base / "ablation.md", markdown)
    atomic_save_text(base / "ablation.json", json.dumps(summary, indent=2))
    log("\n" + markdown)
    return AblationResult(base, runs, markdown)


__all__ = ["AblationResult", "FoldsResult", "fold_tables", "run_ablation", "run_folds"]

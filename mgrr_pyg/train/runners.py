"""The 3-fold protocol and the ablation study, on top of
:func:`~mgrr_pyg.train.pipeline.run_training`.

- :func:`run_folds`: every fold, then per-fold and mean F1 / accuracy / AUC tables in
  the paper's layout (markdown + CSV) and a per-AU F1 box plot over the folds (paper
  Fig. 3).
- :func:`run_ablation` (in :mod:`mgrr_pyg.train.ablation`, importable from here):
  Table 6 settings, Table 7 depths and the random adjacency on one fold and budget,
  several seeds each, with paired bootstrap intervals against the full model.

Each run keeps its own output folder, so an interrupted study resumes run by run
(finished folds are re-evaluated from their checkpoint, unfinished ones continue).

The summary tables are made from the runs' ``results.json`` files by
:mod:`mgrr_pyg.train.report`, between markers naming those files, so
``python -m mgrr_pyg.train.report <output>/folds.md`` (or ``ablation.md``) regenerates them,
and the same blocks, copied with their files under ``docs/results/``, regenerate there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mgrr_pyg.train.ablation import StudyResult, run_ablation
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.logging import Log, console
from mgrr_pyg.train.outputs import RunResult, default_output
from mgrr_pyg.train.pipeline import run_training
from mgrr_pyg.train.report import fold_tables, load_run, render_block
from mgrr_pyg.utils.io import atomic_save_text


def _is_main_process() -> bool:
    """Rank 0 of a distributed run, or a single process (which writes the summaries)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _base_output(config: TrainConfig, kind: str) -> Path:
    if config.output:
        return Path(config.output)
    run = default_output(config.replace(fold=1))
    return run.parent / f"{kind}-{run.name.replace('-fold1', '')}"


@dataclass
class FoldsResult:
    output_dir: Path
    runs: dict  # fold -> RunResult
    markdown: str
    boxplot: Optional[Path]


def run_folds(config: TrainConfig, folds: Sequence[int] = (1, 2, 3), log: Log = console) -> FoldsResult:
    """Train and evaluate each fold (outputs ``<output>/fold<f>``), then write
    ``folds.md``, ``folds.csv``, ``folds.json`` and ``f1_boxplot.png``."""
    base = _base_output(config, "folds")
    runs: dict[int, RunResult] = {}
    for f in folds:
        log(f"\n=== fold {f} ===")
        runs[f] = run_training(config.replace(fold=f, output=str(base / f"fold{f}")), log=log)
    files = [f"fold{f}/results.json" for f in runs]
    if not _is_main_process():  # rank 0 wrote the folds' results files; it writes the summary
        return FoldsResult(base, runs, "", None)
    records = [load_run(base / name, name) for name in files]
    per_fold = {f"Fold {r.config['fold']}": r.metrics for r in records}
    lines = [f"# MGRR-Net on {config.dataset}: {len(runs)}-fold protocol", "",
             "Made from the folds' results files; `python -m mgrr_pyg.train.report folds.md` in this "
             "folder regenerates the tables.", "", render_block("fold-tables", files, base)]
    markdown = "\n".join(lines) + "\n"
    boxplot = None
    try:
        from mgrr_pyg.plots.boxplot import f1_boxplot

        boxplot = f1_boxplot(per_fold, base / "f1_boxplot.png",
                             title=f"Per-AU F1 over {len(runs)} folds ({config.dataset})")
        markdown += f"\nBox plot of per-AU F1 over the folds: {boxplot.name}\n"
    except ImportError as err:  # matplotlib missing: the tables still stand
        log(f"box plot skipped: {err}")
    atomic_save_text(base / "folds.md", markdown)
    atomic_save_text(base / "folds.csv", fold_tables(per_fold, fmt="csv"))
    atomic_save_text(base / "folds.json", json.dumps({f"fold{r.config['fold']}": r.data for r in records},
                                                     indent=2))
    log("\n" + markdown)
    log(f"written: {base}/folds.md, folds.csv, folds.json" + (f", {boxplot.name}" if boxplot else ""))
    return FoldsResult(base, runs, markdown, boxplot)


__all__ = ["FoldsResult", "StudyResult", "fold_tables", "run_ablation", "run_folds"]

"""Learning curves of training runs: the training loss and the held-out F1 / AUC after
every epoch, with the best label-only baseline of the same frames (matplotlib, Agg)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional, Sequence, Union

from .figure import finish_figure


def _history(run: Path) -> list[dict]:
    """Per-epoch rows of a run: ``results.json``'s history, else ``epochs.csv``."""
    results = run / "results.json"
    if results.exists():
        return list(json.loads(results.read_text()).get("history") or [])
    rows = run / "epochs.csv"
    if rows.exists():
        with open(rows, newline="") as handle:
            return list(csv.DictReader(handle))
    return []


def load_curve(run) -> dict:
    """A run's curve: ``curve.json`` (:mod:`mgrr_pyg.train.curve`) if written, else the
    points recorded in its history (``--curve-frames``), with its training losses.

    Raises:
        FileNotFoundError: the folder has neither a curve nor a history.
    """
    from mgrr_pyg.train.curve import CURVE_FILE, curve_from_history

    run = Path(run)
    history = _history(run)
    path = run / CURVE_FILE
    curve = json.loads(path.read_text()) if path.exists() else {"points": curve_from_history(history)}
    if not curve["points"] and not history:
        raise FileNotFoundError(f"{run}: no {CURVE_FILE}, results.json or epochs.csv: expected "
                                f"the output folder of a training run")
    curve["losses"] = [(int(float(r["epoch"])), float(r["train_au"]), float(r["lr"]))
                       for r in history if r.get("train_au") not in (None, "")]
    return curve


def plot_curve(runs: Union[str, Path, Sequence[Union[str, Path]]], path: Optional[Union[str, Path]] = None,
               labels: Optional[Sequence[str]] = None, title: Optional[str] = None):
    """Three panels over epochs: the AU loss on the training frames, and the mean F1 and
    AUC (%) on the curve's held-out test frames, one colour per run; the best label-only
    baseline of those frames dashed.

    Args:
        runs: One run folder or several (compared on one figure).
        path (optional): Write a PNG there (atomically) and return the path; otherwise
            return the matplotlib figure.
        labels (optional): One name per run (default: the folder names).
        title (optional): Figure title.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    runs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    labels = list(labels) if labels is not None else [r.name for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"labels: expected one per run ({len(runs)}), found {len(labels)}")
    curves = [load_curve(r) for r in runs]
    fig = Figure(figsize=(13.0, 3.8))
    loss_ax, f1_ax, auc_ax = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    colours = [f"C{i}" for i in range(len(runs))]
    baselines_drawn, baseline_lines = set(), []
    for curve, label, colour in zip(curves, labels, colours):
        if curve["losses"]:
            epochs, losses, _ = zip(*curve["losses"])
            loss_ax.plot(epochs, losses, "o-", color=colour, ms=3, label=label)
        points = curve["points"]
        for ax, key in ((f1_ax, "curve_f1"), (auc_ax, "curve_auc")):
            xs = [p["epoch"] for p in points if p.get(key) is not None]
            ys = [100.0 * p[key] for p in points if p.get(key) is not None]
            if xs:
                ax.plot(xs, ys, "o-", color=colour, ms=3, label=label)
        base = curve.get("best_baseline")
        if base:
            key = (round(base["f1"], 6), round(base.get("auc") or 0, 6), curve.get("frames"))
            if key not in baselines_drawn:  # runs on the same frames share one line
                baselines_drawn.add(key)
                # the value names the line: runs on other frames have another baseline
                baseline_lines.append(f1_ax.axhline(
                    100.0 * base["f1"], color="grey", ls="--", lw=1,
                    label=f"label-only baseline ({base['name']}, {100.0 * base['f1']:.1f})"))
                if base.get("auc") is not None:
                    auc_ax.axhline(100.0 * base["auc"], color="grey", ls="--", lw=1,
                                   label="label-only baseline")
    frames = sorted({c.get("frames") for c in curves if c.get("frames")})
    held_out = f"held-out test frames ({', '.join(map(str, frames))})" if frames else "held-out test frames"
    loss_ax.set_title("AU loss, training frames")
    loss_ax.set_yscale("log")
    f1_ax.set_title(f"mean F1 (%), {held_out}", fontsize=9)
    auc_ax.set_title(f"mean AUC (%), {held_out}", fontsize=9)
    for ax in (loss_ax, f1_ax, auc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if loss_ax.lines:  # the runs are named beside their losses; the F1 panel names the baselines
        loss_ax.legend(fontsize=7, loc="best")
        if baseline_lines:
            f1_ax.legend(handles=baseline_lines, fontsize=7, loc="best")
    else:
        f1_ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return finish_figure(fig, path, tight=True)


__all__ = ["load_curve", "plot_curve"]

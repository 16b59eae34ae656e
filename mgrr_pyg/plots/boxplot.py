"""Per-AU F1 box plots (paper Fig. 3), drawn with matplotlib's Agg backend (no display)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .figure import finish_figure


def _f1_rows(results) -> tuple[tuple, np.ndarray, list]:
    """``(aus, [runs, n] F1 in %, run names)`` from AUMetrics objects or arrays."""
    names, rows, aus = [], [], None
    items = results.items() if isinstance(results, Mapping) else enumerate(results)
    for name, m in items:
        if hasattr(m, "f1"):
            if aus is not None and tuple(m.aus) != tuple(aus):
                raise ValueError(f"results[{name!r}]: expected AUs {aus}, found {tuple(m.aus)}")
            aus = tuple(m.aus)
            rows.append(np.asarray(m.f1, dtype=np.float64))
        else:
            rows.append(np.asarray(m, dtype=np.float64))
        names.append(str(name))
    if not rows:
        raise ValueError("results: expected at least one run's per-AU F1, found none")
    values = np.stack(rows) * 100.0
    return aus, values, names


def f1_boxplot(results: Union[Mapping[str, object], Sequence], path: Optional[Union[str, Path]] = None,
               aus: Optional[Sequence[int]] = None, title: str = "Per-AU F1", show_points: bool = True):
    """Box plot of per-AU F1 (%) over runs (folds or seeds), one box per AU and one for
    the mean over AUs ("Avg.").

    Args:
        results: name -> :class:`~mgrr_pyg.train.metrics.AUMetrics` (or ``[n]`` F1 arrays
            in [0, 1] with ``aus`` given).
        path (optional): Write a PNG there (atomically) and return the path; otherwise
            return the matplotlib figure.
        aus (optional): AU numbers when ``results`` holds plain arrays.
        title (str): Figure title.
        show_points (bool): Overlay each run's value.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    found_aus, values, names = _f1_rows(results)
    aus = tuple(aus) if aus is not None else found_aus
    if aus is None or len(aus) != values.shape[1]:
        raise ValueError(f"aus: expected {values.shape[1]} AU numbers, found {aus!r}")
    avg = np.nanmean(values, axis=1, keepdims=True)
    data = np.concatenate([values, avg], axis=1)  # [runs, n + 1]
    labels = [f"AU{a}" for a in aus] + ["Avg."]
    fig = Figure(figsize=(max(6.0, 0.7 * len(labels)), 4.0))
    ax = fig.add_subplot(1, 1, 1)
    columns = [col[~np.isnan(col)] for col in data.T]
    # Box, median and mean in black and white: the colours are the runs'.
    ax.boxplot(columns, tick_labels=labels, showmeans=True, showfliers=not show_points,
               medianprops={"color": "black"},
               meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                          "markersize": 5})
    if show_points:
        # One colour per run across every AU (which run is low where), named below.
        rng = np.random.default_rng(0)
        positions = np.arange(1, data.shape[1] + 1)
        for name, row in zip(names, data):
            ax.scatter(positions + rng.uniform(-0.15, 0.15, len(row)), row, s=14, alpha=0.8,
                       zorder=3, label=name)
        if len(names) <= 12:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(names), 3),
                      fontsize=7, frameon=False)
    ax.set_ylabel("F1-frame (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title} ({len(names)} runs)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return finish_figure(fig, path, tight=True, dpi=120)


__all__ = ["f1_boxplot"]

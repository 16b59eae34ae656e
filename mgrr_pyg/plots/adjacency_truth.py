"""Learned AU adjacencies next to the generator's truth and the training fold's prior
(paper Fig. 5 with the truth beside it; ``mgrr-plot adjacency-truth RUN_DIR``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .adjacency import _as_matrix
from .figure import finish_figure

#: Colour of the tick labels of weak AUs (the ``tied`` preset).
WEAK_COLOUR = "#c0392b"


def _off_diagonal_only(matrix: np.ndarray) -> np.ndarray:
    """The diagonal masked (drawn grey): it is 1 in the references, near 1 in the learned
    matrices, and would take up the colour scale that the relations need."""
    masked = np.array(matrix, dtype=np.float64)
    np.fill_diagonal(masked, np.nan)
    return masked


def _heatmap(ax, matrix, labels, low, high, title, edges, weak, annotate):
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    shown = _off_diagonal_only(matrix)
    image = ax.imshow(shown, cmap=cmap, vmin=low, vmax=high)
    n = len(labels)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    for tick in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        if tick.get_text() in weak:
            tick.set_color(WEAK_COLOUR)
            tick.set_fontweight("bold")
    ax.set_xlabel("from AU j", fontsize=8)
    ax.set_ylabel("to AU i", fontsize=8)
    ax.set_title(title, fontsize=9)
    if edges is not None:  # the truth edges, as white dots on every panel
        rows, cols = np.nonzero(edges)
        ax.scatter(cols, rows, s=14, marker="o", facecolors="white", edgecolors="black", linewidths=0.6)
    if annotate:
        middle = (low + high) / 2
        for i in range(n):
            for j in range(n):
                if i != j:
                    ax.text(j, i + 0.3, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5,
                            color="black" if matrix[i, j] > middle else "white")
    return image


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def plot_adjacency_truth(learned: Sequence, prior, aus: Sequence[int], truth=None,
                         path: Optional[Union[str, Path]] = None, numbers: Optional[dict] = None,
                         ties: Optional[Mapping[int, int]] = None, edge_cut: float = 0.5,
                         title: Optional[str] = None, annotate: Optional[bool] = None):
    """Two rows of AU-labelled heat maps: the references (the truth :math:`T`, when
    known, and the prior; one colour scale, 0..1) and every layer's learned
    :math:`A^k` (one colour scale over the layers' off-diagonal entries), each row with
    its colour bar. Row i receives from column j. The diagonal is grey (not a relation;
    the numbers leave it out too). White dots mark the truth edges (:math:`T_{ij} >`
    ``edge_cut``) on every panel; weak AUs (``ties``) have red, bold labels.

    Args:
        learned: ``[n, n]`` matrix per layer (at least one).
        prior, truth (optional): ``[n, n]`` matrices.
        aus: the ``n`` AU numbers.
        path (optional): write a PNG there (atomically) and return the path; otherwise
            return the figure.
        numbers (optional): :func:`mgrr_pyg.train.adjacency_truth.agreement`'s output,
            shown in the panel titles.
        ties (optional): weak AU -> strong AU, named in the caption.
        title (optional): the figure title.
        annotate (optional): print each value in its cell (default: when n <= 8).
    """
    from matplotlib.figure import Figure

    n = len(aus)
    if not learned:
        raise ValueError("learned: expected at least one learned adjacency, found none (a model "
                         "without the region graph D_G has none)")
    learned = [_as_matrix(m, f"learned[{k}]", n) for k, m in enumerate(learned)]
    prior = _as_matrix(prior, "prior", n)
    truth = None if truth is None else _as_matrix(truth, "truth", n)
    ties = dict(ties or {})
    labels = [f"AU{a}" for a in aus]
    weak = {f"AU{w}" for w in ties}
    annotate = n <= 8 if annotate is None else annotate
    edges = None
    if truth is not None:
        edges = truth > edge_cut
        np.fill_diagonal(edges, False)
    layer_numbers = {row["layer"]: row for row in (numbers or {}).get("layers", [])}

    references = ([(truth, "generator truth T = P(i | j)")] if truth is not None else []) + \
        [(prior, "training-fold prior (Eq. 1-2)")]
    if numbers and truth is not None:
        versus = numbers.get("prior_vs_truth", {})
        references[-1] = (prior, references[-1][1] + f"\nvs T: Spearman {_number(versus.get('spearman'))}, "
                                                     f"AUC {_number(versus.get('auc'))}")
    columns = max(len(references), len(learned))
    fig = Figure(figsize=(3.6 * columns + 1.2, 7.9))
    grid = fig.add_gridspec(2, columns, hspace=0.55, wspace=0.35)

    axes = [fig.add_subplot(grid[0, c]) for c in range(len(references))]
    image = None
    for ax, (matrix, name) in zip(axes, references):
        image = _heatmap(ax, matrix, labels, 0.0, 1.0, name, edges, weak, annotate)
    fig.colorbar(image, ax=axes, shrink=0.85, fraction=0.04, pad=0.03, label="relation (0..1)")

    low = min(0.0, min(float(np.nanmin(_off_diagonal_only(m))) for m in learned))
    high = max(float(np.nanmax(_off_diagonal_only(m))) for m in learned)
    high = high if high > low else low + 1.0
    axes = [fig.add_subplot(grid[1, c]) for c in range(len(learned))]
    for k, (ax, matrix) in enumerate(zip(axes, learned)):
        name = f"learned A, layer {k + 1}"
        row = layer_numbers.get(k + 1)
        if row is not None:
            name += f"\nSpearman vs T {_number(row.get('spearman_truth'))}, vs prior " \
                    f"{_number(row.get('spearman_prior'))}\nedge AUC (A) {_number(row.get('auc_truth'))}"
        image = _heatmap(ax, matrix, labels, low, high, name, edges, weak, annotate)
    fig.colorbar(image, ax=axes, shrink=0.85, fraction=0.04, pad=0.03,
                 label="learned weight A_ij (off-diagonal)")

    caption = []
    if edges is not None:
        caption.append(f"white dots: truth edges (T_ij > {edge_cut:g}, {int(edges.sum())} pairs)")
    if ties:
        caption.append("red AUs are drawn weak and tied to a strong AU: "
                       + ", ".join(f"AU{w} -> AU{s}" for w, s in ties.items()))
    caption.append("grey: the diagonal (left out)")
    fig.text(0.5, 0.01, "; ".join(caption), ha="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return finish_figure(fig, path, tight=True)


def plot_run_adjacency_truth(run_dir: Union[str, os.PathLike], path: Union[str, Path],
                             checkpoint: Optional[str] = None) -> Path:
    """:func:`plot_adjacency_truth` of a ``mgrr-train`` run folder (its ``best.pt``, else
    ``last.pt``), with the numbers of
    :func:`~mgrr_pyg.train.adjacency_truth.adjacency_agreement` in the titles."""
    from mgrr_pyg.train.adjacency_truth import TRUTH_EDGE_CUT, agreement, run_adjacencies

    run = run_adjacencies(run_dir, checkpoint)
    if not run.learned:
        raise ValueError(f"{run.checkpoint}: no learned adjacency to draw (the model has no "
                         "region graph D_G)")
    numbers = agreement(run.learned, run.prior, run.truth, TRUTH_EDGE_CUT)
    data = (f"synthetic {run.dataset}, preset {run.synthetic_preset!r}" if run.synthetic_preset
            else f"{run.dataset}, no truth (not synthetic data)")
    return plot_adjacency_truth(run.learned, run.prior, run.aus, run.truth, path=path, numbers=numbers,
                                ties=run.ties, edge_cut=TRUTH_EDGE_CUT,
                                title=f"{Path(run_dir).name}: {data} ({run.checkpoint.name})")


__all__ = ["plot_adjacency_truth", "plot_run_adjacency_truth"]

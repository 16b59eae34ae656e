"""The predefined AU relation prior next to a learned relation matrix (paper Fig. 5)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .figure import finish_figure


def _as_matrix(value, name: str, n: int) -> np.ndarray:
    matrix = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if matrix.shape != (n, n):
        raise ValueError(f"{name}: expected an [{n}, {n}] matrix for {n} AUs, found shape "
                         f"{list(matrix.shape)}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name}: holds non-finite values")
    return matrix.astype(np.float64)


def plot_adjacency(prior, learned, aus: Sequence[int], path: Optional[Union[str, Path]] = None,
                   titles: Sequence[str] = ("predefined prior", "learned relations"),
                   annotate: Optional[bool] = None):
    """Two heat maps side by side on a shared colour scale: the co-occurrence prior
    (Eq. 1-2, e.g. :func:`mgrr_pyg.graphs.au_cooccurrence_prior` or ``model.prior``) and a
    learned adjacency :math:`A^k` (``MGRROutput.adjacencies[k]``). Row i receives from
    column j (the message from AU j to AU i is weighted by A[i, j]).

    Args:
        prior, learned: ``[n, n]`` matrices (tensor or array).
        aus: The ``n`` AU numbers (axis labels).
        path (optional): Write a PNG there (atomically) and return the path; otherwise
            return the matplotlib figure.
        titles: Panel titles.
        annotate (optional): Print each value in its cell (default: when n <= 15).
    """
    from matplotlib.figure import Figure

    n = len(aus)
    matrices = [_as_matrix(prior, "prior", n), _as_matrix(learned, "learned", n)]
    low = min(0.0, min(m.min() for m in matrices))
    high = max(m.max() for m in matrices)
    annotate = n <= 15 if annotate is None else annotate
    labels = [f"AU{a}" for a in aus]
    fig = Figure(figsize=(5.2 * 2 + 1.0, 5.0))
    axes = [fig.add_subplot(1, 2, k + 1) for k in range(2)]
    for ax, matrix, title in zip(axes, matrices, titles):
        image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high)
        ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        ax.set_xlabel("from AU j")
        ax.set_ylabel("to AU i")
        ax.set_title(title)
        if annotate:
            middle = (low + high) / 2
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if matrix[i, j] > middle else "white")
    fig.colorbar(image, ax=axes, shrink=0.8)
    return finish_figure(fig, path, tight=True)


def plot_adjacencies(prior, learned: Sequence, aus: Sequence[int],
                     path: Optional[Union[str, Path]] = None, annotate: Optional[bool] = None):
    """The co-occurrence prior next to every reasoning layer's learned adjacency
    :math:`A^1 .. A^K` (paper Fig. 5 for all K layers), one row of heat maps on a shared
    colour scale; row i receives from column j. Arguments as :func:`plot_adjacency`,
    with ``learned`` a list of ``[n, n]`` matrices (``[layer.adjacency for layer in
    model.layers]``)."""
    from matplotlib.figure import Figure

    n = len(aus)
    if not learned:
        raise ValueError("learned: expected at least one learned adjacency, found none (a model "
                         "without the region graph D_G has none)")
    matrices = [_as_matrix(prior, "prior", n)] + [_as_matrix(m, f"learned[{k}]", n)
                                                  for k, m in enumerate(learned)]
    titles = ["predefined prior"] + [f"learned, layer {k + 1}" for k in range(len(learned))]
    low = min(0.0, min(m.min() for m in matrices))
    high = max(m.max() for m in matrices)
    annotate = n <= 12 if annotate is None else annotate
    labels = [f"AU{a}" for a in aus]
    fig = Figure(figsize=(4.6 * len(matrices) + 1.0, 4.6))
    axes = [fig.add_subplot(1, len(matrices), k + 1) for k in range(len(matrices))]
    for ax, matrix, title in zip(axes, matrices, titles):
        image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high)
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        ax.set_xlabel("from AU j", fontsize=8)
        ax.set_title(title, fontsize=10)
        if annotate:
            middle = (low + high) / 2
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                            color="black" if matrix[i, j] > middle else "white")
    axes[0].set_ylabel("to AU i", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, fraction=0.02, pad=0.02)
    return finish_figure(fig, path, tight=True)


__all__ = ["plot_adjacencies", "plot_adjacency"]

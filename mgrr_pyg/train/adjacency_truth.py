"""How close a trained model's learned AU adjacencies come to the AU relations the
synthetic generator sampled from, and to the training fold's co-occurrence prior.

Every reasoning layer :math:`k` with the region graph :math:`D_G` learns an
:math:`n \\times n` matrix :math:`A^k` (:class:`~mgrr_pyg.layers.RegionGraphConv`,
paper Eq. 5; row :math:`i` receives from column :math:`j`). On synthetic data the truth
:math:`T` is the generator's prototype co-membership graph
(:func:`mgrr_pyg.data.synthetic.truth.truth_graph`; ``docs/synthetic-truth.md``), in the
same orientation. Per layer:

- ``spearman_truth`` / ``spearman_prior``: Spearman rank correlation of the
  :math:`n(n-1)` off-diagonal entries of :math:`A^k` with those of :math:`T` / of the
  prior (the diagonal is left out: it is 1 in both references and says nothing about
  relations);
- ``auc_truth``: edge-recovery ROC AUC: the truth edges are the off-diagonal pairs with
  :math:`T_{ij} >` ``edge_cut``, scored by the signed :math:`A^k_{ij}` (a learned tie
  should raise the weight of the message); ``auc_truth_abs`` scores by
  :math:`|A^k_{ij}|` (a strong negative weight also couples two AUs).

The prior is the training fold's (the ``prior`` buffer the checkpoint holds, Eq. 1-2);
``prior_vs_truth`` gives the same numbers for it, the baseline a learned :math:`A^k`
has to beat to have learned relations beyond the labels' co-occurrence.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mgrr_pyg.data.synthetic.expressions import au_structure_named
from mgrr_pyg.data.synthetic.truth import (TRUTH_DEFINITION, TRUTH_EDGE_CUT, preset_au_structure,
                                           preset_truth, truth_edges)
from mgrr_pyg.train.checkpoint import load_checkpoint

#: State-dict key of reasoning layer k's learned adjacency (``MGRRNet.layers[k].region``).
_ADJACENCY_KEY = re.compile(r"^layers\.(\d+)\.region\.adjacency$")


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """The :math:`n(n-1)` off-diagonal entries of a square matrix, row by row."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square [n, n] matrix, found shape {list(matrix.shape)}")
    return matrix[~np.eye(len(matrix), dtype=bool)]


def spearman_off_diagonal(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """Spearman correlation of the off-diagonal entries of ``a`` and ``b``; ``None``
    when either is constant there (no ranking to compare)."""
    from scipy.stats import spearmanr

    x, y = off_diagonal(a), off_diagonal(b)
    if x.shape != y.shape:
        raise ValueError(f"expected two matrices of one size, found shapes {list(np.shape(a))} "
                         f"and {list(np.shape(b))}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def edge_recovery_auc(scores: np.ndarray, truth: np.ndarray,
                      cut: float = TRUTH_EDGE_CUT) -> Optional[float]:
    """ROC AUC of ``scores`` (off-diagonal entries) at telling the truth edges
    (:math:`T_{ij} >` ``cut``) from the other off-diagonal pairs; ``None`` when there
    are no edges or nothing but edges."""
    from sklearn.metrics import roc_auc_score

    edges = off_diagonal(truth_edges(truth, cut))
    if edges.all() or not edges.any():
        return None
    return float(roc_auc_score(edges.astype(int), off_diagonal(scores)))


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 4)


def agreement(learned: Sequence[np.ndarray], prior: np.ndarray, truth: Optional[np.ndarray],
              edge_cut: float = TRUTH_EDGE_CUT) -> dict:
    """The numbers of :func:`adjacency_agreement` from matrices: ``learned`` (one
    ``[n, n]`` per layer), the ``prior`` and the ``truth`` (``None``: not known)."""
    layers = []
    for k, matrix in enumerate(learned):
        matrix = np.asarray(matrix, dtype=np.float64)
        row = {"layer": k + 1, "spearman_prior": _rounded(spearman_off_diagonal(matrix, prior)),
               "spearman_truth": None, "auc_truth": None, "auc_truth_abs": None}
        if truth is not None:
            row.update(spearman_truth=_rounded(spearman_off_diagonal(matrix, truth)),
                       auc_truth=_rounded(edge_recovery_auc(matrix, truth, edge_cut)),
                       auc_truth_abs=_rounded(edge_recovery_auc(np.abs(matrix), truth, edge_cut)))
        layers.append(row)
    out = {"layers": layers, "edge_cut": float(edge_cut), "truth_edges": None,
           "prior_vs_truth": {"spearman": None, "auc": None}}
    if truth is not None:
        out["truth_edges"] = int(truth_edges(truth, edge_cut).sum())
        out["prior_vs_truth"] = {"spearman": _rounded(spearman_off_diagonal(prior, truth)),
                                 "auc": _rounded(edge_recovery_auc(prior, truth, edge_cut))}
    return out


def run_checkpoint(run_dir: Union[str, os.PathLike], checkpoint: Optional[str] = None) -> Path:
    """The checkpoint of a run folder: ``best.pt`` (the reported epoch) when there, else
    ``last.pt``; ``checkpoint`` = ``"best"``, ``"last"`` or a file path forces one."""
    run_dir = Path(run_dir)
    if checkpoint not in (None, "best", "last"):
        return Path(checkpoint)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist (expected a mgrr-train "
                                "output folder with best.pt or last.pt)")
    names = {"best": ["best.pt"], "last": ["last.pt"], None: ["best.pt", "last.pt"]}[checkpoint]
    for name in names:
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"run folder {run_dir}: no {' or '.join(names)} (found "
                            f"{sorted(p.name for p in run_dir.iterdir())[:8]})")


def checkpoint_matrices(state: dict) -> tuple[list[np.ndarray], np.ndarray]:
    """``(learned [A^1 .. A^K], prior)`` as float64 arrays from a loaded checkpoint."""
    weights = state["model"]
    found = sorted((int(m.group(1)), key) for key in weights
                   if (m := _ADJACENCY_KEY.match(key)) is not None)
    learned = [weights[key].detach().cpu().double().numpy() for _, key in found]
    if "prior" not in weights:
        raise ValueError("checkpoint: holds no 'prior' (the training fold's co-occurrence prior); "
                         "was it written by mgrr-train?")
    return learned, weights["prior"].detach().cpu().double().numpy()


@dataclass
class RunAdjacencies:
    """What :func:`adjacency_agreement` compares, read from one run's checkpoint.

    Attributes:
        checkpoint: the file read. dataset, synthetic_preset (``None`` on real data), aus.
        learned: ``[A^1 .. A^K]`` (empty without :math:`D_G`). prior: the training fold's.
        truth: the generator's :math:`T` (``None`` when not known).
        ties: weak AU -> strong AU of the preset's AU structure (empty for most).
        notes: why something is missing, for people.
    """

    checkpoint: Path
    dataset: Optional[str]
    synthetic_preset: Optional[str]
    aus: list[int]
    learned: list[np.ndarray]
    prior: np.ndarray
    truth: Optional[np.ndarray]
    ties: dict[int, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_adjacencies(run_dir: Union[str, os.PathLike], checkpoint: Optional[str] = None) -> RunAdjacencies:
    """Read a run's learned adjacencies, prior and (on synthetic data) truth; see
    :func:`adjacency_agreement` for the arguments."""
    path = run_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    learned, prior = checkpoint_matrices(state)
    train = state.get("train_config") or {}
    metadata = state.get("metadata") or {}
    aus = [int(a) for a in (metadata.get("aus") or (state.get("model_config") or {}).get("aus") or [])]
    dataset = train.get("dataset") or metadata.get("dataset")
    synthetic = bool(train) and train.get("data_root") is None
    preset = train.get("synthetic_preset") if synthetic else None
    notes, truth, ties = [], None, {}
    if not train:
        notes.append("no truth: the checkpoint records no train_config (data source unknown)")
    elif not synthetic:
        notes.append(f"no truth: the run trained on real data ({train.get('data_root')})")
    else:
        try:
            truth = preset_truth(preset, dataset, aus)
            structure = au_structure_named(preset_au_structure(preset, dataset))
            ties = {int(w): int(s) for w, s in structure.ties.get(dataset, {}).items()}
        except ValueError as err:
            notes.append(f"no truth: {err}")
    if not learned:
        notes.append("no learned adjacency: the model has no region graph D_G")
    return RunAdjacencies(path, dataset, preset, aus, learned, prior, truth, ties, notes)


def adjacency_agreement(run_dir: Union[str, os.PathLike], checkpoint: Optional[str] = None,
                        edge_cut: float = TRUTH_EDGE_CUT) -> dict:
    """Spearman correlations and edge-recovery AUCs of a run's learned adjacencies
    against the generator's truth and the training-fold prior, as plain JSON-able data.

    Args:
        run_dir: a ``mgrr-train`` output folder.
        checkpoint: ``None`` (``best.pt`` if there, else ``last.pt``), ``"best"``,
            ``"last"`` or a checkpoint path.
        edge_cut: truth edges are the off-diagonal pairs with :math:`T_{ij} >` this.

    Returns:
        ``run_dir``, ``checkpoint``, ``dataset``, ``synthetic_preset`` (``None`` on real
        data), ``aus``, ``ties`` ([weak AU, strong AU] pairs of the preset's AU
        structure), ``truth_available``, ``truth_definition``, ``edge_cut``,
        ``truth_edges`` (count), ``prior_vs_truth`` {``spearman``, ``auc``}, ``layers``
        (per layer with a learned A: ``layer`` (1-based), ``spearman_truth``,
        ``spearman_prior``, ``auc_truth`` (scored by A), ``auc_truth_abs`` (by
        :math:`|A|`); a value is ``None`` where it is undefined) and ``note``. A model
        without :math:`D_G` has ``layers == []``; on real data the truth numbers are
        ``None``.

    Raises:
        FileNotFoundError: no such folder or no checkpoint in it.
        CheckpointError: the checkpoint cannot be read (the message names the file).
    """
    run = run_adjacencies(run_dir, checkpoint)
    return {
        "run_dir": str(run_dir), "checkpoint": str(run.checkpoint), "dataset": run.dataset,
        "synthetic_preset": run.synthetic_preset, "aus": run.aus,
        "ties": [[w, s] for w, s in run.ties.items()], "truth_available": run.truth is not None,
        "truth_definition": TRUTH_DEFINITION, **agreement(run.learned, run.prior, run.truth, edge_cut),
        "note": "; ".join(run.notes),
    }


__all__ = ["RunAdjacencies", "adjacency_agreement", "agreement", "checkpoint_matrices",
           "edge_recovery_auc", "off_diagonal", "run_adjacencies", "run_checkpoint",
           "spearman_off_diagonal"]

"""The AU relations the synthetic generator samples from, as a graph: the truth a learned
AU adjacency (paper Fig. 5) can be compared with (``docs/synthetic-truth.md``).

**Definition.** An expression episode (:mod:`.expressions`) draws one prototype
:math:`p` with the population probability :math:`\\pi_p` (the behaviour model's
``prototype_weights``, normalised), then lets every AU :math:`i` of the prototype take
part independently with its participation probability :math:`a_{pi}` (0 for an AU not
in :math:`p`). The truth is the probability that AU :math:`i` takes part in an episode
given that AU :math:`j` does:

.. math::
    T_{ij} = P(i \\mid j) = \\frac{\\sum_p \\pi_p\\, a_{pi}\\, a_{pj}}{\\sum_p \\pi_p\\, a_{pj}}
    \\quad (i \\neq j), \\qquad T_{ii} = 1,

and :math:`T_{ij} = 0` when AU :math:`j` is in no prototype. Row :math:`i` receives from
column :math:`j`, the orientation of the co-occurrence prior
(:func:`mgrr_pyg.graphs.au_cooccurrence_prior`) and of the region layer's :math:`A`
(the message from AU :math:`j` to AU :math:`i` is weighted by :math:`A_{ij}`). It is the
population-level structure of the expression channel: the per-subject shifts of the
prototype weights, the independent per-AU channel and the two overlapping expression
channels are left out, so frame labels show it diluted (a test compares it with
generated intensities with those switched off).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mgrr_pyg.facs import ALL_AUS, AU_SETS

from .config import PRESETS, SynthConfig
from .expressions import BehaviourModel, au_structure_named

#: Truth edges: off-diagonal pairs with :math:`T_{ij}` above this (AU j's episodes show
#: AU i more often than not).
TRUTH_EDGE_CUT = 0.5

TRUTH_DEFINITION = ("T[i, j] = P(AU i takes part in an expression episode | AU j does), from "
                    "the generator's population prototype weights and participation "
                    "probabilities; row i receives from column j; diagonal 1")


def participation_matrix(model: BehaviourModel, aus: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(weights [P], participation [P, n])``: each prototype's population probability
    and each AU's probability of taking part in it (0 when absent), ``aus`` order."""
    participation = np.array([[proto.aus.get(au, (0.0, 0.0))[0] for au in aus]
                              for proto in model.prototypes], dtype=np.float64)
    return model.prototype_probabilities(), participation


def prototype_cooccurrence(weights, participation) -> np.ndarray:
    """:math:`T_{ij} = \\sum_p \\pi_p a_{pi} a_{pj} / \\sum_p \\pi_p a_{pj}` (diagonal 1,
    0 in the column of an AU that is in no prototype) from prototype probabilities
    ``weights [P]`` (normalised here) and ``participation [P, n]``."""
    weights = np.asarray(weights, dtype=np.float64)
    participation = np.asarray(participation, dtype=np.float64)
    if weights.ndim != 1 or participation.ndim != 2 or participation.shape[0] != len(weights):
        raise ValueError(f"expected weights [P] and participation [P, n], found shapes "
                         f"{list(weights.shape)} and {list(participation.shape)}")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights: expected non-negative values with a positive sum, found {weights}")
    if ((participation < 0) | (participation > 1)).any():
        raise ValueError("participation: expected probabilities in [0, 1]")
    weights = weights / weights.sum()
    joint = (participation * weights[:, None]).T @ participation  # [i, j]: P(i and j)
    marginal = weights @ participation  # [j]: P(j)
    with np.errstate(divide="ignore", invalid="ignore"):
        truth = np.where(marginal[None, :] > 0, joint / marginal[None, :], 0.0)
    np.fill_diagonal(truth, 1.0)
    return np.clip(truth, 0.0, 1.0)


def truth_graph(dataset: str, au_structure: str = "standard",
                aus: Sequence[int] | None = None) -> np.ndarray:
    """``[n, n]`` truth :math:`T` of ``dataset``'s behaviour in ``au_structure``, over
    ``aus`` (default: the dataset's protocol AU set, :data:`mgrr_pyg.facs.AU_SETS`)."""
    if dataset not in AU_SETS:
        raise ValueError(f"dataset: expected one of {sorted(AU_SETS)}, found {dataset!r}")
    aus = AU_SETS[dataset] if aus is None else tuple(int(a) for a in aus)
    unknown = [a for a in aus if a not in ALL_AUS]
    if unknown:
        raise ValueError(f"aus: the generator models AUs {list(ALL_AUS)}, found {unknown}")
    model = au_structure_named(au_structure).behaviour[dataset]
    return prototype_cooccurrence(*participation_matrix(model, aus))


def preset_au_structure(preset: str, dataset: str) -> str:
    """The AU structure of a synthetic preset (``"standard"`` unless the preset says)."""
    return SynthConfig.from_preset(preset, dataset).au_structure


def preset_truth(preset: str, dataset: str, aus: Sequence[int] | None = None) -> np.ndarray:
    """:func:`truth_graph` of a named preset (:data:`~.config.PRESETS`)."""
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
    return truth_graph(dataset, preset_au_structure(preset, dataset), aus)


def truth_edges(truth: np.ndarray, cut: float = TRUTH_EDGE_CUT) -> np.ndarray:
    """``[n, n]`` bool: the off-diagonal pairs with :math:`T_{ij} > ` ``cut``."""
    edges = np.asarray(truth) > cut
    np.fill_diagonal(edges, False)
    return edges


# -- checks of a preset: are the weak AUs predictable from labels, and weak in the image? --
def label_only_auc(dataset: str, au_structure: str = "standard", seed: int = 0, frames: int = 100,
                   frame_step: int = 20, sequences: Sequence[str] = ("T1", "T2", "T3", "T4"),
                   subjects: Sequence[str] | None = None) -> dict[int, float]:
    """Per AU of ``dataset``: the ROC AUC of a logistic regression that predicts its
    occurrence from the *other* AUs' occurrence labels alone, trained on one half of the
    subjects and tested on the other (and the other way round; the mean of both). High for
    an AU that is tied to others, ~0.5 for one that is independent of them. Labels are
    sampled without rendering (:func:`~.expressions.sequence_intensities`), ``frames``
    per sequence, every subject of ``dataset`` unless ``subjects`` are given."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from .config import resolve_subjects
    from .expressions import occurrence, sequence_intensities

    aus = AU_SETS[dataset]
    columns = [ALL_AUS.index(a) for a in aus]
    subjects = resolve_subjects(dataset, subjects)
    labels, half = [], []
    for number, subject in enumerate(subjects):
        for sequence in sequences:
            intensity = sequence_intensities(seed, dataset, subject, sequence, frames, frame_step, au_structure)
            labels.append(occurrence(intensity, dataset)[:, columns])
            half.append(np.full(frames, number % 2))
    labels, half = np.concatenate(labels), np.concatenate(half)
    out = {}
    for k, au in enumerate(aus):
        others = np.delete(labels, k, axis=1)
        scores = []
        for train in (0, 1):
            fit, test = half == train, half != train
            if len(np.unique(labels[fit, k])) < 2 or len(np.unique(labels[test, k])) < 2:
                continue
            model = LogisticRegression(max_iter=1000).fit(others[fit], labels[fit, k])
            scores.append(roc_auc_score(labels[test, k], model.decision_function(others[test])))
        out[au] = float(np.mean(scores)) if scores else float("nan")
    return out


def visual_cue_strength(dataset: str, au_structure: str = "standard", seed: int = 0,
                        subjects: Sequence[str] | None = None, intensity: float = 3.0) -> dict[int, float]:
    """Per AU of ``dataset``: how much the face changes when the AU alone is on at
    ``intensity`` (labelled; drawn as the AU structure draws it), as the mean absolute
    grey-level difference to the neutral face over the aligned 176x176 crop of a
    frontal capture, averaged over ``subjects`` (default: the first three)."""
    from .calibration import _CROP_OFFSET
    from .config import resolve_subjects
    from .identity import make_identity
    from .render import Capture, FaceRenderer

    aus = AU_SETS[dataset]
    scale = au_structure_named(au_structure).cue_scale.get(dataset, {})
    subjects = resolve_subjects(dataset, None)[:3] if subjects is None else tuple(subjects)
    box = (_CROP_OFFSET, _CROP_OFFSET, _CROP_OFFSET + 176, _CROP_OFFSET + 176)
    totals = dict.fromkeys(aus, 0.0)
    for subject in subjects:
        renderer = FaceRenderer(make_identity(seed, dataset, subject))

        def grey(values):
            image, _ = renderer.render(values, Capture(), None)
            return np.asarray(image.crop(box).convert("L"), dtype=np.float64)

        neutral = grey({})
        for au in aus:
            totals[au] += float(np.abs(grey({au: intensity * scale.get(au, 1.0)}) - neutral).mean())
    return {au: total / len(subjects) for au, total in totals.items()}


__all__ = [
    "TRUTH_DEFINITION",
    "TRUTH_EDGE_CUT",
    "label_only_auc",
    "participation_matrix",
    "preset_au_structure",
    "preset_truth",
    "prototype_cooccurrence",
    "truth_edges",
    "truth_graph",
    "visual_cue_strength",
]

"""Paired bootstrap of a difference in mean F1 between two models, resampling test subjects.

The question an ablation asks is "is setting X better or worse than the full model, and
by how much?". Two sources of noise blur the answer: the test subjects (another sample
of people would give other numbers) and the training seed (initialisation, data order).
This module handles the first, for *paired* runs: runs of two settings with the same
seed, evaluated on the same test frames.

For one bootstrap replicate the test subjects are drawn with replacement (as many draws
as there are subjects); each drawn subject brings all its frames (a subject drawn twice
counts twice). Both settings are scored on these same frames: per AU, frame-based F1
pooled over the frames (label 9, not coded, left out; a frame is positive when its
probability is ``>= threshold``, exactly as
:func:`~mgrr_pyg.train.metrics.evaluate_predictions`), then the mean over the AUs with
coded frames. The replicate's statistic is the mean, over the seed pairs, of the paired
F1 differences. The 95 % interval is the 2.5 / 97.5 percentile of the replicates.

One subject draw per replicate is shared by all seed pairs: every seed was tested on
the same subjects, so their subject noise is one and the same; independent draws per
seed would treat it as if it averaged out over seeds and shrink the interval by up to
the square root of the number of seeds.

F1 depends on the frames only through the true-positive, false-positive and
false-negative counts, so the counts are summed per subject once and a replicate is a
weighted sum of those (the weights are how often each subject was drawn): thousands of
replicates take milliseconds.

Seed noise is *not* resampled here (three seeds are too few to bootstrap); the ablation
report shows it separately (the spread of the per-seed differences, and the full model
against itself at another seed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mgrr_pyg.data.frames import MISSING_LABEL

#: Bootstrap replicates and the seed of their draws used by the ablation report (fixed,
#: so that regenerating a report gives the same interval).
DEFAULT_REPLICATES = 4000
DEFAULT_BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class SubjectCounts:
    """Per-subject confusion counts of one run's test predictions, ``[subjects, AUs]``.

    ``coded`` counts the frames whose label is not 9 (an AU with no coded frame in a
    resample has no F1 and is left out of the mean, as in the metrics)."""

    subjects: tuple
    aus: tuple
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    coded: np.ndarray

    def select(self, aus: Sequence[int]) -> "SubjectCounts":
        """The counts of the AU columns ``aus`` only (in that order), e.g. to bootstrap the
        mean F1 of a few AUs; an AU the counts do not have is a ValueError."""
        missing = [au for au in aus if au not in self.aus]
        if missing or not aus:
            raise ValueError(f"aus: expected one or more of {list(self.aus)}, found {list(aus)}")
        columns = [self.aus.index(au) for au in aus]
        return SubjectCounts(self.subjects, tuple(aus), self.tp[:, columns], self.fp[:, columns],
                             self.fn[:, columns], self.coded[:, columns])

    def mean_f1(self, weights: Optional[np.ndarray] = None) -> np.ndarray:
        """Mean-over-AU F1 with each subject counted ``weights`` times (``[subjects]`` or
        ``[replicates, subjects]``; default: once each)."""
        w = np.ones(len(self.subjects)) if weights is None else np.asarray(weights, dtype=np.float64)
        tp, fp, fn, coded = (w @ c for c in (self.tp, self.fp, self.fn, self.coded))
        return mean_f1_from_counts(tp, fp, fn, coded)


def mean_f1_from_counts(tp, fp, fn, coded) -> np.ndarray:
    """Mean over AUs (last axis) of F1 = 2 TP / (2 TP + FP + FN); 0 where an AU has coded
    frames but no positive and no predicted positive (scikit-learn's ``zero_division=0``),
    left out where it has no coded frame (``nan`` if no AU has one)."""
    tp, fp, fn, coded = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, coded))
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    f1 = np.where(coded > 0, f1, np.nan)
    defined = coded > 0
    count = defined.sum(-1)
    total = np.where(defined, f1, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def subject_counts(probs, labels, subjects: Sequence[str], threshold: float = 0.5,
                   aus: Optional[Sequence[int]] = None, source: str = "predictions") -> SubjectCounts:
    """Sum each subject's TP / FP / FN / coded frames per AU.

    Args:
        probs, labels: ``[frames, AUs]`` probabilities and labels in {0, 1, 9}.
        subjects: the subject of each frame.
        threshold: a frame is predicted positive when ``prob >= threshold``.
        aus: AU numbers of the columns (for the record).
        source: names the data in error messages (e.g. a file path).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    subjects = np.asarray([str(s) for s in subjects])
    if probs.ndim != 2 or probs.shape != labels.shape:
        raise ValueError(f"{source}: expected probabilities and labels of one shape [frames, AUs], "
                         f"found {list(probs.shape)} and {list(labels.shape)}")
    if subjects.shape[0] != probs.shape[0]:
        raise ValueError(f"{source}: expected one subject per frame ({probs.shape[0]}), found "
                         f"{subjects.shape[0]}")
    bad = ~np.isin(labels, (0, 1, MISSING_LABEL))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{source}: labels must be 0, 1 or {MISSING_LABEL}; found {labels[row, col].item()!r} "
                         f"at frame {row}, AU column {col}")
    names, index = np.unique(subjects, return_inverse=True)
    coded = labels != MISSING_LABEL
    positive = labels == 1
    predicted = probs >= threshold
    one_hot = np.zeros((len(names), probs.shape[0]))
    one_hot[index, np.arange(probs.shape[0])] = 1.0

    def per_subject(mask):
        return one_hot @ mask.astype(np.float64)

    return SubjectCounts(tuple(names.tolist()), tuple(aus) if aus is not None else tuple(range(probs.shape[1])),
                         per_subject(predicted & positive & coded), per_subject(predicted & ~positive & coded),
                         per_subject(~predicted & positive & coded), per_subject(coded))


@dataclass
class PairedDifference:
    """The F1 difference ``a - b`` (fractions) of paired runs and its bootstrap interval.

    ``per_pair``: each pair's difference on the full test set; ``difference``: their
    mean (the point estimate); ``low`` / ``high``: the percentile interval of the
    replicates at ``confidence``."""

    difference: float
    low: float
    high: float
    per_pair: list
    replicates: int
    confidence: float
    subjects: int
    labels: list = field(default_factory=list)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict:
        return {"difference": self.difference, "low": self.low, "high": self.high,
                "half_width": self.half_width, "per_pair": list(self.per_pair),
                "pair_labels": list(self.labels), "replicates": self.replicates,
                "confidence": self.confidence, "subjects": self.subjects}


def paired_bootstrap(pairs: Sequence[tuple[SubjectCounts, SubjectCounts]], replicates: int = DEFAULT_REPLICATES,
                     seed: int = DEFAULT_BOOTSTRAP_SEED, confidence: float = 0.95,
                     labels: Sequence[str] = ()) -> PairedDifference:
    """Bootstrap the mean over ``pairs`` of ``F1(a) - F1(b)``, resampling subjects (one draw
    per replicate, shared by the pairs: see the module docstring).

    Every run of every pair must have the same subjects (the same test part); the two
    runs of a pair are compared on the same frames by construction of the caller (the
    ablation report checks their frame lists)."""
    if not pairs:
        raise ValueError("pairs: expected at least one (a, b) pair of runs, found none")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates: expected a positive integer, found {replicates!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), found {confidence!r}")
    subjects = pairs[0][0].subjects
    for number, (a, b) in enumerate(pairs):
        for run in (a, b):
            if run.subjects != subjects:
                name = labels[number] if number < len(labels) else f"pair {number}"
                raise ValueError(f"{name}: the runs were tested on other subjects "
                                 f"({', '.join(run.subjects)} vs {', '.join(subjects)}); a paired "
                                 "bootstrap needs one test set")
            if run.tp.shape != a.tp.shape:
                raise ValueError(f"pair {number}: the runs have different AU columns "
                                 f"({a.tp.shape[1]} vs {run.tp.shape[1]})")
    rng = np.random.default_rng(seed)
    n = len(subjects)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)  # [B, n]
    per_pair = [float(a.mean_f1() - b.mean_f1()) for a, b in pairs]
    replicated = np.mean([a.mean_f1(weights) - b.mean_f1(weights) for a, b in pairs], axis=0)
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(replicated, [tail, 100 - tail])
    return PairedDifference(float(np.mean(per_pair)), float(low), float(high), per_pair, replicates,
                            confidence, n, list(labels))


def subjects_of_frames(frame_ids: Sequence[str], known_subjects: Sequence[str], source: str) -> list[str]:
    """The subject of each frame id, read as the one path component that is a subject of
    the dataset (``BP4D/F001/T1/543.jpg`` -> ``F001``; the layout of the prepared and
    the synthetic data). A frame id with no or several such components is a ValueError
    naming ``source`` and the frame."""
    known = set(known_subjects)
    found = []
    for row, frame in enumerate(frame_ids):
        parts = [p for p in str(frame).replace("\\", "/").split("/") if p in known]
        if len(set(parts)) != 1:
            raise ValueError(f"{source}: frame {row} ({frame!r}) names "
                             + ("no subject" if not parts else f"several subjects {sorted(set(parts))}")
                             + "; expected a path with one subject folder (e.g. BP4D/F001/T1/543.jpg)")
        found.append(parts[0])
    return found


def load_subject_counts(path: Path, known_subjects: Sequence[str]) -> tuple[SubjectCounts, np.ndarray]:
    """:class:`SubjectCounts` of a run's ``predictions_test.npz`` (its ``subjects`` field
    when present, else the subjects read from ``frame_ids``) and its frame ids."""
    from mgrr_pyg.train.metrics import load_predictions

    data = load_predictions(path)
    missing = [key for key in ("probs", "labels", "frame_ids") if key not in data]
    if missing:
        raise ValueError(f"{path}: missing {missing}; expected the predictions_test.npz a run writes")
    frame_ids = np.asarray(data["frame_ids"]).astype(str)
    if "subjects" in data:
        subjects = np.asarray(data["subjects"]).astype(str).tolist()
    else:
        subjects = subjects_of_frames(frame_ids, known_subjects, str(path))
    threshold = float(data["threshold"]) if "threshold" in data else 0.5
    aus = tuple(int(a) for a in data["aus"]) if "aus" in data else None
    return subject_counts(data["probs"], data["labels"], subjects, threshold, aus, str(path)), frame_ids


__all__ = ["DEFAULT_BOOTSTRAP_SEED", "DEFAULT_REPLICATES", "PairedDifference", "SubjectCounts",
           "load_subject_counts", "mean_f1_from_counts", "paired_bootstrap", "subject_counts",
           "subjects_of_frames"]

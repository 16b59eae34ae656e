"""Evaluation: per-AU F1 / accuracy / ROC AUC, landmark error, label-only baselines,
tables in the paper's layout and saved per-frame predictions.

The protocol (paper section 4.3, ``docs/protocol.md``): per AU, on coded
frames only (label 9 is excluded, never counted as a negative), frame-based F1 pooled
over all test frames of the fold, accuracy and ROC AUC (scikit-learn), then the mean
over AUs ("Avg."). Landmarks: mean point error over the 49 points divided by the
inter-ocular distance, and the failure rate (share of frames with error > 0.1).

Everything here works on saved arrays, so any metric can be recomputed later from
``predictions_test.npz`` with :func:`evaluate_predictions`.
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

# Label 9 (not coded) is defined with the frame table; the metrics leave such frames out.
from mgrr_pyg.data.frames import MISSING_LABEL
from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text

FAILURE_THRESHOLD = 0.1


@dataclass
class AUMetrics:
    """Per-AU detection metrics (fractions in [0, 1]; ``nan`` where undefined).

    Attributes:
        aus: AU numbers, in column order.
        f1, accuracy, auc: ``[n]`` arrays.
        coded, positives: ``[n]`` counts of coded frames and of positive frames.
        notes: Human-readable notes on undefined values (e.g. AUC of an AU whose test
            frames are all negative).
    """

    aus: tuple
    f1: np.ndarray
    accuracy: np.ndarray
    auc: np.ndarray
    coded: np.ndarray
    positives: np.ndarray
    notes: list = field(default_factory=list)

    @property
    def f1_mean(self) -> float:
        return _mean(self.f1)

    @property
    def accuracy_mean(self) -> float:
        return _mean(self.accuracy)

    @property
    def auc_mean(self) -> float:
        return _mean(self.auc)

    def to_dict(self) -> dict:
        return {
            "aus": [int(a) for a in self.aus],
            "f1": _floats(self.f1),
            "accuracy": _floats(self.accuracy),
            "auc": _floats(self.auc),
            "f1_mean": _float(self.f1_mean),
            "accuracy_mean": _float(self.accuracy_mean),
            "auc_mean": _float(self.auc_mean),
            "coded": [int(c) for c in self.coded],
            "positives": [int(p) for p in self.positives],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "AUMetrics":
        def arr(key):
            return np.array([np.nan if v is None else v for v in data[key]], dtype=np.float64)

        return cls(tuple(data["aus"]), arr("f1"), arr("accuracy"), arr("auc"),
                   np.asarray(data["coded"]), np.asarray(data["positives"]),
                   list(data.get("notes", [])))


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(np.nanmean(values))


def _float(v):
    v = float(v)
    return None if math.isnan(v) else v


def _floats(values):
    return [_float(v) for v in np.asarray(values, dtype=np.float64)]


def _as_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_pair(probs: np.ndarray, labels: np.ndarray, aus) -> tuple:
    if probs.ndim != 2:
        raise ValueError(f"probs: expected a [frames, AUs] array, found shape {list(probs.shape)}")
    if labels.shape != probs.shape:
        raise ValueError(
            f"labels: expected the shape of probs {list(probs.shape)}, found {list(labels.shape)}"
        )
    if aus is None:
        aus = tuple(range(probs.shape[1]))
    aus = tuple(int(a) for a in aus)
    if len(aus) != probs.shape[1]:
        raise ValueError(f"aus: expected {probs.shape[1]} AU numbers, found {len(aus)}: {aus}")
    bad = ~np.isin(labels, (0, 1, MISSING_LABEL))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"labels: expected 0, 1 or {MISSING_LABEL} (not coded), found {labels[row, col]!r} "
            f"at row {row}, column {col} (AU{aus[col]})"
        )
    if not np.all(np.isfinite(probs)):
        row, col = np.argwhere(~np.isfinite(probs))[0]
        raise ValueError(
            f"probs: found a non-finite value {probs[row, col]!r} at row {row}, column {col} "
            f"(AU{aus[col]})"
        )
    return aus


def evaluate_predictions(probs, labels, aus: Optional[Sequence[int]] = None,
                         threshold: float = 0.5) -> AUMetrics:
    """Per-AU F1, accuracy and ROC AUC of predicted probabilities (scikit-learn).

    Frames whose label is 9 (not coded) are left out of that AU's metrics. F1 is
    pooled over all coded test frames (frame-based F1 of the paper); an AU without
    positive frames has F1 0 when nothing is predicted positive either (scikit-learn's
    ``zero_division=0``) and an undefined AUC (``nan``, noted in ``notes`` and left out
    of the mean).

    Args:
        probs: ``[N, n]`` probabilities.
        labels: ``[N, n]`` labels in {0, 1, 9}.
        aus: AU numbers of the columns (default ``0..n-1``).
        threshold (float): A frame is predicted positive when ``prob >= threshold``.
            (default: ``0.5``)
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    probs = _as_numpy(probs, "probs").astype(np.float64)
    labels = _as_numpy(labels, "labels").astype(np.int64)
    aus = _check_pair(probs, labels, aus)
    n = probs.shape[1]
    f1 = np.full(n, np.nan)
    acc = np.full(n, np.nan)
    auc = np.full(n, np.nan)
    coded = np.zeros(n, dtype=np.int64)
    positives = np.zeros(n, dtype=np.int64)
    notes = []
    for i, au in enumerate(aus):
        keep = labels[:, i] != MISSING_LABEL
        y = labels[keep, i]
        p = probs[keep, i]
        coded[i] = int(keep.sum())
        positives[i] = int(y.sum())
        if coded[i] == 0:
            notes.append(f"AU{au}: no coded test frame; F1, accuracy and AUC undefined")
            continue
        pred = (p >= threshold).astype(np.int64)
        f1[i] = f1_score(y, pred, zero_division=0.0)
        acc[i] = accuracy_score(y, pred)
        if 0 < positives[i] < coded[i]:
            auc[i] = roc_auc_score(y, p)
        else:
            kind = "positive" if positives[i] else "negative"
            notes.append(f"AU{au}: every coded test frame is {kind}; ROC AUC undefined")
    return AUMetrics(aus, f1, acc, auc, coded, positives, notes)


def landmark_errors(pred, true, interocular) -> np.ndarray:
    """Per-frame landmark error: mean Euclidean point error / inter-ocular distance.

    Args:
        pred, true: ``[N, 49, 2]`` landmarks in the same pixel coordinates.
        interocular: ``[N]`` inter-ocular distance d_o (not squared).
    """
    pred = _as_numpy(pred, "pred").astype(np.float64)
    true = _as_numpy(true, "true").astype(np.float64)
    d_o = _as_numpy(interocular, "interocular").astype(np.float64).reshape(-1)
    if pred.shape != true.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(
            f"landmarks: expected pred and true of one shape [N, points, 2], found "
            f"{list(pred.shape)} and {list(true.shape)}"
        )
    if d_o.shape[0] != pred.shape[0]:
        raise ValueError(f"interocular: expected {pred.shape[0]} values, found {d_o.shape[0]}")
    if np.any(~(d_o > 0)):
        row = int(np.argwhere(~(d_o > 0))[0][0])
        raise ValueError(f"interocular: expected positive distances, found {d_o[row]!r} at row {row}")
    per_point = np.sqrt(((pred - true) ** 2).sum(-1))  # [N, 49]
    return per_point.mean(-1) / d_o


def landmark_metrics(pred, true, interocular, failure_threshold: float = FAILURE_THRESHOLD) -> dict:
    """Mean normalised landmark error and failure rate (share of frames with error >
    ``failure_threshold``), both as fractions; ``frames`` counts the frames."""
    errors = landmark_errors(pred, true, interocular)
    return {
        "mean_error": float(errors.mean()) if errors.size else float("nan"),
        "failure_rate": float((errors > failure_threshold).mean()) if errors.size else float("nan"),
        "frames": int(errors.size),
    }


def positive_rates(labels) -> np.ndarray:
    """Per-AU share of positive frames among coded frames (``nan`` if none coded)."""
    labels = _as_numpy(labels, "labels").astype(np.int64)
    coded = (labels != MISSING_LABEL).sum(0)
    positive = (labels == 1).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(coded > 0, positive / np.maximum(coded, 1), np.nan)


def label_only_baselines(train_labels, test_labels, aus: Optional[Sequence[int]] = None,
                         seed: int = 0, threshold: float = 0.5) -> dict[str, AUMetrics]:
    """Predictions that use the labels alone, never the images.

    - ``"all positive"``: every frame predicted positive (the best constant for F1).
    - ``"prior rate (Bernoulli)"``: each frame positive with probability equal to the
      AU's training positive rate (seeded draws).
    - ``"prior rate (threshold)"``: every frame gets the training rate as its
      probability (positive only for AUs positive in most training frames).

    The rates come from ``train_labels`` only; ``test_labels`` is what is scored.
    Returns a dict name -> :class:`AUMetrics`.
    """
    train_labels = _as_numpy(train_labels, "train_labels").astype(np.int64)
    test_labels = _as_numpy(test_labels, "test_labels").astype(np.int64)
    if train_labels.ndim != 2 or test_labels.ndim != 2 or train_labels.shape[1] != test_labels.shape[1]:
        raise ValueError(
            "train_labels / test_labels: expected [frames, AUs] arrays with the same AUs, found "
            f"{list(train_labels.shape)} and {list(test_labels.shape)}"
        )
    rates = np.nan_to_num(positive_rates(train_labels), nan=0.0)
    n_test = test_labels.shape[0]
    rng = np.random.default_rng(seed)
    constant = np.broadcast_to(rates, test_labels.shape).astype(np.float64)
    draws = (rng.random(test_labels.shape) < rates).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "all positive": evaluate_predictions(np.ones((n_test, len(rates))), test_labels, aus, threshold),
            "prior rate (Bernoulli)": evaluate_predictions(draws, test_labels, aus, threshold),
            "prior rate (threshold)": evaluate_predictions(constant, test_labels, aus, threshold),
        }


def best_baseline(baselines: Mapping[str, AUMetrics]) -> tuple[str, AUMetrics]:
    """The baseline with the highest mean F1."""
    if not baselines:
        raise ValueError("baselines: expected at least one baseline, found none")
    name = max(baselines, key=lambda k: -1.0 if math.isnan(baselines[k].f1_mean) else baselines[k].f1_mean)
    return name, baselines[name]


# -- tables in the paper's layout ---------------------------------------------------------
def _cell(value, scale: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value * scale:.{digits}f}"


def table_rows(rows: Mapping[str, Sequence[float]], aus: Sequence[int], scale: float = 100.0,
               digits: int = 1) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows: AUs as columns, ``Avg.`` (mean over defined AUs) last."""
    header = [""] + [f"AU{a}" for a in aus] + ["Avg."]
    out = []
    for name, values in rows.items():
        values = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
        if values.shape[0] != len(aus):
            raise ValueError(f"table row {name!r}: expected {len(aus)} values, found {values.shape[0]}")
        out.append([name] + [_cell(v, scale, digits) for v in values] + [_cell(_mean(values), scale, digits)])
    return header, out


def markdown_table(rows: Mapping[str, Sequence[float]], aus: Sequence[int], scale: float = 100.0,
                   digits: int = 1) -> str:
    """A markdown table: one row per entry of ``rows``, AUs as columns, Avg. last."""
    header, body = table_rows(rows, aus, scale, digits)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def csv_table(rows: Mapping[str, Sequence[float]], aus: Sequence[int], scale: float = 100.0,
              digits: int = 2, metric: Optional[str] = None) -> str:
    """The same table as CSV (an optional leading ``metric`` column)."""
    header, body = table_rows(rows, aus, scale, digits)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = (["metric"] if metric else []) + ["row"] + header[1:]
    writer.writerow(header)
    for r in body:
        writer.writerow(([metric] if metric else []) + r)
    return buffer.getvalue()


METRIC_TITLES = {"f1": "F1-frame (%)", "accuracy": "Accuracy (%)", "auc": "ROC AUC (%)"}


def results_tables(results: Mapping[str, AUMetrics], fmt: str = "markdown") -> str:
    """F1, accuracy and AUC tables for several named results (model, baselines, folds)
    sharing one AU set, in the paper's layout."""
    if not results:
        raise ValueError("results: expected at least one named result, found none")
    aus = next(iter(results.values())).aus
    for name, m in results.items():
        if tuple(m.aus) != tuple(aus):
            raise ValueError(f"results[{name!r}]: expected AUs {aus}, found {m.aus}")
    parts = []
    for metric, title in METRIC_TITLES.items():
        rows = {name: getattr(m, metric) for name, m in results.items()}
        if fmt == "markdown":
            parts.append(f"**{title}**\n\n" + markdown_table(rows, aus))
        elif fmt == "csv":
            text = csv_table(rows, aus, metric=metric)
            parts.append(text if not parts else text.split("\n", 1)[1])
        else:
            raise ValueError(f"fmt: expected 'markdown' or 'csv', found {fmt!r}")
    return ("\n\n" if fmt == "markdown" else "").join(parts)


# -- saved predictions --------------------------------------------------------------------
def save_predictions(path_stem, probs, labels, aus: Sequence[int], frame_ids: Sequence[str],
                     landmarks_pred=None, landmarks_true=None, interocular=None,
                     threshold: float = 0.5,
                     subjects: Optional[Sequence[str]] = None) -> tuple[Path, Path]:
    """Write every frame's probabilities as ``<stem>.npz`` and ``<stem>.csv``
    (atomically). The CSV has one row per frame: ``frame``, ``prob_AU<k>`` and
    ``label_AU<k>`` (9 = not coded) for every AU. ``subjects`` (the subject of each
    frame, when known) goes into the ``.npz`` as ``subjects``. Returns the two paths."""
    probs = _as_numpy(probs, "probs").astype(np.float32)
    labels = _as_numpy(labels, "labels").astype(np.int64)
    aus = _check_pair(probs.astype(np.float64), labels, aus)
    frame_ids = [str(f) for f in frame_ids]
    if len(frame_ids) != probs.shape[0]:
        raise ValueError(f"frame_ids: expected {probs.shape[0]} ids, found {len(frame_ids)}")
    if subjects is not None:
        subjects = [str(x) for x in subjects]
        if len(subjects) != probs.shape[0]:
            raise ValueError(f"subjects: expected {probs.shape[0]} subjects (one per frame), "
                             f"found {len(subjects)}")
    stem = Path(path_stem)
    arrays = {"probs": probs, "labels": labels, "aus": np.asarray(aus, dtype=np.int64),
              "frame_ids": np.asarray(frame_ids, dtype=str), "threshold": np.float64(threshold)}
    if landmarks_pred is not None:
        arrays["landmarks_pred"] = _as_numpy(landmarks_pred, "landmarks_pred").astype(np.float32)
    if landmarks_true is not None:
        arrays["landmarks_true"] = _as_numpy(landmarks_true, "landmarks_true").astype(np.float32)
    if subjects is not None:
        arrays["subjects"] = np.asarray(subjects, dtype=str)
    if interocular is not None:
        arrays["interocular"] = _as_numpy(interocular, "interocular").astype(np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    npz_path = stem.with_suffix(".npz")
    atomic_save_bytes(npz_path, buffer.getvalue())

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["frame"] + [f"prob_AU{a}" for a in aus] + [f"label_AU{a}" for a in aus])
    for fid, p, y in zip(frame_ids, probs, labels):
        writer.writerow([fid] + [f"{v:.6f}" for v in p] + [int(v) for v in y])
    csv_path = stem.with_suffix(".csv")
    atomic_save_text(csv_path, text.getvalue())
    return npz_path, csv_path


def load_predictions(path) -> dict:
    """Read ``<stem>.npz`` written by :func:`save_predictions` into a dict of arrays."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


__all__ = [
    "AUMetrics",
    "FAILURE_THRESHOLD",
    "MISSING_LABEL",
    "best_baseline",
    "csv_table",
    "evaluate_predictions",
    "label_only_baselines",
    "landmark_errors",
    "landmark_metrics",
    "load_predictions",
    "markdown_table",
    "positive_rates",
    "results_tables",
    "save_predictions",
    "table_rows",
]

"""The validation metrics that can choose the reported epoch, by name.

With a validation split (``--val-subjects``) the trainer evaluates it after every epoch,
records every metric registered here as ``val_<name>`` in the epoch's history row
(``epochs.csv``, ``results.json``) and keeps the epoch with the best value of
``TrainConfig.selection_metric`` (``--selection-metric``; default the mean F1 over the
AUs, the paper's measure) as ``best.pt``. The test part never chooses. Selecting by a new
metric is one decorated function of the evaluation
(:class:`~mgrr_pyg.train.trainer.EvalOutput`: probabilities, labels, per-AU metrics,
landmark errors)::

    @register_selection_metric("f1_worst_au", help="the lowest per-AU F1")
    def f1_worst_au(evaluation):
        return float(np.nanmin(evaluation.metrics.f1))

This module imports no other part of the package (the config validates its names
against it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class SelectionMetric:
    """A registered metric: ``compute(evaluation) -> float``; NaN (undefined on this
    split) never beats a number."""

    name: str
    compute: Callable[[Any], float]
    help: str
    higher_is_better: bool = True

    def better(self, score: float, best: Optional[float]) -> bool:
        """Whether ``score`` improves on ``best`` (``None``: nothing chosen yet)."""
        if best is None:
            return True
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        return score > best if self.higher_is_better else score < best


_METRICS: dict[str, SelectionMetric] = {}


def register_selection_metric(name: str, *, help: str, higher_is_better: bool = True,
                              replace: bool = False):
    """Decorator: record ``compute(evaluation) -> float`` as the selection metric
    ``name`` (``--selection-metric name``; logged as ``val_<name>``)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_selection_metric: expected a name usable as a column "
                         f"(letters, digits, _), found {name!r}")

    def record(compute):
        if name in _METRICS and not replace:
            raise ValueError(f"register_selection_metric: {name!r} is already registered "
                             f"({', '.join(_METRICS)}); pass replace=True to redefine it")
        _METRICS[name] = SelectionMetric(name, compute, help, higher_is_better)
        return compute

    return record


def list_selection_metrics() -> list[str]:
    """The registered names, in registration order (the order of the history columns)."""
    return list(_METRICS)


def selection_metric(name: str) -> SelectionMetric:
    """The registered metric ``name``; a ValueError listing the choices otherwise."""
    try:
        return _METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(f"selection_metric (--selection-metric): expected one of "
                         f"{', '.join(_METRICS)}, found {name!r}") from None


@register_selection_metric("f1", help="mean F1 over the AUs, the paper's measure")
def f1(evaluation) -> float:
    return evaluation.metrics.f1_mean


@register_selection_metric("accuracy", help="mean accuracy over the AUs")
def accuracy(evaluation) -> float:
    return evaluation.metrics.accuracy_mean


@register_selection_metric("auc", help="mean ROC AUC over the AUs")
def auc(evaluation) -> float:
    return evaluation.metrics.auc_mean


__all__ = ["SelectionMetric", "list_selection_metrics", "register_selection_metric",
           "selection_metric"]

"""Plots: per-AU F1 box plots (:mod:`.boxplot`, paper Fig. 3), class activation maps
(:mod:`.cam`, Fig. 4), prior vs learned adjacency (:mod:`.adjacency`, Fig. 5) and
predictions over photos and video frames (:mod:`.faces`); ``mgrr-plot`` (:mod:`.cli`)
draws each from files.
Imports are lazy so that matplotlib is only loaded when a plot is drawn."""
from __future__ import annotations

import importlib

_LAZY = {
    "f1_boxplot": "mgrr_pyg.plots.boxplot",
    "class_activation_maps": "mgrr_pyg.plots.cam",
    "plot_class_activation_maps": "mgrr_pyg.plots.cam",
    "plot_adjacency": "mgrr_pyg.plots.adjacency",
    "plot_adjacencies": "mgrr_pyg.plots.adjacency",
    "plot_face_predictions": "mgrr_pyg.plots.faces",
    "plot_prediction_sequence": "mgrr_pyg.plots.faces",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mgrr_pyg.plots' has no attribute {name!r}")


__all__ = sorted(_LAZY)

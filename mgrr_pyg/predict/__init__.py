"""Prediction with a trained checkpoint on people's own photos, folders, videos and arrays.

Quick start::

    from mgrr_pyg.predict import Detector
    detector = Detector.from_checkpoint("runs/BP4D-fold1-tiny-seed0/last.pt", device="cpu")
    table = detector.predict(["me.jpg", "clip.mp4"], every=5)   # a pandas DataFrame

or ``mgrr-predict me.jpg clip.mp4 --checkpoint last.pt --output out.csv --every 5``.

Modules: :mod:`.detector` (the pipeline), :mod:`.faces` (face finders, box template,
tracking), :mod:`.sources` (files, folders, streamed video, arrays),
:mod:`.preprocess` (alignment and crop, as the data preparation does),
:mod:`.columns` (the output table), :mod:`.inference` (the inference fast path and the
backends), :mod:`.export` (TorchScript / ONNX), :mod:`.weights` (checkpoint digests),
:mod:`.cli` (``mgrr-predict``, ``mgrr-export``).
"""
from __future__ import annotations

import importlib

_LAZY = {
    "Detector": "mgrr_pyg.predict.detector",
    "LANDMARK_METHODS": "mgrr_pyg.predict.detector",
    "CascadeFaceFinder": "mgrr_pyg.predict.faces",
    "MediaPipeFaceFinder": "mgrr_pyg.predict.faces",
    "Face": "mgrr_pyg.predict.faces",
    "FaceTracker": "mgrr_pyg.predict.faces",
    "box_template_landmarks": "mgrr_pyg.predict.faces",
    "output_columns": "mgrr_pyg.predict.columns",
    "InputError": "mgrr_pyg.predict.sources",
    "iter_video": "mgrr_pyg.predict.sources",
    "prepare_for_inference": "mgrr_pyg.model.inference",
    "export_onnx": "mgrr_pyg.predict.export",
    "export_torchscript": "mgrr_pyg.predict.export",
    "load_exported": "mgrr_pyg.predict.export",
    "DigestError": "mgrr_pyg.predict.weights",
    "verify_digest": "mgrr_pyg.predict.weights",
    "write_digest": "mgrr_pyg.predict.weights",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mgrr_pyg.predict' has no attribute {name!r}")


__all__ = sorted(_LAZY)

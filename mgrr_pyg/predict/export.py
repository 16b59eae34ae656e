"""Export of the inference fast-path model to TorchScript and ONNX.

Both formats hold :class:`~mgrr_pyg.predict.inference.InferenceModel` (BatchNorm folded,
eval mode) traced at a **fixed batch size** ``B``: the model builds its graph structure
(the region, channel and pixel graphs of a batch) per batch size, and a traced graph
keeps the one it saw. The predictor pads the last, partial batch up to ``B``. Inputs
``images [B, 3, 176, 176]`` (float32 in [-1, 1]) and ``region_landmarks [B, 49, 2]``
(crop pixels); outputs ``probs [B, n]`` and ``landmarks [B, 49, 2]``.

Each file carries its metadata (AU numbers, batch size, the model config and the
checkpoint's SHA-256) as JSON: a TorchScript extra file ``mgrr_pyg.json`` and the ONNX
``metadata_props`` entry ``mgrr_pyg``, so :func:`load_exported` needs nothing else.

Measured agreement with eager mode (``tests/predict/test_export.py``): probabilities
within :data:`PROB_TOLERANCE`, landmarks within :data:`LANDMARK_TOLERANCE` pixels.
"""
from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from mgrr_pyg.model.inference import prepare_for_inference
from mgrr_pyg.utils.io import atomic_save_bytes

from .inference import InferenceModel, example_inputs

#: Largest difference to eager mode accepted by the tests (float32 rounding of a
#: reordered graph; measured ~1e-7 for probabilities and ~1e-5 px for landmarks).
PROB_TOLERANCE = 1e-5
LANDMARK_TOLERANCE = 1e-3
METADATA_KEY = "mgrr_pyg"
FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17


def _fixed_batch_model(model: nn.Module, batch_size: int) -> InferenceModel:
    """A prepared CPU copy of ``model`` whose graph structure is that of batch
    ``batch_size``, wrapped in :class:`InferenceModel`, ready to trace.

    While tracing, ``images.size(0)`` is a traced tensor, not an int, and the model's
    per-batch-size graph cache cannot key on it; the copy answers every lookup with the
    graphs of the one batch size it is exported for."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, found {batch_size!r}")
    # fp32: the exported graphs carry no autocast (whatever this machine's default precision)
    prepared = prepare_for_inference(model, "cpu", channels_last=False, copy_model=True,
                                     precision="fp32")
    graphs = prepared.graphs(batch_size, torch.device("cpu"))
    prepared.graphs = lambda batch, device: graphs  # instance attribute: this copy only
    return InferenceModel(prepared).eval()


def export_metadata(model: nn.Module, batch_size: int, checkpoint_sha256: Optional[str] = None,
                    extra: Optional[dict] = None) -> dict:
    """What an exported file records about itself."""
    config = model.config
    meta = {"format_version": 1, "aus": [int(a) for a in config.aus], "batch_size": int(batch_size),
            "model_config": config.to_dict(), "checkpoint_sha256": checkpoint_sha256,
            "inputs": ["images [B, 3, 176, 176] float32 in [-1, 1]",
                       "region_landmarks [B, 49, 2] float32 crop pixels"],
            "outputs": ["probs [B, n] probability of occurrence", "landmarks [B, 49, 2] crop pixels"]}
    meta.update(extra or {})
    return meta


def _trace(wrapped: InferenceModel, batch_size: int):
    """Trace at ``batch_size``. Warnings silenced here and around ``torch.jit.save`` /
    ``load``: the tracer's about the model's data-dependent input
    checks, which are skipped while tracing and so say nothing about the export; and
    torch's deprecation of TorchScript in favour of ``torch.export`` (the README says it)."""
    inputs = example_inputs(batch_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(wrapped, inputs, check_trace=False), inputs


def export_torchscript(model: nn.Module, path: Optional[str | os.PathLike] = None,
                       batch_size: int = 8, checkpoint_sha256: Optional[str] = None):
    """Trace the inference model at ``batch_size`` and save it (atomically) to ``path``.

    Returns ``(module, metadata)``; the module is the traced one (on the CPU)."""
    wrapped = _fixed_batch_model(model, batch_size)
    traced, _ = _trace(wrapped, batch_size)
    meta = export_metadata(model, batch_size, checkpoint_sha256)
    if path is not None:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see _trace
            torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})
        atomic_save_bytes(path, buffer.getvalue())
    return traced, meta


def export_onnx(model: nn.Module, path: Optional[str | os.PathLike] = None, batch_size: int = 8,
                checkpoint_sha256: Optional[str] = None) -> tuple[bytes, dict]:
    """Export the inference model at ``batch_size`` to ONNX (opset :data:`ONNX_OPSET`,
    the TorchScript-based exporter) and save it (atomically) to ``path``.

    Returns ``(model bytes, metadata)``. Needs the ``onnx`` package (``mgrr_pyg[onnx]``)
    to attach the metadata."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError("ONNX export needs onnx: pip install 'mgrr_pyg[onnx]'") from err
    wrapped = _fixed_batch_model(model, batch_size)
    inputs = example_inputs(batch_size)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, inputs, buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images", "region_landmarks"],
                          output_names=["probs", "landmarks"], do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    meta = export_metadata(model, batch_size, checkpoint_sha256)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    data = proto.SerializeToString()
    if path is not None:
        atomic_save_bytes(path, data)
    return data, meta


def exported_format(path: str | os.PathLike) -> Optional[str]:
    """``"onnx"`` or ``"torchscript"`` for an exported file, None for anything else (a
    checkpoint is a ``torch.save`` zip without TorchScript code)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(name.endswith(f"extra/{METADATA_KEY}.json") for name in names):
            return "torchscript"
    return None


def load_exported(path: str | os.PathLike, device="cpu", threads: Optional[int] = None):
    """``(backend, metadata)`` for a file written by :func:`export_torchscript` or
    :func:`export_onnx`."""
    from .inference import OnnxBackend, TorchScriptBackend

    path = Path(path)
    kind = exported_format(path)
    if kind == "torchscript":
        extra = {f"{METADATA_KEY}.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see _trace
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        meta = json.loads(extra[f"{METADATA_KEY}.json"])
        return TorchScriptBackend(module, meta["batch_size"], device), meta
    if kind == "onnx":
        try:
            import onnx
        except ImportError as err:
            raise ImportError(f"{path}: reading an ONNX model needs onnx and onnxruntime: "
                              "pip install 'mgrr_pyg[onnx]'") from err
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as err:  # protobuf decode errors have several types
            raise ValueError(f"{path}: expected an ONNX model written by mgrr-export, found a "
                             f"file onnx cannot parse ({type(err).__name__}: {err})") from None
        props = {p.key: p.value for p in proto.metadata_props}
        if METADATA_KEY not in props:
            raise ValueError(f"{path}: an ONNX model without the {METADATA_KEY!r} metadata entry "
                             "(AU numbers, batch size); export it with mgrr-export")
        meta = json.loads(props[METADATA_KEY])
        return OnnxBackend(path.read_bytes(), meta["batch_size"], device, threads), meta
    raise ValueError(f"{path}: expected an ONNX (.onnx) or TorchScript file written by "
                     "mgrr-export")


def check_export(model: nn.Module, path: str | os.PathLike, batches: int = 2) -> dict:
    """Largest absolute differences between an exported file and the eager inference
    model on ``batches`` input batches other than the one it was traced with:
    ``{"probs": ..., "landmarks": ...}``."""
    from .inference import EagerBackend

    backend, meta = load_exported(path)
    eager = EagerBackend(model, "cpu", bf16=False, channels_last=False)
    worst = {"probs": 0.0, "landmarks": 0.0}
    for seed in range(1, batches + 1):
        images, landmarks = (t.numpy() for t in example_inputs(meta["batch_size"], seed=seed))
        for name, a, b in zip(("probs", "landmarks"), backend(images, landmarks),
                              eager(images, landmarks)):
            worst[name] = max(worst[name], float(abs(a - b).max()))
    return worst


__all__ = ["FORMATS", "check_export", "LANDMARK_TOLERANCE", "METADATA_KEY", "ONNX_OPSET", "PROB_TOLERANCE",
           "export_metadata", "export_onnx", "export_torchscript", "exported_format",
           "load_exported"]

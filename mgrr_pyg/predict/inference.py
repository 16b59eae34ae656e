"""The three backends that run the inference fast path (eager PyTorch, TorchScript, ONNX
Runtime), shared by prediction and export.

:func:`~mgrr_pyg.model.inference.prepare_for_inference` (re-exported here) is the one
call that turns a trained :class:`~mgrr_pyg.model.MGRRNet` into its inference form:
eval mode, BatchNorm folded into the convolutions, moved to the device, channels-last
(NHWC). :class:`InferenceModel` wraps it into the two-tensor interface every backend
shares::

    probs [B, n], landmarks [B, 49, 2] = model(images [B, 3, 176, 176], region_landmarks [B, 49, 2])

The AU regions are always placed from the given ``region_landmarks`` (crop pixels), so
the three backends compute the same function (the exported graphs have no optional
input); the predictor passes the landmarks the face was aligned with.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from mgrr_pyg.facs import CROP_SIZE
# The fast path lives with the model; importable from here as before.
from mgrr_pyg.model.inference import AutocastInference, inference_precision, prepare_for_inference
# One device resolver (``cuda:N`` checked to exist); the old name kept.
from mgrr_pyg.utils.devices import resolve_device as resolve_inference_device

BACKENDS = ("eager", "torchscript", "onnx")


def autocast_context(device: torch.device, bf16: bool):
    """bfloat16 autocast on ``device`` when ``bf16``, else nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class InferenceModel(nn.Module):
    """``(images, region_landmarks) -> (probs, landmarks)``: the prepared model behind a
    plain two-tensor interface (what TorchScript and ONNX export)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, region_landmarks: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(images, region_landmarks=region_landmarks)
        return out.probs, out.landmarks


class EagerBackend:
    """The prepared model in eager PyTorch, under ``torch.inference_mode``. Inputs and
    outputs are NumPy float32 arrays.

    ``precision``: ``"fp32"``, ``"bf16"`` (the fast path's bf16 autocast) or ``"auto"``
    (the precision :func:`~mgrr_pyg.model.inference.default_precision` chooses for the
    device: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere); None (default):
    from the older switch ``bf16``: True = ``"bf16"``, False (default) = ``"fp32"``,
    None = ``"auto"``. Giving both is allowed only when they agree. The attribute
    ``precision`` says which ran."""

    name = "eager"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 bf16: Optional[bool] = False, channels_last: bool = True,
                 prepared: bool = False, precision: Optional[str] = None):
        from mgrr_pyg.model.inference import PRECISIONS

        if bf16 not in (True, False, None):
            raise ValueError(f"bf16: expected True, False or None, found {bf16!r}")
        switch = "auto" if bf16 is None else "bf16" if bf16 else "fp32"
        if precision is None:
            wanted = switch
        elif precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS} or None, found {precision!r}")
        elif bf16 is not False and switch != precision:  # bf16=False is the default: no opinion
            raise ValueError(f"bf16={bf16} and precision={precision!r} disagree; give one")
        else:
            wanted = precision
        self.device = resolve_inference_device(device)
        self.channels_last = bool(channels_last)
        self.model = model if prepared else prepare_for_inference(
            model, self.device, self.channels_last, precision=wanted)
        self.precision = inference_precision(self.model)
        if prepared and wanted == "bf16" and self.precision != "bf16":  # prepared in fp32, bf16 asked for
            self.model = AutocastInference(self.model, self.device.type)
            self.precision = "bf16"
        self.bf16 = self.precision == "bf16"
        self.batch_size: Optional[int] = None  # any batch size

    def __call__(self, images: np.ndarray, region_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            x = torch.from_numpy(images).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            lm = torch.from_numpy(region_landmarks).to(self.device, non_blocking=True)
            out = self.model(x, region_landmarks=lm)
            return (out.probs.float().cpu().numpy(), out.landmarks.float().cpu().numpy())


class TorchScriptBackend:
    """A traced :class:`InferenceModel` (fixed batch size, see
    :func:`mgrr_pyg.predict.export.export_torchscript`); the predictor pads the last batch."""

    name = "torchscript"

    def __init__(self, module, batch_size: int, device: str | torch.device = "cpu"):
        self.device = resolve_inference_device(device)
        self.module = module.to(self.device).eval()
        self.batch_size = int(batch_size)

    def __call__(self, images: np.ndarray, region_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            probs, landmarks = self.module(torch.from_numpy(images).to(self.device),
                                           torch.from_numpy(region_landmarks).to(self.device))
        return probs.cpu().numpy(), landmarks.cpu().numpy()


class OnnxBackend:
    """An exported ONNX graph run by ONNX Runtime (the ``mgrr_pyg[onnx]`` extra); fixed
    batch size like :class:`TorchScriptBackend`."""

    name = "onnx"

    def __init__(self, model_bytes_or_path, batch_size: int, device: str | torch.device = "cpu",
                 threads: Optional[int] = None):
        ort = import_onnxruntime()
        self.device = resolve_inference_device(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"device: {self.device} asked for with --backend onnx, but this "
                                 "onnxruntime has no CUDA provider (install onnxruntime-gpu)")
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0})]
        source = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
        self.session = ort.InferenceSession(source, options, providers=providers)
        self.batch_size = int(batch_size)

    def __call__(self, images: np.ndarray, region_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, landmarks = self.session.run(None, {"images": images,
                                                   "region_landmarks": region_landmarks})
        return probs, landmarks


def import_onnxruntime():
    """``onnxruntime``, or an ImportError that names the extra to install."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError("--backend onnx needs onnxruntime: pip install 'mgrr_pyg[onnx]'") from err
    return onnxruntime


def example_inputs(batch_size: int, device: str | torch.device = "cpu",
                   seed: int = 0) -> tuple[Tensor, Tensor]:
    """A deterministic input pair (noise images, landmarks spread over the crop) of the
    shapes the backends take; seed 0 traces the exports, other seeds check them."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, CROP_SIZE, CROP_SIZE, generator=generator) * 2 - 1
    landmarks = 30 + torch.rand(batch_size, 49, 2, generator=generator) * (CROP_SIZE - 60)
    return images.to(device), landmarks.to(device)


__all__ = ["BACKENDS", "EagerBackend", "InferenceModel", "OnnxBackend", "TorchScriptBackend",
           "autocast_context", "example_inputs", "import_onnxruntime", "prepare_for_inference",
           "resolve_inference_device"]

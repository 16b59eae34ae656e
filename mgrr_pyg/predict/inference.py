"""The inference fast path, shared by prediction and export, and the three backends that
run it (eager PyTorch, TorchScript, ONNX Runtime).

:func:`prepare_for_inference` is the one call that turns a trained
:class:`~mgrr_pyg.model.MGRRNet` into its inference form: eval mode, BatchNorm folded
into the convolutions (:meth:`~mgrr_pyg.model.MGRRNet.fold_batchnorm`), moved to the
device, channels-last (NHWC). :class:`InferenceModel` wraps it into the two-tensor
interface every backend shares::

    probs [B, n], landmarks [B, 49, 2] = model(images [B, 3, 176, 176], region_landmarks [B, 49, 2])

The AU regions are always placed from the given ``region_landmarks`` (crop pixels), so
the three backends compute the same function (the exported graphs have no optional
input); the predictor passes the landmarks the face was aligned with.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from mgrr_pyg.facs import CROP_SIZE

BACKENDS = ("eager", "torchscript", "onnx")


def resolve_inference_device(name: str | torch.device = "cpu") -> torch.device:
    """``"cpu"``, ``"cuda"`` (= ``cuda:0``), ``"cuda:N"`` or ``"auto"`` as a device that
    exists here, or a ValueError naming the argument and what this machine has."""
    from mgrr_pyg.train.distributed import resolve_device

    device = resolve_device(str(name))
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device: {str(name)!r} asked for, but this machine has {count} CUDA "
                             f"device{'s' if count != 1 else ''} (cuda:0 .. cuda:{count - 1})")
    return device


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu",
                          channels_last: bool = True, copy_model: bool = True) -> nn.Module:
    """The inference form of a trained model: a copy (unless ``copy_model=False``) in eval
    mode with BatchNorm folded into the preceding convolutions, on ``device``.

    Args:
        model (MGRRNet): The trained model.
        device: Where it runs (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        channels_last (bool): NHWC weights (feed NHWC inputs too). Folding plus NHWC
            was the fastest fp32 variant of ``mgrr_bp4d`` on the 2-core CPU (34 vs 47
            ms/image eager at batch 8, ``bench/README.md``, Model).
        copy_model (bool): Work on a deep copy, leaving ``model`` as it was.
    """
    device = resolve_inference_device(device)
    model = copy.deepcopy(model) if copy_model else model
    model.eval()
    model.fold_batchnorm()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


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
    """The prepared model in eager PyTorch, under ``torch.inference_mode`` (and bf16
    autocast when asked for). Inputs and outputs are NumPy float32 arrays."""

    name = "eager"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", bf16: bool = False,
                 channels_last: bool = True, prepared: bool = False):
        self.device = resolve_inference_device(device)
        self.channels_last = bool(channels_last)
        self.model = model if prepared else prepare_for_inference(model, self.device,
                                                                  self.channels_last)
        self.bf16 = bool(bf16)
        self.batch_size: Optional[int] = None  # any batch size

    def __call__(self, images: np.ndarray, region_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The graph structure of a batch size is cached process-wide; built inside
        # inference mode it would hold inference tensors that a later autograd use (a
        # Grad-CAM, training in the same process) cannot save. Build it outside first.
        self.model.graphs(len(images), self.device)
        with torch.inference_mode():
            x = torch.from_numpy(images).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            lm = torch.from_numpy(region_landmarks).to(self.device, non_blocking=True)
            with autocast_context(self.device, self.bf16):
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

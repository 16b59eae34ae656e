"""The inference fast path of a trained :class:`~mgrr_pyg.model.MGRRNet`: the one call
that turns it into the form prediction, export and the benchmarks run.

:func:`prepare_for_inference`: eval mode, BatchNorm folded into the convolutions
(:meth:`~mgrr_pyg.model.MGRRNet.fold_batchnorm`), moved to a device that exists here,
channels-last (NHWC) weights, no gradients, and the precision chosen for the device
(:func:`default_precision`: bf16 autocast on CUDA and on CPUs with native bf16, fp32
elsewhere). ``mgrr_pyg.predict`` wraps the result into its backends (eager, TorchScript,
ONNX; the exports are traced in fp32).

**What bf16 costs in accuracy** (:data:`BF16_MAX_PROB_DIFFERENCE`,
:data:`BF16_MAX_LANDMARK_PX`): measured on ``mgrr_bp4d`` (seeded untrained weights, the 16
deterministic inputs of ``mgrr_pyg.predict.inference.example_inputs(16, seed=1)``, CPU
autocast on the 2-core AVX2 machine, 2026-12-01, ``python bench/bench_inference.py``): max
|p_bf16 - p_fp32| = 0.0021 over 192 AU probabilities, max landmark shift 0.26 px, 192 of
192 AU decisions (p >= 0.5) equal; the ``tiny`` preset: 0.0022, 0.27 px, 192 of 192. (An
earlier AVX-512 machine gave 0.0009 / 0.26 px at batch 8.) The stated bound is 0.01 on
every probability and 1 px on every landmark, about 5x and 4x the measured worst case;
it implies that every AU decision whose fp32 probability is more than 0.01 from the
threshold is the same in bf16. ``tests/model/test_inference_fast_path.py`` checks it.

**Speed** (same run, 1 thread, batch 8, load ~6.7): on this AVX2 CPU without native bf16
the bf16 forward of ``mgrr_bp4d`` is ~7x *slower* than fp32 (1022 vs 152 ms/image), hence
fp32 by default here.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import Tensor, nn

from mgrr_pyg.utils.devices import resolve_device

#: What ``precision=`` takes: ``"auto"`` (:func:`default_precision`), ``"fp32"``, ``"bf16"``.
PRECISIONS = ("auto", "fp32", "bf16")
#: The bound bf16 autocast keeps every AU probability within, against fp32 (module docstring).
BF16_MAX_PROB_DIFFERENCE = 0.01
#: The bound bf16 autocast keeps every landmark within, crop pixels.
BF16_MAX_LANDMARK_PX = 1.0
# MGRROutput fields cast back to float32 after a bf16 forward (what callers read).
_FLOAT32_FIELDS = ("probs", "local_probs", "integrated_probs", "local_logits",
                   "integrated_logits", "landmarks")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX tiles or AVX-512 BF16). Without them
    torch converts and bf16 runs slower than fp32 (the 2-core AVX2 machine: a bf16 matmul
    ~70x slower than fp32, the ``mgrr_bp4d`` forward ~7x slower)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in checks:  # private torch helpers (torch >= 2.1); absent: assume none
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            continue
    return False


def default_precision(device: str | torch.device = "cpu") -> str:
    """The precision of the fast path on ``device``: ``"bf16"`` on a CUDA device that
    supports it and on a CPU with native bf16 (:func:`cpu_has_fast_bf16`), else ``"fp32"``
    (so on the 2-core AVX2 development machine: fp32)."""
    device = resolve_device(device)
    if device.type == "cuda":
        with torch.cuda.device(device):
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


class AutocastInference(nn.Module):
    """A prepared model run under bf16 autocast; the probabilities, logits and landmarks of
    its :class:`~mgrr_pyg.model.MGRROutput` come back as float32 (the maps stay bf16).
    Attributes it does not have (``config``, ``graphs``, ...) are the wrapped model's; its
    ``state_dict`` is the model's under ``model.`` (save a model before preparing it)."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, *args, **kwargs):
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            out = self.model(*args, **kwargs)
        if dataclasses.is_dataclass(out):
            return dataclasses.replace(out, **{
                name: getattr(out, name).float() for name in _FLOAT32_FIELDS
                if isinstance(getattr(out, name, None), Tensor)})
        return out

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules
        except AttributeError:
            return getattr(super().__getattr__("model"), name)


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu",
                          channels_last: bool = True, copy_model: bool = True,
                          precision: str = "auto") -> nn.Module:
    """The inference form of a trained model: a copy (unless ``copy_model=False``) in eval
    mode with BatchNorm folded into the preceding convolutions, on ``device``, in the
    precision of ``precision``.

    Args:
        model (MGRRNet): The trained model.
        device: Where it runs (``"cpu"``, ``"cuda"``, ``"cuda:N"``; checked to exist by
            :func:`mgrr_pyg.utils.devices.resolve_device`).
        channels_last (bool): NHWC weights (feed NHWC inputs too). Folding plus NHWC
            was the fastest fp32 variant of ``mgrr_bp4d`` on an AVX-512 CPU (34 vs 47
            ms/image eager at batch 8, ``bench/README.md``, Model); on the AVX2 machine
            it gained nothing measurable.
        copy_model (bool): Work on a deep copy, leaving ``model`` as it was.
        precision (str): ``"auto"`` (default): :func:`default_precision` of ``device``:
            bf16 on CUDA and on CPUs with native bf16, fp32 on other CPUs (bf16 there is
            slower, not faster). ``"bf16"``: bf16 autocast (the model is returned wrapped
            in :class:`AutocastInference`); it keeps every probability within
            :data:`BF16_MAX_PROB_DIFFERENCE` (0.01) and every landmark within
            :data:`BF16_MAX_LANDMARK_PX` (1 px) of fp32 (module docstring: measured
            0.0021 and 0.26 px on ``mgrr_bp4d``). ``"fp32"``: no autocast (what the exports trace).

    Raises:
        ValueError: an unknown ``precision`` or device (before anything is copied).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, found {precision!r}")
    device = resolve_device(device)
    if precision == "auto":
        precision = default_precision(device)
    if isinstance(model, AutocastInference):  # prepared before: re-prepare the model inside
        model = model.model
    model = copy.deepcopy(model) if copy_model else model
    model.eval()
    model.fold_batchnorm()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if precision == "bf16":
        return AutocastInference(model, device.type, torch.bfloat16).eval()
    return model


def inference_precision(model: nn.Module) -> str:
    """``"bf16"`` for a model :func:`prepare_for_inference` wrapped in bf16 autocast, else
    ``"fp32"``."""
    return "bf16" if isinstance(model, AutocastInference) else "fp32"


__all__ = ["AutocastInference", "BF16_MAX_LANDMARK_PX", "BF16_MAX_PROB_DIFFERENCE", "PRECISIONS",
           "cpu_has_fast_bf16", "default_precision", "inference_precision",
           "prepare_for_inference"]

"""The inference fast path of a trained :class:`~mgrr_pyg.model.MGRRNet`: the one call
that turns it into the form prediction, export and the benchmarks run.

:func:`prepare_for_inference`: eval mode, BatchNorm folded into the convolutions
(:meth:`~mgrr_pyg.model.MGRRNet.fold_batchnorm`), moved to a device that exists here,
channels-last (NHWC) weights, no gradients. ``mgrr_pyg.predict`` wraps the result into
its backends (eager, TorchScript, ONNX).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from mgrr_pyg.utils.devices import resolve_device


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu",
                          channels_last: bool = True, copy_model: bool = True) -> nn.Module:
    """The inference form of a trained model: a copy (unless ``copy_model=False``) in eval
    mode with BatchNorm folded into the preceding convolutions, on ``device``.

    Args:
        model (MGRRNet): The trained model.
        device: Where it runs (``"cpu"``, ``"cuda"``, ``"cuda:N"``; checked to exist by
            :func:`mgrr_pyg.utils.devices.resolve_device`).
        channels_last (bool): NHWC weights (feed NHWC inputs too). Folding plus NHWC
            was the fastest fp32 variant of ``mgrr_bp4d`` on the 2-core CPU (34 vs 47
            ms/image eager at batch 8, ``bench/README.md``, Model).
        copy_model (bool): Work on a deep copy, leaving ``model`` as it was.
    """
    device = resolve_device(device)
    model = copy.deepcopy(model) if copy_model else model
    model.eval()
    model.fold_batchnorm()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


__all__ = ["prepare_for_inference"]

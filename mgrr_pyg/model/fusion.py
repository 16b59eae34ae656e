"""Inference-time folding of BatchNorm into the convolution before it (eval statistics).

Used by :meth:`mgrr_pyg.model.MGRRNet.fuse_for_inference`. Only conv -> BatchNorm
pairs are folded; the stem's BatchNorms sit before a ReLU + convolution or after a
residual sum, where folding would need rescaled downstream statistics, so they stay.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .regions import AURegionFeatures


def _fuse_sequential(sequential: nn.Sequential) -> None:
    children = list(sequential.children())
    for index in range(len(children) - 1):
        conv, norm = children[index], children[index + 1]
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            sequential[index] = fuse_conv_bn_eval(conv, norm)
            sequential[index + 1] = nn.Identity()


def fuse_model(model: nn.Module) -> nn.Module:
    """Fold conv -> BatchNorm pairs of ``model`` in place (must be in eval mode)."""
    if model.training:
        raise ValueError("fuse_model: put the model in eval mode first (BatchNorm folding "
                         "uses the running statistics)")
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module)
        elif isinstance(module, AURegionFeatures) and isinstance(module.norm, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.norm)
            module.norm = nn.Identity()
    return model

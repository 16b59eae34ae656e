"""Inference-time folding of BatchNorm into the convolution before it (eval statistics).

Used by :meth:`mgrr_pyg.model.MGRRNet.fold_batchnorm`. Only conv -> BatchNorm pairs are
folded; the stem's BatchNorms sit before a ReLU + convolution or after a residual sum,
where folding would need rescaled downstream statistics, so they stay.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .regions import AUFeatures


def _fold_sequential(sequential: nn.Sequential) -> None:
    children = list(sequential.children())
    for index in range(len(children) - 1):
        conv, norm = children[index], children[index + 1]
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            sequential[index] = fuse_conv_bn_eval(conv, norm)  # (torch's name for folding)
            sequential[index + 1] = nn.Identity()


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold the conv -> BatchNorm pairs of ``model`` in place (it must be in eval mode)."""
    if model.training:
        raise ValueError("fold_batchnorm: put the model in eval mode first (BatchNorm folding "
                         "uses the running statistics)")
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
        elif isinstance(module, AUFeatures) and isinstance(module.norm, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.norm)
            module.norm = nn.Identity()
    return model


__all__ = ["fold_batchnorm"]

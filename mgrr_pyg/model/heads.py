r"""The two classifiers of MGRR-Net (Eq. 9-11): a per-AU (local, multi-branch) classifier
on each refined AU feature :math:`\mathbf{v}_i^K`, and the integrated classifier on all
refined AU features together with the alignment branch's hidden feature."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LocalAUHeads(nn.Module):
    r"""One linear classifier per AU (the multi-branch output, :math:`L_{au}`):

    .. math::
        z_i = \mathbf{w}_i^\top \mathbf{v}_i^K + b_i

    Args:
        in_channels (int): :math:`d_v`.
        num_aus (int): :math:`n`.

    Shapes:
        - **input:** :math:`(B, n, d_v)`
        - **output:** logits :math:`(B, n)`
    """

    def __init__(self, in_channels: int, num_aus: int) -> None:
        super().__init__()
        self.in_channels, self.num_aus = in_channels, num_aus
        self.weight = nn.Parameter(torch.empty(num_aus, in_channels))
        self.bias = nn.Parameter(torch.empty(num_aus))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / self.in_channels ** 0.5  # nn.Linear's default, per AU
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: Tensor) -> Tensor:
        return (features * self.weight).sum(-1) + self.bias  # [B, n]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, num_aus={self.num_aus}"


class IntegratedHead(nn.Module):
    r"""The integrated classifier (:math:`L_{int}`): one linear map from the
    concatenation of all :math:`n` refined AU features and the alignment feature
    :math:`\mathbf{h}` to the :math:`n` logits.

    .. math::
        \mathbf{z} = \mathbf{W} [\mathbf{v}_1^K \Vert \dots \Vert \mathbf{v}_n^K
        \Vert \mathbf{h}] + \mathbf{b}

    Args:
        au_channels (int): :math:`d_v`.
        num_aus (int): :math:`n`.
        alignment_channels (int): Width of :math:`\mathbf{h}` (512).

    Shapes:
        - **input:** :math:`(B, n, d_v)`, :math:`(B, 512)`
        - **output:** logits :math:`(B, n)`
    """

    def __init__(self, au_channels: int, num_aus: int, alignment_channels: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(num_aus * au_channels + alignment_channels, num_aus)

    def reset_parameters(self) -> None:
        self.classifier.reset_parameters()

    def forward(self, features: Tensor, alignment_feature: Tensor) -> Tensor:
        joint = torch.cat([features.flatten(1), alignment_feature], dim=1)  # [B, n d_v + 512]
        return self.classifier(joint)

    def extra_repr(self) -> str:
        return (f"{self.classifier.in_features} -> "
                f"{self.classifier.out_features}")

r"""The face-alignment branch (JAA-Net's, reused by MGRR-Net): 49 landmarks regressed
from the global feature :math:`O_G`, and the 512-dim hidden feature that the integrated
classifier also reads (Eq. 9-11, :math:`L_{int}`)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from mgrr_pyg.facs import CROP_SIZE, NUM_LANDMARKS

from .config import AlignmentConfig
from .stem import MaxPool2x2


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class AlignmentBranch(nn.Module):
    r"""Landmark regression on :math:`O_G`.

    Three blocks of ``[conv3x3-BN-ReLU] x 2 + max-pool`` (64 -> 96 -> 128 -> 160
    channels; 44 -> 22 -> 11 -> 5 pixels), then

    .. math::
        \mathbf{h} = \mathrm{ReLU}(\mathbf{W}_1 \operatorname{vec}(\mathbf{F}) + \mathbf{b}_1)
        \in \mathbb{R}^{512}, \qquad
        \hat{\mathbf{s}} = c + \tfrac{S}{2} (\mathbf{W}_2 \mathbf{h} + \mathbf{b}_2)
        \in \mathbb{R}^{49 \times 2}

    with :math:`S = 176` the crop side and :math:`c = (S - 1)/2` its centre.

    Two additions to JAA-Net's ``AlignNet`` (``Linear(4000, 512)``, ``Linear(512, 98)``,
    nothing between, outputs in crop pixels), each a switch of the config: the ReLU
    between the two linear maps (``hidden_relu``; two stacked linear maps without one
    are a single linear map), and the output parametrised around the crop centre in
    half-crop units (``centred_output``), so a freshly initialised branch predicts points
    near the centre and the step size of SGD is in a useful range for pixel targets.
    With both off, :math:`\mathbf{h} = \mathbf{W}_1 \operatorname{vec}(\mathbf{F}) +
    \mathbf{b}_1` and :math:`\hat{\mathbf{s}} = \mathbf{W}_2 \mathbf{h} + \mathbf{b}_2`,
    JAA-Net's head.

    Args:
        in_channels (int, optional): Channels of :math:`O_G`. (default: :obj:`64`)
        config (AlignmentConfig, optional): ``channels``, the widths of the three blocks,
            ``hidden``, the width of the hidden feature :math:`\mathbf{h}`, and the
            switches ``hidden_relu`` and ``centred_output``.
            (default: :obj:`AlignmentConfig()`, (96, 128, 160), 512, both on)
        map_size (int, optional): Side of :math:`O_G`. (default: :obj:`44`)

    Shapes:
        - **input:** :math:`O_G` :math:`(B, C, 44, 44)`
        - **output:** landmarks :math:`(B, 49, 2)` in crop pixels, hidden
          feature :math:`(B, 512)`
    """

    def __init__(self, in_channels: int = 64, config: Optional[AlignmentConfig] = None,
                 map_size: int = 44) -> None:
        super().__init__()
        config = AlignmentConfig() if config is None else config
        channels, hidden = config.channels, config.hidden
        blocks = []
        width, size = in_channels, map_size
        for out in channels:
            blocks += [conv_bn_relu(width, out), conv_bn_relu(out, out), MaxPool2x2()]
            width, size = out, size // 2
        self.features = nn.Sequential(*blocks)
        self.flat_features = width * size * size  # 160 * 5 * 5 = 4000
        self.hidden = nn.Linear(self.flat_features, hidden)
        self.regress = nn.Linear(hidden, NUM_LANDMARKS * 2)
        self.hidden_channels = hidden
        self.hidden_relu, self.centred_output = config.hidden_relu, config.centred_output

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, global_map: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(global_map).flatten(1)  # [B, 4000]
        hidden = self.hidden(features)  # [B, 512]
        if self.hidden_relu:
            hidden = torch.relu(hidden)
        outputs = self.regress(hidden).view(-1, NUM_LANDMARKS, 2)  # [B, 49, 2]
        if not self.centred_output:  # crop pixels directly (JAA-Net)
            return outputs, hidden
        landmarks = (CROP_SIZE - 1) / 2 + (CROP_SIZE / 2) * outputs
        return landmarks, hidden

    def extra_repr(self) -> str:
        switches = [name for name, off in (("no hidden ReLU", not self.hidden_relu),
                                           ("pixel outputs", not self.centred_output)) if off]
        return (f"{self.flat_features} -> {self.hidden_channels} "
                f"-> {NUM_LANDMARKS}x2" + "".join(f", {s}" for s in switches))

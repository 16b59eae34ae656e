"""Gated fusion cell (GFC) of MGRR-Net (paper Eq. 7-8)."""
from __future__ import annotations

from typing import Literal, Optional, Tuple, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GatedFusion(nn.Module):
    r"""Gated fusion cell merging two inputs, from the `"MGRR-Net: Multi-level Graph
    Relational Reasoning Network for Facial Action Unit Detection"
    <https://arxiv.org/abs/2204.01349>`_ paper (Eq. 7-8).

    .. math::
        \operatorname{GFC}(\mathbf{a}, \mathbf{b}) =
            \boldsymbol{\beta} \odot \lVert \mathbf{W}_a \mathbf{a} \rVert_2
            + (1 - \boldsymbol{\beta}) \odot \lVert \mathbf{W}_b \mathbf{b} \rVert_2
            \qquad \text{(Eq. 7)}

    .. math::
        \boldsymbol{\beta} = \sigma(\mathbf{W}'_a \mathbf{a} + \mathbf{W}'_b \mathbf{b})
            \qquad \text{(Eq. 8)}

    where :math:`\lVert\cdot\rVert_2` is L2 normalisation over the channel
    (feature) axis. For ``kind="map"`` the four maps are 1x1 convolutions on
    :math:`(B, C, H, W)` maps (normalised over :math:`C`, i.e. per pixel); for
    ``kind="vector"`` they are linear maps on :math:`(\ldots, C)` vectors.

    Ablation (Table 6): if one input is :obj:`None`, the cell returns the other
    input through its own map and normalisation (no gate). A cell built with
    ``a_channels=None`` (or ``b_channels=None``) has no parameters for that input
    and always expects :obj:`None` there.

    Args:
        a_channels (int or None): Channels of :math:`\mathbf{a}`.
        b_channels (int or None): Channels of :math:`\mathbf{b}`.
        out_channels (int): Channels of the output.
        kind (str, optional): ``"map"`` or ``"vector"``. (default: :obj:`"map"`)
        bias (bool, optional): Biases in :math:`\mathbf{W}_a, \mathbf{W}_b` and
            in the gate. (default: :obj:`True`)
        eps (float, optional): Floor of the norm in the normalisation.
            (default: :obj:`1e-12`)
        rescale (bool, optional): Multiply each normalised term by
            :math:`\sqrt{C_{out}}`, so its components have unit RMS instead of a unit
            norm. A constant factor (the fused output is the same direction), it keeps
            a following linear map / classifier at its usual initial scale; without it
            a :math:`d`-dim unit vector makes every logit start :math:`\sqrt{d}` times
            smaller and SGD at the paper's learning rate barely moves it.
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(B, C_a, H, W)` and :math:`(B, C_b, H, W)` for maps;
          :math:`(\ldots, C_a)` and :math:`(\ldots, C_b)` for vectors
        - **output:** :math:`(B, C_{out}, H, W)` or :math:`(\ldots, C_{out})`; with
          ``return_gate=True`` also :math:`\boldsymbol{\beta}` of the same shape
          (:obj:`None` when an input is missing)
    """

    def __init__(self, a_channels: Optional[int], b_channels: Optional[int],
                 out_channels: int, kind: str = "map", bias: bool = True,
                 eps: float = 1e-12, rescale: bool = False):
        super().__init__()
        if kind not in ("map", "vector"):
            raise ValueError(f"kind must be 'map' or 'vector'; found {kind!r}")
        if a_channels is None and b_channels is None:
            raise ValueError("GatedFusion needs at least one of a_channels, b_channels; "
                             "found both None")
        self.a_channels = a_channels
        self.b_channels = b_channels
        self.out_channels = out_channels
        self.kind = kind
        self.eps = eps
        self.rescale = rescale
        self.channel_dim = 1 if kind == "map" else -1

        def make(in_channels, use_bias):
            if in_channels is None:
                return None
            if kind == "map":
                return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=use_bias)
            return nn.Linear(in_channels, out_channels, bias=use_bias)

        both = a_channels is not None and b_channels is not None
        self.map_a = make(a_channels, bias)  # W_a
        self.map_b = make(b_channels, bias)  # W_b
        # W'_a a + W'_b b: one bias is enough for the sum.
        self.gate_a = make(a_channels, bias) if both else None  # W'_a
        self.gate_b = make(b_channels, False) if both else None  # W'_b
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        for module in (self.map_a, self.map_b, self.gate_a, self.gate_b):
            if module is not None:
                module.reset_parameters()

    def _check(self, value: Optional[Tensor], channels: Optional[int], name: str) -> None:
        if value is None:
            return
        if channels is None:
            raise ValueError(f"GatedFusion was built with {name}_channels=None, so {name} "
                             f"must be None; found a tensor of shape {tuple(value.shape)}")
        if not isinstance(value, Tensor):
            raise ValueError(f"{name} must be a tensor or None; found {type(value).__name__}")
        if self.kind == "map" and value.dim() != 4:
            raise ValueError(f"{name} must be a 4-D map [B, {channels}, H, W] (kind='map'); "
                             f"found shape {tuple(value.shape)}")
        if value.dim() < 1 or value.size(self.channel_dim) != channels:
            axis = "dim 1" if self.kind == "map" else "the last dim"
            raise ValueError(f"{name} must have {channels} channels ({name}_channels) on "
                             f"{axis}; found shape {tuple(value.shape)}")

    def _normalise(self, value: Tensor) -> Tensor:
        out = F.normalize(value, p=2.0, dim=self.channel_dim, eps=self.eps)
        return out * self.out_channels ** 0.5 if self.rescale else out

    @overload
    def forward(self, a: Optional[Tensor], b: Optional[Tensor],
                return_gate: Literal[False] = ...) -> Tensor:
        ...

    @overload
    def forward(self, a: Optional[Tensor], b: Optional[Tensor],
                return_gate: Literal[True] = ...) -> Tuple[Tensor, Optional[Tensor]]:
        ...

    def forward(self, a: Optional[Tensor], b: Optional[Tensor], return_gate: bool = False):
        r"""Fuses :obj:`a` and :obj:`b` (either may be :obj:`None`, not both).

        Args:
            a (torch.Tensor, optional): :math:`\mathbf{a}`.
            b (torch.Tensor, optional): :math:`\mathbf{b}`.
            return_gate (bool, optional): Also return :math:`\boldsymbol{\beta}`
                (:obj:`None` when an input is missing). (default: :obj:`False`)
        """
        if a is None and b is None:
            raise ValueError("GatedFusion needs at least one input; found a=None and b=None")
        self._check(a, self.a_channels, "a")
        self._check(b, self.b_channels, "b")
        if a is None or b is None:
            present, mapping = (b, self.map_b) if a is None else (a, self.map_a)
            out = self._normalise(mapping(present))
            return (out, None) if return_gate else out
        shape_a = list(a.shape)
        shape_b = list(b.shape)
        shape_a[self.channel_dim] = shape_b[self.channel_dim] = -1
        if shape_a != shape_b:
            raise ValueError("a and b must agree in every dimension but the channels; "
                             f"found a {tuple(a.shape)} and b {tuple(b.shape)}")
        beta = torch.sigmoid(self.gate_a(a) + self.gate_b(b))  # Eq. 8
        out = (beta * self._normalise(self.map_a(a))
               + (1.0 - beta) * self._normalise(self.map_b(b)))  # Eq. 7
        return (out, beta) if return_gate else out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.a_channels}, {self.b_channels}, "
                f"{self.out_channels}, kind={self.kind!r}"
                + (", rescale=True)" if self.rescale else ")"))

r"""AU regions from landmarks and the AU features :math:`V^0` pooled in them.

Two centres per AU come from :func:`mgrr_pyg.facs.au_centres` (JAA-Net's rule, the one
implementation in the package). Each centre gets a box attention map on the
:math:`44 \times 44` grid of :math:`O_G` and the AU's map is the maximum of its two
boxes (JAA-Net's 9x9 boxes on a 52x52 grid, rescaled to 7x7 on 44x44).

Decided details (the paper leaves them open):

* **Which cell holds a point.** A point at crop pixel :math:`x` (pixel centres at
  integer positions, so pixel :math:`p` covers :math:`[p - 0.5, p + 0.5)`) lies in
  cell :math:`\lfloor (x + 0.5) \cdot 44 / 176 \rfloor`. This is the cell that
  contains it, and it commutes with the horizontal flip
  :math:`x \mapsto 175 - x` (cell :math:`j \mapsto 43 - j`), which rounding
  :math:`x \cdot 44/176` does not.
* **Box values.** :math:`1 - d / 11` for the cells with :math:`|\Delta r|, |\Delta c|
  \le 3` around the centre cell, :math:`d = |\Delta r| + |\Delta c|` (Manhattan
  distance in cells), 0 elsewhere.
* **Centres near the border** are clamped onto the grid, so every AU keeps a
  full-height box (a region that fell off the map would give an empty feature).
* **Landmarks are detached** before they define regions (JAA-Net): the AU losses do
  not move the landmarks through the boxes.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from mgrr_pyg import facs
from mgrr_pyg.facs import CROP_SIZE, LANDMARK_TOLERANCE, AUCentreRule, au_centres

from .config import FEATURE_OUTPUTS


def check_landmarks(landmarks: Tensor, name: str = "landmarks", crop_size: int = CROP_SIZE,
                    tolerance: float = LANDMARK_TOLERANCE) -> None:
    """Raise a ValueError unless ``landmarks`` is a finite ``[B, 49, 2]`` tensor of crop
    pixel coordinates, each point inside the crop up to ``tolerance`` pixels: the
    landmarks the model takes (:func:`mgrr_pyg.facs.check_landmarks`, the one validator,
    with these settings)."""
    facs.check_landmarks(landmarks, name, batched=True, crop_size=crop_size,
                         tolerance=tolerance)


def point_to_cell(coordinates: Tensor, map_size: int = 44, crop_size: int = CROP_SIZE) -> Tensor:
    r"""Index of the grid cell containing each crop-pixel coordinate:
    :math:`\lfloor (x + 0.5) \cdot S / S_{crop} \rfloor`, clamped to
    :math:`[0, S - 1]`. Returns a long tensor of the same shape."""
    cells = torch.floor((coordinates + 0.5) * (map_size / crop_size))
    return cells.clamp_(0, map_size - 1).long()


def box_maps(cells: Tensor, map_size: int = 44, half_size: int = 3,
             decay: float = 11.0) -> Tensor:
    r"""Box attention maps around grid cells.

    Args:
        cells (torch.Tensor): Integer cell coordinates :math:`(\dots, 2)` as (column, row).
        map_size (int, optional): Grid side :math:`S`. (default: :obj:`44`)
        half_size (int, optional): Half the box side in cells. (default: :obj:`3`)
        decay (float, optional): Value :math:`1 - d / \text{decay}` at Manhattan
            distance :math:`d`. (default: :obj:`11.0`)

    Returns:
        :math:`(\dots, S, S)` maps (row, column).
    """
    grid = torch.arange(map_size, device=cells.device)
    dx = (grid - cells[..., 0:1]).abs()  # [..., S] over columns
    dy = (grid - cells[..., 1:2]).abs()  # [..., S] over rows
    distance = dy.unsqueeze(-1) + dx.unsqueeze(-2)  # [..., S(rows), S(cols)]
    inside = (dy.unsqueeze(-1) <= half_size) & (dx.unsqueeze(-2) <= half_size)
    dtype = torch.get_default_dtype()
    return torch.where(inside, 1.0 - distance.to(dtype) / decay, torch.zeros((), dtype=dtype))


def au_attention_maps(landmarks: Tensor, aus: Sequence[int],
                      rules: Optional[Mapping[int, AUCentreRule]] = None, map_size: int = 44,
                      crop_size: int = CROP_SIZE, half_size: int = 3, decay: float = 11.0,
                      check: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    r"""Box attention maps of every AU from 49 landmarks (detached).

    Args:
        landmarks (torch.Tensor): :math:`(B, 49, 2)` in crop pixels.
        aus (sequence of int): AU numbers, in output order.
        rules (mapping, optional): AU -> :class:`~mgrr_pyg.facs.AUCentreRule` for AUs
            without a built-in rule (:func:`mgrr_pyg.facs.resolve_au_rules`).
            (default: :obj:`None`)
        map_size, crop_size, half_size, decay: see :func:`box_maps`.
        check (bool, optional): Validate the landmarks with :func:`check_landmarks`
            (off for the model's own predictions, which are clamped instead).
            (default: :obj:`True`)

    Returns:
        ``(au_maps, box_maps, centres)``: the AU maps :math:`(B, n, S, S)` (max of the
        two boxes), the two boxes per AU :math:`(B, n, 2, S, S)` and the centres
        :math:`(B, n, 2, 2)` in crop pixels (clamped into the crop).
    """
    if check:
        check_landmarks(landmarks, "landmarks", crop_size)
    landmarks = landmarks.detach()
    centres = au_centres(landmarks, tuple(aus), rules)  # [B, n, 2, 2]
    centres = centres.clamp(0, crop_size - 1)
    cells = point_to_cell(centres, map_size, crop_size)  # [B, n, 2, 2] (x, y)
    boxes = box_maps(cells, map_size, half_size, decay)  # [B, n, 2, S, S]
    return boxes.amax(dim=2), boxes, centres


class AUFeatures(nn.Module):
    r"""The AU features :math:`V^0 = \{\mathbf{v}_i\}` from :math:`O_G` and the AU
    boxes (the paper's "AU patch features"; the design is ours and light): the node
    features of the region graph :math:`D_G`.

    .. math::
        \mathbf{F} &= \mathrm{ReLU}(\mathrm{BN}(\mathbf{W}_F \star O_G)) \\
        \mathbf{f}_{ik} &= \frac{\sum_p M_{ik}(p) \mathbf{F}(p)}{\sum_p M_{ik}(p)}, \quad k = 1, 2 \\
        \mathbf{v}_i &= \mathrm{BN}(\mathbf{W}_i [\mathbf{f}_{i1} \Vert \mathbf{f}_{i2}] + \mathbf{b}_i)
        \quad \text{or} \quad
        \mathrm{ReLU}(\mathbf{W}_i [\mathbf{f}_{i1} \Vert \mathbf{f}_{i2}] + \mathbf{b}_i)

    :math:`M_{ik}` is the box map of AU :math:`i`'s centre :math:`k`; one shared 3x3
    convolution, then box-weighted means (one batched matmul) and a per-AU linear map.
    Pooling each centre's box separately keeps the two sides of the face apart
    (JAA-Net's per-AU nets see both halves of the AU's patch pair as well). The last
    step (``output``) is by default a batch normalisation per AU and channel:
    box means of ReLU features share a large offset across faces, and after the L2
    normalisation of the gated fusion (Eq. 7) that offset would leave the classifiers
    almost nothing that differs between faces (measured: probabilities varied by ~0.001
    across images and the model never left the label-only baseline on synthetic data).
    ``output="relu"`` ends in a ReLU instead, as JAA-Net's per-AU features do (its
    ``HLFeatExtractor`` blocks end in BN-ReLU): the literal reading, no BatchNorm.

    Args:
        in_channels (int, optional): Channels of :math:`O_G`. (default: :obj:`64`)
        hidden_channels (int, optional): Width of :math:`\mathbf{F}`. (default: :obj:`128`)
        out_channels (int, optional): :math:`d_v`. (default: :obj:`512`)
        num_aus (int, optional): :math:`n`. (default: :obj:`12`)
        output (str, optional): ``"batchnorm"`` or ``"relu"``
            (:attr:`RegionConfig.feature_output <mgrr_pyg.model.RegionConfig>`).
            (default: ``"batchnorm"``)

    Shapes:
        - **input:** :math:`O_G` :math:`(B, C, S, S)`, boxes :math:`(B, n, 2, S, S)`
        - **output:** :math:`V` :math:`(B, n, d_v)`
    """

    def __init__(self, in_channels: int = 64, hidden_channels: int = 128,
                 out_channels: int = 512, num_aus: int = 12, output: str = "batchnorm") -> None:
        super().__init__()
        if output not in FEATURE_OUTPUTS:
            raise ValueError(f"AUFeatures: output expected one of {FEATURE_OUTPUTS}, found "
                             f"{output!r}")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.out_channels, self.num_aus, self.output = out_channels, num_aus, output
        self.conv = nn.Conv2d(in_channels, hidden_channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(hidden_channels)
        self.weight = nn.Parameter(torch.empty(num_aus, 2 * hidden_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(num_aus, out_channels))
        self.out_norm = (nn.BatchNorm1d(num_aus * out_channels) if output == "batchnorm"
                         else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.norm.reset_parameters()
        if self.out_norm is not None:
            self.out_norm.reset_parameters()
        # nn.Linear's default initialisation, per AU.
        bound = 1.0 / (2 * self.hidden_channels) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, global_map: Tensor, boxes: Tensor) -> Tensor:
        batch = global_map.size(0)
        local = torch.relu(self.norm(self.conv(global_map)))  # [B, F, S, S]
        local = local.flatten(2)  # [B, F, SS]
        weights = boxes.flatten(3).flatten(1, 2).to(local.dtype)  # [B, 2n, SS]
        weights = weights / weights.sum(-1, keepdim=True)
        pooled = torch.bmm(weights, local.transpose(1, 2))  # [B, 2n, F]
        pooled = pooled.view(batch, self.num_aus, 2 * self.hidden_channels)  # [B, n, 2F]
        features = torch.einsum("bnf,nfd->bnd", pooled, self.weight) + self.bias
        if self.out_norm is None:
            return torch.relu(features)  # [B, n, d_v]
        return self.out_norm(features.reshape(batch, -1)).view_as(features)  # [B, n, d_v]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, "
                f"num_aus={self.num_aus}, hidden={self.hidden_channels}"
                + ("" if self.output == "batchnorm" else f", output={self.output!r}"))


def __getattr__(name: str):
    if name == "AURegionFeatures":  # the old name
        warnings.warn("mgrr_pyg.model.regions.AURegionFeatures is deprecated; use AUFeatures",
                      DeprecationWarning, stacklevel=2)
        return AUFeatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

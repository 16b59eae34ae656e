r"""The stem: JAA-Net's hierarchical multi-scale region learning, giving the global
feature :math:`O_G` (64 x 44 x 44 from a 176 x 176 face).

A *multi-scale patch layer* (JAA-Net's "region layer"; here "region" is kept for the AU
regions and the region graph :math:`D_G`) learns local (unshared) filters: the feature
map is cut into a :math:`g \times g` grid of cells (patches) and every cell has its own
BatchNorm and its own 3x3 convolution. Three such patch levels are stacked (8x8, 4x4,
2x2 cells) and their outputs are concatenated as a residual of the layer's plain
convolution.

Why the per-cell convolution is one grouped convolution: the cells are folded into the
channel axis (``[B, C, g h, g w] -> [B, g g C, h, w]``), so cell :math:`r` becomes
group :math:`r` of a single ``conv2d(..., groups=g*g)`` and BatchNorm over the folded
channels keeps separate statistics per cell. This computes exactly what a Python loop
over cropped cells computes (each cell cropped out and convolved on its own, *zero
padding at the cell borders*, as JAA-Net crops cells independently) in one kernel call.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from .config import StemConfig


def fold_cells(x: Tensor, grid: int) -> Tensor:
    """``[B, C, g h, g w] -> [B, g g C, h, w]``: cell ``(r, c)`` (row-major) becomes the
    channel block ``[(r g + c) C, (r g + c + 1) C)``."""
    batch, channels, height, width = x.shape
    h, w = height // grid, width // grid
    x = x.reshape(batch, channels, grid, h, grid, w)
    x = x.permute(0, 2, 4, 1, 3, 5)  # [B, g, g, C, h, w]
    return x.reshape(batch, grid * grid * channels, h, w)


def unfold_cells(x: Tensor, grid: int) -> Tensor:
    """Inverse of :func:`fold_cells`: ``[B, g g C, h, w] -> [B, C, g h, g w]``."""
    batch, folded, h, w = x.shape
    channels = folded // (grid * grid)
    x = x.reshape(batch, grid, grid, channels, h, w)
    x = x.permute(0, 3, 1, 4, 2, 5)  # [B, C, g, h, g, w]
    return x.reshape(batch, channels, grid * h, grid * w)


def _maximum_gradients(first: Tensor, second: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """What ``torch.maximum(first, second)`` passes back to its inputs: all of ``grad`` to
    the larger, half to each on a tie. As arithmetic (3x faster here than nested
    ``torch.where``): the weight ``(sign(first - second) + 1) / 2`` is 1, 1/2 or 0 (the
    difference of distinct floats is never 0), ``grad * 1/2`` is exactly ``grad / 2`` and
    ``grad - grad / 2`` exactly ``grad / 2``."""
    weight = torch.sub(first, second).sign_().add_(1).mul_(0.5)
    to_first = grad * weight
    return to_first, grad - to_first


class _MaxPool2x2Function(torch.autograd.Function):
    """Two element-wise maxima of strided views, with a hand-written backward.

    Why: autograd's own backward of the two ``torch.maximum`` calls scatters each of the
    four quarter-size gradients into a zero-filled full-size tensor (fill, strided copy,
    add, masks per slice): in a ``mgrr_bp4d`` training step at batch 8 the two stem pools
    cost ~350 ms of backward against ~15 ms of forward on the 2-core AVX2 CPU
    (``bench/profile_train.py``). This backward applies the same rule on the halves and
    interleaves them once (``torch.stack``): 3.5-4x faster (batch 8, 1 thread, forward +
    backward: 211 -> 49 ms for the first stem pool, 78 -> 22 ms for the second; the whole
    training step ~5 %, ``bench/bench_speedups.py``). For finite inputs and
    gradients its gradients equal autograd's, ties included (a NaN input makes its
    window's gradients NaN, where autograd's passes the gradient on)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        cropped = x[..., :height, :width]
        rows = torch.maximum(cropped[..., 0::2, :], cropped[..., 1::2, :])
        ctx.save_for_backward(x, rows)
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        x, rows = ctx.saved_tensors
        *lead, half_h, width = rows.shape
        height = 2 * half_h
        # columns: rows' even / odd columns -> the gradient of rows, interleaved back
        to_even, to_odd = _maximum_gradients(rows[..., 0::2], rows[..., 1::2], grad)
        grad_rows = torch.stack((to_even, to_odd), dim=-1).view(*lead, half_h, width)
        # rows: x's even / odd rows (contiguous runs of a row each)
        cropped = x[..., :height, :width]
        to_even, to_odd = _maximum_gradients(cropped[..., 0::2, :], cropped[..., 1::2, :],
                                             grad_rows)
        grad_cropped = torch.stack((to_even, to_odd), dim=-2).view(*lead, height, width)
        if (height, width) == tuple(x.shape[-2:]):
            return grad_cropped
        grad_x = x.new_zeros(x.shape)  # the dropped odd row / column gets no gradient
        grad_x[..., :height, :width] = grad_cropped
        return grad_x


def max_pool_2x2(x: Tensor) -> Tensor:
    """2x2 max-pooling, stride 2 (odd trailing rows / columns dropped, as
    ``max_pool2d(x, 2)``). The same values as ``max_pool2d``; written as two
    element-wise maxima of strided views because the NCHW CPU kernel is over ten
    times slower here (measured: 4.3 vs 0.32 ms/image for 32x176x176). Gradients follow
    ``torch.maximum``'s rule (a tie shares the gradient; ``max_pool2d`` gives it to the
    first maximum), through a hand-written backward when one is needed
    (:class:`_MaxPool2x2Function`); under ``torch.compile`` and tracing, and without
    gradients, the plain two maxima run."""
    if (x.requires_grad and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()):
        return _MaxPool2x2Function.apply(x)
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :height, :width]
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class MaxPool2x2(nn.Module):
    """:func:`max_pool_2x2` as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return max_pool_2x2(x)


class PerCellConv(nn.Module):
    r"""BN-ReLU-Conv3x3 with its own weights (and own BatchNorm statistics) in every
    cell of a :math:`g \times g` grid: JAA-Net's local (patch) convolution.

    .. math::
        \mathbf{y}_{r} = \mathbf{W}_r \star \mathrm{ReLU}(\mathrm{BN}_r(\mathbf{x}_r)),
        \qquad r = 1, \dots, g^2

    where :math:`\mathbf{x}_r` is cell :math:`r` cropped out of the map and
    :math:`\star` a 3x3 convolution with zero padding at the cell border.
    Implemented as one grouped convolution over the cells folded into channels.

    Args:
        in_channels (int): Input channels :math:`C_{in}`.
        out_channels (int): Output channels :math:`C_{out}`.
        grid (int): Cells per side :math:`g`.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, :math:`H, W` divisible by :math:`g`
        - **output:** :math:`(B, C_{out}, H, W)`
    """

    def __init__(self, in_channels: int, out_channels: int, grid: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.grid = grid
        cells = grid * grid
        self.norm = nn.BatchNorm2d(cells * in_channels)
        self.conv = nn.Conv2d(cells * in_channels, cells * out_channels, 3, padding=1,
                              groups=cells)

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.conv.reset_parameters()

    def cell_parameters(self, row: int, col: int) -> dict[str, Tensor]:
        """The weights of one cell, as the naive per-cell module would hold them
        (for tests and inspection): ``weight [C_out, C_in, 3, 3]``, ``bias``,
        ``bn_weight``, ``bn_bias``, ``bn_mean``, ``bn_var`` (each ``[C]``)."""
        r = row * self.grid + col
        cin, cout = self.in_channels, self.out_channels
        return {
            "weight": self.conv.weight[r * cout:(r + 1) * cout],
            "bias": self.conv.bias[r * cout:(r + 1) * cout],
            "bn_weight": self.norm.weight[r * cin:(r + 1) * cin],
            "bn_bias": self.norm.bias[r * cin:(r + 1) * cin],
            "bn_mean": self.norm.running_mean[r * cin:(r + 1) * cin],
            "bn_var": self.norm.running_var[r * cin:(r + 1) * cin],
        }

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if height % self.grid or width % self.grid:
            raise ValueError(
                f"PerCellConv: the {height}x{width} map cannot be cut into a "
                f"{self.grid}x{self.grid} grid of equal cells")
        x = fold_cells(x, self.grid)  # [B, g g C_in, h, w]
        x = self.conv(torch.relu_(self.norm(x)))  # [B, g g C_out, h, w]
        return unfold_cells(x, self.grid)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, "
                f"grid={self.grid}")


class MultiScalePatchLayer(nn.Module):
    r"""JAA-Net's hierarchical multi-scale region layer: three patch levels of
    :class:`PerCellConv` as a residual of a plain convolution.

    .. math::
        \mathbf{x} &= \mathbf{W} \star \mathbf{I} \\
        \mathbf{b}_1 &= \mathrm{PerCell}_{g_1}(\mathbf{x}), \quad
        \mathbf{b}_2 = \mathrm{PerCell}_{g_2}(\mathbf{b}_1), \quad
        \mathbf{b}_3 = \mathrm{PerCell}_{g_3}(\mathbf{b}_2) \\
        \mathbf{y} &= \mathrm{ReLU}(\mathrm{BN}(\mathbf{x} +
        [\mathbf{b}_1 \Vert \mathbf{b}_2 \Vert \mathbf{b}_3]))

    with :math:`\mathbf{b}_1` of :math:`C/2` channels and :math:`\mathbf{b}_2,
    \mathbf{b}_3` of :math:`C/4`.

    Args:
        in_channels (int): Input channels.
        out_channels (int): :math:`C`, divisible by 4.
        grids (tuple of int, optional): Cells per side of the three patch levels.
            (default: :obj:`(8, 4, 2)`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """

    def __init__(self, in_channels: int, out_channels: int,
                 grids: tuple[int, int, int] = (8, 4, 2)) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(
                f"MultiScalePatchLayer out_channels must be divisible by 4 (branches of C/2, "
                f"C/4, C/4); found {out_channels}")
        if len(grids) != 3:
            raise ValueError(f"MultiScalePatchLayer grids: expected three grid sizes, found "
                             f"{grids!r}")
        self.in_channels, self.out_channels, self.grids = in_channels, out_channels, tuple(grids)
        half, quarter = out_channels // 2, out_channels // 4
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.cells1 = PerCellConv(out_channels, half, grids[0])
        self.cells2 = PerCellConv(half, quarter, grids[1])
        self.cells3 = PerCellConv(quarter, quarter, grids[2])
        self.norm = nn.BatchNorm2d(out_channels)

    def reset_parameters(self) -> None:
        for module in (self.conv, self.cells1, self.cells2, self.cells3, self.norm):
            module.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)  # [B, C, H, W]
        b1 = self.cells1(x)  # [B, C/2, H, W]
        b2 = self.cells2(b1)  # [B, C/4, H, W]
        b3 = self.cells3(b2)  # [B, C/4, H, W]
        # In place where autograd allows it: fewer large allocations (page faults on CPU).
        return torch.relu_(self.norm(torch.cat([b1, b2, b3], dim=1).add_(x)))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, "
                f"grids={self.grids}")


class Stem(nn.Module):
    r"""Two multi-scale patch layers with max-pooling: the global feature :math:`O_G`.

    ``MultiScalePatchLayer(3 -> c_1)`` at 176x176, 2x2 max-pool,
    ``MultiScalePatchLayer(c_1 -> c_2)`` at 88x88, 2x2 max-pool: :math:`O_G` of
    :math:`c_2 \times 44 \times 44`.

    Args:
        config (StemConfig, optional): ``channels`` :math:`(c_1, c_2)` and ``grids``,
            the cells per side of the patch levels. (default: :obj:`StemConfig()`,
            (32, 64) and (8, 4, 2))
        in_channels (int, optional): Image channels. (default: :obj:`3`)

    Shapes:
        - **input:** :math:`(B, 3, 176, 176)`
        - **output:** :math:`O_G` :math:`(B, c_2, 44, 44)`
    """

    def __init__(self, config: Optional[StemConfig] = None, in_channels: int = 3) -> None:
        super().__init__()
        config = StemConfig() if config is None else config
        channels, grids = config.channels, config.grids
        self.layer1 = MultiScalePatchLayer(in_channels, channels[0], grids)
        self.layer2 = MultiScalePatchLayer(channels[0], channels[1], grids)
        self.out_channels = channels[1]

    def reset_parameters(self) -> None:
        self.layer1.reset_parameters()
        self.layer2.reset_parameters()

    def forward(self, image: Tensor) -> Tensor:
        x = max_pool_2x2(self.layer1(image))  # [B, c1, 88, 88]
        return max_pool_2x2(self.layer2(x))  # [B, c2, 44, 44]


def __getattr__(name: str):
    if name == "RegionLayer":  # the old name ("region" now means the AU regions and D_G)
        warnings.warn("mgrr_pyg.model.stem.RegionLayer is deprecated; use MultiScalePatchLayer",
                      DeprecationWarning, stacklevel=2)
        return MultiScalePatchLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

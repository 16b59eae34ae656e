"""The stem: the grouped per-cell convolution equals a naive loop over cropped cells."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from mgrr_pyg.model import StemConfig
from mgrr_pyg.model.stem import (MultiScalePatchLayer, PerCellConv, Stem, fold_cells,
                                   unfold_cells)


class NaivePerCell(nn.Module):
    """The reference: one BatchNorm2d + Conv2d module per cell, applied to each cell
    cropped out of the map, outputs pasted back (a Python loop; JAA-Net's structure)."""

    def __init__(self, in_channels: int, out_channels: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.norms = nn.ModuleList(nn.BatchNorm2d(in_channels) for _ in range(grid * grid))
        self.convs = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 3, padding=1)
                                   for _ in range(grid * grid))

    @torch.no_grad()
    def copy_from(self, fast: PerCellConv) -> None:
        for row in range(self.grid):
            for col in range(self.grid):
                cell = fast.cell_parameters(row, col)
                r = row * self.grid + col
                self.convs[r].weight.copy_(cell["weight"])
                self.convs[r].bias.copy_(cell["bias"])
                self.norms[r].weight.copy_(cell["bn_weight"])
                self.norms[r].bias.copy_(cell["bn_bias"])
                self.norms[r].running_mean.copy_(cell["bn_mean"])
                self.norms[r].running_var.copy_(cell["bn_var"])

    def forward(self, x):
        h, w = x.shape[-2] // self.grid, x.shape[-1] // self.grid
        rows = []
        for row in range(self.grid):
            cols = []
            for col in range(self.grid):
                r = row * self.grid + col
                cell = x[..., row * h:(row + 1) * h, col * w:(col + 1) * w]
                cols.append(self.convs[r](F.relu(self.norms[r](cell))))
            rows.append(torch.cat(cols, dim=-1))
        return torch.cat(rows, dim=-2)


def _randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm affine parameters and running statistics."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm2d):
                sub.weight.copy_(0.5 + torch.rand(sub.weight.shape, generator=generator))
                sub.bias.copy_(torch.randn(sub.bias.shape, generator=generator))
                sub.running_mean.copy_(torch.randn(sub.running_mean.shape, generator=generator))
                sub.running_var.copy_(0.5 + torch.rand(sub.running_var.shape, generator=generator))


@settings(max_examples=12)
@given(grid=st.sampled_from([1, 2, 4]), cell=st.integers(1, 5), cin=st.integers(1, 4),
       cout=st.integers(1, 4), batch=st.integers(2, 3), train=st.booleans(),
       seed=st.integers(0, 2**16))
def test_grouped_per_cell_conv_equals_naive_cell_loop(grid, cell, cin, cout, batch, train, seed):
    torch.manual_seed(seed)
    fast = PerCellConv(cin, cout, grid).double()
    _randomise(fast, seed)
    naive = NaivePerCell(cin, cout, grid).double()
    naive.copy_from(fast)
    fast.train(train)
    naive.train(train)
    x = torch.randn(batch, cin, grid * cell, grid * cell, dtype=torch.float64,
                    requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, ref = fast(x), naive(x_ref)
    torch.testing.assert_close(out, ref)
    # Gradients agree too (input and each cell's weights).
    upstream = torch.randn_like(out)
    out.backward(upstream)
    ref.backward(upstream)
    torch.testing.assert_close(x.grad, x_ref.grad)
    for row in range(grid):
        for col in range(grid):
            r = row * grid + col
            torch.testing.assert_close(
                fast.conv.weight.grad[r * cout:(r + 1) * cout], naive.convs[r].weight.grad)
            torch.testing.assert_close(
                fast.norm.weight.grad[r * cin:(r + 1) * cin], naive.norms[r].weight.grad)
    if train:  # per-cell running statistics, as each cell's own BatchNorm keeps them
        for row in range(grid):
            for col in range(grid):
                cell_stats = fast.cell_parameters(row, col)
                r = row * grid + col
                torch.testing.assert_close(cell_stats["bn_mean"], naive.norms[r].running_mean)
                torch.testing.assert_close(cell_stats["bn_var"], naive.norms[r].running_var)


def test_per_cell_conv_at_stem_size_equals_naive_loop():
    """The real first patch level: 32 -> 16 channels, 8x8 cells of 22x22 at 176x176."""
    torch.manual_seed(0)
    fast = PerCellConv(32, 16, 8).eval()
    _randomise(fast, 1)
    naive = NaivePerCell(32, 16, 8).eval()
    naive.copy_from(fast)
    x = torch.randn(1, 32, 176, 176)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), naive(x), rtol=1e-4, atol=1e-5)


def test_cells_are_independent_with_zero_padding_at_cell_borders():
    """Changing one cell's input changes only that cell's output: no information
    crosses a cell border (each cell is convolved as if cropped, zero-padded)."""
    torch.manual_seed(0)
    layer = PerCellConv(2, 3, 4).eval()
    x = torch.randn(1, 2, 32, 32)
    y = x.clone()
    y[..., 8:16, 16:24] += torch.randn(1, 2, 8, 8)  # cell (row 1, col 2)
    with torch.no_grad():
        diff = (layer(x) - layer(y)).abs().sum(1)[0]  # [32, 32]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:16, 16:24] = True
    assert diff[inside].max() > 0
    assert diff[~inside].max() == 0


@given(grid=st.sampled_from([1, 2, 4, 8]), cell=st.integers(1, 4), channels=st.integers(1, 3))
@settings(max_examples=20)
def test_fold_then_unfold_is_identity_and_cells_land_in_channel_blocks(grid, cell, channels):
    x = torch.arange(2 * channels * (grid * cell) ** 2, dtype=torch.float32).view(
        2, channels, grid * cell, grid * cell)
    folded = fold_cells(x, grid)
    assert torch.equal(unfold_cells(folded, grid), x)
    row, col = grid - 1, 0
    r = row * grid + col
    assert torch.equal(folded[:, r * channels:(r + 1) * channels],
                       x[..., row * cell:(row + 1) * cell, col * cell:(col + 1) * cell])


def test_patch_layer_is_residual_of_concatenated_patch_levels():
    """out = ReLU(BN(x + [b1 | b2 | b3])) with b2 computed from b1 and b3 from b2."""
    torch.manual_seed(0)
    layer = MultiScalePatchLayer(3, 8, (4, 2, 1)).eval()
    _randomise(layer, 3)
    image = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        x = layer.conv(image)
        b1 = layer.cells1(x)
        b2 = layer.cells2(b1)
        b3 = layer.cells3(b2)
        assert b1.shape[1] == 4 and b2.shape[1] == 2 and b3.shape[1] == 2
        expected = F.relu(layer.norm(x + torch.cat([b1, b2, b3], 1)))
        torch.testing.assert_close(layer(image), expected)


def test_the_old_name_of_the_patch_layer_warns_and_works():
    from mgrr_pyg.model import stem as stem_module

    with pytest.warns(DeprecationWarning, match="use MultiScalePatchLayer"):
        assert stem_module.RegionLayer is MultiScalePatchLayer
    import mgrr_pyg.model

    with pytest.warns(DeprecationWarning, match="use MultiScalePatchLayer"):
        assert mgrr_pyg.model.RegionLayer is MultiScalePatchLayer


def test_stem_gives_the_global_map_at_a_quarter_of_the_crop():
    stem = Stem(StemConfig(channels=(8, 16))).eval()
    with torch.no_grad():
        out = stem(torch.randn(1, 3, 176, 176))
    assert out.shape == (1, 16, 44, 44)
    assert (out >= 0).all()  # ReLU then max-pool


def test_bad_channel_counts_and_grids_are_refused():
    with pytest.raises(ValueError, match="divisible by 4"):
        MultiScalePatchLayer(3, 30)
    with pytest.raises(ValueError, match="cannot be cut"):
        PerCellConv(2, 2, 3)(torch.randn(1, 2, 10, 10))


@given(height=st.integers(2, 9), width=st.integers(2, 9), seed=st.integers(0, 2**16))
@settings(max_examples=20)
def test_max_pool_2x2_equals_max_pool2d_values_and_gradients(height, width, seed):
    from mgrr_pyg.model.stem import max_pool_2x2

    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, ref = max_pool_2x2(x), F.max_pool2d(x_ref, 2)
    torch.testing.assert_close(out, ref)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    ref.backward(upstream)
    torch.testing.assert_close(x.grad, x_ref.grad)  # no ties with random doubles


def _two_maxima_gradient_loop(x, upstream):
    """The gradient of ``maximum(maximum(even rows, odd rows)[even cols], ...[odd cols])``
    written out per window: the larger of a pair takes the whole gradient, a tie halves it
    (torch.maximum's rule), first over the two columns of the pooled rows, then over the
    two rows of each column."""
    grad = torch.zeros_like(x)
    batch, channels, height, width = x.shape
    for b in range(batch):
        for c in range(channels):
            for i in range(height // 2):
                for j in range(width // 2):
                    window = x[b, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    column_max = [max(window[0, q], window[1, q]) for q in (0, 1)]
                    for q in (0, 1):
                        other = column_max[1 - q]
                        share_q = 1.0 if column_max[q] > other else 0.5 if column_max[q] == other else 0.0
                        for p in (0, 1):
                            mine, rival = window[p, q], window[1 - p, q]
                            share_p = 1.0 if mine > rival else 0.5 if mine == rival else 0.0
                            grad[b, c, 2 * i + p, 2 * j + q] = upstream[b, c, i, j] * share_q * share_p
    return grad


@given(height=st.integers(2, 7), width=st.integers(2, 7), seed=st.integers(0, 2**16),
       channels_last=st.booleans())
@settings(max_examples=25, deadline=None)
def test_max_pool_2x2_gradient_splits_ties_like_torch_maximum(height, width, seed, channels_last):
    # Small integers: ties in almost every window (the stem pools ReLU outputs: many zeros).
    from mgrr_pyg.model.stem import max_pool_2x2

    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (2, 3, height, width), generator=generator).double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    out = max_pool_2x2(x)
    upstream = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    out.backward(upstream)
    torch.testing.assert_close(out, F.max_pool2d(x.detach(), 2), rtol=0, atol=0)
    torch.testing.assert_close(x.grad, _two_maxima_gradient_loop(x.detach(), upstream),
                               rtol=0, atol=0)


def test_max_pool_2x2_training_gradient_is_bit_identical_to_autograd_of_two_maxima():
    # At the stem's sizes and dtype (float32, ReLU outputs with tied zeros): the
    # hand-written backward gives autograd's gradient of the plain two-maxima form bit for bit.
    from mgrr_pyg.model.stem import max_pool_2x2

    x = torch.relu(torch.randn(2, 4, 176, 176, generator=torch.Generator().manual_seed(3)))
    x.requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    rows = torch.maximum(x_ref[..., 0::2, :], x_ref[..., 1::2, :])
    ref = torch.maximum(rows[..., 0::2], rows[..., 1::2])
    out = max_pool_2x2(x)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    ref.backward(upstream)
    assert torch.equal(out, ref)
    assert torch.equal(x.grad, x_ref.grad)
    with torch.no_grad():  # no gradient wanted: the plain form, same values
        assert torch.equal(max_pool_2x2(x), ref)

"""The counting of ``bench/roofline.py``: FLOPs (attention included), bytes moved and the
component of each op, against arithmetic typed here. (Rates are measured in the
benchmarks, never asserted here.)"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_roofline():
    spec = importlib.util.spec_from_file_location("roofline", BENCH / "roofline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attention_flops_are_counted_on_cpu():
    roofline = load_roofline()
    batch, heads, queries, keys, dim = 2, 4, 30, 50, 16
    q = torch.randn(batch, heads, queries, dim)
    k, v = torch.randn(batch, heads, keys, dim), torch.randn(batch, heads, keys, dim)
    # Q K^T and (softmax) V: two products of queries x keys x dim multiply-adds each.
    expected = 2 * 2 * batch * heads * queries * keys * dim
    assert roofline.count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == expected


def test_profile_components_flops_and_bytes():
    roofline = load_roofline()
    x = torch.randn(2, 8, 6, 6)
    grouped_weight, plain_weight = torch.randn(8, 2, 3, 3), torch.randn(4, 8, 3, 3)
    a, b = torch.randn(1000), torch.randn(1000)
    mode = roofline.OpProfile()
    with mode:
        F.conv2d(x, grouped_weight, padding=1, groups=4)
        F.conv2d(x, plain_weight, padding=1)
        torch.add(a, b)
        a.view(10, 100)
    totals = mode.totals
    grouped = totals["convolution, grouped (per-cell)"]
    plain = totals["convolution"]
    assert grouped["flops"] == 2 * 2 * 8 * 2 * 9 * 36  # B, C_out, C_in per group, 3x3, 6x6
    assert plain["flops"] == 2 * 2 * 4 * 8 * 9 * 36
    # input + weight + output, 4 bytes each
    assert plain["bytes"] == 4 * (2 * 8 * 36 + 4 * 8 * 9 + 2 * 4 * 36)
    other = totals["element-wise and other"]
    assert other["bytes"] == 4 * 3000  # two inputs and one output; the view moved nothing
    assert other["calls"] == 2 and other["flops"] == 0


def test_roofline_rows():
    roofline = load_roofline()
    components = {"convolution": {"flops": 8e9, "bytes": 1e8, "seconds": 0.2, "calls": 1},
                  "BatchNorm": {"flops": 0.0, "bytes": 4e8, "seconds": 0.1, "calls": 1}}
    rows = roofline.roofline_rows(components, batch=2, peak_gflops=100.0, bandwidth_gbps=10.0)
    conv, norm, total = rows
    assert conv["fraction_of_matmul_rate"] == 0.4  # 40 GFLOP/s of 100
    assert abs(conv["fraction_of_roofline"] - 0.4) < 1e-12  # compute-bound: 80 ms of 200
    assert abs(norm["fraction_of_roofline"] - 0.4) < 1e-12  # memory-bound: 40 ms of 100
    assert abs(total["roofline_ms_per_image"] - 1000 * max(0.08, 0.05) / 2) < 1e-9

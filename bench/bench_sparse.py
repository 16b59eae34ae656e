"""Sparse topologies at dense speed: MultiHeadGraphAttention's masked path (SDPA under
a boolean mask read off the edges) against edge-list message passing, on the pixel
graph of MGRR-Net (22 x 22 = 484 nodes, 64 features, D = 1024, L = 8) at batch 8.

Topologies: ``("grid", 1)`` (3x3 window), ``("grid", 2)`` (5x5) and ``("knn", 8)``
(8 nearest pixels in feature space and the pixel itself, as the model builds it per
forward). Paths, one call of each per round, side by side in one process:

* ``masked``: ``masked=True`` (what ``masked="auto"`` would pick is recorded as
  ``auto_path``: on CPU the edge kernels, for all three). For kNN every call gets a fresh edge
  tensor, so the mask is built in every call, as in the model, where kNN edges are new
  each forward; the grids reuse their cached mask, as the model's cached structures do;
* ``edge_kernels``: ``masked=False``, the chunked edge kernels (the layer's
  edge-list path);
* ``propagate``: ``masked=False, edge_kernels=False``, plain ``MessagePassing.propagate``.

Modes: ``forward`` (``torch.no_grad``) and ``train`` (forward + backward of a weighted
sum). Each case records in ``benchmark.extra_info`` the median ms per call of each path,
``edge_kernels_over_masked`` and ``propagate_over_masked`` (ratios of medians from the
same rounds), the edges, the mask entries per edge, the largest output difference
between the paths and ``/proc/loadavg`` before and after.

Run: ``python -m pytest bench/bench_sparse.py -q`` (full size); ``python
bench/bench_sparse.py`` prints the markdown table of bench/README.md
(``MGRR_BENCH_THREADS=1`` for one thread); small sizes for CI:
``MGRR_BENCH_SMALL=1 python -m pytest bench/ --benchmark-disable``.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import pytest
import torch

from mgrr_pyg.graphs import graph_structure, per_forward_edges
from mgrr_pyg.layers import MultiHeadGraphAttention
from mgrr_pyg.layers._block_mask import block_mask

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
if SMALL:
    SIDE, FEATURES, EMBED_DIM, HEADS, BATCH, ROUNDS = 6, 8, 16, 2, 2, 1
else:
    SIDE, FEATURES, EMBED_DIM, HEADS, BATCH, ROUNDS = 22, 64, 1024, 8, 8, 3
TOPOLOGIES = (("grid", 1), ("grid", 2), ("knn", 8))
MODES = ("forward", "train")
PATHS = ("masked", "edge_kernels", "propagate")
# Intra-op threads (MGRR_BENCH_THREADS, default 2). On a loaded 2-core machine 1 thread
# is the steadier proxy for an idle one: there, 2 threads slow the edge kernels' many
# small ops ~5x (each waits for whichever thread was preempted), the masked SDPA hardly.
THREADS = int(os.environ.get("MGRR_BENCH_THREADS", "2"))


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def edges_of(topology, x: torch.Tensor, batch: int) -> torch.Tensor:
    nodes = SIDE * SIDE
    if topology[0] == "knn":
        return per_forward_edges(topology, x, batch, nodes, (SIDE, SIDE))
    return graph_structure(topology, batch, lattice=(SIDE, SIDE)).edge_index


def layer_on(path: str, seed: int = 0) -> MultiHeadGraphAttention:
    torch.manual_seed(seed)
    return MultiHeadGraphAttention(FEATURES, FEATURES, embed_dim=EMBED_DIM, heads=HEADS,
                                   masked=path == "masked", edge_kernels=path != "propagate")


def _call(layer, x, edge_index, mode, fresh_edges):
    edges = edge_index.clone() if fresh_edges else edge_index  # kNN: new edges, new mask
    if mode == "forward":
        with torch.no_grad():
            return layer(x, edges)
    layer.zero_grad()
    x = x.detach().requires_grad_()
    out = layer(x, edges)
    (out * torch.linspace(-1, 1, out.size(-1))).sum().backward()
    return out.detach()


def side_by_side(topology, mode: str, batch: int = BATCH, rounds: int = ROUNDS) -> dict:
    """Each path once per round, alternately; medians, their ratios, the load."""
    load_before = _load()
    x = torch.randn(batch * SIDE * SIDE, FEATURES, generator=torch.Generator().manual_seed(1))
    edge_index = edges_of(topology, x, batch)
    layers = {path: layer_on(path) for path in PATHS}
    fresh_edges = topology[0] == "knn"
    outputs = {path: _call(layers[path], x, edge_index, mode, fresh_edges)
               for path in PATHS}  # warm-up, and the outputs to compare
    times = {path: [] for path in PATHS}
    for _ in range(rounds):
        for path in PATHS:
            start = time.perf_counter()
            _call(layers[path], x, edge_index, mode, fresh_edges)
            times[path].append(time.perf_counter() - start)
    median = {path: 1000 * statistics.median(times[path]) for path in PATHS}
    mask = block_mask(edge_index, x.size(0))
    return {
        "topology": f"{topology[0]} {topology[1]}", "mode": mode, "batch": batch,
        "edges": edge_index.size(1), "entries_per_edge": mask.entries_per_edge(),
        "auto_path": MultiHeadGraphAttention(FEATURES, FEATURES, EMBED_DIM, HEADS)
        .attention_path(edge_index, x.size(0)),
        **{f"{path}_ms": median[path] for path in PATHS},
        "edge_kernels_over_masked": median["edge_kernels"] / median["masked"],
        "propagate_over_masked": median["propagate"] / median["masked"],
        "max_abs_difference": max(float((outputs[path] - outputs["masked"]).abs().max())
                                  for path in PATHS),
        "rounds": rounds, "threads": torch.get_num_threads(),
        "load_before": load_before, "load_after": _load(),
    }




@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda t: f"{t[0]}{t[1]}")
def test_masked_vs_edge_list(benchmark, two_threads, require_memory, topology, mode):
    # Plain propagate holds ~6 [E, L, d] fp32 tensors in training (5x5 grid: ~0.5 GB each).
    edges = BATCH * SIDE * SIDE * (2 * topology[1] + 1) ** 2 if topology[0] == "grid" \
        else BATCH * SIDE * SIDE * (topology[1] + 1)
    require_memory(6 * edges * EMBED_DIM * 4, f"{topology} {mode}")
    result = benchmark.pedantic(side_by_side, args=(topology, mode), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    # The paths compute one function: a benchmark of different functions is no benchmark.
    assert result["max_abs_difference"] < 1e-4, result


def table(results: list[dict]) -> str:
    lines = ["| topology | mode | edges | entries / edge | auto | masked ms | edge kernels ms "
             "| propagate ms | kernels / masked | propagate / masked | load before -> after |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(
            f"| {r['topology']} | {r['mode']} | {r['edges']:,} | {r['entries_per_edge']:.0f} "
            f"| {r['auto_path']} | {r['masked_ms']:.0f} | {r['edge_kernels_ms']:.0f} "
            f"| {r['propagate_ms']:.0f} | {r['edge_kernels_over_masked']:.2f}x "
            f"| {r['propagate_over_masked']:.2f}x | {r['load_before']} -> {r['load_after']} |")
    return "\n".join(lines)


def main() -> None:
    torch.set_num_threads(THREADS)
    results = [side_by_side(topology, mode) for topology in TOPOLOGIES for mode in MODES]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{THREADS} threads, batch {BATCH}, {SIDE}x{SIDE} pixel graph, median of {ROUNDS} "
          f"rounds, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()

"""Graph-layer benchmarks: dense vs message-passing paths of MultiHeadGraphAttention,
and ``torch.compile`` (inductor) of each layer and of the whole model.

Sizes (paper, section 4.2): channel graph 64 nodes x 484 features, pixel graph 484
nodes (22 x 22) x 64 features, D = 1024, L = 8; batch 1, 8 and 32; forward
(inference, ``torch.no_grad``) and forward + backward (training step of the layer).

Paths:

* ``dense``: complete graph with self loops, ``dense_size`` given -> SDPA;
* ``mp_kernels``: the same complete graph through message passing with the chunked
  edge kernels (the layer's default message-passing path, ``edge_kernels=True``);
* ``mp_plain``: the same through plain ``MessagePassing.propagate`` (``edge_kernels=False``),
  which materialises every ``[E, L, d]`` tensor: skipped, with the estimate as the
  reason, where the estimate exceeds the memory available;
* ``grid_kernels`` / ``grid_plain``: the sparse pixel graph (3x3 neighbourhood, self
  included) through the two message-passing variants.

Each case records in ``benchmark.extra_info``: ``per_graph_ms`` (median / batch),
``peak_rss_mb`` (peak resident-set growth during one extra call, sampled every
millisecond by a thread after ``malloc_trim``; approximate, see bench/README.md) and
``estimate_mb`` (the analytic estimate used for skipping).

``test_compiled`` (cases ``compile-...``) compiles one layer path, or the whole model
(``MGRR_BENCH_SMALL=1``: the ``tiny`` preset, else ``mgrr_bp4d``), with inductor and
records ``compile_s`` (first compiled call, inductor's on-disk caches switched off),
``eager_ms`` / ``compiled_ms`` (medians of rounds run alternately, side by side) and
``speedup`` (eager / compiled); the compiled outputs are checked against eager. The
layer compiles its ``*_kernels`` paths as plain ``propagate`` (the chunked edge
kernels are eager-only), so those cases compare compiled propagate with the eager
edge kernels: what compiling the default layer gives.

Run at full size: ``python -m pytest bench/bench_layers.py`` (ends with a dense vs message-passing table) (``MGRR_BENCH_THREADS=1``
pins torch to one thread, steadier on a busy machine); small sizes for CI:
``MGRR_BENCH_SMALL=1 python -m pytest bench/ --benchmark-disable``. To turn a JSON
report into the README table: ``python bench/bench_layers.py report.json``.
"""
from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import statistics
import sys
import threading
import time

import psutil
import pytest
import torch

import mgrr_pyg
from roofline import threads
from mgrr_pyg.graphs import graph_structure
from mgrr_pyg.layers import GatedFusion, MultiHeadGraphAttention, RegionGraphConv

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
# Intra-op threads for this file's cases (default: torch's own choice). On a shared,
# oversubscribed 2-core machine, 1 thread gives far steadier figures: every small op
# of a 2-thread run waits for whichever thread the scheduler has just preempted.
THREADS = int(os.environ.get("MGRR_BENCH_THREADS", "0"))


@pytest.fixture(autouse=True)
def _bench_threads():
    if THREADS <= 0:
        yield
        return
    with threads(THREADS):
        yield

if SMALL:
    GRAPHS = {"channel": dict(nodes=8, features=16, side=4),  # 4 x 4 map, 8 channels
              "pixel": dict(nodes=16, features=8, side=4)}  # 4 x 4 pixels, 8 channels
    EMBED_DIM, HEADS, BATCHES = 32, 4, (1, 2)
else:
    GRAPHS = {"channel": dict(nodes=64, features=484, side=22),
              "pixel": dict(nodes=484, features=64, side=22)}
    EMBED_DIM, HEADS, BATCHES = 1024, 8, (1, 8, 32)

PATHS = {"channel": ("dense", "mp_kernels", "mp_plain"),
         "pixel": ("dense", "mp_kernels", "mp_plain", "grid_kernels", "grid_plain")}
# The edge-kernel message-passing path over the complete 484-node pixel graph is a
# reference point, not a path anyone should run: ~1.9M edges at batch 8 already
# take seconds per call, so batch 32 is left out (time, not memory).
CASES = [(graph, path, batch, mode)
         for graph, paths in PATHS.items() for path in paths
         for batch in BATCHES for mode in ("forward", "forward_backward")
         if SMALL or not (graph == "pixel" and path == "mp_kernels" and batch > 8)]
TARGET_SECONDS = 0.5 if SMALL else 3.0  # timed work per case, at least 3 rounds


def _num_edges(graph: str, path: str, batch: int) -> int:
    nodes = GRAPHS[graph]["nodes"]
    if path.startswith("grid"):
        side = GRAPHS[graph]["side"]
        return batch * (3 * side - 2) ** 2  # 3x3 windows clipped at the border
    return batch * nodes * nodes


def estimate_bytes(graph: str, path: str, batch: int, mode: str) -> float:
    """Analytic peak estimate (fp32): node tensors plus what each path keeps per edge."""
    nodes, features = GRAPHS[graph]["nodes"], GRAPHS[graph]["features"]
    backward = mode == "forward_backward"
    node_bytes = batch * nodes * (features * 4 + EMBED_DIM * 6) * 4
    edges = _num_edges(graph, path, batch)
    if path == "dense":
        # SDPA (or the explicit softmax) holds [B, L, n, n] scores, twice with backward.
        edge_bytes = batch * HEADS * nodes * nodes * 4 * (3 if backward else 1)
    elif path.endswith("plain"):
        # Gathered q_i, k_j, v_j, their products and the weighted messages: [E, D] each,
        # saved for backward and matched by as many gradients.
        edge_bytes = edges * EMBED_DIM * 4 * (8 if backward else 5)
    else:
        # Edge kernels keep [E, L] scores / weights and cache-sized chunks only.
        edge_bytes = edges * HEADS * 4 * (6 if backward else 3) + 8 * 2**20
    return node_bytes + edge_bytes


class PeakRSS:
    """Peak resident-set growth of this process while the block runs."""

    def __enter__(self):
        gc.collect()
        try:  # hand freed heap pages back so that re-use does not hide growth
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # pragma: no cover - not glibc
            pass
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def _make_step(graph: str, path: str, batch: int, mode: str):
    torch.manual_seed(0)
    spec = GRAPHS[graph]
    # masked=False: these paths are the edge-list ones (the masked path: bench_sparse.py).
    layer = MultiHeadGraphAttention(spec["features"], spec["features"], embed_dim=EMBED_DIM,
                                    heads=HEADS, edge_kernels=not path.endswith("plain"),
                                    masked=False)
    if path.startswith("grid"):
        structure = graph_structure(("grid", spec["side"], spec["side"], 1), batch)
    else:
        structure = graph_structure(("complete", spec["nodes"]), batch)
    dense_size = structure.dense_size if path == "dense" else None
    x = torch.randn(batch * spec["nodes"], spec["features"],
                    requires_grad=mode == "forward_backward")
    edge_index = structure.edge_index

    if mode == "forward":
        def step():
            with torch.no_grad():
                return layer(x, edge_index, dense_size=dense_size)
    else:
        def step():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            out = layer(x, edge_index, dense_size=dense_size)
            out.sum().backward()
            return out
    return step


@pytest.mark.parametrize("graph, path, batch, mode", CASES,
                         ids=[f"{g}-{p}-b{b}-{m}" for g, p, b, m in CASES])
def test_graph_attention(benchmark, require_memory, layer_results, graph, path, batch, mode):
    estimate = estimate_bytes(graph, path, batch, mode)
    require_memory(estimate, f"{graph} graph, {path}, batch {batch}, {mode}")
    step = _make_step(graph, path, batch, mode)

    with PeakRSS() as memory:  # also the warm-up call
        start = time.perf_counter()
        out = step()
        once = time.perf_counter() - start
    assert out.shape == (batch * GRAPHS[graph]["nodes"], GRAPHS[graph]["features"])
    assert torch.isfinite(out).all()

    rounds = max(3, min(15, math.ceil(TARGET_SECONDS / max(once, 1e-6))))
    benchmark.group = f"{graph} graph, {mode}"
    benchmark.extra_info.update(
        graph=graph, path=path, batch=batch, mode=mode, nodes=GRAPHS[graph]["nodes"],
        features=GRAPHS[graph]["features"], embed_dim=EMBED_DIM, heads=HEADS,
        edges=_num_edges(graph, path, batch), peak_rss_mb=round(memory.growth_mb, 1),
        estimate_mb=round(estimate / 2**20, 1), threads=torch.get_num_threads(),
        load_average_1min=round(os.getloadavg()[0], 2))
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=0)
    if benchmark.stats is not None:  # None with --benchmark-disable
        benchmark.extra_info["per_graph_ms"] = round(benchmark.stats.stats.median / batch * 1e3, 3)
        layer_results.append(dict(graph=graph, mode=mode, batch=batch, path=path,
                                  median_ms=benchmark.stats.stats.median * 1e3))

# -- torch.compile (inductor): compile time and speed-up -------------------------------------

COMPILE_BATCH = 2 if SMALL else 8
MODEL_PRESET = "tiny" if SMALL else "mgrr_bp4d"
COMPILE_ROUNDS = 3 if SMALL else 7
REGION_NODES, REGION_WIDTH = 12, (32 if SMALL else 512)  # BP4D's 12 AUs, d_v
FUSION_CHANNELS, FUSION_SIDE = (16, 11) if SMALL else (64, 44)  # O_G's c and side
# (layer, variant, mode): the attention layer's paths on the channel and pixel graphs,
# the region layer's two paths, the gated fusion cell; the whole model in inference.
COMPILE_CASES = [("attention", variant, mode)
                 for variant in ("channel-dense", "channel-mp_kernels", "channel-mp_plain",
                                 "pixel-dense", "pixel-grid_kernels", "pixel-grid_plain")
                 for mode in ("forward", "forward_backward")]
COMPILE_CASES += [(layer, variant, mode)
                  for layer, variant in (("region", "dense"), ("region", "mp"),
                                         ("fusion", "map"))
                  for mode in ("forward", "forward_backward")]
COMPILE_CASES += [("model", MODEL_PRESET, "forward")]
if SMALL:  # compiling costs about the same at any size: one case per code path
    COMPILE_CASES = [("attention", "channel-dense", "forward"),
                     ("attention", "channel-mp_plain", "forward"),
                     ("attention", "pixel-grid_kernels", "forward_backward"),
                     ("region", "mp", "forward_backward"), ("fusion", "map", "forward"),
                     ("model", MODEL_PRESET, "forward")]


def _compile_subject(layer: str, variant: str, batch: int):
    """(module, positional inputs, keyword inputs) of one compile case."""
    torch.manual_seed(0)
    if layer == "attention":
        graph, path = variant.split("-")
        spec = GRAPHS[graph]
        module = MultiHeadGraphAttention(spec["features"], spec["features"],
                                         embed_dim=EMBED_DIM, heads=HEADS,
                                         edge_kernels=not path.endswith("plain"),
                                         masked=False)  # eager: the edge-list path
        structure = (graph_structure(("grid", spec["side"], spec["side"], 1), batch)
                     if path.startswith("grid") else
                     graph_structure(("complete", spec["nodes"]), batch))
        x = torch.randn(batch * spec["nodes"], spec["features"])
        dense_size = structure.dense_size if path == "dense" else None
        return module, (x, structure.edge_index), dict(dense_size=dense_size)
    if layer == "region":
        module = RegionGraphConv(REGION_WIDTH, REGION_WIDTH, REGION_NODES,
                                 adjacency_init="random")
        structure = graph_structure(("complete", REGION_NODES), batch)
        x = torch.randn(batch * REGION_NODES, REGION_WIDTH)
        dense_size = REGION_NODES if variant == "dense" else None
        return module, (x, structure.edge_index, structure.node_index), dict(dense_size=dense_size)
    if layer == "fusion":
        module = GatedFusion(FUSION_CHANNELS, FUSION_CHANNELS, FUSION_CHANNELS, kind="map",
                             rescale=True)
        shape = (batch, FUSION_CHANNELS, FUSION_SIDE, FUSION_SIDE)
        return module, (torch.randn(shape), torch.randn(shape)), {}
    model = mgrr_pyg.create_model(variant).eval()
    return model, (torch.rand(batch, 3, 176, 176) * 2 - 1,), {}


def _main_output(out):
    return out.probs if hasattr(out, "probs") else out  # the model's MGRROutput


def _make_compile_step(module, args, kwargs, backward: bool):
    if not backward:
        def step():
            with torch.no_grad():
                return _main_output(module(*args, **kwargs))
        return step

    def step():
        for parameter in module.parameters():
            parameter.grad = None
        out = _main_output(module(*args, **kwargs))
        out.sum().backward()
        return out.detach()
    return step


def _seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


@pytest.mark.parametrize("layer, variant, mode", COMPILE_CASES,
                         ids=[f"compile-{l}-{v}-{m}" for l, v, m in COMPILE_CASES])
def test_compiled(benchmark, require_memory, layer, variant, mode):
    if layer == "attention":
        graph, path = variant.split("-")
        require_memory(2 * estimate_bytes(graph, path, COMPILE_BATCH, mode),
                       f"compiled {variant}, batch {COMPILE_BATCH}, {mode}")
    module, args, kwargs = _compile_subject(layer, variant, COMPILE_BATCH)
    backward = mode == "forward_backward"
    eager = _make_compile_step(module, args, kwargs, backward)
    expected = eager()  # also the eager warm-up

    torch._dynamo.reset()
    compiled = _make_compile_step(torch.compile(module, backend="inductor"), args, kwargs,
                                  backward)
    # Compile time as a fresh clone sees it: none of inductor's on-disk caches (graphs,
    # generated C++ kernels) from earlier runs.
    with torch._inductor.config.patch(force_disable_caches=True):
        compile_seconds = _seconds(compiled)
    torch.testing.assert_close(compiled(), expected, rtol=1e-3, atol=1e-4)

    eager_times, compiled_times = [], []
    for _ in range(COMPILE_ROUNDS):  # alternately, so that both see the same load
        eager_times.append(_seconds(eager))
        compiled_times.append(_seconds(compiled))
    eager_ms = statistics.median(eager_times) * 1e3
    compiled_ms = statistics.median(compiled_times) * 1e3
    benchmark.group = f"compile, {mode}"
    benchmark.extra_info.update(
        kind="compile", layer=layer, variant=variant, mode=mode, batch=COMPILE_BATCH,
        compile_s=round(compile_seconds, 1), eager_ms=round(eager_ms, 2),
        compiled_ms=round(compiled_ms, 2), speedup=round(eager_ms / compiled_ms, 2),
        threads=torch.get_num_threads(), load_average_1min=round(os.getloadavg()[0], 2))
    benchmark.pedantic(compiled, rounds=COMPILE_ROUNDS, warmup_rounds=0)
    print(f"\n{layer} {variant} {mode}: compile {compile_seconds:.1f} s, eager "
          f"{eager_ms:.2f} ms, compiled {compiled_ms:.2f} ms, x{eager_ms / compiled_ms:.2f} "
          f"(load {os.getloadavg()[0]:.1f})")


def report(path: str) -> str:
    """Markdown table (and dense / message-passing ratios) from a --benchmark-json file."""
    with open(path) as handle:
        rows = [b["extra_info"] | {"median_ms": b["stats"]["median"] * 1e3,
                                   "min_ms": b["stats"]["min"] * 1e3}
                for b in json.load(handle)["benchmarks"]]
    compiled = [r for r in rows if r.get("kind") == "compile"]
    rows = [r for r in rows if r.get("kind") != "compile"]
    key = {(r["graph"], r["path"], r["batch"], r["mode"]): r for r in rows}
    lines = ["| graph | mode | batch | path | median ms | min ms | median ms / graph | "
             "peak RSS MB | vs dense (min) | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["graph"], r["mode"], r["batch"],
                                         list(PATHS[r["graph"]]).index(r["path"]))):
        dense = key.get((r["graph"], "dense", r["batch"], r["mode"]))
        ratio = (f"{r['min_ms'] / dense['min_ms']:.1f}x"
                 if dense is not None and r["path"] != "dense" else "")
        lines.append(f"| {r['graph']} | {r['mode']} | {r['batch']} | {r['path']} | "
                     f"{r['median_ms']:.1f} | {r['min_ms']:.1f} | "
                     f"{r['median_ms'] / r['batch']:.2f} | {r['peak_rss_mb']:.0f} | {ratio} | "
                     f"{r['load_average_1min']:.1f} |")
    if compiled:
        lines += ["", "| compiled | mode | batch | compile s | eager ms | compiled ms | "
                  "speed-up | load |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['layer']} {r['variant']} | {r['mode']} | {r['batch']} | "
                  f"{r['compile_s']:.1f} | {r['eager_ms']:.2f} | {r['compiled_ms']:.2f} | "
                  f"{r['speedup']:.2f}x | {r['load_average_1min']:.1f} |" for r in compiled]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1]))

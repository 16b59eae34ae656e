"""The limit, counted: this machine's matmul rate and memory bandwidth, and every forward's
FLOPs, bytes moved and time per component as a fraction of that roofline.

* :func:`matmul_gflops` (fp32 or bf16, any thread count) and :func:`memory_gbps` (a large
  copy and a STREAM-style triad ``a = b + s c``) measure the two roofs now, in the same
  process as the models they are compared with.
* :func:`count_flops` is torch's ``FlopCounterMode`` plus the CPU flash-attention kernel
  it does not know (``aten._scaled_dot_product_flash_attention_for_cpu``: without it the
  attention of MGRR-Net's reasoning layers counted zero FLOPs).
* :class:`OpProfile` runs a forward under a dispatch mode and gives, per component
  (grouped and plain convolutions, attention, matrix products, BatchNorm, vector norms,
  copies, pooling, element-wise), the FLOPs, the bytes each op reads and writes (every
  tensor argument and result once: no reuse between ops through the cache, so an upper
  estimate of traffic; views move nothing) and the time each op took.
* :func:`roofline_rows` turns that into rows: achieved GFLOP/s, arithmetic intensity,
  the time the roofline allows, ``max(FLOPs / matmul rate, bytes / bandwidth)``, and the
  fraction ``roofline time / measured time``.

``python bench/roofline.py`` prints the roofs and the per-component tables of MGRR-Net
(``mgrr_bp4d``) and the JAA-Net-shaped reference at batch 8 (``--small``: ``tiny``,
batch 2). The numbers go into bench/README.md's Model section.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, flop_registry, sdpa_flop_count

aten = torch.ops.aten


def _cpu_flash_attention_flops(query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_flop_count(query.shape, key.shape, value.shape)


_cpu_flash_attention_flops._get_raw = True  # FlopCounterMode: called with the tensors
EXTRA_FLOP_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu:
                       _cpu_flash_attention_flops}


def count_flops(function) -> int:
    """FLOPs of ``function()`` (two per multiply-add): ``FlopCounterMode`` with
    :data:`EXTRA_FLOP_FORMULAS`."""
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)
    with counter:
        function()
    return counter.get_total_flops()


@contextmanager
def threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def clock_for(num_threads: int):
    """The clock to time with: with one intra-op thread the kernels run in the calling
    thread, so its CPU time (``time.thread_time``) is the work done, which other jobs on a
    shared machine disturb much less than wall time; with more threads, wall time."""
    return time.thread_time if num_threads == 1 else time.perf_counter


def time_call(function, rounds: int, warmup: int = 1, clock=time.perf_counter) -> list[float]:
    """``rounds`` timings of ``function()`` on ``clock`` after ``warmup`` untimed calls: the
    one timing loop of the bench scripts."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(rounds):
        start = clock()
        function()
        times.append(clock() - start)
    return times


def _median_seconds(function, rounds: int, warmup: int = 2, clock=time.perf_counter) -> float:
    return statistics.median(time_call(function, rounds, warmup, clock))


def matmul_gflops(size: int = 2048, rounds: int = 5, dtype=torch.float32,
                  num_threads: int | None = None) -> float:
    """This machine's ``size``^2 matmul rate now (median of ``rounds``; timed by
    :func:`clock_for` the thread count), GFLOP/s."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    count = num_threads or torch.get_num_threads()
    with threads(count):
        seconds = _median_seconds(lambda: a @ b, rounds, clock=clock_for(count))
    return 2 * size**3 / seconds / 1e9


def memory_gbps(kind: str = "triad", megabytes: int = 256, rounds: int = 5,
                num_threads: int | None = None) -> float:
    """Memory bandwidth now (median of ``rounds``), GB/s: ``copy`` (``b[:] = a``, 2 bytes
    moved per byte of array) or ``triad`` (``a = b + 3 c``, 3), arrays of ``megabytes``
    each, far beyond the caches."""
    n = megabytes * 2**20 // 4
    a, b, c = torch.rand(n), torch.rand(n), torch.rand(n)
    if kind == "copy":
        function, moved = (lambda: b.copy_(a)), 2
    elif kind == "triad":
        function, moved = (lambda: torch.add(b, c, alpha=3.0, out=a)), 3
    else:
        raise ValueError(f"memory_gbps: kind expected 'copy' or 'triad', found {kind!r}")
    count = num_threads or torch.get_num_threads()
    with threads(count):
        seconds = _median_seconds(function, rounds, clock=clock_for(count))
    return moved * 4 * n / seconds / 1e9


def roofs(num_threads=(1, 2), size: int = 2048, megabytes: int = 256) -> dict[str, float]:
    """fp32 / bf16 matmul GFLOP/s and copy / triad GB/s at each thread count."""
    out = {}
    for count in num_threads:
        out[f"fp32 matmul GFLOP/s, {count} thread(s)"] = matmul_gflops(size, num_threads=count)
        # Half the side: without bf16 units a 2048^2 bf16 product takes a minute.
        out[f"bf16 matmul GFLOP/s, {count} thread(s)"] = matmul_gflops(
            size // 2, rounds=3, dtype=torch.bfloat16, num_threads=count)
        out[f"copy GB/s, {count} thread(s)"] = memory_gbps("copy", megabytes, num_threads=count)
        out[f"triad GB/s, {count} thread(s)"] = memory_gbps("triad", megabytes,
                                                             num_threads=count)
    return out


# -- per component ---------------------------------------------------------------------------
COMPONENTS = ("convolution, grouped (per-cell)", "convolution", "attention (SDPA)",
              "matrix products (linear, bmm)", "BatchNorm", "vector norms",
              "copies and layout", "pooling (max)", "element-wise and other")
_MATMUL = {"mm", "addmm", "bmm", "baddbmm"}
_NORMS = {"linalg_vector_norm", "norm", "native_layer_norm", "_fused_rms_norm"}
_COPIES = {"clone", "copy_", "_to_copy", "cat", "stack", "contiguous", "index"}
_POOLING = {"maximum", "amax", "max_pool2d", "max_pool2d_with_indices"}


def component(func, args) -> str:
    """The component an aten op belongs to (see :data:`COMPONENTS`)."""
    name = func.overloadpacket.__name__
    if name == "convolution":
        return COMPONENTS[0] if args[8] > 1 else COMPONENTS[1]
    if "scaled_dot_product" in name:
        return COMPONENTS[2]
    if name in _MATMUL:
        return COMPONENTS[3]
    if "batch_norm" in name:
        return COMPONENTS[4]
    if name in _NORMS:
        return COMPONENTS[5]
    if name in _COPIES:
        return COMPONENTS[6]
    if name in _POOLING:
        return COMPONENTS[7]
    return COMPONENTS[8]


def _is_view(func) -> bool:
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write
                                 for r in returns)


def _tensor_bytes(values) -> int:
    seen, total = set(), 0
    for value in tree_flatten(values)[0]:
        if isinstance(value, torch.Tensor) and id(value) not in seen:
            seen.add(id(value))
            total += value.numel() * value.element_size()
    return total


class OpProfile(TorchDispatchMode):
    """Per component: ``flops``, ``bytes``, ``seconds``, ``calls`` of the aten ops run
    under it (each op's own time by ``clock``, measured around its kernel)."""

    def __init__(self, clock=time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.totals = defaultdict(lambda: defaultdict(float))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        start = self.clock()
        out = func(*args, **kwargs)
        seconds = self.clock() - start
        row = self.totals[component(func, args)]
        row["seconds"] += seconds
        row["calls"] += 1
        packet = func.overloadpacket
        formula = EXTRA_FLOP_FORMULAS.get(packet) or flop_registry.get(packet)
        if formula is not None:
            row["flops"] += formula(*args, **kwargs, out_val=out)
        if not _is_view(func):
            row["bytes"] += _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
        return out


def profile(function, rounds: int = 3, clock=time.perf_counter) -> dict[str, dict[str, float]]:
    """:class:`OpProfile` of ``function()`` (after one warm-up call): FLOPs, bytes and
    calls of one call, seconds the median over ``rounds``."""
    function()
    runs = []
    for _ in range(rounds):
        mode = OpProfile(clock)
        with mode:
            function()
        runs.append(mode.totals)
    out = {}
    for name in COMPONENTS:
        if any(name in run for run in runs):
            first = runs[0][name]
            out[name] = {"flops": first["flops"], "bytes": first["bytes"],
                         "calls": first["calls"],
                         "seconds": statistics.median(run[name]["seconds"] for run in runs)}
    return out


def roofline_rows(components: dict, batch: int, peak_gflops: float, bandwidth_gbps: float,
                  wall_seconds: float | None = None) -> list[dict]:
    """Per component and in total (per image): GFLOP, MB moved, FLOP/byte, ms, achieved
    GFLOP/s, fraction of the matmul rate, roofline ms and the fraction of the roofline.
    ``wall_seconds`` (the plain forward's time) adds a row for the whole forward."""
    rows = []
    total = {"flops": 0.0, "bytes": 0.0, "seconds": 0.0}
    for name, values in components.items():
        for key in total:
            total[key] += values[key]
        rows.append(_row(name, values, batch, peak_gflops, bandwidth_gbps))
    rows.append(_row("all ops (sum of op times)", total, batch, peak_gflops, bandwidth_gbps))
    if wall_seconds is not None:
        rows.append(_row("whole forward (plain call)", dict(total, seconds=wall_seconds), batch,
                         peak_gflops, bandwidth_gbps))
    return rows


def _row(name, values, batch, peak_gflops, bandwidth_gbps) -> dict:
    flops, moved, seconds = values["flops"], values["bytes"], values["seconds"]
    limit = max(flops / (peak_gflops * 1e9), moved / (bandwidth_gbps * 1e9))
    return {"component": name, "gflop_per_image": flops / batch / 1e9,
            "mb_per_image": moved / batch / 1e6,
            "flop_per_byte": flops / moved if moved else float("nan"),
            "ms_per_image": 1000 * seconds / batch,
            "achieved_gflops": flops / seconds / 1e9 if seconds else 0.0,
            "fraction_of_matmul_rate": flops / seconds / 1e9 / peak_gflops if seconds else 0.0,
            "roofline_ms_per_image": 1000 * limit / batch,
            "fraction_of_roofline": limit / seconds if seconds else 0.0}


def markdown(rows: list[dict]) -> str:
    lines = ["| component | GFLOP/image | MB moved/image | FLOP/byte | ms/image | GFLOP/s "
             "| of matmul rate | roofline ms/image | of roofline |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['component']} | {r['gflop_per_image']:.3f} | {r['mb_per_image']:.0f} "
                     f"| {r['flop_per_byte']:.1f} | {r['ms_per_image']:.2f} "
                     f"| {r['achieved_gflops']:.0f} | {r['fraction_of_matmul_rate']:.0%} "
                     f"| {r['roofline_ms_per_image']:.2f} | {r['fraction_of_roofline']:.0%} |")
    return "\n".join(lines)


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny preset, batch 2")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of the per-component run (1: timed by CPU time)")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    import bench_model  # the benchmarked builds, one definition

    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"load before: {_load()}")
    measured = roofs(num_threads=sorted({1, 2, options.threads}),
                     size=512 if options.small else 2048,
                     megabytes=16 if options.small else 256)
    for key, value in measured.items():
        print(f"{key}: {value:.0f}")
    batch = 2 if options.small else 8
    peak = measured[f"fp32 matmul GFLOP/s, {options.threads} thread(s)"]
    bandwidth = measured[f"triad GB/s, {options.threads} thread(s)"]
    with threads(options.threads):
        for name in ("mgrr", "jaanet"):
            model, images = bench_model.build_network(name, "eager", small=options.small,
                                                      batch=batch)
            call = (lambda: bench_model.run_forward(model, images, "eager"))
            clock = clock_for(options.threads)
            wall = _median_seconds(call, options.rounds, warmup=1, clock=clock)
            rows = roofline_rows(profile(call, options.rounds, clock), batch, peak, bandwidth,
                                 wall)
            print(f"\n{name}, eager fp32, batch {batch}, {options.threads} thread(s), "
                  f"fractions of the fp32 matmul rate and triad bandwidth at that count "
                  f"(load now {_load()}):\n")
            print(markdown(rows))
    print("\nload after:", _load())


if __name__ == "__main__":
    main()

"""Benchmarks of the assembled MGRR-Net (``mgrr_bp4d``): forward latency per image,
training throughput, FLOPs per image and the achieved rate against this machine's
measured fp32 matmul rate.

Cases (``benchmark.extra_info`` carries the derived numbers):

* ``test_forward[variant-batch]``: eval, ``torch.no_grad``, batch 1 / 8 / 32;
  ``variant`` is one of the inference levers:
  ``eager`` (as built), ``channels_last`` (model and input in NHWC),
  ``fused`` (:meth:`MGRRNet.fold_batchnorm`: conv->BN folded),
  ``fused_channels_last``, ``bf16`` (``torch.autocast("cpu", torch.bfloat16)`` on the
  fused channels-last model; its accuracy cost is in ``extra_info``:
  max |delta p| against fp32 and the landmark shift in pixels).
  ``extra_info``: ``ms_per_image`` (median / batch), ``gflop_per_image``, ``achieved_gflops``,
  ``matmul_gflops`` (a 2048^2 fp32 matmul measured in the same process) and
  ``fraction_of_matmul_rate``.
* ``test_forward_compiled``: ``torch.compile`` (inductor) at batch 8, compile time in
  ``extra_info``.
* ``test_train_step``: forward + joint loss + backward (train mode), ``images_per_s``.
* ``test_component_times``: where the forward time goes at batch 8 (stem, alignment,
  regions, reasoning layers, heads) as ms/image.
* ``test_vs_jaanet``: MGRR-Net and the JAA-Net-shaped reference network
  (``bench/jaanet_reference.py``) timed in the same run, one call of each variant of each
  per round, so every ratio MGRR / JAA-Net is measured side by side: as built (fp32
  eager) and each at its best (the fastest of fp32 eager, BatchNorm folded +
  channels-last, and bf16 autocast on that), wall time with 2 threads and 1-thread CPU
  time; ``extra_info`` also has each network's GFLOP/image (attention included,
  ``roofline.count_flops``) and share of the fp32 matmul rate measured in the same run.

``torch.set_num_threads(2)`` is set inside each benchmark only (fixture), then restored.
Full size: ``python -m pytest bench/bench_model.py -q``; CI small sizes (the ``tiny``
preset, batch 1-2): ``MGRR_BENCH_SMALL=1 python -m pytest bench/ --benchmark-disable``.
``python bench/bench_model.py`` prints the markdown table of bench/README.md's Model section.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import pytest
import torch

from mgrr_pyg.facs import BP4D_AUS
from mgrr_pyg.model import MGRRLoss, create_model
from mgrr_pyg.model.folding import fold_batchnorm

from jaanet_reference import JAANetReference
from roofline import count_flops, time_call
from roofline import matmul_gflops as _matmul_rate

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESET = "tiny" if SMALL else "mgrr_bp4d"
BATCHES = (1, 2) if SMALL else (1, 8, 32)
TRAIN_BATCHES = (2,) if SMALL else (8, 32)
COMPONENT_BATCH = 2 if SMALL else 8
VARIANTS = ("eager", "channels_last", "fused", "fused_channels_last", "bf16")
# The side-by-side comparison: as built, and the two levers that change the speed.
COMPARED_VARIANTS = ("eager", "fused_channels_last", "bf16")
COMPARED_BATCH = 1 if SMALL else 8
COMPARED_ROUNDS = 1 if SMALL else 5
JAANET_SMALL_AUS = (1,)  # small mode: one AU branch, so CI stays quick
THREADS = 2
# Peak memory per image, measured at batch 8 on mgrr_bp4d (RSS growth), with margin.
FORWARD_BYTES_PER_IMAGE = 60e6
TRAIN_BYTES_PER_IMAGE = 260e6




def apply_variant(model, variant: str):
    """``model`` (eval mode) in one of the inference variants (BatchNorm folded in place)."""
    if variant in ("fused", "fused_channels_last", "bf16"):
        # MGRRNet's own method where there is one (it may fold more than the generic pass).
        getattr(model, "fold_batchnorm", lambda: fold_batchnorm(model))()
    if variant in ("channels_last", "fused_channels_last", "bf16"):
        model = model.to(memory_format=torch.channels_last)
    return model


def build(variant: str = "eager", seed: int = 0, preset: str = PRESET):
    """The benchmarked model in one of the inference variants, eval mode."""
    torch.manual_seed(seed)
    return apply_variant(create_model(preset).eval(), variant)


def build_network(name: str, variant: str = "eager", small: bool = SMALL, batch: int = 8,
                  seed: int = 0):
    """``(model, images)``: ``name`` ``"mgrr"`` (preset ``mgrr_bp4d``, ``tiny`` when
    small) or ``"jaanet"`` (:class:`JAANetReference`, 12 AUs, one when small)."""
    if name == "mgrr":
        model = build(variant, seed, "tiny" if small else "mgrr_bp4d")
    elif name == "jaanet":
        torch.manual_seed(seed)
        model = apply_variant(JAANetReference(JAANET_SMALL_AUS if small else BP4D_AUS).eval(),
                              variant)
    else:
        raise ValueError(f"build_network: name expected 'mgrr' or 'jaanet', found {name!r}")
    return model, make_images(batch, variant)


def make_images(batch: int, variant: str = "eager", seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, 176, 176, generator=generator) * 2 - 1
    if "channels_last" in variant or variant == "bf16":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def run_forward(model, images, variant):
    with torch.no_grad():
        if variant == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(images)
        return model(images)




def cpu_ms_per_image(model, images, variant="eager", rounds: int = 3) -> float:
    """Single-thread CPU time per image (``time.process_time``, min of ``rounds``): a
    figure that other users of a shared machine disturb much less than wall time."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_forward(model, images, variant)
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            run_forward(model, images, variant)
            best = min(best, time.process_time() - start)
    finally:
        torch.set_num_threads(previous)
    return 1000 * best / images.size(0)


def flops_per_image(model, images, variant="eager") -> float:
    """FLOPs per image, the CPU attention kernel included (:func:`roofline.count_flops`)."""
    return count_flops(lambda: run_forward(model, images, variant)) / images.size(0)


def matmul_gflops(size: int = 2048, rounds: int = 5) -> float:
    """This machine's fp32 matmul rate now (median of ``rounds``), in GFLOP/s."""
    return _matmul_rate(size, rounds)


def accuracy_cost(variant: str, batch: int) -> dict:
    """bf16 against fp32 on the same weights and images."""
    reference = run_forward(build("fused_channels_last"), make_images(batch, "fused_channels_last"),
                            "fused_channels_last")
    out = run_forward(build(variant), make_images(batch, variant), variant)
    return {"max_abs_prob_diff": float((out.probs.float() - reference.probs).abs().max()),
            "max_landmark_shift_px": float((out.landmarks.float() - reference.landmarks)
                                           .abs().max())}


def _record(benchmark, batch, **info):
    for key, value in info.items():
        benchmark.extra_info[key] = value
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["ms_per_image"] = 1000 * median / batch
        if "gflop_per_image" in info:
            achieved = info["gflop_per_image"] * batch / median
            benchmark.extra_info["achieved_gflops"] = achieved
            if "matmul_gflops" in info:
                benchmark.extra_info["fraction_of_matmul_rate"] = achieved / info["matmul_gflops"]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward(benchmark, two_threads, require_memory, variant, batch):
    require_memory(FORWARD_BYTES_PER_IMAGE * batch + 1e9, f"forward at batch {batch}")
    model, images = build(variant), make_images(batch, variant)
    run_forward(model, images, variant)  # graph structure cached, allocator warm
    info = {"preset": PRESET, "threads": THREADS,
            "gflop_per_image": flops_per_image(model, images[:1], variant) / 1e9}
    if not SMALL:
        info["matmul_gflops"] = matmul_gflops()
    if variant == "bf16":
        info.update(accuracy_cost(variant, min(batch, 8)))
    benchmark.pedantic(run_forward, args=(model, images, variant),
                       rounds=3 if SMALL else max(3, 24 // batch), warmup_rounds=1)
    _record(benchmark, batch, **info)


def test_forward_compiled(benchmark, two_threads, require_memory):
    batch = COMPONENT_BATCH
    require_memory(FORWARD_BYTES_PER_IMAGE * batch + 2e9, "compiled forward")
    model, images = build("fused_channels_last"), make_images(batch, "fused_channels_last")
    start = time.perf_counter()
    compiled = torch.compile(model, backend="aot_eager" if SMALL else "inductor")
    reference = run_forward(model, images, "eager")
    out = run_forward(compiled, images, "eager")
    compile_seconds = time.perf_counter() - start
    benchmark.pedantic(run_forward, args=(compiled, images, "eager"), rounds=3, warmup_rounds=1)
    _record(benchmark, batch, compile_seconds=compile_seconds,
            max_abs_prob_diff=float((out.probs - reference.probs).abs().max()))


def train_step(model, loss_fn, images, labels, landmarks, interocular):
    model.zero_grad(set_to_none=True)
    out = model(images)
    loss = loss_fn(out, labels, None, landmarks, interocular)["total"]
    loss.backward()
    return loss


@pytest.mark.parametrize("batch", TRAIN_BATCHES)
def test_train_step(benchmark, two_threads, require_memory, batch):
    require_memory(TRAIN_BYTES_PER_IMAGE * batch + 1e9, f"training step at batch {batch}")
    torch.manual_seed(0)
    model = create_model(PRESET).train()
    n = model.config.num_aus
    generator = torch.Generator().manual_seed(2)
    images = make_images(batch)
    labels = torch.randint(0, 2, (batch, n), generator=generator).float()
    landmarks = 40 + 96 * torch.rand(batch, 49, 2, generator=generator)
    interocular = torch.full((batch,), 60.0)
    loss_fn = MGRRLoss(torch.ones(n))
    args = (model, loss_fn, images, labels, landmarks, interocular)
    train_step(*args)
    benchmark.pedantic(train_step, args=args, rounds=3, warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median
        benchmark.extra_info["ms_per_image"] = 1000 * benchmark.stats.stats.median / batch


def component_times(model, images, rounds: int = 3, cpu: bool = False) -> dict[str, float]:
    """ms/image of each stage of the forward (eval, no_grad), run stage by stage: wall
    time (median), or with ``cpu=True`` single-thread CPU time (min), which other users
    of a shared machine disturb much less."""
    from mgrr_pyg.model.regions import au_attention_maps

    batch = images.size(0)
    config = model.config
    stages: dict[str, float] = {}
    previous = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)

    def timed(name, function):
        if cpu:
            seconds = min(time_call(function, rounds, clock=time.process_time))
        else:
            seconds = statistics.median(time_call(function, rounds))
        stages[name] = 1000 * seconds / batch
        return function()

    with torch.no_grad():
        global_map = timed("stem (O_G)", lambda: model.stem(images))
        landmarks, feature = timed("alignment", lambda: model.alignment(global_map))
        _, boxes, _ = timed("AU boxes", lambda: au_attention_maps(
            landmarks.clamp(0, 175), config.aus, model.au_rules, check=False))
        features = timed("region features (V)", lambda: model.region_features(global_map, boxes))
        graphs = model.graphs(batch, images.device)
        current = global_map
        for k, layer in enumerate(model.layers):
            if layer.channel is not None:
                timed(f"layer {k}: channel attention (C_G)",
                      lambda: layer.channel(current, graphs["channel"]))
            if layer.pixel is not None:
                timed(f"layer {k}: pixel attention (P_G)",
                      lambda: layer.pixel(current, graphs["pixel"]))
            features, current, _ = timed(
                f"layer {k}: whole layer",
                lambda: layer(features, current, graphs["region"], graphs["channel"],
                              graphs["pixel"]))
        timed("heads", lambda: (model.local_heads(features),
                                model.integrated_head(features, feature)))
        timed("total forward", lambda: model(images))
    torch.set_num_threads(previous)
    return stages


def test_component_times(benchmark, two_threads):
    model, images = build("eager"), make_images(COMPONENT_BATCH)
    stages = benchmark.pedantic(component_times, args=(model, images, 1 if SMALL else 3),
                                rounds=1, iterations=1)
    for name, value in stages.items():
        benchmark.extra_info[name] = value
    assert stages["total forward"] > 0


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def side_by_side(batch: int = COMPARED_BATCH, rounds: int = COMPARED_ROUNDS,
                 variants=COMPARED_VARIANTS, small: bool = SMALL, wall: bool = True) -> dict:
    """MGRR-Net and the JAA-Net-shaped reference in the same run: every round calls each
    network in each variant once with :data:`THREADS` threads (wall time), then once more
    with one thread (process CPU time), so slow moments of a shared machine fall on both.
    ``wall=False`` skips the wall-time calls (on a busy machine they take many times
    longer and say little: each parallel region waits for a descheduled thread).

    Returns ``ms`` / ``cpu_ms`` (per image: median wall, min CPU) keyed by
    ``(network, variant)``, ``gflop`` per network, the matmul rates measured before and
    after (fp32 and bf16, :data:`THREADS` threads), the load average before and after,
    and the ratios MGRR / JAA-Net as built (``eager``) and each at its best variant.

    ``bf16`` is timed only where this machine multiplies bf16 matrices faster than fp32
    ones (or in small mode, so that the path cannot rot): a CPU without bf16 units
    converts and runs it many times slower (here 13x in a 2048^2 matmul), and the ``bf16``
    forward of the reference then takes minutes. The skip is in the result
    (``bf16_skipped``)."""
    load_before = _load()
    fp32_rate = _matmul_rate(512 if small else 2048)
    # At 512^2 only: without bf16 units one 2048^2 bf16 product takes a minute.
    bf16_rate = _matmul_rate(512, rounds=3, dtype=torch.bfloat16)
    bf16_skipped = ("bf16" in variants and bf16_rate < _matmul_rate(512, rounds=3)
                    and not small)
    if bf16_skipped:
        variants = tuple(v for v in variants if v != "bf16")
    cases = {(name, variant): build_network(name, variant, small, batch)
             for name in ("mgrr", "jaanet") for variant in variants}
    gflop = {name: flops_per_image(*cases[(name, "eager")], "eager") / 1e9
             for name in ("mgrr", "jaanet")}
    wall_times = {key: [] for key in cases}
    cpu = {key: [] for key in cases}
    for (_, variant), (model, images) in cases.items():
        if variant != "eager" and not small:  # (eager was warmed up by the FLOP count)
            run_forward(model, images, variant)  # structures cached, allocator warm
    previous = torch.get_num_threads()
    try:
        for _ in range(rounds):
            torch.set_num_threads(THREADS)
            for key, (model, images) in cases.items() if wall else ():
                start = time.perf_counter()
                run_forward(model, images, key[1])
                wall_times[key].append(time.perf_counter() - start)
            torch.set_num_threads(1)
            for key, (model, images) in cases.items():
                start = time.process_time()
                run_forward(model, images, key[1])
                cpu[key].append(time.process_time() - start)
    finally:
        torch.set_num_threads(previous)
    fp32_rate_after = _matmul_rate(512 if small else 2048)
    ms = {key: 1000 * statistics.median(times) / batch if times else float("nan")
          for key, times in wall_times.items()}
    cpu_ms = {key: 1000 * min(times) / batch for key, times in cpu.items()}
    result = {"batch": batch, "rounds": rounds, "threads": THREADS, "variants": tuple(variants),
              "ms": ms, "cpu_ms": cpu_ms, "gflop": gflop,
              "fp32_matmul_gflops": fp32_rate, "fp32_matmul_gflops_after": fp32_rate_after,
              "bf16_matmul_gflops": bf16_rate, "bf16_skipped": bf16_skipped,
              "load_before": load_before,
              "load_after": _load()}
    for label, table in (("wall", ms), ("cpu", cpu_ms)) if wall else (("cpu", cpu_ms),):
        best = {name: min(variants, key=lambda v: table[(name, v)]) for name in ("mgrr", "jaanet")}
        result[f"{label}_best_variant"] = best
        result[f"{label}_ratio_as_built"] = table[("mgrr", "eager")] / table[("jaanet", "eager")]
        result[f"{label}_ratio_best"] = (table[("mgrr", best["mgrr"])]
                                         / table[("jaanet", best["jaanet"])])
    one_thread_rate = _matmul_rate(512 if small else 2048, num_threads=1)
    result["fp32_matmul_gflops_1_thread"] = one_thread_rate
    for name in ("mgrr", "jaanet"):
        if wall:
            achieved = gflop[name] / (ms[(name, "eager")] / 1000)
            result[f"{name}_eager_fraction_of_fp32_matmul"] = achieved / fp32_rate
        achieved = gflop[name] / (cpu_ms[(name, "eager")] / 1000)
        result[f"{name}_eager_cpu_fraction_of_fp32_matmul_1_thread"] = achieved / one_thread_rate
    return result


def test_vs_jaanet(benchmark, two_threads, require_memory):
    require_memory(FORWARD_BYTES_PER_IMAGE * COMPARED_BATCH * 6 + 2e9, "side-by-side comparison")
    result = benchmark.pedantic(side_by_side, rounds=1, iterations=1)
    for key, value in result.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                name = "/".join(inner) if isinstance(inner, tuple) else inner
                benchmark.extra_info[f"{key}[{name}]"] = number
        else:
            benchmark.extra_info[key] = value
    # The reference is the heavier network at every size, so a sign of a broken setup:
    assert result["gflop"]["jaanet"] > result["gflop"]["mgrr"]


def compare_report(result: dict) -> str:
    """bench/README.md's side-by-side table from :func:`side_by_side`."""
    gflop = result["gflop"]
    lines = [f"Side by side (batch {result['batch']}, {result['rounds']} rounds, one call of "
             f"each case per round; load average {result['load_before']} before, "
             f"{result['load_after']} after; fp32 matmul rate "
             f"{result['fp32_matmul_gflops']:.0f} GFLOP/s before, "
             f"{result['fp32_matmul_gflops_after']:.0f} after, bf16 (512²) "
             f"{result['bf16_matmul_gflops']:.0f}; {result['threads']} threads"
             + ("; bf16 not timed: slower than fp32 on this CPU" if result["bf16_skipped"]
                else "") + "):", "",
             "| variant | MGRR ms/image | JAA-Net ms/image | MGRR / JAA-Net | MGRR 1-thread CPU "
             "ms/image | JAA-Net 1-thread CPU ms/image | MGRR / JAA-Net (CPU) |",
             "|---|---|---|---|---|---|---|"]
    for variant in result["variants"]:
        m, j = result["ms"][("mgrr", variant)], result["ms"][("jaanet", variant)]
        mc, jc = result["cpu_ms"][("mgrr", variant)], result["cpu_ms"][("jaanet", variant)]
        wall = (f"{m:.1f} | {j:.1f} | {m / j:.2f}" if m == m else "– | – | –")  # nan: not timed
        lines.append(f"| {variant} | {wall} | {mc:.1f} | {jc:.1f} | {mc / jc:.2f} |")
    lines.append("")
    for label in ("wall", "cpu"):
        if f"{label}_best_variant" not in result:
            continue
        best = result[f"{label}_best_variant"]
        lines.append(f"- {label}: as built {result[f'{label}_ratio_as_built']:.2f}; each at its "
                     f"best (MGRR {best['mgrr']}, JAA-Net {best['jaanet']}) "
                     f"{result[f'{label}_ratio_best']:.2f}")
    for name in ("mgrr", "jaanet"):
        wall_share = result.get(f"{name}_eager_fraction_of_fp32_matmul")
        lines.append(f"- {name}: {gflop[name]:.2f} GFLOP/image, eager fp32 at "
                     + (f"{wall_share:.0%} of the fp32 matmul rate ({result['threads']} "
                        f"threads, wall), " if wall_share is not None else "")
                     + f"{result[f'{name}_eager_cpu_fraction_of_fp32_matmul_1_thread']:.0%} of the "
                     f"1-thread rate {result['fp32_matmul_gflops_1_thread']:.0f} GFLOP/s "
                     f"(1-thread CPU time)")
    return "\n".join(lines)


def report() -> str:
    """Run every case once more and return bench/README.md's Model section tables."""
    torch.set_num_threads(THREADS)
    lines = [f"Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical CPUs, torch {torch.__version__}, "
             f"{THREADS} threads, preset `{PRESET}`.", ""]
    rate = matmul_gflops()
    lines.append(f"Measured fp32 matmul rate (2048^2, same run): {rate:.0f} GFLOP/s.")
    lines.append("")
    lines.append("| variant | batch | ms/image (median, 2 threads) "
                 "| 1-thread CPU ms/image | GFLOP/image | achieved GFLOP/s | share of matmul rate |")
    lines.append("|---|---|---|---|---|---|---|")
    for variant in VARIANTS:
        for batch in BATCHES:
            model, images = build(variant), make_images(batch, variant)
            gflop = flops_per_image(model, images[:1], variant) / 1e9
            times = time_call(lambda: run_forward(model, images, variant),
                              max(3, 24 // batch), warmup=1)
            ms = 1000 * statistics.median(times) / batch
            cpu_ms = cpu_ms_per_image(model, images, variant) if batch == 8 or SMALL else None
            achieved = gflop / (ms / 1000)
            cpu = f"{cpu_ms:.1f}" if cpu_ms is not None else "–"
            lines.append(f"| {variant} | {batch} | {ms:.1f} | {cpu} | "
                         f"{gflop:.2f} | {achieved:.0f} | {achieved / rate:.0%} |")
            print(lines[-1], file=sys.stderr)
    cost_batch = 2 if SMALL else 8
    cost = accuracy_cost("bf16", cost_batch)
    lines.append("")
    lines.append(f"bf16 accuracy cost (batch {cost_batch}, vs fp32 on the same weights): max |Δp| = "
                 f"{cost['max_abs_prob_diff']:.4f}, max landmark shift = "
                 f"{cost['max_landmark_shift_px']:.3f} px.")
    for batch in TRAIN_BATCHES[:1]:
        torch.manual_seed(0)
        model = create_model(PRESET).train()
        n = model.config.num_aus
        args = (model, MGRRLoss(torch.ones(n)), make_images(batch),
                torch.randint(0, 2, (batch, n)).float(), 40 + 96 * torch.rand(batch, 49, 2),
                torch.full((batch,), 60.0))
        seconds = statistics.median(time_call(lambda: train_step(*args), 3))
        lines.append(f"Training step (forward + joint loss + backward, train mode, batch {batch}): "
                     f"{batch / seconds:.1f} images/s ({1000 * seconds / batch:.0f} ms/image).")
    lines.append("")
    lines.append("Where the time goes (eager, batch %d, ms/image):" % COMPONENT_BATCH)
    lines.append("")
    lines.append("| stage | wall, 2 threads | CPU, 1 thread |")
    lines.append("|---|---|---|")
    model, images = build("eager"), make_images(COMPONENT_BATCH)
    wall = component_times(model, images)
    cpu = component_times(model, images, cpu=True)
    for name, value in wall.items():
        lines.append(f"| {name} | {value:.1f} | {cpu[name]:.1f} |")
    lines.append("")
    lines.append(compare_report(side_by_side()))
    return "\n".join(lines)


if __name__ == "__main__":
    if "--compare" in sys.argv[1:]:  # only the side-by-side comparison with JAA-Net
        # --cpu-only: 1-thread CPU time only (a busy machine); --rounds N
        rounds = (int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv
                  else COMPARED_ROUNDS)
        print(compare_report(side_by_side(rounds=rounds, wall="--cpu-only" not in sys.argv)))
    else:
        print(report())

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
  ``extra_info``: ``ms_per_image`` (median / batch), ``vs_jaanet`` (141 ms/image at batch 8,
  ``bench/README.md``), ``gflop_per_image``, ``achieved_gflops``,
  ``matmul_gflops`` (a 2048^2 fp32 matmul measured in the same process) and
  ``fraction_of_matmul_rate``.
* ``test_forward_compiled``: ``torch.compile`` (inductor) at batch 8, compile time in
  ``extra_info``.
* ``test_train_step``: forward + joint loss + backward (train mode), ``images_per_s``.
* ``test_component_times``: where the forward time goes at batch 8 (stem, alignment,
  regions, reasoning layers, heads) as ms/image.

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
from torch.utils.flop_counter import FlopCounterMode

from mgrr_pyg.model import MGRRLoss, create_model

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESET = "tiny" if SMALL else "mgrr_bp4d"
BATCHES = (1, 2) if SMALL else (1, 8, 32)
TRAIN_BATCHES = (2,) if SMALL else (8, 32)
COMPONENT_BATCH = 2 if SMALL else 8
VARIANTS = ("eager", "channels_last", "fused", "fused_channels_last", "bf16")
JAANET_MS = 141.0  # JAA-Net v2, batch 8, per image, same kind of machine (bench/README.md)
THREADS = 2
# Peak memory per image, measured at batch 8 on mgrr_bp4d (RSS growth), with margin.
FORWARD_BYTES_PER_IMAGE = 60e6
TRAIN_BYTES_PER_IMAGE = 260e6


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


def build(variant: str = "eager", seed: int = 0):
    """The benchmarked model in one of the inference variants, eval mode."""
    torch.manual_seed(seed)
    model = create_model(PRESET).eval()
    if variant in ("fused", "fused_channels_last", "bf16"):
        model.fold_batchnorm()
    if variant in ("channels_last", "fused_channels_last", "bf16"):
        model = model.to(memory_format=torch.channels_last)
    return model


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


def time_call(function, rounds: int, warmup: int = 1, clock=time.perf_counter) -> list[float]:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(rounds):
        start = clock()
        function()
        times.append(clock() - start)
    return times


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
    counter = FlopCounterMode(display=False)
    with counter:
        run_forward(model, images, variant)
    return counter.get_total_flops() / images.size(0)


def matmul_gflops(size: int = 2048, rounds: int = 5) -> float:
    """This machine's fp32 matmul rate now (median of ``rounds``), in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = time_call(lambda: a @ b, rounds, warmup=2)
    return 2 * size**3 / statistics.median(times) / 1e9


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
        if batch == 8 and not SMALL:
            benchmark.extra_info["vs_jaanet"] = JAANET_MS / (1000 * median / batch)
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


def report() -> str:
    """Run every case once more and return bench/README.md's Model section tables."""
    torch.set_num_threads(THREADS)
    lines = [f"Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical CPUs, torch {torch.__version__}, "
             f"{THREADS} threads, preset `{PRESET}`.", ""]
    rate = matmul_gflops()
    lines.append(f"Measured fp32 matmul rate (2048^2, same run): {rate:.0f} GFLOP/s.")
    lines.append("")
    lines.append("| variant | batch | ms/image (median, 2 threads) | vs JAA-Net 141 ms "
                 "| 1-thread CPU ms/image | GFLOP/image | achieved GFLOP/s | share of matmul rate |")
    lines.append("|---|---|---|---|---|---|---|---|")
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
            lines.append(f"| {variant} | {batch} | {ms:.1f} | {JAANET_MS / ms:.2f}x | {cpu} | "
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
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())

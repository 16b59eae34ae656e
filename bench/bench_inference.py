"""The inference fast path (``mgrr_pyg.model.inference.prepare_for_inference``): what bf16
autocast costs in accuracy against fp32, and what each precision costs in time here.

* :func:`bf16_agreement`: the same seeded model prepared in fp32 and in bf16, on the
  deterministic inputs of ``example_inputs(n, seed=1)``: max |p_bf16 - p_fp32| over every
  AU probability, max landmark shift (crop pixels), AU decisions (p >= 0.5) equal, and
  whether every decision whose fp32 probability is further than the stated bound
  (``BF16_MAX_PROB_DIFFERENCE``) from the threshold agrees. The figures in
  ``mgrr_pyg/model/inference.py``'s docstring come from this.
* :func:`precision_speed`: ms/image of the model as built (eval, fp32), the fast path in
  fp32, and in bf16, one call of each per round, 1 intra-op thread, timed by the thread's
  CPU time; the device's default precision (``default_precision``) is recorded.

``python bench/bench_inference.py [--images 16] [--rounds 3]`` prints both tables;
``python -m pytest bench/bench_inference.py`` stores them in ``extra_info``;
``MGRR_BENCH_SMALL=1``: the ``tiny`` preset, 4 images, one round.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from mgrr_pyg.model import create_model
from mgrr_pyg.model.inference import (BF16_MAX_LANDMARK_PX, BF16_MAX_PROB_DIFFERENCE,
                                      default_precision, prepare_for_inference)
from mgrr_pyg.predict.inference import example_inputs

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESETS = ("tiny",) if SMALL else ("mgrr_bp4d", "tiny")
IMAGES = 4 if SMALL else 16
ROUNDS = 1 if SMALL else 3
SPEED_BATCH = 2 if SMALL else 8
THREADS = 1


def _seeded_model(preset: str, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(preset).eval()


def _run(model, images, landmarks):
    with torch.inference_mode():
        return model(images, region_landmarks=landmarks)


def bf16_agreement(preset: str, images: int = IMAGES, seed: int = 1,
                   threshold: float = 0.5) -> dict:
    """fp32 against bf16 on the fast path (channels-last both), one batch of ``images``."""
    model = _seeded_model(preset)
    fp32 = prepare_for_inference(model, "cpu", precision="fp32")
    bf16 = prepare_for_inference(model, "cpu", precision="bf16")
    x, landmarks = example_inputs(images, seed=seed)
    x = x.contiguous(memory_format=torch.channels_last)
    reference, low = _run(fp32, x, landmarks), _run(bf16, x, landmarks)
    p32, p16 = reference.probs, low.probs
    decided = (p32 >= threshold) == (p16 >= threshold)
    clear = (p32 - threshold).abs() > BF16_MAX_PROB_DIFFERENCE
    return {"preset": preset, "images": images, "seed": seed,
            "probabilities": p32.numel(),
            "max_prob_difference": float((p16 - p32).abs().max()),
            "max_landmark_px": float((low.landmarks - reference.landmarks).abs().max()),
            "decisions_equal": int(decided.sum()),
            "clear_decisions": int(clear.sum()),
            "clear_decisions_equal": int((decided & clear).sum()),
            "fp32_prob_range": (float(p32.min()), float(p32.max())),
            "bound_prob": BF16_MAX_PROB_DIFFERENCE, "bound_landmark_px": BF16_MAX_LANDMARK_PX}


def precision_speed(preset: str, batch: int = SPEED_BATCH, rounds: int = ROUNDS) -> dict:
    """ms/image (min thread CPU time over ``rounds``) of: as built, fast fp32, fast bf16."""
    model = _seeded_model(preset)
    variants = {"as_built": model,
                "fast_fp32": prepare_for_inference(model, "cpu", precision="fp32"),
                "fast_bf16": prepare_for_inference(model, "cpu", precision="bf16")}
    x, landmarks = example_inputs(batch, seed=1)
    inputs = {"as_built": x, "fast_fp32": x.contiguous(memory_format=torch.channels_last)}
    inputs["fast_bf16"] = inputs["fast_fp32"]
    times = {name: [] for name in variants}
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for name, network in variants.items():
            _run(network, inputs[name], landmarks)  # warm-up: graph caches, allocator
        for _ in range(rounds):
            for name, network in variants.items():
                start = time.thread_time()
                _run(network, inputs[name], landmarks)
                times[name].append(time.thread_time() - start)
    finally:
        torch.set_num_threads(previous)
    ms = {name: 1000 * min(values) / batch for name, values in times.items()}
    return {"preset": preset, "batch": batch, "rounds": rounds, "threads": THREADS,
            "ms_per_image": ms, "default_precision_cpu": default_precision("cpu"),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "load": os.getloadavg()[0]}


def report(agreements: list, speeds: list) -> str:
    lines = ["| preset | images | AU probabilities | max abs prob diff | max landmark shift px "
             "| decisions equal | clear decisions (margin > bound) equal | fp32 prob range |",
             "|---|---|---|---|---|---|---|---|"]
    for a in agreements:
        low, high = a["fp32_prob_range"]
        lines.append(f"| {a['preset']} | {a['images']} | {a['probabilities']} | "
                     f"{a['max_prob_difference']:.4f} | {a['max_landmark_px']:.2f} | "
                     f"{a['decisions_equal']} / {a['probabilities']} | "
                     f"{a['clear_decisions_equal']} / {a['clear_decisions']} | "
                     f"{low:.2f}-{high:.2f} |")
    lines += ["", "| preset | batch | as built ms/image | fast fp32 | fast bf16 | default "
              "precision here | CPU | load |", "|---|---|---|---|---|---|---|---|"]
    for s in speeds:
        ms = s["ms_per_image"]
        lines.append(f"| {s['preset']} | {s['batch']} | {ms['as_built']:.1f} | "
                     f"{ms['fast_fp32']:.1f} | {ms['fast_bf16']:.1f} | "
                     f"{s['default_precision_cpu']} | {s['cpu_capability']} | {s['load']:.1f} |")
    return "\n".join(lines)


def test_bf16_agreement(benchmark):
    results = benchmark.pedantic(lambda: [bf16_agreement(p) for p in PRESETS],
                                 rounds=1, iterations=1)
    for result in results:
        for key, value in result.items():
            benchmark.extra_info[f"{result['preset']}/{key}"] = value
        assert result["max_prob_difference"] <= BF16_MAX_PROB_DIFFERENCE
        assert result["max_landmark_px"] <= BF16_MAX_LANDMARK_PX
        assert result["clear_decisions_equal"] == result["clear_decisions"]


def test_precision_speed(benchmark):
    results = benchmark.pedantic(lambda: [precision_speed(p) for p in PRESETS],
                                 rounds=1, iterations=1)
    for result in results:
        for key, value in result["ms_per_image"].items():
            benchmark.extra_info[f"{result['preset']}/{key}_ms_per_image"] = value
        benchmark.extra_info[f"{result['preset']}/default_precision_cpu"] = \
            result["default_precision_cpu"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=IMAGES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)
    started, load = time.perf_counter(), os.getloadavg()[0]
    torch.set_num_threads(THREADS)
    agreements = [bf16_agreement(p, args.images) for p in args.presets]
    speeds = [] if args.no_speed else [precision_speed(p, rounds=args.rounds)
                                       for p in args.presets]
    print(report(agreements, speeds))
    print(f"\n(load {load:.1f} -> {os.getloadavg()[0]:.1f}, {time.perf_counter() - started:.0f} s, "
          f"torch {torch.__version__})")


if __name__ == "__main__":
    main()

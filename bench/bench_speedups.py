"""Speed-ups of the model code, before against after, side by side in one process.

Each entry of :data:`SPEEDUPS` names a change and a context manager that puts the code
back as it was before it (a monkeypatch of the module attribute the model calls), so the
old and the new path run in the same process, round by round (a slow moment of a shared
machine falls on both). For each change: the ``Trainer.train_step`` of ``mgrr_bp4d``
(batch 8, 1 intra-op thread, thread CPU time) before and after, the component of the model
it touches (forward + backward; a smaller, steadier figure on a shared machine), and a
check that both give the same loss and the same gradients (the speed-ups must not change
outputs).

* ``max_pool_backward``: the stem's and alignment branch's 2x2 max-pooling
  (``mgrr_pyg.model.stem.max_pool_2x2``) with its hand-written backward, against autograd
  through the two ``torch.maximum`` calls.

``python bench/bench_speedups.py [--rounds 3] [--batch 8]`` prints the table;
``python -m pytest bench/bench_speedups.py`` stores it in ``extra_info``;
``MGRR_BENCH_SMALL=1``: ``tiny`` at batch 2, one round.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

import mgrr_pyg.model.stem as stem_module

from bench_train import make_trainer

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESET = "tiny" if SMALL else "mgrr_bp4d"
BATCH = 2 if SMALL else 8
ROUNDS = 1 if SMALL else 3


def _two_maxima_pool(x):
    # the pooling before the change: autograd through the two maxima
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :height, :width]
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


@contextlib.contextmanager
def _patched(module, name, value):
    previous = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, previous)


def _stem_and_alignment(model, images):
    # the part of the step the pooling change touches: forward + backward
    global_map = model.stem(images)
    landmarks, feature = model.alignment(global_map)
    (global_map.mean() + landmarks.mean() + feature.mean()).backward()


#: name -> (a callable returning the context in which the code is as before the change,
#: the component of the model it touches: ``component(model, images)`` runs it forward
#: and backward).
SPEEDUPS = {
    "max_pool_backward": (lambda: _patched(stem_module, "max_pool_2x2", _two_maxima_pool),
                          _stem_and_alignment),
}


def _gradients(trainer, sample):
    """Loss and parameter gradients of one forward + backward (no optimiser step)."""
    model = trainer.model
    model.zero_grad(set_to_none=True)
    out = model(sample["image"])
    terms = trainer.loss_terms(out, sample)
    terms["total"].backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(terms["total"].detach()), grads


def compare(name: str, preset: str = PRESET, batch: int = BATCH, rounds: int = ROUNDS) -> dict:
    """Before / after of one :data:`SPEEDUPS` entry: training-step CPU seconds (min and
    median of ``rounds``, alternating) and the largest gradient difference."""
    before_context, component = SPEEDUPS[name]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = make_trainer(preset, batch)
        sample = next(iter(trainer.train_loader))
        trainer.model.train()
        loss_after, grads_after = _gradients(trainer, sample)
        with before_context():
            loss_before, grads_before = _gradients(trainer, sample)
        worst = max(float((grads_after[k] - grads_before[k]).abs().max()
                          / grads_before[k].abs().max().clamp_min(1e-30)) for k in grads_before)
        times = {"before": [], "after": []}

        def step(label):
            start = time.thread_time()
            if label == "before":
                with before_context():
                    trainer.train_step(sample)
            else:
                trainer.train_step(sample)
            times[label].append(time.thread_time() - start)

        def part(label):
            model = trainer.model
            start = time.thread_time()
            if label == "before":
                with before_context():
                    component(model, sample["image"])
            else:
                component(model, sample["image"])
            model.zero_grad(set_to_none=True)
            times[f"{label}_component"].append(time.thread_time() - start)

        times = {"before": [], "after": [], "before_component": [], "after_component": []}
        step("before"), step("after"), part("before"), part("after")  # warm-up
        times = {key: [] for key in times}
        for _ in range(rounds):
            step("before")
            step("after")
            part("before")
            part("after")
    finally:
        torch.set_num_threads(previous)
    return {"speedup": name, "preset": preset, "batch": batch, "rounds": rounds,
            "before_s": min(times["before"]), "after_s": min(times["after"]),
            "before_median_s": statistics.median(times["before"]),
            "after_median_s": statistics.median(times["after"]),
            "ratio": min(times["before"]) / min(times["after"]),
            "component": component.__name__.strip("_"),
            "component_before_s": min(times["before_component"]),
            "component_after_s": min(times["after_component"]),
            "loss_equal": loss_before == loss_after,
            "max_relative_gradient_difference": worst,
            "load": os.getloadavg()[0]}


def report(results) -> str:
    lines = ["| change | preset, batch | step before s (min / median) | after s (min / median) "
             "| before / after | component touched: before -> after s (min) | loss equal "
             "| max rel. gradient difference | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['speedup']} | {r['preset']}, {r['batch']} | {r['before_s']:.2f} / "
                     f"{r['before_median_s']:.2f} | {r['after_s']:.2f} / {r['after_median_s']:.2f}"
                     f" | {r['ratio']:.2f}x | {r['component']}: {r['component_before_s']:.2f} -> "
                     f"{r['component_after_s']:.2f} ({r['component_before_s'] / r['component_after_s']:.2f}x)"
                     f" | {r['loss_equal']} | {r['max_relative_gradient_difference']:.1e} | "
                     f"{r['load']:.1f} |")
    return "\n".join(lines)


def test_speedups(benchmark):
    results = benchmark.pedantic(lambda: [compare(name) for name in SPEEDUPS],
                                 rounds=1, iterations=1)
    print("\n" + report(results))
    for r in results:
        benchmark.extra_info.update({f"{r['speedup']}/{k}": v for k, v in r.items()})
        assert r["loss_equal"]
        assert r["max_relative_gradient_difference"] <= 1e-5


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    results = [compare(name, args.preset, args.batch, args.rounds) for name in SPEEDUPS]
    print(report(results))
    print(f"\n(load {load:.1f} before; torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()})")


if __name__ == "__main__":
    main()

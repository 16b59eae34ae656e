"""Where the time of one training step goes: ``torch.profiler`` over a few
``Trainer.train_step`` calls (forward, joint loss, backward, SGD step) of MGRR-Net on an
in-memory batch, reported by operator and by module, forward and backward apart.

Backward time is charged to a module through the autograd sequence number: each backward
node (``autograd::engine::evaluate_function: XBackward0``) carries the sequence number of
the forward op that created it, and that forward op ran inside a module's range (forward
hooks open a ``record_function`` per module down to ``--depth``).

``python bench/profile_train.py [--preset mgrr_bp4d] [--batch 8] [--threads 1] [--steps 2]``
prints markdown tables (bench/README.md, Training). Times are wall time of the profiled
steps (profiler overhead included: the per-op total is a few percent above a plain step).
"""
from __future__ import annotations

import argparse
import bisect
import os
import time
from collections import defaultdict

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from mgrr_pyg.train.trainer import Trainer, _to_device

from bench_train import make_trainer

MODULE_PREFIX = "module::"
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "
ACCUMULATE_GRAD = "(parameter gradients: AccumulateGrad)"


def add_module_ranges(model: nn.Module, depth: int) -> list:
    """Forward hooks that open a ``record_function("module::<name>")`` around every module
    at most ``depth`` levels below ``model``. Returns the hook handles."""
    handles = []
    for name, module in model.named_modules():
        if not name or name.count(".") >= depth:
            continue
        label = MODULE_PREFIX + name

        def enter(module, args, label=label):
            scope = record_function(label)
            scope.__enter__()
            module.__dict__.setdefault("_profile_scopes", []).append(scope)

        def leave(module, args, output):
            module.__dict__["_profile_scopes"].pop().__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    return handles


def _innermost(ranges_by_start, starts, t):
    """The innermost module range (name, start, end) containing time ``t``."""
    i = bisect.bisect_right(starts, t)
    best = None
    while i > 0:
        i -= 1
        name, start, end = ranges_by_start[i]
        if start <= t <= end and (best is None or start >= best[1]):
            best = (name, start, end)
            break  # ranges are nested: the latest-starting one that contains t is innermost
    return best[0] if best else "(outside the model)"


def attribute(events, steps: int) -> dict:
    """Per-step milliseconds: by op (self time, forward / backward / optimiser) and by
    module (forward self time of its ops, backward nodes charged via sequence numbers)."""
    ranges = sorted(((e.name[len(MODULE_PREFIX):], e.time_range.start, e.time_range.end)
                     for e in events if e.name.startswith(MODULE_PREFIX)), key=lambda r: r[1])
    starts = [r[1] for r in ranges]
    step_ranges = [e.time_range for e in events if e.name == "step"]

    forward_ranges = [e.time_range for e in events if e.name == "phase::forward"]
    backward_ranges = [e.time_range for e in events if e.name == "phase::backward"]
    optimizer_ranges = [e.time_range for e in events if e.name == "phase::optimizer"]

    def phase_of(e):
        t = e.time_range.start
        for name, ranges_ in (("forward", forward_ranges), ("backward", backward_ranges),
                              ("optimizer", optimizer_ranges)):
            if any(r.start <= t <= r.end for r in ranges_):
                return name
        return "other"

    seq_module = {}
    by_op = defaultdict(float)
    by_module = defaultdict(lambda: [0.0, 0.0])
    backward_node_ms = defaultdict(float)
    for e in events:
        if e.name.startswith((MODULE_PREFIX, "phase::")) or e.name in ("step",):
            continue
        phase = phase_of(e)
        self_ms = e.self_cpu_time_total / 1000.0 / steps
        if phase == "forward":
            module = _innermost(ranges, starts, e.time_range.start)
            by_module[module][0] += self_ms
            if e.sequence_nr is not None and e.sequence_nr >= 0:
                seq_module.setdefault((e.sequence_nr, e.thread), module)
        if e.name.startswith(BACKWARD_PREFIX):
            # the node's whole time (its ops are its children): charged to a module below
            backward_node_ms[(e.name[len(BACKWARD_PREFIX):], e.sequence_nr, e.fwd_thread)] += \
                e.cpu_time_total / 1000.0 / steps
            continue
        by_op[(phase, e.name)] += self_ms
    backward_unmatched = 0.0
    backward_by_node = defaultdict(float)
    nodes_by_module = defaultdict(lambda: defaultdict(float))
    for (node, seq, fwd_thread), ms in backward_node_ms.items():
        backward_by_node[node] += ms
        module = seq_module.get((seq, fwd_thread))
        if "AccumulateGrad" in node:  # writes .grad of a leaf: no forward op created it
            module = ACCUMULATE_GRAD
        elif module is None:
            backward_unmatched += ms
            module = "(backward node without forward op)"
        by_module[module][1] += ms
        nodes_by_module[module][node] += ms
    step_ms = sum(r.end - r.start for r in step_ranges) / 1000.0 / steps
    phase_ms = {name: sum(r.end - r.start for r in rs) / 1000.0 / steps
                for name, rs in (("forward", forward_ranges), ("backward", backward_ranges),
                                 ("optimizer", optimizer_ranges))}
    return {"step_ms": step_ms, "phase_ms": phase_ms, "by_op": dict(by_op),
            "by_module": {k: tuple(v) for k, v in by_module.items()},
            "backward_by_node": dict(backward_by_node), "backward_unmatched_ms": backward_unmatched,
            "backward_nodes_by_module": {m: dict(n) for m, n in nodes_by_module.items()}}


def profile_steps(trainer: Trainer, steps: int, depth: int):
    """Profile ``steps`` training steps (after one warm-up step) split into phases."""
    sample = next(iter(trainer.train_loader))
    trainer.train_step(sample)  # warm-up: allocator, graph caches
    model = trainer.model
    handles = add_module_ranges(model, depth)
    device = trainer.device

    def step():
        batch = _to_device(sample, device, False)
        with record_function("step"):
            with record_function("phase::forward"), trainer.autocast():
                out = trainer.train_model(trainer.model_images(batch))
                total = trainer.loss_terms(out, batch)["total"]
            with record_function("phase::backward"):
                trainer.optimizer.zero_grad(set_to_none=True)
                total.backward()
            with record_function("phase::optimizer"):
                trainer.optimizer.step()

    try:
        plain = []
        for _ in range(steps):
            started = time.perf_counter()
            trainer.train_step(sample)
            plain.append(time.perf_counter() - started)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
    finally:
        for handle in handles:
            handle.remove()
    result = attribute(prof.events(), steps)
    result["plain_step_ms"] = [1000 * s for s in plain]
    return result


def _table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(result: dict, top: int = 25) -> str:
    step = result["step_ms"]
    out = [f"profiled step: {step:.0f} ms; plain steps (no profiler): "
           + ", ".join(f"{s:.0f}" for s in result["plain_step_ms"]) + " ms",
           "phases: " + ", ".join(f"{k} {v:.0f} ms ({100 * v / step:.0f} %)"
                                  for k, v in result["phase_ms"].items()),
           "", "By module (forward: self time of the ops run inside it; backward: its autograd "
           "nodes, matched by sequence number), ms per step:", ""]
    modules = sorted(result["by_module"].items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    out.append(_table([(name, f"{f:.0f}", f"{b:.0f}", f"{f + b:.0f}", f"{100 * (f + b) / step:.1f} %")
                       for name, (f, b) in modules if f + b >= 0.5],
                      ("module", "forward ms", "backward ms", "total ms", "of step")))
    out += ["", f"Backward time not matched to a forward op: {result['backward_unmatched_ms']:.0f} ms",
            "", "Backward by autograd node (node's total time), ms per step:", ""]
    nodes = sorted(result["backward_by_node"].items(), key=lambda kv: -kv[1])[:top]
    out.append(_table([(n, f"{ms:.0f}", f"{100 * ms / step:.1f} %") for n, ms in nodes],
                      ("backward node", "ms", "of step")))
    out += ["", "By op (self time), forward / optimizer / other, ms per step:", ""]
    ops = sorted(((p, n, ms) for (p, n), ms in result["by_op"].items() if p != "backward"),
                 key=lambda r: -r[2])[:top]
    out.append(_table([(p, n, f"{ms:.0f}", f"{100 * ms / step:.1f} %") for p, n, ms in ops],
                      ("phase", "op", "self ms", "of step")))
    out += ["", "By op (self time) inside backward nodes, ms per step:", ""]
    ops = sorted(((n, ms) for (p, n), ms in result["by_op"].items() if p == "backward"),
                 key=lambda r: -r[1])[:top]
    out.append(_table([(n, f"{ms:.0f}", f"{100 * ms / step:.1f} %") for n, ms in ops],
                      ("op", "self ms", "of step")))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mgrr_bp4d")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--depth", type=int, default=2, help="module levels given a range")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# {args.preset}, batch {args.batch}, {args.threads} thread(s), "
          f"{args.steps} profiled steps; load {os.getloadavg()[0]:.2f}; "
          f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")
    result = profile_steps(make_trainer(args.preset, args.batch), args.steps, args.depth)
    print(report(result, args.top))
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

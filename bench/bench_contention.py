"""Training throughput on a CPU shared with another job: the thread policy of
:mod:`mgrr_pyg.utils.threads` against torch's defaults.

Each case runs the same workload twice in fresh processes, back to back: alone, then
while a competitor (another torch job: a 2-thread 512 x 512 matmul loop with torch's
defaults) runs, and reports images/s of both and the ratio contended / alone of the step
time (``rounds`` such pairs, medians). Workload: training steps (forward, joint loss,
backward, AdamW) of the ``tiny`` preset at batch 8 on random 176 x 176 input, the quick
schedule's model and batch, after one warm-up step.

Cases (``policy``):

* ``package``: what ``mgrr-train`` / ``examples/*.py`` do by default (``import mgrr_pyg``
  before torch, so ``OMP_WAIT_POLICY=PASSIVE``; intra-op threads from
  :func:`~mgrr_pyg.utils.threads.apply_thread_policy`);
* ``torch_default``: torch's own defaults (torch imported first, threads = cores, libgomp
  spin-waiting), i.e. the CLI before the policy;
* ``threads2_passive``: 2 intra-op threads with passive waiting (the wait policy alone).

Competitor (``competitor``): ``same_session``, started in the benchmark's own session, so the
kernel shares the CPU thread by thread between the two jobs (a machine without autogroup
scheduling, or two jobs started from one script: the stricter case); ``own_session``, in a
new session like a job started from another terminal or by a service (with Linux's
autogroup scheduling, ``/proc/sys/kernel/sched_autogroup_enabled``, the CPU is then shared
session by session).

``extra_info`` holds ``alone_images_per_s``, ``contended_images_per_s``, ``ratio``, the
thread settings of the workload, the loss after the last step (hex: equal across
policies with the same thread count) and the 1-minute load average before each half.

Full size: ``python -m pytest bench/bench_contention.py -s`` (prints a table) or
``python bench/bench_contention.py`` (the same table without pytest); small (CI):
``MGRR_BENCH_SMALL=1 python -m pytest bench/bench_contention.py --benchmark-disable``
(package policy, same session, batch 2, 2 steps). Subsets:
``python bench/bench_contention.py --policy package --competitor same_session``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import pytest

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
POLICIES = ("package", "torch_default", "threads2_passive")
SESSIONS = ("same_session", "own_session")
CASES = [("package", "same_session")] if SMALL else [(p, s) for p in POLICIES for s in SESSIONS]
STEPS, BATCH, ROUNDS = (2, 2, 1) if SMALL else (20, 8, 2)
HERE = os.path.abspath(__file__)
# Threading variables of the environment this file runs in must not leak into the
# workload or the competitor: each policy sets its own.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in _THREAD_VARS}


# -- the two child processes ---------------------------------------------------------------
def _workload(policy: str, steps: int, batch: int) -> dict:
    if policy == "torch_default":
        import torch  # first: libgomp loads with its defaults, mgrr_pyg cannot change them

        import mgrr_pyg  # noqa: F401
    else:
        import mgrr_pyg  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads libgomp)
        import torch
    from mgrr_pyg.utils.threads import apply_thread_policy, thread_settings

    if policy == "package":
        apply_thread_policy()
    elif policy == "threads2_passive":
        apply_thread_policy(2)
    from mgrr_pyg.model import MGRRLoss, create_model
    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.trainer import Trainer

    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(batch, 12, generator=g) < 0.3).float()
    sample = {"image": torch.rand(batch, 3, 176, 176, generator=g) * 2 - 1, "labels": labels,
              "label_mask": torch.ones_like(labels, dtype=torch.bool),
              "landmarks": 40 + torch.rand(batch, 49, 2, generator=g) * 96,
              "interocular": torch.full((batch,), 60.0), "index": torch.arange(batch)}
    torch.manual_seed(0)
    config = TrainConfig(batch_size=batch, epochs=1, workers=0, progress=False, tensorboard=False,
                         device="cpu", optimizer="adamw", lr=1e-3)
    trainer = Trainer(create_model("tiny"), MGRRLoss(torch.ones(12)), _OneBatch(sample), config)
    trainer.train_step(sample)  # warm-up: allocator, oneDNN primitives
    started = time.perf_counter()
    for _ in range(steps):
        terms = trainer.train_step(sample)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images_per_s": steps * batch / seconds,
            "loss_hex": float(terms["total"]).hex(), "threads": thread_settings()}


class _OneBatch:
    """A dataset of ``batch`` items, for the Trainer's loader (the steps reuse one batch)."""

    def __init__(self, sample):
        self.sample = sample

    def __len__(self):
        return len(self.sample["image"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.sample.items()}


def _competitor() -> None:
    import torch

    torch.set_num_threads(2)
    a = torch.randn(512, 512)
    a @ a
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent:  # never outlive the benchmark, even if it is killed
        for _ in range(100):
            a @ a


# -- the measurement -----------------------------------------------------------------------
def _run_workload(policy: str, steps: int, batch: int) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, HERE, "workload", "--policy", policy, "--steps", str(steps),
                          "--batch", str(batch)], env=_clean_env(), capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"workload {policy!r} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = load
    return result


def _contended(policy: str, session: str, steps: int, batch: int) -> dict:
    competitor = subprocess.Popen([sys.executable, HERE, "competitor"], env=_clean_env(),
                                  stdout=subprocess.PIPE, text=True,
                                  start_new_session=session == "own_session")
    try:
        if competitor.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the competitor process did not start (exit {competitor.poll()})")
        return _run_workload(policy, steps, batch)
    finally:
        competitor.kill()
        competitor.wait()


def measure(policy: str, session: str = "same_session", steps: int = STEPS, batch: int = BATCH,
            rounds: int = ROUNDS) -> dict:
    """``rounds`` pairs (alone, then contended) of the workload under ``policy``, the
    competitor in the benchmark's session or its own; medians."""
    alone, contended = [], []
    for _ in range(rounds):
        alone.append(_run_workload(policy, steps, batch))
        contended.append(_contended(policy, session, steps, batch))
    alone_s = statistics.median(r["seconds"] for r in alone)
    contended_s = statistics.median(r["seconds"] for r in contended)
    return {
        "policy": policy, "competitor": session, "steps": steps, "batch": batch, "rounds": rounds,
        "alone_images_per_s": steps * batch / alone_s,
        "contended_images_per_s": steps * batch / contended_s,
        "ratio": contended_s / alone_s,
        "alone_load": [r["load"] for r in alone], "contended_load": [r["load"] for r in contended],
        "intra_op_threads": alone[0]["threads"]["intra_op_threads"],
        "omp_wait_policy": alone[0]["threads"]["omp_wait_policy"],
        "loss_hex": sorted({r["loss_hex"] for r in alone + contended}),
        "sched_autogroup": _read_text("/proc/sys/kernel/sched_autogroup_enabled"),
    }


def _read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


TABLE_HEADER = ("| policy | competitor | intra-op threads | wait policy | alone images/s | "
                "contended images/s | contended / alone (time) | load (alone; contended) |\n"
                "|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
    loads = (f"{'/'.join(f'{x:.1f}' for x in r['alone_load'])}; "
             f"{'/'.join(f'{x:.1f}' for x in r['contended_load'])}")
    return (f"| `{r['policy']}` | {r['competitor'].replace('_', ' ')} | {r['intra_op_threads']} | {r['omp_wait_policy']} | "
            f"{r['alone_images_per_s']:.1f} | {r['contended_images_per_s']:.1f} | "
            f"{r['ratio']:.2f}x | {loads} |")


def table(rows: list[dict]) -> str:
    return "\n".join([TABLE_HEADER] + [table_row(r) for r in rows])


_ROWS: list[dict] = []


@pytest.mark.parametrize("policy, session", CASES)
def test_contention(benchmark, policy, session):
    result = {}

    def run():
        result.update(measure(policy, session))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(result)
    _ROWS.append(result)
    if len(_ROWS) == len(CASES):
        print("\n" + table(_ROWS))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Throughput alone vs beside a competing job "
                                                 "(no arguments: every policy, markdown table).")
    parser.add_argument("role", nargs="?", choices=("workload", "competitor"))
    parser.add_argument("--policy", choices=POLICIES, nargs="+", default=list(POLICIES))
    parser.add_argument("--competitor", choices=SESSIONS, nargs="+", default=list(SESSIONS))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if args.role == "workload":
        print(json.dumps(_workload(args.policy[0], args.steps, args.batch)))
    elif args.role == "competitor":
        _competitor()
    else:
        print(TABLE_HEADER, flush=True)
        for policy in args.policy:  # row by row: a full run takes minutes
            for session in args.competitor:
                print(table_row(measure(policy, session, args.steps, args.batch, args.rounds)), flush=True)

"""CPU thread policy of the command-line runs: how many intra-op threads torch uses and
how idle OpenMP threads wait, chosen so that a run on a CPU shared with other jobs slows
down in proportion to its share of the CPU instead of collapsing.

Why (measured, ``bench/bench_contention.py`` and ``bench/README.md``): torch's CPU build
parallelises each operator with OpenMP (libgomp). Every parallel region ends at a barrier
where the first thread to finish spin-waits (300,000 spins by default) for the others. On
a 2-core machine shared with another 2-thread job, the thread being waited for is often
descheduled, and the spinning thread burns the very time slice it is waiting for: the
tiny model's training steps, thousands of small operators each, became 10-30x slower.
One intra-op thread per run has no barrier to wait at, and passive waiting (idle threads
sleep in the kernel at once) removes the spinning when a user asks for more threads.

The policy:

* **Intra-op threads** (:func:`default_intra_op_threads`): half the CPUs this process may
  run on, at least 1, so that this run and one other job like it fit on the machine (1 on
  a 2-core machine). It depends only on the CPU count, never
  on the load, because runs are bit-reproducible only at the same thread count.
  ``--threads N`` or ``OMP_NUM_THREADS`` set by the user win.
* **Wait policy**: ``OMP_WAIT_POLICY=PASSIVE`` unless the user set ``OMP_WAIT_POLICY`` or
  ``GOMP_SPINCOUNT``. libgomp reads these once, when ``import torch`` loads it, so
  ``import mgrr_pyg`` sets the default only if torch is not imported yet
  (:func:`prefer_passive_openmp_wait`); set ``OMP_WAIT_POLICY=ACTIVE`` to keep spinning.
  The wait policy changes no numerics.

:func:`apply_thread_policy` applies it (the command-line entry points call it once);
:func:`thread_settings` reports what is in force, for a run's records.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

#: Environment variables that decide CPU threading, reported by :func:`thread_settings`.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_WAIT_POLICY = "PASSIVE"

# What OpenMP saw when torch loaded it: recorded by prefer_passive_openmp_wait (None while
# unknown, e.g. torch was imported before this package).
_wait_policy_at_torch_import: Optional[dict] = None
# How the intra-op thread count was chosen by apply_thread_policy (None: never called).
_threads_source: Optional[str] = None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_intra_op_threads(cpus: Optional[int] = None) -> int:
    """Half of ``cpus`` (default: :func:`usable_cpus`), at least 1. On a machine with two
    hardware threads per core this is torch's own default (one per physical core)."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, cpus // 2)


def prefer_passive_openmp_wait(environ=None, torch_imported: Optional[bool] = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (default ``os.environ``) unless the
    user chose a wait policy or spin count, or torch (hence libgomp) is already loaded and
    would not read it. Returns whether it set the variable. Records what libgomp will see
    when the variable can still take effect."""
    global _wait_policy_at_torch_import
    environ = os.environ if environ is None else environ
    if torch_imported is None:
        torch_imported = "torch" in sys.modules
    if torch_imported:
        return False
    changed = False
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
        changed = True
    if environ is os.environ:
        _wait_policy_at_torch_import = {name: environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return changed


def apply_thread_policy(threads: Optional[int] = None) -> dict:
    """Set torch's intra-op thread count: ``threads`` when given (``--threads``), else the
    user's ``OMP_NUM_THREADS`` (which torch has applied), else
    :func:`default_intra_op_threads`. Returns :func:`thread_settings`."""
    global _threads_source
    import torch

    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected a whole number >= 1, found {threads!r}")
        torch.set_num_threads(threads)
        _threads_source = "--threads"
    elif os.environ.get("OMP_NUM_THREADS"):
        _threads_source = "OMP_NUM_THREADS"  # torch read it at import; left as the user set it
    else:
        torch.set_num_threads(default_intra_op_threads())
        _threads_source = f"default: half of {usable_cpus()} CPUs"
    return thread_settings()


def thread_settings() -> dict:
    """What is in force now: torch's intra-op and inter-op thread counts, how the intra-op
    count was chosen, the OpenMP wait policy libgomp runs with (``"unknown"`` when torch
    was imported before this package, so libgomp's view of the environment was not seen),
    the CPUs usable, and the threading environment variables (``None``: not set)."""
    import torch

    seen = _wait_policy_at_torch_import
    if seen is None:
        # torch came first: libgomp read the environment the process started with, unless
        # the variables were changed in between (then we cannot know what it read)
        seen = _start_environment(("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
        if seen is not None and any(seen[k] != os.environ.get(k) for k in seen):
            seen = None
    if seen is None:
        wait_policy = "unknown"
    elif seen.get("GOMP_SPINCOUNT") is not None:
        wait_policy = f"GOMP_SPINCOUNT={seen['GOMP_SPINCOUNT']}"
    else:
        # libgomp's default when OMP_WAIT_POLICY is unset: spin a while, then sleep
        wait_policy = (seen.get("OMP_WAIT_POLICY") or "default (spin, then sleep)")
    return {
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "threads_source": _threads_source or "torch default",
        "omp_wait_policy": wait_policy,
        "usable_cpus": usable_cpus(),
        "env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
    }


def _start_environment(names) -> Optional[dict]:
    """The values of ``names`` in the environment this process started with (Linux), or
    None where that cannot be read."""
    try:
        with open("/proc/self/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return None
    start = dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)
    return {name: start.get(name) for name in names}


def describe_threads(settings: Optional[dict] = None) -> str:
    """One console line for :func:`thread_settings`."""
    s = thread_settings() if settings is None else settings
    return (f"CPU threads: {s['intra_op_threads']} intra-op ({s['threads_source']}; --threads N to "
            f"change), {s['inter_op_threads']} inter-op, OpenMP wait policy {s['omp_wait_policy']}")


__all__ = ["DEFAULT_WAIT_POLICY", "THREAD_ENV_VARS", "apply_thread_policy", "default_intra_op_threads",
           "describe_threads", "prefer_passive_openmp_wait", "thread_settings", "usable_cpus"]

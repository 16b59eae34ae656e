"""Shared helpers for the benchmarks.

``MGRR_BENCH_SMALL=1`` selects small sizes (CI runs ``pytest bench/ --benchmark-disable``
with it so the benchmarks cannot rot); without it the benchmarks run at the paper's sizes.
"""
from __future__ import annotations

import os

import psutil
import pytest

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")


@pytest.fixture
def bench_small() -> bool:
    """True when small benchmark sizes were asked for (``MGRR_BENCH_SMALL=1``)."""
    return SMALL


@pytest.fixture
def two_threads(request):
    """torch's intra-op threads set to the benchmark module's ``THREADS`` (default 2) for
    one case, then restored."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(getattr(request.module, "THREADS", 2))
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def require_memory():
    """Call ``require_memory(estimate_bytes, what)`` to skip a case whose estimated peak
    memory exceeds what is available now; the skip reason carries the estimate."""

    def check(estimate_bytes: float, what: str = "this case") -> None:
        available = psutil.virtual_memory().available
        if estimate_bytes > 0.8 * available:
            pytest.skip(
                f"{what}: estimated peak {estimate_bytes / 2**30:.1f} GiB exceeds 80% of the "
                f"{available / 2**30:.1f} GiB available"
            )

    return check


_LAYER_RESULTS = pytest.StashKey[list]()


@pytest.fixture
def layer_results(request) -> list:
    """Where bench_layers.py leaves each timed case for the dense vs message-passing
    table printed at the end of the run."""
    return request.config.stash.setdefault(_LAYER_RESULTS, [])


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(_LAYER_RESULTS, [])
    if not rows:
        return  # nothing timed (e.g. --benchmark-disable)
    dense = {(r["graph"], r["mode"], r["batch"]): r["median_ms"] for r in rows if r["path"] == "dense"}
    terminalreporter.write_sep("-", "graph attention: dense vs message passing (median ms per graph)")
    terminalreporter.write_line(f"{'graph':7} {'mode':17} {'batch':>5} {'path':11} {'ms/graph':>9} {'x dense':>8}")
    for r in sorted(rows, key=lambda r: (r["graph"], r["mode"], r["batch"], r["path"] != "dense", r["path"])):
        base = dense.get((r["graph"], r["mode"], r["batch"]))
        ratio = f"{r['median_ms'] / base:7.1f}x" if base and r["path"] != "dense" else ""
        terminalreporter.write_line(f"{r['graph']:7} {r['mode']:17} {r['batch']:>5} {r['path']:11} "
                                    f"{r['median_ms'] / r['batch']:9.2f} {ratio:>8}")

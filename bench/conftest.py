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

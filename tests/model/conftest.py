"""Fixtures for the model tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def images(generator) -> torch.Tensor:
    """Two random crops in [-1, 1]."""
    return torch.rand(2, 3, 176, 176, generator=generator) * 2 - 1


@pytest.fixture(autouse=True)
def one_thread():
    """The model tests are many small ops: on a shared 2-core machine a second OpenMP
    thread mostly waits at barriers for a core (10-80x slower under load), so these tests
    run single-threaded; the thread count is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

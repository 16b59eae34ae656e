"""The helpers of ``bench/bench_train.py`` and ``bench/profile_train.py``: the JAA-Net
reference's training loss against values typed here, and the profile's charging of
backward time to the module whose forward created it. (Speeds are measured in the
benchmarks, never asserted here.)"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.profiler import profile, record_function

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_train
    import profile_train
    yield bench_train, profile_train
    for name in ("bench_train", "profile_train", "jaanet_reference"):
        sys.modules.pop(name, None)


class _Output:
    def __init__(self, probs, local_logits, landmarks):
        self.probs, self.local_logits, self.landmarks = probs, local_logits, landmarks


def test_jaanet_loss_matches_its_terms_typed_out(bench_modules):
    bench_train, _ = bench_modules
    # one frame, two AUs (the second not coded), two landmarks, interocular distance 2
    probs = torch.tensor([[0.8, 0.3]])
    local_logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]])  # AU 1: p(on) = 3/4
    landmarks = torch.tensor([[[1.0, 1.0], [4.0, 0.0]]])
    truth = torch.tensor([[[1.0, 2.0], [1.0, 4.0]]])  # squared errors 1 and 9 + 16
    labels = torch.tensor([[1.0, 0.0]])
    mask = torch.tensor([[True, False]])
    terms = bench_train.jaanet_loss(_Output(probs, local_logits, landmarks), labels, mask,
                                    truth, torch.tensor([2.0]))
    detection = -math.log(0.8)  # the coded AU only
    local = -math.log(0.75)
    align = (1 + 9 + 16) / (2 * 2.0 ** 2)
    assert terms["au"].item() == pytest.approx(detection, rel=1e-6)
    assert terms["local"].item() == pytest.approx(local, rel=1e-6)
    assert terms["align"].item() == pytest.approx(align, rel=1e-6)
    assert terms["total"].item() == pytest.approx(detection + local + 0.5 * align, rel=1e-6)


def test_the_profile_charges_backward_nodes_to_their_forward_module(bench_modules):
    _, profile_train = bench_modules
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("wide", nn.Linear(16, 32))
    model.add_module("act", nn.ReLU())
    model.add_module("head", nn.Linear(32, 1))
    handles = profile_train.add_module_ranges(model, depth=1)
    x = torch.randn(4, 16)
    with profile() as prof:
        with record_function("step"):
            with record_function("phase::forward"):
                loss = model(x).pow(2).mean()
            with record_function("phase::backward"):
                loss.backward()
    for handle in handles:
        handle.remove()
    result = profile_train.attribute(prof.events(), steps=1)
    nodes = result["backward_nodes_by_module"]
    assert "AddmmBackward0" in nodes["wide"] and "AddmmBackward0" in nodes["head"]
    assert set(nodes["act"]) == {"ReluBackward0"}
    # the loss (pow, mean) ran outside every module
    assert {"PowBackward0", "MeanBackward0"} <= set(nodes["(outside the model)"])
    assert "ReluBackward0" not in nodes["wide"] and "PowBackward0" not in nodes["head"]
    assert result["backward_unmatched_ms"] == 0
    # the hooks are gone: a second forward opens no ranges
    with profile() as again:
        model(x)
    assert not any(e.name.startswith(profile_train.MODULE_PREFIX) for e in again.events())

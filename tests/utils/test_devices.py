"""Device names as devices that exist: ``cuda:N`` checked against the machine's CUDA
devices, CUDA on a CPU-only machine refused, every message naming what was asked."""
from __future__ import annotations

import pytest
import torch

from mgrr_pyg.utils.devices import resolve_device


def fake_cuda(monkeypatch, count: int):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_a_cpu_only_machine_refuses_cuda_and_auto_is_the_cpu(monkeypatch):
    fake_cuda(monkeypatch, 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(ValueError, match=f"'{name}' asked for but CUDA is not available"):
            resolve_device(name)


def test_cuda_n_must_exist(monkeypatch):
    fake_cuda(monkeypatch, 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' asked for, but this machine has 2 CUDA "
                                         r"devices \(cuda:0 \.\. cuda:1\)"):
        resolve_device("cuda:2")
    # a torchrun rank beyond the devices ("cuda" / "auto" take LOCAL_RANK's device)
    with pytest.raises(ValueError, match="'cuda:3' asked for, but this machine has 2"):
        resolve_device("auto", local_rank=3)
    fake_cuda(monkeypatch, 1)
    with pytest.raises(ValueError, match=r"has 1 CUDA device \(cuda:0\)"):
        resolve_device("cuda:1")


def test_unknown_names_are_refused_naming_them():
    for name in ("gpu", "cuda:x", ""):
        with pytest.raises(ValueError, match=f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', found '{name}'"):
            resolve_device(name)


def test_training_and_prediction_use_this_resolver():
    from mgrr_pyg.predict.inference import resolve_inference_device
    from mgrr_pyg.train.distributed import resolve_device as train_resolve

    assert resolve_inference_device is resolve_device and train_resolve is resolve_device

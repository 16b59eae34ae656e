"""Checkpoints: weights_only round trip, RNG state, atomicity under ENOSPC, clear errors."""
import errno
import hashlib
import os
import random

import numpy as np
import pytest
import torch

from mgrr_pyg.train import checkpoint as ckpt_mod
from mgrr_pyg.train.checkpoint import (
    SCHEMA_VERSION,
    CheckpointError,
    CheckpointWriteError,
    build_metadata,
    check_compatible,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from mgrr_pyg.utils.digest import read_digest

from .toys import ToyModel


def _state(seed=0):
    torch.manual_seed(seed)
    model = ToyModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    x = torch.randn(4, 3, 12, 12)
    model(x).probs.sum().backward()
    opt.step()
    sched.step()
    sched.step()  # two epochs: the learning rate has been halved once
    return model, opt, sched


def test_round_trip_with_weights_only(tmp_path, monkeypatch):
    model, opt, sched = _state()
    meta = build_metadata((1, 2, 4), "BP4D", 1)
    path = save_checkpoint(tmp_path / "last.pt", model=model, epoch=3, step_in_epoch=2, global_step=17,
                           optimizer=opt, scheduler=sched, train_config={"seed": 0}, metadata=meta,
                           sampler_state={"epoch": 3, "start_batch": 2})
    expected_numpy = np.random.rand(3)
    expected_python = random.random()
    expected_torch = torch.rand(3)

    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    state = load_checkpoint(path)
    assert seen.get("weights_only") is True
    assert state["schema_version"] == SCHEMA_VERSION
    assert state["model_config"] == {"aus": [1, 2, 4], "width": 4}
    assert state["metadata"]["aus"] == [1, 2, 4]
    assert state["metadata"]["landmarks"] == "49-pt, 0-based pixel centres, crop coords"
    assert state["metadata"]["fold"] == 1 and state["metadata"]["crop_size"] == 176
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (3, 2, 17)

    torch.manual_seed(99)
    other = ToyModel()
    opt2 = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 2, 0.5)
    np.random.rand(5), random.random()
    restore_training_state(state, other, opt2, sched2)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert sched2.last_epoch == sched.last_epoch and opt2.param_groups[0]["lr"] == pytest.approx(0.05)
    # the RNG streams continue exactly where they were when the checkpoint was written
    np.testing.assert_array_equal(np.random.rand(3), expected_numpy)
    assert random.random() == expected_python
    assert torch.equal(torch.rand(3), expected_torch)


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _state()
    path = save_checkpoint(tmp_path / "last.pt", model=model, epoch=1, optimizer=opt)
    before = path.read_bytes()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(CheckpointWriteError, match="previous checkpoint there is intact") as info:
        save_checkpoint(path, model=model, epoch=2, optimizer=opt)
    assert "no space left" in str(info.value)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    # no temp file left; the digest is still the previous checkpoint's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256"]
    assert read_digest(path) == hashlib.sha256(before).hexdigest()
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


def test_schema_version_mismatch(tmp_path):
    model, _, _ = _state()
    path = save_checkpoint(tmp_path / "c.pt", model=model, epoch=0)
    state = torch.load(path, weights_only=True)
    state["schema_version"] = SCHEMA_VERSION + 1
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="schema version"):
        load_checkpoint(path)
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="kind"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_config_mismatch_names_the_keys(tmp_path):
    model, _, _ = _state()
    path = save_checkpoint(tmp_path / "c.pt", model=model, epoch=0)
    state = load_checkpoint(path)
    other = ToyModel(aus=(1, 2, 6), width=4)
    with pytest.raises(CheckpointError, match=r"aus: model has \[1, 2, 6\], checkpoint has \[1, 2, 4\]"):
        check_compatible(state, other)
    wider = ToyModel(width=5)
    with pytest.raises(CheckpointError) as info:
        restore_training_state(state, wider)
    assert "width" in str(info.value) and "aus" not in str(info.value)

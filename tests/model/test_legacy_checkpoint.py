"""A checkpoint written by mgrr_pyg 0.1 (tests/data/legacy, see its README) still rebuilds
the model it was written from: the flat config, every weight and buffer, the outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mgrr_pyg.model import MGRRConfig, get_config
from mgrr_pyg.train.checkpoint import load_checkpoint, model_from_checkpoint

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"
CHECKPOINT = LEGACY / "tiny-v0.1-last.pt"


@pytest.fixture(scope="module")
def state():
    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


def test_the_flat_config_of_the_file_is_the_tiny_preset(state):
    config = MGRRConfig.from_dict(state["model_config"])
    assert config == get_config("tiny")
    assert config.to_dict() == state["model_config"]
    assert json.loads((LEGACY / "model_config.json").read_text()) == state["model_config"]


def test_model_from_checkpoint_rebuilds_every_weight_and_buffer(state):
    model = model_from_checkpoint(CHECKPOINT)
    assert not model.training
    own = model.state_dict()
    assert list(own) == list(state["model"])  # the same names, in the same order
    for name, value in state["model"].items():
        assert torch.equal(own[name], value), name
    # the training fold's prior came back with the weights (not the identity of a new model)
    assert not torch.equal(model.prior, torch.eye(12))
    assert load_checkpoint(CHECKPOINT)["epoch"] == 1


def test_the_rebuilt_model_gives_the_outputs_of_the_code_that_wrote_it():
    expected = json.loads((LEGACY / "tiny-v0.1-expected.json").read_text())
    model = model_from_checkpoint(CHECKPOINT)
    images = torch.rand(2, 3, 176, 176, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        out = model(images)
    torch.testing.assert_close(out.probs, torch.tensor(expected["probs"]), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.landmarks, torch.tensor(expected["landmarks"]),
                               rtol=0, atol=1e-3)

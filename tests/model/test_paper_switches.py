"""The paper switches (docs/architecture.md, "Deviations from the paper"): each a config
field whose default is the code before it, settable by key, stored in checkpoints only
when it differs from what older files imply; the literal presets take the paper's value
at every switch; each switch reaches its module and does what it says, by value; the
literal presets build, run and train."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_helpers import TINY_SIZES, random_landmarks

from mgrr_pyg import facs
from mgrr_pyg.layers import GatedFusion
from mgrr_pyg.model import (AlignmentBranch, AlignmentConfig, AUFeatures, AUGlobalPooling,
                            MGRRConfig, MGRRLoss, create_model, get_config)
from mgrr_pyg.model.presets import LITERAL_SWITCHES

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"

# Each switch: flat key -> (dotted path, the default = the behaviour before the switch,
# the literal reading). Typed from the table of docs/architecture.md, not read from the
# package.
SWITCHES = {
    "per_au_weights": ("reasoning.per_au_weights", False, True),
    "fusion_rescale": ("reasoning.fusion_rescale", True, False),
    "global_stream": ("reasoning.global_stream", "gated", "stem"),
    "pooling": ("reasoning.pooling", "attention", "mean"),
    "pooling_batchnorm": ("reasoning.pooling_batchnorm", True, False),
    "region_feature_output": ("regions.feature_output", "batchnorm", "relu"),
    "align_hidden_relu": ("alignment.hidden_relu", True, False),
    "align_centred_output": ("alignment.centred_output", True, False),
}
#: The switches added with the table (older files have no key for them).
ADDED = ("fusion_rescale", "global_stream", "pooling_batchnorm", "region_feature_output",
         "align_hidden_relu", "align_centred_output")


def value_at(config: MGRRConfig, dotted: str):
    section, name = dotted.split(".")
    return getattr(getattr(config, section), name)


@pytest.mark.parametrize("preset", ["mgrr_bp4d", "mgrr_disfa", "tiny"])
def test_every_switch_defaults_to_the_code_before_it(preset):
    config = get_config(preset)
    assert {key: value_at(config, path) for key, (path, _, _) in SWITCHES.items()} == \
        {key: default for key, (_, default, _) in SWITCHES.items()}


def test_files_without_the_new_keys_read_as_before_and_defaults_write_none_of_them():
    legacy = json.loads((LEGACY / "model_config.json").read_text())  # written by 0.1
    assert not set(ADDED) & set(legacy)
    config = MGRRConfig.from_dict(legacy)
    assert config == get_config("tiny")
    assert config.to_dict() == legacy  # the default run's files are unchanged
    # a switch away from its old value is written, and read back
    changed = get_config("tiny", **{key: literal for key, (_, _, literal) in SWITCHES.items()})
    written = changed.to_dict()
    assert {key: written[key] for key in SWITCHES} == \
        {key: literal for key, (_, _, literal) in SWITCHES.items()}
    assert MGRRConfig.from_dict(written) == changed
    assert MGRRConfig.from_dict(json.loads(json.dumps(written))) == changed
    # an old file with only some keys: the missing ones are the old behaviour
    partial = {key: value for key, value in written.items() if key != "global_stream"}
    assert MGRRConfig.from_dict(partial).reasoning.global_stream == "gated"


@pytest.mark.parametrize("dataset, aus", [("bp4d", facs.BP4D_AUS), ("disfa", facs.DISFA_AUS)])
def test_literal_presets_take_the_literal_value_at_every_switch_and_the_paper_sizes(dataset, aus):
    literal, default = get_config(f"mgrr_{dataset}_literal"), get_config(f"mgrr_{dataset}")
    assert literal.aus == aus and literal.name == f"mgrr_{dataset}_literal"
    assert {key: value_at(literal, path) for key, (path, _, _) in SWITCHES.items()} == \
        {key: value for key, (_, _, value) in SWITCHES.items()}
    # nothing else differs from the default preset (sizes, K, D, L, topologies)
    back = literal.replace(name=default.name,
                           **{key: value for key, (_, value, _) in SWITCHES.items()})
    assert back == default
    assert dict(LITERAL_SWITCHES) == {key: value for key, (_, _, value) in SWITCHES.items()}


def test_every_switch_is_a_set_key_by_flat_name_and_dotted_path():
    keys = set(MGRRConfig.override_keys())
    base = get_config("tiny")
    for key, (path, default, literal) in SWITCHES.items():
        assert key in keys and path in keys, key
        assert value_at(base.replace(**{key: literal}), path) == literal
        assert base.replace(**{path: literal}) == base.replace(**{key: literal})
        assert base.replace(**{key: default}) == base


@pytest.mark.parametrize("overrides, match", [
    ({"fusion_rescale": "no"}, r"fusion_rescale: expected true or false, found 'no'"),
    ({"pooling_batchnorm": 1}, r"pooling_batchnorm: expected true or false, found 1"),
    ({"global_stream": "refined"}, r"global_stream: expected one of \('gated', 'stem'\)"),
    ({"region_feature_output": "gelu"},
     r"region_feature_output \(regions.feature_output\): expected one of \('batchnorm', 'relu'\)"),
    ({"alignment.hidden_relu": None},
     r"align_hidden_relu \(alignment.hidden_relu\): expected true or false, found None"),
    ({"align_centred_output": "false"},
     r"align_centred_output \(alignment.centred_output\): expected true or false"),
])
def test_bad_switch_values_name_the_setting(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **overrides)


@pytest.mark.parametrize("literal", [False, True])
def test_the_switches_reach_their_modules(literal):
    model = create_model("tiny", **({key: value for key, (_, _, value) in SWITCHES.items()}
                                    if literal else {}))
    fusions = [m for m in model.modules() if isinstance(m, GatedFusion)]
    assert len(fusions) == 3 * 2  # three cells per layer, K = 2
    assert all(cell.rescale is not literal for cell in fusions)
    for layer in model.layers:
        assert layer.global_stream == ("stem" if literal else "gated")
        assert (layer.pooling.norm is None) is literal
        assert (layer.pooling.query is None) is literal  # mean pooling
        assert layer.region.per_au_weights is literal
    assert (model.region_features.out_norm is None) is literal
    assert model.alignment.hidden_relu is not literal
    assert model.alignment.centred_output is not literal
    # the literal model has no BatchNorm over the batch axis left, so a train-mode batch
    # of one is fine there
    has_batchnorm1d = any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert has_batchnorm1d is not literal


def test_au_features_with_a_relu_output_are_the_relu_of_the_per_au_linear_maps():
    """v_i = ReLU(W_i [f_i1 || f_i2] + b_i), f_ik the mean of the local map under box k,
    written out per AU (the literal reading); no BatchNorm is built."""
    torch.manual_seed(0)
    n, hidden, d_v = 3, 4, 6
    head = AUFeatures(2, hidden, d_v, n, output="relu").eval()
    assert head.out_norm is None
    global_map = torch.randn(2, 2, 44, 44)
    boxes = torch.rand(2, n, 2, 44, 44)
    with torch.no_grad():
        out = head(global_map, boxes)
        local = torch.relu(head.norm(head.conv(global_map)))  # [2, hidden, 44, 44]
    for b in range(2):
        for i in range(n):
            means = [(local[b] * boxes[b, i, k]).sum((1, 2)) / boxes[b, i, k].sum()
                     for k in (0, 1)]
            linear = torch.cat(means) @ head.weight[i] + head.bias[i]
            torch.testing.assert_close(out[b, i], torch.relu(linear))
    assert (out == 0).any() and (out > 0).any()  # the ReLU acts
    with pytest.raises(ValueError, match=r"output expected one of \('batchnorm', 'relu'\)"):
        AUFeatures(2, hidden, d_v, n, output="gelu")


@pytest.mark.parametrize("hidden_relu", [True, False])
@pytest.mark.parametrize("centred_output", [True, False])
def test_alignment_head_switches_by_value(hidden_relu, centred_output):
    """JAA-Net's head is Linear -> Linear with crop-pixel outputs; the package adds a ReLU
    on h and outputs around the crop centre in half-crop units (87.5 + 88 x)."""
    torch.manual_seed(0)
    config = AlignmentConfig(channels=(6, 6, 8), hidden=10, hidden_relu=hidden_relu,
                             centred_output=centred_output)
    branch = AlignmentBranch(4, config, map_size=44).eval()
    global_map = torch.randn(3, 4, 44, 44)
    with torch.no_grad():
        landmarks, hidden = branch(global_map)
        linear = branch.features(global_map).flatten(1) @ branch.hidden.weight.T \
            + branch.hidden.bias
        expected_hidden = torch.relu(linear) if hidden_relu else linear
        outputs = (expected_hidden @ branch.regress.weight.T + branch.regress.bias).view(3, 49, 2)
    torch.testing.assert_close(hidden, expected_hidden)
    torch.testing.assert_close(landmarks, 87.5 + 88 * outputs if centred_output else outputs)
    assert bool((hidden < 0).any()) is not hidden_relu


def test_pooled_context_without_batchnorm_is_the_linear_map_of_the_pooled_pixels():
    torch.manual_seed(0)
    channels, d_v, n = 4, 3, 2
    gated_map = torch.randn(2, channels, 3, 5)
    for mode in ("attention", "mean"):
        pooling = AUGlobalPooling(channels, d_v, n, mode, batchnorm=False).train()
        assert pooling.norm is None
        with torch.no_grad():
            context, _ = pooling(gated_map)
        pixels = gated_map.flatten(2)  # [B, c, P]
        for b in range(2):
            for i in range(n):
                if mode == "mean":
                    pooled = pixels[b].mean(1)
                else:
                    scores = pooling.query[i] @ pixels[b] / channels ** 0.5
                    pooled = pixels[b] @ torch.softmax(scores, 0)
                expected = pooling.project.weight @ pooled + pooling.project.bias
                torch.testing.assert_close(context[b, i], expected.detach())


def paper_sgd(model):
    """The paper's optimiser: SGD, Nesterov momentum 0.9, lr 0.01, weight decay 5e-4."""
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                           weight_decay=5e-4)


@pytest.mark.parametrize("preset, n", [("mgrr_bp4d_literal", 12), ("mgrr_disfa_literal", 8)])
def test_literal_presets_build_and_run_at_the_paper_sizes(preset, n):
    torch.manual_seed(0)
    model = create_model(preset).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 176, 176) * 2 - 1)
    assert out.probs.shape == (1, n) and bool(torch.isfinite(out.probs).all())
    assert out.region_features.shape == out.au_features.shape == (1, n, 512)
    assert out.pool_attention == []  # mean pooling
    assert len(out.gated_maps) == 2
    # Eq. 5 with a map per AU: 2 n d_v^2 weights, the bias and A
    region = sum(p.numel() for p in model.layers[0].region.parameters())
    assert region == 2 * n * 512 * 512 + 512 + n * n


def test_a_literal_model_trains_with_the_paper_optimiser(images, generator):
    """Five SGD steps on one batch at tiny widths: finite losses that go down, and every
    parameter moves."""
    torch.manual_seed(0)
    model = create_model("mgrr_bp4d_literal", **TINY_SIZES).train()
    loss_fn = MGRRLoss(torch.ones(12))
    labels = torch.randint(0, 2, (2, 12), generator=generator).float()
    landmarks = random_landmarks(2, generator)
    interocular = torch.full((2,), 60.0)
    optimiser = paper_sgd(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = []
    for _ in range(5):
        optimiser.zero_grad()
        loss = loss_fn(model(images), labels, None, landmarks, interocular)["total"]
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses
    still = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert still == []

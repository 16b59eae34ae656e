"""MGRRConfig and its parts, the preset registry: plain-type serialisation in the flat
format of every checkpoint, flat / dotted / part keys, clear errors, the ablations."""
from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mgrr_pyg import facs
from mgrr_pyg.model import (ABLATION_FIELDS, ABLATIONS, MGRRConfig, ReasoningConfig,
                            StemConfig, ablation_overrides, create_model, get_config,
                            list_presets, register_preset)
from mgrr_pyg.model import presets as presets_module
from mgrr_pyg.model.config import ADDED_KEYS, FLAT_KEYS

PLAIN = (str, int, float, bool, type(None))
LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"

# Table 6 of the paper, typed from it: D_G, O_G, C_G, P_G per setting (DISFA).
TABLE6 = {
    "table6_1": (False, False, False, False), "table6_2": (True, False, False, False),
    "table6_3": (True, True, False, False), "table6_4": (True, False, True, True),
    "table6_5": (True, True, True, False), "table6_6": (True, True, False, True),
    "table6_full": (True, True, True, True)}


def switches(config):
    r = config.reasoning
    return r.use_region_graph, r.use_global, r.use_channel, r.use_pixel


def assert_plain(value, path="config"):
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, (str, int)), f"{path}: key {key!r}"
            assert_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")
    else:
        assert isinstance(value, PLAIN), f"{path} is {type(value).__name__}"


def test_presets_cover_the_paper_and_its_ablations():
    expected = {"mgrr_bp4d", "mgrr_disfa", "tiny", "table7_k1", "table7_k2", "table7_k3",
                "table6_2_random"} | set(TABLE6)
    assert expected <= set(list_presets())
    assert get_config("mgrr_bp4d").aus == facs.BP4D_AUS
    paper = get_config("mgrr_disfa")
    assert paper.aus == facs.DISFA_AUS
    reasoning = paper.reasoning
    assert (paper.d_v, reasoning.embed_dim, reasoning.heads, reasoning.num_layers) == \
        (512, 1024, 8, 2)
    assert paper.stem.channels[-1] == 64 and reasoning.prior_init == "cooccurrence"
    assert {name: switches(get_config(name)) for name in list_presets("table6_?")} | \
        {"table6_full": switches(get_config("table6_full"))} == TABLE6
    assert all(get_config(n).aus == facs.DISFA_AUS for n in TABLE6)
    assert [get_config(f"table7_k{k}").reasoning.num_layers for k in (1, 2, 3)] == [1, 2, 3]
    random_prior = get_config("table6_2_random")
    assert switches(random_prior) == TABLE6["table6_2"]
    assert random_prior.reasoning.prior_init == "random"
    assert all(get_config(name).name == name for name in list_presets())


@pytest.mark.parametrize("name", list_presets())
def test_to_dict_is_plain_and_round_trips_through_weights_only_load(name):
    config = get_config(name, au_rules={99: ((10, 13), -0.25)},
                        aus=get_config(name).aus + (99,), pixel_topology=("grid", 2))
    data = config.to_dict()
    assert_plain(data)
    buffer = io.BytesIO()
    torch.save({"config": data}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["config"]
    assert MGRRConfig.from_dict(loaded) == config
    # JSON turns int keys into strings; from_dict accepts that too.
    assert MGRRConfig.from_dict(json.loads(json.dumps(data))) == config


def test_to_dict_writes_the_flat_keys_of_the_checkpoints_before_the_grouping():
    """tests/data/legacy/model_config.json was written by the code before the config was
    grouped into parts: the same flat keys, in the same order, with the same values, so
    old and new checkpoints compare key by key."""
    legacy = json.loads((LEGACY / "model_config.json").read_text())
    config = MGRRConfig.from_dict(legacy)
    assert config == get_config("tiny")
    assert list(config.to_dict()) == list(legacy)
    assert config.to_dict() == legacy


def test_nested_dicts_are_read_too():
    nested = {"name": "tiny", "d_v": 32, "stem": {"channels": [8, 16]},
              "alignment": {"channels": [8, 8, 8], "hidden": 32},
              "regions": {"hidden_channels": 16}, "reasoning": {"embed_dim": 32, "heads": 2}}
    assert MGRRConfig.from_dict(nested) == get_config("tiny")


def test_flat_keys_dotted_paths_and_parts_name_the_same_settings():
    base = get_config("tiny")
    three = [base.replace(num_layers=3), base.replace(**{"reasoning.num_layers": 3}),
             base.replace(reasoning={"num_layers": 3}),
             base.replace(reasoning=base.reasoning.replace(num_layers=3))]
    assert all(c == three[0] for c in three) and three[0].reasoning.num_layers == 3
    assert three[0].reasoning.embed_dim == 32  # a part dict changes only what it names
    assert base.replace(stem_channels=(4, 8)).stem == StemConfig(channels=(4, 8))
    assert base.replace(region_channels=12) == base.replace(**{"regions.hidden_channels": 12})
    assert base.replace(align_hidden=24).alignment.hidden == 24
    # applied in order: a later key wins
    assert base.replace(num_layers=1, **{"reasoning.num_layers": 3}).reasoning.num_layers == 3
    assert base.replace(reasoning=ReasoningConfig(), heads=4).reasoning.heads == 4
    # replace changes nothing in place
    assert base == get_config("tiny")


def test_every_accepted_key_is_listed_for_the_set_check_and_works():
    """override_keys() is what the --set check offers and what replace takes: each key,
    set to its current value, leaves the config unchanged."""
    config = get_config("tiny")
    flat = config.to_dict()
    keys = MGRRConfig.override_keys()
    assert len(keys) == len(set(keys))
    assert set(flat) <= set(keys) and {"stem", "alignment", "regions", "reasoning"} <= set(keys)
    dotted = {f"{section}.{f.name}" for section in ("stem", "alignment", "regions", "reasoning")
              for f in dataclasses.fields(getattr(config, section))}
    # every field has a flat key: all but name, aus, d_v (to_dict leaves out the keys added
    # later while they hold the value older files imply, see ADDED_KEYS)
    assert dotted <= set(keys) and len(dotted) == len(FLAT_KEYS) - 3
    assert set(flat) == set(FLAT_KEYS) - set(ADDED_KEYS)
    for key in keys:
        section, _, name = key.partition(".")
        if key in flat:
            value = flat[key]
        elif name:
            value = getattr(getattr(config, section), name)
        else:
            value = getattr(config, key)
        assert config.replace(**{key: value}) == config, key


def test_create_model_applies_overrides_and_each_part_reaches_its_module():
    model = create_model("tiny", num_layers=1, aus=facs.DISFA_AUS, pooling="mean",
                         **{"alignment.hidden": 24, "stem.grids": (4, 2, 1),
                            "regions.hidden_channels": 12, "reasoning.use_pixel": False})
    assert len(model.layers) == 1 and model.config.aus == facs.DISFA_AUS
    layer = model.layers[0]
    assert layer.pooling.query is None and layer.pixel is None and layer.channel is not None
    assert model.alignment.hidden_channels == 24
    assert model.integrated_head.classifier.in_features == 8 * 32 + 24
    assert [model.stem.layer1.cells1.grid, model.stem.layer1.cells2.grid,
            model.stem.layer1.cells3.grid] == [4, 2, 1]
    assert model.region_features.hidden_channels == 12
    # a config object works as the preset too
    assert len(create_model(get_config("tiny"), num_layers=3).layers) == 3


def test_unknown_presets_keys_and_fields_are_clear_errors():
    with pytest.raises(ValueError, match="unknown preset 'mgrr_bp5d'; presets are .*mgrr_bp4d"):
        create_model("mgrr_bp5d")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['depth'\]"):
        create_model("tiny", depth=3)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['reasoning.depth'\]"):
        create_model("tiny", **{"reasoning.depth": 3})
    with pytest.raises(ValueError, match=r"stem: unknown field\(s\) \['width'\]"):
        get_config("tiny", stem={"width": 3})
    with pytest.raises(ValueError, match="reasoning: expected a ReasoningConfig or a dict"):
        get_config("tiny", reasoning=3)
    data = get_config("tiny").to_dict()
    data["dropout"] = 0.1
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['dropout'\]; known keys"):
        MGRRConfig.from_dict(data)


@pytest.mark.parametrize("overrides, match", [
    ({"aus": (1, 2, 99)}, r"aus: no centre rule for AU \[99\]"),
    ({"aus": (1, 1)}, "aus: expected distinct"),
    ({"aus": (1, 99), "au_rules": {99: ((10, 60), 0.0)}}, "expected indices in 0..48"),
    ({"prior_init": "learned"}, "prior_init: expected one of"),
    ({"pooling": "max"}, "pooling: expected one of"),
    ({"heads": 3}, "heads: must divide embed_dim"),
    ({"num_layers": 0}, "num_layers: expected a positive int"),
    ({"pixel_topology": ("ring", 2)}, "pixel_topology: expected one of"),
    ({"channel_topology": ("grid", 1)}, "channel_topology: expected one of"),
    ({"region_topology": "knn"}, "region_topology: expected"),
    ({"stem_channels": (30, 64)},
     r"stem_channels \(stem.channels\): expected two widths divisible by 4"),
    ({"stem.grids": (8, 4, 0)}, r"stem_grids \(stem.grids\): expected three grid sizes"),
    ({"align_hidden": 0}, r"align_hidden \(alignment.hidden\): expected a positive int"),
    ({"regions.box_decay": -1.0}, r"box_decay: expected a positive number"),
    ({"d_v": 0}, "d_v: expected a positive int"),
])
def test_inconsistent_settings_name_the_setting(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **overrides)


def test_region_topology_prior_threshold():
    assert get_config("tiny").reasoning.region_threshold() is None
    assert get_config("tiny", region_topology="prior").reasoning.region_threshold() == 0.0
    assert get_config("tiny", region_topology=("prior", 0.3)).reasoning.region_threshold() == 0.3


def test_register_preset_adds_a_name_create_model_builds(monkeypatch):
    monkeypatch.setattr(presets_module, "_REGISTRY", dict(presets_module._REGISTRY))
    stored = register_preset("tiny_k3", get_config("tiny", num_layers=3))
    assert stored.name == "tiny_k3" and "tiny_k3" in list_presets()
    assert list_presets("tiny*") == ["tiny", "tiny_k3"]
    assert len(create_model("tiny_k3").layers) == 3
    with pytest.raises(ValueError, match="a preset 'tiny_k3' exists already"):
        register_preset("tiny_k3", get_config("tiny"))
    register_preset("tiny_k3", get_config("tiny", num_layers=1), replace=True)
    assert get_config("tiny_k3").reasoning.num_layers == 1
    with pytest.raises(ValueError, match="expected an MGRRConfig"):
        register_preset("bad", {"num_layers": 1})


def test_ablations_are_defined_once_and_every_switch_is_an_ablation_key():
    from mgrr_pyg.train import config as train_config

    assert train_config.ABLATIONS is ABLATIONS
    assert train_config.ABLATION_FIELDS is ABLATION_FIELDS
    settings = {"setting1": "table6_1", "setting2": "table6_2", "setting3": "table6_3",
                "setting4": "table6_4", "setting5": "table6_5", "setting6": "table6_6",
                "full": "table6_full", "k1": "table7_k1", "k2": "table7_k2", "k3": "table7_k3",
                "setting2_random": "table6_2_random", "full_random": "table6_full_random"}
    assert ABLATIONS == settings
    assert set(ABLATION_FIELDS) == {"use_region_graph", "use_global", "use_channel",
                                    "use_pixel", "num_layers", "prior_init"}
    for setting, preset in ABLATIONS.items():
        overrides = ablation_overrides(setting)
        assert set(overrides) == set(ABLATION_FIELDS)
        # the switches applied to another preset give the ablation preset's switches
        assert get_config("tiny", **overrides).reasoning == get_config(preset).reasoning.replace(
            embed_dim=32, heads=2), setting
    assert ablation_overrides("setting2_random") == {
        "use_region_graph": True, "use_global": False, "use_channel": False,
        "use_pixel": False, "num_layers": 2, "prior_init": "random"}
    assert ablation_overrides("full_random") == {
        "use_region_graph": True, "use_global": True, "use_channel": True,
        "use_pixel": True, "num_layers": 2, "prior_init": "random"}
    with pytest.raises(ValueError, match="ablation: expected one of"):
        ablation_overrides("setting7")


def test_random_prior_ablation_draws_the_adjacency_at_random():
    torch.manual_seed(0)
    identity, drawn = (create_model("tiny", **ablation_overrides(setting)).layers[0].adjacency
                       for setting in ("setting2", "setting2_random"))
    identity, drawn = identity.detach(), drawn.detach()
    assert torch.equal(identity, torch.eye(12))
    assert not torch.equal(drawn, torch.eye(12))
    assert 0 <= float(drawn.min()) and float(drawn.max()) < 1  # uniform [0, 1)


def test_old_names_still_work_and_warn():
    import mgrr_pyg.model as model_package
    from mgrr_pyg.model import config as config_module

    with pytest.warns(DeprecationWarning, match="PRESETS is deprecated"):
        old = model_package.PRESETS
    assert sorted(old) == list_presets() and old["tiny"] == get_config("tiny")
    with pytest.raises(TypeError):
        old["tiny"] = get_config("mgrr_bp4d")  # a read-only view of the registry
    with pytest.warns(DeprecationWarning, match="moved to mgrr_pyg.model.presets"):
        assert config_module.get_config is get_config
    with pytest.warns(DeprecationWarning, match="moved to mgrr_pyg.model.presets"):
        assert config_module.create_model is create_model
    with pytest.warns(DeprecationWarning, match="read config.reasoning.num_layers"):
        assert get_config("tiny").num_layers == 2
    with pytest.warns(DeprecationWarning, match="read config.stem.channels"):
        assert get_config("tiny").stem_channels == (8, 16)
    with pytest.raises(AttributeError):
        get_config("tiny").no_such_setting


def test_the_package_create_model_is_the_factory_and_loads_lazily():
    import mgrr_pyg

    assert mgrr_pyg.create_model is presets_module.create_model
    # `import mgrr_pyg` alone (the data and plotting tools) does not load the model stack
    code = "import sys, mgrr_pyg; print('torch_geometric' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

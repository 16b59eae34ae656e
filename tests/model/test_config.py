"""MGRRConfig: presets, plain-type serialisation, clear errors."""
from __future__ import annotations

import io
import json

import pytest
import torch

from mgrr_pyg import facs
from mgrr_pyg.model import PRESETS, MGRRConfig, create_model, get_config

PLAIN = (str, int, float, bool, type(None))


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
                "table6_full"} | {f"table6_{i}" for i in range(1, 7)}
    assert expected <= set(PRESETS)
    assert PRESETS["mgrr_bp4d"].aus == facs.BP4D_AUS
    paper = PRESETS["mgrr_disfa"]
    assert paper.aus == facs.DISFA_AUS
    assert (paper.d_v, paper.embed_dim, paper.heads, paper.num_layers) == (512, 1024, 8, 2)
    assert paper.stem_channels[-1] == 64 and paper.prior_init == "cooccurrence"
    switches = {name: (c.use_region_graph, c.use_global, c.use_channel, c.use_pixel)
                for name, c in PRESETS.items() if name.startswith("table6")}
    assert switches == {  # Table 6: D_G, O_G, C_G, P_G
        "table6_1": (False, False, False, False), "table6_2": (True, False, False, False),
        "table6_3": (True, True, False, False), "table6_4": (True, False, True, True),
        "table6_5": (True, True, True, False), "table6_6": (True, True, False, True),
        "table6_full": (True, True, True, True)}
    assert all(PRESETS[n].aus == facs.DISFA_AUS for n in switches)
    assert [PRESETS[f"table7_k{k}"].num_layers for k in (1, 2, 3)] == [1, 2, 3]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_dict_is_plain_and_round_trips_through_weights_only_load(name):
    config = get_config(name, au_rules={99: ((10, 13), -0.25)},
                        aus=PRESETS[name].aus + (99,), pixel_topology=("grid", 2))
    data = config.to_dict()
    assert_plain(data)
    buffer = io.BytesIO()
    torch.save({"config": data}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["config"]
    assert MGRRConfig.from_dict(loaded) == config
    # JSON turns int keys into strings; from_dict accepts that too.
    assert MGRRConfig.from_dict(json.loads(json.dumps(data))) == config


def test_create_model_applies_overrides():
    model = create_model("tiny", num_layers=1, aus=facs.DISFA_AUS, pooling="mean")
    assert len(model.layers) == 1 and model.config.aus == facs.DISFA_AUS
    assert model.layers[0].pooling.query is None


def test_unknown_presets_keys_and_fields_are_clear_errors():
    with pytest.raises(ValueError, match="unknown preset 'mgrr_bp5d'; presets are .*mgrr_bp4d"):
        create_model("mgrr_bp5d")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['depth'\]"):
        create_model("tiny", depth=3)
    data = PRESETS["tiny"].to_dict()
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
    ({"stem_channels": (30, 64)}, "stem_channels: expected two widths divisible by 4"),
])
def test_inconsistent_settings_name_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **overrides)


def test_region_topology_prior_threshold():
    assert get_config("tiny").region_threshold() is None
    assert get_config("tiny", region_topology="prior").region_threshold() == 0.0
    assert get_config("tiny", region_topology=("prior", 0.3)).region_threshold() == 0.3

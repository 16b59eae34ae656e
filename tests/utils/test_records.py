"""One conversion of records to plain values and one comparison of two configurations
(mgrr_pyg.utils.records); the old names forward to them with a DeprecationWarning."""
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mgrr_pyg.utils.records import MISSING, config_differences, plain


def test_plain_gives_built_in_types_for_every_kind_of_value():
    record = {
        "count": np.int64(3), "rate": np.float32(0.25), "flag": np.bool_(True),
        "matrix": np.arange(4, dtype=np.int16).reshape(2, 2), "folder": Path("runs/a"),
        "pair": (1, "b"), 7: None, "nested": {"deep": [np.float64(1.5), (np.int8(2),)]},
        "nan": float("nan"), "text": "x", "truth": False, "device": torch.device("cpu"),
    }
    out = plain(record)
    assert list(out) == ["count", "rate", "flag", "matrix", "folder", "pair", "7", "nested",
                         "nan", "text", "truth", "device"]  # order kept, keys as text
    assert out["count"] == 3 and type(out["count"]) is int
    assert out["rate"] == 0.25 and type(out["rate"]) is float
    assert out["flag"] is True  # a bool, not the text "True"
    assert out["matrix"] == [[0, 1], [2, 3]] and type(out["matrix"][0][0]) is int
    assert out["folder"] == "runs/a"
    assert out["pair"] == [1, "b"]
    assert out["7"] is None
    assert out["nested"] == {"deep": [1.5, [2]]} and type(out["nested"]["deep"][1][0]) is int
    assert math.isnan(out["nan"]) and out["text"] == "x" and out["truth"] is False
    assert out["device"] == "cpu"  # anything else: its str(), so the record is writable
    assert json.loads(json.dumps(out))["nested"] == {"deep": [1.5, [2]]}


def test_plain_records_load_back_with_weights_only():
    record = plain({"epochs": np.int64(2), "output": Path("runs/x"), "aus": (1, 2, 4)})
    buffer = io.BytesIO()
    torch.save(record, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == {"epochs": 2, "output": "runs/x", "aus": [1, 2, 4]}


def test_config_differences_names_each_differing_key_once_in_order():
    found = {"lr": 0.05, "seed": 0, "epochs": 2, "old_only": 1, "none": None}
    wanted = {"lr": 0.02, "seed": 0, "epochs": 3, "new_only": "x"}
    assert config_differences(found, wanted) == [
        "epochs: 2 != 3",
        "lr: 0.05 != 0.02",
        f"new_only: {MISSING!r} != 'x'",
        f"none: None != {MISSING!r}",  # a missing key is not the value None
        f"old_only: 1 != {MISSING!r}",
    ]
    assert config_differences(found, wanted, ignore={"epochs", "new_only", "none", "old_only"}) == \
        ["lr: 0.05 != 0.02"]
    assert config_differences(wanted, dict(wanted)) == []


def test_the_old_config_differences_warn_and_keep_their_defaults():
    from mgrr_pyg.data.synthetic import config as synthetic_config
    from mgrr_pyg.train import config as train_config

    # The training one skipped RESUME_FREE_KEYS (``epochs`` among them) by default.
    with pytest.warns(DeprecationWarning, match="mgrr_pyg.utils.records.config_differences"):
        assert train_config.config_differences({"epochs": 1, "lr": 0.1}, {"epochs": 2, "lr": 0.2}) == \
            ["lr: 0.1 != 0.2"]
    with pytest.warns(DeprecationWarning, match="mgrr_pyg.utils.records.config_differences"):
        assert synthetic_config.config_differences({"seed": 0}, {"seed": 1}) == ["seed: 0 != 1"]

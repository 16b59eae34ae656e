"""The synthetic-data cache is keyed by the generator's configuration, so a changed
generator never reuses data made by an older one."""
import mgrr_pyg.data.synthetic.config as synth_config
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.data_sources import synthetic_name


def test_cache_name_changes_with_the_generator_and_the_preset(monkeypatch):
    config = TrainConfig(dataset="BP4D", synthetic_preset="default", synthetic_seed=0)
    name = synthetic_name(config)
    assert name.startswith("BP4D-default-seed0-")
    assert synthetic_name(config) == name  # stable
    assert synthetic_name(TrainConfig(dataset="BP4D", synthetic_preset="tiny")) != name
    assert synthetic_name(TrainConfig(dataset="DISFA", synthetic_preset="default")) != name
    monkeypatch.setattr(synth_config, "GENERATOR_VERSION", synth_config.GENERATOR_VERSION + 1)
    assert synthetic_name(config) != name

r"""Named MGRR-Net configurations (presets) and the model factory.

A preset is data: a name and an :class:`~mgrr_pyg.model.MGRRConfig`. The table below is
registered with :func:`register_preset` when this module is imported;
:func:`list_presets` and :func:`get_config` read the registry, and :func:`create_model`
turns a name (or a config) into a model. A new preset is one more entry in the table, or
one call from user code::

    register_preset("mgrr_bp4d_k3", get_config("mgrr_bp4d", num_layers=3))
    model = create_model("mgrr_bp4d_k3")

The ablations of the paper are defined here once: :data:`TABLE6` (which levels each
setting of Table 6 uses) and :data:`TABLE7` (the depths of Table 7) give both the presets
(``table6_1`` ... ``table6_full``, ``table7_k1`` ...) and the short setting names of
``--ablation`` (:data:`ABLATIONS`); :data:`ABLATION_FIELDS` are the switches an ablation
sets.

``mgrr_bp4d`` / ``mgrr_disfa`` are the package defaults: the paper's sizes and schedule
with the additions listed in ``docs/architecture.md`` ("Deviations from the paper").
``mgrr_bp4d_literal`` / ``mgrr_disfa_literal`` take the literal reading at every one of
those switches (:data:`LITERAL_SWITCHES`); any preset takes them one by one with
``--set`` / overrides, e.g. ``create_model("mgrr_bp4d", fusion_rescale=False)``.
"""
from __future__ import annotations

import fnmatch
import warnings
from types import MappingProxyType
from typing import Mapping, Optional, Union

from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS

from .config import (AlignmentConfig, MGRRConfig, ReasoningConfig, RegionConfig,
                     StemConfig)
from .mgrr_net import MGRRNet

_REGISTRY: dict[str, MGRRConfig] = {}


def register_preset(name: str, config: MGRRConfig, *, replace: bool = False) -> MGRRConfig:
    """Record ``config`` under ``name`` (its ``name`` field is set to it) and return the
    stored config. An existing name is a ValueError unless ``replace=True``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_preset: expected a non-empty preset name, found {name!r}")
    if not isinstance(config, MGRRConfig):
        raise ValueError(f"register_preset({name!r}): expected an MGRRConfig, found "
                         f"{type(config).__name__}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"register_preset: a preset {name!r} exists already; pass "
                         "replace=True to redefine it")
    _REGISTRY[name] = config.replace(name=name)
    return _REGISTRY[name]


def list_presets(pattern: Optional[str] = None) -> list[str]:
    """The registered preset names, sorted; ``pattern`` filters them shell-style
    (``list_presets("table6_*")``)."""
    names = sorted(_REGISTRY)
    return names if pattern is None else fnmatch.filter(names, pattern)


def get_config(name: str, **overrides) -> MGRRConfig:
    """The preset ``name`` with ``overrides`` applied (see :meth:`MGRRConfig.replace`;
    an unknown preset or key is a ValueError)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown preset {name!r}; presets are {list_presets()}")
    return _REGISTRY[name].replace(**overrides)


def create_model(name: Union[str, MGRRConfig] = "mgrr_bp4d", **overrides) -> MGRRNet:
    """Build an :class:`~mgrr_pyg.model.MGRRNet` from a preset name (or a config) and
    overrides, e.g. ``create_model("mgrr_disfa", num_layers=3)``."""
    if isinstance(name, MGRRConfig):
        return MGRRNet(name.replace(**overrides))
    return MGRRNet(get_config(name, **overrides))


# -- the ablations of the paper (DISFA's AUs, as the paper runs them) ---------------------
#: Table 6: which levels each setting uses, (D_G, O_G, C_G, P_G), by ``--ablation`` name.
TABLE6: dict[str, tuple[bool, bool, bool, bool]] = {
    "setting1": (False, False, False, False),
    "setting2": (True, False, False, False),
    "setting3": (True, True, False, False),
    "setting4": (True, False, True, True),
    "setting5": (True, True, True, False),
    "setting6": (True, True, False, True),
    "full": (True, True, True, True),
}
#: Table 7: the number of reasoning layers K, by ``--ablation`` name.
TABLE7: dict[str, int] = {"k1": 1, "k2": 2, "k3": 3}

#: The settings an ablation copies from its preset onto the run's preset (flat keys), so
#: ``--preset tiny --ablation setting3`` is the tiny model with Table 6 setting 3.
ABLATION_FIELDS = ("use_region_graph", "use_global", "use_channel", "use_pixel", "num_layers",
                   "prior_init")


def _table6_preset(setting: str) -> str:
    return "table6_full" if setting == "full" else f"table6_{setting[len('setting'):]}"


#: ``--ablation`` name -> preset: Table 6, Table 7, setting 2 (D_G only) with a
#: randomly initialised adjacency (the paper's text: 65.0 -> 64.7 DISFA F1), and the same
#: random start for the full model (not in the paper: does the prior matter once every
#: level reasons?).
ABLATIONS: dict[str, str] = {
    **{setting: _table6_preset(setting) for setting in TABLE6},
    **{depth: f"table7_{depth}" for depth in TABLE7},
    "setting2_random": "table6_2_random",
    "full_random": "table6_full_random",
}


def ablation_overrides(setting: str) -> dict:
    """The :data:`ABLATION_FIELDS` of an ablation's preset, as ``create_model``
    overrides (flat keys)."""
    if setting not in ABLATIONS:
        raise ValueError(f"ablation: expected one of {sorted(ABLATIONS)}, found {setting!r}")
    values = get_config(ABLATIONS[setting]).to_dict()
    return {key: values[key] for key in ABLATION_FIELDS}


#: The paper read literally (flat key -> value) at every switch where the package
#: departs from it or decides what it leaves open; where the paper is silent, JAA-Net's
#: choice (MGRR-Net takes its stem, alignment branch and AU regions from JAA-Net) or, with
#: no JAA-Net counterpart, the reading that adds nothing. Sources and the package's
#: reasons: docs/architecture.md, "Deviations from the paper".
LITERAL_SWITCHES: Mapping[str, object] = MappingProxyType({
    "per_au_weights": True,  # Eq. 5 writes a map W_i per AU
    "fusion_rescale": False,  # Eq. 7: unit-norm L2 normalisation, no sqrt(C)
    "global_stream": "stem",  # section 1: O_G "serves as the input of each" layer
    "pooling": "mean",  # paper silent on G^k -> g_i: no per-AU queries
    "pooling_batchnorm": False,  # ... and nothing after the linear map
    "region_feature_output": "relu",  # JAA-Net's AU features end in BN-ReLU
    "align_hidden_relu": False,  # JAA-Net's AlignNet: Linear(4000, 512), Linear(512, 98)
    "align_centred_output": False,  # ... its outputs are crop pixels
})


def _switches(region: bool, global_: bool, channel: bool, pixel: bool, **changes) -> dict:
    return dict(use_region_graph=region, use_global=global_, use_channel=channel,
                use_pixel=pixel, **changes)


# -- the preset table ---------------------------------------------------------------------
_PRESETS: dict[str, MGRRConfig] = {
    # the paper's sizes (section 4.2), with the package's additions (the defaults)
    "mgrr_bp4d": MGRRConfig(aus=BP4D_AUS),
    "mgrr_disfa": MGRRConfig(aus=DISFA_AUS),
    # the paper read literally at every switch of docs/architecture.md
    "mgrr_bp4d_literal": MGRRConfig(aus=BP4D_AUS).replace(**LITERAL_SWITCHES),
    "mgrr_disfa_literal": MGRRConfig(aus=DISFA_AUS).replace(**LITERAL_SWITCHES),
    # Table 6: D_G, O_G, C_G, P_G
    **{_table6_preset(setting): MGRRConfig(aus=DISFA_AUS,
                                           reasoning=ReasoningConfig(**_switches(*levels)))
       for setting, levels in TABLE6.items()},
    "table6_2_random": MGRRConfig(aus=DISFA_AUS, reasoning=ReasoningConfig(
        **_switches(*TABLE6["setting2"], prior_init="random"))),
    "table6_full_random": MGRRConfig(aus=DISFA_AUS, reasoning=ReasoningConfig(
        **_switches(*TABLE6["full"], prior_init="random"))),
    # Table 7: the number of relational reasoning layers K
    **{f"table7_{depth}": MGRRConfig(aus=DISFA_AUS, reasoning=ReasoningConfig(num_layers=k))
       for depth, k in TABLE7.items()},
    # for tests: small widths, the same input size and code paths
    "tiny": MGRRConfig(
        aus=BP4D_AUS, d_v=32,
        stem=StemConfig(channels=(8, 16)),
        alignment=AlignmentConfig(channels=(8, 8, 8), hidden=32),
        regions=RegionConfig(hidden_channels=16),
        reasoning=ReasoningConfig(embed_dim=32, heads=2)),
}
for _name, _config in _PRESETS.items():
    register_preset(_name, _config)
del _name, _config


def __getattr__(name: str):
    # PRESETS, the dict of presets before the registry: a read-only view, with a warning.
    if name == "PRESETS":
        warnings.warn("mgrr_pyg.model.PRESETS is deprecated; use list_presets() and "
                      "get_config(name)", DeprecationWarning, stacklevel=2)
        return _presets_view
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_presets_view: Mapping[str, MGRRConfig] = MappingProxyType(_REGISTRY)

__all__ = ["ABLATIONS", "ABLATION_FIELDS", "LITERAL_SWITCHES", "TABLE6", "TABLE7",
           "ablation_overrides", "create_model", "get_config", "list_presets", "register_preset"]

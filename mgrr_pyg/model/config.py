r"""Typed configuration of MGRR-Net, the named presets (paper defaults, the ablations of
Tables 6 and 7, ``tiny`` for tests) and :func:`create_model`.

A config is a small dataclass of plain values; :meth:`MGRRConfig.to_dict` gives only
python builtins (it is stored in checkpoints read with ``torch.load(weights_only=True)``)
and :meth:`MGRRConfig.from_dict` rebuilds it, so a model can be rebuilt from its file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

from mgrr_pyg.facs import AU_CENTRE_RULES, BP4D_AUS, DISFA_AUS, AUCentreRule

PRIOR_INITS = ("cooccurrence", "random", "identity")
POOLINGS = ("attention", "mean")

Topology = Union[str, tuple]


def _as_tuple(value: Any) -> Any:
    """Lists (from a dict / JSON) back to tuples, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def _as_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_list(v) for v in value]
    return value


@dataclass
class MGRRConfig:
    r"""Everything that defines an MGRR-Net (paper section 4.2 defaults).

    Args:
        name (str): Preset name it came from (informative only).
        aus (tuple of int): AU numbers = region-graph nodes, in label-column order.
        au_rules (dict, optional): Centre rules for AUs without a built-in one, as
            ``{AU: ((landmark_a, landmark_b), offset_in_rulers)}``
            (see :class:`mgrr_pyg.facs.AUCentreRule`).
        stem_channels (tuple): Widths of the two region layers; the second is the
            channel count :math:`c` of :math:`O_G` (64).
        stem_grids (tuple): Cells per side of the three patch levels (8, 4, 2).
        align_channels (tuple): Widths of the alignment branch's three blocks.
        align_hidden (int): The alignment feature width (512).
        region_channels (int): Width of the shared conv before per-AU pooling.
        box_half_size (int): Half side of an AU box, in cells (3: a 7x7 box).
        box_decay (float): Box value :math:`1 - d / \text{box\_decay}`.
        d_v (int): AU feature width :math:`d_v` (512).
        num_layers (int): :math:`K` relational reasoning layers (2).
        use_region_graph (bool): :math:`D_G`, the region graph (Eq. 5).
        use_global (bool): :math:`O_G` as an input of the global fusion.
        use_channel (bool): :math:`C_G`, channel graph attention.
        use_pixel (bool): :math:`P_G`, pixel graph attention.
        prior_init (str): Region adjacency initialisation: ``"cooccurrence"``
            (identity until :meth:`MGRRNet.set_prior` gives the training fold's
            prior), ``"random"`` or ``"identity"``.
        per_au_weights (bool): Per-AU :math:`\mathbf{W}_s, \mathbf{W}_n` in Eq. 5.
        region_layer (str): Region layer by registered name or PyG conv name
            (:func:`mgrr_pyg.layers.resolve_layer`).
        attention_layer (str): Attention layer, likewise.
        region_topology: ``"complete"`` or ``"prior"`` / ``("prior", threshold)``:
            edges where the stored prior exceeds the threshold (default 0).
        channel_topology: ``"complete"`` or ``("knn", k)``.
        pixel_topology: ``"complete"``, ``("grid", hops)`` or ``("knn", k)``.
        embed_dim (int): :math:`D` (1024).
        heads (int): :math:`L` (8).
        pooling (str): How :math:`G^k` becomes a vector per AU: ``"attention"``
            (one learned query per AU) or ``"mean"`` (global average pooling).
    """

    name: str = "custom"
    aus: tuple = BP4D_AUS
    au_rules: Optional[dict] = None
    stem_channels: tuple = (32, 64)
    stem_grids: tuple = (8, 4, 2)
    align_channels: tuple = (96, 128, 160)
    align_hidden: int = 512
    region_channels: int = 128
    box_half_size: int = 3
    box_decay: float = 11.0
    d_v: int = 512
    num_layers: int = 2
    use_region_graph: bool = True
    use_global: bool = True
    use_channel: bool = True
    use_pixel: bool = True
    prior_init: str = "cooccurrence"
    per_au_weights: bool = False
    region_layer: str = "region_graph_conv"
    attention_layer: str = "multihead_graph_attention"
    region_topology: Topology = "complete"
    channel_topology: Topology = "complete"
    pixel_topology: Topology = "complete"
    embed_dim: int = 1024
    heads: int = 8
    pooling: str = "attention"

    def __post_init__(self) -> None:
        for name in ("aus", "stem_channels", "stem_grids", "align_channels"):
            setattr(self, name, _as_tuple(getattr(self, name)))
        for name in ("region_topology", "channel_topology", "pixel_topology"):
            value = getattr(self, name)
            setattr(self, name, value if isinstance(value, str) else _as_tuple(value))
        if self.au_rules is not None:
            self.au_rules = {int(au): (tuple(int(i) for i in rule[0]), float(rule[1]))
                             for au, rule in dict(self.au_rules).items()}
        self.validate()

    # -- validation -------------------------------------------------------------------
    def validate(self) -> None:
        """Raise a ValueError naming the field for any inconsistent setting."""
        if not self.aus or len(set(self.aus)) != len(self.aus) or \
                not all(isinstance(a, int) and not isinstance(a, bool) for a in self.aus):
            raise ValueError(f"aus: expected distinct AU numbers (ints), found {self.aus!r}")
        for au, rule in (self.au_rules or {}).items():
            AUCentreRule(*rule)  # raises for bad landmark indices
        missing = [au for au in self.aus if au not in AU_CENTRE_RULES
                   and au not in (self.au_rules or {})]
        if missing:
            raise ValueError(
                f"aus: no centre rule for AU {missing}; built-in rules cover "
                f"{sorted(AU_CENTRE_RULES)}. Give one in au_rules, e.g. "
                f"au_rules={{{missing[0]}: ((landmark_a, landmark_b), offset_in_rulers)}}")
        if len(self.stem_channels) != 2 or any(c % 4 or c < 4 for c in self.stem_channels):
            raise ValueError("stem_channels: expected two widths divisible by 4, found "
                             f"{self.stem_channels!r}")
        if len(self.stem_grids) != 3 or any(176 % g or 88 % g for g in self.stem_grids):
            raise ValueError("stem_grids: expected three grid sizes dividing 88 and 176, found "
                             f"{self.stem_grids!r}")
        if len(self.align_channels) != 3:
            raise ValueError(f"align_channels: expected three widths, found {self.align_channels!r}")
        for name in ("align_hidden", "region_channels", "d_v", "embed_dim", "heads",
                     "num_layers", "box_half_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, found {value!r}")
        if self.embed_dim % self.heads:
            raise ValueError(f"heads: must divide embed_dim={self.embed_dim}, found "
                             f"heads={self.heads}")
        if self.prior_init not in PRIOR_INITS:
            raise ValueError(f"prior_init: expected one of {PRIOR_INITS}, found "
                             f"{self.prior_init!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {POOLINGS}, found {self.pooling!r}")
        self.region_threshold()  # validates region_topology
        _check_topology("channel_topology", self.channel_topology, ("complete", "knn"))
        _check_topology("pixel_topology", self.pixel_topology, ("complete", "grid", "knn"))

    def region_threshold(self) -> Optional[float]:
        """None for the complete region graph, else the prior threshold."""
        spec = self.region_topology
        if spec == "complete":
            return None
        if spec == "prior":
            return 0.0
        if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "prior" and \
                isinstance(spec[1], (int, float)) and not isinstance(spec[1], bool):
            return float(spec[1])
        raise ValueError("region_topology: expected 'complete', 'prior' or "
                         f"('prior', threshold), found {spec!r}")

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain python types only (lists, dicts, str, int, float, bool, None)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "au_rules" and value is not None:
                value = {int(au): [list(rule[0]), float(rule[1])] for au, rule in value.items()}
            out[f.name] = _as_list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "MGRRConfig":
        """Rebuild from :meth:`to_dict`; unknown keys are a ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"MGRRConfig.from_dict: expected a dict, found {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"MGRRConfig: unknown key(s) {unknown}; known keys are "
                             f"{sorted(known)}")
        return cls(**data)

    def replace(self, **overrides) -> "MGRRConfig":
        """A copy with some fields changed (unknown names are a ValueError)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"MGRRConfig: unknown field(s) {unknown}; known fields are "
                             f"{sorted(known)}")
        return dataclasses.replace(self, **overrides)

    @property
    def num_aus(self) -> int:
        return len(self.aus)


def _check_topology(name: str, spec, allowed: tuple) -> None:
    if spec == "complete" and "complete" in allowed:
        return
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] in allowed and \
            spec[0] != "complete" and isinstance(spec[1], int) and \
            not isinstance(spec[1], bool) and spec[1] >= (1 if spec[0] == "knn" else 0):
        return
    forms = ["'complete'"] + [f"('{a}', {'k' if a == 'knn' else 'hops'})"
                             for a in allowed if a != "complete"]
    raise ValueError(f"{name}: expected one of {', '.join(forms)}, found {spec!r}")


def _disfa(name: str, **changes) -> MGRRConfig:
    return MGRRConfig(name=name, aus=DISFA_AUS, **changes)


def _table6(name: str, region: bool, global_: bool, channel: bool, pixel: bool) -> MGRRConfig:
    return _disfa(name, use_region_graph=region, use_global=global_, use_channel=channel,
                  use_pixel=pixel)


#: Named presets. Table 6 / 7 ablations use DISFA's AUs (as the paper does).
PRESETS: dict[str, MGRRConfig] = {
    "mgrr_bp4d": MGRRConfig(name="mgrr_bp4d", aus=BP4D_AUS),
    "mgrr_disfa": _disfa("mgrr_disfa"),
    # Table 6: D_G, O_G, C_G, P_G
    "table6_1": _table6("table6_1", False, False, False, False),
    "table6_2": _table6("table6_2", True, False, False, False),
    "table6_3": _table6("table6_3", True, True, False, False),
    "table6_4": _table6("table6_4", True, False, True, True),
    "table6_5": _table6("table6_5", True, True, True, False),
    "table6_6": _table6("table6_6", True, True, False, True),
    "table6_full": _table6("table6_full", True, True, True, True),
    # Table 7: number of relational reasoning layers K
    "table7_k1": _disfa("table7_k1", num_layers=1),
    "table7_k2": _disfa("table7_k2", num_layers=2),
    "table7_k3": _disfa("table7_k3", num_layers=3),
    # Small widths for tests; same input size and code paths.
    "tiny": MGRRConfig(name="tiny", aus=BP4D_AUS, stem_channels=(8, 16),
                       align_channels=(8, 8, 8), align_hidden=32, region_channels=16,
                       d_v=32, embed_dim=32, heads=2),
}


def get_config(name: str, **overrides) -> MGRRConfig:
    """The preset ``name`` with ``overrides`` applied (unknown preset / field: ValueError)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets are {sorted(PRESETS)}")
    config = PRESETS[name].replace(**overrides)
    return config


def create_model(name: Union[str, MGRRConfig] = "mgrr_bp4d", **overrides):
    """Build an :class:`~mgrr_pyg.model.MGRRNet` from a preset name (or a config) and
    field overrides, e.g. ``create_model("mgrr_disfa", num_layers=3)``."""
    from .mgrr_net import MGRRNet

    if isinstance(name, MGRRConfig):
        config = name.replace(**overrides)
    else:
        config = get_config(name, **overrides)
    return MGRRNet(config)

r"""Typed configuration of MGRR-Net: :class:`MGRRConfig` and the parts it is made of,
one per part of the network, each handed whole to the module that uses it.

- :class:`StemConfig`: the two multi-scale patch layers giving :math:`O_G`
  (:class:`~mgrr_pyg.model.stem.Stem`);
- :class:`AlignmentConfig`: the landmark branch and its feature :math:`\mathbf{h}`
  (:class:`~mgrr_pyg.model.alignment.AlignmentBranch`);
- :class:`RegionConfig`: the AU regions (boxes around each AU's two centres) and the AU
  features :math:`V^0` pooled in them (:class:`~mgrr_pyg.model.MGRRNet` places the
  boxes, :class:`~mgrr_pyg.model.regions.AUFeatures` pools);
- :class:`ReasoningConfig`: the :math:`K` relational reasoning layers
  (:class:`~mgrr_pyg.model.reasoning.RelationalReasoningLayer`).

The AU set (``aus``) and the AU feature width ``d_v`` are shared by every part and stay
on :class:`MGRRConfig`; the two classifiers have no settings of their own (they are
sized by ``aus``, ``d_v`` and ``alignment.hidden``).

Keys. A setting is named by its dotted path (``reasoning.num_layers``) or by its flat
key (``num_layers``), the names of the configuration before it was grouped; both work in
:meth:`MGRRConfig.replace`, :func:`~mgrr_pyg.model.create_model` and ``--set``.
:meth:`MGRRConfig.to_dict` writes the flat keys, in a fixed order: that is the format
stored in checkpoints (read with ``torch.load(weights_only=True)``) and
``model_config.json``, unchanged since the first release, so old and new files compare
key by key; :meth:`MGRRConfig.from_dict` reads it (and nested dicts) back.

Paper switches. Where this implementation departs from the paper (or decides what the
paper leaves open), a field chooses; its default is the behaviour of every earlier
release and the literal reading is the preset ``mgrr_bp4d_literal`` / ``mgrr_disfa_literal``
(:data:`~mgrr_pyg.model.presets.LITERAL_SWITCHES`; the table with sources is in
``docs/architecture.md``). The keys of the switches added after the first release are
:data:`ADDED_KEYS`: :meth:`MGRRConfig.to_dict` writes one only when it differs from the
value every file written before it implied, and :meth:`MGRRConfig.from_dict` reads a
missing one as that value, so older checkpoints load, resume and compare unchanged.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Union

from mgrr_pyg.facs import BP4D_AUS, resolve_au_rules
from mgrr_pyg.graphs.registry import check_topology, split_topology, topology_forms

PRIOR_INITS = ("cooccurrence", "random", "identity")
POOLINGS = ("attention", "mean")
#: How the AU features V^0 end: a BatchNorm per AU and channel, or a ReLU.
FEATURE_OUTPUTS = ("batchnorm", "relu")
#: What each reasoning layer takes as O_G^k: the previous layer's gated map G^{k-1}
#: ("gated", O_G^{k+1} = G^k) or the stem's O_G in every layer ("stem").
GLOBAL_STREAMS = ("gated", "stem")

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


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_switches(part, flags: tuple = (), choices: Optional[dict] = None) -> None:
    """Booleans that are booleans, and strings among their choices (a YAML ``--set``
    value such as ``yes`` or ``1`` is refused rather than read as something else)."""
    for name in flags:
        if not isinstance(getattr(part, name), bool):
            raise part._error(name, f"expected true or false, found {getattr(part, name)!r}")
    for name, allowed in (choices or {}).items():
        if getattr(part, name) not in allowed:
            raise part._error(name, f"expected one of {allowed}, found {getattr(part, name)!r}")


class _Part:
    """What the parts share: a section name, errors that name the setting
    (:func:`setting_name`) and :meth:`replace`."""

    SECTION: ClassVar[str] = ""

    def _error(self, name: str, message: str) -> ValueError:
        return ValueError(f"{setting_name(self.SECTION, name)}: {message}")

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


@dataclass
class StemConfig(_Part):
    r"""The stem: two multi-scale patch layers (JAA-Net's hierarchical region
    learning) giving :math:`O_G`.

    Args:
        channels (tuple of int): Widths :math:`(c_1, c_2)` of the two layers, each
            divisible by 4; :math:`c_2` is the channel count :math:`c` of :math:`O_G`.
            (default: :obj:`(32, 64)`)
        grids (tuple of int): Cells per side of the three patch levels; each divides
            88 and 176. (default: :obj:`(8, 4, 2)`)
    """

    SECTION: ClassVar[str] = "stem"

    channels: tuple = (32, 64)
    grids: tuple = (8, 4, 2)

    def __post_init__(self) -> None:
        self.channels, self.grids = _as_tuple(self.channels), _as_tuple(self.grids)
        if len(self.channels) != 2 or not all(_positive_int(c) and c % 4 == 0
                                              for c in self.channels):
            raise self._error("channels", "expected two widths divisible by 4, found "
                                          f"{self.channels!r}")
        if len(self.grids) != 3 or not all(_positive_int(g) and 176 % g == 0 and 88 % g == 0
                                           for g in self.grids):
            raise self._error("grids", "expected three grid sizes dividing 88 and 176, found "
                                       f"{self.grids!r}")


@dataclass
class AlignmentConfig(_Part):
    r"""The face-alignment branch: landmarks from :math:`O_G` and the hidden feature
    :math:`\mathbf{h}` the integrated classifier reads.

    Args:
        channels (tuple of int): Widths of its three conv blocks.
            (default: :obj:`(96, 128, 160)`)
        hidden (int): Width of :math:`\mathbf{h}`. (default: :obj:`512`)
        hidden_relu (bool): A ReLU on :math:`\mathbf{h}` between the two linear maps
            (JAA-Net's ``AlignNet`` has none: :obj:`False` is the literal reading).
            (default: :obj:`True`)
        centred_output (bool): Landmarks as offsets from the crop centre in half-crop
            units; :obj:`False`: the second linear map gives crop pixels directly
            (JAA-Net's, the literal reading). (default: :obj:`True`)
    """

    SECTION: ClassVar[str] = "alignment"

    channels: tuple = (96, 128, 160)
    hidden: int = 512
    hidden_relu: bool = True
    centred_output: bool = True

    def __post_init__(self) -> None:
        _check_switches(self, ("hidden_relu", "centred_output"))
        self.channels = _as_tuple(self.channels)
        if len(self.channels) != 3 or not all(_positive_int(c) for c in self.channels):
            raise self._error("channels", f"expected three positive widths, found "
                                          f"{self.channels!r}")
        if not _positive_int(self.hidden):
            raise self._error("hidden", f"expected a positive int, found {self.hidden!r}")


@dataclass
class RegionConfig(_Part):
    r"""AU regions: where each AU's two boxes sit on :math:`O_G` and how the AU
    features :math:`V^0` are pooled from them (the nodes of the region graph
    :math:`D_G`).

    Args:
        hidden_channels (int): Width of the shared conv before per-AU pooling.
            (default: :obj:`128`)
        box_half_size (int): Half side of an AU box, in cells (3: a 7x7 box).
            (default: :obj:`3`)
        box_decay (float): Box value :math:`1 - d / \text{box\_decay}` at Manhattan
            distance :math:`d` from the centre cell. (default: :obj:`11.0`)
        au_rules (dict, optional): Centre rules for AUs without a built-in one, as
            ``{AU: ((landmark_a, landmark_b), offset_in_rulers)}``
            (see :class:`mgrr_pyg.facs.AUCentreRule`). (default: :obj:`None`)
        feature_output (str): The last step of the AU features: ``"batchnorm"`` per AU
            and channel, or ``"relu"`` (the JAA-Net reading, the literal one; see
            :class:`~mgrr_pyg.model.regions.AUFeatures`). (default: ``"batchnorm"``)
    """

    SECTION: ClassVar[str] = "regions"

    hidden_channels: int = 128
    box_half_size: int = 3
    box_decay: float = 11.0
    au_rules: Optional[dict] = None
    feature_output: str = "batchnorm"

    def __post_init__(self) -> None:
        _check_switches(self, choices={"feature_output": FEATURE_OUTPUTS})
        if self.au_rules is not None:
            if not isinstance(self.au_rules, dict):
                raise self._error("au_rules", "expected a dict {AU: ((landmark_a, landmark_b), "
                                              f"offset_in_rulers)}}, found {self.au_rules!r}")
            # (int() also reads JSON's string keys back)
            self.au_rules = {int(au): (tuple(int(i) for i in rule[0]), float(rule[1]))
                             for au, rule in self.au_rules.items()}
            resolve_au_rules((), self.au_rules)  # a bad landmark index raises here
        for name in ("hidden_channels", "box_half_size"):
            if not _positive_int(getattr(self, name)):
                raise self._error(name, f"expected a positive int, found {getattr(self, name)!r}")
        if isinstance(self.box_decay, bool) or not isinstance(self.box_decay, (int, float)) \
                or not self.box_decay > 0:
            raise self._error("box_decay", f"expected a positive number, found {self.box_decay!r}")


@dataclass
class ReasoningConfig(_Part):
    r"""The :math:`K` multi-level relational reasoning layers (Eq. 3-8).

    Args:
        num_layers (int): :math:`K`. (default: :obj:`2`)
        use_region_graph (bool): :math:`D_G`, the region graph (Eq. 5).
        use_global (bool): :math:`O_G` as an input of the global fusion.
        use_channel (bool): :math:`C_G`, channel graph attention.
        use_pixel (bool): :math:`P_G`, pixel graph attention. (the four Table 6
            switches; default: all :obj:`True`)
        region_layer (str): The region-graph layer, by registered name or PyG conv name
            (:func:`mgrr_pyg.layers.resolve_layer`). (default: ``"region_graph_conv"``)
        region_topology: ``"complete"`` or ``"prior"`` / ``("prior", threshold)``:
            edges where the stored prior exceeds the threshold (default 0).
        prior_init (str): Region adjacency initialisation: ``"cooccurrence"``
            (identity until :meth:`MGRRNet.set_prior` gives the training fold's
            prior), ``"random"`` or ``"identity"``.
        per_au_weights (bool): Per-AU :math:`\mathbf{W}_s, \mathbf{W}_n` in Eq. 5.
        attention_layer (str): The layer of both graph-attention branches, likewise.
            (default: ``"multihead_graph_attention"``)
        channel_attention_layer (str, optional): The channel branch's layer alone
            (:math:`C_G`); :obj:`None` takes ``attention_layer``. (default: :obj:`None`)
        pixel_attention_layer (str, optional): The pixel branch's layer alone
            (:math:`P_G`), e.g. ``"GATv2Conv"`` to swap only the pixel attention;
            :obj:`None` takes ``attention_layer``. (default: :obj:`None`)
        channel_topology: ``"complete"`` or ``("knn", k)``.
        pixel_topology: ``"complete"``, ``("grid", hops)`` or ``("knn", k)``. (The three
            topologies take any name of :func:`mgrr_pyg.graphs.list_topologies` for
            their graph; add one with :func:`mgrr_pyg.graphs.register_topology`.)
        embed_dim (int): :math:`D`. (default: :obj:`1024`)
        heads (int): :math:`L`, dividing :math:`D`. (default: :obj:`8`)
        pooling (str): How :math:`G^k` becomes a vector per AU: ``"attention"``
            (one learned query per AU) or ``"mean"`` (global average pooling).
        fusion_rescale (bool): Multiply each L2-normalised term of the three gated
            fusion cells by :math:`\sqrt{C}` (unit-RMS components); :obj:`False` is
            Eq. 7 as written. (default: :obj:`True`)
        pooling_batchnorm (bool): A BatchNorm per AU and channel on the pooled
            :math:`\mathbf{g}_i^k`; :obj:`False`: the linear map only, the literal
            reading. (default: :obj:`True`)
        global_stream (str): :math:`O_G^k` of layer :math:`k`: ``"gated"``, the previous
            layer's :math:`G^{k-1}` (:math:`O_G^{k+1} = G^k`), or ``"stem"``, the
            stem's :math:`O_G` in every layer (the paper's section 1: the global
            features "serve as the inputs of each" layer). (default: ``"gated"``)
    """

    SECTION: ClassVar[str] = "reasoning"

    num_layers: int = 2
    # Table 6 switches: D_G, O_G, C_G, P_G
    use_region_graph: bool = True
    use_global: bool = True
    use_channel: bool = True
    use_pixel: bool = True
    # region graph D_G (Eq. 5)
    prior_init: str = "cooccurrence"
    per_au_weights: bool = False
    region_layer: str = "region_graph_conv"
    # graph attention C_G, P_G (Eq. 3-4)
    attention_layer: str = "multihead_graph_attention"
    channel_attention_layer: Optional[str] = None
    pixel_attention_layer: Optional[str] = None
    # topologies
    region_topology: Topology = "complete"
    channel_topology: Topology = "complete"
    pixel_topology: Topology = "complete"
    embed_dim: int = 1024
    heads: int = 8
    # G^k -> one vector per AU
    pooling: str = "attention"
    # paper switches (docs/architecture.md, "Deviations from the paper")
    fusion_rescale: bool = True
    pooling_batchnorm: bool = True
    global_stream: str = "gated"

    def __post_init__(self) -> None:
        _check_switches(self, ("fusion_rescale", "pooling_batchnorm"),
                        {"global_stream": GLOBAL_STREAMS})
        for name in ("region_topology", "channel_topology", "pixel_topology"):
            value = getattr(self, name)
            setattr(self, name, value if isinstance(value, str) else _as_tuple(value))
        for name in ("num_layers", "embed_dim", "heads"):
            if not _positive_int(getattr(self, name)):
                raise self._error(name, f"expected a positive int, found {getattr(self, name)!r}")
        if self.embed_dim % self.heads:
            raise self._error("heads", f"must divide embed_dim={self.embed_dim}, found "
                                       f"heads={self.heads}")
        if self.prior_init not in PRIOR_INITS:
            raise self._error("prior_init", f"expected one of {PRIOR_INITS}, found "
                                            f"{self.prior_init!r}")
        if self.pooling not in POOLINGS:
            raise self._error("pooling", f"expected one of {POOLINGS}, found {self.pooling!r}")
        for name, graph in (("region_topology", "region"), ("channel_topology", "channel"),
                            ("pixel_topology", "pixel")):
            self._check_topology(name, graph)

    def branch_attention_layer(self, branch: str) -> str:
        """The attention layer of ``branch`` (``"channel"`` or ``"pixel"``): its own
        override, else ``attention_layer``."""
        own = getattr(self, f"{branch}_attention_layer")
        return self.attention_layer if own is None else own

    def region_threshold(self) -> Optional[float]:
        """The prior threshold of a ``"prior"`` / ``("prior", threshold)`` region
        topology (0 for ``"prior"``), else None (e.g. the complete region graph)."""
        name, args = split_topology(self.region_topology)
        if name != "prior":
            return None
        return float(args[0]) if args else 0.0

    def _check_topology(self, name: str, graph: str) -> None:
        # The topology registry (mgrr_pyg.graphs.registry) knows which topologies suit
        # which graph and what arguments each takes.
        spec = getattr(self, name)
        try:
            check_topology(spec, graph)
        except ValueError as err:
            raise self._error(name, f"expected one of {topology_forms(graph)}; found "
                                    f"{spec!r}: {err}") from None


#: The parts of :class:`MGRRConfig` by section name.
PARTS: dict[str, type] = {"stem": StemConfig, "alignment": AlignmentConfig,
                          "regions": RegionConfig, "reasoning": ReasoningConfig}

#: Flat key -> (section, field), in the order of :meth:`MGRRConfig.to_dict` (the order of
#: the ungrouped configuration); section ``None``: a field of MGRRConfig itself.
FLAT_KEYS: dict[str, tuple[Optional[str], str]] = {
    "name": (None, "name"),
    "aus": (None, "aus"),
    "au_rules": ("regions", "au_rules"),
    "stem_channels": ("stem", "channels"),
    "stem_grids": ("stem", "grids"),
    "align_channels": ("alignment", "channels"),
    "align_hidden": ("alignment", "hidden"),
    "region_channels": ("regions", "hidden_channels"),
    "box_half_size": ("regions", "box_half_size"),
    "box_decay": ("regions", "box_decay"),
    "d_v": (None, "d_v"),
    **{f.name: ("reasoning", f.name) for f in dataclasses.fields(ReasoningConfig)},
    "align_hidden_relu": ("alignment", "hidden_relu"),
    "align_centred_output": ("alignment", "centred_output"),
    "region_feature_output": ("regions", "feature_output"),
}
_FLAT_KEY_OF = {path: key for key, path in FLAT_KEYS.items()}

#: Flat keys added after the first release -> the value every file written before the
#: key existed implied (the behaviour of that code). :meth:`MGRRConfig.to_dict` leaves a
#: key out while it holds that value and :meth:`MGRRConfig.from_dict` reads a missing key
#: as it: an older checkpoint loads, resumes and compares key by key as before, and the
#: value stays what it meant even if a default changes later.
ADDED_KEYS: dict[str, Any] = {
    "fusion_rescale": True,
    "pooling_batchnorm": True,
    "global_stream": "gated",
    "align_hidden_relu": True,
    "align_centred_output": True,
    "region_feature_output": "batchnorm",
    "channel_attention_layer": None,
    "pixel_attention_layer": None,
}


def setting_name(section: Optional[str], name: str) -> str:
    """A setting as messages name it: its flat key (what ``--set`` takes), and its
    field in the part where the names differ: ``"stem_channels (stem.channels)"``,
    ``"num_layers"``."""
    flat = _FLAT_KEY_OF.get((section, name))
    if not section or flat is None:
        return f"{section}.{name}" if section else name
    return flat if flat == name else f"{flat} ({section}.{name})"


@dataclass
class MGRRConfig:
    r"""Everything that defines an MGRR-Net (defaults: the paper's section 4.2 sizes, and
    the package's choice at each paper switch; see the module docstring).

    Args:
        name (str): Preset name it came from (informative only).
        aus (tuple of int): AU numbers = region-graph nodes, in label-column order.
        d_v (int): AU feature width :math:`d_v` (512), shared by the AU features, the
            reasoning layers and the classifiers.
        stem (StemConfig): :math:`O_G` from the image.
        alignment (AlignmentConfig): The landmark branch.
        regions (RegionConfig): AU regions and the AU features :math:`V^0`.
        reasoning (ReasoningConfig): The relational reasoning layers.

    Build one from a preset with :func:`~mgrr_pyg.model.get_config`; change settings
    with :meth:`replace` (dotted paths or flat keys).
    """

    name: str = "custom"
    aus: tuple = BP4D_AUS
    d_v: int = 512
    stem: StemConfig = field(default_factory=StemConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    reasoning: ReasoningConfig = field(default_factory=ReasoningConfig)

    def __post_init__(self) -> None:
        self.aus = _as_tuple(self.aus)
        for section, part in PARTS.items():
            value = getattr(self, section)
            if isinstance(value, dict):
                value = _part_from_dict(section, value)
            elif not isinstance(value, part):
                raise ValueError(f"{section}: expected a {part.__name__} or a dict of its "
                                 f"fields, found {type(value).__name__}")
            setattr(self, section, value)
        self.validate()

    # -- validation -------------------------------------------------------------------
    def validate(self) -> None:
        """Raise a ValueError naming the setting for any inconsistent value (each part
        checks its own fields when it is built; this checks what spans parts)."""
        if not self.aus or len(set(self.aus)) != len(self.aus) or \
                not all(isinstance(a, int) and not isinstance(a, bool) for a in self.aus):
            raise ValueError(f"aus: expected distinct AU numbers (ints), found {self.aus!r}")
        resolve_au_rules(self.aus, self.regions.au_rules)  # every AU has a centre rule
        if not _positive_int(self.d_v):
            raise ValueError(f"d_v: expected a positive int, found {self.d_v!r}")

    @property
    def num_aus(self) -> int:
        return len(self.aus)

    # -- keys -------------------------------------------------------------------------
    @staticmethod
    def override_keys() -> list[str]:
        """Every key :meth:`replace` accepts: the flat keys, the section names and the
        dotted paths (``stem.channels``)."""
        dotted = [f"{section}.{f.name}" for section, part in PARTS.items()
                  for f in dataclasses.fields(part)]
        return list(FLAT_KEYS) + list(PARTS) + dotted

    def replace(self, **overrides) -> "MGRRConfig":
        """A copy with some settings changed, applied in order (a later key wins):
        flat keys (``num_layers=3``), dotted paths (``**{"reasoning.num_layers": 3}``)
        or whole parts (``reasoning=ReasoningConfig(...)``, or a dict of the fields to
        change). Unknown keys are a ValueError."""
        return self._with(overrides, "field(s)")

    def _with(self, overrides: dict, what: str) -> "MGRRConfig":
        unknown = [key for key in overrides if _path(key) is None]
        if unknown:
            raise ValueError(f"MGRRConfig: unknown {what} {unknown}; known "
                             f"{'keys' if what == 'key(s)' else 'fields'} are "
                             f"{sorted(FLAT_KEYS)}, the sections {list(PARTS)} and their "
                             "dotted fields (e.g. 'reasoning.num_layers')")
        top: dict[str, Any] = {}
        parts: dict[str, dict] = {}
        for key, value in overrides.items():
            section, name = _path(key)
            if section is None and name in PARTS:  # a whole part
                if isinstance(value, PARTS[name]):
                    parts[name] = {f.name: getattr(value, f.name)
                                   for f in dataclasses.fields(value)}
                elif isinstance(value, dict):
                    parts.setdefault(name, {}).update(_fields_of(name, value))
                else:
                    raise ValueError(f"{name}: expected a {PARTS[name].__name__} or a dict of "
                                     f"its fields, found {type(value).__name__}")
            elif section is None:
                top[name] = value
            else:
                parts.setdefault(section, {})[name] = value
        for section, changes in parts.items():  # each part built (and validated) once
            top[section] = getattr(self, section).replace(**changes)
        return dataclasses.replace(self, **top)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """The flat keys (see the module docstring) with plain python values only
        (lists, dicts, str, int, float, bool, None); a key of :data:`ADDED_KEYS` only
        where it differs from the value files without it imply."""
        out = {}
        for key, (section, name) in FLAT_KEYS.items():
            value = getattr(getattr(self, section) if section else self, name)
            if key in ADDED_KEYS and value == ADDED_KEYS[key]:
                continue
            if key == "au_rules" and value is not None:
                value = {int(au): [list(rule[0]), float(rule[1])] for au, rule in value.items()}
            out[key] = _as_list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "MGRRConfig":
        """Rebuild from :meth:`to_dict` (the flat dict of every checkpoint) or from a
        nested dict ``{"stem": {...}, ...}``; unknown keys are a ValueError. A missing
        key of :data:`ADDED_KEYS` is read as the value files without it imply."""
        if not isinstance(data, dict):
            raise ValueError(f"MGRRConfig.from_dict: expected a dict, found {type(data).__name__}")
        return cls()._with({**ADDED_KEYS, **data}, "key(s)")

    # -- the flat names, read as attributes ---------------------------------------------
    def __getattr__(self, name: str):
        # Only called for names not found normally: the flat keys of the ungrouped
        # configuration (config.num_layers), kept readable with a warning.
        path = FLAT_KEYS.get(name)
        if path is None or path[0] is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        section, field_name = path
        warnings.warn(f"MGRRConfig.{name} is deprecated; read config.{section}.{field_name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(self.__dict__[section], field_name)


def _path(key: str) -> Optional[tuple[Optional[str], str]]:
    """(section, field) of a flat key, a dotted path or a section name; None if unknown."""
    if not isinstance(key, str):
        return None
    if key in FLAT_KEYS:
        return FLAT_KEYS[key]
    if key in PARTS:
        return None, key
    section, _, name = key.partition(".")
    if section in PARTS and name in {f.name for f in dataclasses.fields(PARTS[section])}:
        return section, name
    return None


def _fields_of(section: str, values: dict) -> dict:
    known = [f.name for f in dataclasses.fields(PARTS[section])]
    unknown = [key for key in values if key not in known]
    if unknown:
        raise ValueError(f"{section}: unknown field(s) {unknown}; {PARTS[section].__name__} "
                         f"has {known}")
    return dict(values)


def _part_from_dict(section: str, values: dict):
    return PARTS[section](**_fields_of(section, values))


__all__ = ["ADDED_KEYS", "AlignmentConfig", "FEATURE_OUTPUTS", "FLAT_KEYS", "GLOBAL_STREAMS",
           "MGRRConfig", "PARTS", "POOLINGS", "PRIOR_INITS", "ReasoningConfig", "RegionConfig",
           "StemConfig", "setting_name"]


def __getattr__(name: str):
    # The preset names that lived here before mgrr_pyg.model.presets resolve to the public
    # names of the package ``mgrr_pyg.model``, looked up only when an old name is used:
    # presets imports this module, never the other way round.
    if name in ("PRESETS", "get_config", "create_model"):
        warnings.warn(f"mgrr_pyg.model.config.{name} moved to mgrr_pyg.model.presets",
                      DeprecationWarning, stacklevel=2)
        import mgrr_pyg.model

        return getattr(mgrr_pyg.model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

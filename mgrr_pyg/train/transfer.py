"""Initialise a model for one AU set from a checkpoint trained on another
(DISFA from BP4D, as the paper and JAA-Net do).

Shared weights (stem, alignment branch, attention, fusion, BatchNorm statistics) are
copied as they are. Per-AU weights are remapped AU by AU through a target -> source AU
mapping; target AUs without a source (AU9 for DISFA) keep their fresh initialisation.

Which weights are per-AU is read off the shapes, with no list of parameter names: a
tensor whose shape differs between the two models only along axes whose size is
``n_source * b + r`` in the source and ``n_target * b + r`` in the target is laid out
as ``n`` blocks of ``b`` (one per AU, in AU order) followed by ``r`` shared entries.
This covers per-AU heads and queries (``[n, ...]``, b = 1), adjacency rows and columns
(``[n, n]``), the per-AU region extractors and the integrated classifier's input
(``[.., n * d_v + 512]``: ``b = d_v``, ``r = 512``). Per-AU buffers (the stored prior)
are left as the target model has them: they describe the target training fold.
Anything else whose shape differs stays fresh and is reported.

The learned region adjacencies A (the ``adjacency`` of every region graph layer) are per-AU
too, but what they start from is a choice (``init_adjacency``, :data:`INIT_ADJACENCY`):
``"prior"`` (the default) leaves them as the target model was initialised, i.e. the
target training fold's co-occurrence prior (Eq. 1-2: A is initialised from the training
labels' co-occurrence); ``"checkpoint"`` remaps the checkpoint's learned A like every other
per-AU tensor (what this module did before the choice existed). The paper says only that
DISFA models start from the BP4D model; JAA-Net, which it follows there, has no A.
``docs/protocol.md`` ("DISFA from BP4D") gives the reasons for the default.

The two models may also differ in architecture (an ablation setting, ``--set`` overrides
that change module shapes or the number of layers): every tensor whose key and shape match
(or whose per-AU layout maps) is loaded, every other one starts fresh and is listed in the
report. A checkpoint that shares no weight at all with the model is an error.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import torch

from mgrr_pyg.train.checkpoint import load_checkpoint, unwrap_model

#: DISFA AU -> BP4D AU whose branch initialises it (JAA-Net's mapping, ``docs/protocol.md``):
#: AU1, 2, 4, 6 -> same, AU12 -> AU12, AU25 <- AU23,
#: AU26 <- AU17; AU9 has no BP4D counterpart and starts fresh.
DISFA_FROM_BP4D: dict[int, int] = {1: 1, 2: 2, 4: 4, 6: 6, 12: 12, 25: 23, 26: 17}

#: Where the region adjacencies A start when initialising from a checkpoint
#: (``TrainConfig.init_adjacency``): ``"prior"``, the target model's own initialisation
#: (the target training fold's co-occurrence prior); ``"checkpoint"``, the checkpoint's
#: learned A remapped AU by AU. The first is the default (see the module docstring).
INIT_ADJACENCY = ("prior", "checkpoint")


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did, by state-dict key."""

    mapping: dict  # target AU -> source AU
    fresh_aus: list  # target AUs without a source
    copied: list = field(default_factory=list)  # shared, copied as is
    remapped: list = field(default_factory=list)  # (key, description)
    kept: list = field(default_factory=list)  # (key, reason): left as initialised
    unused: list = field(default_factory=list)  # checkpoint keys the model does not have
    #: Set by :func:`init_from_checkpoint`: the choice of :data:`INIT_ADJACENCY`, the
    #: checkpoint (``path``, ``dataset``, ``fold``, ``aus``, ``model``) and the model
    #: config keys in which the two architectures differ.
    adjacency: Optional[str] = None
    source: dict = field(default_factory=dict)
    architecture_differences: list = field(default_factory=list)

    @property
    def started_fresh(self) -> list:
        """The keys of the model's state that were not loaded from the checkpoint."""
        return [key for key, _ in self.kept]

    def summary(self) -> str:
        pairs = ", ".join(f"AU{s}->AU{t}" for t, s in sorted(self.mapping.items()))
        lines = []
        if self.source:
            lines.append(f"checkpoint: {self.source.get('dataset') or '?'} fold "
                         f"{self.source.get('fold') or '?'}, model {self.source.get('model') or '?'}")
        if self.architecture_differences:
            lines.append("architecture differs from the checkpoint's (loading what matches): "
                         + "; ".join(self.architecture_differences))
        lines += [f"AU mapping (source -> target): {pairs}",
                  f"fresh target AUs: {', '.join(f'AU{a}' for a in self.fresh_aus) or 'none'}"]
        if self.adjacency:
            lines.append(f"region adjacencies A: {_ADJACENCY_WORDS[self.adjacency]} "
                         f"(init_adjacency={self.adjacency!r})")
        lines += [f"copied {len(self.copied)} shared tensors",
                  f"remapped {len(self.remapped)} per-AU tensors:"]
        lines += [f"  {k}: {d}" for k, d in self.remapped]
        if self.kept:
            lines.append(f"started fresh ({len(self.kept)}):")
            lines += [f"  {k}: {why}" for k, why in self.kept]
        if self.unused:
            groups: dict = {}
            for key in self.unused:  # by module, e.g. "layers.1.channel (14)"
                module = ".".join(key.split(".")[:-1][:3]) or key
                groups[module] = groups.get(module, 0) + 1
            lines.append(f"checkpoint tensors without a place in this model ({len(self.unused)}, "
                         "listed in results.json): "
                         + ", ".join(f"{m} ({n})" for m, n in groups.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"mapping": {int(k): int(v) for k, v in self.mapping.items()},
                "fresh_aus": [int(a) for a in self.fresh_aus], "copied": list(self.copied),
                "remapped": [list(r) for r in self.remapped], "kept": [list(k) for k in self.kept],
                "started_fresh": self.started_fresh, "unused": list(self.unused),
                "adjacency": self.adjacency, "source": dict(self.source),
                "architecture_differences": list(self.architecture_differences)}


_ADJACENCY_WORDS = {"prior": "the target model's own initialisation (its training fold's "
                             "co-occurrence prior)",
                    "checkpoint": "the checkpoint's learned A, remapped AU by AU"}


def _block_layout(src: int, tgt: int, n_src: int, n_tgt: int) -> Optional[tuple[int, int]]:
    """``(b, r)`` with ``src = n_src * b + r`` and ``tgt = n_tgt * b + r``, if any."""
    if n_src == n_tgt or (src - tgt) % (n_src - n_tgt):
        return None
    b = (src - tgt) // (n_src - n_tgt)
    r = src - n_src * b
    if b < 1 or r < 0 or tgt != n_tgt * b + r:
        return None
    return b, r


def _dim_pairs(b: int, r: int, n_src: int, n_tgt: int, pos_map: Mapping[int, int]) -> list:
    """``(target slice, source slice)`` pairs along one per-AU axis."""
    pairs = [(slice(i * b, (i + 1) * b), slice(j * b, (j + 1) * b)) for i, j in pos_map.items()]
    if r:
        pairs.append((slice(n_tgt * b, n_tgt * b + r), slice(n_src * b, n_src * b + r)))
    return pairs


def default_mapping(source_aus: Sequence[int], target_aus: Sequence[int]) -> dict[int, int]:
    """Target AU -> source AU: the same AU where both sets have it, plus
    :data:`DISFA_FROM_BP4D` for a BP4D -> DISFA transfer."""
    mapping = {a: a for a in target_aus if a in source_aus}
    for t, s in DISFA_FROM_BP4D.items():
        if t in target_aus and s in source_aus and t not in source_aus:
            mapping[t] = s
    return mapping


@torch.no_grad()
def transfer_weights(model: torch.nn.Module, source_state: Mapping[str, torch.Tensor],
                     source_aus: Sequence[int], target_aus: Sequence[int],
                     mapping: Optional[Mapping[int, int]] = None,
                     keep: Optional[Mapping[str, str]] = None) -> TransferReport:
    """Copy ``source_state`` into ``model``, remapping per-AU axes (see the module doc).

    Args:
        model: The target model (its current values stay where nothing maps).
        source_state: The source model's state dict.
        source_aus, target_aus: AU numbers of the two models' label columns.
        mapping: Target AU -> source AU (default :func:`default_mapping`).
        keep: Keys to leave as initialised even where the checkpoint has them, with the
            reason reported for each (default: none).

    Raises:
        ValueError: a bad ``mapping``, or a ``source_state`` that shares no weight with
            the model (nothing is changed then).
    """
    source_aus, target_aus = tuple(source_aus), tuple(target_aus)
    mapping = dict(default_mapping(source_aus, target_aus) if mapping is None else mapping)
    for t, s in mapping.items():
        if t not in target_aus or s not in source_aus:
            raise ValueError(
                f"mapping: AU{t} -> from AU{s} is not a target AU {target_aus} / source AU {source_aus}"
            )
    n_src, n_tgt = len(source_aus), len(target_aus)
    pos_map = {target_aus.index(t): source_aus.index(s) for t, s in mapping.items()}
    report = TransferReport(mapping, [a for a in target_aus if a not in mapping])
    target = unwrap_model(model)
    buffers = {name for name, _ in target.named_buffers()}
    own = target.state_dict()
    keep = dict(keep or {})
    new_state = {}
    for key, value in own.items():
        if key not in source_state:
            report.kept.append((key, "not in the source checkpoint"))
            continue
        if key in keep:
            report.kept.append((key, keep[key]))
            continue
        src = source_state[key]
        if tuple(src.shape) == tuple(value.shape) and (n_src != n_tgt or source_aus == target_aus
                                                       or not _has_au_axis(value, n_tgt)):
            new_state[key] = src.to(value.dtype)
            report.copied.append(key)
            continue
        if src.dim() != value.dim():
            report.kept.append((key, f"shape {list(src.shape)} -> {list(value.shape)}"))
            continue
        layouts = {}
        for d, (a, b) in enumerate(zip(src.shape, value.shape)):
            if a != b:
                layout = _block_layout(a, b, n_src, n_tgt)
                if layout is None:
                    layouts = None
                    break
                layouts[d] = layout
        if not layouts:
            report.kept.append((key, f"shape {list(src.shape)} -> {list(value.shape)} "
                                     "is not a per-AU layout"))
            continue
        if key in buffers:
            report.kept.append((key, "per-AU buffer (describes the target fold)"))
            continue
        result = value.clone()
        per_dim = {d: _dim_pairs(b, r, n_src, n_tgt, pos_map) for d, (b, r) in layouts.items()}
        dims = sorted(per_dim)
        for combo in itertools.product(*(per_dim[d] for d in dims)):
            t_index = [slice(None)] * value.dim()
            s_index = [slice(None)] * value.dim()
            for d, (t_slice, s_slice) in zip(dims, combo):
                t_index[d], s_index[d] = t_slice, s_slice
            result[tuple(t_index)] = src[tuple(s_index)].to(value.dtype)
        new_state[key] = result
        axes = ", ".join(f"axis {d}: {n_src}x{b}+{r} -> {n_tgt}x{b}+{r}" for d, (b, r) in layouts.items())
        report.remapped.append((key, axes))
    report.unused = [key for key in source_state if key not in own]
    if not any(own[key].is_floating_point() for key in new_state):
        raise ValueError(
            f"the checkpoint shares no weights with this model: none of its "
            f"{len(source_state)} tensors (e.g. {_first_keys(source_state)}) has the key and "
            f"shape of one of the model's (e.g. {_first_keys(own)}); expected a checkpoint of "
            "an MGRR-Net written by mgrr-train"
        )
    target.load_state_dict({**own, **new_state})
    return report


def _first_keys(state: Mapping[str, torch.Tensor], count: int = 3) -> str:
    keys = list(state)
    return ", ".join(keys[:count]) + (" ..." if len(keys) > count else "") if keys else "none"


def adjacency_keys(model: torch.nn.Module) -> list[str]:
    """State-dict keys of the learned region adjacencies A (the ``adjacency`` parameter of
    every region graph layer: a module with ``set_adjacency``)."""
    keys = []
    for name, module in unwrap_model(model).named_modules():
        if hasattr(module, "set_adjacency") and isinstance(getattr(module, "adjacency", None),
                                                           torch.nn.Parameter):
            keys.append(f"{name}.adjacency" if name else "adjacency")
    return keys


def _has_au_axis(value: torch.Tensor, n: int) -> bool:
    return any(s == n for s in value.shape)


def init_from_checkpoint(model: torch.nn.Module, path, mapping: Optional[Mapping[int, int]] = None,
                         target_aus: Optional[Sequence[int]] = None,
                         adjacency: str = "prior") -> TransferReport:
    """Initialise ``model`` from a checkpoint (``--init-from``), usually of another AU set.

    The checkpoint's AU ids come from its metadata (or its model config); the target's
    from ``target_aus`` or ``model.config.aus``. The architectures may differ (see the
    module docstring): what matches is loaded, the rest starts fresh and is reported.

    Args:
        adjacency (str, optional): Where the region adjacencies A start, one of
            :data:`INIT_ADJACENCY`. (default: ``"prior"``, the model's own initialisation)
    """
    if adjacency not in INIT_ADJACENCY:
        raise ValueError(f"adjacency (init_adjacency): expected one of {INIT_ADJACENCY}, "
                         f"found {adjacency!r}")
    state = load_checkpoint(path)
    meta = state.get("metadata") or {}
    config = state.get("model_config") or {}
    source_aus = checkpoint_aus(state, path)
    target_config = getattr(unwrap_model(model), "config", None)
    if target_aus is None:
        target_aus = getattr(target_config, "aus", None)
    if target_aus is None:
        raise ValueError("target_aus: the model has no config.aus; pass target_aus")
    # The stored prior describes the target's training fold, whatever the AU sets.
    keep = {"prior": "the stored prior of this run's training fold"}
    if adjacency == "prior":
        keep.update({key: "init_adjacency='prior': the model's own initialisation (its "
                          "training fold's co-occurrence prior)" for key in adjacency_keys(model)})
    try:
        report = transfer_weights(model, state["model"], source_aus, target_aus, mapping, keep)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    report.adjacency = adjacency
    report.source = {"path": str(path), "dataset": meta.get("dataset"), "fold": meta.get("fold"),
                     "aus": [int(a) for a in source_aus],
                     "model": meta.get("model_preset") or config.get("name")}
    report.architecture_differences = architecture_differences(config, target_config)
    return report


def checkpoint_aus(state: Mapping, path) -> list:
    """The AU ids of a checkpoint's model: its metadata ``aus``, else its model config's."""
    source_aus = (state.get("metadata") or {}).get("aus") or (state.get("model_config") or {}).get("aus")
    if not source_aus:
        raise ValueError(f"{path}: the checkpoint names no AU ids (metadata 'aus' / model_config 'aus')")
    return list(source_aus)


def check_init_from(state: Mapping, model_keys: Sequence[str], path) -> None:
    """The checks of ``--init-from`` that need no data (run before any is prepared): the
    checkpoint names its AU ids and shares at least one key with the model's state."""
    checkpoint_aus(state, path)
    source = state.get("model") or {}
    if not set(source) & set(model_keys):
        raise ValueError(
            f"{path}: the checkpoint shares no weights with this model: none of its "
            f"{len(source)} tensors (e.g. {_first_keys(source)}) has a key of the model's "
            f"(e.g. {', '.join(list(model_keys)[:3])} ...); point --init-from at the last.pt or "
            "best.pt of an mgrr-train run"
        )


# Config keys that may differ between source and target without being reported (the AU
# set and what follows from it).
_TRANSFER_FREE = {"name", "aus", "au_rules"}


def architecture_differences(source: dict, target_config) -> list[str]:
    """The model config keys in which a checkpoint's model and ``target_config`` differ
    (``key: checkpoint value -> model value``), apart from the AU set."""
    if not source or target_config is None or not hasattr(target_config, "to_dict"):
        return []
    target = target_config.to_dict()
    return [f"{k}: {source.get(k, '<missing>')!r} -> {target.get(k, '<missing>')!r}"
            for k in sorted(set(source) | set(target))
            if k not in _TRANSFER_FREE and source.get(k) != target.get(k)]


__all__ = ["DISFA_FROM_BP4D", "INIT_ADJACENCY", "TransferReport", "adjacency_keys",
           "architecture_differences", "check_init_from", "checkpoint_aus", "default_mapping",
           "init_from_checkpoint", "transfer_weights"]

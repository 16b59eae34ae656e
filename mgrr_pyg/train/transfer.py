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
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import torch

from mgrr_pyg.train.checkpoint import load_checkpoint, unwrap_model

#: DISFA AU -> BP4D AU whose branch initialises it (JAA-Net's mapping, ``docs/protocol.md``):
#: AU1, 2, 4, 6 -> same, AU12 -> AU12, AU25 <- AU23,
#: AU26 <- AU17; AU9 has no BP4D counterpart and starts fresh.
DISFA_FROM_BP4D: dict[int, int] = {1: 1, 2: 2, 4: 4, 6: 6, 12: 12, 25: 23, 26: 17}


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did, by state-dict key."""

    mapping: dict  # target AU -> source AU
    fresh_aus: list  # target AUs without a source
    copied: list = field(default_factory=list)  # shared, copied as is
    remapped: list = field(default_factory=list)  # (key, description)
    kept: list = field(default_factory=list)  # (key, reason): left as initialised

    def summary(self) -> str:
        pairs = ", ".join(f"AU{s}->AU{t}" for t, s in sorted(self.mapping.items()))
        lines = [f"AU mapping (source -> target): {pairs}",
                 f"fresh target AUs: {', '.join(f'AU{a}' for a in self.fresh_aus) or 'none'}",
                 f"copied {len(self.copied)} shared tensors",
                 f"remapped {len(self.remapped)} per-AU tensors:"]
        lines += [f"  {k}: {d}" for k, d in self.remapped]
        if self.kept:
            lines.append(f"left as initialised ({len(self.kept)}):")
            lines += [f"  {k}: {why}" for k, why in self.kept]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"mapping": {int(k): int(v) for k, v in self.mapping.items()},
                "fresh_aus": [int(a) for a in self.fresh_aus], "copied": list(self.copied),
                "remapped": [list(r) for r in self.remapped], "kept": [list(k) for k in self.kept]}


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
                     mapping: Optional[Mapping[int, int]] = None) -> TransferReport:
    """Copy ``source_state`` into ``model``, remapping per-AU axes (see the module doc).

    Args:
        model: The target model (its current values stay where nothing maps).
        source_state: The source model's state dict.
        source_aus, target_aus: AU numbers of the two models' label columns.
        mapping: Target AU -> source AU (default :func:`default_mapping`).
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
    new_state = {}
    for key, value in own.items():
        if key not in source_state:
            report.kept.append((key, "not in the source checkpoint"))
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
    target.load_state_dict({**own, **new_state})
    return report


def _has_au_axis(value: torch.Tensor, n: int) -> bool:
    return any(s == n for s in value.shape)


def init_from_checkpoint(model: torch.nn.Module, path, mapping: Optional[Mapping[int, int]] = None,
                         target_aus: Optional[Sequence[int]] = None) -> TransferReport:
    """Initialise ``model`` from a checkpoint of another AU set (``--init-from``).

    The checkpoint's AU ids come from its metadata (or its model config); the target's
    from ``target_aus`` or ``model.config.aus``.
    """
    state = load_checkpoint(path)
    meta = state.get("metadata") or {}
    config = state.get("model_config") or {}
    source_aus = meta.get("aus") or config.get("aus")
    if not source_aus:
        raise ValueError(f"{path}: the checkpoint names no AU ids (metadata 'aus' / model_config 'aus')")
    if target_aus is None:
        target_aus = getattr(getattr(unwrap_model(model), "config", None), "aus", None)
    if target_aus is None:
        raise ValueError("target_aus: the model has no config.aus; pass target_aus")
    _check_same_architecture(config, getattr(unwrap_model(model), "config", None), path)
    return transfer_weights(model, state["model"], source_aus, target_aus, mapping)


# Config keys that may differ between source and target (the AU set and what follows).
_TRANSFER_FREE = {"name", "aus", "au_rules"}


def _check_same_architecture(source: dict, target_config, path) -> None:
    if not source or target_config is None or not hasattr(target_config, "to_dict"):
        return
    target = target_config.to_dict()
    diffs = [f"{k}: checkpoint {source.get(k, '<missing>')!r}, model {target.get(k, '<missing>')!r}"
             for k in sorted(set(source) | set(target))
             if k not in _TRANSFER_FREE and source.get(k) != target.get(k)]
    if diffs:
        raise ValueError(
            f"{path}: --init-from needs the same architecture apart from the AU set; keys that "
            "differ:\n  " + "\n  ".join(diffs)
        )


__all__ = ["DISFA_FROM_BP4D", "TransferReport", "default_mapping", "init_from_checkpoint",
           "transfer_weights"]

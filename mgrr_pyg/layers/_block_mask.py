r"""Sparse graphs as attention masks: the masked path of
:class:`~mgrr_pyg.layers.MultiHeadGraphAttention`.

A batch of equal-sized graphs whose edges never leave their graph (graph :math:`g`
holding nodes :math:`[g n, (g+1) n)`, as PyG batches and
:func:`~mgrr_pyg.graphs.graph_structure` lay them out) is, for attention, a boolean
mask :math:`(B, n, n)`: ``allowed[g, i, j]`` when node :math:`j` sends to node
:math:`i` of graph :math:`g`. Scaled dot-product attention under that mask computes
what message passing along the edges computes, at the speed of the dense kernel,
as long as the mask is not mostly empty (see :func:`worth_masking`).

The mask is read off the edges exactly (no guess): :func:`block_mask` finds the
smallest block size :math:`n` that no edge crosses (at worst the whole batch, one
block) and gives up (returns :obj:`None`, message passing then) when an edge is
repeated (message passing counts a repeated edge twice in the softmax; a mask
cannot) or there are no edges. It is built once per edge tensor and cached
while that tensor lives unchanged (the model's edges come from the cached
``graph_structure``, so a cached topology builds its mask once; a per-forward one
such as kNN, once per forward).
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

#: The automatic rule (:func:`worth_masking`): mask when the blocks' :math:`B n^2`
#: entries are at most this many times the edges, per device type. CPU, measured
#: (bench/README.md, "Sparse topologies as attention masks"): on the 22 x 22 pixel graph
#: at batch 8 the masked path costs the same whatever the edges (~2.6 s per forward on
#: one thread of a loaded machine) and the edge kernels overtake it at ~10 entries per edge (22 entries, a
#: 5x5 grid: the kernels 1.45x faster; 57, a 3x3 grid: 2x), so 8 keeps a margin.
MAX_ENTRIES_PER_EDGE = {"cpu": 8}
#: Elsewhere (CUDA): a dense kernel on a GPU is far further ahead of gathers and
#: scatters, but this is not measured yet: bench/gpu.sh times both paths on the grids
#: (``speed.sparse`` in its JSON) to set it.
MAX_ENTRIES_PER_EDGE_OTHER = 64
#: ... and when there are at least this many edges. A floor, not a measured crossover:
#: a small edge list is cheap on either path, and looking for blocks costs two host
#: syncs (once per structure; every call for a per-forward topology such as kNN).
MIN_EDGES = 1024
#: Live edge tensors whose masks are kept (the model has a handful of structures).
_CACHE_SIZE = 16


@dataclass(frozen=True, eq=False)
class BlockMask:
    r"""A batch of equal-sized graphs as an attention mask.

    Attributes:
        graph_size (int): Nodes per block :math:`n`.
        num_graphs (int): Blocks :math:`B` (:math:`Bn` nodes in all).
        num_edges (int): Edges it was read from (each one entry of the mask).
        allowed (torch.Tensor): :math:`(B, 1, n, n)` bool, ``[g, 0, i, j]`` when
            :math:`j` sends to :math:`i` (broadcast over heads). A node without an
            incoming edge has its whole row allowed, so no softmax row is empty
            (a backend could give NaN there); :attr:`isolated` zeroes its output.
        isolated (torch.Tensor or None): :math:`(B, 1, n, 1)` bool, the nodes with no
            incoming edge (they aggregate nothing, as in message passing); :obj:`None`
            when every node has one.
    """

    graph_size: int
    num_graphs: int
    num_edges: int
    allowed: Tensor
    isolated: Optional[Tensor]

    def entries_per_edge(self) -> float:
        """Mask entries :math:`B n^2` per edge: the dense kernel's work over the edges'."""
        return self.num_graphs * self.graph_size ** 2 / max(1, self.num_edges)


def max_entries_per_edge(device: torch.device) -> int:
    """The rule's bound on mask entries per edge on :obj:`device`."""
    return MAX_ENTRIES_PER_EDGE.get(device.type, MAX_ENTRIES_PER_EDGE_OTHER)


def worth_masking(num_edges: int, mask: Optional[BlockMask]) -> bool:
    """The automatic rule: the masked path when the edges fit equal blocks
    (:obj:`mask` is not :obj:`None`), there are at least :data:`MIN_EDGES` of them and
    the blocks hold at most :func:`max_entries_per_edge` entries per edge (CPU: 8)."""
    return (mask is not None and num_edges >= MIN_EDGES
            and mask.entries_per_edge() <= max_entries_per_edge(mask.allowed.device))


@dataclass(eq=False)
class _Entry:
    edges: weakref.ref
    version: int
    num_nodes: int
    mask: Optional[BlockMask]


_CACHE: "OrderedDict[int, _Entry]" = OrderedDict()


def block_mask(edge_index: Tensor, num_nodes: int, adjacency=None) -> Optional[BlockMask]:
    r"""The :class:`BlockMask` of an ``edge_index`` :math:`(2, E)` (sources, targets)
    over :obj:`num_nodes` nodes, or :obj:`None` when it repeats an edge or has none.

    Cached per :obj:`adjacency` (the object the edges were read from, a sparse
    ``adj_t`` say; default :obj:`edge_index` itself): the same object, unchanged (the
    same ``_version``: an in-place edit bumps it), gives the same mask without a
    rebuild."""
    adjacency = edge_index if adjacency is None else adjacency
    key, version = id(adjacency), getattr(adjacency, "_version", 0)
    entry = _CACHE.get(key)
    if (entry is not None and entry.edges() is adjacency and entry.version == version
            and entry.num_nodes == num_nodes):
        _CACHE.move_to_end(key)
        return entry.mask
    mask = build_block_mask(edge_index, num_nodes)
    # The entry goes when its tensor does (a per-forward kNN graph: every forward).
    _CACHE[key] = _Entry(weakref.ref(adjacency, lambda ref, key=key: _forget(key, ref)),
                         version, num_nodes, mask)
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return mask


def _forget(key: int, ref: weakref.ref) -> None:
    entry = _CACHE.get(key)
    if entry is not None and entry.edges is ref:
        del _CACHE[key]


def build_block_mask(edge_index: Tensor, num_nodes: int) -> Optional[BlockMask]:
    """:func:`block_mask` without the cache (two host syncs)."""
    source, target = edge_index[0].long(), edge_index[1].long()
    num_edges = source.numel()
    if num_edges == 0 or num_nodes == 0:
        return None
    graph_size = _smallest_block(source, target, num_nodes)
    num_graphs = num_nodes // graph_size
    graph = target // graph_size
    allowed = torch.zeros(num_graphs, graph_size, graph_size, dtype=torch.bool,
                          device=source.device)
    allowed[graph, target - graph * graph_size, source - graph * graph_size] = True
    isolated = ~allowed.any(dim=-1)  # [B, n]: no incoming edge
    entries, any_isolated = torch.stack([allowed.sum(), isolated.any().long()]).tolist()
    if entries != num_edges:  # a repeated edge weighs twice in message passing
        return None
    if any_isolated:
        allowed = allowed | isolated.unsqueeze(-1)
        isolated = isolated.view(num_graphs, 1, graph_size, 1)
    else:
        isolated = None
    return BlockMask(graph_size, num_graphs, num_edges, allowed.unsqueeze(1), isolated)


def _smallest_block(source: Tensor, target: Tensor, num_nodes: int) -> int:
    """The smallest :math:`n` dividing :obj:`num_nodes` such that no edge joins nodes
    of different blocks :math:`[g n, (g+1) n)` (at worst the whole batch, one block)."""
    low, high = torch.minimum(source, target), torch.maximum(source, target)
    # Boundary p (between nodes p - 1 and p) is crossed by the edges with
    # low < p <= high: +1 at low + 1, -1 at high + 1, summed up.
    ones = torch.ones_like(low)
    crossings = torch.zeros(num_nodes + 1, dtype=torch.long, device=low.device)
    crossings.index_add_(0, low + 1, ones).index_add_(0, high + 1, -ones)
    crossed = (crossings.cumsum(0)[1:num_nodes] > 0).cpu()  # boundaries 1 .. N-1
    for size in range(1, num_nodes + 1):
        if num_nodes % size == 0 and not crossed[size - 1::size].any():
            return size
    return num_nodes  # (not reached: size == num_nodes has no inner boundary)

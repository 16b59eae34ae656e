"""Cached graph structure for the hot path: build once per (topology, batch size,
device), then call layers with plain tensors."""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from .topology import (batch_edge_index, check_edge_index, complete_edge_index,
                       grid_edge_index, pairs_edge_index, prior_edge_index)


@dataclass(frozen=True, eq=False)
class GraphStructure:
    r"""Everything a model needs to call a graph layer on a batch of :math:`B`
    equal-sized graphs with plain tensors.

    Attributes:
        edge_index (torch.Tensor): Batched edges :math:`(2, BE)`; graph :math:`g`
            holds nodes :math:`[gn, (g+1)n)`.
        num_graphs (int): :math:`B`.
        num_nodes_per_graph (int): :math:`n`.
        dense_size (int or None): :math:`n` when every graph is complete with self
            loops (the layers' exact dense path), else :obj:`None`.
        node_index (torch.Tensor): Each node's index within its graph
            :math:`(Bn,)` (``arange(n)`` repeated :math:`B` times); for a region graph
            built in AU order this is each node's AU index. (``au_index`` before: that
            name still reads it, with a warning.)
        batch (torch.Tensor): Each node's graph id :math:`(Bn,)`.
        key (tuple): The hashable topology key it was built from.

    The tensors are shared by every caller of :func:`graph_structure`: treat
    them as read-only.
    """

    edge_index: Tensor
    num_graphs: int
    num_nodes_per_graph: int
    dense_size: Optional[int]
    node_index: Tensor
    batch: Tensor
    key: tuple

    @property
    def num_nodes(self) -> int:
        """Total nodes :math:`Bn`."""
        return self.num_graphs * self.num_nodes_per_graph

    @property
    def au_index(self) -> Tensor:
        """Deprecated name of :attr:`node_index`."""
        warnings.warn("GraphStructure.au_index is deprecated; read node_index (each node's "
                      "index within its graph)", DeprecationWarning, stacklevel=2)
        return self.node_index


def topology_key(topology, num_nodes: Optional[int] = None) -> tuple:
    r"""Normalises a topology spec into a hashable key.

    Accepted specs (one graph; :func:`graph_structure` batches it):

    * ``"complete"`` (needs :obj:`num_nodes`), ``("complete", n)`` or
      ``("complete", n, self_loops)``: the complete graph, self loops by default;
    * ``("grid", H, W)`` or ``("grid", H, W, hops)``: the pixel lattice of
      :func:`grid_edge_index` (:math:`n = HW`);
    * ``("prior", A)`` or ``("prior", A, threshold)``: the thresholded AU graph of
      :func:`prior_edge_index` (self loops kept);
    * a :mod:`networkx` graph (node order ``list(graph.nodes)``);
    * ``("edge_index", edge_index, n)``: an explicit graph.

    A kNN graph depends on the features, so it cannot be cached: build it per
    forward with :func:`knn_edge_index`.
    """
    try:
        import networkx as nx
        if isinstance(topology, nx.Graph):
            nodes = tuple(topology.nodes)
            position = {node: t for t, node in enumerate(nodes)}
            edges = tuple(sorted((position[u], position[v]) for u, v in topology.edges()))
            return ("networkx", len(nodes), topology.is_directed(), edges)
    except ImportError:  # pragma: no cover - networkx is a dependency
        pass
    spec = (topology,) if isinstance(topology, str) else topology
    if not isinstance(spec, tuple) or not spec:
        raise ValueError(_TOPOLOGY_HELP + f"; found {topology!r}")
    name = spec[0]
    if name == "complete":
        n = spec[1] if len(spec) > 1 else num_nodes
        if n is None:
            raise ValueError("topology 'complete' needs the node count: pass "
                             "('complete', n) or num_nodes=n")
        self_loops = bool(spec[2]) if len(spec) > 2 else True
        return ("complete", int(n), self_loops)
    if name == "grid" and len(spec) in (3, 4):
        hops = spec[3] if len(spec) == 4 else 1
        return ("grid", int(spec[1]), int(spec[2]), int(hops))
    if name == "prior" and len(spec) in (2, 3):
        adjacency = torch.as_tensor(spec[1]).detach().cpu().double()
        if adjacency.dim() != 2 or adjacency.size(0) != adjacency.size(1):
            raise ValueError("topology ('prior', A) needs a square [n, n] matrix A; "
                             f"found shape {tuple(adjacency.shape)}")
        threshold = float(spec[2]) if len(spec) == 3 else 0.0
        return ("prior", adjacency.size(0), tuple(adjacency.flatten().tolist()), threshold)
    if name == "edge_index" and len(spec) == 3:
        edge_index = torch.as_tensor(spec[1]).detach().cpu().long()
        check_edge_index(edge_index, int(spec[2]), "topology ('edge_index', edge_index, n)")
        return ("edge_index", int(spec[2]), tuple(map(tuple, edge_index.tolist())))
    if name == "knn":
        raise ValueError("topology 'knn' depends on the node features and cannot be "
                         "cached; build it per forward with knn_edge_index(x, k, batch)")
    raise ValueError(_TOPOLOGY_HELP + f"; found {topology!r}")


_TOPOLOGY_HELP = ("topology must be 'complete', ('complete', n[, self_loops]), "
                  "('grid', H, W[, hops]), ('prior', A[, threshold]), a networkx graph "
                  "or ('edge_index', edge_index, n)")


def _one_graph(key: tuple) -> tuple[Tensor, int, bool]:
    """(edge_index, num_nodes, complete_with_self_loops) of one graph, on CPU."""
    name = key[0]
    if name == "complete":
        return complete_edge_index(key[1], key[2]), key[1], key[2]
    if name == "grid":
        return grid_edge_index(key[1], key[2], key[3]), key[1] * key[2], False
    if name == "prior":
        n = key[1]
        adjacency = torch.tensor(key[2], dtype=torch.float64).view(n, n)
        return prior_edge_index(adjacency, key[3]), n, False
    if name == "networkx":
        return pairs_edge_index(key[3], directed=key[2]), key[1], False
    if name == "edge_index":
        return torch.tensor(key[2], dtype=torch.long).view(2, -1), key[1], False
    raise AssertionError(f"unknown topology key {key!r}")  # topology_key guards this


@functools.lru_cache(maxsize=256)
def _cached_structure(key: tuple, batch_size: int, device: torch.device) -> GraphStructure:
    edge_index, num_nodes, complete = _one_graph(key)
    local = torch.arange(num_nodes, device=device)
    return GraphStructure(
        edge_index=batch_edge_index(edge_index.to(device), batch_size, num_nodes),
        num_graphs=batch_size,
        num_nodes_per_graph=num_nodes,
        dense_size=num_nodes if complete else None,
        node_index=local.repeat(batch_size),
        batch=torch.arange(batch_size, device=device).repeat_interleave(num_nodes),
        key=key,
    )


def _normalise_device(device) -> torch.device:
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def graph_structure(topology, batch_size: int, device=None,
                    num_nodes: Optional[int] = None) -> GraphStructure:
    r"""The cached :class:`GraphStructure` of :obj:`batch_size` copies of a topology.

    Built once per (topology key, batch size, device) and then reused, so a model
    calls its layers with plain tensors and no per-forward ``Data`` objects:

    .. code-block:: python

        s = graph_structure(("grid", 22, 22), batch_size=8)
        out = attention(x, s.edge_index, dense_size=s.dense_size)

    Args:
        topology: A topology spec, see :func:`topology_key`.
        batch_size (int): Graphs in the batch :math:`B`.
        device (torch.device or str, optional): Where the tensors live.
            (default: CPU)
        num_nodes (int, optional): Node count for ``"complete"``. (default: :obj:`None`)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; found {batch_size!r}")
    key = topology_key(topology, num_nodes)
    return _cached_structure(key, batch_size, _normalise_device(device))

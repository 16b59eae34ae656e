"""Cached graph structure for the hot path: build once per (topology, batch size,
device), then call layers with plain tensors."""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from .registry import GraphNodes, check_topology
from .topology import _check_positive_int, batch_edge_index, check_edge_index, pairs_edge_index


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


def topology_key(topology, num_nodes: Optional[int] = None,
                 lattice: Optional[tuple[int, int]] = None, prior=None) -> tuple:
    r"""Normalises a topology spec into a hashable key.

    Accepted specs (one graph; :func:`graph_structure` batches it):

    * a registered topology (:mod:`mgrr_pyg.graphs.registry`): its name or
      ``(name, *args)``, e.g. ``"complete"``, ``("complete", False)``, ``("grid", hops)``,
      ``"prior"`` / ``("prior", threshold)``, or one of your own. The graph it connects
      is given by :obj:`num_nodes`, :obj:`lattice` (pixel graphs: :math:`n = HW`) and
      :obj:`prior` (the relation prior :math:`(n, n)`, for ``"prior"``);
    * the same with the graph's size inline: ``("complete", n[, self_loops])``,
      ``("grid", H, W[, hops])``, ``("prior", A[, threshold])``;
    * a :mod:`networkx` graph (node order ``list(graph.nodes)``);
    * ``("edge_index", edge_index, n)``: an explicit graph.

    A per-forward topology (``("knn", k)``) depends on the features, so it cannot be
    cached: build it per forward with :func:`~mgrr_pyg.graphs.registry.per_forward_edges`.
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
    if isinstance(topology, tuple) and len(topology) == 3 and topology[0] == "edge_index":
        edge_index = torch.as_tensor(topology[1]).detach().cpu().long()
        check_edge_index(edge_index, int(topology[2]), "topology ('edge_index', edge_index, n)")
        return ("edge_index", int(topology[2]), tuple(map(tuple, edge_index.tolist())))
    spec, num_nodes, lattice, prior = _sizes_inline(topology, num_nodes, lattice, prior)
    entry, args = check_topology(spec)
    name = entry.name
    if entry.per_forward:
        raise ValueError(f"topology {name!r} depends on the node features and cannot be "
                         "cached; build it per forward with per_forward_edges(topology, x, "
                         "num_graphs, num_nodes) (for 'knn': knn_edge_index(x, k, batch))")
    if lattice is not None:
        lattice = (_check_positive_int(lattice[0], "lattice height"),
                   _check_positive_int(lattice[1], "lattice width"))
        if num_nodes is not None and num_nodes != lattice[0] * lattice[1]:
            raise ValueError(f"topology {name!r}: num_nodes={num_nodes} but the lattice "
                             f"{lattice[0]}x{lattice[1]} has {lattice[0] * lattice[1]} nodes")
        num_nodes = lattice[0] * lattice[1]
    prior_values = None
    if prior is not None and entry.uses_prior:  # (only then: reading it back is a sync)
        adjacency = torch.as_tensor(prior).detach().cpu().double()
        if adjacency.dim() != 2 or adjacency.size(0) != adjacency.size(1):
            raise ValueError(f"topology {name!r} needs a square [n, n] matrix A; found shape "
                             f"{tuple(adjacency.shape)}")
        if num_nodes is not None and num_nodes != adjacency.size(0):
            raise ValueError(f"topology {name!r}: num_nodes={num_nodes} but the prior A is "
                             f"{adjacency.size(0)} x {adjacency.size(0)}")
        num_nodes = adjacency.size(0)
        prior_values = tuple(adjacency.flatten().tolist())
    if num_nodes is None:
        raise ValueError(f"topology {name!r} needs the node count: pass num_nodes=n (or "
                         f"({name!r}, n))")
    # The entry itself, not its name: a topology registered again (replace=True) gets
    # structures of its own.
    return (entry, _check_positive_int(int(num_nodes), "num_nodes"), lattice, prior_values,
            args)


def _sizes_inline(topology, num_nodes, lattice, prior):
    """``(spec, num_nodes, lattice, prior)`` with a size given inside the spec moved out:
    ``("complete", n[, self_loops])``, ``("grid", H, W[, hops])``, ``("prior", A[, t])``."""
    if not isinstance(topology, tuple) or len(topology) < 2:
        return topology, num_nodes, lattice, prior
    name, first = topology[0], topology[1]
    if name == "complete" and isinstance(first, int) and not isinstance(first, bool) \
            and len(topology) <= 3:
        return ("complete", *(bool(v) for v in topology[2:])), first, lattice, prior
    if name == "grid" and len(topology) in (3, 4):
        return (("grid", *(int(v) for v in topology[3:])), num_nodes,
                (int(first), int(topology[2])), prior)
    if name == "prior" and len(topology) in (2, 3) and not isinstance(first, (int, float)):
        if prior is not None:
            raise ValueError("topology ('prior', A[, threshold]) and prior=...: give the "
                             "prior once")
        return ("prior", *(float(v) for v in topology[2:])), num_nodes, lattice, first
    return topology, num_nodes, lattice, prior


def _one_graph(key: tuple) -> tuple[Tensor, int, bool]:
    """(edge_index, num_nodes, complete_with_self_loops) of one graph, on CPU."""
    name = key[0]
    if name == "networkx":
        return pairs_edge_index(key[3], directed=key[2]), key[1], False
    if name == "edge_index":
        return torch.tensor(key[2], dtype=torch.long).view(2, -1), key[1], False
    entry, num_nodes, lattice, prior_values, args = key
    prior = (None if prior_values is None
             else torch.tensor(prior_values, dtype=torch.float64).view(num_nodes, num_nodes))
    graph = GraphNodes(num_nodes, lattice, prior)
    return entry.edges(graph, args), num_nodes, entry.is_dense(args)


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


def graph_structure(topology, batch_size: int, device=None, num_nodes: Optional[int] = None,
                    lattice: Optional[tuple[int, int]] = None, prior=None) -> GraphStructure:
    r"""The cached :class:`GraphStructure` of :obj:`batch_size` copies of a topology.

    Built once per (topology key, batch size, device) and then reused, so a model
    calls its layers with plain tensors and no per-forward ``Data`` objects:

    .. code-block:: python

        s = graph_structure(("grid", 1), batch_size=8, lattice=(22, 22))
        out = attention(x, s.edge_index, dense_size=s.dense_size)

    Args:
        topology: A topology spec, see :func:`topology_key`.
        batch_size (int): Graphs in the batch :math:`B`.
        device (torch.device or str, optional): Where the tensors live.
            (default: CPU)
        num_nodes (int, optional): Nodes per graph :math:`n` (``"complete"`` needs
            it). (default: :obj:`None`)
        lattice (tuple of int, optional): :math:`(H, W)` when the nodes are the pixels
            of a map (``("grid", hops)`` needs it). (default: :obj:`None`)
        prior (torch.Tensor, optional): The relation prior :math:`(n, n)` for
            topologies that read it (``"prior"``). (default: :obj:`None`)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; found {batch_size!r}")
    key = topology_key(topology, num_nodes, lattice, prior)
    return _cached_structure(key, batch_size, _normalise_device(device))

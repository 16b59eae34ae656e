"""Graph topologies as ``edge_index`` builders.

All builders follow PyG's convention: ``edge_index[0]`` is the source node
:math:`j`, ``edge_index[1]`` the target node :math:`i` (messages flow
:math:`j \\to i`). Edges come sorted by target, then by source.
"""
from __future__ import annotations

from typing import Hashable, Optional, Sequence

import torch
from torch import Tensor

DeviceLike = Optional[torch.device | str]


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}; found {value!r}")
    return value


def complete_edge_index(num_nodes: int, self_loops: bool = True,
                        device: DeviceLike = None) -> Tensor:
    r"""The complete directed graph on :obj:`num_nodes` nodes.

    Args:
        num_nodes (int): The number of nodes :math:`n`.
        self_loops (bool, optional): Whether each node also sends to itself (the
            MGRR-Net graphs include them: a node's neighbourhood contains it).
            (default: :obj:`True`)
        device (torch.device, optional): Where to build. (default: CPU)

    Returns:
        ``edge_index`` of shape :math:`(2, n^2)` with self loops, or
        :math:`(2, n(n-1))` without.
    """
    _check_positive_int(num_nodes, "num_nodes")
    nodes = torch.arange(num_nodes, device=device)
    target = nodes.repeat_interleave(num_nodes)
    source = nodes.repeat(num_nodes)
    edge_index = torch.stack([source, target])
    if not self_loops:
        edge_index = edge_index[:, source != target]
    return edge_index


def grid_edge_index(height: int, width: int, hops: int = 1, self_loops: bool = True,
                    device: DeviceLike = None) -> Tensor:
    r"""The :math:`k`-hop neighbourhood graph of an :math:`H \times W` pixel lattice.

    Pixel :math:`(r, c)` is node :math:`r W + c` (row-major, the order of
    ``map.flatten(-2)``). Node :math:`j` sends to node :math:`i` when their
    Chebyshev distance is at most :obj:`hops`, i.e. :math:`j` lies in the
    :math:`(2k+1) \times (2k+1)` window centred on :math:`i` (``hops=1``: the 3x3
    neighbourhood, itself included when :obj:`self_loops`). Windows are clipped at
    the borders (no padding nodes).

    Args:
        height (int): Lattice height :math:`H`.
        width (int): Lattice width :math:`W`.
        hops (int, optional): The neighbourhood radius :math:`k`. (default: :obj:`1`)
        self_loops (bool, optional): Include :math:`i \to i`. (default: :obj:`True`)
        device (torch.device, optional): Where to build. (default: CPU)

    Returns:
        ``edge_index`` of shape :math:`(2, E)`.
    """
    _check_positive_int(height, "height")
    _check_positive_int(width, "width")
    _check_positive_int(hops, "hops", minimum=0)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    target_r, target_c = torch.meshgrid(rows, cols, indexing="ij")  # [H, W]
    offsets = torch.arange(-hops, hops + 1, device=device)
    off_r, off_c = torch.meshgrid(offsets, offsets, indexing="ij")  # [2k+1, 2k+1]
    source_r = target_r.reshape(-1, 1) + off_r.reshape(1, -1)  # [HW, (2k+1)^2]
    source_c = target_c.reshape(-1, 1) + off_c.reshape(1, -1)
    target = (target_r * width + target_c).reshape(-1, 1).expand_as(source_r)
    valid = (source_r >= 0) & (source_r < height) & (source_c >= 0) & (source_c < width)
    source = source_r * width + source_c
    if not self_loops:
        valid &= source != target
    return torch.stack([source[valid], target[valid]])


def knn_edge_index(x: Tensor, k: int, batch: Optional[Tensor] = None,
                   self_loops: bool = False) -> Tensor:
    r"""The :math:`k`-nearest-neighbour graph in feature space (Euclidean).

    Every node :math:`i` receives from its :math:`k` nearest nodes :math:`j`
    (within its own graph when :obj:`batch` is given). Pure torch: pairwise
    distances with :func:`torch.cdist` and :func:`torch.topk`; memory grows as
    :math:`B \cdot n_{\max}^2`. A graph with fewer than :math:`k` candidates gives
    each node all of them. Ties are broken by :func:`torch.topk`.

    Args:
        x (torch.Tensor): Node features :math:`(N, F)`.
        k (int): Neighbours per node.
        batch (torch.Tensor, optional): Graph id of each node :math:`(N,)`, sorted
            (as in a PyG :class:`~torch_geometric.data.Batch`). (default: :obj:`None`)
        self_loops (bool, optional): Whether a node may be its own neighbour (it
            always is, at distance 0). (default: :obj:`False`)

    Returns:
        ``edge_index`` of shape :math:`(2, E)`, sorted by target.
    """
    _check_positive_int(k, "k")
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(
            "x must be a 2-D tensor [num_nodes, features]; found "
            f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    num_nodes = x.size(0)
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=x.device)
    if batch.shape != (num_nodes,):
        raise ValueError(
            f"batch must have shape [{num_nodes}] (one graph id per node of x); "
            f"found {tuple(batch.shape)}")
    if num_nodes == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    if bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted (nodes of each graph contiguous)")

    from torch_geometric.utils import to_dense_batch

    dense, mask = to_dense_batch(x.detach(), batch)  # [B, n_max, F], [B, n_max]
    dist = torch.cdist(dense, dense)  # [B, n_max, n_max]
    dist = dist.masked_fill(~mask[:, None, :], float("inf"))
    if not self_loops:
        dist.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    k_eff = min(k, dist.size(-1))
    nearest_dist, nearest = dist.topk(k_eff, dim=-1, largest=False)  # [B, n_max, k]
    nearest, order = nearest.sort(dim=-1)  # sources ascending within each target
    nearest_dist = nearest_dist.gather(-1, order)

    # Local -> global node ids via each graph's first node.
    counts = mask.sum(dim=1)  # [B]
    first = torch.cumsum(counts, 0) - counts  # [B]
    target_local = torch.arange(dist.size(1), device=x.device)
    target = (first[:, None, None] + target_local[None, :, None]).expand_as(nearest)
    source = first[:, None, None] + nearest
    keep = torch.isfinite(nearest_dist) & mask[:, :, None]
    return torch.stack([source[keep], target[keep]])


def prior_edge_index(adjacency: Tensor, threshold: float = 0.0, self_loops: bool = True,
                     return_weight: bool = False):
    r"""The AU graph obtained by thresholding a relation prior :math:`\mathbf{A}`.

    Node :math:`j` sends to node :math:`i` iff :math:`A_{ij} > \text{threshold}`
    (row :math:`i` receives from column :math:`j`, as in Eq. 5).

    Args:
        adjacency (torch.Tensor or numpy.ndarray): Square prior :math:`(n, n)`,
            e.g. from :func:`~mgrr_pyg.graphs.au_cooccurrence_prior`.
        threshold (float, optional): Keep entries strictly above. (default: :obj:`0.0`)
        self_loops (bool, optional): :obj:`True` always keeps :math:`i \to i`,
            :obj:`False` always drops it. (default: :obj:`True`)
        return_weight (bool, optional): Also return the kept :math:`A_{ij}` per
            edge. (default: :obj:`False`)

    Returns:
        ``edge_index`` :math:`(2, E)`, or ``(edge_index, edge_weight [E])``.
    """
    adjacency = torch.as_tensor(adjacency)
    if adjacency.dim() != 2 or adjacency.size(0) != adjacency.size(1):
        raise ValueError(
            "adjacency must be a square [n, n] matrix; found shape "
            f"{tuple(adjacency.shape)}")
    keep = adjacency > threshold
    eye = torch.eye(adjacency.size(0), dtype=torch.bool, device=adjacency.device)
    keep = keep | eye if self_loops else keep & ~eye
    target, source = keep.nonzero(as_tuple=True)  # row-major: sorted by target
    edge_index = torch.stack([source, target])
    if return_weight:
        return edge_index, adjacency[target, source]
    return edge_index


def networkx_edge_index(graph, nodes: Optional[Sequence[Hashable]] = None,
                        device: DeviceLike = None) -> Tensor:
    r"""Converts any :mod:`networkx` graph to an ``edge_index``.

    An undirected edge :math:`\{u, v\}` gives both :math:`u \to v` and
    :math:`v \to u`; a directed edge :math:`(u, v)` gives :math:`u \to v`
    (source :math:`u`). Self loops are kept as they are in the graph.

    Args:
        graph (networkx.Graph or networkx.DiGraph): The graph.
        nodes (sequence, optional): Node order; node ``nodes[t]`` becomes index
            :math:`t`. Must list every node of :obj:`graph` once.
            (default: ``list(graph.nodes)``)
        device (torch.device, optional): Where to build. (default: CPU)

    Returns:
        ``edge_index`` of shape :math:`(2, E)`, sorted by target.
    """
    import networkx as nx

    if not isinstance(graph, nx.Graph):
        raise ValueError(
            f"graph must be a networkx graph; found {type(graph).__name__}")
    order = list(graph.nodes) if nodes is None else list(nodes)
    position = {node: t for t, node in enumerate(order)}
    if len(position) != len(order) or set(position) != set(graph.nodes):
        raise ValueError(
            f"nodes must list each of the graph's {graph.number_of_nodes()} nodes "
            f"exactly once; found {len(order)} entries ({len(position)} distinct)")
    pairs = [(position[u], position[v]) for u, v in graph.edges()]
    return pairs_edge_index(pairs, graph.is_directed(), device)


def pairs_edge_index(pairs, directed: bool, device: DeviceLike = None) -> Tensor:
    """``edge_index`` from ``(source, target)`` pairs; undirected pairs give both
    directions. Duplicates are dropped; sorted by target, then source."""
    pairs = set(map(tuple, pairs))
    if not directed:
        pairs |= {(v, u) for u, v in pairs}
    pairs = sorted(pairs, key=lambda p: (p[1], p[0]))
    if not pairs:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    return torch.tensor(pairs, dtype=torch.long, device=device).t().contiguous()


def batch_edge_index(edge_index: Tensor, num_graphs: int, num_nodes: int) -> Tensor:
    r"""Replicates one graph's ``edge_index`` for a batch of equal-sized graphs.

    Graph :math:`g` occupies nodes :math:`[g n, (g + 1) n)`, as in a PyG
    :class:`~torch_geometric.data.Batch` of graphs with :math:`n` nodes each.

    Args:
        edge_index (torch.Tensor): One graph's edges :math:`(2, E)`.
        num_graphs (int): The batch size :math:`B`.
        num_nodes (int): Nodes per graph :math:`n`.

    Returns:
        ``edge_index`` of shape :math:`(2, B E)`, graph by graph.
    """
    _check_positive_int(num_graphs, "num_graphs")
    _check_positive_int(num_nodes, "num_nodes")
    check_edge_index(edge_index, num_nodes, "edge_index")
    offsets = torch.arange(num_graphs, device=edge_index.device) * num_nodes  # [B]
    batched = edge_index.unsqueeze(1) + offsets.view(1, -1, 1)  # [2, B, E]
    return batched.reshape(2, -1)


def check_edge_index(edge_index: Tensor, num_nodes: int, name: str = "edge_index") -> None:
    """Raises a ValueError unless ``edge_index`` is a ``[2, E]`` integer tensor
    with every entry in ``[0, num_nodes)``.

    While :func:`torch.compile` traces, only the shape and dtype are checked: the range
    check reads the ids back (data-dependent, a graph break); eager calls check it."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        found = (tuple(edge_index.shape) if isinstance(edge_index, Tensor)
                 else type(edge_index).__name__)
        raise ValueError(f"{name} must be a [2, E] tensor; found {found}")
    if edge_index.dtype not in (torch.long, torch.int32, torch.int64):
        raise ValueError(f"{name} must hold integer node ids; found dtype {edge_index.dtype}")
    if edge_index.numel() and not torch.compiler.is_compiling():
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            raise ValueError(
                f"{name} must index nodes in [0, {num_nodes}); found ids from {low} to {high}")

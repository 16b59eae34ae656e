"""Tensors -> PyG graphs (and back) for the three MGRR-Net graphs.

* AU-region graph :math:`D_G`: one node per AU with its region feature.
* Channel graph (:math:`C_G` branch): one node per channel of a feature map, its
  :math:`H W` values as the feature.
* Pixel graph (:math:`P_G` branch): one node per pixel, its :math:`C` channel values
  as the feature.

Every builder returns a :class:`~torch_geometric.data.Batch` of :math:`B` graphs
and marks how it was built: ``complete`` (bool) and ``dense_size`` (nodes per graph,
set only when every graph is complete with self loops and of equal size; read it
with :func:`dense_size_of`, which gives :obj:`None` otherwise).
Layers read ``dense_size`` to take their exact dense path; they never inspect
``edge_index`` to guess.

These builders are for clarity and research code. A model's hot path should use
:func:`~mgrr_pyg.graphs.graph_structure` (cached ``edge_index``) and plain reshapes.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from .registry import GraphNodes, check_topology
from .topology import check_edge_index, knn_edge_index

TopologyArg = Union[str, tuple, Tensor]


class _GraphData(Data):
    """A graph whose ``au_index`` holds AU ids, not node ids: collating a batch
    must leave it as it is (PyG increments every attribute named ``*index*``)."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "au_index":
            return 0
        return super().__inc__(key, value, *args, **kwargs)


def _check_tensor(value, name: str, dims: int, layout: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a tensor {layout}; found {type(value).__name__}")
    if value.dim() != dims:
        raise ValueError(
            f"{name} must be {dims}-D {layout}; found shape {tuple(value.shape)}")
    return value


def _edges_for(topology: TopologyArg, num_nodes: int, height: Optional[int],
               width: Optional[int], device) -> tuple[Tensor, bool]:
    """One graph's edge_index for a topology spec (any registered one that is not built
    per forward, see :mod:`mgrr_pyg.graphs.registry`), and whether it is complete with
    self loops (the dense-path condition)."""
    if isinstance(topology, Tensor):
        check_edge_index(topology, num_nodes, "topology (an edge_index)")
        return topology.to(device), False
    entry, args = check_topology(topology)
    if entry.per_forward:
        raise ValueError(f"topology {entry.name!r} is built per forward from the features: "
                         "the builders take ('knn', k) of those; build others with "
                         "mgrr_pyg.graphs.per_forward_edges")
    lattice = None if height is None else (height, width)
    edge_index = entry.edges(GraphNodes(num_nodes, lattice), args)
    return edge_index.to(device), entry.is_dense(args)


def _make_batch(x: Tensor, num_graphs: int, num_nodes: int, topology: TopologyArg,
                height: Optional[int] = None, width: Optional[int] = None,
                **node_attrs: Tensor) -> Batch:
    """Collates B graphs of num_nodes nodes each; x is [B, n, F]."""
    key = topology if isinstance(topology, tuple) else (topology,)
    # The builders' kNN graph is knn_edge_index's, graph by graph, with no self loop (the
    # model's registered ("knn", k) adds one: mgrr_pyg.graphs.registry.knn_edges).
    if not isinstance(topology, Tensor) and key[0] == "knn":
        if len(key) != 2:
            raise ValueError(f"topology ('knn', k) needs k; found {topology!r}")
        shared_edges, complete = None, False
    else:
        shared_edges, complete = _edges_for(topology, num_nodes, height, width, x.device)
    graphs = []
    for g in range(num_graphs):
        edges = (knn_edge_index(x[g], key[1]) if shared_edges is None else shared_edges)
        attrs = {name: value[g] for name, value in node_attrs.items()}
        graphs.append(_GraphData(x=x[g], edge_index=edges, num_nodes=num_nodes, **attrs))
    batch = Batch.from_data_list(graphs)
    batch.complete = complete
    if complete:  # PyG storage drops attributes set to None: absent means "not dense"
        batch.dense_size = num_nodes
    return batch


def dense_size_of(graph: Data) -> Optional[int]:
    """The ``dense_size`` a builder marked on :obj:`graph` (nodes per graph when
    every graph is complete with self loops and of equal size), else :obj:`None`.

    Use it rather than ``graph.dense_size``: PyG cannot store :obj:`None`, so the
    builders leave the attribute out for graphs that are not dense."""
    return getattr(graph, "dense_size", None)


def region_graph(features: Tensor, topology: TopologyArg = "complete",
                 au_index: Optional[Tensor] = None) -> Batch:
    r"""The AU-region graph :math:`D_G` of Eq. 5 from region features :math:`V`.

    Args:
        features (torch.Tensor): AU features :math:`V`, shape :math:`(B, n, d)`.
        topology (str or tuple or torch.Tensor, optional): ``"complete"`` (self
            loops included, the paper's :math:`D_G`), ``("complete", False)``,
            ``("knn", k)`` or one graph's ``edge_index`` :math:`(2, E)` (e.g. from
            :func:`prior_edge_index`). (default: :obj:`"complete"`)
        au_index (torch.Tensor, optional): The AU id of each of the :math:`n`
            nodes, shape :math:`(n,)` or :math:`(B, n)`. (default: ``arange(n)``)

    Returns:
        :class:`~torch_geometric.data.Batch` with ``x`` :math:`(Bn, d)`,
        ``au_index`` :math:`(Bn,)`, ``batch``, ``edge_index``, ``complete`` and
        ``dense_size`` (see :func:`dense_size_of`).
    """
    _check_tensor(features, "features", 3, "[B, n, d] (batch, AUs, feature)")
    num_graphs, num_nodes, _ = features.shape
    if au_index is None:
        au_index = torch.arange(num_nodes, device=features.device)
    if au_index.shape not in ((num_nodes,), (num_graphs, num_nodes)):
        raise ValueError(
            f"au_index must have shape [{num_nodes}] or [{num_graphs}, {num_nodes}] "
            f"to match features {tuple(features.shape)}; found {tuple(au_index.shape)}")
    au_index = au_index.expand(num_graphs, num_nodes)
    return _make_batch(features, num_graphs, num_nodes, topology,
                       au_index=au_index.long())


def channel_graph(feature_map: Tensor, topology: TopologyArg = "complete") -> Batch:
    r"""The channel graph of Eq. 3-4: node :math:`c` is channel :math:`c` of the map,
    with its :math:`H W` values (row-major) as the feature.

    Args:
        feature_map (torch.Tensor): :math:`(B, C, H, W)`.
        topology (str or tuple or torch.Tensor, optional): ``"complete"`` (self
            loops included), ``("complete", False)``, ``("knn", k)`` or one graph's
            ``edge_index``. (default: :obj:`"complete"`)

    Returns:
        :class:`~torch_geometric.data.Batch` with ``x`` :math:`(BC, HW)`,
        ``map_height``, ``map_width``, ``complete`` and ``dense_size``.
        :func:`channel_graph_to_map` inverts it exactly.
    """
    _check_tensor(feature_map, "feature_map", 4, "[B, C, H, W]")
    num_graphs, channels, height, width = feature_map.shape
    x = feature_map.reshape(num_graphs, channels, height * width)  # [B, C, HW]
    batch = _make_batch(x, num_graphs, channels, topology)
    batch.map_height, batch.map_width = height, width
    return batch


def pixel_graph(feature_map: Tensor, topology: TopologyArg = "complete") -> Batch:
    r"""The pixel graph of Eq. 3-4: node :math:`rW + c` is pixel :math:`(r, c)`,
    with its :math:`C` channel values as the feature.

    Args:
        feature_map (torch.Tensor): :math:`(B, C, H, W)`.
        topology (str or tuple or torch.Tensor, optional): ``"complete"`` (self
            loops included), ``("complete", False)``, ``("grid", hops)`` (the
            :math:`(2k+1)^2` window, see :func:`grid_edge_index`), ``("knn", k)`` or
            one graph's ``edge_index``. (default: :obj:`"complete"`)

    Returns:
        :class:`~torch_geometric.data.Batch` with ``x`` :math:`(BHW, C)`,
        ``map_height``, ``map_width``, ``complete`` and ``dense_size``.
        :func:`pixel_graph_to_map` inverts it exactly.
    """
    _check_tensor(feature_map, "feature_map", 4, "[B, C, H, W]")
    num_graphs, channels, height, width = feature_map.shape
    x = feature_map.flatten(2).transpose(1, 2)  # [B, HW, C]
    batch = _make_batch(x, num_graphs, height * width, topology, height, width)
    batch.map_height, batch.map_width = height, width
    return batch


def _inverse_args(x, batch_size, height, width, name: str):
    if isinstance(x, Data):
        batch_size = x.num_graphs if batch_size is None else batch_size
        height = x.map_height if height is None else height
        width = x.map_width if width is None else width
        x = x.x
    if batch_size is None or height is None or width is None:
        raise ValueError(
            f"{name} needs batch_size, height and width (or a graph built by "
            f"channel_graph / pixel_graph); found batch_size={batch_size}, "
            f"height={height}, width={width}")
    _check_tensor(x, "x", 2, "[num_nodes, features]")
    return x, batch_size, height, width


def channel_graph_to_map(x: Union[Tensor, Data], batch_size: Optional[int] = None,
                         height: Optional[int] = None, width: Optional[int] = None) -> Tensor:
    r"""Inverse of :func:`channel_graph`: node features :math:`(BC, HW)` back to
    the map :math:`(B, C, H, W)`; :math:`C` is inferred.

    Args:
        x (torch.Tensor or Data): Node features, or the graph itself (then the
            other arguments default to its ``num_graphs``, ``map_height``,
            ``map_width``).
        batch_size (int, optional): :math:`B`.
        height (int, optional): :math:`H`.
        width (int, optional): :math:`W`.
    """
    x, batch_size, height, width = _inverse_args(x, batch_size, height, width,
                                                 "channel_graph_to_map")
    num_nodes, features = x.shape
    if features != height * width or num_nodes % batch_size:
        raise ValueError(
            f"x must have shape [batch_size * C, height * width] = [{batch_size} * C, "
            f"{height * width}] for batch_size={batch_size}, height={height}, "
            f"width={width}; found {tuple(x.shape)}")
    return x.reshape(batch_size, num_nodes // batch_size, height, width)


def pixel_graph_to_map(x: Union[Tensor, Data], batch_size: Optional[int] = None,
                       height: Optional[int] = None, width: Optional[int] = None) -> Tensor:
    r"""Inverse of :func:`pixel_graph`: node features :math:`(BHW, C)` back to the
    map :math:`(B, C, H, W)`; :math:`C` is the feature width of :obj:`x`.

    Args:
        x (torch.Tensor or Data): Node features, or the graph itself (then the
            other arguments default to its ``num_graphs``, ``map_height``,
            ``map_width``).
        batch_size (int, optional): :math:`B`.
        height (int, optional): :math:`H`.
        width (int, optional): :math:`W`.
    """
    x, batch_size, height, width = _inverse_args(x, batch_size, height, width,
                                                 "pixel_graph_to_map")
    num_nodes, channels = x.shape
    if num_nodes != batch_size * height * width:
        raise ValueError(
            f"x must have {batch_size} * {height} * {width} = "
            f"{batch_size * height * width} rows (batch_size * height * width); "
            f"found {num_nodes}")
    return x.reshape(batch_size, height, width, channels).permute(0, 3, 1, 2)

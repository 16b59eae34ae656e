"""What the message-passing layers share about PyG's conventions: every adjacency
form PyG's own convs accept, turned into one edge list; attention weights handed
back in the form they came in; and when a layer must leave its own kernels for
:meth:`~torch_geometric.nn.conv.MessagePassing.propagate`.

Adjacency forms (as :class:`~torch_geometric.nn.conv.GATConv` takes them):

* an ``edge_index`` integer tensor :math:`(2, E)` (row 0 sources, row 1 targets)
  or a :class:`torch_geometric.EdgeIndex`;
* a torch sparse adjacency (COO, CSR or CSC layout) in PyG's *transposed*
  convention, ``adj_t[target, source]`` (so ``to_torch_csr_tensor(edge_index).t()``
  or ``to_torch_csc_tensor(edge_index).t()``);
* a :class:`torch_sparse.SparseTensor` ``adj_t`` where that package is installed
  (:class:`torch_geometric.typing.SparseTensor` stands in for it otherwise, and no
  object is an instance of the stand-in).

The layers use the *structure* of a sparse adjacency only: its values are not
edge weights (as in GATConv), each layer weights its edges itself.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor, to_edge_index
from torch_geometric.utils.sparse import set_sparse_value

Adjacency = Union[Tensor, SparseTensor]

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_ACCEPTED = ("edge_index must be a [2, E] integer tensor (or an EdgeIndex, a torch sparse "
             "adj_t [N, N] or a SparseTensor adj_t)")

# MessagePassing's hook tables: a hook on any of them watches propagate.
_HOOK_TABLES = ("_propagate_forward_pre_hooks", "_propagate_forward_hooks",
                "_message_forward_pre_hooks", "_message_forward_hooks",
                "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
                "_edge_update_forward_pre_hooks", "_edge_update_forward_hooks")


def as_edge_index(adjacency: Adjacency, num_nodes: int, layer: str) -> Tensor:
    """The ``(2, E)`` edge list (sources, targets) of any accepted adjacency form
    over :obj:`num_nodes` nodes. An ``edge_index`` tensor / ``EdgeIndex`` comes back
    as it is; a sparse adjacency gives its stored entries in storage order (an
    uncoalesced COO tensor is coalesced first, on a copy: a repeated entry is one
    edge)."""
    if isinstance(adjacency, SparseTensor):
        _check_square((adjacency.size(0), adjacency.size(1)), num_nodes, layer, "SparseTensor")
        target, source, _ = adjacency.coo()
        return torch.stack([source, target]).long()
    if is_torch_sparse_tensor(adjacency):
        form = f"torch sparse ({adjacency.layout})"
        if adjacency.sparse_dim() != 2:
            raise ValueError(f"{layer}: a {form} adjacency must have 2 sparse dims "
                             f"(adj_t[target, source]); found {adjacency.sparse_dim()}")
        _check_square(tuple(adjacency.shape[:2]), num_nodes, layer, form)
        if adjacency.layout == torch.sparse_coo and not adjacency.is_coalesced():
            adjacency = adjacency.coalesce()
        (target, source), _ = to_edge_index(adjacency)  # rows of adj_t are the targets
        return torch.stack([source, target])
    if not isinstance(adjacency, Tensor) or adjacency.dim() != 2 or adjacency.size(0) != 2:
        found = (tuple(adjacency.shape) if isinstance(adjacency, Tensor)
                 else type(adjacency).__name__)
        raise ValueError(f"{layer}: {_ACCEPTED}; found {found}")
    if adjacency.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{layer}: edge_index must hold integer node ids; found dtype "
                         f"{adjacency.dtype}")
    return adjacency


def _check_square(size: tuple, num_nodes: int, layer: str, form: str) -> None:
    if size != (num_nodes, num_nodes):
        raise ValueError(
            f"{layer}: a {form} adjacency must be adj_t of size [{num_nodes}, {num_nodes}] "
            f"(target, source; {num_nodes} nodes in x); found size {list(size)}")


def coalesced(adjacency: Adjacency) -> Adjacency:
    """The adjacency :func:`as_edge_index` read its edges from (an uncoalesced COO
    tensor is coalesced), so that weights in that edge order fit it."""
    if (is_torch_sparse_tensor(adjacency) and adjacency.layout == torch.sparse_coo
            and not adjacency.is_coalesced()):
        return adjacency.coalesce()
    return adjacency


def weights_in_input_form(adjacency: Adjacency, weights: Tensor):
    """Per-edge weights :math:`(E, \\ldots)` (in :func:`as_edge_index`'s edge order)
    returned as GATConv returns its attention weights: ``(edge_index, weights)`` for
    an edge list, ``(adj_t with the weights as values, weights)`` for a torch sparse
    adjacency, a ``SparseTensor`` with the weights as values for a SparseTensor."""
    if isinstance(adjacency, SparseTensor):
        return adjacency.set_value(weights, layout="coo")
    if is_torch_sparse_tensor(adjacency):
        return set_sparse_value(coalesced(adjacency), weights), weights
    return adjacency, weights


def must_propagate(layer) -> bool:
    """True while PyG explains :obj:`layer` (``explain=True``: the
    :class:`~torch_geometric.explain.Explainer` sets an edge mask) or a hook watches
    its message passing (e.g. :class:`~torch_geometric.explain.algorithm.AttentionExplainer`'s
    message hooks). Only :meth:`propagate` applies edge masks and calls hooks, so a
    layer takes that path then, whatever faster path it would take otherwise."""
    if layer.explain:
        return True
    return any(getattr(layer, table) for table in _HOOK_TABLES)

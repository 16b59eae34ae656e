"""The adjacency forms PyG's own convs accept, built from one edge list, for the
layer tests (as PyG's test_gat_conv.py passes ``edge_index``, ``adj.t()`` ...).

``torch_sparse`` is not installed here; where it is missing, ``SparseTensor`` is a
small stand-in with the part of ``torch_sparse.SparseTensor``'s API the layers
call (``coo()``, ``size(dim)``, ``set_value(value, layout="coo")``), a subclass of
PyG's placeholder ``torch_geometric.typing.SparseTensor`` so that the layers see
it exactly as they would see the real class.
"""
import torch
import torch_geometric.typing
from torch_geometric import EdgeIndex
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor, to_torch_csr_tensor

FORMS = ("edge_index", "EdgeIndex", "coo", "csr", "csc", "SparseTensor")


class StandInSparseTensor(torch_geometric.typing.SparseTensor):
    """``adj_t`` with rows = targets, columns = sources, values per stored entry."""

    def __init__(self, row, col, value, sparse_sizes):
        self.row, self.col, self.value, self.sparse_sizes = row, col, value, sparse_sizes

    def coo(self):
        return self.row, self.col, self.value

    def size(self, dim):
        return self.sparse_sizes[dim]

    def set_value(self, value, layout=None):
        assert layout == "coo" and value.size(0) == self.row.numel()
        return StandInSparseTensor(self.row, self.col, value, self.sparse_sizes)

    def to_dense(self):
        shape = tuple(self.sparse_sizes) + tuple(self.value.shape[1:])
        return self.value.new_zeros(shape).index_put_((self.row, self.col), self.value,
                                                      accumulate=True)


def adjacency(form: str, edge_index, num_nodes: int):
    """:obj:`edge_index` (sources, targets) in :obj:`form`; the sparse forms are
    PyG's transposed ``adj_t[target, source]``, stored in an order other than the
    edge list's (sorted by target or by source)."""
    size = (num_nodes, num_nodes)
    if form == "edge_index":
        return edge_index
    if form == "EdgeIndex":
        return EdgeIndex(edge_index, sparse_size=size)
    if form in ("coo", "csr", "csc"):
        # adj[source, target] transposed; the transpose of CSC is CSR and vice versa
        build = {"coo": to_torch_coo_tensor, "csr": to_torch_csc_tensor,
                 "csc": to_torch_csr_tensor}[form]
        adj_t = build(edge_index, size=size).t()
        assert adj_t.layout == getattr(torch, f"sparse_{form}")
        return adj_t
    if form == "SparseTensor":
        if torch_geometric.typing.WITH_TORCH_SPARSE:
            return torch_geometric.typing.SparseTensor.from_edge_index(
                edge_index, sparse_sizes=size).t()
        order = torch.argsort(edge_index[1] * num_nodes + edge_index[0])  # row-major
        source, target = edge_index[:, order]
        return StandInSparseTensor(target, source, torch.ones(order.numel()), size)
    raise ValueError(f"unknown adjacency form {form!r}")


def dense_weights(returned, num_nodes: int):
    """The attention weights a layer returned, in any form, as a dense
    ``[target, source, heads]`` array (each edge's weights at its position)."""
    if isinstance(returned, torch_geometric.typing.SparseTensor):  # (out, adj_t) form
        return returned.to_dense()
    edges, weights = returned
    if edges.layout != torch.strided:  # torch sparse adj_t with the weights as values
        assert weights.size(0) == edges.values().size(0)  # one row per stored entry
        return edges.to_dense()
    dense = weights.new_zeros((num_nodes, num_nodes) + tuple(weights.shape[1:]))
    return dense.index_put_((edges[1], edges[0]), weights, accumulate=True)

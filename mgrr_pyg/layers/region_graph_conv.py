"""The AU-region graph layer :math:`D_G` of MGRR-Net (paper Eq. 5)."""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor
from torch.nn import Linear, Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj

from ._adjacency import as_edge_index, must_propagate
from ._checks import check_dense_size, check_node_features

AdjacencyInit = Union[str, Tensor]


class RegionGraphConv(MessagePassing):
    r"""Region-graph convolution with a learnable AU relation matrix, from the
    `"MGRR-Net: Multi-level Graph Relational Reasoning Network for Facial Action
    Unit Detection" <https://arxiv.org/abs/2204.01349>`_ paper (Eq. 5).

    .. math::
        \bar{\mathbf{v}}_i = \mathbf{W}_s \mathbf{v}_i
            + \sum_{j \in \mathcal{N}(i)} A_{a(i), a(j)} \, \mathbf{W}_n \mathbf{v}_j
            + \mathbf{b} \qquad \text{(Eq. 5)}

    where :math:`a(i)` is node :math:`i`'s AU id (``au_index``) and
    :math:`\mathbf{A} \in \mathbb{R}^{n \times n}` is learned, initialised from the
    co-occurrence prior (Eq. 1-2), at random or as the identity. On the paper's
    complete graph :math:`D_G` the neighbourhood :math:`\mathcal{N}(i)` is every
    node of the graph, :math:`i` included (self loops). Weighting by AU ids, not
    node positions, makes the layer equivariant to permuting nodes together with
    their AU ids. The paper writes per-node maps :math:`\mathbf{W}_i,
    \mathbf{W}_j`; by default :math:`\mathbf{W}_s, \mathbf{W}_n` are shared over
    AUs, and ``per_au_weights=True`` gives each AU id its own pair
    (:math:`\mathbf{W}_{s,a(i)}` for the node itself,
    :math:`\mathbf{W}_{n,a(j)}` for the neighbour). On a graph without AU ids
    (``au_index=None``, every node id 0, ``num_aus=1``) it is a graph convolution
    with separate self and neighbour maps and one learned edge weight :math:`A_{00}`.

    Two paths compute this same function with the same parameters:
    :meth:`dense_neighbour_sum` when ``dense_size`` is given (a graph builder
    marked every graph of the batch complete with self loops and of that size): a
    batched matmul with :math:`\mathbf{A}` gathered per graph at the nodes' AU ids;
    otherwise :meth:`propagate_neighbour_sum`, :meth:`propagate` along the edges.
    While PyG explains the layer (the :class:`~torch_geometric.explain.Explainer`'s
    edge mask) or a hook watches its message passing, it always propagates, also on
    a complete graph: only :meth:`propagate` applies edge masks and calls hooks.

    Args:
        in_channels (int): Input feature size.
        out_channels (int): Output feature size.
        num_aus (int): Number of AU ids :math:`n` (size of :math:`\mathbf{A}`).
        adjacency_init (str or torch.Tensor, optional): ``"identity"``,
            ``"random"`` (uniform in :math:`[0, 1)`) or an :math:`(n, n)` prior
            (row :math:`i` receives from column :math:`j`).
            (default: :obj:`"identity"`)
        per_au_weights (bool, optional): One :math:`\mathbf{W}_s, \mathbf{W}_n`
            pair per AU id. (default: :obj:`False`)
        bias (bool, optional): Learn the additive bias :math:`\mathbf{b}`.
            (default: :obj:`True`)
        **kwargs (optional): Passed to
            :class:`torch_geometric.nn.conv.MessagePassing` (``aggr`` is ``"add"``).

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)` (an ``edge_index`` tensor or an
          :class:`~torch_geometric.EdgeIndex`) or a sparse adjacency
          ``adj_t`` :math:`(|\mathcal{V}|, |\mathcal{V}|)` (torch sparse COO / CSR /
          CSC or :class:`torch_sparse.SparseTensor`; ``adj_t[target, source]``, its
          values unused: :math:`\mathbf{A}` weights the edges),
          AU ids :math:`(|\mathcal{V}|,)` or :obj:`None`, ``dense_size`` int or
          :obj:`None`
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, num_aus: int,
                 adjacency_init: AdjacencyInit = "identity", per_au_weights: bool = False,
                 bias: bool = True, **kwargs):
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_aus = num_aus
        self.per_au_weights = per_au_weights

        if per_au_weights:
            # [n_aus, in, out]: W_s / W_n of each AU id.
            self.weight_self = Parameter(torch.empty(num_aus, in_channels, out_channels))
            self.weight_neighbour = Parameter(torch.empty(num_aus, in_channels, out_channels))
        else:
            self.lin_self = Linear(in_channels, out_channels, bias=False)
            self.lin_neighbour = Linear(in_channels, out_channels, bias=False)
        self.bias = Parameter(torch.empty(out_channels)) if bias else None
        self.adjacency = Parameter(torch.empty(num_aus, num_aus))
        self.register_buffer("initial_adjacency", None, persistent=False)
        self._adjacency_init = "identity"
        self.set_adjacency(adjacency_init)
        self.reset_parameters()

    def set_adjacency(self, init: AdjacencyInit) -> None:
        r"""(Re)initialises :math:`\mathbf{A}` from ``"identity"``, ``"random"``
        or an :math:`(n, n)` prior, and remembers the choice for
        :meth:`reset_parameters`."""
        if isinstance(init, str):
            if init not in ("identity", "random"):
                raise ValueError("adjacency_init must be 'identity', 'random' or an "
                                 f"[{self.num_aus}, {self.num_aus}] tensor; found {init!r}")
            self.initial_adjacency = None
        else:
            prior = torch.as_tensor(init)
            if prior.shape != (self.num_aus, self.num_aus):
                raise ValueError(
                    f"adjacency_init must be a square [{self.num_aus}, {self.num_aus}] "
                    f"matrix (num_aus={self.num_aus}); found shape {tuple(prior.shape)}")
            self.initial_adjacency = prior.detach().to(self.adjacency.device,
                                                       self.adjacency.dtype).clone()
            init = "prior"
        self._adjacency_init = init
        self._reset_adjacency()

    @torch.no_grad()
    def _reset_adjacency(self) -> None:
        if self._adjacency_init == "identity":
            self.adjacency.copy_(torch.eye(self.num_aus))
        elif self._adjacency_init == "random":
            self.adjacency.uniform_(0.0, 1.0)
        else:
            self.adjacency.copy_(self.initial_adjacency)

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        super().reset_parameters()
        if self.per_au_weights:
            bound = 1.0 / math.sqrt(self.in_channels)  # as torch.nn.Linear
            torch.nn.init.uniform_(self.weight_self, -bound, bound)
            torch.nn.init.uniform_(self.weight_neighbour, -bound, bound)
        else:
            self.lin_self.reset_parameters()
            self.lin_neighbour.reset_parameters()
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)
        self._reset_adjacency()

    def _project(self, x: Tensor, au_index: Tensor, which: str) -> Tensor:
        """W_s x or W_n x; with per-AU maps each node uses its AU id's map."""
        if not self.per_au_weights:
            return (self.lin_self if which == "self" else self.lin_neighbour)(x)
        weight = self.weight_self if which == "self" else self.weight_neighbour
        # One matmul against all AUs' maps, then pick each node's: n_aus is small.
        every_au = x @ weight.permute(1, 0, 2).reshape(self.in_channels, -1)  # [N, n*out]
        every_au = every_au.view(x.size(0), self.num_aus, self.out_channels)
        index = au_index.view(-1, 1, 1).expand(-1, 1, self.out_channels)
        return every_au.gather(1, index).squeeze(1)  # [N, out]

    def forward(self, x: Tensor, edge_index: Adj, au_index: Optional[Tensor] = None,
                dense_size: Optional[int] = None) -> Tensor:
        r"""Runs the layer.

        Args:
            x (torch.Tensor): Node features :math:`(N, F_{in})`.
            edge_index (torch.Tensor or EdgeIndex or SparseTensor): Edges
                :math:`(2, E)` (source, target), or the sparse ``adj_t``
                :math:`(N, N)` (target, source).
            au_index (torch.Tensor, optional): Each node's AU id in :math:`[0, n)`,
                :math:`(N,)`; :obj:`None` gives every node AU id 0 (one relation
                type, for graphs without AU ids). (default: :obj:`None`)
            dense_size (int, optional): Nodes per graph when every graph is complete
                with self loops and of that size, graph :math:`g` holding nodes
                :math:`[g n, (g+1) n)` as in a PyG batch: take the dense path.
                (default: :obj:`None`)
        """
        name = type(self).__name__
        check_node_features(x, self.in_channels, name)
        edges = as_edge_index(edge_index, x.size(0), name)  # [2, E] (source, target)
        if au_index is None:
            au_index = x.new_zeros(x.size(0), dtype=torch.long)
        elif not isinstance(au_index, Tensor) or au_index.shape != (x.size(0),):
            found = (tuple(au_index.shape) if isinstance(au_index, Tensor)
                     else type(au_index).__name__)
            raise ValueError(f"{name}: au_index must have shape [{x.size(0)}] (one AU id per "
                             f"node of x); found {found}")
        check_dense_size(dense_size, x.size(0), name)

        x_self = self._project(x, au_index, "self")  # [N, out]
        x_neighbour = self._project(x, au_index, "neighbour")  # [N, out]
        if dense_size is not None and not must_propagate(self):
            out = x_self + self.dense_neighbour_sum(x_neighbour, au_index, dense_size)
        else:
            out = x_self + self.propagate_neighbour_sum(x_neighbour, au_index, edges)
        if self.bias is not None:
            out = out + self.bias
        return out

    def dense_neighbour_sum(self, x_neighbour: Tensor, au_index: Tensor,
                            graph_size: int) -> Tensor:
        r"""The dense path, every graph complete with self loops, of
        :obj:`graph_size` nodes: :math:`\sum_j A_{a(i), a(j)} \mathbf{W}_n
        \mathbf{v}_j` as a batched matmul with :math:`\mathbf{A}` gathered per graph
        at the nodes' AU ids. :math:`(N, F_{out})`."""
        num_graphs = x_neighbour.size(0) // graph_size
        au = au_index.view(num_graphs, graph_size)  # [B, n]
        adjacency = self.adjacency[au.unsqueeze(2), au.unsqueeze(1)]  # [B, n, n]
        aggregated = adjacency @ x_neighbour.view(num_graphs, graph_size, -1)
        return aggregated.view_as(x_neighbour)

    def propagate_neighbour_sum(self, x_neighbour: Tensor, au_index: Tensor,
                                edge_index: Tensor) -> Tensor:
        r"""The message-passing path: :meth:`propagate` along :obj:`edge_index`, each
        message weighted by :math:`A_{a(i), a(j)}` (edge masks, hooks and
        ``decomposed_layers`` apply). :math:`(N, F_{out})`."""
        source, target = edge_index
        edge_weight = self.adjacency[au_index[target], au_index[source]]  # [E]
        num_nodes = x_neighbour.size(0)
        return self.propagate(edge_index, x=x_neighbour, edge_weight=edge_weight,
                              size=(num_nodes, num_nodes))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_aus={self.num_aus})")

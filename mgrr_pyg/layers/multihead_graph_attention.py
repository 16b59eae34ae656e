"""Multi-head scaled dot-product graph attention of MGRR-Net (paper Eq. 3-4),
used for the channel graph (:math:`C_G`) and the pixel graph (:math:`P_G`)."""
from __future__ import annotations

import math
import warnings
from typing import Literal, Optional, Tuple, Union, overload

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, SparseTensor
from torch_geometric.utils import softmax

from ._adjacency import as_edge_index, must_propagate, weights_in_input_form
from ._block_mask import MIN_EDGES, BlockMask, block_mask, worth_masking
from ._checks import check_dense_size, check_node_features
from ._edge_kernels import edge_dot, gather_weighted_sum


class MultiHeadGraphAttention(MessagePassing):
    r"""Multi-head scaled dot-product attention over each node's neighbourhood,
    from the `"MGRR-Net: Multi-level Graph Relational Reasoning Network for Facial
    Action Unit Detection" <https://arxiv.org/abs/2204.01349>`_ paper (Eq. 3-4).

    .. math::
        \alpha^{l}_{ij} = \operatorname{softmax}_{j \in \Omega_i}\left(
            \frac{(\mathbf{U}^{l}_q \mathbf{x}_i)^\top (\mathbf{U}^{l}_k \mathbf{x}_j)}
                 {\sqrt{d}}\right) \qquad \text{(Eq. 3)}

    .. math::
        \bar{\mathbf{x}}_i = \operatorname{ReLU}\left(\mathbf{U}_c
            \mathop{\Big\Vert}_{l=1}^{L} \sum_{j \in \Omega_i}
            \alpha^{l}_{ij} \, \mathbf{U}^{l}_v \mathbf{x}_j \right)
            \qquad \text{(Eq. 4)}

    with :math:`L` heads of width :math:`d = D / L` (the query, key and value
    projections map to :math:`D` = ``embed_dim``, split into heads) and
    :math:`\Omega_i` the sources of the edges into :math:`i`. The paper's Eq. 4
    writes :math:`\alpha \cdot C_i`; we read it as the standard weighted sum of the
    neighbours' values.

    Four paths compute this same function with the same parameters; each call
    takes one (:meth:`attention_path` says which):

    * :meth:`dense_attention`, when ``dense_size`` is given (a graph builder marked
      every graph of the batch complete with self loops and of that size):
      :func:`torch.nn.functional.scaled_dot_product_attention` per graph;
    * :meth:`masked_attention`, for a sparse graph (a k-hop grid, kNN, a thresholded
      prior, any edge list) whose edges stay inside equal-sized graphs of the batch
      (graph :math:`g` holding nodes :math:`[g n, (g+1) n)`) and repeat no edge: the
      same SDPA under a boolean :math:`(B, n, n)` mask read off the edges, built once
      per edge tensor and cached. With ``masked="auto"`` (the default) it is taken
      when the mask is worth it: at least 1,024 edges and at most 8 mask entries
      :math:`B n^2` per edge on CPU, 64 elsewhere (``_block_mask.worth_masking``;
      on CPU the edge kernels are faster on sparser graphs, such as the 22x22 pixel
      graph's 3x3 grid, 57 entries per edge; a 9x9 grid there has 7.4);
      ``masked=True`` takes it whenever the edges fit, ``False`` never. Eager only
      (finding the blocks reads the edges on the host): compiled, the layer takes the
      path it would take without it;
    * :meth:`edge_kernel_attention` (``edge_kernels=True``, the default otherwise):
      message passing with chunked edge kernels (gather, product and scatter in
      cache-sized chunks, with a matching hand-written backward) that compute what
      :meth:`propagate` computes without materialising :math:`(E, L, d)` tensors.
      Eager only: under :func:`torch.compile` the layer propagates instead, which
      inductor fuses into kernels of its own (faster to compile, and faster and
      leaner when run than the traced chunk loops);
    * :meth:`propagate_attention`: plain :meth:`propagate` with
      :meth:`edge_update` (the sparse softmax,
      :func:`torch_geometric.utils.softmax`) and :meth:`message`, for
      ``edge_kernels=False``, and always while PyG explains the layer or a hook
      watches its message passing: only :meth:`propagate` applies the
      :class:`~torch_geometric.explain.Explainer`'s edge mask and calls hooks. So
      explaining a complete graph masks the edges of its ``edge_index`` (the dense
      path has no edges to mask); the output is the same, only slower. Feature
      decomposition (``decomposed_layers``) applies on this path.

    Args:
        in_channels (int): Input feature size (:math:`HW` for the channel graph,
            :math:`C` for the pixel graph).
        out_channels (int, optional): Output feature size (:math:`\mathbf{U}_c`
            maps :math:`D` to it). (default: :obj:`in_channels`)
        embed_dim (int, optional): :math:`D`. (default: :obj:`1024`)
        heads (int, optional): :math:`L`; must divide :obj:`embed_dim`.
            (default: :obj:`8`)
        bias (bool, optional): Biases in the four linear maps. (default: :obj:`True`)
        edge_kernels (bool, optional): Use the chunked edge kernels on the
            message-passing path. (default: :obj:`True`)
        masked (bool or str, optional): The masked path for sparse graphs:
            ``"auto"`` where it pays (see above), :obj:`True` wherever the edges fit
            equal graphs, :obj:`False` never. (default: :obj:`"auto"`)
        fused (bool, optional): Deprecated name of :obj:`edge_kernels` (PyG's
            ``fuse`` means ``message_and_aggregate``). (default: :obj:`None`)
        **kwargs (optional): Passed to
            :class:`torch_geometric.nn.conv.MessagePassing` (``aggr`` is ``"add"``).

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)` (an ``edge_index`` tensor or an
          :class:`~torch_geometric.EdgeIndex`) or a sparse adjacency
          ``adj_t`` :math:`(|\mathcal{V}|, |\mathcal{V}|)` (torch sparse COO / CSR /
          CSC or :class:`torch_sparse.SparseTensor`; ``adj_t[target, source]``, its
          values unused), ``dense_size`` int or :obj:`None`
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`, or with
          ``return_attention_weights=True`` a tuple
          :math:`((|\mathcal{V}|, F_{out}), ((2, |\mathcal{E}|), (|\mathcal{E}|, L)))`
          (for a torch sparse ``adj_t``: ``adj_t`` with the weights as values, then
          the weights; for a ``SparseTensor``: ``(out, adj_t)`` with the weights as
          values), the weights in the order of the given edges on every path
    """

    def __init__(self, in_channels: int, out_channels: Optional[int] = None,
                 embed_dim: int = 1024, heads: int = 8, bias: bool = True,
                 edge_kernels: bool = True, fused: Optional[bool] = None,
                 masked: Union[bool, str] = "auto", **kwargs):
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        if heads < 1 or embed_dim % heads:
            raise ValueError(f"heads must be >= 1 and divide embed_dim={embed_dim}; "
                             f"found heads={heads}")
        if fused is not None:
            _warn_fused()
            edge_kernels = fused
        if masked not in (True, False, "auto"):
            raise ValueError(f"masked must be 'auto', True or False; found {masked!r}")
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.embed_dim = embed_dim
        self.heads = heads
        self.head_dim = embed_dim // heads
        self.edge_kernels = bool(edge_kernels)
        self.masked = masked
        self.lin_query = Linear(in_channels, embed_dim, bias=bias)  # U_q
        self.lin_key = Linear(in_channels, embed_dim, bias=bias)  # U_k
        self.lin_value = Linear(in_channels, embed_dim, bias=bias)  # value map
        self.lin_out = Linear(embed_dim, self.out_channels, bias=bias)  # U_c
        self.reset_parameters()

    @property
    def fused(self) -> bool:
        """Deprecated name of :attr:`edge_kernels`."""
        _warn_fused()
        return self.edge_kernels

    @fused.setter
    def fused(self, value: bool) -> None:
        _warn_fused()
        self.edge_kernels = bool(value)

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_out):
            lin.reset_parameters()

    @overload
    def forward(self, x: Tensor, edge_index: Adj, dense_size: Optional[int] = ...,
                return_attention_weights: Optional[Literal[False]] = ...) -> Tensor:
        ...

    @overload
    def forward(self, x: Tensor, edge_index: Tensor, dense_size: Optional[int] = ...,
                return_attention_weights: Literal[True] = ...
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        ...

    @overload
    def forward(self, x: Tensor, edge_index: SparseTensor, dense_size: Optional[int] = ...,
                return_attention_weights: Literal[True] = ...
                ) -> Tuple[Tensor, SparseTensor]:
        ...

    def forward(self, x: Tensor, edge_index: Adj, dense_size: Optional[int] = None,
                return_attention_weights: Optional[bool] = None):
        r"""Runs the layer.

        Args:
            x (torch.Tensor): Node features :math:`(N, F_{in})`.
            edge_index (torch.Tensor or EdgeIndex or SparseTensor): Edges
                :math:`(2, E)` (source, target), or the sparse ``adj_t``
                :math:`(N, N)` (target, source).
            dense_size (int, optional): Nodes per graph when every graph is complete
                with self loops and of that size, graph :math:`g` holding nodes
                :math:`[g n, (g+1) n)` as in a PyG batch: take the dense path.
                (default: :obj:`None`)
            return_attention_weights (bool, optional): Also return the attention
                weights :math:`(E, L)` with their edges, in the form of
                :obj:`edge_index` (see Shapes). (default: :obj:`None`)
        """
        name = type(self).__name__
        check_node_features(x, self.in_channels, name)
        edges = as_edge_index(edge_index, x.size(0), name)  # [2, E] (source, target)
        check_dense_size(dense_size, x.size(0), name)
        shape = (x.size(0), self.heads, self.head_dim)
        query = self.lin_query(x).view(shape)  # [N, L, d]
        key = self.lin_key(x).view(shape)
        value = self.lin_value(x).view(shape)

        path, mask = self._choose_path(edge_index, edges, x.size(0), dense_size)
        if path == "dense":
            out, alpha = self.dense_attention(query, key, value, dense_size, edges,
                                              bool(return_attention_weights))
        elif path == "masked":
            out, alpha = self.masked_attention(query, key, value, mask, edges,
                                               bool(return_attention_weights))
        elif path == "edge_kernels":
            out, alpha = self.edge_kernel_attention(query, key, value, edges)
        else:
            out, alpha = self.propagate_attention(query, key, value, edges)
        out = F.relu(self.lin_out(out.reshape(x.size(0), self.embed_dim)))  # [N, F_out]

        if return_attention_weights:
            return out, weights_in_input_form(edge_index, alpha)
        return out

    def attention_path(self, edge_index: Adj, num_nodes: int,
                       dense_size: Optional[int] = None) -> str:
        """The path a forward on these arguments takes: ``"dense"``, ``"masked"``,
        ``"edge_kernels"`` or ``"propagate"`` (builds and caches the mask when the
        masked path is considered)."""
        edges = as_edge_index(edge_index, num_nodes, type(self).__name__)
        return self._choose_path(edge_index, edges, num_nodes, dense_size)[0]

    def _choose_path(self, adjacency: Adj, edges: Tensor, num_nodes: int,
                     dense_size: Optional[int]) -> Tuple[str, Optional[BlockMask]]:
        if must_propagate(self):
            return "propagate", None
        if dense_size is not None:
            return "dense", None
        compiling = torch.compiler.is_compiling()
        # The block structure is read on the host (a sync, once per edge tensor);
        # "auto" skips that for edge lists too small to gain from it.
        if self.masked and not compiling and (self.masked is True
                                              or edges.size(1) >= MIN_EDGES):
            mask = block_mask(edges, num_nodes, adjacency)
            if mask is not None and (self.masked is True
                                     or worth_masking(edges.size(1), mask)):
                return "masked", mask
        if self.edge_kernels and not compiling:
            # Compiled, plain propagate wins: inductor fuses its gather, product and
            # scatter, while tracing the kernels unrolls their chunk loops (slower to
            # compile, slower and larger when run: bench/bench_layers.py, compile cases).
            return "edge_kernels", None
        return "propagate", None

    def dense_attention(self, query: Tensor, key: Tensor, value: Tensor, graph_size: int,
                        edge_index: Tensor, need_weights: bool
                        ) -> Tuple[Tensor, Optional[Tensor]]:
        r"""The dense path: every graph complete with self loops, of
        :obj:`graph_size` nodes. Returns the aggregated values :math:`(N, L, d)`
        and, with :obj:`need_weights`, :math:`\alpha` :math:`(E, L)` read off at
        :obj:`edge_index` (else :obj:`None`)."""
        return self._attend_in_blocks(query, key, value, graph_size, edge_index,
                                      need_weights)

    def masked_attention(self, query: Tensor, key: Tensor, value: Tensor, mask: BlockMask,
                         edge_index: Tensor, need_weights: bool
                         ) -> Tuple[Tensor, Optional[Tensor]]:
        r"""The masked path: the dense path's attention per graph of
        ``mask.graph_size`` nodes, each node attending to the sources of its edges
        only (``mask.allowed``); a node without incoming edges aggregates nothing.
        Returns what :meth:`dense_attention` returns."""
        return self._attend_in_blocks(query, key, value, mask.graph_size, edge_index,
                                      need_weights, mask)

    def _attend_in_blocks(self, query: Tensor, key: Tensor, value: Tensor, graph_size: int,
                          edge_index: Tensor, need_weights: bool,
                          mask: Optional[BlockMask] = None
                          ) -> Tuple[Tensor, Optional[Tensor]]:
        allowed = None if mask is None else mask.allowed  # [B, 1, n, n], over heads
        num_graphs = query.size(0) // graph_size
        # [N, L, d] -> [B, L, n, d]
        query, key, value = (t.view(num_graphs, graph_size, self.heads, self.head_dim)
                             .transpose(1, 2) for t in (query, key, value))
        alpha = None
        if need_weights:
            # SDPA gives no weights: the same attention with an explicit softmax.
            scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, L, n, n]
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            attention = scores.softmax(dim=-1)  # rows: targets i, columns: sources j
            out = attention @ value
            source, target = edge_index
            alpha = attention[target // graph_size, :, target % graph_size,
                              source % graph_size]  # [E, L]
        else:  # scale 1/sqrt(d); a boolean mask: True where attention may go
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
        if mask is not None and mask.isolated is not None:
            out = out.masked_fill(mask.isolated, 0.0)  # no incoming edge: nothing
        return out.transpose(1, 2).reshape(-1, self.heads, self.head_dim), alpha

    def edge_kernel_attention(self, query: Tensor, key: Tensor, value: Tensor,
                              edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Message passing along :obj:`edge_index` with the chunked edge kernels.
        Returns the aggregated values :math:`(N, L, d)` and :math:`\alpha`
        :math:`(E, L)`."""
        source, target = edge_index
        num_nodes = query.size(0)
        score = edge_dot(query, key, target, source) / math.sqrt(self.head_dim)  # [E, L]
        alpha = softmax(score, target, num_nodes=num_nodes)
        return gather_weighted_sum(value, alpha, source, target, num_nodes), alpha

    def propagate_attention(self, query: Tensor, key: Tensor, value: Tensor,
                            edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Message passing along :obj:`edge_index` with :meth:`propagate` (edge
        masks, hooks and ``decomposed_layers`` apply). Returns the aggregated
        values :math:`(N, L, d)` and :math:`\alpha` :math:`(E, L)`."""
        num_nodes = query.size(0)
        alpha = self.edge_updater(edge_index, query=query, key=key)  # [E, L]
        out = self.propagate(edge_index, value=value, alpha=alpha,
                             size=(num_nodes, num_nodes))  # [N, L, d]
        return out, alpha

    def edge_update(self, query_i: Tensor, key_j: Tensor, index: Tensor,
                    ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        score = (query_i * key_j).sum(dim=-1) / math.sqrt(self.head_dim)  # [E, L]
        return softmax(score, index, ptr, size_i)

    def message(self, value_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * value_j

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads})")


def _warn_fused() -> None:
    warnings.warn("MultiHeadGraphAttention's 'fused' is deprecated: use 'edge_kernels' "
                  "(in PyG, 'fuse' means message_and_aggregate)", DeprecationWarning,
                  stacklevel=3)

"""Multi-head scaled dot-product graph attention of MGRR-Net (paper Eq. 3-4),
used for the channel graph (:math:`C_G`) and the pixel graph (:math:`P_G`)."""
from __future__ import annotations

import math
from typing import Optional

import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from ._checks import check_dense_size, check_edge_index_shape, check_node_features
from ._fused import edge_dot, gather_weighted_sum


class MultiHeadGraphAttention(MessagePassing):
    r"""Multi-head scaled dot-product attention over each node's neighbourhood
    (Eq. 3-4).

    .. math::
        \alpha^{l}_{ij} = \operatorname{softmax}_{j \in \Omega_i}\left(
            \frac{(\mathbf{U}^{l}_q \mathbf{x}_i)^\top (\mathbf{U}^{l}_k \mathbf{x}_j)}
                 {\sqrt{d}}\right),
        \qquad
        \bar{\mathbf{x}}_i = \operatorname{ReLU}\left(\mathbf{U}_c
            \mathop{\Big\Vert}_{l=1}^{L} \sum_{j \in \Omega_i}
            \alpha^{l}_{ij} \, \mathbf{U}^{l}_v \mathbf{x}_j \right)

    with :math:`L` heads of width :math:`d = D / L` (the query, key and value
    projections map to :math:`D` = ``embed_dim``, split into heads) and
    :math:`\Omega_i` the sources of the edges into :math:`i`. The paper's Eq. 4
    writes :math:`\alpha \cdot C_i`; we read it as the standard weighted sum of the
    neighbours' values.

    When ``dense_size`` is given (every graph in the batch complete with self loops
    and of that size) the layer takes an exact dense path,
    :func:`torch.nn.functional.scaled_dot_product_attention` per graph; otherwise
    it propagates along ``edge_index`` with a sparse softmax
    (:func:`torch_geometric.utils.softmax`). Both use the same parameters.
    By default the message-passing path runs fused edge kernels (gather, product
    and scatter in cache-sized chunks, with a matching hand-written backward) that
    compute exactly what :meth:`propagate` with :meth:`edge_update` and
    :meth:`message` computes without materialising :math:`(E, L, d)` tensors;
    ``fused=False`` runs plain :meth:`propagate`.

    Args:
        in_channels (int): Input feature size (:math:`HW` for the channel graph,
            :math:`C` for the pixel graph).
        out_channels (int, optional): Output feature size (:math:`\mathbf{U}_c`
            maps :math:`D` to it). (default: :obj:`in_channels`)
        embed_dim (int, optional): :math:`D`. (default: :obj:`1024`)
        heads (int, optional): :math:`L`; must divide :obj:`embed_dim`.
            (default: :obj:`8`)
        bias (bool, optional): Biases in the four linear maps. (default: :obj:`True`)
        fused (bool, optional): Use the fused edge kernels on the
            message-passing path. (default: :obj:`True`)
        **kwargs (optional): Passed to
            :class:`torch_geometric.nn.conv.MessagePassing` (``aggr`` is ``"add"``).

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, edge indices
          :math:`(2, E)`, ``dense_size`` int or None
        - **output:** node features :math:`(N, F_{out})`, or with
          ``return_attention_weights=True`` a tuple
          :math:`((N, F_{out}), ((2, E), (E, L)))`
    """

    def __init__(self, in_channels: int, out_channels: Optional[int] = None,
                 embed_dim: int = 1024, heads: int = 8, bias: bool = True,
                 fused: bool = True, **kwargs):
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        if heads < 1 or embed_dim % heads:
            raise ValueError(f"heads must be >= 1 and divide embed_dim={embed_dim}; "
                             f"found heads={heads}")
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.embed_dim = embed_dim
        self.heads = heads
        self.head_dim = embed_dim // heads
        self.fused = fused
        self.lin_query = Linear(in_channels, embed_dim, bias=bias)  # U_q
        self.lin_key = Linear(in_channels, embed_dim, bias=bias)  # U_k
        self.lin_value = Linear(in_channels, embed_dim, bias=bias)  # value map
        self.lin_out = Linear(embed_dim, self.out_channels, bias=bias)  # U_c
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_out):
            lin.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, dense_size: Optional[int] = None,
                return_attention_weights: Optional[bool] = None):
        r"""Runs the layer.

        Args:
            x (torch.Tensor): Node features :math:`(N, F_{in})`.
            edge_index (torch.Tensor): Edges :math:`(2, E)` (source, target).
            dense_size (int, optional): Nodes per graph when every graph is complete
                with self loops and of that size, graph :math:`g` holding nodes
                :math:`[g n, (g+1) n)` as in a PyG batch: take the dense path.
                (default: :obj:`None`)
            return_attention_weights (bool, optional): Also return
                ``(edge_index, alpha)`` with ``alpha`` :math:`(E, L)` in the order of
                ``edge_index`` (on the dense path too). (default: :obj:`None`)
        """
        name = type(self).__name__
        check_node_features(x, self.in_channels, name)
        check_edge_index_shape(edge_index, name)
        num_graphs = check_dense_size(dense_size, x.size(0), name)
        num_nodes, heads, head_dim = x.size(0), self.heads, self.head_dim

        query = self.lin_query(x).view(num_nodes, heads, head_dim)  # [N, L, d]
        key = self.lin_key(x).view(num_nodes, heads, head_dim)
        value = self.lin_value(x).view(num_nodes, heads, head_dim)

        alpha = None
        if num_graphs is not None:
            out, alpha = self._dense_attention(query, key, value, num_graphs, dense_size,
                                               edge_index, bool(return_attention_weights))
        elif self.fused:
            source, target = edge_index
            score = edge_dot(query, key, target, source) / math.sqrt(head_dim)  # [E, L]
            alpha = softmax(score, target, num_nodes=num_nodes)
            out = gather_weighted_sum(value, alpha, source, target, num_nodes)  # [N, L, d]
        else:
            alpha = self.edge_updater(edge_index, query=query, key=key)  # [E, L]
            out = self.propagate(edge_index, value=value, alpha=alpha,
                                 size=(num_nodes, num_nodes))  # [N, L, d]
        out = F.relu(self.lin_out(out.reshape(num_nodes, self.embed_dim)))  # [N, out]

        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def _dense_attention(self, query: Tensor, key: Tensor, value: Tensor, num_graphs: int,
                         size: int, edge_index: Tensor, weights: bool):
        # [N, L, d] -> [B, L, n, d]
        query, key, value = (t.view(num_graphs, size, self.heads, self.head_dim)
                             .transpose(1, 2) for t in (query, key, value))
        if not weights:
            out = F.scaled_dot_product_attention(query, key, value)  # scale 1/sqrt(d)
            return out.transpose(1, 2), None
        # SDPA gives no weights: the same attention with an explicit softmax.
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, L, n, n]
        attention = scores.softmax(dim=-1)  # rows: targets i, columns: sources j
        out = attention @ value
        source, target = edge_index
        alpha = attention[target // size, :, target % size, source % size]  # [E, L]
        return out.transpose(1, 2), alpha

    def edge_update(self, query_i: Tensor, key_j: Tensor, index: Tensor,
                    ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        score = (query_i * key_j).sum(dim=-1) / math.sqrt(self.head_dim)  # [E, L]
        return softmax(score, index, ptr, size_i)

    def message(self, value_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * value_j

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads})")

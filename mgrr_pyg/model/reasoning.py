r"""One multi-level relational reasoning layer of MGRR-Net (paper section 3.3-3.4,
Eq. 3-8) and its parts: the channel and pixel graph-attention branches (:math:`C_G`,
:math:`P_G`), the per-AU pooling of the gated map :math:`G^k`, and the layer itself.

Graphs are explicit PyG graphs built by :mod:`mgrr_pyg.graphs`; on the hot path the
layers get plain tensors from the cached :func:`~mgrr_pyg.graphs.graph_structure` and
``dense_size`` for complete graphs, so the layers take their exact dense path.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

# (knn_edges, the kNN topology's edges, lived here before the topology registry)
from mgrr_pyg.graphs import (channel_graph_to_map, graph_structure, knn_edges,  # noqa: F401
                             per_forward_edges, pixel_graph_to_map)
from mgrr_pyg.graphs.registry import is_per_forward
from mgrr_pyg.layers import GatedFusion, resolve_layer

from .config import ReasoningConfig


def node_edges(topology, num_graphs: int, num_nodes: int, device,
               lattice: Optional[tuple[int, int]] = None) -> Optional[tuple[Tensor, Optional[int]]]:
    r"""``(edge_index, dense_size)`` of :obj:`num_graphs` graphs of :obj:`num_nodes`
    nodes (the pixels of the :obj:`lattice` for the pixel graph) for a registered
    topology (:mod:`mgrr_pyg.graphs.registry`), from the cached
    :func:`~mgrr_pyg.graphs.graph_structure`; :obj:`None` for a per-forward topology such
    as ``("knn", k)``, built from the features: see
    :func:`~mgrr_pyg.graphs.per_forward_edges`."""
    if is_per_forward(topology):
        return None
    structure = graph_structure(topology, num_graphs, device, num_nodes=num_nodes,
                                lattice=lattice)
    return structure.edge_index, structure.dense_size


class ChannelGraphAttention(nn.Module):
    r"""The channel-level branch :math:`C_G` (Eq. 3-4).

    .. math::
        \mathbf{X} &= \mathrm{Conv}_{3\times 3, s2}(O_G) \in \mathbb{R}^{c \times h' w'} \\
        \bar{\mathbf{C}} &= \mathrm{GraphAttention}(\{\mathbf{X}_{c}\}_{c=1}^{c}) \\
        C_G &= \mathrm{ConvT}_{4\times 4, s2}(\bar{\mathbf{C}})

    Each channel is a node whose feature is its :math:`h' w'` = 484 values; the
    attention layer (``MultiHeadGraphAttention`` by default, ReLU included) maps them
    back to 484. The transposed convolution restores the map size; its kernel (4,
    stride 2, padding 1) is our choice: every output pixel gets the same number of
    contributions, so it adds no checkerboard pattern.

    Args:
        channels (int): :math:`c` (64).
        map_size (int): Side of :math:`O_G` (44).
        attention_layer (str or type): For :func:`~mgrr_pyg.layers.resolve_layer`.
        embed_dim (int): :math:`D`.
        heads (int): :math:`L`.
        topology: A channel-graph topology of :mod:`mgrr_pyg.graphs.registry`
            (``list_topologies("channel")``): ``"complete"`` or ``("knn", k)`` built in.

    Shapes:
        - **input:** :math:`(B, c, S, S)`
        - **output:** :math:`(B, c, S, S)`
    """

    def __init__(self, channels: int, map_size: int, attention_layer="multihead_graph_attention",
                 embed_dim: int = 1024, heads: int = 8, topology="complete") -> None:
        super().__init__()
        self.channels, self.topology = channels, topology
        self.reduced = (map_size + 1) // 2  # 22
        features = self.node_features()
        self.reduce = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.attention = resolve_layer("attention", attention_layer, features, features,
                                       embed_dim=embed_dim, heads=heads)
        self.expand = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)

    def node_features(self) -> int:
        return self.reduced * self.reduced

    def reset_parameters(self) -> None:
        self.reduce.reset_parameters()
        self.attention.reset_parameters()
        self.expand.reset_parameters()

    def to_nodes(self, x: Tensor) -> Tensor:
        # The node layout of mgrr_pyg.graphs.channel_graph, without building a Batch.
        return x.flatten(2).flatten(0, 1)  # [B c, h' w']

    def from_nodes(self, nodes: Tensor, batch: int) -> Tensor:
        return channel_graph_to_map(nodes, batch, self.reduced, self.reduced)

    def num_nodes(self) -> int:
        return self.channels

    def lattice(self) -> Optional[tuple[int, int]]:
        """``(H, W)`` when the nodes are the pixels of the reduced map (the pixel graph)."""
        return None

    def graph(self, batch: int, device) -> Optional[tuple[Tensor, Optional[int]]]:
        """The cached ``(edge_index, dense_size)`` for a batch (None for a per-forward
        topology such as kNN)."""
        return node_edges(self.topology, batch, self.num_nodes(), device, self.lattice())

    def forward(self, global_map: Tensor,
                graph: Optional[tuple[Tensor, Optional[int]]] = None) -> Tensor:
        """``graph``: ``(edge_index, dense_size)`` from :meth:`graph` (looked up when
        not given; built from the features for a per-forward topology such as kNN)."""
        batch = global_map.size(0)
        reduced = self.reduce(global_map)  # [B, c, h', w']
        nodes = self.to_nodes(reduced)
        if graph is None:
            graph = self.graph(batch, global_map.device)
        if graph is None:  # a per-forward topology (kNN in feature space)
            graph = (per_forward_edges(self.topology, nodes, batch, self.num_nodes(),
                                       self.lattice()), None)
        edge_index, dense_size = graph
        nodes = self.attention(nodes, edge_index, dense_size=dense_size)
        restored = self.from_nodes(nodes, batch)  # [B, c, h', w']
        return self.expand(restored, output_size=global_map.shape[-2:])

    def extra_repr(self) -> str:
        return (f"{self.num_nodes()} nodes x "
                f"{self.node_features()} features, topology={self.topology!r}")


class PixelGraphAttention(ChannelGraphAttention):
    r"""The pixel-level branch :math:`P_G` (Eq. 3-4): the same as
    :class:`ChannelGraphAttention` with the nodes along the other axis: each of the
    :math:`h' w'` = 484 pixels of the reduced map is a node with its :math:`c` = 64
    channel values as the feature (pixel :math:`(r, q)` is node :math:`r w' + q`, the
    order of :func:`~mgrr_pyg.graphs.grid_edge_index`).

    Args:
        topology: A pixel-graph topology of :mod:`mgrr_pyg.graphs.registry`
            (``list_topologies("pixel")``): ``"complete"``, ``("grid", hops)`` or
            ``("knn", k)`` built in.
    """

    def node_features(self) -> int:
        return self.channels

    def num_nodes(self) -> int:
        return self.reduced * self.reduced

    def lattice(self) -> Optional[tuple[int, int]]:
        return (self.reduced, self.reduced)

    def to_nodes(self, x: Tensor) -> Tensor:
        # The node layout of mgrr_pyg.graphs.pixel_graph, without building a Batch.
        return x.flatten(2).transpose(1, 2).flatten(0, 1)  # [B h' w', c]

    def from_nodes(self, nodes: Tensor, batch: int) -> Tensor:
        return pixel_graph_to_map(nodes, batch, self.reduced, self.reduced)  # [B, c, h', w']


class AUGlobalPooling(nn.Module):
    r""":math:`g_i^k`: the gated map :math:`G^k` (the global fusion's output) pooled to
    a :math:`d_v` vector for each AU.

    ``"attention"`` (default): one learned query :math:`\mathbf{q}_i` per AU attends
    over all pixels (global context, but each AU asks its own question),

    .. math::
        \alpha_{ip} = \operatorname{softmax}_p(\mathbf{q}_i^\top G^k(p) / \sqrt{c}), \qquad
        \mathbf{g}_i = \mathrm{BN}(\mathbf{W}_g \sum_p \alpha_{ip} G^k(p) + \mathbf{b}_g)

    (a key map would add nothing a learned query cannot absorb, and pooling before
    :math:`\mathbf{W}_g` is the same linear map at a fraction of the cost).
    ``"mean"``: global average pooling, the same vector for every AU. The BatchNorm is
    ours (``batchnorm=True``, see the comment below); without it :math:`\mathbf{g}_i =
    \mathbf{W}_g \sum_p \alpha_{ip} G^k(p) + \mathbf{b}_g`, the literal reading (the
    paper does not say how :math:`G^k` meets the vectors :math:`\bar{\mathbf{v}}_i`).

    Shapes:
        - **input:** :math:`(B, c, S, S)`
        - **output:** :math:`(B, n, d_v)` and the attention :math:`(B, n, S, S)`
          (:obj:`None` for ``"mean"``)
    """

    def __init__(self, channels: int, out_channels: int, num_aus: int,
                 mode: str = "attention", batchnorm: bool = True) -> None:
        super().__init__()
        self.channels, self.out_channels, self.num_aus, self.mode = (
            channels, out_channels, num_aus, mode)
        self.query = nn.Parameter(torch.empty(num_aus, channels)) if mode == "attention" else None
        self.project = nn.Linear(channels, out_channels)
        # Batch-normalised per AU and channel: the pooled context of a unit-RMS map is
        # dominated by what every face shares; centring it across the batch keeps the
        # part that differs between faces (our choice, see docs/architecture.md).
        self.norm = nn.BatchNorm1d(num_aus * out_channels) if batchnorm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.query is not None:
            nn.init.normal_(self.query)
        self.project.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, gated_map: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        batch, channels, height, width = gated_map.shape
        if self.query is None:
            pooled = gated_map.mean((2, 3)).unsqueeze(1).expand(-1, self.num_aus, -1)
            return self._project(pooled), None
        pixels = gated_map.flatten(2)  # [B, c, HW]
        # scaled like dot-product attention: G^k has unit-RMS channels (rescaled GFC)
        scores = torch.einsum("nc,bcp->bnp", self.query, pixels) / channels ** 0.5
        attention = torch.softmax(scores, -1)  # [B, n, HW]
        pooled = torch.bmm(attention, pixels.transpose(1, 2))  # [B, n, c]
        return self._project(pooled), attention.view(batch, self.num_aus, height, width)

    def _project(self, pooled: Tensor) -> Tensor:
        batch = pooled.size(0)
        context = self.project(pooled)  # [B, n, d_v]
        if self.norm is None:
            return context
        return self.norm(context.reshape(batch, -1)).view(batch, self.num_aus, -1)

    def extra_repr(self) -> str:
        return (f"{self.channels}, {self.out_channels}, "
                f"num_aus={self.num_aus}, mode={self.mode!r}"
                + ("" if self.norm is not None else ", batchnorm=False"))


class RelationalReasoningLayer(nn.Module):
    r"""One multi-level relational reasoning layer (Eq. 5-8).

    .. math::
        \bar{\mathbf{v}}_i^k &= \mathbf{W}_s \mathbf{v}_i^k + \textstyle\sum_j A^k_{ij}
            \mathbf{W}_n \mathbf{v}_j^k \quad &(D_G,\ \text{Eq. 5}) \\
        G^k &= \mathrm{GFC}(O_G^k, \mathrm{GFC}(C_G^k, P_G^k)) \quad &(\text{Eq. 6-8}) \\
        \mathbf{v}_i^{k+1} &= \mathrm{GFC}(\bar{\mathbf{v}}_i^k, \mathbf{g}_i^k), \qquad
            O_G^{k+1} = G^k \ (\texttt{global\_stream="gated"}) \ \text{or} \ O_G^k
            \ (\texttt{"stem"})

    with :math:`C_G^k, P_G^k` from :class:`ChannelGraphAttention` /
    :class:`PixelGraphAttention` on :math:`O_G^k` and :math:`\mathbf{g}_i^k` from
    :class:`AUGlobalPooling`. With ``global_stream="stem"`` the layer hands on the map it
    was given, so every layer of the model reads the stem's :math:`O_G` (the paper's
    section 1: the global features "serve as the inputs of each" layer; Eq. 6 writes
    :math:`O_G^k` and gives no update of it). ``fusion_rescale`` multiplies the
    normalised terms of the three GFCs by :math:`\sqrt{C}`
    (:class:`~mgrr_pyg.layers.GatedFusion` ``rescale``), ``pooling_batchnorm`` puts a
    BatchNorm on :math:`\mathbf{g}_i^k`. Ablations (Table 6) build no module for a
    switched-off part: a GFC with one input off passes the other through its own map and
    normalisation (built with only that input's parameters); with both off the fusion
    step is skipped. Without :math:`D_G`, :math:`\bar{\mathbf{v}}_i^k = \mathbf{v}_i^k`
    (the AU features still flow, they just exchange no messages). Without any global
    input, :math:`O_G^{k+1} = O_G^k` and :math:`\mathbf{g}_i^k` is absent.

    Args:
        num_aus (int): :math:`n`.
        d_v (int): AU feature width.
        channels (int): :math:`c` of :math:`O_G`.
        map_size (int): Side of :math:`O_G`.
        config (ReasoningConfig, optional): The switches, layers, topologies, widths
            and pooling (see :class:`~mgrr_pyg.model.ReasoningConfig`; ``num_layers`` is
            the model's). ``prior_init="random"`` draws the adjacency at random, the
            others start from the identity (the model's ``set_prior`` sets the prior).
            (default: :obj:`ReasoningConfig()`, the package defaults)

    Shapes:
        - **input:** :math:`V^k` :math:`(B, n, d_v)`, :math:`O_G^k` :math:`(B, c, S, S)`,
          the region graph ``(edge_index, au_index, dense_size)``
        - **output:** :math:`V^{k+1}`, :math:`O_G^{k+1}` and a dict of
          ``gated_map`` (:math:`G^k` or None) and ``pool_attention`` (or None)
    """

    def __init__(self, num_aus: int, d_v: int, channels: int, map_size: int,
                 config: Optional[ReasoningConfig] = None) -> None:
        super().__init__()
        config = ReasoningConfig() if config is None else config
        self.num_aus, self.d_v = num_aus, d_v
        use_channel, use_pixel, use_global = (config.use_channel, config.use_pixel,
                                              config.use_global)
        adjacency_init = "random" if config.prior_init == "random" else "identity"
        # (The construction order is the parameter initialisation order: keep it.)
        self.region = (resolve_layer("region", config.region_layer, d_v, d_v, num_aus=num_aus,
                                     adjacency_init=adjacency_init,
                                     per_au_weights=config.per_au_weights)
                       if config.use_region_graph else None)
        self.channel = (ChannelGraphAttention(channels, map_size,
                                              config.branch_attention_layer("channel"),
                                              config.embed_dim, config.heads,
                                              config.channel_topology)
                        if use_channel else None)
        self.pixel = (PixelGraphAttention(channels, map_size, config.branch_attention_layer("pixel"),
                                          config.embed_dim, config.heads, config.pixel_topology)
                      if use_pixel else None)
        c, rescale = channels, config.fusion_rescale
        self.attention_fusion = (GatedFusion(c if use_channel else None,
                                             c if use_pixel else None, c, kind="map",
                                             rescale=rescale)
                                 if use_channel or use_pixel else None)
        has_attention = use_channel or use_pixel
        self.global_fusion = (GatedFusion(c if use_global else None,
                                          c if has_attention else None, c, kind="map",
                                          rescale=rescale)
                              if use_global or has_attention else None)
        self.pooling = (AUGlobalPooling(c, d_v, num_aus, config.pooling, config.pooling_batchnorm)
                        if self.global_fusion is not None else None)
        self.au_fusion = GatedFusion(d_v, d_v if self.pooling is not None else None, d_v,
                                     kind="vector", rescale=rescale)
        self.use_global = use_global
        self.global_stream = config.global_stream

    def reset_parameters(self) -> None:
        for module in self.children():
            module.reset_parameters()

    @property
    def adjacency(self) -> Optional[Tensor]:
        """The learned :math:`\\mathbf{A}^k` (None without a region layer that has one)."""
        return getattr(self.region, "adjacency", None) if self.region is not None else None

    def forward(self, au_features: Tensor, global_map: Tensor,
                region_graph: tuple[Tensor, Tensor, Optional[int]],
                channel_graph: Optional[tuple] = None, pixel_graph: Optional[tuple] = None):
        """The graphs come from the model's cache (:meth:`MGRRNet.graphs`); the channel
        and pixel graphs are looked up / built by the branches when not given."""
        batch, num_aus, d_v = au_features.shape
        # Region level (Eq. 5).
        refined = au_features
        if self.region is not None:
            edge_index, au_index, dense_size = region_graph
            refined = self.region(au_features.reshape(batch * num_aus, d_v), edge_index,
                                  au_index, dense_size=dense_size).view(batch, num_aus, -1)
        # Global levels (Eq. 3-4) and hierarchical fusion (Eq. 6-8).
        gated_map, pool_attention, context = None, None, None
        if self.global_fusion is not None:
            attended = None
            if self.attention_fusion is not None:
                channel_map = (self.channel(global_map, channel_graph)
                               if self.channel is not None else None)
                pixel_map = (self.pixel(global_map, pixel_graph)
                             if self.pixel is not None else None)
                attended = self.attention_fusion(channel_map, pixel_map)
            gated_map = self.global_fusion(global_map if self.use_global else None, attended)
            context, pool_attention = self.pooling(gated_map)  # [B, n, d_v]
        next_features = self.au_fusion(refined, context)  # [B, n, d_v]
        if gated_map is not None and self.global_stream == "gated":
            next_map = gated_map  # O_G^{k+1} = G^k
        else:
            next_map = global_map  # "stem": every layer reads the stem's O_G
        return next_features, next_map, {"gated_map": gated_map, "pool_attention": pool_attention}

    def extra_repr(self) -> str:
        parts = [name for name, on in (("D_G", self.region is not None), ("O_G", self.use_global),
                                       ("C_G", self.channel is not None),
                                       ("P_G", self.pixel is not None)) if on]
        stream = "" if self.global_stream == "gated" else f", global_stream={self.global_stream!r}"
        return f"n={self.num_aus}, d_v={self.d_v}, {'+'.join(parts) or 'none'}{stream}"

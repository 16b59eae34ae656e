r"""The assembled MGRR-Net (Ge et al., ACM TIST 2024): stem -> :math:`O_G`, face
alignment, AU regions and features :math:`V`, :math:`K` multi-level relational
reasoning layers, local and integrated classifiers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from mgrr_pyg.facs import CROP_SIZE, AUCentreRule
from mgrr_pyg.graphs import graph_structure

from .alignment import AlignmentBranch
from .config import MGRRConfig
from .heads import IntegratedHead, LocalAUHeads
from .reasoning import RelationalReasoningLayer
from .regions import AURegionFeatures, au_attention_maps
from .stem import Stem

MAP_SIZE = CROP_SIZE // 4  # 44: O_G's side


@dataclass
class MGRROutput:
    """What :class:`MGRRNet` returns (all batched over :math:`B`; :math:`n` AUs).

    Attributes:
        probs: :math:`(B, n)` the prediction: mean of the local and integrated probabilities.
        local_probs, integrated_probs: :math:`(B, n)` each classifier's probabilities.
        local_logits, integrated_logits: :math:`(B, n)` their logits (for the loss).
        landmarks: :math:`(B, 49, 2)` predicted landmarks, crop pixels.
        adjacencies: each reasoning layer's learned :math:`\\mathbf{A}^k` :math:`(n, n)`
            (empty without :math:`D_G` or with a region layer that has none).
        au_maps: :math:`(B, n, 44, 44)` the AU box attention maps.
        au_centres: :math:`(B, n, 2, 2)` the two centres per AU (crop pixels) behind them.
        fused_maps: :math:`G^k` :math:`(B, c, 44, 44)` per layer (empty without a global input).
        pool_attention: per layer, :math:`(B, n, 44, 44)` where each AU's pooling query
            looked in :math:`G^k` (empty with mean pooling / no global input).
        global_map: :math:`O_G` :math:`(B, c, 44, 44)` from the stem.
        region_features: :math:`V^0` :math:`(B, n, d_v)`; au_features: :math:`V^K`.
        alignment_feature: :math:`(B, 512)` the alignment branch's hidden feature.
    """

    probs: Tensor
    local_probs: Tensor
    integrated_probs: Tensor
    local_logits: Tensor
    integrated_logits: Tensor
    landmarks: Tensor
    adjacencies: list = field(default_factory=list)
    au_maps: Optional[Tensor] = None
    au_centres: Optional[Tensor] = None
    fused_maps: list = field(default_factory=list)
    pool_attention: list = field(default_factory=list)
    global_map: Optional[Tensor] = None
    region_features: Optional[Tensor] = None
    au_features: Optional[Tensor] = None
    alignment_feature: Optional[Tensor] = None


def _forget_graphs(module: "MGRRNet", incompatible_keys) -> None:
    # A loaded prior may change the region edges (region_topology "prior").
    module._graphs.clear()


class MGRRNet(nn.Module):
    r"""MGRR-Net for multi-label AU detection with joint face alignment.

    .. math::
        O_G &= \mathrm{Stem}(I), \quad (\hat{S}, \mathbf{h}) = \mathrm{Align}(O_G), \quad
        V^0 = \mathrm{Regions}(O_G, \mathrm{boxes}(\mathrm{sg}[\hat{S}])) \\
        (V^{k+1}, O_G^{k+1}) &= \mathrm{Reasoning}_k(V^k, O_G^k), \quad k = 0..K-1 \\
        \hat{p}^{loc}_i &= \sigma(\mathbf{w}_i^\top \mathbf{v}_i^K + b_i), \quad
        \hat{\mathbf{p}}^{int} = \sigma(\mathbf{W}[V^K \Vert \mathbf{h}] + \mathbf{b}),
        \quad \hat{\mathbf{p}} = \tfrac12(\hat{\mathbf{p}}^{loc} + \hat{\mathbf{p}}^{int})

    (:math:`\mathrm{sg}`: stop-gradient; the regions come from the model's own
    landmark prediction unless ``region_landmarks`` are given.)

    Args:
        config (MGRRConfig): See :class:`~mgrr_pyg.model.MGRRConfig`; build from a
            preset with :func:`~mgrr_pyg.model.create_model`.

    Shapes:
        - **input:** images :math:`(B, 3, 176, 176)` in :math:`[-1, 1]`
        - **output:** :class:`MGRROutput`
    """

    def __init__(self, config: MGRRConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        n = config.num_aus
        channels = config.stem_channels[1]
        self.au_rules = ({au: AUCentreRule(*rule) for au, rule in config.au_rules.items()}
                         if config.au_rules else None)
        self.stem = Stem(config.stem_channels, config.stem_grids)
        self.alignment = AlignmentBranch(channels, config.align_channels, config.align_hidden,
                                         MAP_SIZE)
        self.region_features = AURegionFeatures(channels, config.region_channels, config.d_v, n)
        adjacency_init = "random" if config.prior_init == "random" else "identity"
        self.layers = nn.ModuleList(
            RelationalReasoningLayer(
                n, config.d_v, channels, MAP_SIZE,
                use_region_graph=config.use_region_graph, use_global=config.use_global,
                use_channel=config.use_channel, use_pixel=config.use_pixel,
                region_layer=config.region_layer, attention_layer=config.attention_layer,
                adjacency_init=adjacency_init, per_au_weights=config.per_au_weights,
                embed_dim=config.embed_dim, heads=config.heads,
                channel_topology=config.channel_topology,
                pixel_topology=config.pixel_topology, pooling=config.pooling)
            for _ in range(config.num_layers))
        self.local_heads = LocalAUHeads(config.d_v, n)
        self.integrated_head = IntegratedHead(config.d_v, n, config.align_hidden)
        # The relation prior (Eq. 1-2) the adjacencies start from; it also defines the
        # region edges of region_topology "prior". Identity until set_prior().
        self.register_buffer("prior", torch.eye(n))
        self._graphs: dict = {}
        self.register_load_state_dict_post_hook(_forget_graphs)

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter; the adjacencies restart from their
        initialisation (the stored prior after :meth:`set_prior`)."""
        for child in self.children():
            if isinstance(child, nn.ModuleList):
                for layer in child:
                    layer.reset_parameters()
            else:
                child.reset_parameters()

    # -- priors and graphs --------------------------------------------------------------
    @torch.no_grad()
    def set_prior(self, prior) -> None:
        r"""(Re)initialise every region layer's adjacency :math:`\mathbf{A}^k` from a
        prior :math:`(n, n)` (the training fold's co-occurrence prior, Eq. 1-2, from
        :func:`mgrr_pyg.graphs.au_cooccurrence_prior`) and store it."""
        n = self.config.num_aus
        prior = torch.as_tensor(prior, dtype=self.prior.dtype)
        if tuple(prior.shape) != (n, n):
            raise ValueError(f"set_prior: expected an [{n}, {n}] matrix for AUs "
                             f"{self.config.aus}, found shape {list(prior.shape)}")
        if not bool(torch.isfinite(prior).all()):
            raise ValueError("set_prior: the prior holds non-finite values")
        self.prior.copy_(prior.to(self.prior.device))
        for layer in self.layers:
            if layer.region is not None and hasattr(layer.region, "set_adjacency"):
                layer.region.set_adjacency(self.prior)
        self._graphs.clear()

    def graphs(self, batch: int, device) -> dict:
        """The graph structure of a batch, built once per (batch size, device) and cached:
        ``region`` = ``(edge_index, au_index, dense_size)``; ``channel`` / ``pixel`` =
        ``(edge_index, dense_size)``, or None for a kNN topology (built per forward
        from the features) or a switched-off branch."""
        key = (batch, torch.device(device))
        if key not in self._graphs:
            threshold = self.config.region_threshold()
            n = self.config.num_aus
            topology = "complete" if threshold is None else ("prior", self.prior, threshold)
            region = graph_structure(topology, batch, device, num_nodes=n)
            graphs = {"region": (region.edge_index, region.au_index, region.dense_size),
                      "channel": None, "pixel": None}
            if len(self.layers):
                for name in ("channel", "pixel"):
                    branch = getattr(self.layers[0], name)
                    if branch is not None:
                        graphs[name] = branch.graph(batch, device)
            self._graphs[key] = graphs
        return self._graphs[key]

    # -- forward ----------------------------------------------------------------------------
    def _check_images(self, images: Tensor) -> None:
        if not isinstance(images, Tensor) or images.dim() != 4 or images.size(1) != 3 or \
                tuple(images.shape[-2:]) != (CROP_SIZE, CROP_SIZE):
            found = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images: expected a tensor [B, 3, {CROP_SIZE}, {CROP_SIZE}] "
                             f"(RGB crops in [-1, 1]), found {found}")
        if not images.is_floating_point():
            raise ValueError(f"images: expected a floating-point tensor in [-1, 1], found "
                             f"dtype {images.dtype}")

    def forward(self, images: Tensor, region_landmarks: Optional[Tensor] = None) -> MGRROutput:
        """Args:
            images (torch.Tensor): :math:`(B, 3, 176, 176)` in :math:`[-1, 1]`.
            region_landmarks (torch.Tensor, optional): :math:`(B, 49, 2)` landmarks (crop
                pixels) to place the AU regions with instead of the model's own
                prediction (e.g. a detector's). (default: :obj:`None`)
        """
        self._check_images(images)
        config = self.config
        batch = images.size(0)
        global_map = self.stem(images)  # O_G [B, c, 44, 44]
        landmarks, alignment_feature = self.alignment(global_map)  # [B, 49, 2], [B, 512]

        if region_landmarks is None:
            region_source = landmarks.detach()
            # (a data-dependent check: skipped while torch.compile traces, a graph break)
            if not torch.compiler.is_compiling() and not bool(torch.isfinite(region_source).all()):
                raise ValueError("the predicted landmarks are not finite (has training "
                                 "diverged?); cannot place AU regions")
            check = False
        else:
            region_source, check = region_landmarks, True
        au_maps, boxes, centres = au_attention_maps(
            region_source, config.aus, self.au_rules, MAP_SIZE, CROP_SIZE,
            config.box_half_size, config.box_decay, check=check)
        au_features = self.region_features(global_map, boxes)  # V^0 [B, n, d_v]
        region_features = au_features

        graphs = self.graphs(batch, images.device)
        current_map, fused_maps, pool_attention = global_map, [], []
        for layer in self.layers:
            au_features, current_map, extras = layer(au_features, current_map, graphs["region"],
                                                     graphs["channel"], graphs["pixel"])
            if extras["fused"] is not None:
                fused_maps.append(extras["fused"])
            if extras["pool_attention"] is not None:
                pool_attention.append(extras["pool_attention"])

        local_logits = self.local_heads(au_features)
        integrated_logits = self.integrated_head(au_features, alignment_feature)
        local_probs, integrated_probs = torch.sigmoid(local_logits), torch.sigmoid(integrated_logits)
        return MGRROutput(
            probs=0.5 * (local_probs + integrated_probs),
            local_probs=local_probs, integrated_probs=integrated_probs,
            local_logits=local_logits, integrated_logits=integrated_logits,
            landmarks=landmarks,
            adjacencies=[layer.adjacency for layer in self.layers if layer.adjacency is not None],
            au_maps=au_maps, au_centres=centres, fused_maps=fused_maps,
            pool_attention=pool_attention, global_map=global_map,
            region_features=region_features, au_features=au_features,
            alignment_feature=alignment_feature)

    # -- inference helpers ------------------------------------------------------------
    @torch.no_grad()
    def fuse_for_inference(self) -> "MGRRNet":
        """Fold every BatchNorm that directly follows a convolution into it (eval-mode
        statistics; alignment branch and region-feature conv) and switch to eval mode.
        The outputs stay equal up to float rounding. Returns ``self``."""
        from .fusion import fuse_model

        self.eval()
        fuse_model(self)
        return self

    def extra_repr(self) -> str:
        c = self.config
        return (f"preset={c.name!r}, aus={c.aus}, K={c.num_layers}, d_v={c.d_v}, "
                f"D={c.embed_dim}, L={c.heads}")

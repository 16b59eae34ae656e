r"""The assembled MGRR-Net (Ge et al., ACM TIST 2024): stem -> :math:`O_G`, face
alignment, AU regions and features :math:`V`, :math:`K` multi-level relational
reasoning layers, local and integrated classifiers."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from mgrr_pyg.facs import CROP_SIZE, resolve_au_rules
from mgrr_pyg.graphs import graph_structure

from .alignment import AlignmentBranch
from .config import MGRRConfig
from .folding import fold_batchnorm
from .heads import IntegratedHead, LocalAUHeads
from .inputs import check_image_layout, check_image_values
from .reasoning import RelationalReasoningLayer
from .regions import AUFeatures, au_attention_maps
from .state import buffers_restored_on_error
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
        gated_maps: per layer, the gated map :math:`G^k = \\mathrm{GFC}(O_G^k,
            \\mathrm{GFC}(C_G^k, P_G^k))` :math:`(B, c, 44, 44)` (empty without a global
            input). (``fused_maps`` before; that name still reads it, with a warning.)
        pool_attention: per layer, :math:`(B, n, 44, 44)` where each AU's pooling query
            looked in :math:`G^k` (empty with mean pooling / no global input).
        global_map: :math:`O_G` :math:`(B, c, 44, 44)` from the stem.
        region_features: :math:`V^0` :math:`(B, n, d_v)`, the AU features pooled in the
            AU regions; au_features: :math:`V^K`, after the reasoning layers.
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
    gated_maps: list = field(default_factory=list)
    pool_attention: list = field(default_factory=list)
    global_map: Optional[Tensor] = None
    region_features: Optional[Tensor] = None
    au_features: Optional[Tensor] = None
    alignment_feature: Optional[Tensor] = None

    @property
    def fused_maps(self) -> list:
        """Deprecated name of :attr:`gated_maps`."""
        warnings.warn("MGRROutput.fused_maps is deprecated; read gated_maps", DeprecationWarning,
                      stacklevel=2)
        return self.gated_maps


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
        config (MGRRConfig): See :class:`~mgrr_pyg.model.MGRRConfig`; each part goes
            whole to the module it configures. Build from a preset with
            :func:`~mgrr_pyg.model.create_model`.

    Shapes:
        - **input:** images :math:`(B, 3, 176, 176)` in :math:`[-1, 1]`
        - **output:** :class:`MGRROutput`
    """

    def __init__(self, config: MGRRConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        n = config.num_aus
        channels = config.stem.channels[1]
        # AU number -> centre rule, for the model's AUs (built-in or config.regions.au_rules)
        self.au_rules = resolve_au_rules(config.aus, config.regions.au_rules)
        # (The construction order is the parameter initialisation order: keep it.)
        self.stem = Stem(config.stem)
        self.alignment = AlignmentBranch(channels, config.alignment, MAP_SIZE)
        # V^0; the attribute keeps its name, the key of its weights in every checkpoint.
        self.region_features = AUFeatures(channels, config.regions.hidden_channels,
                                          config.d_v, n, config.regions.feature_output)
        self.layers = nn.ModuleList(
            RelationalReasoningLayer(n, config.d_v, channels, MAP_SIZE, config.reasoning)
            for _ in range(config.reasoning.num_layers))
        self.local_heads = LocalAUHeads(config.d_v, n)
        self.integrated_head = IntegratedHead(config.d_v, n, config.alignment.hidden)
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
        ``(edge_index, dense_size)``, or None for a per-forward topology such as kNN
        (built from the features in every forward) or a switched-off branch."""
        key = (int(batch), torch.device(device))
        if key not in self._graphs:
            batch = key[0]
            # Built outside inference mode even when called inside it (prediction): the
            # structure is cached (here and process-wide in graph_structure), and inference
            # tensors in the cache would break a later forward that records autograd
            # (training, a Grad-CAM) in the same process.
            with torch.inference_mode(False):
                self._graphs[key] = self._build_graphs(batch, device)
        return self._graphs[key]

    def _build_graphs(self, batch: int, device) -> dict:
        # (A region topology may read the relation prior: "prior" keeps A_ij > threshold.)
        region = graph_structure(self.config.reasoning.region_topology, batch, device,
                                 num_nodes=self.config.num_aus, prior=self.prior)
        # Node i of each region graph is AU i (config.aus order): its index in the
        # graph is its AU index.
        graphs = {"region": (region.edge_index, region.node_index, region.dense_size),
                  "channel": None, "pixel": None}
        if len(self.layers):
            for name in ("channel", "pixel"):
                branch = getattr(self.layers[0], name)
                if branch is not None:
                    graphs[name] = branch.graph(batch, device)
        return graphs

    # -- forward ----------------------------------------------------------------------------
    def _check_trainable_batch(self, images: Tensor) -> None:
        # BatchNorm1d on [B, features] (region features, pooled AU features) computes
        # batch statistics from B values per feature: one sample has no variance.
        if images.size(0) != 1:
            return
        norms = [name for name, module in self.named_modules()
                 if isinstance(module, nn.BatchNorm1d)
                 and (module.training or module.running_mean is None)]
        if norms:
            raise ValueError(
                f"images: a batch of 1 in train mode: BatchNorm statistics need at least 2 "
                f"samples per batch in train mode ({len(norms)} BatchNorm1d layers normalise "
                f"each feature over the batch, e.g. {norms[0]}); train with batch size >= 2, "
                "or call model.eval() to run on single images")

    def forward(self, images: Tensor, region_landmarks: Optional[Tensor] = None) -> MGRROutput:
        """Args:
            images (torch.Tensor): :math:`(B, 3, 176, 176)` in :math:`[-1, 1]`.
            region_landmarks (torch.Tensor, optional): :math:`(B, 49, 2)` landmarks (crop
                pixels) to place the AU regions with instead of the model's own
                prediction (e.g. a detector's). (default: :obj:`None`)

        Bad input is refused before the network runs (ValueError naming ``images``): a
        wrong shape or dtype, NaN / inf, values outside [-1, 1] by more than
        :data:`~mgrr_pyg.model.inputs.IMAGE_RANGE_TOLERANCE`, a batch of 1 in train mode.
        A call that raises, before or inside the network, leaves every buffer (BatchNorm
        statistics) as it was. While ``torch.compile`` traces, only the shape, dtype and
        batch size are checked.
        """
        check_image_layout(images)
        self._check_trainable_batch(images)
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            # The value check reads the data (a graph break under torch.compile), and so
            # does the landmark check inside, which is skipped too: run straight through.
            return self._forward(images, region_landmarks)
        check_image_values(images)
        with buffers_restored_on_error(self):
            return self._forward(images, region_landmarks)

    def _forward(self, images: Tensor, region_landmarks: Optional[Tensor]) -> MGRROutput:
        config = self.config
        global_map = self.stem(images)  # O_G [B, c, 44, 44]
        landmarks, alignment_feature = self.alignment(global_map)  # [B, 49, 2], [B, 512]

        if region_landmarks is None:
            region_source = landmarks.detach()
            # (a data-dependent check: skipped while torch.compile traces, a graph break)
            if not torch.compiler.is_compiling() and not bool(torch.isfinite(region_source).all()):
                raise ValueError("the predicted landmarks are not finite although the images "
                                 "are (has training diverged? look for NaN / inf in the weights "
                                 "and BatchNorm statistics); cannot place AU regions")
            check = False
        else:
            region_source, check = region_landmarks, True
        au_maps, boxes, centres = au_attention_maps(
            region_source, config.aus, self.au_rules, MAP_SIZE, CROP_SIZE,
            config.regions.box_half_size, config.regions.box_decay, check=check)
        au_features = self.region_features(global_map, boxes)  # V^0 [B, n, d_v]
        region_features = au_features

        graphs = self.graphs(int(images.shape[0]), images.device)
        current_map, gated_maps, pool_attention = global_map, [], []
        for layer in self.layers:
            au_features, current_map, extras = layer(au_features, current_map, graphs["region"],
                                                     graphs["channel"], graphs["pixel"])
            if extras["gated_map"] is not None:
                gated_maps.append(extras["gated_map"])
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
            au_maps=au_maps, au_centres=centres, gated_maps=gated_maps,
            pool_attention=pool_attention, global_map=global_map,
            region_features=region_features, au_features=au_features,
            alignment_feature=alignment_feature)

    # -- inference helpers ------------------------------------------------------------
    @torch.no_grad()
    def fold_batchnorm(self) -> "MGRRNet":
        """Fold every BatchNorm that directly follows a convolution into it (eval-mode
        statistics; alignment branch and AU-feature conv) and switch to eval mode, for
        inference. The outputs stay equal up to float rounding. Returns ``self``."""
        self.eval()
        fold_batchnorm(self)
        return self

    def fuse_for_inference(self) -> "MGRRNet":
        """Deprecated name of :meth:`fold_batchnorm`."""
        warnings.warn("MGRRNet.fuse_for_inference() is deprecated; call fold_batchnorm()",
                      DeprecationWarning, stacklevel=2)
        return self.fold_batchnorm()

    def extra_repr(self) -> str:
        c, r = self.config, self.config.reasoning
        return (f"preset={c.name!r}, aus={c.aus}, K={r.num_layers}, d_v={c.d_v}, "
                f"D={r.embed_dim}, L={r.heads}")

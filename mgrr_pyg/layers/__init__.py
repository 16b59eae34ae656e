"""MessagePassing layers of MGRR-Net. They know nothing about faces: nodes,
edges, AU ids and maps only."""
from .gated_fusion import GatedFusion
from .multihead_graph_attention import MultiHeadGraphAttention
from .region_graph_conv import RegionGraphConv
from .resolve import (AttentionLayerAdapter, RegionLayerAdapter, register_layer,
                      registered_layers, resolve_layer)

__all__ = [
    "RegionGraphConv",
    "MultiHeadGraphAttention",
    "GatedFusion",
    "resolve_layer",
    "register_layer",
    "registered_layers",
    "RegionLayerAdapter",
    "AttentionLayerAdapter",
]

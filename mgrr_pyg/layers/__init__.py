"""MessagePassing layers of MGRR-Net. They know nothing about faces: nodes,
edges, AU ids and maps only. As PyG's own convs, they take an ``edge_index``, an
``EdgeIndex`` or a sparse ``adj_t`` (torch sparse, ``SparseTensor``), work with
PyG's explainers and compile with ``torch.compile``; ``examples/graph_layers.py``
uses them on a graph that is not a face."""
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

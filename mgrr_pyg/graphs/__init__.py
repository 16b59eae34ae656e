"""Graph construction for MGRR-Net: pure functions, tensors in, ``edge_index`` /
``Data`` / ``Batch`` out. Nothing here knows about faces or training."""
from .builders import (channel_graph, channel_graph_to_map, dense_size_of, pixel_graph,
                       pixel_graph_to_map, region_graph)
from .prior import au_cooccurrence_prior
from .structure import GraphStructure, graph_structure, topology_key
from .topology import (batch_edge_index, check_edge_index, complete_edge_index,
                       grid_edge_index, knn_edge_index, networkx_edge_index,
                       prior_edge_index)

__all__ = [
    "au_cooccurrence_prior",
    "complete_edge_index",
    "grid_edge_index",
    "knn_edge_index",
    "prior_edge_index",
    "networkx_edge_index",
    "batch_edge_index",
    "check_edge_index",
    "region_graph",
    "channel_graph",
    "pixel_graph",
    "channel_graph_to_map",
    "pixel_graph_to_map",
    "dense_size_of",
    "GraphStructure",
    "graph_structure",
    "topology_key",
]

"""Graph construction for MGRR-Net: pure functions, tensors in, ``edge_index`` /
``Data`` / ``Batch`` out, and the registry of named topologies (``register_topology``).
Nothing here knows about faces or training."""
from .builders import (channel_graph, channel_graph_to_map, dense_size_of, pixel_graph,
                       pixel_graph_to_map, region_graph)
from .prior import au_cooccurrence_prior
from .registry import (GRAPHS, GraphNodes, RegisteredTopology, check_topology, get_topology,
                       knn_edges, list_topologies, per_forward_edges, register_topology)
from .structure import GraphStructure, graph_structure, topology_key
from .topology import (batch_edge_index, check_edge_index, complete_edge_index,
                       grid_edge_index, knn_edge_index, networkx_edge_index,
                       pairs_edge_index, prior_edge_index)

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
    "register_topology",
    "list_topologies",
    "get_topology",
    "check_topology",
    "per_forward_edges",
    "knn_edges",
    "GraphNodes",
    "RegisteredTopology",
    "GRAPHS",
    "pairs_edge_index",
]

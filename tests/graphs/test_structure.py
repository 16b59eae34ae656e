"""The cached graph structure used on the model's hot path."""
import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.graphs import (batch_edge_index, complete_edge_index, graph_structure,
                             grid_edge_index, networkx_edge_index, prior_edge_index)

SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 4), st.booleans())
def test_complete_structure_is_batched_and_marked_dense_only_with_self_loops(n, B, loops):
    s = graph_structure(("complete", n, loops), B)
    assert torch.equal(s.edge_index, batch_edge_index(complete_edge_index(n, loops), B, n))
    assert s.dense_size == (n if loops else None)
    assert s.num_graphs == B and s.num_nodes_per_graph == n and s.num_nodes == B * n
    assert torch.equal(s.node_index, torch.arange(n).repeat(B))  # each node's index in its graph
    assert torch.equal(s.batch, torch.arange(B).repeat_interleave(n))


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2), st.integers(1, 3))
def test_grid_structure_matches_the_grid_builder(H, W, hops, B):
    s = graph_structure(("grid", H, W, hops), B)
    assert torch.equal(s.edge_index, batch_edge_index(grid_edge_index(H, W, hops), B, H * W))
    assert s.dense_size is None


def test_the_old_name_of_node_index_warns_and_reads_it():
    s = graph_structure(("grid", 2, 3), 2)
    with pytest.warns(DeprecationWarning, match="read node_index"):
        assert s.au_index is s.node_index
    assert s.node_index.tolist() == [0, 1, 2, 3, 4, 5] * 2  # pixels, not AUs


def test_structures_are_cached_per_topology_batch_and_device():
    first = graph_structure("complete", 3, num_nodes=5)
    assert graph_structure(("complete", 5), 3, device="cpu") is first
    assert graph_structure(("complete", 5), 4) is not first
    assert graph_structure(("complete", 6), 3) is not first


def test_prior_structure_is_keyed_by_value():
    prior = torch.tensor([[1.0, 0.4, 0.0], [0.2, 1.0, 0.9], [0.0, 0.5, 1.0]])
    s = graph_structure(("prior", prior, 0.3), 2)
    assert graph_structure(("prior", prior.clone(), 0.3), 2) is s
    assert torch.equal(s.edge_index, batch_edge_index(prior_edge_index(prior, 0.3), 2, 3))
    assert s.dense_size is None


def test_networkx_structure_matches_the_conversion():
    graph = nx.cycle_graph(5)
    s = graph_structure(graph, 2)
    assert torch.equal(s.edge_index, batch_edge_index(networkx_edge_index(graph), 2, 5))
    directed = nx.DiGraph([(0, 1), (1, 2)])
    assert torch.equal(graph_structure(directed, 1).edge_index, torch.tensor([[0, 1], [1, 2]]))


def test_explicit_edge_index_structure():
    edge_index = torch.tensor([[0, 2], [1, 1]])
    s = graph_structure(("edge_index", edge_index, 3), 2)
    assert torch.equal(s.edge_index, torch.tensor([[0, 2, 3, 5], [1, 1, 4, 4]]))


@pytest.mark.parametrize("call, match", [
    (lambda: graph_structure("complete", 2), r"'complete' needs the node count"),
    (lambda: graph_structure(("knn", 3), 2), r"'knn' depends on the node features"),
    (lambda: graph_structure(("ring", 3), 2), r"unknown topology 'ring'; registered: complete, "
                                              r"grid, knn, prior\. Add one with "
                                              r"mgrr_pyg.graphs.register_topology"),
    (lambda: graph_structure(("complete", 3), 0), r"batch_size must be an integer >= 1; found 0"),
    (lambda: graph_structure(("prior", torch.zeros(2, 3)), 1),
     r"needs a square \[n, n\] matrix A; found shape \(2, 3\)"),
    (lambda: graph_structure(("edge_index", torch.tensor([[0], [4]]), 3), 1),
     r"edge_index, n\) must index nodes in \[0, 3\); found ids from 0 to 4"),
])
def test_bad_topologies_raise_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()

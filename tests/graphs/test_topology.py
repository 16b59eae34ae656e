"""Topology builders checked against networkx and brute force."""
import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.graphs import (batch_edge_index, complete_edge_index, grid_edge_index,
                             knn_edge_index, networkx_edge_index, prior_edge_index)

SETTINGS = settings(max_examples=30, deadline=None)


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


@SETTINGS
@given(st.integers(1, 12), st.booleans())
def test_complete_graph_has_every_ordered_pair_once(n, self_loops):
    edge_index = complete_edge_index(n, self_loops=self_loops)
    expected = {(j, i) for i in range(n) for j in range(n) if self_loops or i != j}
    assert edge_index.shape == (2, n * n if self_loops else n * (n - 1))
    assert edge_set(edge_index) == expected


def king_graph_reference(height, width, hops, self_loops):
    """Edges j -> i of the k-hop neighbourhood, from networkx shortest paths on
    the 8-connected lattice (Chebyshev distance = king-move distance)."""
    lattice = nx.grid_2d_graph(height, width)
    lattice.add_edges_from(((r, c), (r + 1, c + dc)) for r in range(height - 1)
                           for c in range(width) for dc in (-1, 1) if 0 <= c + dc < width)
    edges = set()
    for target in lattice.nodes:
        reach = nx.single_source_shortest_path_length(lattice, target, cutoff=hops)
        for source in reach:
            if self_loops or source != target:
                edges.add((source[0] * width + source[1], target[0] * width + target[1]))
    return edges


@SETTINGS
@given(st.integers(1, 7), st.integers(1, 7), st.integers(0, 3), st.booleans())
def test_grid_graph_matches_networkx_lattice_neighbourhoods(height, width, hops, self_loops):
    edge_index = grid_edge_index(height, width, hops, self_loops=self_loops)
    assert edge_index.size(1) == len(edge_set(edge_index))  # no duplicates
    assert edge_set(edge_index) == king_graph_reference(height, width, hops, self_loops)


@SETTINGS
@given(st.integers(3, 8), st.integers(3, 8))
def test_one_hop_grid_is_the_3x3_neighbourhood(height, width):
    in_degree = torch.bincount(grid_edge_index(height, width, 1)[1], minlength=height * width)
    in_degree = in_degree.view(height, width)
    assert (in_degree[1:-1, 1:-1] == 9).all()  # interior: full 3x3 window, self included
    assert in_degree[0, 0] == in_degree[-1, -1] == 4  # corners
    assert (in_degree[0, 1:-1] == 6).all() and (in_degree[1:-1, 0] == 6).all()  # borders


def brute_force_knn(points, graph_of, k, self_loops):
    """Each node's k nearest (same graph) by sorting python-computed distances."""
    edges = set()
    for i, p in enumerate(points):
        candidates = [(sum((a - b) ** 2 for a, b in zip(p, q)), j) for j, q in enumerate(points)
                      if graph_of[j] == graph_of[i] and (self_loops or j != i)]
        edges |= {(j, i) for _, j in sorted(candidates)[:k]}
    return edges


@SETTINGS
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(1, 5),
       st.integers(1, 4), st.booleans(), st.integers(0, 2**31 - 1))
def test_knn_graph_matches_brute_force_sort(sizes, k, features, self_loops, seed):
    x = torch.randn(sum(sizes), features, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)  # continuous: no ties
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    edge_index = knn_edge_index(x, k, batch, self_loops=self_loops)
    assert edge_set(edge_index) == brute_force_knn(x.tolist(), batch.tolist(), k, self_loops)
    assert edge_index.size(1) == len(edge_set(edge_index))


@SETTINGS
@given(st.integers(1, 6), st.floats(0, 1), st.booleans(), st.integers(0, 2**31 - 1))
def test_prior_graph_keeps_entries_above_threshold(n, threshold, self_loops, seed):
    adjacency = torch.rand(n, n, generator=torch.Generator().manual_seed(seed))
    edge_index, weight = prior_edge_index(adjacency, threshold, self_loops, return_weight=True)
    expected = {(j, i) for i in range(n) for j in range(n)
                if (i == j and self_loops) or (i != j and adjacency[i, j] > threshold)}
    assert edge_set(edge_index) == expected
    for (source, target), w in zip(edge_index.t().tolist(), weight.tolist()):
        assert w == adjacency[target, source].item()  # row i receives from column j


@SETTINGS
@given(st.integers(1, 8), st.floats(0, 1), st.booleans(), st.integers(0, 1000))
def test_networkx_conversion_keeps_every_edge(n, p, directed, seed):
    graph = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    edge_index = networkx_edge_index(graph)
    expected = set(graph.edges()) | (set() if directed else {(v, u) for u, v in graph.edges()})
    assert edge_set(edge_index) == expected


def test_networkx_conversion_follows_the_given_node_order():
    graph = nx.DiGraph([("a", "b"), ("b", "c")])
    edge_index = networkx_edge_index(graph, nodes=["c", "b", "a"])
    assert edge_set(edge_index) == {(2, 1), (1, 0)}


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 1000))
def test_batched_edges_equal_pyg_collation(n, num_graphs, seed):
    from torch_geometric.data import Batch, Data
    graph = nx.gnp_random_graph(n, 0.5, seed=seed, directed=True)
    edge_index = networkx_edge_index(graph)
    collated = Batch.from_data_list([Data(edge_index=edge_index, num_nodes=n)] * num_graphs)
    assert torch.equal(batch_edge_index(edge_index, num_graphs, n), collated.edge_index)


@pytest.mark.parametrize("call, match", [
    (lambda: complete_edge_index(0), r"num_nodes must be an integer >= 1; found 0"),
    (lambda: grid_edge_index(3, 0), r"width must be an integer >= 1; found 0"),
    (lambda: grid_edge_index(3, 3, -1), r"hops must be an integer >= 0; found -1"),
    (lambda: knn_edge_index(torch.zeros(3), 2), r"x must be a 2-D tensor .*found \(3,\)"),
    (lambda: knn_edge_index(torch.zeros(3, 2), 0), r"k must be an integer >= 1; found 0"),
    (lambda: knn_edge_index(torch.zeros(3, 2), 1, torch.zeros(2, dtype=torch.long)),
     r"batch must have shape \[3\] .*found \(2,\)"),
    (lambda: prior_edge_index(torch.zeros(2, 3)),
     r"adjacency must be a square \[n, n\] matrix; found shape \(2, 3\)"),
    (lambda: batch_edge_index(torch.tensor([[0, 5], [1, 1]]), 2, 3),
     r"edge_index must index nodes in \[0, 3\); found ids from 0 to 5"),
    (lambda: batch_edge_index(torch.zeros(3, 2, dtype=torch.long), 2, 3),
     r"edge_index must be a \[2, E\] tensor; found \(3, 2\)"),
    (lambda: networkx_edge_index(nx.path_graph(3), nodes=[0, 1]),
     r"nodes must list each of the graph's 3 nodes exactly once"),
    (lambda: networkx_edge_index([(0, 1)]), r"graph must be a networkx graph; found list"),
])
def test_bad_arguments_raise_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_every_builder_is_target_sorted():
    for edge_index in (complete_edge_index(4), grid_edge_index(3, 4, 1),
                       knn_edge_index(torch.randn(7, 2), 3),
                       prior_edge_index(torch.rand(4, 4), 0.3),
                       networkx_edge_index(nx.cycle_graph(5))):
        target = edge_index[1]
        assert bool((target[1:] >= target[:-1]).all())
        pairs = list(zip(target.tolist(), edge_index[0].tolist()))
        assert pairs == sorted(pairs)


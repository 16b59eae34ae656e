"""Tensors -> graphs -> tensors: node contents, round trips, completeness marks."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.graphs import (channel_graph, channel_graph_to_map, dense_size_of,
                             grid_edge_index, pixel_graph, pixel_graph_to_map, region_graph)

SETTINGS = settings(max_examples=30, deadline=None)
maps = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
                 st.integers(0, 2**31 - 1)).map(
    lambda s: torch.randn(s[:4], generator=torch.Generator().manual_seed(s[4])))


@SETTINGS
@given(maps)
def test_pixel_graph_nodes_are_pixels_and_round_trip_exactly(feature_map):
    B, C, H, W = feature_map.shape
    graph = pixel_graph(feature_map)
    for b in range(B):
        for r in range(H):
            for c in range(W):
                assert torch.equal(graph.x[b * H * W + r * W + c], feature_map[b, :, r, c])
    assert torch.equal(pixel_graph_to_map(graph), feature_map)
    assert torch.equal(pixel_graph_to_map(graph.x, B, H, W), feature_map)


@SETTINGS
@given(maps)
def test_channel_graph_nodes_are_channels_and_round_trip_exactly(feature_map):
    B, C, H, W = feature_map.shape
    graph = channel_graph(feature_map)
    for b in range(B):
        for c in range(C):
            assert torch.equal(graph.x[b * C + c], feature_map[b, c].flatten())
    assert torch.equal(channel_graph_to_map(graph), feature_map)
    assert torch.equal(channel_graph_to_map(graph.x, B, H, W), feature_map)


@SETTINGS
@given(maps)
def test_complete_builders_are_marked_dense_and_batched_per_graph(feature_map):
    B, C, H, W = feature_map.shape
    for graph, n in ((pixel_graph(feature_map), H * W), (channel_graph(feature_map), C)):
        assert graph.complete and dense_size_of(graph) == n and graph.num_graphs == B
        assert graph.edge_index.size(1) == B * n * n
        source, target = graph.edge_index
        assert torch.equal(source // n, target // n)  # no edge crosses graphs
        assert torch.equal(graph.batch, torch.arange(B).repeat_interleave(n))


def test_grid_and_knn_pixel_graphs_are_not_marked_dense():
    feature_map = torch.randn(2, 3, 4, 5)
    grid = pixel_graph(feature_map, ("grid", 1))
    assert not grid.complete and dense_size_of(grid) is None
    one = grid_edge_index(4, 5, 1)
    assert torch.equal(grid.edge_index, torch.cat([one, one + 20], dim=1))
    knn = pixel_graph(feature_map, ("knn", 3))
    assert dense_size_of(knn) is None and knn.edge_index.size(1) == 2 * 20 * 3
    no_loops = channel_graph(feature_map, ("complete", False))
    assert dense_size_of(no_loops) is None and no_loops.edge_index.size(1) == 2 * 3 * 2


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.data())
def test_region_graph_carries_features_and_au_ids(B, n, d, data):
    features = torch.randn(B, n, d)
    order = torch.tensor(data.draw(st.permutations(range(n))))
    graph = region_graph(features, au_index=order)
    assert torch.equal(graph.x, features.reshape(B * n, d))
    assert torch.equal(graph.au_index, order.repeat(B))  # AU ids are not node ids
    assert torch.equal(graph[B - 1].au_index, order)
    assert dense_size_of(graph) == n and graph.num_graphs == B
    assert torch.equal(region_graph(features).au_index, torch.arange(n).repeat(B))


def test_region_graph_with_an_explicit_edge_index_is_not_dense():
    edge_index = torch.tensor([[0, 1], [1, 2]])
    graph = region_graph(torch.randn(2, 3, 4), topology=edge_index)
    assert dense_size_of(graph) is None
    assert torch.equal(graph.edge_index, torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]]))


def test_gradients_flow_through_builders_and_inverses():
    feature_map = torch.randn(2, 3, 2, 2, requires_grad=True)
    pixel_graph_to_map(pixel_graph(feature_map)).sum().backward()
    assert torch.equal(feature_map.grad, torch.ones_like(feature_map))


@pytest.mark.parametrize("call, match", [
    (lambda: pixel_graph(torch.zeros(3, 4, 4)),
     r"feature_map must be 4-D \[B, C, H, W\]; found shape \(3, 4, 4\)"),
    (lambda: channel_graph("map"), r"feature_map must be a tensor \[B, C, H, W\]; found str"),
    (lambda: region_graph(torch.zeros(2, 3)), r"features must be 3-D .*found shape \(2, 3\)"),
    (lambda: region_graph(torch.zeros(2, 3, 4), au_index=torch.arange(4)),
     r"au_index must have shape \[3\] or \[2, 3\] .*found \(4,\)"),
    (lambda: channel_graph(torch.zeros(1, 2, 3, 3), ("grid", 1)),
     r"topology 'grid' needs a pixel lattice"),
    (lambda: pixel_graph(torch.zeros(1, 2, 3, 3), "grud"),
     r"unknown topology 'grud' \(did you mean 'grid'\?\)"),
    (lambda: region_graph(torch.zeros(1, 3, 2), topology=torch.tensor([[0], [3]])),
     r"topology \(an edge_index\) must index nodes in \[0, 3\); found ids from 0 to 3"),
    (lambda: pixel_graph_to_map(torch.zeros(10, 3), 1, 3, 3),
     r"x must have 1 \* 3 \* 3 = 9 rows .*found 10"),
    (lambda: channel_graph_to_map(torch.zeros(4, 8), 2, 3, 3),
     r"x must have shape \[batch_size \* C, height \* width\] .*found \(4, 8\)"),
    (lambda: channel_graph_to_map(torch.zeros(4, 9)), r"needs batch_size, height and width"),
])
def test_bad_inputs_raise_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()

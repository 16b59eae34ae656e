"""The relational reasoning layer (Eq. 3-8) and its parts: which modules each Table 6
setting builds, the wiring of the hierarchical fusion, the per-AU pooling of G^k, the
branch node layouts and the kNN neighbourhoods."""
from __future__ import annotations

import pytest
import torch
from model_helpers import full_loss, random_landmarks, tiny

from mgrr_pyg.graphs import channel_graph, graph_structure, pixel_graph
from mgrr_pyg.model import (AUGlobalPooling, ChannelGraphAttention, PixelGraphAttention,
                            ReasoningConfig, RelationalReasoningLayer)
from mgrr_pyg.model.reasoning import knn_edges

TABLE6 = {  # D_G, O_G, C_G, P_G
    "table6_1": (False, False, False, False), "table6_2": (True, False, False, False),
    "table6_3": (True, True, False, False), "table6_4": (True, False, True, True),
    "table6_5": (True, True, True, False), "table6_6": (True, True, False, True),
    "table6_full": (True, True, True, True)}


@pytest.mark.parametrize("preset", sorted(TABLE6))
def test_ablation_presets_build_exactly_the_switched_on_modules_and_all_of_them_learn(
        preset, generator, images):
    region, global_, channel, pixel = TABLE6[preset]
    torch.manual_seed(0)
    model = tiny(preset).train()
    names = {name for name, _ in model.named_parameters()}
    for k, layer in enumerate(model.layers):
        prefix = f"layers.{k}."
        assert (layer.region is not None) == region
        assert (layer.channel is not None) == channel
        assert (layer.pixel is not None) == pixel
        assert any(n.startswith(prefix + "region.") for n in names) == region
        assert any(n.startswith(prefix + "channel.") for n in names) == channel
        assert any(n.startswith(prefix + "pixel.") for n in names) == pixel
        has_attention = channel or pixel
        has_global = global_ or has_attention
        assert (layer.attention_fusion is not None) == has_attention
        if has_attention:  # each GFC holds maps only for its switched-on inputs
            assert (layer.attention_fusion.map_a is not None) == channel
            assert (layer.attention_fusion.map_b is not None) == pixel
            assert (layer.attention_fusion.gate_a is not None) == (channel and pixel)
        assert (layer.global_fusion is not None) == has_global
        if has_global:
            assert (layer.global_fusion.map_a is not None) == global_
            assert (layer.global_fusion.map_b is not None) == has_attention
        assert (layer.pooling is not None) == has_global
        assert (layer.au_fusion.map_b is not None) == has_global
    # Every parameter that exists gets a non-zero gradient from the joint loss.
    landmarks = random_landmarks(2, generator)
    out = model(images)
    full_loss(model, out, landmarks, generator)["total"].backward()
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert dead == []
    assert len(out.gated_maps) == (2 if (global_ or channel or pixel) else 0)


def small_layer(**changes) -> RelationalReasoningLayer:
    """n = 3 AUs, d_v = 8, an 8-channel 8x8 map; eval mode with non-trivial BatchNorm
    statistics."""
    torch.manual_seed(0)
    config = ReasoningConfig(embed_dim=8, heads=2).replace(**changes)
    layer = RelationalReasoningLayer(3, 8, 8, 8, config)
    for module in layer.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return layer.eval()


def region_graph(batch: int):
    s = graph_structure("complete", batch, num_nodes=3)
    return s.edge_index, s.node_index, s.dense_size


def test_the_layer_computes_eq_5_to_8_from_its_parts():
    r"""v̄ = D_G(V); G = GFC(O_G, GFC(C_G(O_G), P_G(O_G))); V' = GFC(v̄, pool(G)); O_G' = G.
    Every GFC holds separate maps for its two inputs, so an input order or source that
    differs from the equations gives other values."""
    layer = small_layer()
    features, global_map = torch.randn(2, 3, 8), torch.randn(2, 8, 8, 8)
    graph = region_graph(2)
    with torch.no_grad():
        out_features, out_map, extras = layer(features, global_map, graph)
        refined = layer.region(features.reshape(6, 8), graph[0], graph[1],
                               dense_size=graph[2]).view(2, 3, 8)
        attended = layer.attention_fusion(layer.channel(global_map), layer.pixel(global_map))
        gated = layer.global_fusion(global_map, attended)
        context, attention = layer.pooling(gated)
        expected = layer.au_fusion(refined, context)
    torch.testing.assert_close(extras["gated_map"], gated)
    assert out_map is extras["gated_map"]  # O_G^{k+1} = G^k
    torch.testing.assert_close(extras["pool_attention"], attention)
    torch.testing.assert_close(out_features, expected)


def test_without_global_levels_the_map_passes_through_and_the_features_only_meet_d_g():
    layer = small_layer(use_global=False, use_channel=False, use_pixel=False)
    features, global_map = torch.randn(2, 3, 8), torch.randn(2, 8, 8, 8)
    graph = region_graph(2)
    with torch.no_grad():
        out_features, out_map, extras = layer(features, global_map, graph)
        refined = layer.region(features.reshape(6, 8), graph[0], graph[1],
                               dense_size=graph[2]).view(2, 3, 8)
        expected = layer.au_fusion(refined, None)
    assert out_map is global_map and extras == {"gated_map": None, "pool_attention": None}
    torch.testing.assert_close(out_features, expected)


@pytest.mark.parametrize("prior_init, identity", [("cooccurrence", True), ("identity", True),
                                                  ("random", False)])
def test_prior_init_chooses_how_the_adjacency_starts(prior_init, identity):
    adjacency = small_layer(prior_init=prior_init).adjacency.detach()
    assert torch.equal(adjacency, torch.eye(3)) == identity


def written_out_pooling(pooling: AUGlobalPooling, gated_map: torch.Tensor):
    """Per sample and AU: softmax over pixels of q_i . G(p) / sqrt(c), the weighted sum of
    G(p), W_g . + b_g, then eval-mode BatchNorm of that AU's rows."""
    batch, channels, height, width = gated_map.shape
    norm, d = pooling.norm, pooling.out_channels
    contexts, attentions = torch.zeros(batch, pooling.num_aus, d), []
    for b in range(batch):
        pixels = [gated_map[b, :, r, q] for r in range(height) for q in range(width)]
        per_au = []
        for i in range(pooling.num_aus):
            scores = torch.stack([pooling.query[i] @ g for g in pixels]) / channels ** 0.5
            alpha = torch.exp(scores - scores.max())
            alpha = alpha / alpha.sum()
            pooled = sum(a * g for a, g in zip(alpha, pixels))
            linear = pooling.project.weight @ pooled + pooling.project.bias
            rows = slice(i * d, (i + 1) * d)
            contexts[b, i] = ((linear - norm.running_mean[rows])
                              / (norm.running_var[rows] + norm.eps).sqrt()
                              * norm.weight[rows] + norm.bias[rows])
            per_au.append(alpha.view(height, width))
        attentions.append(torch.stack(per_au))
    return contexts, torch.stack(attentions)


def test_attention_pooling_equals_the_written_out_softmax():
    torch.manual_seed(0)
    pooling = AUGlobalPooling(4, 3, 2, "attention")
    pooling.norm.running_mean.uniform_(-1, 1)
    pooling.norm.running_var.uniform_(0.5, 2)
    pooling.eval()
    gated_map = torch.randn(2, 4, 3, 5)
    with torch.no_grad():
        context, attention = pooling(gated_map)
        expected_context, expected_attention = written_out_pooling(pooling, gated_map)
    torch.testing.assert_close(attention, expected_attention)
    torch.testing.assert_close(context, expected_context)


def test_mean_pooling_gives_every_au_the_average_pixel():
    torch.manual_seed(0)
    pooling = AUGlobalPooling(4, 3, 2, "mean").eval()
    gated_map = torch.randn(2, 4, 3, 5)
    with torch.no_grad():
        context, attention = pooling(gated_map)
        linear = gated_map.mean((2, 3)) @ pooling.project.weight.T + pooling.project.bias
        norm = pooling.norm  # fresh statistics: mean 0, var 1, weight 1, bias 0
        expected = (linear / (1 + norm.eps) ** 0.5).unsqueeze(1).expand(-1, 2, -1)
    assert attention is None and pooling.query is None
    torch.testing.assert_close(context, expected)


def test_knn_neighbourhoods_are_the_k_nearest_nodes_of_the_same_graph_plus_the_node():
    torch.manual_seed(0)
    x = torch.randn(2 * 6, 3)  # two graphs of 6 nodes
    edge_index = knn_edges(x, 2, num_graphs=2, num_nodes=6)
    for target in range(12):
        graph = target // 6
        members = range(graph * 6, graph * 6 + 6)
        others = sorted((float((x[target] - x[j]).norm()), j) for j in members if j != target)
        expected = {target} | {j for _, j in others[:2]}
        assert set(edge_index[0, edge_index[1] == target].tolist()) == expected, target


def test_branch_node_layouts_match_the_graph_builders():
    """The branches reshape maps to nodes without building a Batch; the layout must be the
    one mgrr_pyg.graphs.channel_graph / pixel_graph define (and invert)."""
    feature_map = torch.randn(2, 4, 22, 22)
    channel = ChannelGraphAttention(4, 44, embed_dim=8, heads=2)
    pixel = PixelGraphAttention(4, 44, embed_dim=8, heads=2)
    assert torch.equal(channel.to_nodes(feature_map), channel_graph(feature_map).x)
    assert torch.equal(pixel.to_nodes(feature_map), pixel_graph(feature_map).x)
    assert torch.equal(channel.from_nodes(channel.to_nodes(feature_map), 2), feature_map)
    assert torch.equal(pixel.from_nodes(pixel.to_nodes(feature_map), 2), feature_map)

r"""One relational reasoning layer against a straight-line reference of Eq. 3-8 written
in this file from the paper (values, not shapes), for both readings of the global stream
and with the package's additions on and off; and what feeds layer k+1 in a K = 2 model.

The reference reads the layer's parameters by name and nothing else of the package:

- Eq. 5: :math:`\bar{v}_i = W_{s(,i)} v_i + \sum_j A_{ij} W_{n(,j)} v_j + b`;
- Eq. 3-4 per branch: conv3x3 s2, nodes (channels or pixels), per head
  :math:`\mathrm{softmax}_j(q_i \cdot k_j / \sqrt{d})`, the heads' weighted values
  concatenated, :math:`\mathrm{ReLU}(U_c \cdot)`, transposed conv back to the map;
- Eq. 7-8: :math:`\mathrm{GFC}(a, b) = \beta \lVert W_a a \rVert + (1 - \beta)
  \lVert W_b b \rVert`, :math:`\beta = \sigma(W'_a a + W'_b b)`, the norm over channels
  (times :math:`\sqrt{C}` with ``fusion_rescale``);
- Eq. 6: :math:`G = \mathrm{GFC}(O_G, \mathrm{GFC}(C_G, P_G))`,
  :math:`v_i' = \mathrm{GFC}(\bar{v}_i, g_i)` with :math:`g_i` the pooled :math:`G`;
  the map handed on is :math:`G` ("gated") or the layer's input :math:`O_G` ("stem").
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mgrr_pyg.graphs import graph_structure
from mgrr_pyg.model import ReasoningConfig, RelationalReasoningLayer, create_model

N_AUS, D_V, CHANNELS, SIDE = 3, 6, 4, 8  # AUs, AU feature width, c and side of O_G
EMBED, HEADS = 8, 2

DEFAULTS = dict(fusion_rescale=True, pooling="attention", pooling_batchnorm=True,
                per_au_weights=False)
LITERAL = dict(fusion_rescale=False, pooling="mean", pooling_batchnorm=False,
               per_au_weights=True)
SETTINGS = {f"{name}-{stream}": dict(switches, global_stream=stream)
            for name, switches in (("defaults", DEFAULTS), ("literal", LITERAL))
            for stream in ("gated", "stem")}


def l2_normalised(x: torch.Tensor, dim: int, scale: float) -> torch.Tensor:
    return scale * x / x.norm(dim=dim, keepdim=True).clamp_min(1e-12)


def conv1x1(conv, x):  # a 1x1 convolution on [B, C, H, W]
    out = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x)
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


def linear(lin, x):
    return x @ lin.weight.T + (0 if lin.bias is None else lin.bias)


def gated_fusion(cell, a, b, apply, dim, rescale):
    """Eq. 7-8 (one input absent: that input's map and normalisation only)."""
    scale = math.sqrt(cell.out_channels) if rescale else 1.0
    if b is None:
        return l2_normalised(apply(cell.map_a, a), dim, scale)
    if a is None:
        return l2_normalised(apply(cell.map_b, b), dim, scale)
    beta = torch.sigmoid(apply(cell.gate_a, a) + apply(cell.gate_b, b))
    return (beta * l2_normalised(apply(cell.map_a, a), dim, scale)
            + (1 - beta) * l2_normalised(apply(cell.map_b, b), dim, scale))


def graph_attention(attention, nodes):
    """Eq. 3-4 on one complete graph (self included): nodes [num_nodes, features]."""
    d = EMBED // HEADS
    q, k, v = (linear(lin, nodes).view(len(nodes), HEADS, d)
               for lin in (attention.lin_query, attention.lin_key, attention.lin_value))
    heads = []
    for head in range(HEADS):
        scores = q[:, head] @ k[:, head].T / math.sqrt(d)  # [i, j]
        heads.append(torch.softmax(scores, dim=1) @ v[:, head])
    return torch.relu(linear(attention.lin_out, torch.cat(heads, dim=1)))


def branch(module, global_map, pixels_are_nodes: bool):
    """C_G (channels are nodes) or P_G (pixels are nodes) of Eq. 3-4."""
    reduced = F.conv2d(global_map, module.reduce.weight, module.reduce.bias, stride=2, padding=1)
    batch, c, h, w = reduced.shape
    outputs = []
    for sample in reduced:
        nodes = sample.reshape(c, h * w)
        if pixels_are_nodes:
            outputs.append(graph_attention(module.attention, nodes.T).T.reshape(c, h, w))
        else:
            outputs.append(graph_attention(module.attention, nodes).reshape(c, h, w))
    return F.conv_transpose2d(torch.stack(outputs), module.expand.weight, module.expand.bias,
                              stride=2, padding=1)


def region_update(region, features, per_au):
    """Eq. 5 over the complete AU graph, node by node."""
    out = torch.zeros_like(features)
    for b in range(features.size(0)):
        for i in range(N_AUS):
            if per_au:
                own = features[b, i] @ region.weight_self[i]
                neighbours = [features[b, j] @ region.weight_neighbour[j] for j in range(N_AUS)]
            else:
                own = region.lin_self.weight @ features[b, i]
                neighbours = [region.lin_neighbour.weight @ features[b, j] for j in range(N_AUS)]
            out[b, i] = own + sum(region.adjacency[i, j] * neighbours[j]
                                  for j in range(N_AUS)) + region.bias
    return out


def pooled_context(pooling, gated_map, mode, batchnorm):
    """g_i: G pooled per AU (softmax of q_i . G(p) / sqrt(c), or the mean), the linear
    map, then (with the package's addition) eval-mode BatchNorm of AU i's rows."""
    batch, c = gated_map.shape[:2]
    pixels = gated_map.flatten(2)  # [B, c, P]
    out = torch.zeros(batch, N_AUS, D_V, dtype=gated_map.dtype)
    for b in range(batch):
        for i in range(N_AUS):
            if mode == "mean":
                pooled = pixels[b].mean(1)
            else:
                pooled = pixels[b] @ torch.softmax(pooling.query[i] @ pixels[b] / math.sqrt(c), 0)
            g = pooling.project.weight @ pooled + pooling.project.bias
            if batchnorm:
                rows, norm = slice(i * D_V, (i + 1) * D_V), pooling.norm
                g = ((g - norm.running_mean[rows]) / (norm.running_var[rows] + norm.eps).sqrt()
                     * norm.weight[rows] + norm.bias[rows])
            out[b, i] = g
    return out


def reference_layer(layer, features, global_map, settings):
    rescale = settings["fusion_rescale"]
    refined = region_update(layer.region, features, settings["per_au_weights"])
    channel = branch(layer.channel, global_map, pixels_are_nodes=False)
    pixel = branch(layer.pixel, global_map, pixels_are_nodes=True)
    attended = gated_fusion(layer.attention_fusion, channel, pixel, conv1x1, 1, rescale)
    gated = gated_fusion(layer.global_fusion, global_map, attended, conv1x1, 1, rescale)
    context = pooled_context(layer.pooling, gated, settings["pooling"],
                             settings["pooling_batchnorm"])
    new_features = gated_fusion(layer.au_fusion, refined, context, linear, -1, rescale)
    handed_on = gated if settings["global_stream"] == "gated" else global_map
    return new_features, handed_on, gated


def layer_with(settings) -> RelationalReasoningLayer:
    torch.manual_seed(0)
    config = ReasoningConfig(embed_dim=EMBED, heads=HEADS, **settings)
    layer = RelationalReasoningLayer(N_AUS, D_V, CHANNELS, SIDE, config).double()
    with torch.no_grad():
        layer.region.adjacency.uniform_(-1, 1)  # not the identity: every A_ij matters
        layer.region.bias.uniform_(-0.5, 0.5)  # (initialised to zero)
        for module in layer.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return layer.eval()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_one_layer_equals_the_written_out_equations(name):
    settings = SETTINGS[name]
    layer = layer_with(settings)
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, N_AUS, D_V, generator=generator, dtype=torch.float64)
    global_map = torch.randn(2, CHANNELS, SIDE, SIDE, generator=generator, dtype=torch.float64)
    structure = graph_structure("complete", 2, num_nodes=N_AUS)
    graph = (structure.edge_index, structure.node_index, structure.dense_size)
    with torch.no_grad():
        out_features, out_map, extras = layer(features, global_map, graph)
        expected_features, expected_map, expected_gated = reference_layer(
            layer, features, global_map, settings)
    torch.testing.assert_close(extras["gated_map"], expected_gated)
    torch.testing.assert_close(out_map, expected_map)
    torch.testing.assert_close(out_features, expected_features)
    if settings["global_stream"] == "stem":
        assert out_map is global_map  # the stem's map, unchanged, for the next layer


@pytest.mark.parametrize("stream", ["gated", "stem"])
def test_what_feeds_the_second_layer_of_a_two_layer_model(stream, images):
    """Layer 1 gets V^1 from layer 0 and, as O_G^1, layer 0's gated map G^0 ("gated") or
    the stem's O_G ("stem"); the classifiers read layer 1's V^2."""
    torch.manual_seed(0)
    model = create_model("tiny", num_layers=2, global_stream=stream).eval()
    seen = {}
    model.layers[0].register_forward_hook(lambda m, args, out: seen.update(first=(args, out)))
    model.layers[1].register_forward_pre_hook(lambda m, args: seen.update(second_in=args))
    model.layers[1].register_forward_hook(lambda m, args, out: seen.update(second_out=out))
    with torch.no_grad():
        out = model(images)
    (first_features, first_map, *_), (v1, map1, extras0) = seen["first"]
    second_features, second_map = seen["second_in"][:2]
    assert torch.equal(first_map, out.global_map)  # layer 0 reads the stem's O_G
    assert torch.equal(first_features, out.region_features)  # and V^0
    assert second_features is v1 and not torch.equal(v1, first_features)
    gated0 = extras0["gated_map"]
    assert torch.equal(out.gated_maps[0], gated0)
    if stream == "gated":
        assert torch.equal(second_map, gated0)
        assert not torch.equal(second_map, out.global_map)
    else:
        assert torch.equal(second_map, out.global_map)
        assert not torch.equal(second_map, gated0)
    assert torch.equal(out.au_features, seen["second_out"][0])
    with torch.no_grad():
        expected_logits = (out.au_features * model.local_heads.weight).sum(-1) \
            + model.local_heads.bias
    torch.testing.assert_close(out.local_logits, expected_logits)

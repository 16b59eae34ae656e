"""resolve_layer: our layers by name, any PyG conv by name or class, one forward
signature for the model."""
import pytest
import torch
from torch_geometric.nn import GATConv, GATv2Conv, GCNConv, TransformerConv

from mgrr_pyg.graphs import graph_structure
from mgrr_pyg.layers import (AttentionLayerAdapter, MultiHeadGraphAttention, RegionGraphConv,
                             RegionLayerAdapter, register_layer, registered_layers,
                             resolve_layer)


def test_registered_names_build_our_layers_with_model_kwargs():
    region = resolve_layer("region", "region_graph_conv", 8, 6, num_aus=4,
                           adjacency_init="random", per_au_weights=True)
    assert isinstance(region, RegionGraphConv) and region.per_au_weights and region.num_aus == 4
    attention = resolve_layer("attention", "multihead_graph_attention", 8, 6, embed_dim=16,
                              heads=4)
    assert isinstance(attention, MultiHeadGraphAttention) and attention.heads == 4
    assert isinstance(resolve_layer("attention", MultiHeadGraphAttention, 8, 8, embed_dim=8,
                                    heads=2), MultiHeadGraphAttention)
    assert "region_graph_conv" in registered_layers("region")


def test_swapped_layers_run_and_backpropagate_with_the_model_signature():
    """A GATv2Conv-backed attention layer and a GCNConv-backed region layer,
    called exactly as the model calls ours."""
    torch.manual_seed(0)
    B, n = 2, 5
    s = graph_structure(("complete", n), B)
    attention = resolve_layer("attention", "GATv2Conv", 6, 8, embed_dim=32, heads=4)
    region = resolve_layer("region", "GCNConv", 8, 3, num_aus=n, adjacency_init="identity")
    assert isinstance(attention.conv, GATv2Conv) and attention.conv.heads == 4
    assert isinstance(region, RegionLayerAdapter) and isinstance(region.conv, GCNConv)

    x = torch.randn(B * n, 6, requires_grad=True)
    hidden = attention(x, s.edge_index, dense_size=s.dense_size)
    out = region(hidden, s.edge_index, s.node_index, dense_size=s.dense_size)
    assert hidden.shape == (B * n, 8) and (hidden >= 0).all()  # ReLU as in Eq. 4
    assert out.shape == (B * n, 3)
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for module in (attention, region):
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None, name


@pytest.mark.parametrize("name_or_cls", ["GATConv", "gatconv", GATConv, "TransformerConv",
                                         TransformerConv])
def test_multi_head_pyg_convs_keep_the_output_width(name_or_cls):
    layer = resolve_layer("attention", name_or_cls, 6, 8, heads=4)
    assert layer.conv.heads == 4 and layer.conv.concat
    s = graph_structure(("grid", 3, 3), 2)
    out, (edges, alpha) = layer(torch.randn(18, 6), s.edge_index, return_attention_weights=True)
    assert out.shape == (18, 8) and alpha.shape[-1] == 4 and edges.size(0) == 2
    # Heads that do not divide the width: averaged instead of concatenated.
    odd = resolve_layer("attention", name_or_cls, 6, 7, heads=4)
    assert not odd.conv.concat and odd(torch.randn(18, 6), s.edge_index).shape == (18, 7)


def test_adapters_forward_keyword_signatures_match_ours():
    import inspect
    ours = inspect.signature(MultiHeadGraphAttention.forward).parameters
    theirs = inspect.signature(AttentionLayerAdapter.forward).parameters
    assert list(ours) == list(theirs)
    assert (list(inspect.signature(RegionGraphConv.forward).parameters)
            == list(inspect.signature(RegionLayerAdapter.forward).parameters))


def test_sage_conv_by_name_and_a_registered_custom_layer(monkeypatch):
    import copy

    from mgrr_pyg.layers import resolve as resolve_module
    monkeypatch.setattr(resolve_module, "_REGISTRY", copy.deepcopy(resolve_module._REGISTRY))
    sage = resolve_layer("region", "SAGEConv", 4, 3, num_aus=2)
    assert sage(torch.randn(3, 4), torch.tensor([[0, 1], [1, 2]])).shape == (3, 3)

    class Doubling(RegionGraphConv):
        def forward(self, x, edge_index, au_index, dense_size=None):
            return 2 * super().forward(x, edge_index, au_index, dense_size)

    register_layer("region", "doubling", Doubling)
    assert isinstance(resolve_layer("region", "doubling", 4, 4, num_aus=3), Doubling)
    assert "doubling" in registered_layers("region")


@pytest.mark.parametrize("call, match", [
    (lambda: resolve_layer("pixel", "GCNConv", 4, 4), r"kind must be one of .*found 'pixel'"),
    (lambda: resolve_layer("region", "NoSuchConv", 4, 4),
     r"unknown region layer 'NoSuchConv': expected one of \('region_graph_conv',\)"),
    (lambda: resolve_layer("region", "multihead_graph_attention", 4, 4),
     r"'multihead_graph_attention' is a 'attention' layer; found it asked for as kind 'region'"),
    (lambda: resolve_layer("attention", "GCNConv", 4, 4, dropuot=0.1),
     r"GCNConv takes no argument 'dropuot'"),
    (lambda: resolve_layer("attention", "GATConv", 4, 7, heads=2, concat=True),
     r"concat=True needs heads=2 to divide out_channels=7"),
    (lambda: resolve_layer("region", torch.nn.Linear, 4, 4),
     r"neither a registered region layer nor a torch_geometric MessagePassing class"),
    (lambda: resolve_layer("region", "ChebConv", 4, 4), r"could not build ChebConv\(4, 4"),
])
def test_bad_requests_raise_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_weights_from_a_conv_without_attention_are_refused():
    layer = resolve_layer("attention", "GCNConv", 4, 4)
    with pytest.raises(ValueError, match=r"GCNConv gives no attention weights"):
        layer(torch.randn(3, 4), torch.tensor([[0, 1], [1, 2]]), return_attention_weights=True)

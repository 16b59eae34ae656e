"""Eq. 3-4: MultiHeadGraphAttention against a masked dense einsum reference;
dense (SDPA) == fused message passing == plain PyG propagate."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.graphs import graph_structure
from mgrr_pyg.layers import MultiHeadGraphAttention

SETTINGS = settings(max_examples=30, deadline=None)
TOL64 = dict(rtol=1e-10, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-6)


def make_layer(in_channels, out_channels, heads, head_dim, seed, dtype=torch.float64):
    torch.manual_seed(seed)
    return MultiHeadGraphAttention(in_channels, out_channels, embed_dim=heads * head_dim,
                                   heads=heads).to(dtype)


def masked_dense_attention(layer, x, edge_index):
    """Eq. 3-4 written out with a dense [N, N] neighbourhood mask and einsum;
    a node with no incoming edge aggregates nothing."""
    n, heads, d = x.size(0), layer.heads, layer.head_dim
    q = (x @ layer.lin_query.weight.t() + layer.lin_query.bias).view(n, heads, d)
    k = (x @ layer.lin_key.weight.t() + layer.lin_key.bias).view(n, heads, d)
    v = (x @ layer.lin_value.weight.t() + layer.lin_value.bias).view(n, heads, d)
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True  # [target i, source j]
    scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(d)
    scores = scores.masked_fill(~mask, float("-inf"))
    alpha = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # [H, i, j]
    heads_out = torch.einsum("hij,jhd->ihd", alpha, v).reshape(n, heads * d)
    out = torch.relu(heads_out @ layer.lin_out.weight.t() + layer.lin_out.bias)
    return out, alpha


@st.composite
def complete_cases(draw):
    return dict(B=draw(st.integers(1, 3)), n=draw(st.integers(1, 6)),
                heads=draw(st.sampled_from((1, 2, 4))), head_dim=draw(st.integers(1, 4)),
                in_channels=draw(st.integers(1, 5)), out_channels=draw(st.integers(1, 5)),
                seed=draw(st.integers(0, 2**31 - 1)))


def run_path(layer, x_seed, shape, edge_index, dtype, weights, **kwargs):
    layer.zero_grad()
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(x_seed))
    x.requires_grad_()
    out, (returned_edges, alpha) = layer(x, edge_index, return_attention_weights=True, **kwargs)
    assert returned_edges is edge_index
    (out * weights).sum().backward()
    return out, alpha, x.grad, {k: p.grad.clone() for k, p in layer.named_parameters()}


@pytest.mark.parametrize("dtype, tol", [(torch.float64, TOL64), (torch.float32, TOL32)])
@SETTINGS
@given(case=complete_cases())
def test_dense_and_message_passing_paths_agree(dtype, tol, case):
    B, n = case["B"], case["n"]
    layer = make_layer(case["in_channels"], case["out_channels"], case["heads"],
                       case["head_dim"], case["seed"], dtype)
    edge_index = graph_structure(("complete", n), B).edge_index
    weights = torch.randn(B * n, case["out_channels"], dtype=dtype)
    args = (case["seed"], (B * n, case["in_channels"]), edge_index, dtype, weights)

    layer.fused = True
    fused = run_path(layer, *args)
    dense = run_path(layer, *args, dense_size=n)
    layer.fused = False
    plain = run_path(layer, *args)
    for other in (dense, plain):
        for mine, theirs in zip(fused[:3], other[:3]):  # output, alpha, grad of x
            torch.testing.assert_close(theirs, mine, **tol)
        for name in fused[3]:
            torch.testing.assert_close(other[3][name], fused[3][name], **tol, msg=name)
    # SDPA (no weights asked) gives the same output as the explicit softmax.
    with torch.no_grad():
        x = torch.randn(B * n, case["in_channels"], dtype=dtype)
        torch.testing.assert_close(layer(x, edge_index, dense_size=n),
                                   layer(x, edge_index, dense_size=n,
                                         return_attention_weights=True)[0], **tol)


@st.composite
def random_graphs(draw):
    n = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, n, generator=g) < draw(st.floats(0.0, 1.0))
    target, source = mask.nonzero(as_tuple=True)
    edge_index = torch.stack([source, target])[:, torch.randperm(target.numel(), generator=g)]
    return n, edge_index, seed, draw(st.sampled_from((1, 2, 3))), draw(st.integers(1, 3))


@SETTINGS
@given(random_graphs(), st.booleans())
def test_message_passing_equals_masked_dense_einsum_on_random_graphs(graph, fused):
    n, edge_index, seed, heads, head_dim = graph
    layer = make_layer(3, 2, heads, head_dim, seed)
    layer.fused = fused
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    out, (_, alpha) = layer(x, edge_index, return_attention_weights=True)
    expected_out, expected_alpha = masked_dense_attention(layer, x, edge_index)
    torch.testing.assert_close(out, expected_out, **TOL64)
    torch.testing.assert_close(alpha, expected_alpha[:, edge_index[1], edge_index[0]].t(), **TOL64)


@SETTINGS
@given(random_graphs())
def test_attention_rows_sum_to_one_over_each_neighbourhood(graph):
    n, edge_index, seed, heads, head_dim = graph
    layer = make_layer(2, 2, heads, head_dim, seed)
    _, (_, alpha) = layer(torch.randn(n, 2, dtype=torch.float64), edge_index,
                          return_attention_weights=True)
    assert (alpha > 0).all()
    totals = torch.zeros(n, heads, dtype=torch.float64).index_add_(0, edge_index[1], alpha)
    has_neighbours = torch.bincount(edge_index[1], minlength=n) > 0
    torch.testing.assert_close(totals[has_neighbours],
                               torch.ones_like(totals[has_neighbours]), **TOL64)


@SETTINGS
@given(complete_cases(), st.data())
def test_permuting_nodes_permutes_the_output(case, data):
    B, n = case["B"], case["n"]
    layer = make_layer(case["in_channels"], case["out_channels"], case["heads"],
                       case["head_dim"], case["seed"])
    x = torch.randn(B * n, case["in_channels"], dtype=torch.float64)
    edge_index = graph_structure(("complete", n), B).edge_index
    out = layer(x, edge_index, dense_size=n)
    within = torch.cat([torch.tensor(data.draw(st.permutations(range(n)))) + b * n
                        for b in range(B)])
    torch.testing.assert_close(layer(x[within], edge_index, dense_size=n), out[within], **TOL64)
    perm = torch.tensor(data.draw(st.permutations(range(B * n))))
    new_id = torch.empty_like(perm)
    new_id[perm] = torch.arange(B * n)
    torch.testing.assert_close(layer(x[perm], new_id[edge_index]), out[perm], **TOL64)


@SETTINGS
@given(complete_cases(), st.booleans())
def test_no_attention_crosses_graphs_in_a_batch(case, dense):
    B, n = case["B"] + 1, case["n"]
    layer = make_layer(case["in_channels"], case["out_channels"], case["heads"],
                       case["head_dim"], case["seed"])
    edge_index = graph_structure(("complete", n), B).edge_index
    kwargs = dict(dense_size=n) if dense else {}
    x = torch.randn(B * n, case["in_channels"], dtype=torch.float64)
    out, (_, alpha) = layer(x, edge_index, return_attention_weights=True, **kwargs)
    changed = x.clone()
    changed[n:] = torch.randn(changed[n:].shape, dtype=torch.float64) * 10  # all but graph 0
    out_changed, (_, alpha_changed) = layer(changed, edge_index, return_attention_weights=True,
                                            **kwargs)
    torch.testing.assert_close(out_changed[:n], out[:n], **TOL64)
    first_graph = edge_index[1] < n
    torch.testing.assert_close(alpha_changed[first_graph], alpha[first_graph], **TOL64)


@SETTINGS
@given(complete_cases())
def test_dense_attention_weights_follow_the_given_edge_order(case):
    B, n = case["B"], case["n"]
    layer = make_layer(case["in_channels"], case["out_channels"], case["heads"],
                       case["head_dim"], case["seed"])
    x = torch.randn(B * n, case["in_channels"], dtype=torch.float64)
    edge_index = graph_structure(("complete", n), B).edge_index
    shuffle = torch.randperm(edge_index.size(1))
    _, (_, alpha) = layer(x, edge_index, dense_size=n, return_attention_weights=True)
    _, (_, shuffled) = layer(x, edge_index[:, shuffle], dense_size=n,
                             return_attention_weights=True)
    torch.testing.assert_close(shuffled, alpha[shuffle], **TOL64)


def test_relu_output_and_repr():
    layer = MultiHeadGraphAttention(6, 3, embed_dim=8, heads=2)
    edge_index = graph_structure(("grid", 3, 3), 2).edge_index
    out = layer(torch.randn(18, 6), edge_index)
    assert out.shape == (18, 3) and (out >= 0).all()
    assert repr(layer) == "MultiHeadGraphAttention(6, 3, heads=2)"
    assert MultiHeadGraphAttention(5, embed_dim=4, heads=2).out_channels == 5


@pytest.mark.parametrize("call, match", [
    (lambda l, e: l(torch.zeros(4, 3), e),
     r"MultiHeadGraphAttention: x must have 6 features \(in_channels\); found 3"),
    (lambda l, e: l(torch.zeros(4, 6), e, dense_size=3),
     r"dense_size=3 must divide the number of nodes .*found 4 nodes"),
    (lambda l, e: l(torch.zeros(4, 6), e, dense_size=0), r"dense_size must be a positive int"),
    (lambda l, e: l(torch.zeros(4, 6), e.t()),
     r"edge_index must be a \[2, E\] tensor; found \(16, 2\)"),
])
def test_bad_inputs_raise_errors_naming_them(call, match):
    layer = MultiHeadGraphAttention(6, 3, embed_dim=8, heads=2)
    with pytest.raises(ValueError, match=match):
        call(layer, graph_structure(("complete", 4), 1).edge_index)


def test_heads_must_divide_embed_dim():
    with pytest.raises(ValueError,
                       match=r"heads must be >= 1 and divide embed_dim=10; found heads=4"):
        MultiHeadGraphAttention(3, 3, embed_dim=10, heads=4)

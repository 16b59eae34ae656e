"""Eq. 3-4: MultiHeadGraphAttention against a masked dense einsum reference;
dense (SDPA) == chunked edge kernels == plain PyG propagate; every adjacency form,
PyG's explainers, typed overloads, torch.compile (as PyG's test_gat_conv.py)."""
import inspect
import math
import typing

import pytest
import torch
from adjacency_forms import FORMS, adjacency, dense_weights
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm import AttentionExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.utils import to_torch_csr_tensor

from mgrr_pyg.graphs import channel_graph, dense_size_of, graph_structure
from mgrr_pyg.layers import MultiHeadGraphAttention

SETTINGS = settings(max_examples=30, deadline=None)
TOL64 = dict(rtol=1e-10, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-6)


def make_layer(in_channels, out_channels, heads, head_dim, seed, dtype=torch.float64):
    torch.manual_seed(seed)
    return MultiHeadGraphAttention(in_channels, out_channels, embed_dim=heads * head_dim,
                                   heads=heads).to(dtype)


def masked_dense_attention(layer, x, edge_index, edge_mask=None):
    """Eq. 3-4 written out with a dense [N, N] neighbourhood mask and einsum;
    a node with no incoming edge aggregates nothing. ``edge_mask`` [E] scales each
    edge's message alpha_ij v_j (what PyG's explainers do to messages)."""
    n, heads, d = x.size(0), layer.heads, layer.head_dim
    q = (x @ layer.lin_query.weight.t() + layer.lin_query.bias).view(n, heads, d)
    k = (x @ layer.lin_key.weight.t() + layer.lin_key.bias).view(n, heads, d)
    v = (x @ layer.lin_value.weight.t() + layer.lin_value.bias).view(n, heads, d)
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True  # [target i, source j]
    scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(d)
    scores = scores.masked_fill(~mask, float("-inf"))
    alpha = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # [H, i, j]
    scale = torch.ones(n, n, dtype=x.dtype)
    if edge_mask is not None:
        scale[edge_index[1], edge_index[0]] = edge_mask.to(x.dtype)
    heads_out = torch.einsum("hij,ij,jhd->ihd", alpha, scale, v).reshape(n, heads * d)
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

    layer.edge_kernels = True
    kernels = run_path(layer, *args)
    dense = run_path(layer, *args, dense_size=n)
    layer.edge_kernels = False
    plain = run_path(layer, *args)
    for other in (dense, plain):
        for mine, theirs in zip(kernels[:3], other[:3]):  # output, alpha, grad of x
            torch.testing.assert_close(theirs, mine, **tol)
        for name in kernels[3]:
            torch.testing.assert_close(other[3][name], kernels[3][name], **tol, msg=name)
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
def test_message_passing_equals_masked_dense_einsum_on_random_graphs(graph, edge_kernels):
    n, edge_index, seed, heads, head_dim = graph
    layer = make_layer(3, 2, heads, head_dim, seed)
    layer.edge_kernels = edge_kernels
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
     r"edge_index must be a \[2, E\] integer tensor \(or an EdgeIndex, a torch sparse adj_t "
     r"\[N, N\] or a SparseTensor adj_t\); found \(16, 2\)"),
    (lambda l, e: l(torch.zeros(4, 6), e.float()),
     r"edge_index must hold integer node ids; found dtype torch.float32"),
    (lambda l, e: l(torch.zeros(4, 6), to_torch_csr_tensor(e, size=(4, 5))),
     r"a torch sparse \(torch.sparse_csr\) adjacency must be adj_t of size \[4, 4\] "
     r"\(target, source; 4 nodes in x\); found size \[4, 5\]"),
])
def test_bad_inputs_raise_errors_naming_them(call, match):
    layer = MultiHeadGraphAttention(6, 3, embed_dim=8, heads=2)
    with pytest.raises(ValueError, match=match):
        call(layer, graph_structure(("complete", 4), 1).edge_index)


def test_heads_must_divide_embed_dim():
    with pytest.raises(ValueError,
                       match=r"heads must be >= 1 and divide embed_dim=10; found heads=4"):
        MultiHeadGraphAttention(3, 3, embed_dim=10, heads=4)


# -- every adjacency form (PyG's conventions) --------------------------------------------

def weights_on_edges(alpha, edge_index):
    """The reference's [H, i, j] attention as [target, source, H], zero off the edges."""
    n = alpha.size(-1)
    on_edges = torch.zeros(n, n, dtype=torch.bool)
    on_edges[edge_index[1], edge_index[0]] = True
    return alpha.permute(1, 2, 0) * on_edges.unsqueeze(-1)


@SETTINGS
@given(random_graphs(), st.booleans())
def test_every_adjacency_form_gives_the_same_output_and_weights(graph, edge_kernels):
    n, edge_index, seed, heads, head_dim = graph
    layer = make_layer(3, 2, heads, head_dim, seed)
    layer.edge_kernels = edge_kernels
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected_out, expected_alpha = masked_dense_attention(layer, x, edge_index)
    for form in FORMS:
        adj = adjacency(form, edge_index, n)
        torch.testing.assert_close(layer(x, adj), expected_out, **TOL64, msg=form)
        out, returned = layer(x, adj, return_attention_weights=True)
        torch.testing.assert_close(out, expected_out, **TOL64, msg=form)
        torch.testing.assert_close(dense_weights(returned, n),
                                   weights_on_edges(expected_alpha, edge_index), **TOL64,
                                   msg=form)


@SETTINGS
@given(complete_cases())
def test_the_dense_path_takes_every_adjacency_form(case):
    B, n = case["B"], case["n"]
    layer = make_layer(case["in_channels"], case["out_channels"], case["heads"],
                       case["head_dim"], case["seed"])
    edge_index = graph_structure(("complete", n), B).edge_index
    x = torch.randn(B * n, case["in_channels"], dtype=torch.float64)
    expected_out, expected_alpha = masked_dense_attention(layer, x, edge_index)
    for form in FORMS:
        out, returned = layer(x, adjacency(form, edge_index, B * n), dense_size=n,
                              return_attention_weights=True)
        torch.testing.assert_close(out, expected_out, **TOL64, msg=form)
        torch.testing.assert_close(dense_weights(returned, B * n),
                                   weights_on_edges(expected_alpha, edge_index), **TOL64,
                                   msg=form)


def test_return_attention_weights_shapes_in_each_form():
    """As PyG's GATConv: (edge_index, alpha) for an edge list, (adj_t with alpha as
    values, alpha) for a torch sparse adj_t."""
    layer = MultiHeadGraphAttention(8, 16, embed_dim=8, heads=2)
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 1, 1], [0, 0, 1, 1, 2, 3, 1]])
    out, (edges, alpha) = layer(x, edge_index, return_attention_weights=True)
    assert out.shape == (4, 16) and edges is edge_index and alpha.shape == (7, 2)
    assert alpha.min() >= 0 and alpha.max() <= 1
    for form in ("coo", "csr", "csc"):
        out_sparse, (adj, alpha_sparse) = layer(x, adjacency(form, edge_index, 4),
                                                return_attention_weights=True)
        torch.testing.assert_close(out_sparse, out)
        assert adj.shape == (4, 4, 2) and adj._nnz() == 7 and alpha_sparse.shape == (7, 2)
        assert adj.layout == getattr(torch, f"sparse_{form}")


def test_the_dense_path_runs_only_where_a_builder_marked_the_graph_complete(monkeypatch):
    layer = MultiHeadGraphAttention(4, 3, embed_dim=4, heads=2)
    taken = []
    for path in ("dense_attention", "edge_kernel_attention", "propagate_attention"):
        method = getattr(layer, path)
        monkeypatch.setattr(layer, path, lambda *a, _m=method, _p=path, **k:
                            taken.append(_p) or _m(*a, **k))
    feature_map = torch.randn(2, 3, 2, 2)  # 3 channel nodes of 4 values per graph

    def run(graph, **kwargs):
        taken.clear()
        layer(graph.x, kwargs.pop("adj", graph.edge_index), dense_size=dense_size_of(graph),
              **kwargs)
        return taken[0]

    complete, no_loops = channel_graph(feature_map), channel_graph(feature_map, ("complete", False))
    assert dense_size_of(complete) == 3 and dense_size_of(no_loops) is None
    assert run(complete) == "dense_attention"
    assert run(complete, adj=adjacency("csr", complete.edge_index, 6)) == "dense_attention"
    assert run(no_loops) == "edge_kernel_attention"
    taken.clear()
    layer(complete.x, complete.edge_index)  # complete, but not marked: never guessed
    assert taken == ["edge_kernel_attention"]
    layer.edge_kernels = False
    assert run(no_loops) == "propagate_attention"
    layer.edge_kernels = True
    with monkeypatch.context() as compiling:  # torch.compile traces propagate instead
        compiling.setattr(torch.compiler, "is_compiling", lambda: True)
        assert run(no_loops) == "propagate_attention" and run(complete) == "dense_attention"
    # Explaining or hooked: propagate, also on the complete graph (the dense path
    # has no messages to mask).
    set_masks(layer, torch.ones(complete.edge_index.size(1)), complete.edge_index)
    assert run(complete) == "propagate_attention"
    set_masks(layer, torch.ones(no_loops.edge_index.size(1)), no_loops.edge_index)
    assert run(no_loops) == "propagate_attention"
    clear_masks(layer)
    assert run(complete) == "dense_attention"
    handle = layer.register_message_forward_hook(lambda module, inputs, out: None)
    assert run(complete) == "propagate_attention"
    handle.remove()
    assert run(complete) == "dense_attention"


# -- PyG's explainability on every path -----------------------------------------------------

PATHS = ("dense", "edge_kernels", "propagate")


class OneLayerGNN(torch.nn.Module):
    """A model as PyG's Explainer calls it, ``model(x, edge_index)``."""

    def __init__(self, layer, dense_size=None, pool=False):
        super().__init__()
        self.layer, self.dense_size, self.pool = layer, dense_size, pool

    def forward(self, x, edge_index):
        out = self.layer(x, edge_index, dense_size=self.dense_size)
        return out.sum(0, keepdim=True) if self.pool else out


def layer_on_path(path, seed=0, dtype=torch.float64):
    layer = make_layer(5, 4, 2, 3, seed, dtype)
    layer.edge_kernels = path != "propagate"
    return layer


@pytest.mark.parametrize("path", PATHS)
def test_edge_masks_scale_every_message_on_every_path(path):
    B, n = 2, 4
    layer = layer_on_path(path)
    edge_index = graph_structure(("complete", n), B).edge_index
    dense_size = n if path == "dense" else None
    x = torch.randn(B * n, 5, dtype=torch.float64)
    mask = torch.rand(edge_index.size(1), dtype=torch.float64)
    set_masks(layer, mask, edge_index, apply_sigmoid=False)
    torch.testing.assert_close(layer(x, edge_index, dense_size=dense_size),
                               masked_dense_attention(layer, x, edge_index, mask)[0], **TOL64)
    clear_masks(layer)
    torch.testing.assert_close(layer(x, edge_index, dense_size=dense_size),
                               masked_dense_attention(layer, x, edge_index)[0], **TOL64)


@pytest.mark.parametrize("path", PATHS)
def test_gnn_explainer_explains_every_path(path):
    B, n, node = 2, 4, 1
    layer = layer_on_path(path, dtype=torch.float32)
    edge_index = graph_structure(("complete", n), B).edge_index
    model = OneLayerGNN(layer, n if path == "dense" else None)
    explainer = Explainer(model, GNNExplainer(epochs=3), explanation_type="model",
                          edge_mask_type="object",
                          model_config=dict(mode="regression", task_level="node",
                                            return_type="raw"))
    x = torch.randn(B * n, 5)
    before = model(x, edge_index)
    explanation = explainer(x, edge_index, index=node)
    # One layer: exactly the edges into the explained node act on its output.
    assert torch.equal(explanation.edge_mask > 0, edge_index[1] == node)
    assert layer.explain is None  # masks cleared: the layer runs its own path again
    torch.testing.assert_close(model(x, edge_index), before)


@pytest.mark.parametrize("path", PATHS)
def test_attention_explainer_reads_the_attention_of_every_path(path):
    B, n = 2, 3
    layer = layer_on_path(path)
    edge_index = graph_structure(("complete", n), B).edge_index
    dense_size = n if path == "dense" else None
    explainer = Explainer(OneLayerGNN(layer, dense_size, pool=True),
                          AttentionExplainer(reduce="max"), explanation_type="model",
                          edge_mask_type="object",
                          model_config=dict(mode="regression", task_level="graph",
                                            return_type="raw"))
    x = torch.randn(B * n, 5, dtype=torch.float64)
    explanation = explainer(x, edge_index)
    _, (_, alpha) = layer(x, edge_index, dense_size=dense_size, return_attention_weights=True)
    torch.testing.assert_close(explanation.edge_mask, alpha.max(-1).values, **TOL64)


def test_feature_decomposition_applies_on_the_propagate_path():
    n, edge_index, seed, heads, head_dim = 6, graph_structure(("grid", 2, 3), 1).edge_index, 3, 2, 4
    layer = make_layer(3, 2, heads, head_dim, seed)
    layer.edge_kernels = False
    x = torch.randn(n, 3, dtype=torch.float64)
    expected = masked_dense_attention(layer, x, edge_index)[0]
    layer.decomposed_layers = 2  # PyG splits the values' feature axis into two passes
    torch.testing.assert_close(layer(x, edge_index), expected, **TOL64)


# -- module conventions ---------------------------------------------------------------------

def test_forward_overloads_type_both_return_shapes():
    """As PyG's GATConv: without weights a tensor; with weights a nested tuple for an
    edge list / torch sparse adjacency, (out, SparseTensor) for a SparseTensor."""
    overloads = typing.get_overloads(MultiHeadGraphAttention.forward)
    signatures = [inspect.signature(overload) for overload in overloads]
    assert [s.return_annotation for s in signatures] == [
        "Tensor", "Tuple[Tensor, Tuple[Tensor, Tensor]]", "Tuple[Tensor, SparseTensor]"]
    assert [s.parameters["return_attention_weights"].annotation for s in signatures] == [
        "Optional[Literal[False]]", "Literal[True]", "Literal[True]"]
    assert [s.parameters["edge_index"].annotation for s in signatures] == [
        "Adj", "Tensor", "SparseTensor"]
    implemented = inspect.signature(MultiHeadGraphAttention.forward).parameters
    assert all(list(s.parameters) == list(implemented) for s in signatures)


def test_reset_parameters_redraws_every_map():
    torch.manual_seed(0)
    layer = MultiHeadGraphAttention(4, 3, embed_dim=4, heads=2)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.reset_parameters()
    for name, value in layer.state_dict().items():
        assert not torch.equal(value, before[name]), name


def test_fused_is_a_deprecated_name_of_edge_kernels():
    with pytest.warns(DeprecationWarning, match=r"'fused' is deprecated: use 'edge_kernels'"):
        layer = MultiHeadGraphAttention(4, 3, embed_dim=4, heads=2, fused=False)
    assert layer.edge_kernels is False
    with pytest.warns(DeprecationWarning):
        layer.fused = True
    assert layer.edge_kernels is True
    with pytest.warns(DeprecationWarning):
        assert layer.fused is True


# -- torch.compile ------------------------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_compiled_layer_has_no_graph_breaks_and_equals_eager(path):
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = layer_on_path(path, dtype=torch.float32)
    structure = graph_structure(("complete", 3), 2) if path == "dense" else \
        graph_structure(("grid", 2, 3), 1)
    dense_size = structure.dense_size if path == "dense" else None
    x = torch.randn(6, 5, requires_grad=True)
    explained = torch._dynamo.explain(layer)(x, structure.edge_index, dense_size=dense_size)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, \
        [reason.reason for reason in explained.break_reasons]

    def step(module):
        layer.zero_grad()
        x.grad = None
        out = module(x, structure.edge_index, dense_size=dense_size)
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        return out.detach(), x.grad.clone(), [p.grad.clone() for p in layer.parameters()]

    compiled = step(torch.compile(layer, backend="inductor", fullgraph=True))
    eager = step(layer)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)

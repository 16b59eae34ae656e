"""Eq. 5: RegionGraphConv against explicit references; dense == message passing;
every adjacency form, PyG's explainer, torch.compile (as PyG's test_gat_conv.py)."""
import pytest
import torch
from adjacency_forms import FORMS, adjacency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from mgrr_pyg.graphs import dense_size_of, graph_structure, region_graph
from mgrr_pyg.layers import RegionGraphConv

SETTINGS = settings(max_examples=30, deadline=None)
TOL = dict(rtol=1e-10, atol=1e-12)  # float64


def make_layer(in_channels, out_channels, num_aus, per_au, seed, init="random"):
    torch.manual_seed(seed)
    layer = RegionGraphConv(in_channels, out_channels, num_aus, adjacency_init=init,
                            per_au_weights=per_au).double()
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)  # a non-zero bias is part of what is checked
    return layer


def node_maps(layer, au):
    """(W_s, W_n) of AU id ``au`` as [out, in] matrices, read off the module."""
    if layer.per_au_weights:
        return layer.weight_self[au].t(), layer.weight_neighbour[au].t()
    return layer.lin_self.weight, layer.lin_neighbour.weight


def eq5_by_loops(layer, x, edge_index, au_index):
    """v_i' = W_s v_i + sum over edges j -> i of A[au_i, au_j] W_n v_j + b."""
    au = au_index.tolist()
    rows = []
    for i in range(x.size(0)):
        w_self, _ = node_maps(layer, au[i])
        total = w_self @ x[i] + layer.bias
        for j, target in edge_index.t().tolist():
            if target == i:
                _, w_neighbour = node_maps(layer, au[j])
                total = total + layer.adjacency[au[i], au[j]] * (w_neighbour @ x[j])
        rows.append(total)
    return torch.stack(rows)


def masked_dense_reference(layer, x, edge_index, au_index, edge_mask=None):
    """The same law as one einsum over a dense edge-count mask M[i, j] (j -> i);
    ``edge_mask`` [E] scales each edge's message (what PyG's explainers do)."""
    n = x.size(0)
    per_edge = (torch.ones(edge_index.size(1), dtype=x.dtype) if edge_mask is None
                else edge_mask.to(x.dtype))
    mask = torch.zeros(n, n, dtype=x.dtype).index_put_(
        (edge_index[1], edge_index[0]), per_edge, accumulate=True)
    w_self = torch.stack([node_maps(layer, a)[0] for a in au_index.tolist()])  # [N, out, in]
    w_neighbour = torch.stack([node_maps(layer, a)[1] for a in au_index.tolist()])
    relation = layer.adjacency[au_index][:, au_index]  # [N, N]
    own = torch.einsum("noi,ni->no", w_self, x)
    sent = torch.einsum("noi,ni->no", w_neighbour, x)
    return own + torch.einsum("ij,ij,jo->io", mask, relation, sent) + layer.bias


@st.composite
def complete_batches(draw):
    B, n = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    num_aus = draw(st.integers(n, n + 2))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    au_index = torch.cat([torch.randperm(num_aus, generator=g)[:n] for _ in range(B)])
    return B, n, num_aus, au_index, seed, draw(st.booleans())


@SETTINGS
@given(complete_batches(), st.integers(1, 4), st.integers(1, 4))
def test_dense_and_message_passing_paths_agree(case, in_channels, out_channels):
    B, n, num_aus, au_index, seed, per_au = case
    layer = make_layer(in_channels, out_channels, num_aus, per_au, seed)
    edge_index = graph_structure(("complete", n), B).edge_index
    weights = torch.randn(B * n, out_channels, dtype=torch.float64)

    def run(dense_size):
        layer.zero_grad()
        x = torch.randn(B * n, in_channels, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(seed)).requires_grad_()
        out = layer(x, edge_index, au_index, dense_size=dense_size)
        (out * weights).sum().backward()
        return out, x.grad, {k: p.grad for k, p in layer.named_parameters()}

    out_mp, grad_mp, params_mp = run(None)
    out_dense, grad_dense, params_dense = run(n)
    torch.testing.assert_close(out_dense, out_mp, **TOL)
    torch.testing.assert_close(grad_dense, grad_mp, **TOL)
    assert params_mp.keys() == params_dense.keys()
    for name in params_mp:
        torch.testing.assert_close(params_dense[name], params_mp[name], **TOL, msg=name)
    assert params_mp["adjacency"].abs().sum() > 0  # the relation matrix learns


@SETTINGS
@given(complete_batches(), st.integers(1, 3))
def test_region_layer_equals_the_explicit_eq5_sum(case, channels):
    B, n, num_aus, au_index, seed, per_au = case
    layer = make_layer(channels, channels + 1, num_aus, per_au, seed)
    x = torch.randn(B * n, channels, dtype=torch.float64)
    edge_index = graph_structure(("complete", n), B).edge_index
    expected = eq5_by_loops(layer, x, edge_index, au_index)
    torch.testing.assert_close(layer(x, edge_index, au_index, dense_size=n), expected, **TOL)
    torch.testing.assert_close(layer(x, edge_index, au_index), expected, **TOL)


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 4), st.floats(0.0, 1.0), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_message_passing_equals_masked_dense_einsum_on_random_graphs(n, num_aus, p, per_au,
                                                                      seed):
    g = torch.Generator().manual_seed(seed)
    layer = make_layer(3, 2, num_aus, per_au, seed)
    x = torch.randn(n, 3, dtype=torch.float64, generator=g)
    au_index = torch.randint(num_aus, (n,), generator=g)  # AU ids may repeat
    mask = torch.rand(n, n, generator=g) < p
    target, source = mask.nonzero(as_tuple=True)
    shuffle = torch.randperm(target.numel(), generator=g)  # edge order must not matter
    edge_index = torch.stack([source, target])[:, shuffle]
    torch.testing.assert_close(layer(x, edge_index, au_index),
                               masked_dense_reference(layer, x, edge_index, au_index), **TOL)


@SETTINGS
@given(complete_batches(), st.data())
def test_permuting_nodes_with_their_au_ids_permutes_the_output(case, data):
    B, n, num_aus, au_index, seed, per_au = case
    layer = make_layer(2, 3, num_aus, per_au, seed)
    x = torch.randn(B * n, 2, dtype=torch.float64)
    edge_index = graph_structure(("complete", n), B).edge_index
    out = layer(x, edge_index, au_index, dense_size=n)
    # Within each graph (keeps graphs contiguous, so the dense path applies too).
    perm = torch.cat([torch.tensor(data.draw(st.permutations(range(n)))) + b * n
                      for b in range(B)])
    torch.testing.assert_close(layer(x[perm], edge_index, au_index[perm], dense_size=n),
                               out[perm], **TOL)
    # Any relabelling of nodes on the message-passing path, edges relabelled with it.
    perm = torch.tensor(data.draw(st.permutations(range(B * n))))
    new_id = torch.empty_like(perm)
    new_id[perm] = torch.arange(B * n)
    torch.testing.assert_close(layer(x[perm], new_id[edge_index], au_index[perm]), out[perm],
                               **TOL)


def test_adjacency_initialisation_options():
    identity = RegionGraphConv(4, 4, 3)
    torch.testing.assert_close(identity.adjacency.detach(), torch.eye(3))
    random = RegionGraphConv(4, 4, 3, adjacency_init="random")
    assert ((random.adjacency >= 0) & (random.adjacency < 1)).all()
    prior = torch.tensor([[1.0, 0.2, 0.0], [0.3, 1.0, 0.7], [0.0, 0.1, 1.0]])
    layer = RegionGraphConv(4, 4, 3, adjacency_init=prior)
    torch.testing.assert_close(layer.adjacency.detach(), prior)
    with torch.no_grad():
        layer.adjacency.add_(5.0)
    layer.reset_parameters()  # back to the prior, not to a default
    torch.testing.assert_close(layer.adjacency.detach(), prior)
    layer.set_adjacency("identity")
    torch.testing.assert_close(layer.adjacency.detach(), torch.eye(3))
    assert repr(layer) == "RegionGraphConv(4, 4, num_aus=3)"


def test_identity_adjacency_reduces_to_self_and_own_message():
    layer = RegionGraphConv(3, 2, 4).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    edge_index = graph_structure(("complete", 4), 1).edge_index
    expected = x @ (layer.lin_self.weight + layer.lin_neighbour.weight).t() + layer.bias
    torch.testing.assert_close(layer(x, edge_index, torch.arange(4), dense_size=4), expected)


@pytest.mark.parametrize("call, match", [
    (lambda l, e: l(torch.zeros(4, 5), e, torch.arange(4)),
     r"RegionGraphConv: x must have 3 features \(in_channels\); found 5"),
    (lambda l, e: l(torch.zeros(4), e, torch.arange(4)),
     r"x must be a 2-D tensor \[num_nodes, 3\]"),
    (lambda l, e: l(torch.zeros(4, 3), e, torch.arange(3)),
     r"au_index must have shape \[4\] \(one AU id per node of x\); found \(3,\)"),
    (lambda l, e: l(torch.zeros(4, 3), e[0], torch.arange(4)),
     r"edge_index must be a \[2, E\] integer tensor \(or an EdgeIndex, a torch sparse adj_t "
     r"\[N, N\] or a SparseTensor adj_t\); found \(16,\)"),
    (lambda l, e: l(torch.zeros(4, 3), adjacency("coo", e, 5), torch.arange(4)),
     r"a torch sparse \(torch.sparse_coo\) adjacency must be adj_t of size \[4, 4\] "
     r"\(target, source; 4 nodes in x\); found size \[5, 5\]"),
    (lambda l, e: l(torch.zeros(4, 3), e, torch.arange(4), dense_size=3),
     r"dense_size=3 must divide the number of nodes .*found 4 nodes"),
])
def test_bad_inputs_raise_errors_naming_them(call, match):
    layer = RegionGraphConv(3, 2, 4)
    with pytest.raises(ValueError, match=match):
        call(layer, graph_structure(("complete", 4), 1).edge_index)


def test_bad_adjacency_init_raises_naming_expected_and_found():
    with pytest.raises(ValueError,
                       match=r"square \[3, 3\] matrix \(num_aus=3\); found shape \(3, 2\)"):
        RegionGraphConv(2, 2, 3, adjacency_init=torch.zeros(3, 2))
    with pytest.raises(ValueError,
                       match=r"'identity', 'random' or an \[3, 3\] tensor; found 'prior'"):
        RegionGraphConv(2, 2, 3, adjacency_init="prior")


# -- every adjacency form (PyG's conventions) --------------------------------------------

@SETTINGS
@given(st.integers(1, 7), st.integers(1, 4), st.floats(0.0, 1.0), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_every_adjacency_form_gives_the_same_output(n, num_aus, p, per_au, seed):
    g = torch.Generator().manual_seed(seed)
    layer = make_layer(3, 2, num_aus, per_au, seed)
    x = torch.randn(n, 3, dtype=torch.float64, generator=g)
    au_index = torch.randint(num_aus, (n,), generator=g)
    target, source = (torch.rand(n, n, generator=g) < p).nonzero(as_tuple=True)
    edge_index = torch.stack([source, target])
    expected = masked_dense_reference(layer, x, edge_index, au_index)
    for form in FORMS:
        torch.testing.assert_close(layer(x, adjacency(form, edge_index, n), au_index),
                                   expected, **TOL, msg=form)


@SETTINGS
@given(complete_batches())
def test_the_dense_path_takes_every_adjacency_form(case):
    B, n, num_aus, au_index, seed, per_au = case
    layer = make_layer(2, 3, num_aus, per_au, seed)
    x = torch.randn(B * n, 2, dtype=torch.float64)
    edge_index = graph_structure(("complete", n), B).edge_index
    expected = masked_dense_reference(layer, x, edge_index, au_index)
    for form in FORMS:
        torch.testing.assert_close(layer(x, adjacency(form, edge_index, B * n), au_index,
                                         dense_size=n), expected, **TOL, msg=form)


def test_without_au_ids_every_node_is_au_zero():
    layer = make_layer(3, 2, 1, False, 0)
    x = torch.randn(5, 3, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 2, 4, 4], [1, 2, 0, 0, 3]])
    torch.testing.assert_close(layer(x, edge_index),
                               layer(x, edge_index, torch.zeros(5, dtype=torch.long)), **TOL)
    torch.testing.assert_close(layer(x, edge_index),
                               masked_dense_reference(layer, x, edge_index,
                                                      torch.zeros(5, dtype=torch.long)), **TOL)


def test_the_dense_path_runs_only_where_a_builder_marked_the_graph_complete(monkeypatch):
    layer = RegionGraphConv(4, 3, 3)
    taken = []
    for path in ("dense_neighbour_sum", "propagate_neighbour_sum"):
        method = getattr(layer, path)
        monkeypatch.setattr(layer, path, lambda *a, _m=method, _p=path, **k:
                            taken.append(_p) or _m(*a, **k))
    features = torch.randn(2, 3, 4)

    def run(graph):
        taken.clear()
        layer(graph.x, graph.edge_index, graph.au_index, dense_size=dense_size_of(graph))
        return taken

    complete, no_loops = region_graph(features), region_graph(features, ("complete", False))
    assert run(complete) == ["dense_neighbour_sum"]
    assert run(no_loops) == ["propagate_neighbour_sum"]
    set_masks(layer, torch.ones(complete.edge_index.size(1)), complete.edge_index)
    assert run(complete) == ["propagate_neighbour_sum"]  # explaining: messages to mask
    clear_masks(layer)
    assert run(complete) == ["dense_neighbour_sum"]


# -- PyG's explainability on both paths ------------------------------------------------------

class OneLayerGNN(torch.nn.Module):
    """A model as PyG's Explainer calls it, ``model(x, edge_index)``."""

    def __init__(self, layer, au_index, dense_size=None):
        super().__init__()
        self.layer, self.au_index, self.dense_size = layer, au_index, dense_size

    def forward(self, x, edge_index):
        return self.layer(x, edge_index, self.au_index, dense_size=self.dense_size)


@pytest.mark.parametrize("dense", [True, False])
def test_edge_masks_scale_every_message_on_both_paths(dense):
    B, n = 2, 3
    layer = make_layer(3, 2, n, True, 0)
    structure = graph_structure(("complete", n), B)
    x = torch.randn(B * n, 3, dtype=torch.float64)
    mask = torch.rand(structure.edge_index.size(1), dtype=torch.float64)
    set_masks(layer, mask, structure.edge_index, apply_sigmoid=False)
    out = layer(x, structure.edge_index, structure.node_index, dense_size=n if dense else None)
    torch.testing.assert_close(out, masked_dense_reference(layer, x, structure.edge_index,
                                                           structure.node_index, mask), **TOL)


@pytest.mark.parametrize("dense", [True, False])
def test_gnn_explainer_explains_both_paths(dense):
    B, n, node = 2, 4, 2
    layer = make_layer(3, 2, n, False, 0).float()
    structure = graph_structure(("complete", n), B)
    model = OneLayerGNN(layer, structure.node_index, n if dense else None)
    explainer = Explainer(model, GNNExplainer(epochs=3), explanation_type="model",
                          edge_mask_type="object",
                          model_config=dict(mode="regression", task_level="node",
                                            return_type="raw"))
    explanation = explainer(torch.randn(B * n, 3), structure.edge_index, index=node)
    # One layer, a random (nowhere zero) A: exactly the edges into the node act on it.
    assert torch.equal(explanation.edge_mask > 0, structure.edge_index[1] == node)
    assert layer.explain is None


# -- module conventions and torch.compile --------------------------------------------------

def test_reset_parameters_redraws_the_maps_and_restores_a():
    torch.manual_seed(0)
    layer = RegionGraphConv(4, 3, 2, adjacency_init="random", per_au_weights=True)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        layer.bias.fill_(1.0)
    layer.reset_parameters()
    for name in ("weight_self", "weight_neighbour", "adjacency"):
        assert not torch.equal(layer.state_dict()[name], before[name]), name
    torch.testing.assert_close(layer.bias.detach(), torch.zeros(3))


@pytest.mark.parametrize("dense", [True, False])
def test_compiled_layer_has_no_graph_breaks_and_equals_eager(dense):
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = RegionGraphConv(3, 2, 3, adjacency_init="random", per_au_weights=dense)
    structure = graph_structure(("complete", 3), 2)
    args = (structure.edge_index, structure.node_index)
    dense_size = 3 if dense else None
    x = torch.randn(6, 3, requires_grad=True)
    explained = torch._dynamo.explain(layer)(x, *args, dense_size=dense_size)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, \
        [reason.reason for reason in explained.break_reasons]

    def step(module):
        layer.zero_grad()
        x.grad = None
        out = module(x, *args, dense_size=dense_size)
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        return out.detach(), x.grad.clone(), [p.grad.clone() for p in layer.parameters()]

    compiled = step(torch.compile(layer, backend="inductor", fullgraph=True))
    torch.testing.assert_close(compiled, step(layer), rtol=1e-4, atol=1e-5)

"""Eq. 5: RegionGraphConv against explicit references; dense == message passing."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.graphs import graph_structure
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


def masked_dense_reference(layer, x, edge_index, au_index):
    """The same law as one einsum over a dense edge-count mask M[i, j] (j -> i)."""
    n = x.size(0)
    mask = torch.zeros(n, n, dtype=x.dtype).index_put_(
        (edge_index[1], edge_index[0]), torch.ones(edge_index.size(1), dtype=x.dtype),
        accumulate=True)
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
     r"edge_index must be a \[2, E\] tensor; found \(16,\)"),
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

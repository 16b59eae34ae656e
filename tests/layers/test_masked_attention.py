"""The masked path of MultiHeadGraphAttention: a sparse graph as an SDPA mask equals
message passing (values, gradients, attention weights) on random batched graphs with
isolated nodes, self loops and edges across graphs; the block structure against a
brute-force search; the automatic rule; the cache; where the path is never taken."""
import dataclasses
import math

import pytest
import torch
from adjacency_forms import adjacency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from mgrr_pyg.graphs import graph_structure
from mgrr_pyg.layers import MultiHeadGraphAttention
from mgrr_pyg.layers import _block_mask
from mgrr_pyg.layers._block_mask import block_mask, build_block_mask, worth_masking
from mgrr_pyg.model.reasoning import PixelGraphAttention

SETTINGS = settings(max_examples=40, deadline=None)
TOL64 = dict(rtol=1e-10, atol=1e-12)


def make_layer(heads=2, head_dim=3, in_channels=4, out_channels=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    return MultiHeadGraphAttention(in_channels, out_channels, embed_dim=heads * head_dim,
                                   heads=heads, **kwargs).double()


@st.composite
def batched_graphs(draw):
    """B graphs of n nodes, each with its own random edges (any density, self loops
    and isolated nodes as they fall), in shuffled order; sometimes edges across
    graphs too (then the blocks are bigger than a graph)."""
    num_graphs, size = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    density = draw(st.floats(0.05, 1.0))
    blocks = torch.rand(num_graphs, size, size, generator=generator) < density
    graph, target, source = blocks.nonzero(as_tuple=True)
    edges = [torch.stack([source + graph * size, target + graph * size])]
    if draw(st.booleans()) and num_graphs > 1:  # a few edges from graph 0 into graph 1
        count = draw(st.integers(1, 3))
        crossing = torch.stack([torch.randint(0, size, (count,), generator=generator),
                                torch.randint(size, 2 * size, (count,), generator=generator)])
        edges.append(crossing)
    edge_index = torch.cat(edges, dim=1).unique(dim=1)  # no repeated edge
    edge_index = edge_index[:, torch.randperm(edge_index.size(1), generator=generator)]
    return num_graphs * size, edge_index, seed


def forward_backward(layer, x, edge_index, weights):
    layer.zero_grad()
    x = x.detach().clone().requires_grad_()
    out, (_, alpha) = layer(x, edge_index, return_attention_weights=True)
    (out * weights).sum().backward()
    return out, alpha, x.grad, {name: p.grad.clone() for name, p in layer.named_parameters()}


@SETTINGS
@given(batched_graphs(), st.sampled_from((1, 2, 4)))
def test_masked_path_equals_message_passing_in_values_gradients_and_weights(graph, heads):
    num_nodes, edge_index, seed = graph
    layer = make_layer(heads=heads, seed=seed, masked=True)
    if edge_index.size(1) == 0:
        assert layer.attention_path(edge_index, num_nodes) == "edge_kernels"
        return
    assert layer.attention_path(edge_index, num_nodes) == "masked"
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, 4, dtype=torch.float64, generator=generator)
    weights = torch.randn(num_nodes, 3, dtype=torch.float64, generator=generator)
    masked = forward_backward(layer, x, edge_index, weights)
    # SDPA (no weights asked) gives what the explicit masked softmax gives.
    with torch.no_grad():
        torch.testing.assert_close(layer(x, edge_index), masked[0], **TOL64)
    layer.masked = False
    for edge_kernels in (False, True):
        layer.edge_kernels = edge_kernels
        assert layer.attention_path(edge_index, num_nodes) == (
            "edge_kernels" if edge_kernels else "propagate")
        passed = forward_backward(layer, x, edge_index, weights)
        for mine, theirs in zip(masked[:3], passed[:3]):  # output, alpha, grad of x
            torch.testing.assert_close(mine, theirs, **TOL64)
        for name in passed[3]:
            torch.testing.assert_close(masked[3][name], passed[3][name], **TOL64, msg=name)


def brute_force_block(edge_index, num_nodes):
    """The smallest divisor n of num_nodes such that every edge joins nodes of the
    same block [g n, (g+1) n): tried one by one, edge by edge."""
    pairs = edge_index.t().tolist()
    for size in range(1, num_nodes + 1):
        if num_nodes % size == 0 and all(s // size == t // size for s, t in pairs):
            return size


@SETTINGS
@given(batched_graphs())
def test_the_blocks_are_the_smallest_that_no_edge_crosses(graph):
    num_nodes, edge_index, _ = graph
    mask = build_block_mask(edge_index, num_nodes)
    if edge_index.size(1) == 0:
        assert mask is None
        return
    size = brute_force_block(edge_index, num_nodes)
    assert (mask.graph_size, mask.num_graphs) == (size, num_nodes // size)
    # The mask holds exactly the edges, plus whole rows for nodes without one.
    expected = torch.zeros(num_nodes // size, size, size, dtype=torch.bool)
    for s, t in edge_index.t().tolist():
        expected[t // size, t % size, s % size] = True
    lonely = ~expected.any(-1)
    assert torch.equal(mask.allowed.squeeze(1), expected | lonely.unsqueeze(-1))
    if lonely.any():
        assert torch.equal(mask.isolated.view_as(lonely), lonely)
    else:
        assert mask.isolated is None


def test_a_repeated_edge_is_never_masked():
    # Message passing weighs a repeated edge twice in the softmax; a mask cannot.
    edge_index = torch.tensor([[0, 1, 1, 2, 0], [1, 0, 0, 2, 2]])
    assert build_block_mask(edge_index, 3) is None
    layer = make_layer(masked=True)
    assert layer.attention_path(edge_index, 3) == "edge_kernels"
    x = torch.randn(3, 4, dtype=torch.float64)
    out = layer(x, edge_index)
    layer.masked, layer.edge_kernels = False, False
    torch.testing.assert_close(out, layer(x, edge_index), **TOL64)


def grid_edge_count(height, width, hops):
    """Edges of the (2k+1)^2-window grid graph, self loops included, counted per pixel."""
    return sum((min(r + hops, height - 1) - max(r - hops, 0) + 1)
               * (min(c + hops, width - 1) - max(c - hops, 0) + 1)
               for r in range(height) for c in range(width))


def test_auto_masks_where_the_rule_says_and_nowhere_else():
    layer = make_layer()
    assert layer.masked == "auto"
    # The paper's pixel graph (22 x 22). On CPU the rule masks at <= 8 mask entries per
    # edge: a 9x9 window (hops 4) has 178^2 = 31,684 edges, 484^2 / 31,684 = 7.4 entries
    # per edge: masked, one graph or eight; a 7x7 window (hops 3), 142^2 = 20,164 edges,
    # 11.6 entries, and the 3x3 grid, 4,096 edges, 57.2 entries: the edge kernels.
    assert (grid_edge_count(22, 22, 4), grid_edge_count(22, 22, 3),
            grid_edge_count(22, 22, 1)) == (178**2, 142**2, 4096)
    for batch in (1, 8):
        wide = graph_structure(("grid", 4), batch, lattice=(22, 22)).edge_index
        assert wide.size(1) == 178**2 * batch
        assert layer.attention_path(wide, 484 * batch) == "masked"
        assert block_mask(wide, 484 * batch).entries_per_edge() == pytest.approx(484**2 / 178**2)
    for hops in (3, 1):
        grid = graph_structure(("grid", hops), 8, lattice=(22, 22)).edge_index
        assert layer.attention_path(grid, 3872) == "edge_kernels"
        assert make_layer(masked=True).attention_path(grid, 3872) == "masked"
    # Off the CPU the bound is 64: the 3x3 grid's 57.2 entries per edge would be masked.
    grid = graph_structure(("grid", 1), 1, lattice=(22, 22)).edge_index
    on_gpu = dataclasses.replace(block_mask(grid, 484),
                                 allowed=torch.empty(1, 1, 484, 484, device="meta"))
    assert not worth_masking(4096, block_mask(grid, 484)) and worth_masking(4096, on_gpu)
    assert _block_mask.max_entries_per_edge(torch.device("cuda", 0)) == 64
    # Under 1,024 edges auto does not even look (nothing is cached).
    small = graph_structure(("complete", 31, False), 1).edge_index  # 930 edges
    before = dict(_block_mask._CACHE)
    assert layer.attention_path(small, 31) == "edge_kernels"
    assert _block_mask._CACHE.keys() == before.keys()
    bigger = graph_structure(("complete", 33, False), 1).edge_index  # 1,056 edges
    assert layer.attention_path(bigger, 33) == "masked"
    assert make_layer(masked=False).attention_path(bigger, 33) == "edge_kernels"


def test_the_mask_is_built_once_per_edge_tensor_and_rebuilt_when_it_changes():
    edge_index = graph_structure(("grid", 1), 2, lattice=(3, 3)).edge_index.clone()
    first = block_mask(edge_index, 18)
    assert block_mask(edge_index, 18) is first  # cached
    assert first.graph_size == 9
    into_17 = int((edge_index[1] == 17).nonzero()[0])
    edge_index[0, into_17] = 0  # in place: node 0 (graph 0) now sends to node 17 (graph 1)
    changed = block_mask(edge_index, 18)
    assert changed is not first and changed.graph_size == 18  # one block now
    key = id(edge_index)
    del edge_index  # the entry goes with its tensor
    assert key not in _block_mask._CACHE


def test_a_sparse_adjacency_takes_the_masked_path_with_the_same_result():
    layer = make_layer(masked=True)
    edge_index = graph_structure(("grid", 1), 2, lattice=(3, 4)).edge_index
    x = torch.randn(24, 4, dtype=torch.float64)
    expected = layer(x, edge_index)
    for form in ("csr", "coo", "EdgeIndex", "SparseTensor"):
        adj = adjacency(form, edge_index, 24)
        assert layer.attention_path(adj, 24) == "masked", form
        torch.testing.assert_close(layer(x, adj), expected, **TOL64)


def test_explained_hooked_or_compiled_layers_never_take_the_masked_path(monkeypatch):
    layer = make_layer(masked=True)
    edge_index = graph_structure(("grid", 1), 1, lattice=(3, 3)).edge_index
    assert layer.attention_path(edge_index, 9) == "masked"
    set_masks(layer, torch.ones(edge_index.size(1)), edge_index)
    assert layer.attention_path(edge_index, 9) == "propagate"
    clear_masks(layer)
    handle = layer.register_message_forward_hook(lambda module, inputs, out: None)
    assert layer.attention_path(edge_index, 9) == "propagate"
    handle.remove()
    with monkeypatch.context() as compiling:  # finding blocks reads edges on the host
        compiling.setattr(torch.compiler, "is_compiling", lambda: True)
        assert layer.attention_path(edge_index, 9) == "propagate"
    assert layer.attention_path(edge_index, 9, dense_size=None) == "masked"
    complete = graph_structure(("complete", 3), 3).edge_index
    assert layer.attention_path(complete, 9, dense_size=3) == "dense"


def test_bad_masked_argument_is_refused():
    with pytest.raises(ValueError, match=r"masked must be 'auto', True or False; found 'yes'"):
        MultiHeadGraphAttention(4, 4, embed_dim=4, heads=2, masked="yes")


def test_the_models_pixel_branch_masks_its_grid_without_being_told(monkeypatch):
    # The 44 x 44 map of the paper reduced to 22 x 22 pixels, on a 9x9 grid (7.4 mask
    # entries per edge: masked on CPU).
    torch.manual_seed(0)
    branch = PixelGraphAttention(4, 44, embed_dim=8, heads=2, topology=("grid", 4))
    taken = []
    original = branch.attention.masked_attention
    monkeypatch.setattr(branch.attention, "masked_attention",
                        lambda *a, **k: taken.append(a[3].graph_size) or original(*a, **k))
    global_map = torch.randn(2, 4, 44, 44)
    with torch.no_grad():
        out = branch(global_map)
        assert taken == [484]
        branch.attention.masked = False
        torch.testing.assert_close(branch(global_map), out, rtol=1e-5, atol=1e-6)
    assert taken == [484]


def test_scores_are_scaled_as_eq3_on_the_masked_path():
    # Two nodes, each receiving from both: alpha = softmax(q_i.k_j / sqrt(d)) by hand.
    layer = make_layer(heads=1, head_dim=2, in_channels=2, out_channels=2, masked=True)
    x = torch.tensor([[1.0, 0.5], [-0.5, 2.0]], dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 0, 1], [0, 0, 1, 1]])
    assert layer.attention_path(edge_index, 2) == "masked"
    with torch.no_grad():
        _, (_, alpha) = layer(x, edge_index, return_attention_weights=True)
        q, k = layer.lin_query(x), layer.lin_key(x)
    expected = []
    for source, target in edge_index.t().tolist():
        scores = [float(q[target] @ k[j]) / math.sqrt(2) for j in (0, 1)]
        expected.append(math.exp(scores[source]) / sum(math.exp(s) for s in scores))
    torch.testing.assert_close(alpha.squeeze(1), torch.tensor(expected, dtype=torch.float64),
                               **TOL64)

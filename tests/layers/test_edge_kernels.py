"""The chunked edge kernels behind the attention's message-passing path: values
against python loops, gradients against finite differences."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

from mgrr_pyg.layers import _edge_kernels
from mgrr_pyg.layers._edge_kernels import edge_dot, gather_weighted_sum

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def edge_cases(draw):
    n_a, n_b, edges = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(0, 12))
    heads, d = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return dict(a=torch.randn(n_a, heads, d, dtype=torch.float64, generator=g),
                b=torch.randn(n_b, heads, d, dtype=torch.float64, generator=g),
                index_a=torch.randint(n_a, (edges,), generator=g),
                index_b=torch.randint(n_b, (edges,), generator=g),
                weights=torch.randn(edges, heads, dtype=torch.float64, generator=g),
                chunk=draw(st.sampled_from((1, 2, 5, 1 << 18))))


def with_chunk(elements, fn):
    old = dict(_edge_kernels._CHUNK_ELEMENTS)
    _edge_kernels._CHUNK_ELEMENTS["cpu"] = elements  # exercise chunk boundaries
    try:
        return fn()
    finally:
        _edge_kernels._CHUNK_ELEMENTS.clear()
        _edge_kernels._CHUNK_ELEMENTS.update(old)


@SETTINGS
@given(edge_cases())
def test_kernels_equal_python_loops(case):
    a, b, ia, ib, w = case["a"], case["b"], case["index_a"], case["index_b"], case["weights"]
    dots = with_chunk(case["chunk"], lambda: edge_dot(a, b, ia, ib))
    sums = with_chunk(case["chunk"], lambda: gather_weighted_sum(b, w, ib, ia, a.size(0)))
    expected_sums = torch.zeros_like(a)
    for e in range(ia.numel()):
        for h in range(a.size(1)):
            assert torch.isclose(dots[e, h], sum(a[ia[e], h, k] * b[ib[e], h, k]
                                                 for k in range(a.size(2))))
            expected_sums[ia[e], h] += w[e, h] * b[ib[e], h]
    torch.testing.assert_close(sums, expected_sums)


@settings(max_examples=15, deadline=None)
@given(edge_cases())
def test_kernel_gradients_match_finite_differences(case):
    a = case["a"].requires_grad_()
    b = case["b"].requires_grad_()
    w = case["weights"].requires_grad_()
    ia, ib = case["index_a"], case["index_b"]
    assert with_chunk(case["chunk"], lambda: gradcheck(lambda a, b: edge_dot(a, b, ia, ib), (a, b)))
    assert with_chunk(case["chunk"], lambda: gradcheck(
        lambda b, w: gather_weighted_sum(b, w, ib, ia, a.size(0)), (b, w)))

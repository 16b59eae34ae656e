"""Memory-lean edge kernels for message passing with multi-head features: the
chunked path of :class:`~mgrr_pyg.layers.MultiHeadGraphAttention`
(:meth:`~mgrr_pyg.layers.MultiHeadGraphAttention.edge_kernel_attention`).

Plain message passing materialises every per-edge tensor ([E, heads, d]: the
gathered queries, keys, values and their products) in one go. For a 3x3-grid
pixel graph at batch 8 that is ~34k edges x 1024 floats = 134 MB per tensor, and
freshly allocated buffers of that size cost more in page faults than the
arithmetic. These two kernels walk the edges in chunks small enough to stay in
cache and are each other's backward, so the backward pass is just as lean:

* ``edge_dot(a, b, index_a, index_b)[e, h] = <a[index_a[e], h], b[index_b[e], h]>``
* ``gather_weighted_sum(v, w, gather, scatter, n)[o, h] =
  sum over edges e with scatter[e] = o of w[e, h] * v[gather[e], h]``

They compute exactly what ``MessagePassing.propagate`` computes (up to the order
of floating-point additions); tests compare both against dense references. They
apply no edge mask and call no hook: a layer explained by PyG, or hooked, runs
``propagate`` instead (see ``_adjacency.must_propagate``). (Not PyG's ``fuse``,
which is ``message_and_aggregate`` on sparse adjacencies.)
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# Elements of one [chunk, heads, d] buffer: 4 MB of fp32 on CPU (near cache size,
# few enough ops that a busy 2-core machine does not stall on every one); larger
# on accelerators, where each chunk is a kernel launch.
_CHUNK_ELEMENTS = {"cpu": 1 << 20}
_CHUNK_ELEMENTS_OTHER = 1 << 24


def _chunk(like: Tensor) -> int:
    budget = _CHUNK_ELEMENTS.get(like.device.type, _CHUNK_ELEMENTS_OTHER)
    return max(1, budget // max(1, like[0].numel()))


def _edge_dot(a: Tensor, b: Tensor, index_a: Tensor, index_b: Tensor) -> Tensor:
    num_edges = index_a.numel()
    out = a.new_empty((num_edges,) + a.shape[1:-1])  # [E, H]
    step = max(1, min(_chunk(a), num_edges))
    # Two chunk buffers reused for every chunk: no allocation inside the loop.
    rows_a = a.new_empty((step,) + a.shape[1:])  # [chunk, H, d]
    rows_b = b.new_empty((step,) + b.shape[1:])
    for start in range(0, num_edges, step):
        size = min(step, num_edges - start)
        chunk_a, chunk_b = rows_a[:size], rows_b[:size]
        torch.index_select(a, 0, index_a[start:start + size], out=chunk_a)
        torch.index_select(b, 0, index_b[start:start + size], out=chunk_b)
        torch.sum(chunk_a.mul_(chunk_b), dim=-1, out=out[start:start + size])
    return out


def _gather_weighted_sum(values: Tensor, weights: Tensor, gather: Tensor,
                         scatter: Tensor, num_out: int) -> Tensor:
    out = values.new_zeros((num_out,) + values.shape[1:])  # [num_out, H, d]
    num_edges = gather.numel()
    step = max(1, min(_chunk(values), num_edges))
    rows = values.new_empty((step,) + values.shape[1:])  # [chunk, H, d], reused
    for start in range(0, num_edges, step):
        size = min(step, num_edges - start)
        chunk = rows[:size]
        torch.index_select(values, 0, gather[start:start + size], out=chunk)
        chunk.mul_(weights[start:start + size].unsqueeze(-1))
        out.index_add_(0, scatter[start:start + size], chunk)
    return out


class _EdgeDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, index_a, index_b):
        ctx.save_for_backward(a, b, index_a, index_b)
        return _edge_dot(a, b, index_a, index_b)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, b, index_a, index_b = ctx.saved_tensors
        grad = grad.contiguous()
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = _gather_weighted_sum(b, grad, index_b, index_a, a.size(0))
        if ctx.needs_input_grad[1]:
            grad_b = _gather_weighted_sum(a, grad, index_a, index_b, b.size(0))
        return grad_a, grad_b, None, None


class _GatherWeightedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, weights, gather, scatter, num_out):
        ctx.save_for_backward(values, weights, gather, scatter)
        return _gather_weighted_sum(values, weights, gather, scatter, num_out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        values, weights, gather, scatter = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = grad_weights = None
        if ctx.needs_input_grad[0]:
            grad_values = _gather_weighted_sum(grad, weights, scatter, gather, values.size(0))
        if ctx.needs_input_grad[1]:
            grad_weights = _edge_dot(grad, values, scatter, gather)
        return grad_values, grad_weights, None, None, None


def edge_dot(a: Tensor, b: Tensor, index_a: Tensor, index_b: Tensor) -> Tensor:
    """Per-edge, per-head dot products: ``[Na, H, d], [Nb, H, d] -> [E, H]``."""
    return _EdgeDot.apply(a.contiguous(), b.contiguous(), index_a, index_b)


def gather_weighted_sum(values: Tensor, weights: Tensor, gather: Tensor, scatter: Tensor,
                        num_out: int) -> Tensor:
    """Weighted neighbour sum: ``[Nv, H, d], [E, H] -> [num_out, H, d]``."""
    return _GatherWeightedSum.apply(values.contiguous(), weights.contiguous(), gather,
                                    scatter, num_out)

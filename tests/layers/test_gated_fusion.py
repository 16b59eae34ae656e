"""Eq. 7-8: the gated fusion cell against the formula written out by hand; typed
overloads and torch.compile."""
import inspect
import typing

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.layers import GatedFusion

SETTINGS = settings(max_examples=30, deadline=None)
TOL = dict(rtol=1e-10, atol=1e-12)


def affine(module, value, kind):
    """W value + b over the channel axis, written with einsum."""
    weight = module.weight.reshape(module.weight.size(0), -1)  # [out, in] (1x1 conv or linear)
    if kind == "map":
        out = torch.einsum("oc,bchw->bohw", weight, value)
        return out if module.bias is None else out + module.bias.view(1, -1, 1, 1)
    out = torch.einsum("oc,...c->...o", weight, value)
    return out if module.bias is None else out + module.bias


def unit(value, axis):
    return value / value.pow(2).sum(dim=axis, keepdim=True).sqrt()


@st.composite
def fusion_cases(draw):
    kind = draw(st.sampled_from(("map", "vector")))
    a_channels, b_channels, out_channels = (draw(st.integers(1, 4)) for _ in range(3))
    if kind == "map":
        lead = (draw(st.integers(1, 2)), None, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        a_shape = (lead[0], a_channels) + lead[2:]
        b_shape = (lead[0], b_channels) + lead[2:]
    else:
        lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
        a_shape, b_shape = lead + (a_channels,), lead + (b_channels,)
    return kind, a_channels, b_channels, out_channels, a_shape, b_shape, draw(st.integers(0, 999))


@SETTINGS
@given(fusion_cases())
def test_output_is_the_gate_weighted_mix_of_normalised_maps(case):
    kind, a_ch, b_ch, out_ch, a_shape, b_shape, seed = case
    torch.manual_seed(seed)
    cell = GatedFusion(a_ch, b_ch, out_ch, kind=kind).double()
    a, b = torch.randn(a_shape, dtype=torch.float64), torch.randn(b_shape, dtype=torch.float64)
    out, beta = cell(a, b, return_gate=True)
    axis = 1 if kind == "map" else -1
    expected_beta = torch.sigmoid(affine(cell.gate_a, a, kind) + affine(cell.gate_b, b, kind))
    expected = (expected_beta * unit(affine(cell.map_a, a, kind), axis)
                + (1 - expected_beta) * unit(affine(cell.map_b, b, kind), axis))
    torch.testing.assert_close(beta, expected_beta, **TOL)
    torch.testing.assert_close(out, expected, **TOL)
    assert ((beta > 0) & (beta < 1)).all()
    assert out.size(axis) == out_ch and out.shape[:axis % out.dim()] == a.shape[:axis % a.dim()]
    torch.testing.assert_close(cell(a, b), out, **TOL)


@SETTINGS
@given(fusion_cases())
def test_one_input_ablation_passes_the_other_through_its_map_and_norm(case):
    kind, a_ch, b_ch, out_ch, a_shape, b_shape, seed = case
    torch.manual_seed(seed)
    cell = GatedFusion(a_ch, b_ch, out_ch, kind=kind).double()
    a, b = torch.randn(a_shape, dtype=torch.float64), torch.randn(b_shape, dtype=torch.float64)
    axis = 1 if kind == "map" else -1
    only_a, gate = cell(a, None, return_gate=True)
    assert gate is None
    torch.testing.assert_close(only_a, unit(affine(cell.map_a, a, kind), axis), **TOL)
    torch.testing.assert_close(cell(None, b), unit(affine(cell.map_b, b, kind), axis), **TOL)
    # A cell built for one input only has no parameters for the other.
    single = GatedFusion(None, b_ch, out_ch, kind=kind).double()
    assert single.map_a is None and single.gate_a is None and single.gate_b is None
    torch.testing.assert_close(single(None, b), unit(affine(single.map_b, b, kind), axis), **TOL)


def test_a_saturated_gate_selects_one_normalised_input():
    cell = GatedFusion(3, 5, 4)
    with torch.no_grad():
        cell.gate_a.bias.fill_(50.0)  # beta -> 1: only a's branch remains
    a, b = torch.randn(2, 3, 6, 6), torch.randn(2, 5, 6, 6)
    out = cell(a, b)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 6, 6))
    torch.testing.assert_close(out, cell(a, None), rtol=1e-5, atol=1e-6)
    assert repr(cell) == "GatedFusion(3, 5, 4, kind='map')"


@pytest.mark.parametrize("call, match", [
    (lambda c: c(None, None), r"needs at least one input; found a=None and b=None"),
    (lambda c: c(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4)),
     r"a must have 3 channels \(a_channels\) on dim 1; found shape \(1, 2, 4, 4\)"),
    (lambda c: c(torch.zeros(1, 3, 4), None),
     r"a must be a 4-D map \[B, 3, H, W\] \(kind='map'\); found shape \(1, 3, 4\)"),
    (lambda c: c(torch.zeros(1, 3, 4, 4), torch.zeros(1, 5, 2, 4)),
     r"a and b must agree in every dimension but the channels; found a \(1, 3, 4, 4\) and "
     r"b \(1, 5, 2, 4\)"),
])
def test_bad_inputs_raise_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call(GatedFusion(3, 5, 4))


def test_bad_configuration_raises_errors():
    with pytest.raises(ValueError, match=r"kind must be 'map' or 'vector'; found 'image'"):
        GatedFusion(3, 3, 3, kind="image")
    with pytest.raises(ValueError, match=r"at least one of a_channels, b_channels"):
        GatedFusion(None, None, 3)
    with pytest.raises(ValueError, match=r"built with a_channels=None, so a must be None"):
        GatedFusion(None, 3, 3, kind="vector")(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"b must have 3 channels \(b_channels\) on the last dim"):
        GatedFusion(2, 3, 3, kind="vector")(torch.zeros(2, 2), torch.zeros(2, 4))


@given(st.integers(1, 4), st.integers(2, 9), st.integers(0, 2**31 - 1))
def test_rescaled_fusion_is_sqrt_c_times_the_unit_norm_fusion(batch, channels, seed):
    """rescale=True multiplies Eq. 7's output by sqrt(C_out) and nothing else."""
    torch.manual_seed(seed)
    plain = GatedFusion(3, 5, channels, kind="vector")
    scaled = GatedFusion(3, 5, channels, kind="vector", rescale=True)
    scaled.load_state_dict(plain.state_dict())
    a, b = torch.randn(batch, 3), torch.randn(batch, 5)
    torch.testing.assert_close(scaled(a, b), plain(a, b) * channels ** 0.5)
    # one input switched off: the mapped input with unit-RMS components
    out = scaled(a, None)
    torch.testing.assert_close(out.pow(2).mean(-1), torch.ones(batch))


def test_forward_overloads_type_both_return_shapes():
    signatures = [inspect.signature(o) for o in typing.get_overloads(GatedFusion.forward)]
    assert [s.return_annotation for s in signatures] == ["Tensor",
                                                         "Tuple[Tensor, Optional[Tensor]]"]
    assert [s.parameters["return_gate"].annotation for s in signatures] == [
        "Literal[False]", "Literal[True]"]


@pytest.mark.parametrize("kind", ["map", "vector"])
def test_compiled_cell_has_no_graph_breaks_and_equals_eager(kind):
    torch._dynamo.reset()
    torch.manual_seed(0)
    cell = GatedFusion(3, 2, 4, kind=kind, rescale=True)
    pixels = (3, 3) if kind == "map" else ()
    a = torch.randn((2, 3) + pixels, requires_grad=True)
    b = torch.randn((2, 2) + pixels, requires_grad=True)
    explained = torch._dynamo.explain(cell)(a, b, return_gate=True)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, \
        [reason.reason for reason in explained.break_reasons]

    def step(module):
        cell.zero_grad()
        a.grad = b.grad = None
        out, gate = module(a, b, return_gate=True)
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        return out.detach(), gate.detach(), a.grad.clone(), b.grad.clone()

    compiled = step(torch.compile(cell, backend="inductor", fullgraph=True))
    torch.testing.assert_close(compiled, step(cell), rtol=1e-4, atol=1e-5)

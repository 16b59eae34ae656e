"""The inference fast path (``prepare_for_inference``): folded, channels-last, the
precision chosen per device, and bf16 within its stated bound of fp32."""
from __future__ import annotations

import contextlib

import pytest
import torch

from mgrr_pyg.model import create_model
from mgrr_pyg.model import inference as fast_path
from mgrr_pyg.model.inference import (BF16_MAX_LANDMARK_PX, BF16_MAX_PROB_DIFFERENCE,
                                      AutocastInference, default_precision,
                                      inference_precision, prepare_for_inference)
from mgrr_pyg.predict.inference import EagerBackend, example_inputs


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("tiny").eval()


def _outputs(model, images, landmarks):
    with torch.inference_mode():
        return model(images.contiguous(memory_format=torch.channels_last),
                     region_landmarks=landmarks)


def test_bf16_stays_within_the_stated_bound_of_fp32(tiny_model):
    images, landmarks = example_inputs(8, seed=1)
    fp32 = _outputs(prepare_for_inference(tiny_model, precision="fp32"), images, landmarks)
    bf16 = _outputs(prepare_for_inference(tiny_model, precision="bf16"), images, landmarks)
    prob_difference = (bf16.probs - fp32.probs).abs().max().item()
    landmark_shift = (bf16.landmarks - fp32.landmarks).abs().max().item()
    # bf16 really ran (8 mantissa bits: results move), and stayed within the bound
    assert prob_difference > 1e-5
    assert prob_difference <= BF16_MAX_PROB_DIFFERENCE
    assert landmark_shift <= BF16_MAX_LANDMARK_PX
    # every decision with a margin above the bound is the same
    clear = (fp32.probs - 0.5).abs() > BF16_MAX_PROB_DIFFERENCE
    assert clear.any()
    assert torch.equal((fp32.probs >= 0.5)[clear], (bf16.probs >= 0.5)[clear])
    # what callers read comes back in float32
    assert bf16.probs.dtype == bf16.landmarks.dtype == bf16.local_logits.dtype == torch.float32


def test_the_fp32_fast_path_equals_the_model_and_is_folded(tiny_model):
    images, landmarks = example_inputs(3, seed=2)
    prepared = prepare_for_inference(tiny_model, precision="fp32")
    assert inference_precision(prepared) == "fp32"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.alignment.modules())
    assert prepared.alignment.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reference = tiny_model(images, region_landmarks=landmarks)
    fast = _outputs(prepared, images, landmarks)
    torch.testing.assert_close(fast.probs, reference.probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.landmarks, reference.landmarks, rtol=1e-5, atol=1e-3)


def test_the_bf16_wrapper_reads_through_to_the_model(tiny_model):
    prepared = prepare_for_inference(tiny_model, precision="bf16")
    assert isinstance(prepared, AutocastInference) and inference_precision(prepared) == "bf16"
    assert prepared.config is prepared.model.config
    assert callable(prepared.graphs)
    assert not prepared.training
    assert not any(p.requires_grad for p in prepared.parameters())
    # preparing it again in fp32 gives the plain model, not the bf16 wrapper
    again = prepare_for_inference(prepared, precision="fp32")
    assert inference_precision(again) == "fp32" and not isinstance(again, AutocastInference)


def test_the_default_precision_is_chosen_per_device(monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: False)
    assert default_precision("cpu") == "fp32"
    assert inference_precision(prepare_for_inference(create_model("tiny"))) == "fp32"
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: True)
    assert default_precision("cpu") == "bf16"
    # CUDA (the logic only, on any machine): bf16 where the device supports it
    monkeypatch.setattr(fast_path, "resolve_device", lambda name: torch.device("cuda:0"))
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert default_precision("cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert default_precision("cuda") == "fp32"


def test_cpu_has_fast_bf16_follows_torchs_cpu_checks(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert fast_path.cpu_has_fast_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert fast_path.cpu_has_fast_bf16() is True
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert fast_path.cpu_has_fast_bf16() is False  # helpers absent: assume no bf16 units


def test_a_bad_precision_is_refused_before_anything_changes(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with pytest.raises(ValueError, match=r"precision: expected one of .*'fp16'"):
        prepare_for_inference(tiny_model, precision="fp16", copy_model=False)
    assert tiny_model.alignment.features[0][1].__class__ is torch.nn.BatchNorm2d  # not folded
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_the_eager_backend_runs_the_precision_asked_for(tiny_model, monkeypatch):
    assert EagerBackend(tiny_model).precision == "fp32"  # default: fp32 everywhere
    assert EagerBackend(tiny_model, bf16=True).precision == "bf16"
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: False)
    assert EagerBackend(tiny_model, bf16=None).precision == "fp32"  # per device: AVX2 CPU
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: True)
    backend = EagerBackend(tiny_model, bf16=None)
    assert backend.precision == "bf16" and backend.bf16
    images, landmarks = (t.numpy() for t in example_inputs(2, seed=3))
    probs, points = backend(images, landmarks)
    assert probs.dtype == points.dtype == "float32"


def test_the_eager_backend_takes_a_precision_name_and_refuses_a_disagreeing_switch(tiny_model, monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: False)  # an AVX2 CPU
    assert EagerBackend(tiny_model, precision="bf16").precision == "bf16"
    assert EagerBackend(tiny_model, precision="fp32").precision == "fp32"
    assert EagerBackend(tiny_model, precision="auto").precision == "fp32"
    assert EagerBackend(tiny_model, bf16=True, precision="bf16").precision == "bf16"  # they agree
    assert EagerBackend(tiny_model, bf16=None, precision="auto").precision == "fp32"
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: True)  # a CPU with native bf16
    assert EagerBackend(tiny_model, precision="auto").precision == "bf16"
    assert EagerBackend(tiny_model, precision="fp32").precision == "fp32"  # forced
    with pytest.raises(ValueError, match=r"bf16=True and precision='fp32' disagree"):
        EagerBackend(tiny_model, bf16=True, precision="fp32")
    with pytest.raises(ValueError, match=r"precision: expected one of .*found 'fp16'"):
        EagerBackend(tiny_model, precision="fp16")
    with pytest.raises(ValueError, match=r"bf16: expected True, False or None, found 'yes'"):
        EagerBackend(tiny_model, bf16="yes")
    prepared = prepare_for_inference(tiny_model, precision="fp32")
    assert EagerBackend(prepared, prepared=True, precision="bf16").precision == "bf16"  # wrapped

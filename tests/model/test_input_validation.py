"""Bad model input is refused as the input's fault, before the network runs, and a
forward that raises (before or inside the network) leaves every buffer and parameter
bitwise as it was."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from model_helpers import TINY_SIZES

from mgrr_pyg.model import create_model, list_presets
from mgrr_pyg.model.inputs import IMAGE_RANGE_TOLERANCE


def snapshot(model):
    """Every parameter and buffer (persistent or not), cloned, by name."""
    return {**{f"param {k}": v.detach().clone() for k, v in model.named_parameters()},
            **{f"buffer {k}": v.clone() for k, v in model.named_buffers()}}


def bitwise_equal(a, b):
    """Same dtype, shape and bytes (so NaN equals the same NaN)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))


def changed_entries(model, before):
    now = snapshot(model)
    assert list(now) == list(before)
    return [name for name in before if not bitwise_equal(now[name], before[name])]


# -- values ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("bad, count, kind", [
    (float("nan"), 5, "NaN: 5, inf: 0"), (float("inf"), 1, "NaN: 0, inf: 1"),
    (-float("inf"), 2, "NaN: 0, inf: 2")])
def test_non_finite_images_are_refused_as_the_inputs_fault(images, mode, bad, count, kind):
    model = getattr(create_model("tiny"), mode)()
    images = torch.cat([images, images[:1]])  # 3 samples; sample 1 gets the bad values
    images[1, 0, 10, 10:10 + count] = bad
    with pytest.raises(ValueError) as error:
        model(images)
    message = str(error.value)
    assert message.startswith("images: expected a tensor [B, 3, 176, 176]")
    values = "values" if count > 1 else "value"
    assert f"found {count} non-finite {values} ({kind}) in sample [1] of 3" in message
    assert "the input is broken, not the model" in message
    assert "diverged" not in message


@pytest.mark.parametrize("transform, fix", [
    (lambda x: (x + 1) * 127.5, "this looks like 0..255 pixels: pass images / 127.5 - 1"),
    (lambda x: (x + 1) * 32767.5,
     "this looks like 16-bit pixels (0..65535): pass images / 32767.5 - 1"),
    # ImageNet mean/std normalisation of pixels in [0, 1]
    (lambda x: ((x + 1) / 2 - 0.45) / 0.225, "this looks like mean/std-normalised values"),
    (lambda x: x * 1.05, "this looks like values pushed slightly out (added noise, or "
                         "bicubic / Lanczos resampling after normalising): clamp with "
                         "images.clamp(-1, 1)"),
], ids=["0..255", "16-bit", "mean-std", "overshoot"])
def test_images_outside_minus_one_to_one_are_refused_with_the_likely_fix(images, transform,
                                                                         fix):
    images = torch.cat([images, images])  # [4, ...]
    images[0] = images[0].clamp(-0.5, 0.5)  # sample 0 stays inside after every transform
    images = transform(images)
    images[0] = images[0].clamp(-1, 1)
    with pytest.raises(ValueError) as error:
        create_model("tiny").eval()(images)
    message = str(error.value)
    assert message.startswith("images: expected a tensor [B, 3, 176, 176] of floating-point "
                              "RGB crops with values in [-1, 1] (up to 0.001 outside is "
                              "accepted as float rounding), found ")
    low, high = torch.aminmax(images)
    assert f"found min {float(low):g}, max {float(high):g}, " in message
    assert "with samples [1, 2, 3] of 4 outside the range" in message
    assert fix in message


def test_float_rounding_just_outside_the_range_is_accepted_and_no_more(images):
    assert IMAGE_RANGE_TOLERANCE == 1e-3  # the documented tolerance
    model = create_model("tiny").eval()
    # The dataset's own conversion of 8-bit pixels, in float32, overshoots 1 by rounding.
    pixels = np.array([0, 1, 127, 128, 254, 255], dtype=np.float32)
    converted = torch.from_numpy(pixels * np.float32(1 / 127.5) - np.float32(1))
    inside = images.clone()
    inside[0, 0, 0, :6] = converted
    inside[1, 2, 5, 5] = 1 + 0.9e-3
    inside[1, 2, 5, 6] = -1 - 0.9e-3
    with torch.no_grad():
        assert torch.isfinite(model(inside).probs).all()
    for value in (1 + 1.1e-3, -1 - 1.1e-3):
        outside = images.clone()
        outside[1, 2, 5, 5] = value
        with pytest.raises(ValueError, match=r"with sample \[1\] of 2 outside the range"):
            model(outside)


@pytest.mark.parametrize("images, match", [
    (torch.zeros(0, 3, 176, 176), r"with B >= 1, found an empty batch \[0, 3, 176, 176\]"),
    (torch.zeros(2, 3, 176, 176, dtype=torch.uint8),
     r"found dtype torch.uint8: convert with images.float\(\) / 127.5 - 1"),
], ids=["empty", "uint8"])
def test_empty_and_integer_batches_are_refused_with_the_fix(images, match):
    with pytest.raises(ValueError, match=r"^images: expected a tensor \[B, 3, 176, 176\] .*"
                                         + match):
        create_model("tiny")(images)


# -- state after a failed call ------------------------------------------------------------
@pytest.mark.parametrize("bad", ["nan", "0..255", "batch of 1"])
def test_a_refused_input_leaves_every_buffer_and_parameter_unchanged(images, bad):
    torch.manual_seed(0)
    model = create_model("tiny").train()
    with torch.no_grad():
        model(images)  # non-trivial running statistics
    before = snapshot(model)
    if bad == "nan":
        images[1, :, 40:60, 40:60] = float("nan")
    elif bad == "0..255":
        images = (images + 1) * 127.5
    else:
        images = images[:1]
    with pytest.raises(ValueError, match="^images: "):
        model(images)
    assert changed_entries(model, before) == []


def test_a_batch_of_one_in_train_mode_says_why_and_eval_mode_runs_it(images):
    model = create_model("tiny").train()
    with pytest.raises(ValueError) as error:
        model(images[:1])
    assert str(error.value) == (
        "images: a batch of 1 in train mode: BatchNorm statistics need at least 2 samples per "
        "batch in train mode (3 BatchNorm1d layers normalise each feature over the batch, e.g. "
        "region_features.out_norm); train with batch size >= 2, or call model.eval() to run on "
        "single images")
    with torch.no_grad():
        assert model.eval()(images[:1]).probs.shape == (1, 12)


class Interrupted(Exception):
    pass


def assert_works_like(model, reference, images):
    """``model`` gives bitwise the outputs of ``reference`` (and ends with its state) in
    train mode, then in eval mode."""
    for mode in ("train", "eval"):
        with torch.no_grad():
            out = getattr(model, mode)()(images)
            expected = getattr(reference, mode)()(images)
        assert torch.isfinite(out.probs).all(), mode
        assert torch.equal(out.probs, expected.probs), mode
        assert torch.equal(out.landmarks, expected.landmarks), mode
        assert changed_entries(model, snapshot(reference)) == [], mode


@pytest.mark.parametrize("exception", [Interrupted, KeyboardInterrupt])
def test_a_forward_failing_after_every_batchnorm_restores_the_state(images, monkeypatch,
                                                                    exception):
    """The integrated head runs last, after all 18 BatchNorms have updated their 54
    buffers: the failure must put every one of them back."""
    torch.manual_seed(0)
    model = create_model("tiny").train()
    with torch.no_grad():
        model(images.flip(-1))  # non-trivial running statistics
    reference = copy.deepcopy(model)
    before = snapshot(model)
    seen = {}

    def fail(*args, **kwargs):
        seen["changed when it failed"] = len(changed_entries(model, before))
        raise exception("failed in the integrated head")

    monkeypatch.setattr(model.integrated_head, "forward", fail)
    with pytest.raises(exception, match="failed in the integrated head"):
        model(images)
    assert seen["changed when it failed"] == 54  # the test does exercise the restore
    assert changed_entries(model, before) == []
    monkeypatch.undo()
    assert_works_like(model, reference, images)


def test_non_finite_predicted_landmarks_from_finite_images_leave_the_state_unchanged(images):
    """The natural mid-network failure: diverged weights give NaN landmarks after the stem
    and the alignment branch (14 BatchNorms) have run."""
    torch.manual_seed(0)
    model = create_model("tiny").train()
    reference = copy.deepcopy(model)
    with torch.no_grad():
        model.alignment.regress.bias[5] = float("nan")  # as if training had diverged
    before = snapshot(model)
    with pytest.raises(ValueError, match="predicted landmarks are not finite although the "
                                         r"images are \(has training diverged\?"):
        model(images)
    assert changed_entries(model, before) == []
    with torch.no_grad():
        model.alignment.regress.bias[5] = reference.alignment.regress.bias[5]
    assert_works_like(model, reference, images)


@pytest.mark.parametrize("preset", list_presets())
def test_only_batchnorm_statistics_change_in_a_forward(images, preset):
    """What the restore relies on: a train-mode forward writes only buffers of modules in
    train mode (here BatchNorm running statistics), never a parameter; an eval-mode
    forward writes nothing."""
    torch.manual_seed(0)
    model = create_model(preset, **TINY_SIZES).train()
    norms = {name for name, module in model.named_modules()
             if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)}
    statistics = {f"buffer {norm}.{buffer}" for norm in norms
                  for buffer in ("running_mean", "running_var", "num_batches_tracked")}
    before = snapshot(model)
    with torch.no_grad():
        model(images)
    assert set(changed_entries(model, before)) == statistics
    before = snapshot(model.eval())
    with torch.no_grad():
        model(images)
    assert changed_entries(model, before) == []

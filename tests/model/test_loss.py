"""The joint loss (Eq. 9-11) against values written out by hand."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mgrr_pyg.model import MGRRLoss


def bce(logit: float, label: int) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


LOCAL = [[0.3, -1.2, 2.0], [-0.7, 0.4, 0.0], [1.5, -0.2, -2.5]]
INTEGRATED = [[-0.1, 0.9, 1.1], [0.2, -1.4, 0.6], [0.8, 0.3, -0.4]]
LABELS = [[1, 0, 1], [0, 1, 9], [1, 0, 9]]  # 9 = not coded
WEIGHTS = [0.5, 1.2, 1.3]


def by_hand(logits, labels, weights):
    """(1/n) sum_i w_i * mean over the frames coding AU i of the BCE (0 if none)."""
    n = len(weights)
    total = 0.0
    for i in range(n):
        terms = [bce(logits[b][i], labels[b][i]) for b in range(len(labels)) if labels[b][i] != 9]
        total += weights[i] * (sum(terms) / len(terms) if terms else 0.0)
    return total / n


def make_output(local=LOCAL, integrated=INTEGRATED, landmarks=None):
    batch = len(local)
    if landmarks is None:
        landmarks = torch.full((batch, 49, 2), 80.0, dtype=torch.float64)
    return SimpleNamespace(local_logits=torch.tensor(local, dtype=torch.float64),
                           integrated_logits=torch.tensor(integrated, dtype=torch.float64),
                           landmarks=landmarks)


def labels_and_mask(labels=LABELS):
    raw = torch.tensor(labels, dtype=torch.float64)
    return raw, raw != 9


def test_loss_equals_the_hand_computed_value():
    predicted = torch.full((3, 49, 2), 80.0, dtype=torch.float64)
    truth = predicted.clone()
    truth[0, 0] = torch.tensor([83.0, 76.0])  # 3^2 + 4^2 = 25
    truth[2, 10, 1] += 2.0  # 4
    interocular = torch.tensor([50.0, 60.0, 40.0], dtype=torch.float64)
    labels, mask = labels_and_mask()
    loss = MGRRLoss(torch.tensor(WEIGHTS, dtype=torch.float64), lambda_align=0.5)
    terms = loss(make_output(landmarks=predicted), labels, mask, truth, interocular)

    expected_au = by_hand(LOCAL, LABELS, WEIGHTS)
    expected_int = by_hand(INTEGRATED, LABELS, WEIGHTS)
    expected_align = (25 / (2 * 50**2) + 0 + 4 / (2 * 40**2)) / 3
    assert terms["au"].item() == pytest.approx(expected_au, rel=1e-12)
    assert terms["integrated"].item() == pytest.approx(expected_int, rel=1e-12)
    assert terms["align"].item() == pytest.approx(expected_align, rel=1e-12)
    assert terms["total"].item() == pytest.approx(
        expected_au + expected_int + 0.5 * expected_align, rel=1e-12)


def test_masked_labels_contribute_nothing():
    """Whatever sits under the mask (9, or a 0/1 value) changes neither loss nor grads."""
    labels, mask = labels_and_mask()
    loss = MGRRLoss(torch.tensor(WEIGHTS, dtype=torch.float64))
    out = make_output()
    out.local_logits.requires_grad_(True)
    first = loss(out, labels, mask)["au"]
    (grad_first,) = torch.autograd.grad(first, out.local_logits)
    changed = labels.clone()
    changed[~mask] = 1.0
    second = loss(out, changed, mask)["au"]
    (grad_second,) = torch.autograd.grad(second, out.local_logits)
    assert first.item() == second.item()
    torch.testing.assert_close(grad_first, grad_second)
    assert (grad_first[~mask] == 0).all()
    # Masking a coded entry does change the value (the test can fail).
    fewer = mask.clone()
    fewer[0, 0] = False
    assert loss(out, labels, fewer)["au"].item() != pytest.approx(first.item())


def test_an_au_coded_on_no_frame_contributes_zero():
    labels = [[1, 9, 0], [0, 9, 1], [1, 9, 1]]
    raw, mask = labels_and_mask(labels)
    loss = MGRRLoss(torch.tensor(WEIGHTS, dtype=torch.float64))
    value = loss(make_output(), raw, mask)["au"].item()
    assert math.isfinite(value)
    assert value == pytest.approx(by_hand(LOCAL, labels, WEIGHTS), rel=1e-12)


def test_class_weights_scale_their_own_au_only():
    labels, mask = labels_and_mask()
    out = make_output()
    base = MGRRLoss(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))(out, labels, mask)["au"]
    scaled = MGRRLoss(torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64))(out, labels, mask)["au"]
    au1_mean = (bce(LOCAL[0][1], 0) + bce(LOCAL[1][1], 1) + bce(LOCAL[2][1], 0)) / 3
    assert (scaled - base).item() == pytest.approx(2.0 * au1_mean / 3, rel=1e-12)
    unweighted = MGRRLoss()(out, labels, mask)["au"]
    assert unweighted.item() == pytest.approx(base.item(), rel=1e-12)


def test_bce_on_logits_is_stable_for_large_logits():
    out = make_output(local=[[80.0, -80.0, 0.0]] * 3, integrated=[[0.0, 0.0, 0.0]] * 3)
    labels = torch.tensor([[0.0, 1.0, 1.0]] * 3, dtype=torch.float64)
    terms = MGRRLoss()(out, labels)
    assert torch.isfinite(terms["au"])
    assert terms["au"].item() == pytest.approx((80 + 80 + math.log(2)) / 3, rel=1e-9)


@pytest.mark.parametrize("value, match", [(float("nan"), "not finite"),
                                          (500.0, "outside the 176x176 crop")])
def test_bad_ground_truth_landmarks_are_refused(value, match):
    labels, mask = labels_and_mask()
    truth = torch.full((3, 49, 2), 80.0, dtype=torch.float64)
    truth[2, 5, 1] = value
    with pytest.raises(ValueError, match=match):
        MGRRLoss()(make_output(), labels, mask, truth, torch.ones(3))


@pytest.mark.parametrize("interocular, match", [
    (torch.tensor([50.0, 0.0, 40.0]), "finite distances > 0"),
    (torch.tensor([50.0, float("nan"), 40.0]), "finite distances > 0"),
    (torch.tensor([50.0, 40.0]), r"expected shape \[3\]"),
    (None, "interocular"),
])
def test_bad_interocular_distances_are_refused(interocular, match):
    labels, mask = labels_and_mask()
    truth = torch.full((3, 49, 2), 80.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        MGRRLoss()(make_output(), labels, mask, truth, interocular)


def test_bad_labels_and_weights_are_refused():
    labels, mask = labels_and_mask()
    with pytest.raises(ValueError, match="coded entries must be 0 or 1"):
        MGRRLoss()(make_output(), labels, torch.ones_like(mask))  # the 9s are not masked
    with pytest.raises(ValueError, match=r"labels: expected shape \[3, 3\]"):
        MGRRLoss()(make_output(), labels[:, :2], mask[:, :2])
    with pytest.raises(ValueError, match="2 weights for 3 AUs"):
        MGRRLoss(torch.ones(2))(make_output(), labels, mask)
    with pytest.raises(ValueError, match="non-negative"):
        MGRRLoss(torch.tensor([1.0, -1.0, 1.0]))

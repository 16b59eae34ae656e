"""class_weights: w_i = (1/r_i) / sum_j (1/r_j) * n over coded frames."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mgrr_pyg.data import class_weights


def test_matches_hand_computation():
    labels = np.array([[1, 0, 9],
                       [0, 1, 1],
                       [1, 9, 0],
                       [0, 0, 1]])
    # rates over coded frames: AU0 2/4, AU1 1/3, AU2 2/3 -> inverses 2, 3, 3/2 (sum 13/2)
    expected = np.array([2.0, 3.0, 1.5]) / 6.5 * 3
    np.testing.assert_allclose(class_weights(labels).numpy(), expected, rtol=1e-6)


@given(arrays(np.int64, st.tuples(st.integers(2, 40), st.integers(1, 12)),
              elements=st.sampled_from([0, 1, 9])))
def test_weights_average_to_one_and_favour_rare_aus(labels):
    labels[0] = 1  # every AU has a positive (the zero-positive case has its own test)
    weights = class_weights(labels).numpy()
    assert weights.shape == (labels.shape[1],)
    assert np.isfinite(weights).all() and (weights > 0).all()
    assert weights.mean() == pytest.approx(1.0, rel=1e-5)
    coded = (labels != 9).sum(0)
    rate = (labels == 1).sum(0) / coded
    for i in range(len(rate)):
        for j in range(len(rate)):
            if rate[i] < rate[j] - 1e-12:
                assert weights[i] > weights[j]


def test_missing_frames_do_not_change_the_weights():
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 0]])
    padded = np.vstack([labels, np.full((7, 2), 9)])
    np.testing.assert_allclose(class_weights(labels), class_weights(padded))


def test_torch_input_and_output_dtype():
    labels = torch.tensor([[1, 0], [0, 1], [0, 0]])
    weights = class_weights(labels)
    assert isinstance(weights, torch.Tensor) and weights.dtype == torch.float32
    np.testing.assert_allclose(weights.numpy(), class_weights(labels.numpy()).numpy())


def test_au_without_positives_warns_and_stays_finite():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    with pytest.warns(UserWarning, match=r"columns \[1\] have no positive"):
        weights = class_weights(labels).numpy()
    # AU1 gets the rate of one positive among its 4 coded frames: 1/4; AU0 has 2/4.
    np.testing.assert_allclose(weights, np.array([2.0, 4.0]) / 6.0 * 2, rtol=1e-6)


def test_no_warning_in_the_normal_case():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        class_weights(np.array([[1, 0], [0, 1]]))


@pytest.mark.parametrize("bad", [2, -1, 5])
def test_values_outside_0_1_9_are_rejected(bad):
    with pytest.raises(ValueError, match=f"found {bad}"):
        class_weights(np.array([[1, 0], [0, bad]]))

"""Eq. 1-2: the AU co-occurrence prior, checked against a brute-force count."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mgrr_pyg.graphs import au_cooccurrence_prior

MISSING = 9
SETTINGS = settings(max_examples=40, deadline=None)


def label_matrices(min_frames=1, max_frames=16, min_aus=1, max_aus=5, values=(0, 1, MISSING)):
    shapes = st.tuples(st.integers(min_frames, max_frames), st.integers(min_aus, max_aus))
    return shapes.flatmap(lambda shape: arrays(np.int64, shape, elements=st.sampled_from(values)))


def brute_force_prior(labels, missing=MISSING):
    """Eq. 1-2 with python loops over frames, and the decided edge cases: an
    undefined conditional (AU j constant or absent on the jointly coded frames)
    gives A_ij = 0; the diagonal is 1."""
    frames, aus = len(labels), len(labels[0])
    prior = [[0.0] * aus for _ in range(aus)]
    for i in range(aus):
        for j in range(aus):
            if i == j:
                prior[i][j] = 1.0
                continue
            both = [f for f in range(frames)
                    if labels[f][i] != missing and labels[f][j] != missing]
            j_on = [f for f in both if labels[f][j] == 1]
            j_off = [f for f in both if labels[f][j] == 0]
            if not j_on or not j_off:
                continue
            p_on = sum(1 for f in j_on if labels[f][i] == 1) / len(j_on)
            p_off = sum(1 for f in j_off if labels[f][i] == 0) / len(j_off)
            prior[i][j] = abs(2 * (0.5 * (p_on + p_off) - 0.5))
    return np.array(prior)


@SETTINGS
@given(label_matrices())
def test_prior_equals_brute_force_count(labels):
    np.testing.assert_allclose(au_cooccurrence_prior(labels), brute_force_prior(labels.tolist()),
                               rtol=0, atol=1e-12)


@SETTINGS
@given(label_matrices())
def test_prior_values_lie_in_unit_interval_with_unit_diagonal(labels):
    prior = au_cooccurrence_prior(labels)
    assert prior.shape == (labels.shape[1],) * 2
    assert np.all(prior >= 0) and np.all(prior <= 1)
    np.testing.assert_array_equal(np.diag(prior), 1.0)


@SETTINGS
@given(label_matrices(), st.data())
def test_prior_is_invariant_to_reordering_frames(labels, data):
    order = data.draw(st.permutations(range(labels.shape[0])))
    np.testing.assert_allclose(au_cooccurrence_prior(labels[list(order)]),
                               au_cooccurrence_prior(labels), rtol=0, atol=1e-12)


@SETTINGS
@given(label_matrices(), st.data())
def test_permuting_aus_permutes_the_prior(labels, data):
    perm = list(data.draw(st.permutations(range(labels.shape[1]))))
    permuted = au_cooccurrence_prior(labels[:, perm])
    np.testing.assert_allclose(permuted, au_cooccurrence_prior(labels)[np.ix_(perm, perm)],
                               rtol=0, atol=1e-12)


def _non_constant_column(data, frames):
    column = data.draw(arrays(np.int64, frames, elements=st.sampled_from((0, 1))))
    column[0], column[-1] = 0, 1  # both states occur
    return column


@SETTINGS
@given(st.integers(2, 20), st.data())
def test_identical_non_constant_columns_give_one(frames, data):
    column = _non_constant_column(data, frames)
    other = data.draw(arrays(np.int64, frames, elements=st.sampled_from((0, 1, MISSING))))
    prior = au_cooccurrence_prior(np.stack([column, other, column], axis=1))
    assert prior[0, 2] == pytest.approx(1.0) and prior[2, 0] == pytest.approx(1.0)


@SETTINGS
@given(st.integers(2, 20), st.data())
def test_column_and_its_negation_give_one(frames, data):
    column = _non_constant_column(data, frames)
    prior = au_cooccurrence_prior(np.stack([column, 1 - column], axis=1))
    assert prior[0, 1] == pytest.approx(1.0) and prior[1, 0] == pytest.approx(1.0)


@SETTINGS
@given(label_matrices(min_aus=2), st.data())
def test_missing_codes_never_count(labels, data):
    """Changing AU i in a frame where AU j is missing leaves the pair (i, j) alone."""
    aus = labels.shape[1]
    i = data.draw(st.integers(0, aus - 1))
    j = data.draw(st.integers(0, aus - 1).filter(lambda v: v != i))
    frame = data.draw(st.integers(0, labels.shape[0] - 1))
    labels = labels.copy()
    labels[frame, j] = MISSING
    changed = labels.copy()
    changed[frame, i] = data.draw(st.sampled_from((0, 1, MISSING)))
    before, after = au_cooccurrence_prior(labels), au_cooccurrence_prior(changed)
    assert after[i, j] == before[i, j] and after[j, i] == before[j, i]


def test_constant_or_uncoded_partner_carries_no_information():
    labels = np.array([[1, 0, MISSING],
                       [0, 0, MISSING],
                       [1, 0, MISSING]])
    prior = au_cooccurrence_prior(labels)
    # AU 1 is constant: it says nothing about AU 0; AU 2 is never coded.
    assert prior[0, 1] == 0 and prior[0, 2] == 0 and prior[2, 0] == 0
    np.testing.assert_array_equal(np.diag(prior), 1.0)


def test_torch_in_gives_torch_out_with_the_same_values():
    labels = np.array([[1, 0, 1], [0, 1, 9], [1, 1, 0], [0, 0, 1]])
    from_torch = au_cooccurrence_prior(torch.as_tensor(labels))
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.get_default_dtype()
    np.testing.assert_allclose(from_torch.numpy(), brute_force_prior(labels.tolist()), atol=1e-6)
    assert isinstance(au_cooccurrence_prior(labels), np.ndarray)


def test_a_custom_missing_code_is_honoured():
    labels = np.array([[1, -1], [0, 1], [1, 0], [0, 1]])
    expected = brute_force_prior(labels.tolist(), missing=-1)
    np.testing.assert_allclose(au_cooccurrence_prior(labels, missing_value=-1), expected)


@pytest.mark.parametrize("labels, match", [
    (np.array([1, 0, 1]), r"labels must be 2-D \[frames, AUs\]; found shape \(3,\)"),
    (np.zeros((2, 3, 4)), r"labels must be 2-D .*found shape \(2, 3, 4\)"),
    (np.zeros((0, 3)), r"at least one frame and one AU; found shape \(0, 3\)"),
    (np.zeros((4, 0)), r"at least one frame and one AU; found shape \(4, 0\)"),
    (np.array([[0, 1], [1, 2]]), r"only 0, 1 or the missing code 9; found 2 at row 1, column 1"),
    (np.array([[0, 1], [np.nan, 1]]), r"found nan at row 1, column 0"),
    (np.array([[0, -1], [1, 0]]), r"found -1 at row 0, column 1"),
    ([[0, 1]], r"labels must be a numpy array or a torch tensor"),
])
def test_bad_labels_raise_errors_naming_argument_position_and_value(labels, match):
    with pytest.raises(ValueError, match=match):
        au_cooccurrence_prior(labels)

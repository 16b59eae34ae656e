"""The paired subject bootstrap of F1 differences, against numbers worked out by hand.

Every expected value below is typed from a hand computation (written out in the
comments), not from the package's functions."""
import numpy as np
import pytest

from mgrr_pyg.train.bootstrap import (
    mean_f1_from_counts,
    paired_bootstrap,
    subject_counts,
    subjects_of_frames,
)


def test_mean_f1_of_one_subject_by_hand():
    # 3 frames x 2 AUs, threshold 0.5 (a frame is positive at prob >= 0.5); 9 = not coded.
    # AU a: labels 1, 0, 1; predicted 1, 1, 0 -> TP 1, FP 1, FN 1 -> F1 = 2 / (2 + 1 + 1) = 0.5
    # AU b: frame 0 not coded; labels 1, 0; probs 0.4 (-> 0), 0.5 (-> 1) -> TP 0, FP 1, FN 1 -> F1 0
    # mean over the AUs: 0.25
    labels = [[1, 9], [0, 1], [1, 0]]
    probs = [[0.7, 0.9], [0.6, 0.4], [0.2, 0.5]]
    counts = subject_counts(probs, labels, ["S1"] * 3)
    assert counts.tp.tolist() == [[1, 0]] and counts.fp.tolist() == [[1, 1]]
    assert counts.fn.tolist() == [[1, 1]] and counts.coded.tolist() == [[3, 2]]
    assert counts.mean_f1() == pytest.approx(0.25)


def test_f1_edge_cases_by_hand():
    # AU with coded frames but no positive and nothing predicted: F1 0 (zero_division=0);
    # AU with no coded frame: left out of the mean. (1.0 + 0 ) / 2 = 0.5
    tp, fp, fn, coded = [3, 0, 0], [0, 0, 0], [0, 0, 0], [5, 4, 0]
    assert mean_f1_from_counts(tp, fp, fn, coded) == pytest.approx(0.5)
    assert np.isnan(mean_f1_from_counts([0], [0], [0], [0]))


# Two subjects, one AU. Setting X is right on every frame; the reference R is not.
#   subject A: labels 1 1 0 0   X: 0.9 0.8 0.1 0.2 (TP 2)   R: 0.9 0.1 0.7 0.2 (TP 1, FN 1, FP 1)
#   subject B: labels 1 0       X: 0.6 0.3       (TP 1)   R: 0.2 0.3       (FN 1)
# Resampling 2 subjects with replacement: AA (1/4), AB or BA (1/2), BB (1/4).
#   F1(X) = 1 always. F1(R): AA: TP 2, FP 2, FN 2 -> 4/8 = 0.5; AB: TP 1, FP 1, FN 2 -> 2/5 = 0.4;
#   BB: TP 0, FN 2 -> 0. Differences X - R: 0.5 (1/4), 0.6 (1/2), 1.0 (1/4); on the test set
#   itself (A and B once): 0.6. The 2.5 / 97.5 percentiles of that distribution: 0.5 and 1.0.
LABELS = [[1], [1], [0], [0], [1], [0]]
SUBJECTS = ["A", "A", "A", "A", "B", "B"]
X = [[0.9], [0.8], [0.1], [0.2], [0.6], [0.3]]
R = [[0.9], [0.1], [0.7], [0.2], [0.2], [0.3]]


def test_paired_bootstrap_matches_the_enumerated_distribution():
    x, r = subject_counts(X, LABELS, SUBJECTS), subject_counts(R, LABELS, SUBJECTS)
    result = paired_bootstrap([(x, r)], replicates=4000, seed=1)
    assert result.difference == pytest.approx(0.6)
    assert (result.low, result.high) == pytest.approx((0.5, 1.0))
    assert result.low > 0  # better on every subject: the interval excludes 0
    # the replicates follow the enumerated distribution: 0.5, 0.6, 1.0 with 1/4, 1/2, 1/4
    weights = np.random.default_rng(1).multinomial(2, [0.5, 0.5], size=4000).astype(float)
    values = x.mean_f1(weights) - r.mean_f1(weights)
    shares = [np.mean(np.isclose(values, v)) for v in (0.5, 0.6, 1.0)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.03)


def test_identical_predictions_give_a_zero_interval():
    x = subject_counts(X, LABELS, SUBJECTS)
    result = paired_bootstrap([(x, subject_counts(X, LABELS, SUBJECTS))], replicates=500)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)


def test_pooling_over_seed_pairs_is_the_mean_of_the_paired_differences():
    # pair 1: X vs R (0.6 on the test set); pair 2: R vs R (0). Pooled: (0.6 + 0) / 2 = 0.3,
    # and every replicate is half of pair 1's: 0.25, 0.3, 0.5 -> interval [0.25, 0.5].
    x, r = subject_counts(X, LABELS, SUBJECTS), subject_counts(R, LABELS, SUBJECTS)
    result = paired_bootstrap([(x, r), (r, r)], replicates=4000, seed=2, labels=["0", "1"])
    assert result.per_pair == pytest.approx([0.6, 0.0])
    assert result.difference == pytest.approx(0.3)
    assert (result.low, result.high) == pytest.approx((0.25, 0.5))


def test_one_subject_draw_is_shared_by_the_pairs():
    # Three identical pairs: with one shared draw the pooled replicates are those of one
    # pair (0.5 / 0.6 / 1.0, interval [0.5, 1.0]). Independent draws per pair would give
    # means of three: all three at 0.5 has probability (1/4)^3 = 1.6 % < 2.5 %, so the
    # 2.5 % point would move up to (0.5 + 0.5 + 0.6) / 3 = 0.533 (probability 3/32).
    x, r = subject_counts(X, LABELS, SUBJECTS), subject_counts(R, LABELS, SUBJECTS)
    result = paired_bootstrap([(x, r)] * 3, replicates=4000, seed=3)
    assert (result.low, result.high) == pytest.approx((0.5, 1.0))


def test_runs_on_other_subjects_or_bad_labels_are_refused():
    x = subject_counts(X, LABELS, SUBJECTS)
    other = subject_counts(X, LABELS, ["A", "A", "A", "A", "C", "C"])
    with pytest.raises(ValueError, match="other subjects"):
        paired_bootstrap([(x, other)])
    with pytest.raises(ValueError, match=r"run\.npz: labels must be 0, 1 or 9; found 2 at frame 1"):
        subject_counts([[0.5], [0.5]], [[1], [2]], ["A", "A"], source="run.npz")
    with pytest.raises(ValueError, match="one subject per frame"):
        subject_counts([[0.5]], [[1]], ["A", "B"])


def test_subjects_read_from_frame_paths():
    known = ("F001", "F002", "SN001")
    assert subjects_of_frames(["BP4D/F001/T1/543.jpg", "DISFA/SN001/12.png"], known, "p.npz") == ["F001", "SN001"]
    with pytest.raises(ValueError, match=r"p\.npz: frame 0 \('x/1\.jpg'\) names no subject"):
        subjects_of_frames(["x/1.jpg"], known, "p.npz")

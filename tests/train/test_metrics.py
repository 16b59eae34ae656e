"""Metrics against independent hand-written formulas on small arrays."""
import math

import numpy as np
import pytest

from mgrr_pyg.train.metrics import (
    best_baseline,
    csv_table,
    evaluate_predictions,
    label_only_baselines,
    landmark_metrics,
    load_predictions,
    markdown_table,
    results_tables,
    save_predictions,
)


def f1_by_counts(y, pred):
    tp = np.sum((y == 1) & (pred == 1))
    fp = np.sum((y == 0) & (pred == 1))
    fn = np.sum((y == 1) & (pred == 0))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def auc_by_pairs(y, score):
    """Mann-Whitney: share of (positive, negative) pairs ranked correctly, ties 1/2."""
    pos, neg = score[y == 1], score[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_per_au_metrics_match_hand_formulas_and_exclude_label_9():
    probs = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4], [0.1, 0.8], [0.7, 0.1], [0.55, 0.65]])
    labels = np.array([[1, 0], [0, 1], [1, 9], [0, 1], [9, 0], [1, 0]])
    m = evaluate_predictions(probs, labels, aus=(1, 2))
    # AU1: frames 0,1,2,3,5 coded; predictions >= .5 -> 1,1,0,0,1; labels 1,0,1,0,1
    # TP=2 (0,5) FP=1 (1) FN=1 (2) TN=1 (3) -> F1 = 4/6, acc = 3/5
    assert m.f1[0] == pytest.approx(4 / 6)
    assert m.accuracy[0] == pytest.approx(3 / 5)
    y1, s1 = np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.6, 0.3, 0.1, 0.55])
    assert m.auc[0] == pytest.approx(auc_by_pairs(y1, s1))
    assert m.auc[0] == pytest.approx(4 / 6)  # pairs: (.9>.6,.1) (.3<.6, >.1) (.55<.6, >.1)
    # AU2: frames 0,1,3,4,5 coded, labels 0,1,1,0,0, preds 0,1,1,0,1
    y2, s2 = np.array([0, 1, 1, 0, 0]), np.array([0.2, 0.7, 0.8, 0.1, 0.65])
    assert m.f1[1] == pytest.approx(f1_by_counts(y2, (s2 >= 0.5).astype(int)))
    assert m.f1[1] == pytest.approx(0.8)
    assert m.accuracy[1] == pytest.approx(4 / 5)
    assert m.auc[1] == pytest.approx(auc_by_pairs(y2, s2)) and m.auc[1] == pytest.approx(1.0)
    assert m.f1_mean == pytest.approx((4 / 6 + 0.8) / 2)
    assert list(m.coded) == [5, 5] and list(m.positives) == [3, 2]
    # a prediction on a frame coded 9 changes nothing
    changed = probs.copy()
    changed[2, 1] = 0.99
    changed[4, 0] = 0.01
    m2 = evaluate_predictions(changed, labels, aus=(1, 2))
    np.testing.assert_array_equal(m.f1, m2.f1)
    np.testing.assert_array_equal(m.auc, m2.auc)


def test_random_arrays_agree_with_independent_formulas():
    rng = np.random.default_rng(3)
    probs = rng.random((40, 4))
    labels = (rng.random((40, 4)) < 0.4).astype(int)
    labels[rng.random((40, 4)) < 0.15] = 9
    labels[0], labels[1] = 1, 0
    m = evaluate_predictions(probs, labels, threshold=0.5)
    for i in range(4):
        keep = labels[:, i] != 9
        y, s = labels[keep, i], probs[keep, i]
        assert m.f1[i] == pytest.approx(f1_by_counts(y, (s >= 0.5).astype(int)))
        assert m.accuracy[i] == pytest.approx(np.mean((s >= 0.5) == y))
        assert m.auc[i] == pytest.approx(auc_by_pairs(y, s))


def test_undefined_auc_is_noted_not_silent():
    m = evaluate_predictions(np.array([[0.2], [0.7]]), np.array([[0], [0]]), aus=(9,))
    assert math.isnan(m.auc[0]) and any("AU9" in note for note in m.notes)
    assert m.f1[0] == 0.0 and m.accuracy[0] == pytest.approx(0.5)


def test_bad_inputs_are_errors_naming_the_place():
    with pytest.raises(ValueError, match="row 1, column 0"):
        evaluate_predictions(np.zeros((2, 1)), np.array([[0], [2]]))
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_predictions(np.array([[np.nan]]), np.array([[1]]))
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(np.zeros((2, 2)), np.zeros((2, 3), int))


def test_landmark_error_and_failure_rate():
    true = np.zeros((3, 49, 2))
    pred = true.copy()
    pred[0] += np.array([3.0, 4.0])  # every point 5 px off
    pred[1, :10] += np.array([0.0, 49.0])  # 10 points 49 px off -> mean 10 px
    io = np.array([100.0, 50.0, 20.0])
    lm = landmark_metrics(pred, true, io)
    errors = [5 / 100, 10 / 50, 0.0]
    assert lm["mean_error"] == pytest.approx(np.mean(errors))
    assert lm["failure_rate"] == pytest.approx(1 / 3)  # only frame 1 is above 0.1
    with pytest.raises(ValueError, match="positive"):
        landmark_metrics(pred, true, np.array([1.0, 0.0, 1.0]))


def test_label_only_baselines():
    train = np.array([[1, 0], [1, 0], [1, 1], [0, 0], [9, 0]])  # rates .75, .25
    test = np.array([[1, 0], [0, 1], [0, 0], [1, 9]])
    b = label_only_baselines(train, test, aus=(1, 2), seed=0)
    # all positive: F1 = 2p / (p + 1) with p the test positive share
    assert b["all positive"].f1[0] == pytest.approx(2 * 0.5 / 1.5)
    assert b["all positive"].f1[1] == pytest.approx(2 * (1 / 3) / (1 + 1 / 3))
    # threshold: AU1 rate .75 -> always positive; AU2 rate .25 -> never
    assert b["prior rate (threshold)"].f1[0] == pytest.approx(b["all positive"].f1[0])
    assert b["prior rate (threshold)"].f1[1] == 0.0
    assert b["prior rate (threshold)"].accuracy[1] == pytest.approx(2 / 3)
    name, best = best_baseline(b)
    assert best.f1_mean == max(v.f1_mean for v in b.values())


def test_tables_have_aus_as_columns_and_avg_last(tmp_path):
    md = markdown_table({"model": [0.5, 0.25, float("nan")]}, aus=(1, 2, 4))
    header, sep, row = md.splitlines()
    assert [c.strip() for c in header.split("|")[1:-1]] == ["", "AU1", "AU2", "AU4", "Avg."]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells == ["model", "50.0", "25.0", "n/a", "37.5"]
    text = csv_table({"model": [0.5, 0.25, 1.0]}, aus=(1, 2, 4), metric="f1")
    assert text.splitlines()[0] == "metric,row,AU1,AU2,AU4,Avg."
    assert text.splitlines()[1] == "f1,model,50.00,25.00,100.00,58.33"
    m = evaluate_predictions(np.array([[0.9], [0.1]]), np.array([[1], [0]]), aus=(6,))
    both = results_tables({"a": m}, fmt="markdown")
    assert "F1-frame" in both and "ROC AUC" in both and "| AU6 | Avg. |" in both


def test_predictions_round_trip(tmp_path):
    probs = np.array([[0.1, 0.9], [0.6, 0.4]], dtype=np.float32)
    labels = np.array([[0, 1], [9, 0]])
    npz, csv_path = save_predictions(tmp_path / "pred", probs, labels, (1, 2), ["a/1.jpg", "b/2.jpg"])
    data = load_predictions(npz)
    np.testing.assert_array_equal(data["probs"], probs)
    np.testing.assert_array_equal(data["labels"], labels)
    assert list(data["frame_ids"]) == ["a/1.jpg", "b/2.jpg"]
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "frame,prob_AU1,prob_AU2,label_AU1,label_AU2"
    assert lines[2].split(",")[0] == "b/2.jpg" and lines[2].split(",")[3] == "9"
    again = evaluate_predictions(data["probs"], data["labels"], tuple(data["aus"]))
    assert again.f1_mean == evaluate_predictions(probs, labels, (1, 2)).f1_mean
    assert "subjects" not in data  # not given, not invented
    npz, _ = save_predictions(tmp_path / "with", probs, labels, (1, 2), ["a/1.jpg", "b/2.jpg"],
                              subjects=["F001", "M002"])
    assert load_predictions(npz)["subjects"].tolist() == ["F001", "M002"]
    with pytest.raises(ValueError, match="subjects: expected 2 subjects .one per frame., found 1"):
        save_predictions(tmp_path / "bad", probs, labels, (1, 2), ["a", "b"], subjects=["F001"])
    assert not (tmp_path / "bad.npz").exists()

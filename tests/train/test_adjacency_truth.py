"""A run's learned adjacencies against the synthetic generator's truth and the prior:
Spearman of the off-diagonal entries and edge-recovery AUC, read from run folders."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mgrr_pyg.data.synthetic.truth import preset_truth
from mgrr_pyg.facs import DISFA_AUS
from mgrr_pyg.train.adjacency_truth import (adjacency_agreement, agreement, edge_recovery_auc,
                                            spearman_off_diagonal)
from mgrr_pyg.train.checkpoint import CheckpointError, build_metadata, save_checkpoint


# -- the numbers, on typed examples -----------------------------------------------------------
def test_spearman_leaves_the_diagonal_out():
    # Off-diagonal entries (row by row): a = 1 2 3 4 5 6, b = 1 2 3 4 6 5: one adjacent
    # swap, rho = 1 - 6 * (1 + 1) / (6 * (36 - 1)) = 1 - 12 / 210.
    a = np.array([[100.0, 1, 2], [3, -50, 4], [5, 6, 7]])
    b = np.array([[0.0, 1, 2], [3, 9, 4], [6, 5, 0]])
    assert spearman_off_diagonal(a, b) == pytest.approx(1 - 12 / 210)
    reversed_b = np.array([[0.0, 6, 5], [4, 0, 3], [2, 1, 0]])
    assert spearman_off_diagonal(a, reversed_b) == pytest.approx(-1.0)


def test_spearman_of_a_constant_matrix_is_undefined():
    assert spearman_off_diagonal(np.eye(3), np.arange(9.0).reshape(3, 3)) is None


def test_edge_recovery_auc_of_a_typed_example():
    truth = np.array([[1.0, 0.9, 0.1], [0.2, 1.0, 0.7], [0.0, 0.3, 1.0]])  # edges (0,1), (1,2)
    # off-diagonal scores: (0,1) .5, (0,2) .6, (1,0) .1, (1,2) .8, (2,0) .2, (2,1) .3
    scores = np.array([[9.0, 0.5, 0.6], [0.1, 9.0, 0.8], [0.2, 0.3, 9.0]])
    # positives .5 and .8 against negatives .6 .1 .2 .3: .5 beats 3 of 4, .8 beats 4 -> 7 / 8
    assert edge_recovery_auc(scores, truth, cut=0.5) == pytest.approx(7 / 8)
    # the sign counts: a learned A that is the negative truth recovers nothing
    assert edge_recovery_auc(-truth, truth) == pytest.approx(0.0)
    assert edge_recovery_auc(np.abs(-truth), truth) == pytest.approx(1.0)
    assert edge_recovery_auc(scores, np.eye(3)) is None  # no edges


def test_agreement_tells_the_orientation():
    # AU i is tied to every later AU j (T[i, j] high), barely the other way round
    truth = np.array([[1.0, 0.9, 0.8, 0.7],
                      [0.1, 1.0, 0.6, 0.55],
                      [0.2, 0.15, 1.0, 0.4],
                      [0.05, 0.25, 0.3, 1.0]])
    out = agreement([truth, truth.T], prior=truth, truth=truth)
    first, second = out["layers"]
    assert first["spearman_truth"] == pytest.approx(1.0) and first["auc_truth"] == pytest.approx(1.0)
    assert second["spearman_truth"] < 0 and second["auc_truth"] < 0.5
    assert out["prior_vs_truth"] == {"spearman": 1.0, "auc": 1.0}
    assert out["truth_edges"] == 5


# -- run folders -----------------------------------------------------------------------------
def write_run(folder, learned=None, prior=None, name="last.pt", train_config=None, **overrides):
    """A tiny DISFA model's checkpoint, as the trainer writes one, with chosen A^k."""
    from mgrr_pyg.model import create_model

    torch.manual_seed(0)
    model = create_model("tiny", aus=DISFA_AUS, **overrides)
    if prior is not None:
        model.set_prior(torch.as_tensor(prior, dtype=torch.float32))
    for layer, matrix in zip([l for l in model.layers if l.adjacency is not None], learned or []):
        with torch.no_grad():
            layer.adjacency.copy_(torch.as_tensor(matrix))
    config = {"dataset": "DISFA", "data_root": None, "synthetic_preset": "tied"}
    config.update(train_config or {})
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder / name, model=model, epoch=1, model_name="tiny", train_config=config,
                           metadata=build_metadata(DISFA_AUS, "DISFA", 1))


def test_run_folder_numbers_per_layer(tmp_path):
    truth = preset_truth("tied", "DISFA")
    rng = np.random.default_rng(0)
    prior = np.clip(truth + rng.normal(0, 0.2, truth.shape), 0, 1)
    np.fill_diagonal(prior, 1.0)
    write_run(tmp_path / "run", learned=[truth, -truth], prior=prior)
    out = adjacency_agreement(tmp_path / "run")
    json.dumps(out)  # plain data
    assert out["truth_available"] and out["dataset"] == "DISFA" and out["synthetic_preset"] == "tied"
    assert out["aus"] == list(DISFA_AUS) and out["ties"] == [[6, 12], [26, 25]]
    first, second = out["layers"]
    assert first["layer"] == 1 and first["spearman_truth"] == pytest.approx(1.0)
    assert first["auc_truth"] == pytest.approx(1.0)
    assert second["spearman_truth"] == pytest.approx(-1.0)
    assert second["auc_truth"] == pytest.approx(0.0) and second["auc_truth_abs"] == pytest.approx(1.0)
    expected = spearman_off_diagonal(truth, prior)
    assert first["spearman_prior"] == pytest.approx(expected, abs=1e-4)
    assert out["prior_vs_truth"]["spearman"] == pytest.approx(expected, abs=1e-4)
    assert out["checkpoint"].endswith("last.pt") and out["note"] == ""


def test_best_checkpoint_is_preferred(tmp_path):
    truth = preset_truth("tied", "DISFA")
    write_run(tmp_path / "run", learned=[truth, truth], name="last.pt")
    write_run(tmp_path / "run", learned=[-truth, -truth], name="best.pt")
    assert adjacency_agreement(tmp_path / "run")["layers"][0]["auc_truth"] == pytest.approx(0.0)
    assert adjacency_agreement(tmp_path / "run", checkpoint="last")["layers"][0]["auc_truth"] == \
        pytest.approx(1.0)


def test_a_model_without_the_region_graph_has_no_layers(tmp_path):
    write_run(tmp_path / "run", use_region_graph=False)
    out = adjacency_agreement(tmp_path / "run")
    assert out["layers"] == [] and "no region graph D_G" in out["note"]
    assert out["truth_available"]  # the prior can still be compared with the truth


def test_real_data_has_no_truth(tmp_path):
    write_run(tmp_path / "run", learned=[np.eye(8), np.eye(8)],
               train_config={"data_root": "/data/DISFA"})
    out = adjacency_agreement(tmp_path / "run")
    assert not out["truth_available"] and "real data (/data/DISFA)" in out["note"]
    assert out["layers"][0]["spearman_truth"] is None and out["layers"][0]["auc_truth"] is None


def test_missing_and_broken_runs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        adjacency_agreement(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no best.pt or last.pt"):
        adjacency_agreement(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "last.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="broken/last.pt"):
        adjacency_agreement(tmp_path / "broken")

"""The learning curve: ``--curve-frames`` during training and ``--keep-epoch-checkpoints``
plus ``python -m mgrr_pyg.train.curve`` afterwards give the same points, and a run with a
curve trains bit for bit as one without (the evaluation runs under a forked RNG)."""
import csv
import json

import pytest

from mgrr_pyg.train import curve as curve_module
from mgrr_pyg.train.cli import main
from mgrr_pyg.train.logging import CSVLogger

COMMAND = ["--synthetic-preset", "tiny", "--preset", "tiny", "--epochs", "2",
           "--max-train-frames", "24", "--max-test-frames", "10", "--workers", "0",
           "--no-progress", "--no-tensorboard", "--threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny run twice: without a curve, and with one on 6 frames that also keeps
    every epoch's checkpoint."""
    root = tmp_path_factory.mktemp("curve")
    cache = root / "cache"
    plain, curved = root / "plain", root / "curved"
    main(COMMAND + ["--cache-dir", str(cache), "--output", str(plain)])
    main(COMMAND + ["--cache-dir", str(cache), "--output", str(curved), "--curve-frames", "6",
                    "--keep-epoch-checkpoints"])
    return plain, curved


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_curve_changes_no_training_step(runs):
    plain, curved = runs
    losses = ("loss_total", "loss_au", "loss_integrated", "loss_align")
    a = [[r[k] for k in losses] for r in _rows(plain / "log.csv")]
    b = [[r[k] for k in losses] for r in _rows(curved / "log.csv")]
    assert len(a) == len(b) > 0
    assert a == b
    ra = json.loads((plain / "results.json").read_text())["metrics"]
    rb = json.loads((curved / "results.json").read_text())["metrics"]
    assert ra == rb


def test_the_curve_is_recorded_per_epoch_on_the_asked_frames(runs):
    _, curved = runs
    epochs = _rows(curved / "epochs.csv")
    assert [int(r["epoch"]) for r in epochs] == [1, 2]
    assert all(0.0 <= float(r["curve_f1"]) <= 1.0 for r in epochs)
    curve = json.loads((curved / "curve.json").read_text())
    assert curve["frames"] == 6 and curve["source"] == "training"
    assert [p["epoch"] for p in curve["points"]] == [1, 2]
    assert 0.0 <= curve["best_baseline"]["f1"] <= 1.0
    # the last point is the last epoch's model on 6 of the 10 test frames: not the same
    # number of frames as the reported metrics, so only its range is checked against them
    assert (curved / "epochs" / "epoch-01.pt").exists() and (curved / "epochs" / "epoch-02.pt").exists()
    assert (curved / "epochs" / "epoch-02.pt.sha256").exists()


def test_the_curve_from_kept_checkpoints_equals_the_one_recorded(runs):
    _, curved = runs
    recorded = json.loads((curved / "curve.json").read_text())
    again = curve_module.curve_from_checkpoints(curved, frames=6, log=lambda *_: None)
    assert again["source"] == "checkpoints"
    assert again["frames"] == recorded["frames"]
    assert again["points"] == recorded["points"]
    assert again["best_baseline"] == recorded["best_baseline"]


def test_the_curve_of_the_whole_test_part_by_default(runs):
    _, curved = runs
    # the run asked for 6 curve frames: the default --frames is the run's own
    assert curve_module.curve_from_checkpoints(curved, log=lambda *_: None)["frames"] == 6


def test_the_curve_command_without_kept_checkpoints_says_what_to_do(runs, capsys):
    plain, _ = runs
    assert curve_module.main([str(plain)]) == 2
    err = capsys.readouterr().err
    assert "--keep-epoch-checkpoints" in err and str(plain) in err


def test_the_curve_command_writes_the_file_and_the_picture(runs, tmp_path):
    _, curved = runs
    png = tmp_path / "curve.png"
    assert curve_module.main([str(curved), "--frames", "6", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((curved / "curve.json").read_text())["source"] == "checkpoints"


def test_a_curve_made_again_evaluates_only_new_or_changed_checkpoints(runs, tmp_path):
    import shutil

    _, curved = runs
    run = tmp_path / "run"
    shutil.copytree(curved, run)
    first = curve_module.curve_from_checkpoints(run, frames=6, log=lambda *_: None)
    assert sorted(first["checkpoint_sha256"]) == ["1", "2"]
    curve_module.write_curve(run, first)
    said = []
    again = curve_module.curve_from_checkpoints(run, frames=6, log=said.append)
    assert again["points"] == first["points"]
    assert sum("kept from curve.json" in line for line in said) == 2
    # epoch 2's file now holds epoch 1's weights: only epoch 2 is evaluated, and it scores
    # as epoch 1 does
    shutil.copyfile(run / "epochs" / "epoch-01.pt", run / "epochs" / "epoch-02.pt")
    said = []
    changed = curve_module.curve_from_checkpoints(run, frames=6, log=said.append)
    assert sum("kept from curve.json" in line for line in said) == 1
    assert changed["points"][1] == {**first["points"][0], "epoch": 2}
    assert changed["points"][1] != first["points"][1]
    # other frames, or --again: every checkpoint is evaluated
    for options in ({"frames": 4}, {"frames": 6, "reuse": False}):
        said = []
        curve_module.curve_from_checkpoints(run, log=said.append, **options)
        assert not any("kept from" in line for line in said), options


def test_a_log_that_gains_columns_is_widened_not_refused(tmp_path):
    log = CSVLogger(tmp_path / "epochs.csv")
    log.log({"epoch": 1, "train_au": 0.5})
    log.log({"epoch": 2, "train_au": 0.4, "curve_f1": 0.3})  # a resume that turned a curve on
    rows = _rows(tmp_path / "epochs.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["curve_f1"] == "" and rows[1]["curve_f1"] == "0.3"
    assert rows[0]["train_au"] == "0.5"
    # a fresh logger on the widened file keeps the wider header
    CSVLogger(tmp_path / "epochs.csv").log({"epoch": 3, "curve_f1": 0.2})
    assert [r["curve_f1"] for r in _rows(tmp_path / "epochs.csv")] == ["", "0.3", "0.2"]


def test_curve_points_from_a_history_skip_epochs_without_one():
    history = [{"epoch": 1, "train_au": 0.5}, {"epoch": "2", "curve_f1": "0.25", "curve_auc": ""}]
    assert curve_module.curve_from_history(history) == [{"epoch": 2, "curve_f1": 0.25}]


def test_a_curve_leaves_a_model_with_dropout_training_as_without(tmp_path):
    """The package's models draw no random numbers in training (augmentation is seeded per
    frame), so the run above cannot see the RNG; the stand-in model has dropout and does."""
    import torch

    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.trainer import Trainer

    from .toys import ToyDataset, ToyModel, toy_loss

    def train(curve):
        torch.manual_seed(0)
        config = TrainConfig(epochs=3, batch_size=4, workers=0, progress=False,
                             tensorboard=False, device="cpu")
        trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=12), config,
                          curve_dataset=ToyDataset(n=6, train=False) if curve else None)
        history = trainer.fit()
        return [row["train_total"] for row in history], history

    without, _ = train(curve=False)
    with_curve, history = train(curve=True)
    assert with_curve == without
    assert all("curve_f1" in row for row in history)

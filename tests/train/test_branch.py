"""``--branch-from``: a run forked from another run's end-of-epoch checkpoint with another
learning-rate schedule trains exactly as a fresh run of that schedule when the two agree on
the epochs before the branch (the paper-schedule study forks its step-matched runs off the
epoch-literal ones this way), and a branch that would change anything else is refused."""
import csv
import json
import warnings

import pytest

from mgrr_pyg.train.checkpoint import CheckpointError
from mgrr_pyg.train.cli import main

BASE = ["--synthetic-preset", "tiny", "--preset", "tiny", "--max-train-frames", "24",
        "--max-test-frames", "8", "--workers", "0", "--no-progress", "--no-tensorboard",
        "--threads", "1", "--lr-step", "2"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("branch")
    cache = ["--cache-dir", str(root / "cache")]
    # the parent halves its lr every 2 epochs; it ran 2 epochs (lr 1e-3 in both)
    main(BASE + cache + ["--epochs", "2", "--lr-gamma", "0.5", "--keep-epoch-checkpoints",
                         "--output", str(root / "parent")])
    # a constant lr from the start, 4 epochs
    main(BASE + cache + ["--epochs", "4", "--lr-gamma", "1", "--output", str(root / "fresh")])
    # the same, forked off the parent after its epoch 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(BASE + cache + ["--epochs", "4", "--lr-gamma", "1", "--output", str(root / "branch"),
                             "--branch-from", str(root / "parent" / "epochs" / "epoch-02.pt"),
                             "--keep-epoch-checkpoints"])
    return root, cache, [str(w.message) for w in caught]


def test_a_branch_replays_its_schedule_without_torch_warning_of_a_skipped_lr(runs):
    *_, caught = runs
    assert not [m for m in caught if "lr_scheduler.step()" in m], caught


def test_a_branch_trains_as_the_fresh_run_of_its_schedule(runs):
    root, *_ = runs
    losses = ("epoch", "global_step", "loss_total", "loss_au", "loss_integrated", "loss_align", "lr")
    fresh = [[r[k] for k in losses] for r in _rows(root / "fresh" / "log.csv")]
    branch = [[r[k] for k in losses] for r in _rows(root / "branch" / "log.csv")]
    assert len(fresh) == len(branch) > 0
    assert branch == fresh  # epochs 1-2 copied from the parent, 3-4 trained after the fork
    assert [r["lr"] for r in _rows(root / "branch" / "epochs.csv")] == \
        [r["lr"] for r in _rows(root / "fresh" / "epochs.csv")]
    a = json.loads((root / "fresh" / "results.json").read_text())
    b = json.loads((root / "branch" / "results.json").read_text())
    assert a["metrics"] == b["metrics"]
    assert [h["lr"] for h in a["history"]] == [h["lr"] for h in b["history"]]
    assert b["info"]["resumed_from"].endswith("epoch-02.pt (branch)")


def test_the_parent_schedule_would_have_trained_otherwise(runs):
    """The check above can fail: the parent's own schedule goes on at half the lr."""
    root, cache, _ = runs
    main(BASE + cache + ["--epochs", "4", "--lr-gamma", "0.5", "--output", str(root / "halved")])
    halved = [r["loss_total"] for r in _rows(root / "halved" / "log.csv")]
    fresh = [r["loss_total"] for r in _rows(root / "fresh" / "log.csv")]
    n = len(fresh) // 2
    assert halved[:n] == fresh[:n] and halved[n:] != fresh[n:]


def test_a_branch_that_changes_more_than_the_schedule_is_refused(runs, tmp_path, capsys):
    root, cache, _ = runs
    with pytest.raises(SystemExit):
        main(BASE + cache + ["--epochs", "4", "--seed", "3", "--output", str(tmp_path / "b"),
                             "--branch-from", str(root / "parent" / "epochs" / "epoch-02.pt")])
    err = capsys.readouterr().err
    assert "cannot branch" in err and "seed" in err and "epoch-02.pt" in err
    assert "batch_size" not in err  # only what differs is named
    assert not (tmp_path / "b" / "last.pt").exists()


def test_a_mid_epoch_checkpoint_is_refused(runs, tmp_path):
    import torch

    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.trainer import Trainer

    from .toys import ToyDataset, ToyModel, toy_loss

    root, *_ = runs
    state = torch.load(root / "parent" / "last.pt", weights_only=True)
    state["step_in_epoch"] = 1
    torch.save(state, tmp_path / "mid.pt")
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=8),
                      TrainConfig(epochs=1, batch_size=4, workers=0, progress=False,
                                  tensorboard=False, device="cpu"))
    with pytest.raises(CheckpointError, match="end-of-epoch"):
        trainer.branch(tmp_path / "mid.pt")


def test_branch_and_init_from_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(BASE + ["--output", str(tmp_path / "b"), "--branch-from", "a.pt", "--init-from", "b.pt"])
    assert "expected at most one" in capsys.readouterr().err


def test_a_branchs_curve_takes_its_first_epochs_from_the_parent(runs):
    from mgrr_pyg.train import curve

    root, *_ = runs
    parent, branch = root / "parent" / "epochs", root / "branch" / "epochs"
    assert curve.epoch_checkpoints(root / "branch") == [(3, branch / "epoch-03.pt"),
                                                        (4, branch / "epoch-04.pt")]
    assert curve.epoch_checkpoints(root / "branch", str(parent / "epoch-02.pt")) == [
        (1, parent / "epoch-01.pt"), (2, parent / "epoch-02.pt"),
        (3, branch / "epoch-03.pt"), (4, branch / "epoch-04.pt")]
    # a branch at epoch 1 shares only epoch 1
    assert [e for e, _ in curve.epoch_checkpoints(root / "branch", str(parent / "epoch-01.pt"))] == [1, 3, 4]
    quiet = lambda *_: None  # noqa: E731
    points = curve.curve_from_checkpoints(root / "branch", frames=4, log=quiet)["points"]
    assert [p["epoch"] for p in points] == [1, 2, 3, 4]
    assert points[:2] == curve.curve_from_checkpoints(root / "parent", frames=4, log=quiet)["points"]

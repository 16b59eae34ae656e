"""The checkpoint of mgrr_pyg 0.1 (tests/data/legacy, see its README) through today's
command line: ``--resume`` continues its run (epoch, step, optimiser, schedule) and
``--init-from`` initialises a model with its weights. The training settings added since
(the schedule, the selection metric...) were not in its configuration; it ran their
defaults, so they do not stop a resume."""
import shutil
from pathlib import Path

import pytest
import torch

from mgrr_pyg.train.checkpoint import load_checkpoint
from mgrr_pyg.train.cli import main

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"
CHECKPOINT = LEGACY / "tiny-v0.1-last.pt"

# The command of the README that wrote it, minus the epochs (and --device: "auto" is part
# of its configuration); tiny synthetic data, CPU-sized.
COMMAND = ["--synthetic-preset", "tiny", "--preset", "tiny", "--max-train-frames", "16",
           "--max-test-frames", "8", "--workers", "0", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def legacy():
    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def run_folder(tmp_path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    shutil.copyfile(CHECKPOINT, out / "last.pt")
    return out


def test_the_legacy_checkpoint_predates_the_new_settings(legacy):
    written = legacy["train_config"]
    assert "lr_scheduler" not in written and "selection_metric" not in written
    assert (legacy["epoch"], legacy["step_in_epoch"], legacy["global_step"]) == (1, 0, 2)


def test_resume_refuses_another_configuration_naming_only_what_differs(tmp_path, capsys):
    out = run_folder(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(COMMAND + ["--epochs", "2", "--lr", "0.002", "--output", str(out),
                        "--cache-dir", str(tmp_path / "cache")], dataset="BP4D")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "lr: 0.001 != 0.002" in err
    # the settings it did not have are read as what it ran, not as differences
    assert "scheduler" not in err and "selection_metric" not in err and "<missing>" not in err
    assert not (tmp_path / "cache").exists()  # refused before any data was made


def test_resume_continues_the_legacy_run(legacy, cache, tmp_path, capsys):
    out = run_folder(tmp_path)
    result = main(COMMAND + ["--epochs", "2", "--output", str(out), "--cache-dir", str(cache)],
                  dataset="BP4D")
    printed = capsys.readouterr().out
    assert f"resuming from {out / 'last.pt'} at the start of epoch 2/2 (global step 2)" in printed
    assert result.info["resumed_from"] == str(out / "last.pt") and result.info["segments"] == 2
    assert result.reported_epoch == 2

    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["global_step"]) == (2, 4)  # 16 frames, batch 8: 2 steps an epoch
    # the first epoch is the legacy run's, restored from the file
    assert state["history"][0] == legacy["history"][0]
    # the optimiser continued from its saved moments: AdamW's step count went on from 2
    steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {4.0}  # a fresh optimiser would be at 2
    # the step schedule continued: lr 0.001 halved after epoch 2 (lr_step 2)
    assert state["scheduler"]["last_epoch"] == 2
    assert state["history"][1]["lr"] == pytest.approx(0.0005, rel=1e-12)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0005, rel=1e-12)


def test_init_from_the_legacy_checkpoint_takes_its_weights(legacy, cache, tmp_path):
    # One epoch at a learning rate far below float precision of the weights' changes: the
    # trained parameters are the initial ones, which must be the legacy file's.
    # (--init-adjacency checkpoint: every parameter, the adjacencies A included, from the
    # file; by default A starts from this run's training-fold prior)
    out = tmp_path / "init"
    result = main(COMMAND + ["--epochs", "1", "--lr", "1e-12", "--output", str(out),
                             "--cache-dir", str(cache), "--init-from", str(CHECKPOINT),
                             "--init-adjacency", "checkpoint"],
                  dataset="BP4D")
    assert result.info["resumed_from"] is None and result.info["transfer"]["copied"]
    trained = load_checkpoint(out / "last.pt")["model"]
    from mgrr_pyg.model import create_model

    torch.manual_seed(0)
    fresh = create_model("tiny")
    names = [name for name, _ in fresh.named_parameters()]
    assert names and set(names) <= set(trained)
    far_from_fresh = 0
    for name in names:
        torch.testing.assert_close(trained[name], legacy["model"][name], rtol=0, atol=1e-8)
        fresh_value = dict(fresh.named_parameters())[name].detach()
        far_from_fresh += int(not torch.allclose(fresh_value, legacy["model"][name], rtol=0, atol=1e-6))
    # a model that had kept its own initialisation would not have passed the loop above
    assert far_from_fresh > len(names) // 2

"""The command line end to end on the tiny synthetic preset: generate, prepare, train
one epoch on a few frames, evaluate, write the table, probabilities and checkpoint."""
import json

import numpy as np
import pytest
import torch

from mgrr_pyg.train.checkpoint import load_checkpoint
from mgrr_pyg.train.cli import main
from mgrr_pyg.train.metrics import evaluate_predictions, load_predictions


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_cli_smoke_run_writes_table_predictions_and_checkpoint(cache, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--synthetic-preset", "tiny", "--cache-dir", str(cache), "--preset", "tiny",
            "--epochs", "1", "--batch-size", "4", "--max-train-frames", "12", "--max-test-frames", "9",
            "--workers", "0", "--device", "cpu", "--no-progress", "--no-tensorboard",
            "--output", str(out)]
    result = main(argv, dataset="BP4D", prog="train_bp4d.py")
    printed = capsys.readouterr().out
    assert "fold 1: train on parts 2+3 (BP4D_combine_2_3), test on part 1" in printed
    assert "| MGRR-Net |" in printed and "| AU24 | Avg. |" in printed

    for name in ("results.md", "results.csv", "results.json", "predictions_test.npz",
                 "predictions_test.csv", "last.pt", "log.csv", "config.json"):
        assert (out / name).exists(), name
    pred = load_predictions(out / "predictions_test.npz")
    assert pred["probs"].shape == (9, 12) and len(pred["frame_ids"]) == 9
    assert all(fid.startswith("BP4D/") for fid in pred["frame_ids"])
    # each frame's subject, as the path BP4D/<subject>/<task>/<frame> names it
    assert pred["subjects"].tolist() == [fid.split("/")[1] for fid in pred["frame_ids"]]
    again = evaluate_predictions(pred["probs"], pred["labels"], tuple(pred["aus"]))
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"]["f1"] == pytest.approx([None if np.isnan(v) else v for v in again.f1])
    assert saved["reported_epoch"] == 1 and saved["selection"] == "last epoch"
    assert len((out / "predictions_test.csv").read_text().splitlines()) == 10

    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["metadata"]["aus"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
    assert ckpt["metadata"]["fold"] == 1 and ckpt["model_config"]["name"] == "tiny"
    from mgrr_pyg.train.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(out / "last.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][key]), key

    # the same command again resumes the finished run: no training, same numbers
    second = main(argv, dataset="BP4D", prog="train_bp4d.py")
    assert second.info["resumed_from"] is not None
    np.testing.assert_array_equal(second.metrics.f1, result.metrics.f1)


TINY = ["--synthetic-preset", "tiny", "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
        "--max-train-frames", "8", "--max-test-frames", "6", "--workers", "0", "--device", "cpu",
        "--no-progress", "--no-tensorboard"]


def test_fold_runner_writes_mean_tables_and_boxplot(cache, tmp_path):
    from mgrr_pyg.train.cli import folds_main

    out = tmp_path / "folds"
    result = folds_main(TINY + ["--cache-dir", str(cache), "--output", str(out), "--folds", "1", "3"])
    assert sorted(result.runs) == [1, 3]
    text = (out / "folds.md").read_text()
    assert "| Fold 1 |" in text and "| Fold 3 |" in text and "| Mean |" in text
    mean_f1 = np.nanmean([r.metrics.f1_mean for r in result.runs.values()])
    f1_block = text.split("**Accuracy")[0]
    mean_row = [line for line in f1_block.splitlines() if line.startswith("| Mean")][0]
    assert mean_row.rstrip(" |").split("|")[-1].strip() == f"{100 * mean_f1:.1f}"
    assert (out / "folds.csv").exists() and (out / "f1_boxplot.png").exists()
    assert (out / "fold3" / "last.pt").exists()

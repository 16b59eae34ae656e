"""Trainer behaviour on stand-ins: schedule, evaluation, validation choice, errors."""
import math

import numpy as np
import pytest
import torch

from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.metrics import evaluate_predictions
from mgrr_pyg.train.trainer import Trainer

from .toys import ToyDataset, ToyModel, toy_loss


def cfg(**changes):
    base = dict(epochs=2, batch_size=4, workers=0, progress=False, tensorboard=False, device="cpu")
    return TrainConfig(**{**base, **changes})


def test_paper_schedule_and_logs(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=12), cfg(epochs=5, output=str(tmp_path)))
    opt = trainer.optimizer
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD)
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4
    history = trainer.fit()
    # lr after epochs 1..5 with StepLR(2, 0.5) from 0.01
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025])
    rows = trainer.csv_log.read()
    assert len(rows) == 5 * 3 and {"epoch", "step", "loss_total", "loss_align", "lr", "img_per_s"} <= set(rows[0])
    assert (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()
    assert len(trainer.epoch_log.read()) == 5


def test_evaluate_is_evaluate_predictions_on_every_frame():
    torch.manual_seed(0)
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=8), cfg(epochs=1))
    test = ToyDataset(n=11, train=False)
    result = trainer.evaluate(test)
    assert result.probs.shape == (11, 3) and result.landmarks_pred.shape == (11, 49, 2)
    np.testing.assert_array_equal(result.labels, test.labels.numpy())
    expected = evaluate_predictions(result.probs, test.labels.numpy(), (1, 2, 4))
    np.testing.assert_array_equal(expected.f1, result.metrics.f1)
    assert 0 <= result.landmarks["failure_rate"] <= 1 and result.landmarks["frames"] == 11


def test_validation_split_chooses_best_epoch(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=12), cfg(epochs=3, output=str(tmp_path)),
                      val_dataset=ToyDataset(n=6, train=False))
    history = trainer.fit()
    scores = [h["val_f1"] for h in history]
    best = int(np.nanargmax(scores)) + 1
    assert trainer.best["epoch"] == best and (tmp_path / "best.pt").exists()
    assert trainer.load_best() == best


def test_bf16_autocast_on_cpu_trains():
    torch.manual_seed(0)
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=8), cfg(epochs=1, amp="bf16"))
    history = trainer.fit()
    assert math.isfinite(history[0]["train_total"])


def test_errors_for_people():
    with pytest.raises(ValueError, match="fp16"):
        Trainer(ToyModel(), toy_loss, ToyDataset(n=8), cfg(amp="fp16"))
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(ToyModel(), toy_loss, ToyDataset(n=3), cfg())

    def nan_loss(out, *args):
        return {"total": out.probs.sum() * float("nan")}

    with pytest.raises(FloatingPointError, match="non-finite loss at epoch 1, step 1"):
        Trainer(ToyModel(), nan_loss, ToyDataset(n=8), cfg()).fit()
    with pytest.raises(TypeError, match="'total'"):
        Trainer(ToyModel(), lambda out, *a: out.probs.sum(), ToyDataset(n=8), cfg()).fit()

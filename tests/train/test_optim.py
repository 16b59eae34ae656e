"""Optimisers, learning-rate schedules and selection metrics by name: what each entry
builds (against torch objects made by hand from the paper's section 4.2), the errors for
an unknown name, and that a new entry is usable by name with no other edit."""
import math
import warnings

import pytest
import torch

from mgrr_pyg.train import optim, selection
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.optim import (build_optimizer, build_scheduler, describe_optimizer,
                                  describe_scheduler, list_optimizers, list_schedulers,
                                  register_scheduler)
from mgrr_pyg.train.report import describe_schedule
from mgrr_pyg.train.selection import list_selection_metrics, register_selection_metric
from mgrr_pyg.train.trainer import Trainer

from .toys import ToyDataset, ToyModel, toy_loss


def cfg(**changes):
    base = dict(epochs=2, batch_size=4, workers=0, progress=False, tensorboard=False, device="cpu")
    return TrainConfig(**{**base, **changes})


def hyperparameters(optimizer):
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


def test_the_paper_optimiser_is_sgd_with_nesterov_momentum_and_weight_decay():
    params = [torch.nn.Parameter(torch.zeros(3))]
    built = build_optimizer(params, TrainConfig())
    # section 4.2: SGD, Nesterov momentum 0.9, weight decay 5e-4, lr 0.01
    by_hand = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert type(built) is torch.optim.SGD
    assert hyperparameters(built) == hyperparameters(by_hand)
    # momentum 0: plain SGD (torch refuses Nesterov without momentum)
    plain = build_optimizer(params, TrainConfig(momentum=0.0))
    assert plain.param_groups[0]["nesterov"] is False and plain.param_groups[0]["momentum"] == 0
    assert build_optimizer(params, TrainConfig(nesterov=False)).param_groups[0]["nesterov"] is False


def test_adamw_takes_lr_and_weight_decay_and_torch_defaults_otherwise():
    params = [torch.nn.Parameter(torch.zeros(3))]
    built = build_optimizer(params, TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-2))
    by_hand = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
    assert type(built) is torch.optim.AdamW
    assert hyperparameters(built) == hyperparameters(by_hand)


def test_step_schedule_multiplies_the_lr_by_gamma_every_lr_step_epochs():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = TrainConfig(lr=0.01, lr_step=3, lr_gamma=0.1)
    opt = build_optimizer(params, config)
    scheduler = build_scheduler(opt, config)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    # lr of epoch e (0-based) = 0.01 * 0.1 ** floor(e / 3)
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])


@pytest.mark.parametrize("field, value, message", [
    ("optimizer", "adam", "optimizer (--optimizer): expected one of sgd, adamw, found 'adam'"),
    ("lr_scheduler", "cosine", "lr_scheduler (--lr-scheduler): expected one of step, found 'cosine'"),
    ("selection_metric", "F1",
     "selection_metric (--selection-metric): expected one of f1, accuracy, auc, found 'F1'"),
])
def test_an_unknown_name_lists_the_choices(field, value, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{field: value})
    assert str(info.value) == message


def test_a_new_schedule_is_one_registered_entry(monkeypatch, tmp_path):
    monkeypatch.setattr(optim, "_SCHEDULERS", dict(optim._SCHEDULERS))  # undone after the test

    @register_scheduler("cosine", help="cosine annealing to 0 over --epochs",
                        describe=lambda config: f"cosine over {config['epochs']} epochs")
    def cosine(optimizer, config):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

    assert list_schedulers() == ["step", "cosine"]
    torch.manual_seed(0)
    config = cfg(epochs=4, lr_scheduler="cosine", lr=0.1, output=str(tmp_path))
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=8), config)
    history = trainer.fit()
    # the lr after epoch e of 4: 0.1 * (1 + cos(pi e / 4)) / 2
    expected = [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(1, 5)]
    assert [h["lr"] for h in history] == pytest.approx(expected, abs=1e-12)
    assert describe_scheduler(config.to_dict()) == "cosine over 4 epochs"
    # its state went into the checkpoint with the optimiser's
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["scheduler"]["T_max"] == 4 and state["scheduler"]["last_epoch"] == 4
    from mgrr_pyg.train.cli import build_parser

    assert "cosine: cosine annealing to 0 over --epochs" in " ".join(build_parser("BP4D").format_help().split())


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="'sgd' is already registered"):
        optim.register_optimizer("sgd", help="again")(lambda params, config: None)
    with pytest.raises(ValueError, match="'f1' is already registered"):
        register_selection_metric("f1", help="again")(lambda evaluation: 0.0)
    assert list_optimizers() == ["sgd", "adamw"]


def test_descriptions_of_stored_configs():
    paper = TrainConfig().to_dict()
    assert describe_optimizer(paper) == "SGD lr 0.01, Nesterov momentum 0.9, weight decay 0.0005"
    assert describe_scheduler(paper) == "lr x0.5 every 2 epochs"
    assert describe_optimizer(TrainConfig(optimizer="adamw", lr=1e-3).to_dict()) == \
        "AdamW lr 0.001, weight decay 0.0005"
    assert describe_scheduler(TrainConfig(lr_gamma=1.0).to_dict()) == "constant lr"
    # a config written before the schedule was a setting ran the step schedule
    old = {k: v for k, v in paper.items() if k not in ("lr_scheduler", "selection_metric")}
    assert describe_schedule(old) == describe_schedule(paper) == (
        "SGD lr 0.01, Nesterov momentum 0.9, weight decay 0.0005, lr x0.5 every 2 epochs, "
        "15 epochs, batch 8, lambda 0.5, seed 0")


def test_nan_never_beats_a_number_and_a_number_beats_nan():
    f1 = selection.selection_metric("f1")
    assert f1.better(0.1, None) and f1.better(0.3, 0.2) and not f1.better(0.2, 0.2)
    assert not f1.better(float("nan"), 0.2)
    assert f1.better(0.2, float("nan"))  # an epoch with no F1 defined is not kept over one with
    lower = selection.SelectionMetric("error", lambda e: 0.0, "an error", higher_is_better=False)
    assert lower.better(0.1, 0.2) and not lower.better(0.3, 0.2)


def test_validation_chooses_by_the_selection_metric(tmp_path):
    for name in list_selection_metrics():
        torch.manual_seed(0)
        out = tmp_path / name
        trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=12), cfg(epochs=4, output=str(out),
                                                                     selection_metric=name),
                          val_dataset=ToyDataset(n=8, train=False))
        history = trainer.fit()
        scores = [h[f"val_{name}"] for h in history]
        best = max(range(4), key=lambda e: (not math.isnan(scores[e]), scores[e], -e)) + 1
        assert trainer.best == {"epoch": best, f"val_{name}": scores[best - 1]}
        assert trainer.load_best() == best
        # every metric is in every history row, whichever one chooses
        assert all({"val_f1", "val_accuracy", "val_auc"} <= set(h) for h in history)


def test_a_new_selection_metric_is_one_registered_entry(monkeypatch, tmp_path):
    monkeypatch.setattr(selection, "_METRICS", dict(selection._METRICS))

    epochs = iter(range(1, 10))

    @register_selection_metric("later", help="the later epoch")
    def later(evaluation):
        return float(next(epochs))

    torch.manual_seed(0)
    trainer = Trainer(ToyModel(), toy_loss, ToyDataset(n=12),
                      cfg(epochs=3, output=str(tmp_path), selection_metric="later"),
                      val_dataset=ToyDataset(n=8, train=False))
    history = trainer.fit()
    assert [h["val_later"] for h in history] == [1.0, 2.0, 3.0]
    assert trainer.best == {"epoch": 3, "val_later": 3.0}


def test_the_old_tuple_of_optimiser_names_warns_and_works():
    from mgrr_pyg.train import config

    with pytest.warns(DeprecationWarning, match="list_optimizers"):
        names = config.OPTIMIZERS
    assert names == ("sgd", "adamw")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list_optimizers() == ["sgd", "adamw"]

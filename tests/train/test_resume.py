"""A run killed at any moment and resumed from last.pt ends with the same weights."""
import pytest
import torch

from mgrr_pyg.train.checkpoint import CheckpointError
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.trainer import Trainer

from .toys import ToyDataset, ToyModel, toy_loss


class Killed(Exception):
    pass


class KillAt:
    def __init__(self, epoch=None, step=None, after_epoch=None):
        self.epoch, self.step, self.after_epoch = epoch, step, after_epoch

    def on_step_end(self, trainer, epoch, step):
        if (epoch, step) == (self.epoch, self.step):
            raise Killed(f"killed at epoch {epoch} step {step}")

    def on_epoch_end(self, trainer, epoch):
        if epoch == self.after_epoch:
            raise Killed(f"killed after epoch {epoch}")


def make_trainer(out, callbacks=(), **changes):
    torch.manual_seed(0)  # the model initialisation
    settings = dict(epochs=3, batch_size=4, lr=0.05, workers=0, progress=False, tensorboard=False,
                    checkpoint_every=2, output=str(out), device="cpu")
    cfg = TrainConfig(**{**settings, **changes})
    return Trainer(ToyModel(), toy_loss, ToyDataset(n=18), cfg, aus=(1, 2, 4), callbacks=callbacks)


def final_weights(out, callbacks=(), **changes):
    trainer = make_trainer(out, callbacks, **changes)
    trainer.fit()
    return trainer


def assert_same_weights(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("kill", [
    KillAt(epoch=1, step=3),  # mid-epoch, one step after the mid-epoch checkpoint at step 2
    KillAt(epoch=0, step=1),  # before any checkpoint: starts again from scratch
    KillAt(after_epoch=2),  # right after an epoch-end checkpoint
], ids=["mid-epoch", "before-first-checkpoint", "after-epoch"])
def test_kill_and_resume_gives_identical_weights(tmp_path, kill):
    reference = final_weights(tmp_path / "reference")
    with pytest.raises(Killed):
        final_weights(tmp_path / "run", callbacks=[kill])
    resumed = final_weights(tmp_path / "run")  # automatic resume: same config, last.pt present
    if kill.after_epoch or kill.step == 3:
        assert resumed.resumed_from is not None
    assert resumed.epoch == 3 and resumed.global_step == reference.global_step
    assert_same_weights(reference, resumed)
    for ref_epoch, res_epoch in zip(reference.history, resumed.history):
        assert ref_epoch["train_total"] == pytest.approx(res_epoch["train_total"], rel=1e-6)
    # the step log reads as one uninterrupted run
    steps = [int(r["global_step"]) for r in resumed.csv_log.read()]
    assert steps == list(range(1, reference.global_step + 1))


def test_resume_flag_and_config_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer(tmp_path / "none", resume=True).fit()
    with pytest.raises(Killed):
        final_weights(tmp_path / "run", callbacks=[KillAt(after_epoch=1)])
    with pytest.raises(CheckpointError, match=r"lr: 0\.05 != 0\.02"):
        final_weights(tmp_path / "run", lr=0.02)
    # more epochs may continue a run; --overwrite starts afresh
    longer = make_trainer(tmp_path / "run", epochs=4)
    longer.fit()
    assert longer.resumed_from is not None and longer.epoch == 4
    fresh = make_trainer(tmp_path / "run", lr=0.02, overwrite=True)
    fresh.fit()
    assert fresh.resumed_from is None and fresh.epoch == 3


class TinyFaces(torch.utils.data.Dataset):
    """176x176 crops for the real tiny model; seeded per (epoch, index) augmentation."""

    def __init__(self, n=4, n_aus=12):
        g = torch.Generator().manual_seed(5)
        self.images = torch.rand(n, 3, 176, 176, generator=g) * 2 - 1
        self.labels = (torch.rand(n, n_aus, generator=g) < 0.4).float()
        base = torch.tensor([[60.0, 60.0]]) + torch.rand(49, 2, generator=g) * 60
        self.landmarks = base.expand(n, 49, 2).clone()
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.epoch * 1000 + i)
        noise = 0.1 * torch.randn(self.images[i].shape, generator=g)
        image = (self.images[i] + noise).clamp(-1, 1)  # the model's input range
        return {"image": image, "landmarks": self.landmarks[i], "labels": self.labels[i],
                "label_mask": torch.ones(12, dtype=torch.bool), "interocular": 40.0, "index": i}


def test_kill_and_resume_on_the_tiny_model(tmp_path):
    from mgrr_pyg.model import MGRRLoss, create_model

    def trainer(out, callbacks=()):
        torch.manual_seed(0)
        model = create_model("tiny")
        cfg = TrainConfig(epochs=2, batch_size=2, lr=0.01, workers=0, progress=False,
                          tensorboard=False, checkpoint_every=1, output=str(out), device="cpu")
        return Trainer(model, MGRRLoss(torch.ones(12)), TinyFaces(), cfg, callbacks=callbacks)

    reference = trainer(tmp_path / "ref")
    reference.fit()
    with pytest.raises(Killed):
        trainer(tmp_path / "run", [KillAt(epoch=1, step=2)]).fit()
    resumed = trainer(tmp_path / "run")
    resumed.fit()
    assert resumed.resumed_from is not None
    assert_same_weights(reference, resumed)

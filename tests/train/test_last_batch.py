"""Without drop_last the trainer never feeds a final batch of one (BatchNorm cannot train
on it); the epoch, the step count and a resume stay consistent."""
import pytest
import torch
from torch import nn
from torch.utils.data import Subset

from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.trainer import Trainer

from .test_resume import Killed, KillAt, assert_same_weights
from .toys import ToyDataset, ToyModel, toy_loss


class BatchNorm1dToy(ToyModel):
    """The toy with a BatchNorm1d on its pooled features, as MGRR-Net has (a batch of one
    fails there in train mode); it records the size of every training batch."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Sequential(nn.BatchNorm1d(self.config.width), self.drop)
        self.batches = []

    def forward(self, images):
        if self.training:
            self.batches.append(images.shape[0])
        return super().forward(images)


def make_trainer(out, n, callbacks=(), **changes):
    torch.manual_seed(0)
    settings = dict(epochs=2, batch_size=4, lr=0.05, workers=0, progress=False,
                    tensorboard=False, drop_last=False, output=str(out), device="cpu")
    frames = ToyDataset(n=max(n, 2))  # (the toy set needs two frames)
    if n < len(frames):
        frames = Subset(frames, range(n))
    return Trainer(BatchNorm1dToy(), toy_loss, frames,
                   TrainConfig(**{**settings, **changes}), aus=(1, 2, 4), callbacks=callbacks)


@pytest.mark.parametrize("n, batches", [
    (9, [4, 4]),  # 9 = 1 mod 4: the trailing frame is dropped
    (10, [4, 4, 2]),  # a trailing batch of two is kept
    (5, [4]),
])
def test_a_trailing_batch_of_one_is_dropped_and_only_it(tmp_path, n, batches):
    trainer = make_trainer(tmp_path, n)
    trainer.fit()
    assert trainer.model.batches == batches * 2
    assert trainer.global_step == 2 * len(batches)
    assert [record["epoch"] for record in trainer.history] == [1, 2]


def test_one_frame_per_process_is_not_silently_skipped(tmp_path):
    """An epoch of zero steps would look like training; the model's own error explains."""
    trainer = make_trainer(tmp_path, 1)
    with pytest.raises(ValueError):
        trainer.fit()
    assert trainer.model.batches == [1]


@pytest.mark.parametrize("kill", [
    KillAt(epoch=0, step=1),  # mid-epoch
    KillAt(epoch=1, step=2),  # after the last full batch, before the epoch-end checkpoint
], ids=["mid-epoch", "after-the-last-full-batch"])
def test_resume_with_a_dropped_last_frame_gives_identical_weights(tmp_path, kill):
    reference = make_trainer(tmp_path / "reference", 9, checkpoint_every=1)
    reference.fit()
    with pytest.raises(Killed):
        make_trainer(tmp_path / "run", 9, callbacks=[kill], checkpoint_every=1).fit()
    resumed = make_trainer(tmp_path / "run", 9, checkpoint_every=1)
    resumed.fit()
    assert resumed.resumed_from is not None
    assert resumed.global_step == reference.global_step == 4
    assert all(size == 4 for size in resumed.model.batches)
    assert_same_weights(reference, resumed)

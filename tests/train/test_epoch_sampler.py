"""EpochSampler counts the batches that are run: without drop_last a trailing batch of
exactly one frame is never run (BatchNorm cannot train on it), so it is not counted
either, and progress, logs and resume positions agree with the steps taken."""
import pytest
import torch
from torch.utils.data import DataLoader

from mgrr_pyg.train.distributed import EpochSampler

from .test_last_batch import make_trainer
from .test_resume import Killed, KillAt, assert_same_weights


# (frames, batch size, processes, drop_last) -> batches per process, counted by hand
@pytest.mark.parametrize("n, batch, world, drop_last, batches", [
    (9, 4, 1, False, 2),  # 4 + 4 (+ 1 not run)
    (10, 4, 1, False, 3),  # 4 + 4 + 2: a trailing batch of two is run
    (5, 4, 1, False, 1),  # 4 (+ 1 not run)
    (8, 4, 1, False, 2),
    (1, 4, 1, False, 1),  # a share of one frame in all is run (the model explains the error)
    (17, 4, 2, False, 2),  # 9 per process (padded): 4 + 4 (+ 1 not run)
    (9, 1, 1, False, 9),  # batches of one are all there is
    (9, 4, 1, True, 2),
    (23, 4, 2, True, 2),  # 16 of 23 frames fill whole batches on both processes
])
def test_batches_per_epoch_counts_the_batches_that_are_run(n, batch, world, drop_last, batches):
    samplers = [EpochSampler(n, batch, seed=3, rank=r, world_size=world, drop_last=drop_last)
                for r in range(world)]
    for sampler in samplers:
        assert sampler.batches_per_epoch == batches
        run = list(DataLoader(range(n), batch_size=batch, sampler=sampler))
        assert len(run) == batches
        assert len(sampler) == sum(len(b) for b in run)
        if batches > 1 and batch > 1:
            assert len(run[-1]) != 1  # never a batch of one after others


def test_a_resumed_epoch_skips_whole_batches_of_the_same_permutation():
    full = EpochSampler(9, 4, seed=3, drop_last=False)
    full.set_epoch(2)
    positions = list(full)
    assert len(positions) == 8 and len(set(positions)) == 8
    resumed = EpochSampler(9, 4, seed=3, drop_last=False)
    resumed.set_epoch(2, start_batch=1)
    assert list(resumed) == positions[4:] and len(resumed) == 4
    resumed.set_epoch(2, start_batch=full.batches_per_epoch)  # every step done: nothing left
    assert list(resumed) == [] and len(resumed) == 0


@pytest.mark.parametrize("n, steps", [(9, 2), (10, 3), (5, 1)])
def test_the_trainer_takes_the_counted_steps(tmp_path, n, steps):
    trainer = make_trainer(tmp_path, n)
    assert trainer.sampler.batches_per_epoch == steps
    trainer.fit()
    assert trainer.global_step == 2 * steps  # two epochs
    logged = [int(row["step"]) for row in trainer.csv_log.read()]
    assert max(logged) == steps


def test_a_checkpoint_of_the_old_count_resumes_to_the_same_weights(tmp_path, monkeypatch, capsys):
    """The code before this count (that of the legacy checkpoint, cddbc95, included)
    counted 3 steps for 9 frames in batches of 4 and ran 2, so it could write a mid-epoch
    checkpoint after an epoch's last step (at step 2 "of 3"). Such a checkpoint resumes
    at the end of that epoch, to the weights of an uninterrupted run."""
    reference = make_trainer(tmp_path / "reference", 9, checkpoint_every=1)
    reference.fit()

    def old_count(sampler):  # the old formula: the trailing batch of one counted
        per_rank = -(-sampler.num_samples // sampler.world_size)
        return -(-per_rank // sampler.batch_size)

    with monkeypatch.context() as patch:
        patch.setattr(EpochSampler, "batches_per_epoch", property(old_count))
        with pytest.raises(Killed):
            make_trainer(tmp_path / "run", 9, callbacks=[KillAt(epoch=1, step=2)],
                         checkpoint_every=1).fit()
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)  # written after the last step

    capsys.readouterr()
    resumed = make_trainer(tmp_path / "run", 9, checkpoint_every=1)
    resumed.fit()
    assert "step 2/2" in capsys.readouterr().out  # the resume message: all steps of 2 done
    assert resumed.global_step == reference.global_step == 4
    assert resumed.model.batches == []  # nothing left to run in epoch 2
    assert_same_weights(reference, resumed)

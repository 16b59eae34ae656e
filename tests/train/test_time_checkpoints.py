"""Time-based checkpoints (every ``checkpoint_minutes`` of training, the default), the
resume message, and a run time that covers every segment of an interrupted run. The
clock is a fake one that each training step moves on by a fixed amount: no sleeps."""
import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from mgrr_pyg.train.checkpoint import load_checkpoint
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.trainer import Trainer

from .toys import ToyDataset, ToyModel, toy_loss

STEP_SECONDS = 25.0  # each training step "takes" this long on the fake clock
# 18 frames, batch 4, drop_last: 4 steps per epoch; 3 epochs


class FakeClock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def timed_loss(clock):
    """The toy loss, moving the clock on by one step's time."""
    def loss(*args):
        clock.now += STEP_SECONDS
        return toy_loss(*args)
    return loss


class Killed(Exception):
    pass


class KillAt:
    def __init__(self, epoch, step):
        self.at = (epoch, step)

    def on_step_end(self, trainer, epoch, step):
        if (epoch, step) == self.at:
            raise Killed(f"killed at epoch {epoch} step {step}")


def make_trainer(out, clock, callbacks=(), messages=None, **changes):
    torch.manual_seed(0)
    settings = dict(epochs=3, batch_size=4, lr=0.05, workers=0, progress=False, tensorboard=False,
                    output=str(out), device="cpu", checkpoint_minutes=1)
    cfg = TrainConfig(**{**settings, **changes})
    trainer = Trainer(ToyModel(), timed_loss(clock), ToyDataset(n=18), cfg, aus=(1, 2, 4),
                      callbacks=callbacks, clock=clock,
                      log=(messages.append if messages is not None else lambda m: None))
    saves = []
    save = trainer.save

    def recording_save(path):
        saves.append((trainer.epoch, trainer.step_in_epoch))
        return save(path)

    trainer.save = recording_save
    return trainer, saves


def test_default_is_a_checkpoint_every_five_minutes():
    assert TrainConfig().checkpoint_minutes == 5 and TrainConfig().checkpoint_every == 0
    from mgrr_pyg.train.cli import build_parser, config_from_args

    args = build_parser("BP4D").parse_args([])
    assert config_from_args(args, "BP4D").checkpoint_minutes == 5
    args = build_parser("BP4D").parse_args(["--checkpoint-minutes", "0.5"])
    assert config_from_args(args, "BP4D").checkpoint_minutes == 0.5
    with pytest.raises(ValueError, match="checkpoint_minutes: expected a number of minutes >= 0"):
        TrainConfig(checkpoint_minutes=-1)


def test_a_checkpoint_once_the_minutes_have_passed(tmp_path):
    # 1 minute at 25 s a step: due after step 3 (75 s); the epoch-end checkpoint after
    # step 4 restarts the count, so again at step 3 of every epoch.
    trainer, saves = make_trainer(tmp_path / "run", FakeClock())
    trainer.fit()
    assert saves == [(0, 3), (1, 0), (1, 3), (2, 0), (2, 3), (3, 0)]


def test_zero_minutes_is_epoch_ends_only_and_steps_still_work(tmp_path):
    trainer, saves = make_trainer(tmp_path / "off", FakeClock(), checkpoint_minutes=0)
    trainer.fit()
    assert saves == [(1, 0), (2, 0), (3, 0)]
    trainer, saves = make_trainer(tmp_path / "steps", FakeClock(), checkpoint_minutes=0,
                                  checkpoint_every=2)
    trainer.fit()
    assert saves == [(0, 2), (1, 0), (1, 2), (2, 0), (2, 2), (3, 0)]


def test_the_data_work_before_fit_does_not_count_towards_the_first_checkpoint(tmp_path):
    clock = FakeClock()
    trainer, saves = make_trainer(tmp_path / "run", clock)
    clock.now += 3600  # an hour of data preparation between building the trainer and fit()
    trainer.fit()
    assert saves[0] == (0, 3)


def test_killed_after_a_timed_checkpoint_resumes_to_the_same_weights_and_says_where(tmp_path):
    reference, _ = make_trainer(tmp_path / "reference", FakeClock(), checkpoint_minutes=0)
    reference.fit()

    out = tmp_path / "run"
    first, saves = make_trainer(out, FakeClock(), callbacks=[KillAt(epoch=1, step=3)])
    with pytest.raises(Killed):
        first.fit()
    assert saves[-1] == (1, 3)  # the timed checkpoint inside epoch 2, then the kill
    stored = load_checkpoint(out / "last.pt")
    assert (stored["epoch"], stored["step_in_epoch"]) == (1, 3)
    assert stored["timing"] == {"seconds": 175.0, "segments": 1}  # 7 steps of 25 s

    messages = []
    clock = FakeClock(now=10_000.0)  # another process: its clock starts anywhere
    resumed, _ = make_trainer(out, clock, messages=messages)
    resumed.fit()
    assert messages == [f"resuming from {out / 'last.pt'} at epoch 2/3 at step 3/4 of that epoch "
                        "(global step 7); 2.9 min of run time so far in 1 earlier segment"]
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [r["train_total"] for r in resumed.history] == \
        pytest.approx([r["train_total"] for r in reference.history], rel=1e-6)
    steps = [int(r["global_step"]) for r in resumed.csv_log.read()]
    assert steps == list(range(1, 13))

    # run time: 7 steps before the kill + 5 after it = the uninterrupted run's 12 steps
    assert resumed.elapsed_seconds == pytest.approx(12 * STEP_SECONDS)
    assert resumed.segments == 2
    assert [r["seconds"] for r in resumed.history] == [100.0, 100.0, 100.0]  # epoch 2 across both
    final = load_checkpoint(out / "last.pt")
    assert final["timing"] == {"seconds": 300.0, "segments": 2}


def test_resume_message_at_an_epoch_end_and_of_a_finished_run(tmp_path):
    out = tmp_path / "run"
    trainer, _ = make_trainer(out, FakeClock(), checkpoint_minutes=0, epochs=2)
    trainer.fit()
    messages = []
    longer, _ = make_trainer(out, FakeClock(), messages=messages, epochs=3)
    longer.fit()
    assert messages == [f"resuming from {out / 'last.pt'} at the start of epoch 3/3 (global step 8); "
                        "3.3 min of run time so far in 1 earlier segment"]
    messages.clear()
    done, _ = make_trainer(out, FakeClock(), messages=messages, epochs=3)
    done.fit()
    assert messages == [f"resuming from {out / 'last.pt'} at the end: all 3 epochs are done, nothing "
                        "left to train (global step 12); 5.0 min of run time so far in 2 earlier segments"]


# -- several processes: rank 0's clock decides for all ----------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_rank(rank, world, port, out, record):
    """Rank 0's steps take 100 s, rank 1's no time at all: only rank 0 finds a
    checkpoint due, and both must take part in it (save() ends in a barrier)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from mgrr_pyg.train.distributed import init_distributed, shutdown

    ctx = init_distributed("cpu")
    clock = FakeClock()

    def loss(*args):
        clock.now += 100.0 if rank == 0 else 0.0
        return toy_loss(*args)

    torch.manual_seed(0)
    cfg = TrainConfig(epochs=2, batch_size=2, lr=0.05, workers=0, progress=False, tensorboard=False,
                      output=out, device="cpu", checkpoint_minutes=1)
    trainer = Trainer(ToyModel(dropout=0.0), loss, ToyDataset(n=16), cfg, aus=(1, 2, 4),
                      dist_ctx=ctx, clock=clock, log=lambda m: None)
    saves = []
    save = trainer.save
    trainer.save = lambda path: (saves.append([trainer.epoch, trainer.step_in_epoch]), save(path))[1]
    trainer.fit()
    with open(f"{record}.{rank}", "w") as handle:
        json.dump(saves, handle)
    shutdown(ctx)


def test_under_ddp_every_rank_checkpoints_when_rank_0_says_so(tmp_path):
    record = str(tmp_path / "saves")
    context = mp.spawn(run_rank, args=(2, _free_port(), str(tmp_path / "run"), record), nprocs=2,
                       join=False)
    deadline = time.monotonic() + 240
    while not context.join(timeout=5):
        if time.monotonic() > deadline:  # ranks disagreeing would wait for each other forever
            for process in context.processes:
                process.kill()
            pytest.fail("the two ranks did not finish: they disagreed about a checkpoint")
    per_rank = [json.loads(open(f"{record}.{r}").read()) for r in (0, 1)]
    # 4 steps per epoch per rank (16 frames, 2 per rank per step); 100 s a step on rank 0
    assert per_rank[0] == per_rank[1] == [[0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [1, 3], [2, 0]]


# -- the command: the reported time covers every segment ------------------------------------
TINY = ["--synthetic-preset", "tiny", "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
        "--max-train-frames", "8", "--max-test-frames", "6", "--workers", "0", "--device", "cpu",
        "--no-progress", "--no-tensorboard"]


def test_the_command_says_where_it_resumes_and_reports_every_segments_time(tmp_path, capsys):
    from mgrr_pyg.train.cli import main

    out = tmp_path / "run"
    argv = TINY + ["--cache-dir", str(tmp_path / "cache"), "--output", str(out)]
    main(argv, dataset="BP4D")
    # an earlier segment that took 1000 s: the time is the checkpoint's, not the clock's
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["timing"]["segments"] == 1 and 0 < state["timing"]["seconds"] < 1000
    state["timing"] = {"seconds": 1000.0, "segments": 1}
    torch.save(state, out / "last.pt")
    capsys.readouterr()

    started = time.perf_counter()
    result = main(argv + ["--epochs", "2"], dataset="BP4D")  # one more epoch
    wall = time.perf_counter() - started
    printed = capsys.readouterr().out
    assert (f"resuming from {out / 'last.pt'} at the start of epoch 2/2 (global step 2); 16.7 min "
            "of run time so far in 1 earlier segment") in printed
    saved = json.loads((out / "results.json").read_text())
    assert 1000 < saved["seconds"] <= 1000 + wall and result.seconds == saved["seconds"]
    assert saved["info"]["segments"] == 2 and 0 < saved["info"]["seconds_this_segment"] <= wall
    assert load_checkpoint(out / "last.pt")["timing"]["segments"] == 2

    fresh = main(argv + ["--overwrite"], dataset="BP4D")
    printed = capsys.readouterr().out
    assert f"--overwrite: deleted last.pt, log.csv, epochs.csv in {out}; starting afresh" in printed
    assert "resuming" not in printed and fresh.seconds < 1000 and fresh.info["segments"] == 1

"""DDP (gloo, 2 CPU processes) against one process that averages the same two
per-rank micro-batch gradients, and evaluation that counts every frame once."""
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import default_collate

from mgrr_pyg.train.distributed import DistContext, EpochSampler, gather_by_position, shard_positions

from . import ddp_worker
from .toys import ToyDataset, ToyModel, toy_loss


#: A DDP run of the toy model takes seconds to a minute or two on a loaded 2-core machine;
#: past this the workers are taken to hang, and are killed so the suite goes on.
DDP_DEADLINE_S = 600


def spawn_with_deadline(fn, args, nprocs, seconds=DDP_DEADLINE_S):
    """``mp.spawn`` that fails the test, killing the workers, if they run past ``seconds``."""
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + seconds
    while not context.join(timeout=5):  # raises if a worker failed
        if time.monotonic() > deadline:
            alive = [p.pid for p in context.processes if p.is_alive()]
            for process in context.processes:
                process.kill()
            pytest.fail(f"DDP workers {alive} still running after {seconds} s: a hang (killed)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference_training(epochs, n_train, batch_size, world=2, seed=0):
    """One process: every step runs each rank's micro-batch separately (BatchNorm sees the
    same batches as under DDP) and averages the gradients, which is what DDP computes."""
    torch.manual_seed(0)
    model = ToyModel(dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    data = ToyDataset(n=n_train, seed=seed)
    steps = 0
    for epoch in range(epochs):
        data.set_epoch(epoch)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        per_step = world * batch_size
        usable = perm[: n_train // per_step * per_step]
        shards = [usable[r::world] for r in range(world)]
        for s in range(len(usable) // per_step):
            grads = []
            for r in range(world):
                batch = default_collate([data[i] for i in shards[r][s * batch_size:(s + 1) * batch_size]])
                model.zero_grad()
                out = model(batch["image"])
                toy_loss(out, batch["labels"], batch["label_mask"], batch["landmarks"],
                         batch["interocular"])["total"].backward()
                grads.append([p.grad.clone() for p in model.parameters()])
            for p, *gs in zip(model.parameters(), *grads):
                p.grad = sum(gs) / world
            opt.step()
            steps += 1
        # StepLR(2, 0.5)
        if (epoch + 1) % 2 == 0:
            for group in opt.param_groups:
                group["lr"] *= 0.5
    return model, steps


def test_ddp_matches_single_process_gradient_averaging(tmp_path):
    epochs, n_train, n_eval, batch = 3, 15, 7, 3  # 2 steps per epoch; 7 eval frames: 4 + 3
    out = tmp_path / "rank0.pt"
    spawn_with_deadline(ddp_worker.run, (2, free_port(), str(out), epochs, n_train, n_eval, batch), 2)
    result = torch.load(out, weights_only=True)
    # Trainer.close() released the DistributedDataParallel wrapper before the group went
    # (a gloo group destroyed by its reducer can deadlock: distributed.shutdown)
    assert result["ddp_wrappers_after_close"] == 0
    reference, steps = reference_training(epochs, n_train, batch)
    assert result["steps"] == steps == epochs * 2
    for name, p in reference.named_parameters():
        torch.testing.assert_close(result["params"][name], p.detach(), rtol=1e-5, atol=1e-6)

    # every evaluation frame exactly once, in dataset order, as one process would compute it
    model = ToyModel(dropout=0.0)
    model.load_state_dict(result["state"])
    model.eval()
    eval_set = ToyDataset(n=n_eval, train=False)
    batch = default_collate([eval_set[i] for i in range(n_eval)])
    with torch.no_grad():
        expected = model(batch["image"]).probs
    assert result["probs"].shape == (n_eval, 3)
    torch.testing.assert_close(result["probs"], expected, rtol=1e-5, atol=1e-6)
    expected_labels = torch.where(batch["label_mask"], batch["labels"].long(), 9)
    assert torch.equal(result["labels"], expected_labels)


def test_sampler_shards_are_disjoint_and_equal_length():
    samplers = [EpochSampler(23, 4, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in samplers:
        s.set_epoch(3)
    a, b = (list(s) for s in samplers)
    assert len(a) == len(b) == 8 and not set(a) & set(b)
    assert set(a) | set(b) <= set(range(23))
    single = EpochSampler(23, 4, seed=5)
    single.set_epoch(3)
    assert sorted(a + b) == sorted(single.epoch_positions()[:16])  # one permutation, split
    other_epoch = EpochSampler(23, 4, seed=5, rank=0, world_size=2)
    other_epoch.set_epoch(4)
    assert list(other_epoch) != a
    resumed = EpochSampler(23, 4, seed=5, rank=0, world_size=2)
    resumed.set_epoch(3, start_batch=1)
    assert list(resumed) == a[4:]


def test_eval_shards_cover_each_frame_once_and_duplicates_are_caught():
    n = 7
    shards = [shard_positions(n, r, 2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(n)) and len(shards[0]) == 4
    ctx = DistContext()
    values = np.arange(n, dtype=np.float64)[::-1].copy()
    positions = np.array([3, 0, 6, 1, 5, 2, 4])
    out = gather_by_position(positions, {"v": values}, n, ctx)
    np.testing.assert_array_equal(out["v"][positions], values)
    with pytest.raises(RuntimeError, match="more than once \\[3\\], never \\[4\\]"):
        gather_by_position(np.array([3, 0, 6, 1, 5, 2, 3]), {"v": values}, n, ctx)

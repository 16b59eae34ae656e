"""Distributed data parallel helpers (``torchrun --nproc_per_node=N ...``).

- :func:`init_distributed` joins the process group described by torchrun's
  environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``); NCCL on CUDA, gloo on CPU. With no such variables it is a
  one-process context and nothing is initialised.
- :class:`EpochSampler` shuffles with a seeded permutation per epoch, identical on
  every rank, gives rank ``r`` the positions ``perm[r::world]`` and can start in the
  middle of an epoch (resume).
- :func:`gather_by_position` puts variable-length per-rank evaluation results back
  in dataset order and checks that every frame was evaluated exactly once, so a test
  set split ``rank::world`` is never padded with duplicates.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

# One device resolver for training, prediction and export (checks that cuda:N exists).
from mgrr_pyg.utils.devices import resolve_device


@dataclass
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group if the environment describes one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        initialized_here = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, initialized_here)


def context_from_process_group(device: torch.device) -> DistContext:
    """The context of an already initialised process group (or a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", dist.get_rank())), device, False)
    return DistContext(0, 1, 0, device, False)


def shutdown(ctx: DistContext) -> None:
    """Destroy the process group if this package created it.

    All ranks meet at a barrier first: a gloo rank that destroys its group while a peer
    is still writing (rank 0 saving results) can leave the peer waiting forever in its
    own destroy (seen once in the DDP test).

    Release every DistributedDataParallel wrapper first (:meth:`Trainer.close
    <mgrr_pyg.train.trainer.Trainer.close>`, or let the trainer go): a wrapper's gradient
    reducer holds the group, and a gloo group destroyed by the reducer's deallocation runs
    its destructor holding the GIL while it joins a worker thread that may need the GIL to
    free a finished collective: a deadlock (pytorch/pytorch#56297; seen in the DDP test at
    high load). Destroyed here instead, by ``destroy_process_group``, the group's
    destructor releases the GIL. Unreachable wrappers are collected here for that reason."""
    if ctx.initialized_here and dist.is_initialized():
        gc.collect()  # trainers and wrappers kept alive only by reference cycles
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_object(obj, ctx: DistContext, src: int = 0):
    """``obj`` from rank ``src`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s shuffling (same on every rank)."""
    return int(seed) * 100_003 + int(epoch)


class EpochSampler(Sampler[int]):
    """Seeded per-epoch shuffling, sharded over ranks, resumable mid-epoch.

    Epoch ``e`` uses ``perm = torch.randperm(n, generator=seed * 100003 + e)``. With
    ``drop_last`` the tail that does not fill a batch on every rank is dropped (every
    rank runs the same number of steps); rank ``r`` gets ``perm[r:total:world]`` and
    batch ``s`` of rank ``r`` is its positions ``s * batch_size ...``. Without
    ``drop_last`` the permutation is wrapped around to an equal share per rank, and a
    trailing batch of exactly one frame is left out of every rank's share: BatchNorm
    cannot train on a batch of one, so it is never run. (A share of one frame in all is
    kept: the model then says why it cannot train, rather than an epoch of no steps.)
    :attr:`batches_per_epoch` counts the batches that are run, so progress, logs and a
    resume (``set_epoch(e, start_batch)``, the steps done in that epoch) agree with it.

    Args:
        num_samples (int): Dataset length.
        batch_size (int): Per-rank batch size (to drop the ragged tail).
        seed (int): Shuffling seed. (default: ``0``)
        rank, world_size (int): This process's shard. (default: ``0, 1``)
        shuffle (bool): Permute each epoch. (default: ``True``)
        drop_last (bool): Drop the ragged tail. (default: ``True``)
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, drop_last: bool = True) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples: expected at least one sample, found {num_samples}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size={world_size}, found {rank}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        self.start_batch = 0

    @property
    def positions_per_epoch(self) -> int:
        """The frames this rank runs in an epoch (the same number on every rank)."""
        if self.drop_last:
            return self.num_samples // (self.world_size * self.batch_size) * self.batch_size
        per_rank = -(-self.num_samples // self.world_size)
        if per_rank > 1 and per_rank % self.batch_size == 1:
            per_rank -= 1  # the trailing batch of one, which BatchNorm cannot train on
        return per_rank

    @property
    def batches_per_epoch(self) -> int:
        """The batches (optimiser steps) this rank runs in an epoch, the last one
        possibly smaller than ``batch_size`` (never a batch of one after others)."""
        return -(-self.positions_per_epoch // self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select epoch ``epoch`` and skip its first ``start_batch`` batches."""
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def epoch_positions(self, epoch: Optional[int] = None) -> list[int]:
        """This rank's positions for the whole epoch (before skipping)."""
        epoch = self.epoch if epoch is None else epoch
        if self.shuffle:
            gen = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            perm = torch.randperm(self.num_samples, generator=gen).tolist()
        else:
            perm = list(range(self.num_samples))
        if self.drop_last:
            total = self.positions_per_epoch * self.world_size
            return perm[:total][self.rank:total:self.world_size]
        per_rank = -(-self.num_samples // self.world_size)
        total = per_rank * self.world_size
        perm = (perm * (-(-total // len(perm))))[:total]
        return perm[self.rank:total:self.world_size][:self.positions_per_epoch]

    def __iter__(self) -> Iterator[int]:
        positions = self.epoch_positions()
        return iter(positions[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return max(0, self.positions_per_epoch - self.start_batch * self.batch_size)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start_batch": self.start_batch, "seed": self.seed,
                "world_size": self.world_size}


def shard_positions(num_samples: int, rank: int, world_size: int) -> list[int]:
    """Evaluation shard: positions ``rank, rank + world, ...`` (no padding)."""
    return list(range(rank, num_samples, world_size))


def gather_by_position(positions: np.ndarray, arrays: dict, num_samples: int,
                       ctx: DistContext) -> dict:
    """Gather per-rank results and return them in dataset order, on every rank.

    Args:
        positions: ``[m]`` dataset positions this rank evaluated.
        arrays: name -> ``[m, ...]`` numpy array, row ``k`` belonging to ``positions[k]``.
        num_samples: The dataset length.

    Raises:
        RuntimeError: a position was evaluated twice or never (names the positions).
    """
    positions = np.asarray(positions, dtype=np.int64)
    if ctx.distributed:
        parts = [None] * ctx.world_size
        dist.all_gather_object(parts, (positions, arrays))
    else:
        parts = [(positions, arrays)]
    all_positions = np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, np.int64)
    counts = np.bincount(all_positions, minlength=num_samples) if all_positions.size else np.zeros(num_samples, np.int64)
    if counts.shape[0] != num_samples or np.any(counts != 1):
        twice = np.flatnonzero(counts > 1)[:10].tolist()
        never = np.flatnonzero(counts[:num_samples] == 0)[:10].tolist()
        raise RuntimeError(
            f"evaluation gathered {all_positions.size} results for {num_samples} frames: "
            f"positions evaluated more than once {twice}, never {never}"
        )
    filled = [(p, a) for p, a in parts if len(p)]  # a rank may have had no frame
    names = sorted({name for _, a in filled for name in a})
    out = {}
    for name in names:
        if any(name not in a for _, a in filled):
            raise RuntimeError(f"evaluation: ranks disagree on the result {name!r}")
        order = np.concatenate([p for p, _ in filled])
        stacked = np.concatenate([a[name] for _, a in filled], axis=0)
        result = np.empty_like(stacked)
        result[order] = stacked
        out[name] = result
    return out


__all__ = [
    "DistContext",
    "EpochSampler",
    "barrier",
    "broadcast_object",
    "context_from_process_group",
    "epoch_seed",
    "gather_by_position",
    "init_distributed",
    "resolve_device",
    "shard_positions",
    "shutdown",
]

"""Training throughput (images / s) of MGRR-Net: one optimiser step of the Trainer
(SGD, the joint loss of Eq. 11) on synthetic in-memory batches, so the number is the
model's and not the JPEG decoder's.

Cases: ``mgrr_bp4d`` at batch 8 and 32 on the CPU (fp32); on CUDA, when available,
the same with bf16 autocast + channels_last. ``MGRR_BENCH_SMALL=1`` (CI) runs the
``tiny`` preset at batch 2. Each case stores ``images_per_s`` and ``step_ms`` (median)
in ``benchmark.extra_info``; a case whose estimated memory exceeds what is available
is skipped with the estimate as the reason.

Full size: ``python -m pytest bench/bench_train.py``.
"""
from __future__ import annotations

import os

import pytest
import torch

from mgrr_pyg.model import MGRRLoss, create_model
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.trainer import Trainer

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESET = "tiny" if SMALL else "mgrr_bp4d"
BATCHES = (2,) if SMALL else (8, 32)
# Measured on the CPU for mgrr_bp4d: ~0.25 GB of weights, gradients and momentum plus
# ~0.15 GB of activations per image in a training step (tiny: a tenth of that).
BASE_BYTES, PER_IMAGE_BYTES = (0.05e9, 0.02e9) if SMALL else (0.25e9, 0.15e9)


class _Batches(torch.utils.data.Dataset):
    def __init__(self, n, n_aus=12):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 176, 176, generator=g) * 2 - 1
        self.labels = (torch.rand(n, n_aus, generator=g) < 0.3).float()
        self.landmarks = 40 + torch.rand(n, 49, 2, generator=g) * 96

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "labels": self.labels[i],
                "label_mask": torch.ones_like(self.labels[i], dtype=torch.bool),
                "landmarks": self.landmarks[i], "interocular": 60.0, "index": i}


def _trainer(batch, device, amp="none", channels_last=False):
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=batch, epochs=1, workers=0, progress=False, tensorboard=False,
                      device=device, amp=amp, channels_last=channels_last)
    return Trainer(create_model(PRESET), MGRRLoss(torch.ones(12)), _Batches(batch), cfg)


def _run(benchmark, trainer, batch, device):
    sample = next(iter(trainer.train_loader))

    def step():
        trainer.train_step(sample)
        if device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (allocator, kernels)
    benchmark.pedantic(step, rounds=3 if not SMALL else 1, iterations=1, warmup_rounds=0)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        median = stats.stats.median
        benchmark.extra_info["step_ms"] = 1000 * median
        benchmark.extra_info["images_per_s"] = batch / median
    benchmark.extra_info.update(preset=PRESET, batch=batch, device=device)


@pytest.mark.parametrize("batch", BATCHES)
def test_train_step_cpu(benchmark, require_memory, batch):
    require_memory(BASE_BYTES + PER_IMAGE_BYTES * batch, f"{PRESET} training at batch {batch}")
    _run(benchmark, _trainer(batch, "cpu"), batch, "cpu")


@pytest.mark.parametrize("batch", BATCHES)
def test_train_step_cuda_bf16_channels_last(benchmark, batch):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    _run(benchmark, _trainer(batch, "cuda", amp="bf16", channels_last=True), batch, "cuda")

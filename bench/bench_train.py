"""Training throughput (images / s): one optimiser step of the package's ``Trainer``
(forward, loss, backward, SGD Nesterov step), MGRR-Net and the JAA-Net-shaped reference
(``bench/jaanet_reference.py``) side by side.

Two ways of feeding the step:

* **model only**: one in-memory batch of random 176x176 images (the number is the
  network's, not the JPEG decoder's);
* **end to end**: the Trainer's own DataLoader (``EpochSampler``, the package's default
  worker count, random crop + flip in the workers) over a prepared synthetic BP4D set
  (``tiny`` preset of ``mgrr_pyg.data.synthetic``, a few frames per task), so the
  loader's share is in the step.

Both networks run through the same ``Trainer.train_step``: MGRR-Net with its joint loss
(Eq. 11), the reference with :func:`jaanet_loss` (JAA-Net's terms: per-AU detection,
each AU branch's own prediction, alignment; a few hundred FLOPs against its 17 GFLOP per
image). :func:`training_side_by_side` calls every case once per round, so a slow moment
of a shared machine falls on both networks, and gives images/s per case and the ratio
MGRR / JAA-Net of the step times (lower: MGRR-Net faster).

Cases (pytest-benchmark): ``test_train_step_cpu`` (MGRR-Net alone, model only, batch 8
and 32), ``test_train_side_by_side`` (everything above; ratios in ``extra_info``),
``test_train_step_cuda_bf16_channels_last`` (CUDA only). ``MGRR_BENCH_SMALL=1``: the
``tiny`` preset against a one-AU reference at batch 2, one round (CI: the path must not
rot). Intra-op threads: :data:`THREADS` (1, the package's policy on a 2-core machine:
``mgrr_pyg.utils.threads``); model-only steps are timed by the thread's CPU time
(with one thread the kernels run in the calling thread: the work done, much less
disturbed by other jobs than wall time), end-to-end steps by wall time (the loader
works in other processes).

Full size: ``python bench/bench_train.py`` (prints the README table; ``--rounds``,
``--batches``, ``--no-end-to-end``) or ``python -m pytest bench/bench_train.py``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from mgrr_pyg.model import MGRRLoss, create_model
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.trainer import Trainer

from jaanet_reference import JAANetReference

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESET = "tiny" if SMALL else "mgrr_bp4d"
BATCHES = (2,) if SMALL else (8, 32)
ROUNDS = 1 if SMALL else 2
THREADS = 1
JAANET_SMALL_AUS = (1,)  # small mode: one AU branch, so CI stays quick
FRAMES_PER_TASK = 4 if SMALL else 16  # synthetic set: 6 subjects x 2 tasks x this
NETWORKS = ("mgrr", "jaanet")
# Measured on the CPU for mgrr_bp4d: ~0.25 GB of weights, gradients and momentum plus
# ~0.15 GB of activations per image in a training step (tiny: a tenth of that); the
# reference (peak RSS of a step at batch 8, 2.1 GB in all): ~0.2 GB per image.
BASE_BYTES, PER_IMAGE_BYTES = (0.05e9, 0.02e9) if SMALL else (0.25e9, 0.15e9)
JAANET_BASE_BYTES, JAANET_PER_IMAGE_BYTES = (0.1e9, 0.02e9) if SMALL else (0.4e9, 0.2e9)


class SyntheticBatches(torch.utils.data.Dataset):
    """``n`` random 176x176 images with labels and landmarks, the Trainer's sample format."""

    def __init__(self, n: int, n_aus: int = 12, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 176, 176, generator=generator) * 2 - 1
        self.labels = (torch.rand(n, n_aus, generator=generator) < 0.3).float()
        self.landmarks = 40 + torch.rand(n, 49, 2, generator=generator) * 96

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "labels": self.labels[i],
                "label_mask": torch.ones_like(self.labels[i], dtype=torch.bool),
                "landmarks": self.landmarks[i], "interocular": 60.0, "index": i}


def jaanet_loss(out, labels, label_mask, landmarks, interocular) -> dict:
    """JAA-Net's training terms on a :class:`~jaanet_reference.JAANetOutput`, in the
    Trainer's loss interface: binary cross-entropy of the AU probabilities and of each AU
    branch's own two-way softmax (coded entries only), plus half the alignment error
    :math:`\\frac{1}{2 d_o^2}\\sum_j \\lVert s_j - \\hat s_j \\rVert^2` (as MGRR-Net's
    ``L_align``). For timing: its cost is negligible beside the network's."""
    mask = label_mask.float()
    coded = mask.sum().clamp_min(1)
    detection = (F.binary_cross_entropy(out.probs.clamp(1e-6, 1 - 1e-6), labels,
                                        reduction="none") * mask).sum() / coded
    local = (F.cross_entropy(out.local_logits.flatten(0, 1), labels.long().flatten(),
                             reduction="none") * mask.flatten()).sum() / coded
    interocular = torch.as_tensor(interocular, dtype=out.landmarks.dtype,
                                  device=out.landmarks.device).reshape(-1)
    align = ((out.landmarks - landmarks) ** 2).sum((1, 2)) / (2 * interocular ** 2)
    total = detection + local + 0.5 * align.mean()
    return {"total": total, "au": detection, "local": local, "align": align.mean()}


def build_network(name: str, small: bool = SMALL, seed: int = 0) -> torch.nn.Module:
    """``"mgrr"`` (:data:`PRESET`) or ``"jaanet"`` (one AU in small mode), seeded."""
    torch.manual_seed(seed)
    if name == "mgrr":
        return create_model("tiny" if small else "mgrr_bp4d")
    if name == "jaanet":
        return JAANetReference(JAANET_SMALL_AUS) if small else JAANetReference()
    raise ValueError(f"network: expected one of {NETWORKS}, found {name!r}")


def make_trainer(preset_or_network, batch: int, device: str = "cpu", amp: str = "none",
                 channels_last: bool = False, dataset=None, workers: int | None = 0,
                 small: bool = SMALL) -> Trainer:
    """The package's Trainer (SGD Nesterov) for ``"mgrr"`` / ``"jaanet"`` or an MGRR preset
    name, on ``dataset`` (default: ``batch`` in-memory :class:`SyntheticBatches`).
    ``workers=None``: the package's default loader workers."""
    if preset_or_network in NETWORKS:
        model = build_network(preset_or_network, small)
    else:
        torch.manual_seed(0)
        model = create_model(preset_or_network)
    jaanet = isinstance(model, JAANetReference)
    n_aus = len(model.aus) if jaanet else model.config.num_aus
    if dataset is None:
        dataset = SyntheticBatches(batch, n_aus)
    config = TrainConfig(batch_size=batch, epochs=1, workers=workers, progress=False,
                         tensorboard=False, device=device, amp=amp, channels_last=channels_last)
    loss = jaanet_loss if jaanet else MGRRLoss(torch.ones(n_aus))
    return Trainer(model, loss, dataset, config)


class _LabelColumns(torch.utils.data.Dataset):
    """A prepared set's samples with the label columns of ``columns`` only (the one-AU
    reference of small mode)."""

    def __init__(self, dataset, columns):
        self.dataset, self.columns = dataset, list(columns)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        sample = dict(self.dataset[i])
        sample["labels"] = sample["labels"][self.columns]
        sample["label_mask"] = sample["label_mask"][self.columns]
        return sample


def prepared_training_set(root: Path, frames_per_task: int = FRAMES_PER_TASK):
    """A synthetic raw BP4D tree (``tiny`` preset) under ``root``, prepared; the training
    part of fold 1 (``BP4D_combine_1_2``, random crop + flip) as a dataset."""
    from mgrr_pyg.data import PreparedListDataset, prepare_dataset
    from mgrr_pyg.data.synthetic import generate

    raw, prepared = root / "raw", root / "prepared"
    generate(raw, dataset="BP4D", preset="tiny", seed=0, workers=2,
             frames_per_task=frames_per_task, progress=False)
    prepare_dataset(raw, prepared, workers=2, progress=False)
    return PreparedListDataset(prepared, "BP4D_combine_1_2", train=True, seed=0)


def _release_free_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _Case:
    """One (mode, network, batch): a Trainer and the call that runs one timed step."""

    def __init__(self, mode: str, network: str, batch: int, dataset=None, small: bool = SMALL):
        self.key = (mode, network, batch)
        self.cpu, self.wall = [], []
        if mode == "model_only":
            self.trainer = make_trainer(network, batch, small=small)
            sample = next(iter(self.trainer.train_loader))
            self._next = lambda: sample
        else:
            if network == "jaanet" and small:
                dataset = _LabelColumns(dataset, [0])
            self.trainer = make_trainer(network, batch, dataset=dataset, workers=None,
                                        small=small)
            self._iterator = None
            self._next = self._next_loaded
            self._start_epoch()  # fork the loader workers now, while the process is small

    def _start_epoch(self):
        # A new iterator forks its workers: hand freed memory back to the system first,
        # or each worker keeps a copy-on-write image of this process's large heap (with a
        # training step's activations in it, that filled the shared machine's memory).
        _release_free_memory()
        self.trainer.sampler.set_epoch(len(self.wall))
        self._iterator = iter(self.trainer.train_loader)

    def _next_loaded(self):
        # The loader's epochs, one after another (the set is sized so that the timed steps
        # of a run need no second epoch at batch 32).
        while True:
            if self._iterator is None:
                self._start_epoch()
            try:
                return next(self._iterator)
            except StopIteration:
                self._iterator = None

    def step(self, timed: bool = True) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        batch = self._next()
        self.trainer.train_step(batch)
        if timed:
            self.cpu.append(time.thread_time() - cpu)
            self.wall.append(time.perf_counter() - wall)


def training_side_by_side(batches=BATCHES, rounds: int = ROUNDS, end_to_end: bool = True,
                          small: bool = SMALL, data_root: str | os.PathLike | None = None,
                          threads: int = THREADS) -> dict:
    """Every (mode, network, batch) case stepped once per round after one warm-up step.

    Returns ``rows``: per case ``images_per_s`` (model only: from the median thread CPU
    time; end to end: from the median wall time), ``step_s`` (the same median),
    ``cpu_step_s`` / ``wall_step_s`` (both medians); ``ratios``: per (mode, batch) MGRR /
    JAA-Net of that step time; ``load_before`` / ``load_after``; the settings."""
    modes = ("model_only", "end_to_end") if end_to_end else ("model_only",)
    load_before = os.getloadavg()[0]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    temporary = None
    try:
        dataset = None
        if end_to_end:
            if data_root is None:
                temporary = tempfile.TemporaryDirectory(prefix="bench_train_")
                data_root = temporary.name
            dataset = prepared_training_set(Path(data_root))
        rows = {}
        for batch in batches:
            # One batch size at a time: its four cases are the ones compared with each
            # other, and holding every case's weights, momentum and loader at once (plus
            # the reference's ~6 GB step at batch 32) ran a shared 23 GB machine out of memory.
            # (end-to-end cases first: their loader workers fork from a smaller process)
            cases = [_Case(mode, network, batch, dataset, small)
                     for mode in reversed(modes) for network in NETWORKS]
            for case in cases:
                case.step(timed=False)  # warm-up: allocator, graph caches, loader workers
            for _ in range(rounds):
                for case in cases:
                    case.step()
            for case in cases:
                mode, network, _ = case.key
                cpu, wall = statistics.median(case.cpu), statistics.median(case.wall)
                step = cpu if mode == "model_only" else wall
                rows[case.key] = {"images_per_s": batch / step, "step_s": step,
                                  "cpu_step_s": cpu, "wall_step_s": wall}
            del cases, case
            _release_free_memory()
    finally:
        torch.set_num_threads(previous)
        if temporary is not None:
            temporary.cleanup()
    ratios = {(mode, batch): rows[(mode, "mgrr", batch)]["step_s"]
              / rows[(mode, "jaanet", batch)]["step_s"]
              for mode in modes for batch in batches}
    return {"rows": rows, "ratios": ratios, "rounds": rounds, "threads": threads,
            "batches": tuple(batches), "modes": modes, "small": small,
            "train_frames": len(dataset) if dataset is not None else None,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def side_by_side_report(result: dict) -> str:
    """bench/README.md's training table from :func:`training_side_by_side`."""
    lines = [f"{result['rounds']} rounds after one warm-up step, {result['threads']} intra-op "
             f"thread(s), load average {result['load_before']:.1f} before, "
             f"{result['load_after']:.1f} after"
             + (f"; end to end over {result['train_frames']} prepared training frames"
                if result["train_frames"] else "") + ":", "",
             "| mode | batch | MGRR images/s | JAA-Net images/s | MGRR step s | JAA-Net step s "
             "| MGRR / JAA-Net (time) | timed by |", "|---|---|---|---|---|---|---|---|"]
    for mode in result["modes"]:
        for batch in result["batches"]:
            m, j = result["rows"][(mode, "mgrr", batch)], result["rows"][(mode, "jaanet", batch)]
            clock = "thread CPU" if mode == "model_only" else "wall"
            lines.append(f"| {mode.replace('_', ' ')} | {batch} | {m['images_per_s']:.2f} | "
                         f"{j['images_per_s']:.2f} | {m['step_s']:.2f} | {j['step_s']:.2f} | "
                         f"{result['ratios'][(mode, batch)]:.2f} | {clock} |")
    return "\n".join(lines)


def _record(benchmark, result: dict) -> None:
    for (mode, network, batch), row in result["rows"].items():
        for key, value in row.items():
            benchmark.extra_info[f"{mode}/{network}/b{batch}/{key}"] = value
    for (mode, batch), ratio in result["ratios"].items():
        benchmark.extra_info[f"{mode}/b{batch}/mgrr_over_jaanet"] = ratio
    for key in ("rounds", "threads", "load_before", "load_after", "train_frames"):
        benchmark.extra_info[key] = result[key]


def _estimate_bytes(batches) -> float:
    # one batch size's four cases hold their weights and optimiser state together; one
    # step's activations at a time
    weights = 2 * (BASE_BYTES + JAANET_BASE_BYTES)
    return weights + max(batches) * max(PER_IMAGE_BYTES, JAANET_PER_IMAGE_BYTES)


def test_train_side_by_side(benchmark, require_memory):
    require_memory(_estimate_bytes(BATCHES), "MGRR-Net and JAA-Net training side by side")
    result = benchmark.pedantic(training_side_by_side, rounds=1, iterations=1)
    _record(benchmark, result)
    print("\n" + side_by_side_report(result))
    for row in result["rows"].values():
        assert row["images_per_s"] > 0
    if not SMALL:  # the reference does ~3x MGRR-Net's FLOPs: a sign of a broken setup
        assert all(ratio < 1 for ratio in result["ratios"].values())


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
    _run(benchmark, make_trainer(PRESET, batch), batch, "cpu")


@pytest.mark.parametrize("batch", BATCHES)
def test_train_step_cuda_bf16_channels_last(benchmark, batch):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    _run(benchmark, make_trainer(PRESET, batch, "cuda", amp="bf16", channels_last=True),
         batch, "cuda")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="MGRR-Net and JAA-Net training side by side")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = training_side_by_side(tuple(args.batches), args.rounds, not args.no_end_to_end,
                                   threads=args.threads)
    print(side_by_side_report(result))
    print(f"\n({time.perf_counter() - started:.0f} s; torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()})")


if __name__ == "__main__":
    main()

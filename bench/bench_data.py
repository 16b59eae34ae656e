"""Data-pipeline benchmarks: preparation and loader throughput.

* ``test_prepare_throughput``: :func:`mgrr_pyg.data.prepare_dataset` on a synthetic raw
  BP4D tree (256x256 JPEG frames from :mod:`mgrr_pyg.data.synthetic`), frames/s for
  reading, aligning, encoding and writing, with 1 and 2 worker processes.
* ``test_loader_throughput``: training samples (random 176 crop + flip, [-1, 1]) into
  batches of 32 through ``torch.utils.data.DataLoader`` with 0 and 2 workers, frames/s.
* ``test_sample_latency``: one ``PreparedListDataset.__getitem__`` in this process.

Each case records ``frames_per_s`` (or ``ms_per_sample``) in ``benchmark.extra_info``
and prints it. The model takes ~100-200 ms per image forward + backward on this kind of
CPU (bench_model.py), so the loader must sustain well above ~30 frames/s (3x the
fastest model rate) not to starve it.

Full size: ``python -m pytest bench/bench_data.py -s``; small sizes for CI:
``MGRR_BENCH_SMALL=1 python -m pytest bench/ --benchmark-disable``.
"""
from __future__ import annotations

import os
import time

import pytest
from torch.utils.data import DataLoader

import mgrr_pyg.graphs  # noqa: F401  (imported once here, not inside the first timed run)
from mgrr_pyg.data import PreparedListDataset, prepare_dataset
from mgrr_pyg.data.synthetic import generate

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
FRAMES_PER_TASK = 4 if SMALL else 50  # x 6 subjects x 2 tasks (the "tiny" preset's sequences)
LOADER_EPOCHS = 1 if SMALL else 3
BATCH_SIZE = 8 if SMALL else 32


@pytest.fixture(scope="module")
def raw_bp4d(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_data") / "raw"
    generate(root, dataset="BP4D", preset="tiny", seed=0, workers=2,
             frames_per_task=FRAMES_PER_TASK, progress=False)
    return root


@pytest.fixture(scope="module")
def prepared_bp4d(raw_bp4d):
    out = raw_bp4d.parent / "prepared"
    prepare_dataset(raw_bp4d, out, workers=2, progress=False)
    return out


def report(benchmark, name: str, **values) -> None:
    benchmark.extra_info.update(values)
    print(f"\n[bench_data] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_throughput(benchmark, raw_bp4d, workers):
    runs = []

    def fresh_output():
        out = raw_bp4d.parent / f"out_w{workers}_{len(runs)}"
        return (out,), {}

    def run(out):
        start = time.perf_counter()
        manifest = prepare_dataset(raw_bp4d, out, workers=workers, progress=False)
        runs.append((manifest["frames"], time.perf_counter() - start))

    benchmark.pedantic(run, setup=fresh_output, rounds=1 if SMALL else 2, iterations=1)
    frames = runs[-1][0]
    best = min(seconds for _, seconds in runs)
    report(benchmark, f"prepare workers={workers}", frames=frames,
           frames_per_s=round(frames / best, 1))


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_throughput(benchmark, prepared_bp4d, workers):
    ds = PreparedListDataset(prepared_bp4d, "BP4D_combine_1_2", train=True, seed=0)
    rates = []

    def run():
        start, frames = time.perf_counter(), 0
        for epoch in range(LOADER_EPOCHS):
            ds.set_epoch(epoch)
            loader = DataLoader(ds, batch_size=BATCH_SIZE, shuffle=True, num_workers=workers)
            for batch in loader:
                frames += batch["image"].shape[0]
        rates.append(frames / (time.perf_counter() - start))

    benchmark.pedantic(run, rounds=1 if SMALL else 3, iterations=1)
    report(benchmark, f"loader workers={workers}", frames=len(ds) * LOADER_EPOCHS,
           frames_per_s=round(max(rates), 1))


def test_sample_latency(benchmark, prepared_bp4d):
    ds = PreparedListDataset(prepared_bp4d, "BP4D_combine_1_2", train=True, seed=0)
    counter = iter(range(10**9))

    def one_sample():
        return ds[next(counter) % len(ds)]

    sample = benchmark(one_sample)
    assert sample["image"].shape == (3, 176, 176)
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    report(benchmark, "sample latency", ms_per_sample=round(1000 * (time.perf_counter() - start) / len(ds), 2))

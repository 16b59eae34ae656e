"""Synthetic face generator benchmarks (``mgrr_pyg.data.synthetic``).

* ``test_generate_throughput``: :func:`~mgrr_pyg.data.synthetic.generate` of BP4D
  frames at the default frame size (256x256 JPEG) with 1 and 2 worker processes,
  frames/s of wall-clock time for the whole run (rendering, encoding, synced atomic
  writes, labels, landmarks, markers). The target is >= 200 frames/s on 2 cores.
* ``test_render_frame``: one frame drawn, captured and encoded in this process (BP4D:
  JPEG; DISFA: JPEG round trip + PNG), ms per frame.
* ``test_label_sampling``: labels without rendering (used by the calibration), frames/s.

Each case records its rate in ``benchmark.extra_info`` and prints it. The machine is
shared: compare numbers from one run only.

Full size: ``python -m pytest bench/bench_synthetic.py -s``; small sizes for CI:
``MGRR_BENCH_SMALL=1 python -m pytest bench/ --benchmark-disable``.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from mgrr_pyg.data.synthetic import SynthConfig, generate
from mgrr_pyg.data.synthetic.expressions import label_sample
from mgrr_pyg.data.synthetic.identity import make_identity
from mgrr_pyg.data.synthetic.render import FaceRenderer, SequenceCapture, encode_frame, frame_rng

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
# A slice of the default preset (24 frames per task, 256x256): 12 subjects x 2 tasks.
SUBJECTS = 3 if SMALL else 12
TASKS = ["T1"] if SMALL else ["T1", "T2"]
FRAMES_PER_TASK = 4 if SMALL else SynthConfig.from_preset("default", "BP4D").frames_per_task


def report(benchmark, name: str, **values) -> None:
    benchmark.extra_info.update(values)
    print(f"\n[bench_synthetic] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


@pytest.mark.parametrize("workers", [1, 2])
def test_generate_throughput(benchmark, tmp_path, workers):
    subjects = list(SynthConfig(dataset="BP4D").subjects[:SUBJECTS])
    runs = []

    def fresh_output():
        return (tmp_path / f"run{len(runs)}",), {}

    def run(out):
        start = time.perf_counter()
        summary = generate(out, dataset="BP4D", preset="default", seed=len(runs), workers=workers,
                           subjects=subjects, tasks=TASKS, frames_per_task=FRAMES_PER_TASK, progress=False)
        runs.append((summary["generated_frames"], time.perf_counter() - start))

    benchmark.pedantic(run, setup=fresh_output, rounds=1 if SMALL else 2, iterations=1)
    frames = runs[-1][0]
    assert frames == SUBJECTS * len(TASKS) * FRAMES_PER_TASK
    best = min(seconds for _, seconds in runs)
    report(benchmark, f"generate BP4D 256x256 workers={workers}", frames=frames,
           frames_per_s=round(frames / best, 1))


@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
def test_render_frame(benchmark, dataset):
    subject = SynthConfig(dataset=dataset).subjects[0]
    renderer = FaceRenderer(make_identity(0, dataset, subject), 256)
    camera = SequenceCapture(np.random.default_rng(0), 256)
    fmt = "png" if dataset == "DISFA" else "jpg"
    intensities = np.random.default_rng(1).uniform(0, 3, size=(16, 15))
    counter = iter(range(10**9))

    def one_frame():
        k = next(counter)
        capture = camera.at(10.0 * k, frame_rng(0, dataset, subject, "T1", k), (72, 95))
        image, _ = renderer.render(intensities[k % 16], capture, camera.noise_bank)
        return encode_frame(image, fmt, capture.jpeg_quality)

    data = benchmark(one_frame)
    assert len(data) > 1000
    n = 8 if SMALL else 100
    cpu = time.process_time()
    for _ in range(n):
        one_frame()
    report(benchmark, f"render+encode {dataset} ({fmt})",
           cpu_ms_per_frame=round(1000 * (time.process_time() - cpu) / n, 2))


def test_label_sampling(benchmark):
    tasks = ("T1",) if SMALL else ("T1", "T2", "T3", "T4")
    frames = 20 if SMALL else 100
    result = benchmark.pedantic(lambda: label_sample("BP4D", seed=0, sequences=tasks, frames=frames),
                                rounds=1 if SMALL else 3, iterations=1)
    assert result.shape == (41 * len(tasks) * frames, 15)
    start = time.perf_counter()
    label_sample("BP4D", seed=1, sequences=tasks, frames=frames)
    report(benchmark, "label-only sampling", frames_per_s=round(len(result) / (time.perf_counter() - start)))

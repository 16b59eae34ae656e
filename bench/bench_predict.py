"""Benchmarks of prediction on photos and videos (:mod:`mgrr_pyg.predict`).

Cases (``benchmark.extra_info`` carries the derived numbers):

* ``test_face_finder``: the LBP cascade (the default face finder) on a 640x480 frame with
  one face, and on scikit-image's 512x512 astronaut: ``frames_per_s``.
* ``test_model[batch]``: the inference fast path (:func:`prepare_for_inference`: eval,
  BatchNorm folded, channels-last, ``inference_mode``) on aligned 176x176 faces, batch 1
  and 32: ``faces_per_s``.
* ``test_backend[eager|torchscript|onnx]``: the three backends at the exported batch size
  (8): ``ms_per_face``.
* ``test_video_memory_is_flat``: ``mgrr-predict`` on a 1,000- and a 5,000-frame synthetic
  video (``--every 10``), each in a fresh process: peak RSS of each, asserted within 10 %
  (+ 20 MB) of each other; end-to-end sampled frames/s.

Preset ``mgrr_bp4d`` (``tiny`` with ``MGRR_BENCH_SMALL=1``, videos of 100 and 500 frames).
``torch.set_num_threads(2)``. ``python bench/bench_predict.py [--skip-video]`` prints the
tables of bench/README.md's Prediction section; ``python bench/bench_predict.py
--landmark-accuracy CHECKPOINT`` its landmark table (mean distance of the eye centres and
mouth corners to hand-placed / exact points, in inter-ocular distances).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mgrr_pyg  # noqa: F401  (before torch: OpenMP threads that sleep when idle, see mgrr_pyg/__init__.py)
import numpy as np
import pytest
import torch
from roofline import time_call

SMALL = os.environ.get("MGRR_BENCH_SMALL", "0") not in ("", "0", "false", "False")
PRESET = "tiny" if SMALL else "mgrr_bp4d"
MODEL_BATCHES = (1, 32)
BACKEND_BATCH = 2 if SMALL else 8
VIDEO_LENGTHS = (100, 500) if SMALL else (1000, 5000)
EVERY = 10
THREADS = 2




def synthetic_face(size: int = 180) -> np.ndarray:
    from mgrr_pyg.data.synthetic.identity import make_identity
    from mgrr_pyg.data.synthetic.render import Capture, FaceRenderer

    renderer = FaceRenderer(make_identity(0, "BP4D", "F002"), size)
    image, _ = renderer.render({12: 3.0}, Capture(scale=0.7), None)
    return np.asarray(image)


def video_frames(count: int, width: int = 320, height: int = 240):
    """A face drifting over a grey frame (cheap to make at any length)."""
    face = synthetic_face(160)
    for index in range(count):
        canvas = np.full((height, width, 3), 90, np.uint8)
        x = 40 + int(60 * (1 + np.sin(index / 40)))
        canvas[40:200, x:x + 160] = face
        yield canvas


def checkpoint_path(folder: Path) -> Path:
    from mgrr_pyg.model import create_model
    from mgrr_pyg.train.checkpoint import build_metadata, save_checkpoint

    torch.manual_seed(0)
    model = create_model(PRESET).eval()
    # (its digest is written beside it by save_checkpoint)
    return save_checkpoint(folder / f"{PRESET}.pt", model=model, epoch=0, model_name=PRESET,
                           metadata=build_metadata(model.config.aus))




# -- face finder ----------------------------------------------------------------------------
def finder_frames() -> dict:
    from skimage import data

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[150:330, 230:410] = synthetic_face(180)
    return {"640x480, one face": frame, "astronaut 512x512": data.astronaut()}


@pytest.mark.parametrize("name", ["640x480, one face", "astronaut 512x512"])
def test_face_finder(benchmark, two_threads, name):
    from mgrr_pyg.predict.faces import CascadeFaceFinder

    finder = CascadeFaceFinder()
    frame = finder_frames()[name]
    faces = benchmark.pedantic(finder, args=(frame,), rounds=2 if SMALL else 5, warmup_rounds=1)
    assert len(faces) == 1
    if benchmark.stats:
        benchmark.extra_info["frames_per_s"] = 1.0 / benchmark.stats.stats.median


# -- model ----------------------------------------------------------------------------------
def model_inputs(batch: int):
    from mgrr_pyg.predict.inference import example_inputs

    images, landmarks = example_inputs(batch, seed=3)
    return images.numpy(), landmarks.numpy()


@pytest.mark.parametrize("batch", MODEL_BATCHES)
def test_model(benchmark, two_threads, batch):
    from mgrr_pyg.model import create_model
    from mgrr_pyg.predict.inference import EagerBackend

    torch.manual_seed(0)
    backend = EagerBackend(create_model(PRESET).eval())
    images, landmarks = model_inputs(batch)
    probs, _ = benchmark.pedantic(backend, args=(images, landmarks), rounds=2 if SMALL else 4,
                                  warmup_rounds=1)
    assert probs.shape[0] == batch
    if benchmark.stats:
        benchmark.extra_info["faces_per_s"] = batch / benchmark.stats.stats.median


# -- backends -------------------------------------------------------------------------------
def make_backend(kind: str, batch: int):
    from mgrr_pyg.model import create_model
    from mgrr_pyg.predict.export import export_onnx, export_torchscript
    from mgrr_pyg.predict.inference import EagerBackend, OnnxBackend, TorchScriptBackend

    torch.manual_seed(0)
    model = create_model(PRESET).eval()
    if kind == "eager":
        return EagerBackend(model)
    if kind == "torchscript":
        module, _ = export_torchscript(model, None, batch)
        return TorchScriptBackend(module, batch)
    data, _ = export_onnx(model, None, batch)
    return OnnxBackend(data, batch, threads=THREADS)


@pytest.mark.parametrize("kind", ["eager", "torchscript", "onnx"])
def test_backend(benchmark, two_threads, kind):
    backend = make_backend(kind, BACKEND_BATCH)
    images, landmarks = model_inputs(BACKEND_BATCH)
    probs, _ = benchmark.pedantic(backend, args=(images, landmarks), rounds=2 if SMALL else 5,
                                  warmup_rounds=1)
    assert probs.shape[0] == BACKEND_BATCH
    if benchmark.stats:
        benchmark.extra_info["ms_per_face"] = 1000 * benchmark.stats.stats.median / BACKEND_BATCH


# -- video memory ---------------------------------------------------------------------------
_RUN = """
import json, resource, sys, time
import mgrr_pyg
import torch
torch.set_num_threads({threads})
from mgrr_pyg.predict.cli import main
start = time.perf_counter()
main([{video!r}, "--checkpoint", {checkpoint!r}, "-o", {output!r}, "--every", "{every}",
      "--batch-size", "32", "--landmarks", "template"])
elapsed = time.perf_counter() - start
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "seconds": elapsed}}))
"""


def video_run(folder: Path, checkpoint: Path, frames: int) -> dict:
    """``mgrr-predict`` on a ``frames``-long video in a fresh process: peak RSS, time."""
    from mgrr_pyg.predict.sources import write_video

    video = write_video(folder / f"video_{frames}.mp4", video_frames(frames), fps=25)
    output = folder / f"video_{frames}.csv"
    script = _RUN.format(threads=THREADS, video=str(video), checkpoint=str(checkpoint),
                         output=str(output), every=EVERY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = sum(1 for _ in open(output)) - 1
    assert rows == -(-frames // EVERY), (rows, frames)  # one row per sampled frame, one face
    result.update(frames=frames, sampled=rows, sampled_per_s=rows / result["seconds"],
                  video_mb=video.stat().st_size / 2**20)
    return result


def test_video_memory_is_flat(benchmark, tmp_path):
    checkpoint = checkpoint_path(tmp_path)
    runs = benchmark.pedantic(lambda: [video_run(tmp_path, checkpoint, n) for n in VIDEO_LENGTHS],
                              rounds=1, iterations=1)
    short, long = runs
    benchmark.extra_info.update({f"peak_rss_mb_{r['frames']}": r["peak_rss_mb"] for r in runs})
    benchmark.extra_info.update({f"sampled_per_s_{r['frames']}": r["sampled_per_s"] for r in runs})
    assert long["peak_rss_mb"] <= 1.10 * short["peak_rss_mb"] + 20, runs


def landmark_accuracy(checkpoint: str) -> None:
    """Eye centres and mouth corners of each landmark method against the points placed by
    hand on the two real photographs (``tests/predict/real_faces.json``) and against the
    renderer's exact points on five frontal synthetic faces, in inter-ocular distances."""
    import warnings

    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    from mgrr_pyg.data.synthetic.identity import make_identity
    from mgrr_pyg.data.synthetic.render import Capture, FaceRenderer
    from mgrr_pyg.facs import eye_centres
    from mgrr_pyg.predict import Detector

    warnings.simplefilter("ignore")
    hand = json.loads((Path(__file__).parents[1] / "tests/predict/real_faces.json").read_text())["faces"]
    grace = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    faces = {"astronaut": data.astronaut(), "grace_hopper": np.asarray(Image.open(grace).convert("RGB"))}

    def points(landmarks):
        return np.concatenate([eye_centres(landmarks), landmarks[[31, 37]]])

    def error(row, truth):
        found = points(np.array([[row[f"x_{i}"], row[f"y_{i}"]] for i in range(49)]))
        return float(np.mean(np.linalg.norm(found - truth, axis=1) / np.linalg.norm(truth[0] - truth[1])))

    synthetic = []
    for subject in ("F001", "F003", "F005", "M001", "M005"):
        renderer = FaceRenderer(make_identity(0, "BP4D", subject), 256)
        image, landmarks = renderer.render({}, Capture(scale=0.9), None)
        synthetic.append((np.asarray(image), points(landmarks)))
    print(f"\n| landmarks ({Path(checkpoint).name}) | astronaut | Grace Hopper | 5 synthetic faces |"
          "\n|---|---|---|---|")
    for method, steps in (("template", 1), ("model", 1), ("model", 2)):
        detector = Detector.from_checkpoint(checkpoint, landmarks=method, refine_steps=steps)
        real = []
        for name, image in faces.items():
            p = hand[name]
            truth = np.array([p["first_eye_centre"], p["second_eye_centre"], p["first_mouth_corner"],
                              p["second_mouth_corner"]])
            real.append(error(detector.predict(image).iloc[0], truth))
        found = [error(t.iloc[0], truth) for t, truth in
                 ((detector.predict(image), truth) for image, truth in synthetic) if t.iloc[0]["success"]]
        label = method if method == "template" else f"model, {steps} step{'s' if steps > 1 else ''}"
        print(f"| {label} | {100 * real[0]:.1f} % | {100 * real[1]:.1f} % | "
              f"{100 * np.mean(found):.1f} % ({len(found)} found) |")


def main() -> None:
    """Print the tables of bench/README.md's Prediction section."""
    if "--landmark-accuracy" in sys.argv:
        landmark_accuracy(sys.argv[sys.argv.index("--landmark-accuracy") + 1])
        return
    torch.set_num_threads(THREADS)
    from mgrr_pyg.model import create_model
    from mgrr_pyg.predict.faces import CascadeFaceFinder
    from mgrr_pyg.predict.inference import EagerBackend

    print(f"load average at start: {open('/proc/loadavg').read().split()[:3]}")
    finder = CascadeFaceFinder()
    print("\n| face finder (LBP cascade) | frames/s (median of 5) |\n|---|---|")
    for name, frame in finder_frames().items():
        times = time_call(lambda: finder(frame), rounds=5)
        print(f"| {name} | {1 / np.median(times):.1f} |")
    torch.manual_seed(0)
    eager = EagerBackend(create_model(PRESET).eval())
    inputs = {batch: model_inputs(batch) for batch in MODEL_BATCHES}
    wall = {batch: [] for batch in MODEL_BATCHES}
    cpu = {batch: [] for batch in MODEL_BATCHES}
    for batch in MODEL_BATCHES:
        eager(*inputs[batch])  # warm-up (and the graph structure of this batch size)
    for _ in range(3):
        for batch in MODEL_BATCHES:
            start, start_cpu = time.perf_counter(), time.process_time()
            eager(*inputs[batch])
            wall[batch].append(time.perf_counter() - start)
            cpu[batch].append(time.process_time() - start_cpu)
    print(f"\n| model ({PRESET}, fast path: fused, channels-last, inference_mode) | batch | "
          "faces/s, wall | ms/face, wall | ms/face, process CPU |\n|---|---|---|---|---|")
    for batch in MODEL_BATCHES:
        median = float(np.median(wall[batch]))
        print(f"| eager | {batch} | {batch / median:.1f} | {1000 * median / batch:.1f} | "
              f"{1000 * float(np.median(cpu[batch])) / batch:.1f} |")
    # Interleaved rounds (one call of each backend per round), wall and process CPU time:
    # on a shared machine the load changes over minutes, so side by side is what compares.
    backends = {kind: make_backend(kind, BACKEND_BATCH) for kind in ("eager", "torchscript", "onnx")}
    images, landmarks = model_inputs(BACKEND_BATCH)
    wall = {kind: [] for kind in backends}
    cpu = {kind: [] for kind in backends}
    for kind, backend in backends.items():
        backend(images, landmarks)  # warm-up
    for _ in range(5):
        for kind, backend in backends.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            backend(images, landmarks)
            wall[kind].append(time.perf_counter() - start)
            cpu[kind].append(time.process_time() - start_cpu)
    print(f"\n| backend ({PRESET}), batch {BACKEND_BATCH} | ms/face, wall (median of 5) | "
          "ms/face, process CPU | CPU vs eager |\n|---|---|---|---|")
    base = float(np.median(cpu["eager"]))
    for kind in backends:
        print(f"| {kind} | {1000 * np.median(wall[kind]) / BACKEND_BATCH:.1f} | "
              f"{1000 * np.median(cpu[kind]) / BACKEND_BATCH:.1f} | "
              f"{float(np.median(cpu[kind])) / base:.2f}x |")
    if "--skip-video" in sys.argv:
        return
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint = checkpoint_path(folder)
        print("\n| video frames | every | sampled | peak RSS (MB) | sampled frames/s |\n|---|---|---|---|---|")
        for frames in VIDEO_LENGTHS:
            run = video_run(folder, checkpoint, frames)
            print(f"| {frames} | {EVERY} | {run['sampled']} | {run['peak_rss_mb']:.0f} | "
                  f"{run['sampled_per_s']:.1f} |")
    print(f"load average at end: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()

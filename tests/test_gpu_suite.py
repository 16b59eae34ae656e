"""The GPU suite's logic on CPU (``bench/gpu_suite.py``, run by ``bench/gpu.sh``): device
selection, the tolerance table, CUDA-event timing (with stand-in events), the batch
halving on out-of-memory, the targets, and one whole small run on CPU with its JSON.
(Its speed figures are measured on a GPU, never asserted here.)"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", BENCH / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


suite = load_suite()


def test_device_selection_names_what_is_missing():
    assert suite.select_device("cpu") == torch.device("cpu")
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert suite.select_device("auto").type == expected_auto
    with pytest.raises(ValueError, match=r"device: expected 'auto', 'cpu', 'cuda' or "
                                         r"'cuda:N', found 'gpu'"):
        suite.select_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available on this machine"):
            suite.select_device("cuda")
        assert suite.main(["--device", "cuda", "--out", "unused.json"]) == 2


def test_tolerances_follow_each_dtype_precision():
    table = suite.TOLERANCES
    assert set(table) == {"float32", "bfloat16", "float16"}
    for quantity in ("probs", "landmarks_px"):
        # fp32 (24 mantissa bits) < fp16 (11) < bf16 (8)
        assert table["float32"][quantity] < table["float16"][quantity] \
            < table["bfloat16"][quantity]
    # The bf16 bound holds what bf16 autocast cost on CPU (bench/README.md, Model):
    # max |delta p| 0.0009 and a landmark shift of 0.26 px, with room to spare.
    assert table["bfloat16"]["probs"] >= 10 * 0.0009
    assert table["bfloat16"]["landmarks_px"] >= 2 * 0.26
    assert suite.within({"probs": 0.01, "landmarks_px": 1.0}, table["bfloat16"])
    assert not suite.within({"probs": 0.021, "landmarks_px": 0.0}, table["bfloat16"])
    assert not suite.within({"probs": 0.0}, table["bfloat16"])  # a missing figure fails


class FakeEvent:
    """Stands in for torch.cuda.Event: records its calls in a shared log."""
    log: list = []

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.name = f"event{len([e for e in self.log if e[0] == 'new'])}"
        self.log.append(("new", self.name))

    def record(self):
        self.log.append(("record", self.name))

    def synchronize(self):
        self.log.append(("synchronize", self.name))

    def elapsed_time(self, other):
        self.log.append(("elapsed", self.name, other.name))
        return 250.0  # milliseconds


def test_cuda_event_timing_measures_between_recorded_events(monkeypatch):
    FakeEvent.log = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    clock = suite.CudaEventClock(torch.device("cuda", 0))
    calls = []

    def work():
        calls.append(1)
        FakeEvent.log.append(("work",))

    seconds = suite.seconds_per_call(work, torch.device("cpu"), iterations=5, warmup=2,
                                     clock=clock)
    assert seconds == pytest.approx(0.25 / 5)  # 250 ms over 5 timed calls
    assert len(calls) == 7
    kinds = [entry[0] for entry in FakeEvent.log]
    # two warm-up calls before the start event, five timed between start and end, then
    # the end event is waited for before its time is read
    assert kinds == ["work", "work", "new", "new", "record"] + ["work"] * 5 + [
        "record", "synchronize", "elapsed"]
    assert FakeEvent.log[-2] == ("synchronize", "event1")
    assert FakeEvent.log[-1] == ("elapsed", "event0", "event1")
    assert isinstance(suite.clock_for(torch.device("cpu")), suite.WallClock)
    assert isinstance(suite.clock_for(torch.device("cuda", 0)), suite.CudaEventClock)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        suite.seconds_per_call(work, torch.device("cpu"), iterations=0, warmup=0)


def test_a_batch_that_does_not_fit_is_halved():
    tried = []

    def run(batch):
        tried.append(batch)
        if batch > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {"images_per_s": 10.0 * batch}

    assert suite.halving(256, run) == {"images_per_s": 640.0, "batch": 64}
    assert tried == [256, 128, 64]

    def never_fits(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        suite.halving(4, never_fits)


def test_rates_and_the_fraction_of_the_peak():
    rate = suite._rate(seconds=0.05, batch=256, flops=4.0e9, peak=989.0)
    assert rate["images_per_s"] == pytest.approx(5120.0)
    assert rate["ms_per_image"] == pytest.approx(50 / 256)
    assert rate["achieved_tflops"] == pytest.approx(4.0e9 * 5120 / 1e12)
    assert rate["fraction_of_bf16_peak"] == pytest.approx(20.48 / 989.0)
    assert "fraction_of_bf16_peak" not in suite._rate(0.05, 256, 4.0e9, None)
    assert suite.peak_tflops(torch.device("cpu")) is None


def test_targets_are_judged_only_on_a_gpu_at_full_size(monkeypatch):
    inference = {"bf16_fast": {"images_per_s": 6000.0}, "fp32_eager": {"images_per_s": 9e9},
                 "bf16_fast_compiled": {"skipped": "time budget spent"}}
    training = {"bf16_channels_last": {"images_per_s": 1200.0}}
    gpu = SimpleNamespace(device=torch.device("cuda", 0), small=False)
    judged = suite.compare_with_targets(gpu, inference, training)
    assert judged["applies"]
    assert judged["inference"]["best_bf16_images_per_s"] == 6000.0  # fp32 is not bf16
    assert judged["inference"]["floor_met"] and not judged["inference"]["aim_met"]
    assert not judged["training"]["floor_met"]
    cpu = SimpleNamespace(device=torch.device("cpu"), small=True)
    assert not suite.compare_with_targets(cpu, inference, training)["inference"]["floor_met"]


def test_a_small_cpu_run_writes_one_json_that_passes(tmp_path):
    out = tmp_path / "results" / "gpu.json"
    status = suite.main(["--device", "cpu", "--small", "--no-compile", "--iterations", "1",
                         "--warmup", "0", "--out", str(out)])
    report = json.loads(out.read_text())
    assert status == 0, report["errors"]
    assert report["schema"] == "mgrr-gpu-suite/1" and report["passed"] is True
    assert set(report["checks"]) == set(suite.CHECKS)
    assert set(report["speed"]) == {"inference", "training", "sparse"}
    grid = report["speed"]["sparse"]["grid1"]
    assert grid["masked_ms"] > 0 and grid["edge_kernels_ms"] > 0
    assert grid["edges"] == 2 * (4 * 4 * 9 + 4 * 4 * 6 + 4 * 4)  # two 6x6 pixel graphs
    assert report["settings"]["device"] == "cpu" and report["settings"]["small"]
    assert report["tolerances"]["model_vs_cpu_fp32"] == suite.TOLERANCES
    layers = report["checks"]["dense_vs_message_passing"]["cases"]
    assert layers["pixel_grid1"]["paths_taken"] == {"masked": "masked",
                                                   "edge_kernels": "edge_kernels",
                                                   "propagate": "propagate"}
    assert layers["pixel_complete"]["paths_taken"]["dense"] == "dense"
    dtypes = report["checks"]["cpu_vs_device"]["dtypes"]
    assert dtypes["float32"]["probs"] == 0.0  # CPU against itself
    assert "skipped" in dtypes["float16"]
    resume = report["checks"]["resume"]
    assert resume["resumed_from_checkpoint"] and resume["bitwise_equal"]
    for name in ("fp32_eager", "fp32_fast", "bf16_fast"):
        assert report["speed"]["inference"][name]["images_per_s"] > 0
        assert report["speed"]["inference"][name]["batch"] == suite.SMALL_INFERENCE_BATCH
    assert report["speed"]["inference"]["flops_per_image"] > 1e8  # tiny preset: ~0.5 GFLOP
    assert report["speed"]["training"]["fp32"]["images_per_s"] > 0
    assert report["targets"]["applies"] is False
    assert list(tmp_path.joinpath("results").iterdir()) == [out]  # written atomically

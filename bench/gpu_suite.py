"""The GPU set of issue 11 in one run, one JSON: correctness on the device, then speed.

Checks (each ``passed`` true or false, with the numbers it judged):

* ``dense_vs_message_passing``: MultiHeadGraphAttention on the device, the dense path
  (complete graph, SDPA), the masked path (a 3x3 grid, SDPA under a mask) and message
  passing (edge kernels, plain propagate) on the same graphs: outputs and input
  gradients within :data:`LAYER_TOLERANCE` (fp32, TF32 off);
* ``cpu_vs_device``: the model, same weights and images, on CPU in fp32 and on the
  device in fp32 (TF32 off), bf16 and fp16 autocast: the largest differences of the AU
  probabilities and landmarks (pixels) against :data:`TOLERANCES`;
* ``resume``: the package's Trainer on the device, two epochs straight against one epoch,
  a stop and a resume from ``last.pt`` (deterministic algorithms on): the same weights.

Speed (images/s; CUDA events on a GPU, the wall clock on CPU; warm-up calls first):
the masked path against the edge kernels on the pixel graph's grids and kNN (``sparse``);
inference at :data:`INFERENCE_BATCH` (fp32 as built; ``prepare_for_inference``:
BatchNorm folded + channels_last, fp32 and bf16 autocast; that compiled with
``torch.compile``, ``dynamic=False``, one compile per batch size, recompiles counted),
training steps (forward, joint loss, backward, SGD step) at :data:`TRAIN_BATCH`,
fp32 and bf16 autocast + channels_last (compiled too while the time budget allows). A
batch that does not fit is halved (``batch`` says what ran). FLOPs per image (torch's
counter) give the achieved TFLOP/s and, on a GPU of :data:`PEAK_BF16_TFLOPS`, the
fraction of its dense bf16 peak; ``targets`` compares with issue 11's floors and aims.

Nothing is installed and nothing is downloaded: it runs on the machine's own torch and
torch-geometric with the package from the checkout (``PYTHONPATH=.``).
``bench/gpu.sh`` runs it; ``python bench/gpu_suite.py --device cpu --small`` is the same
set at small sizes on CPU (what the tests and CI run). Exit status 0 when every check
passed and no section failed.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

# Deterministic cuBLAS for the resume check; read when CUDA starts, so set before.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

SCHEMA = "mgrr-gpu-suite/1"
#: Largest |difference| from the CPU fp32 output of the same model and images. fp32 on
#: the device differs by summation order only (TF32 off); the autocast bounds are those
#: of the dtype's mantissa through ~60 layers (bf16 8 bits, fp16 11 bits; on CPU bf16
#: autocast moved probabilities by 0.0009 and landmarks by 0.26 px, bench/README.md).
TOLERANCES = {
    "float32": {"probs": 1e-4, "landmarks_px": 0.01},
    "bfloat16": {"probs": 0.02, "landmarks_px": 1.0},
    "float16": {"probs": 0.005, "landmarks_px": 0.25},
}
#: Dense / masked path against message passing on the device, fp32 (TF32 off).
LAYER_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
#: Weights after the resumed run against the straight one (deterministic algorithms).
RESUME_TOLERANCE = 1e-6
INFERENCE_BATCH, TRAIN_BATCH = 256, 128
#: Seconds of the whole run after which the speed cases left are skipped: the set must
#: end within 5 minutes on the GPU machine (start-up and the JSON take the rest).
FULL_BUDGET_S = 270.0
SMALL_INFERENCE_BATCH, SMALL_TRAIN_BATCH = 4, 4
#: Dense bf16 tensor-core peak (TFLOP/s, no sparsity) of the GPUs issue 11 targets, by a
#: name fragment of ``torch.cuda.get_device_name``.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
#: Issue 11's images/s on an H100/H200-class GPU (bf16, inference at batch 256).
TARGETS = {"inference": {"floor": 5000, "aim": 20000}, "training": {"floor": 1500, "aim": 5000}}
#: The paper's figure: 16.5 ms/image on an RTX 2080Ti.
PAPER_MS_PER_IMAGE = 16.5
IMAGE_SIZE = 176


# -- devices and clocks --------------------------------------------------------------------
def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when there is a GPU, else CPU; an unknown or missing device is a
    ValueError naming what this machine has (the package's ``resolve_device``)."""
    from mgrr_pyg.utils.devices import resolve_device
    return resolve_device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class WallClock:
    """Seconds between ``start()`` and ``stop()`` on the host clock (CPU: the work is
    done when the call returns)."""

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self._start


class CudaEventClock:
    """Seconds between ``start()`` and ``stop()`` on the GPU's own timeline: events
    recorded in the stream, so the host's launch time is not what is measured."""

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> None:
        self._begin = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        self._begin.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._begin.elapsed_time(self._end) / 1000.0  # elapsed_time is in ms


def clock_for(device: torch.device):
    return CudaEventClock(device) if device.type == "cuda" else WallClock()


def seconds_per_call(function: Callable[[], object], device: torch.device, iterations: int,
                     warmup: int, clock=None) -> float:
    """Mean seconds per call of ``iterations`` calls after ``warmup`` untimed ones."""
    if iterations < 1 or warmup < 0:
        raise ValueError(f"iterations must be >= 1 and warmup >= 0; found {iterations}, "
                         f"{warmup}")
    clock = clock_for(device) if clock is None else clock
    for _ in range(warmup):
        function()
    synchronize(device)
    clock.start()
    for _ in range(iterations):
        function()
    return clock.stop() / iterations


# -- what the run does ----------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    device: torch.device
    small: bool
    preset: str
    inference_batch: int
    train_batch: int
    iterations: int
    warmup: int
    budget_s: float
    compile: bool

    @classmethod
    def from_args(cls, args) -> "Settings":
        small = args.small
        return cls(device=select_device(args.device), small=small,
                   preset=args.preset or ("tiny" if small else "mgrr_bp4d"),
                   inference_batch=args.inference_batch or (
                       SMALL_INFERENCE_BATCH if small else INFERENCE_BATCH),
                   train_batch=args.train_batch or (SMALL_TRAIN_BATCH if small else TRAIN_BATCH),
                   iterations=args.iterations or (2 if small else 20),
                   warmup=args.warmup if args.warmup is not None else (1 if small else 5),
                   budget_s=args.budget_s if args.budget_s is not None else (
                       math.inf if small else FULL_BUDGET_S),
                   compile=not args.no_compile)

    def to_json(self) -> dict:
        return {"device": str(self.device), "small": self.small, "preset": self.preset,
                "inference_batch": self.inference_batch, "train_batch": self.train_batch,
                "iterations": self.iterations, "warmup": self.warmup,
                "budget_s": None if math.isinf(self.budget_s) else self.budget_s,
                "compile": self.compile}


def within(differences: dict, tolerance: dict) -> bool:
    """Every named difference at most its tolerance (a missing one fails)."""
    return all(name in differences and differences[name] <= bound
               for name, bound in tolerance.items())


@contextlib.contextmanager
def exact_fp32():
    """fp32 as fp32 on a GPU: TF32 off for matmuls and convolutions (cuDNN's default
    is on), restored after."""
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


@contextlib.contextmanager
def deterministic():
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2:]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_model(settings: Settings, seed: int = 0):
    from mgrr_pyg.model import create_model
    torch.manual_seed(seed)
    return create_model(settings.preset)


def make_batch(batch: int, num_aus: int, device, seed: int = 1) -> dict:
    """Images in [-1, 1], 0/1 labels, landmarks inside the crop: what the loss takes."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 2 - 1
    return {"image": images.to(device),
            "labels": (torch.rand(batch, num_aus, generator=generator) < 0.3).float().to(device),
            "label_mask": torch.ones(batch, num_aus, dtype=torch.bool, device=device),
            "landmarks": (torch.rand(batch, 49, 2, generator=generator) * 120 + 28).to(device),
            "interocular": torch.full((batch,), 60.0, device=device)}


# -- checks ---------------------------------------------------------------------------------
def check_dense_vs_message_passing(settings: Settings) -> dict:
    from mgrr_pyg.graphs import graph_structure
    from mgrr_pyg.layers import MultiHeadGraphAttention
    device, small = settings.device, settings.small
    side, channels, embed_dim, heads, batch = (6, 8, 16, 2, 2) if small else (22, 64, 1024, 8, 8)
    cases = {  # graph: (nodes per graph, features, structure, the fast path)
        "channel_complete": (channels, side * side,
                             graph_structure(("complete", channels), batch, device), "dense"),
        "pixel_complete": (side * side, channels,
                           graph_structure(("complete", side * side), batch, device), "dense"),
        "pixel_grid1": (side * side, channels,
                        graph_structure(("grid", 1), batch, device, lattice=(side, side)),
                        "masked"),
    }
    results, passed = {}, True
    with exact_fp32():
        for name, (nodes, features, structure, fast) in cases.items():
            torch.manual_seed(0)
            layer = MultiHeadGraphAttention(features, features, embed_dim=embed_dim,
                                            heads=heads, masked=True).to(device)
            x = torch.randn(batch * nodes, features, device=device)
            runs = {}
            for path in (fast, "edge_kernels", "propagate"):
                layer.masked = path == "masked"
                layer.edge_kernels = path != "propagate"
                dense_size = structure.dense_size if path == "dense" else None
                taken = layer.attention_path(structure.edge_index, x.size(0), dense_size)
                inputs = x.clone().requires_grad_()
                out = layer(inputs, structure.edge_index, dense_size=dense_size)
                out.square().sum().backward()
                runs[path] = (taken, out.detach(), inputs.grad)
            reference = runs[fast]
            case = {"fast_path": fast, "paths_taken": {p: r[0] for p, r in runs.items()}}
            for path in ("edge_kernels", "propagate"):
                for what, mine, theirs in (("out", reference[1], runs[path][1]),
                                           ("grad_x", reference[2], runs[path][2])):
                    difference = float((mine - theirs).abs().max())
                    scale = float(theirs.abs().max())
                    ok = difference <= LAYER_TOLERANCE["atol"] + LAYER_TOLERANCE["rtol"] * scale
                    case[f"{what}_vs_{path}_max_abs"] = difference
                    case[f"{what}_vs_{path}_ok"] = ok
                    passed &= ok
            passed &= all(p == t for p, (t, _, _) in runs.items())
            results[name] = case
    return {"passed": bool(passed), "tolerance": LAYER_TOLERANCE, "cases": results}


def _outputs(model, images, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad(), autocast(device, dtype):
        out = model(images.to(device))
    return out.probs.float().cpu(), out.landmarks.float().cpu()


def check_cpu_vs_device(settings: Settings) -> dict:
    device = settings.device
    model = make_model(settings).eval()
    images = make_batch(2, len(model.config.aus), "cpu")["image"]
    with exact_fp32():
        reference = _outputs(model, images, torch.device("cpu"), None)
        model.to(device)
        results, passed = {}, True
        for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16),
                            ("float16", torch.float16)):
            if dtype == torch.float16 and device.type != "cuda":
                results[name] = {"skipped": "fp16 autocast is for CUDA (CPU: bf16)"}
                continue
            probs, landmarks = _outputs(model, images, device, dtype)
            differences = {"probs": float((probs - reference[0]).abs().max()),
                           "landmarks_px": float((landmarks - reference[1]).abs().max())}
            ok = within(differences, TOLERANCES[name])
            results[name] = {**differences, "tolerance": TOLERANCES[name], "passed": ok}
            passed &= ok
    return {"passed": bool(passed), "device": str(device), "dtypes": results,
            "note": "same-device fp32 is CPU vs CPU when --device cpu (a self-check)"}


class _Frames(torch.utils.data.Dataset):
    """Fixed frames in memory, as the trainer's data contract gives them."""

    def __init__(self, count: int, num_aus: int, aus):
        self.items = make_batch(count, num_aus, "cpu", seed=3)
        self.aus = tuple(aus)
        self.subjects = [f"S{i % 2}" for i in range(count)]
        self.frame_ids = [f"S{i % 2}/{i}.jpg" for i in range(count)]

    def __len__(self):
        return self.items["image"].size(0)

    def __getitem__(self, index):
        return {**{k: v[index] for k, v in self.items.items()}, "index": index}


def check_resume(settings: Settings) -> dict:
    from mgrr_pyg.model import MGRRLoss
    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.trainer import Trainer
    frames, batch = (2, 2) if settings.small else (8, 4)  # 1 / 2 steps per epoch

    def trainer(output, epochs):
        model = make_model(settings)
        data = _Frames(frames, len(model.config.aus), model.config.aus)
        config = TrainConfig(epochs=epochs, batch_size=batch, lr=0.01, workers=0,
                             progress=False, tensorboard=False, output=str(output),
                             device=str(settings.device), seed=0)
        return Trainer(model, MGRRLoss(), data, config, log=lambda message: None)

    with tempfile.TemporaryDirectory() as folder, deterministic():
        straight = trainer(Path(folder) / "straight", 2)
        straight.fit()
        trainer(Path(folder) / "stopped", 1).fit()  # writes last.pt after epoch 1
        resumed = trainer(Path(folder) / "stopped", 2)
        resumed.fit()  # resumes from last.pt
        resumed_from = str(resumed.resumed_from) if resumed.resumed_from else None
        a, b = straight.model.state_dict(), resumed.model.state_dict()
        difference = max(float((a[k].double() - b[k].double()).abs().max()) for k in a
                         if a[k].is_floating_point())
        bitwise = all(torch.equal(a[k], b[k]) for k in a)
    passed = resumed_from is not None and difference <= RESUME_TOLERANCE
    return {"passed": bool(passed), "resumed_from_checkpoint": resumed_from is not None,
            "steps": straight.global_step, "max_abs_weight_difference": difference,
            "bitwise_equal": bitwise, "tolerance": RESUME_TOLERANCE}


# -- speed ----------------------------------------------------------------------------------
def _flops_per_image(function, batch: int) -> Optional[float]:
    try:
        from roofline import count_flops  # bench/roofline.py
    except ImportError:
        from torch.utils.flop_counter import FlopCounterMode

        def count_flops(call):
            counter = FlopCounterMode(display=False)
            with counter:
                call()
            return counter.get_total_flops()
    return count_flops(function) / batch


def peak_tflops(device: torch.device) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_BF16_TFLOPS.items() if fragment in name), None)


def halving(batch: int, run: Callable[[int], dict]) -> dict:
    """``run(batch)``, halving the batch on a CUDA out-of-memory error."""
    while True:
        try:
            result = run(batch)
            result["batch"] = batch
            return result
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch == 1:
                raise
            batch //= 2


def _rate(seconds: float, batch: int, flops: Optional[float], peak: Optional[float]) -> dict:
    images_per_s = batch / seconds
    result = {"ms_per_batch": 1000 * seconds, "images_per_s": images_per_s,
              "ms_per_image": 1000 * seconds / batch}
    if flops:
        result["achieved_tflops"] = flops * images_per_s / 1e12
        if peak:
            result["fraction_of_bf16_peak"] = result["achieved_tflops"] / peak
    return result


def _recompiles() -> int:
    from torch._dynamo.utils import counters
    return int(counters["stats"]["unique_graphs"])


def inference_speed(settings: Settings, deadline: float, compiled: bool = False) -> dict:
    """Inference images/s of the eager variants, or (``compiled``) of the compiled one."""
    try:
        from mgrr_pyg.model.inference import prepare_for_inference
    except ImportError:  # older checkouts: the same steps by hand
        def prepare_for_inference(model, device, channels_last=True, copy_model=True,
                                  precision="fp32"):
            import copy
            model = copy.deepcopy(model).eval().fold_batchnorm().to(device)
            return model.to(memory_format=torch.channels_last) if channels_last else model
    device, peak = settings.device, peak_tflops(settings.device)
    model = make_model(settings).eval().to(device)
    # fp32 (its default on CUDA is bf16): the bf16 variant adds autocast below
    fast = prepare_for_inference(model, device, precision="fp32")
    flops = _flops_per_image(lambda: _outputs(model, make_batch(
        2, len(model.config.aus), device)["image"], device, None), 2)
    if compiled:
        variants = {"bf16_fast_compiled": (torch.compile(fast, dynamic=False), torch.bfloat16,
                                           True)}
    else:
        variants = {"fp32_eager": (model, None, False), "fp32_fast": (fast, None, True),
                    "bf16_fast": (fast, torch.bfloat16, True)}
    results = {"flops_per_image": flops}
    for name, (network, dtype, channels_last) in variants.items():
        if time.perf_counter() > deadline:
            results[name] = {"skipped": "time budget spent"}
            continue

        def run(batch, network=network, dtype=dtype, channels_last=channels_last, name=name):
            images = make_batch(batch, len(model.config.aus), device)["image"]
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)

            def call():
                with torch.no_grad(), autocast(device, dtype):
                    return network(images)
            extra = {}
            if name.endswith("compiled"):
                before, start = _recompiles(), time.perf_counter()
                call()
                synchronize(device)
                extra = {"compile_s": time.perf_counter() - start,
                         "dynamo_graphs_compiled": _recompiles() - before}
            seconds = seconds_per_call(call, device, settings.iterations, settings.warmup)
            if name.endswith("compiled"):  # recompiles after the first call (in the
                # warm-up, or timed when there are more than warm-up calls)
                extra["graphs_compiled_after_first_call"] = _recompiles() - before - extra[
                    "dynamo_graphs_compiled"]
            return {**_rate(seconds, batch, flops, peak), **extra}
        results[name] = halving(settings.inference_batch, run)
    return results


def training_speed(settings: Settings, deadline: float, compiled: bool = False) -> dict:
    """Training images/s of the eager variants, or (``compiled``) of the compiled one."""
    from mgrr_pyg.model import MGRRLoss
    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.optim import build_optimizer
    device, peak = settings.device, peak_tflops(settings.device)
    loss_fn = MGRRLoss().to(device)
    variants = ({"bf16_channels_last_compiled": (torch.bfloat16, True, True)} if compiled else
                {"fp32": (None, False, False), "bf16_channels_last": (torch.bfloat16, True, False)})
    results = {}
    for name, (dtype, channels_last, compiled) in variants.items():
        if time.perf_counter() > deadline:
            results[name] = {"skipped": "time budget spent"}
            continue

        def run(batch, dtype=dtype, channels_last=channels_last, compiled=compiled):
            model = make_model(settings).train().to(device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            optimizer = build_optimizer(model.parameters(), TrainConfig())
            network = torch.compile(model, dynamic=False) if compiled else model
            data = make_batch(batch, len(model.config.aus), device)
            images = data["image"]
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)

            def step():
                with autocast(device, dtype):
                    out = network(images)
                    total = loss_fn(out, data["labels"], data["label_mask"], data["landmarks"],
                                    data["interocular"])["total"]
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
            extra = {}
            if compiled:
                start = time.perf_counter()
                step()
                synchronize(device)
                extra["compile_s"] = time.perf_counter() - start
            flops = None
            if not compiled:
                flops = _flops_per_image(step, batch)  # forward + backward (one more step)
            seconds = seconds_per_call(step, device, settings.iterations, settings.warmup)
            return {**_rate(seconds, batch, flops, peak), **extra}
        results[name] = halving(settings.train_batch, run)
    return results


def compare_with_targets(settings: Settings, inference: dict, training: dict) -> dict:
    """Issue 11's floors and aims against the best bf16 figures; judged only on a GPU at
    full size (on CPU or small sizes: ``applies`` false)."""
    def best(results: dict, prefix: str) -> Optional[float]:
        rates = [r["images_per_s"] for n, r in results.items()
                 if n.startswith(prefix) and isinstance(r, dict) and "images_per_s" in r]
        return max(rates) if rates else None
    applies = settings.device.type == "cuda" and not settings.small
    out = {"applies": applies, "paper_ms_per_image_rtx2080ti": PAPER_MS_PER_IMAGE}
    for kind, figure in (("inference", best(inference, "bf16")),
                         ("training", best(training, "bf16"))):
        target = TARGETS[kind]
        out[kind] = {"best_bf16_images_per_s": figure, **target,
                     "floor_met": applies and figure is not None and figure >= target["floor"],
                     "aim_met": applies and figure is not None and figure >= target["aim"]}
    return out


def sparse_speed(settings: Settings, deadline: float) -> dict:
    """The masked path against the edge kernels on the device (forward, batch 8 pixel
    graphs): what sets the masked path's rule off the CPU
    (``mgrr_pyg.layers._block_mask.MAX_ENTRIES_PER_EDGE``)."""
    from mgrr_pyg.graphs import graph_structure, per_forward_edges
    from mgrr_pyg.layers import MultiHeadGraphAttention
    from mgrr_pyg.layers._block_mask import block_mask
    device = settings.device
    side, features, embed_dim, heads, batch = ((6, 8, 16, 2, 2) if settings.small
                                               else (22, 64, 1024, 8, 8))
    x = torch.randn(batch * side * side, features, device=device)
    results = {}
    for topology in (("grid", 1), ("grid", 2), ("knn", 8)):
        name = f"{topology[0]}{topology[1]}"
        if time.perf_counter() > deadline:
            results[name] = {"skipped": "time budget spent"}
            continue
        if topology[0] == "knn":
            edges = per_forward_edges(topology, x, batch, side * side, (side, side))
        else:
            edges = graph_structure(topology, batch, device, lattice=(side, side)).edge_index
        torch.manual_seed(0)
        layer = MultiHeadGraphAttention(features, features, embed_dim=embed_dim,
                                        heads=heads).to(device)
        case = {"edges": edges.size(1),
                "entries_per_edge": block_mask(edges, x.size(0)).entries_per_edge(),
                "auto_path": layer.attention_path(edges, x.size(0))}
        for path in ("masked", "edge_kernels"):
            layer.masked = path == "masked"

            def call():
                with torch.no_grad():
                    return layer(x, edges)
            case[f"{path}_ms"] = 1000 * seconds_per_call(call, device, settings.iterations,
                                                         settings.warmup)
        case["edge_kernels_over_masked"] = case["edge_kernels_ms"] / case["masked_ms"]
        results[name] = case
    return results


# -- the run --------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    import torch_geometric
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "cuda_available": torch.cuda.is_available()}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(gpu=properties.name, gpu_memory_gib=properties.total_memory / 2**30,
                    capability=f"{properties.major}.{properties.minor}",
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    with contextlib.suppress(OSError):
        info["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


CHECKS = ("dense_vs_message_passing", "cpu_vs_device", "resume")
# Eager speed before anything is compiled: compiling takes minutes and the budget may end.
SECTIONS = CHECKS + ("inference", "training", "sparse", "inference_compiled",
                     "training_compiled")


def run_suite(settings: Settings) -> dict:
    started = time.perf_counter()
    deadline = started + settings.budget_s
    report = {"schema": SCHEMA, "started": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds"), "command": sys.argv,
              "settings": settings.to_json(), "environment": environment(settings.device),
              "tolerances": {"model_vs_cpu_fp32": TOLERANCES, "layer_paths": LAYER_TOLERANCE,
                             "resume": RESUME_TOLERANCE},
              "checks": {}, "speed": {}, "errors": {}, "section_seconds": {}}
    steps = {"dense_vs_message_passing": lambda: check_dense_vs_message_passing(settings),
             "cpu_vs_device": lambda: check_cpu_vs_device(settings),
             "resume": lambda: check_resume(settings),
             "inference": lambda: inference_speed(settings, deadline),
             "training": lambda: training_speed(settings, deadline),
             "sparse": lambda: sparse_speed(settings, deadline),
             "inference_compiled": lambda: inference_speed(settings, deadline, compiled=True),
             "training_compiled": lambda: training_speed(settings, deadline, compiled=True)}
    for name in SECTIONS:
        if name.endswith("_compiled") and not settings.compile:
            continue
        start = time.perf_counter()
        try:
            result = steps[name]()
            if name in CHECKS:
                report["checks"][name] = result
            else:  # the compiled variants join their eager ones
                report["speed"].setdefault(name.replace("_compiled", ""), {}).update(result)
        except Exception as error:  # one failed section must not lose the others
            report["errors"][name] = "".join(traceback.format_exception_only(error)).strip()
            report["errors"][name + "_traceback"] = traceback.format_exc(limit=8)
        report["section_seconds"][name] = time.perf_counter() - start
        print(f"[gpu_suite] {name}: {report['section_seconds'][name]:.1f} s"
              + (" (failed)" if name in report["errors"] else ""), file=sys.stderr)
    report["targets"] = compare_with_targets(settings, report["speed"].get("inference", {}),
                                             report["speed"].get("training", {}))
    report["elapsed_s"] = time.perf_counter() - started
    report["passed"] = (not report["errors"] and len(report["checks"]) == len(CHECKS)
                        and all(check["passed"] for check in report["checks"].values()))
    return report


def write_report(report: dict, path: Path) -> None:
    from mgrr_pyg.utils.io import atomic_save_text
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_text(path, json.dumps(report, indent=2, default=str) + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--small", action="store_true",
                        help="small sizes (the tiny preset, batch 4): a CPU run in minutes")
    parser.add_argument("--out", default="bench/results/gpu.json", help="the JSON written")
    parser.add_argument("--preset", default=None, help="model preset (mgrr_bp4d; small: tiny)")
    parser.add_argument("--inference-batch", type=int, default=None)
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None, help="timed calls per case")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds after which the speed cases left are skipped "
                             f"(default {FULL_BUDGET_S:.0f}; --small: no limit)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile cases")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_args(args)
    except ValueError as error:
        print(f"gpu_suite: {error}", file=sys.stderr)
        return 2
    report = run_suite(settings)
    write_report(report, Path(args.out))
    print(f"[gpu_suite] wrote {args.out}: passed={report['passed']}, "
          f"{report['elapsed_s']:.0f} s", file=sys.stderr)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Writing a synthetic dataset to disk in the raw BP4D / DISFA layouts.

Layout (``docs/protocol.md``):

- BP4D: ``<root>/<subject>/<task>/<frame>.jpg``, labels
  ``<root>/AUCoding/AU_OCC/<subject>_<task>.csv`` (header ``frame,1,2,4,5,...``: the
  frame number, then AU numbers, more AUs than the 12 of the protocol, so readers must
  pick columns by AU number; values 0 / 1, 9 = not coded), landmarks
  ``<root>/Landmarks/<subject>_<task>.csv``;
- DISFA: ``<root>/<subject>/<i>.png`` (i from 0), intensities
  ``<root>/ActionUnit_Labels/<subject>/<subject>_au<N>.txt`` (lines ``frame,intensity``,
  frame 1-based), landmarks ``<root>/Landmarks/<subject>.csv`` (frame = image index);
- landmark CSVs: header ``frame,x1,y1,...,x49,y49``, one row per frame, image coordinates.

Bookkeeping (ignored by the readers): ``<root>/synth_manifest.json`` records the
configuration (written first; a re-run with a different configuration into the same
folder is an error), and ``<root>/.synth_done/<sequence>.json`` is written after every
file of a sequence is in place, so a re-run skips complete sequences and redoes the
rest. Every file is written atomically (temporary file + rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from mgrr_pyg.data.frames import MISSING_LABEL
from mgrr_pyg.facs import ALL_AUS, DISFA_AUS
from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text
from mgrr_pyg.utils.records import config_differences

from .config import SynthConfig, rng_for
from .expressions import (au_structure_named, integer_intensity, occurrence, sequence_intensities,
                          sequence_times)
from .identity import make_identity
from .render import Capture, FaceRenderer, SequenceCapture, encode_frame, frame_rng

MANIFEST_NAME = "synth_manifest.json"
DONE_DIR = ".synth_done"
BP4D_LABEL_DIR = Path("AUCoding") / "AU_OCC"
DISFA_LABEL_DIR = Path("ActionUnit_Labels")
LANDMARK_DIR = Path("Landmarks")

#: Columns of the written BP4D occurrence CSVs (after the frame column). Like the real
#: files they hold more AUs than the 12 of the protocol; AUs the generator does not model
#: are coded 9 (not coded) throughout.
BP4D_CSV_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20,
                                 22, 23, 24, 25, 26, 27, 28)
_AU_INDEX = {au: k for k, au in enumerate(ALL_AUS)}


@dataclass(frozen=True)
class SequencePlan:
    """Everything about one sequence except its pixels: a pure function of the config
    and the sequence's names, so labels can be inspected without rendering.

    Attributes:
        subject, sequence: names (``sequence`` is the BP4D task, ``""`` for DISFA).
        frames: ``[T]`` frame numbers as written (BP4D video frame numbers; DISFA 0..T-1).
        times: ``[T]`` video times (frames since the sequence start) of those frames.
        intensity: ``[T, 15]`` continuous AU intensities, ``ALL_AUS`` order (what the
            labels say).
        labels: ``[T, len(label_aus)]`` the label values written: BP4D 0/1/9 for
            :data:`BP4D_CSV_AUS`, DISFA integer intensities 0..5 for its 8 AUs.
        label_aus: the AU number of each label column.
        drawn: ``[T, 15]`` the intensities drawn, where the AU structure draws some AUs
            weaker than labelled; ``None``: drawn as labelled (:attr:`drawn_intensity`).
    """

    subject: str
    sequence: str
    frames: np.ndarray
    times: np.ndarray
    intensity: np.ndarray
    labels: np.ndarray
    label_aus: tuple[int, ...]
    drawn: np.ndarray | None = None

    @property
    def drawn_intensity(self) -> np.ndarray:
        """``[T, 15]`` what the renderer draws."""
        return self.intensity if self.drawn is None else self.drawn


def sequence_plan(config: SynthConfig, subject: str, sequence: str) -> SequencePlan:
    """The frame numbers, intensities and labels of one sequence (no rendering)."""
    n = int(config.frames_per_task)
    times = sequence_times(n, config.frame_step)
    intensity = sequence_intensities(config.seed, config.dataset, subject, sequence, n, config.frame_step,
                                     config.au_structure)
    cue = au_structure_named(config.au_structure).cue_vector(config.dataset)
    drawn = None if cue is None else intensity * cue
    if config.dataset == "BP4D":
        rng = rng_for(config.seed, config.dataset, subject, sequence, purpose="frame-numbers")
        offset = 1 + int(rng.integers(0, 2000))  # real BP4D tasks start at arbitrary frame numbers
        frames = offset + np.arange(n, dtype=np.int64) * int(config.frame_step)
        positive = occurrence(intensity, "BP4D")  # [T, 15]
        labels = np.full((n, len(BP4D_CSV_AUS)), MISSING_LABEL, dtype=np.int64)
        modelled = [c for c, au in enumerate(BP4D_CSV_AUS) if au in _AU_INDEX]
        labels[:, modelled] = positive[:, [_AU_INDEX[BP4D_CSV_AUS[c]] for c in modelled]]
        # A small share of entries is not coded: whole frames (a coder skipped them) and
        # single AUs (undecidable), ~60 / 40 of config.uncoded_rate.
        rng = rng_for(config.seed, config.dataset, subject, sequence, purpose="not-coded")
        rate = float(config.uncoded_rate)
        whole = rng.random(n) < 0.6 * rate
        single = rng.random((n, len(modelled))) < 0.4 * rate
        block = labels[:, modelled]
        block[single | whole[:, None]] = MISSING_LABEL
        labels[:, modelled] = block
        return SequencePlan(subject, sequence, frames, times, intensity, labels, BP4D_CSV_AUS, drawn)
    frames = np.arange(n, dtype=np.int64)
    labels = integer_intensity(intensity[:, [_AU_INDEX[au] for au in DISFA_AUS]])
    return SequencePlan(subject, sequence, frames, times, intensity, labels, DISFA_AUS, drawn)


def rendered_frame(config: SynthConfig, plan: SequencePlan, k: int, renderer: FaceRenderer,
                   camera: SequenceCapture) -> tuple[Any, np.ndarray, Capture]:
    """Frame ``k`` of ``plan`` as captured, before encoding: ``(PIL image, landmarks
    [49, 2] in image coordinates, its capture conditions)``. ``renderer`` is the
    subject's, ``camera`` the sequence's :class:`~.render.SequenceCapture`."""
    frame = int(plan.frames[k])
    rng = frame_rng(config.seed, config.dataset, plan.subject, plan.sequence, frame)
    capture = camera.at(float(plan.times[k]), rng, config.jpeg_quality)
    image, points = renderer.render(plan.drawn_intensity[k], capture, camera.noise_bank)
    return image, points, capture


# -- paths ------------------------------------------------------------------------------
def _sequence_key(dataset: str, subject: str, sequence: str) -> str:
    return subject if dataset == "DISFA" else f"{subject}_{sequence}"


def image_path(root: Path, dataset: str, subject: str, sequence: str, frame: int) -> Path:
    """Where one frame's image is written."""
    if dataset == "DISFA":
        return root / subject / f"{int(frame)}.png"
    return root / subject / sequence / f"{int(frame)}.jpg"


def landmark_path(root: Path, dataset: str, subject: str, sequence: str) -> Path:
    return root / LANDMARK_DIR / f"{_sequence_key(dataset, subject, sequence)}.csv"


def label_paths(root: Path, dataset: str, subject: str, sequence: str) -> list[Path]:
    if dataset == "DISFA":
        return [root / DISFA_LABEL_DIR / subject / f"{subject}_au{au}.txt" for au in DISFA_AUS]
    return [root / BP4D_LABEL_DIR / f"{subject}_{sequence}.csv"]


def done_path(root: Path, dataset: str, subject: str, sequence: str) -> Path:
    return root / DONE_DIR / f"{_sequence_key(dataset, subject, sequence)}.json"


# -- file contents ------------------------------------------------------------------------
def bp4d_label_csv(plan: SequencePlan) -> str:
    """Text of a BP4D occurrence CSV: ``frame,<AU numbers>`` then one row per frame."""
    lines = [",".join(["frame", *(str(au) for au in plan.label_aus)])]
    for frame, row in zip(plan.frames.tolist(), plan.labels.tolist()):
        lines.append(",".join([str(frame), *(str(v) for v in row)]))
    return "\n".join(lines) + "\n"


def disfa_label_txt(plan: SequencePlan, au: int) -> str:
    """Text of one DISFA intensity file: ``frame,intensity`` with 1-based frames."""
    column = plan.label_aus.index(au)
    return "".join(f"{int(f) + 1},{int(v)}\n" for f, v in zip(plan.frames.tolist(), plan.labels[:, column].tolist()))


def landmark_csv(frames: Sequence[int], landmarks: np.ndarray) -> str:
    """Text of a landmark CSV: header ``frame,x1,y1,...,x49,y49``, one row per frame."""
    count = landmarks.shape[1]
    header = ["frame"] + [f"{axis}{i}" for i in range(1, count + 1) for axis in ("x", "y")]
    lines = [",".join(header)]
    for frame, points in zip(frames, landmarks):
        lines.append(",".join([str(int(frame)), *(f"{v:.3f}" for v in points.reshape(-1))]))
    return "\n".join(lines) + "\n"


def config_hash(config: SynthConfig) -> str:
    text = json.dumps(config.content_dict(), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


# -- one sequence -------------------------------------------------------------------------
def _remove_stale_temporaries(image_dir: Path, files: Sequence[Path]) -> None:
    """Temporary files an interrupted run left behind (``mgrr_pyg.utils.io`` names them
    ``.<name>.<random>.tmp``): any in the sequence's own image folder, and those of the
    sequence's files in the shared label / landmark / marker folders."""
    if image_dir.is_dir():
        for entry in os.scandir(image_dir):
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                os.unlink(entry.path)
    for path in files:
        if path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)


def render_sequence(config: SynthConfig, subject: str, sequence: str, root: str | os.PathLike,
                    renderer: FaceRenderer | None = None) -> int:
    """Render and write one sequence (images, labels, landmarks, then its done marker).

    Args:
        renderer: the subject's :class:`~.render.FaceRenderer`, to reuse it across the
            subject's sequences (built here when ``None``).

    Returns:
        The number of frames written.
    """
    root = Path(root)
    dataset = config.dataset
    plan = sequence_plan(config, subject, sequence)
    if renderer is None:
        renderer = FaceRenderer(make_identity(config.seed, dataset, subject), config.image_size)
    camera = SequenceCapture(rng_for(config.seed, dataset, subject, sequence, purpose="capture"),
                             config.image_size)
    image_dir = image_path(root, dataset, subject, sequence, 0).parent
    labels = label_paths(root, dataset, subject, sequence)
    landmarks_file = landmark_path(root, dataset, subject, sequence)
    marker_file = done_path(root, dataset, subject, sequence)
    _remove_stale_temporaries(image_dir, [*labels, landmarks_file, marker_file])
    image_dir.mkdir(parents=True, exist_ok=True)
    fmt = "png" if dataset == "DISFA" else "jpg"
    points = np.empty((len(plan.frames), 49, 2))
    files = []
    # Writes (each synced to disk) run on a small thread pool so that waiting for the
    # disk overlaps with rendering the next frames.
    with ThreadPoolExecutor(max_workers=2) as io_pool:
        writes = []
        for k, frame in enumerate(plan.frames.tolist()):
            image, points[k], capture = rendered_frame(config, plan, k, renderer, camera)
            path = image_path(root, dataset, subject, sequence, frame)
            writes.append(io_pool.submit(atomic_save_bytes, path, encode_frame(image, fmt, capture.jpeg_quality)))
            files.append(path)
        for write in writes:
            write.result()  # re-raises a failed write here
    if dataset == "DISFA":
        for au, path in zip(DISFA_AUS, labels):
            atomic_save_text(path, disfa_label_txt(plan, au))
    else:
        atomic_save_text(labels[0], bp4d_label_csv(plan))
    atomic_save_text(landmarks_file, landmark_csv(plan.frames.tolist(), points))
    files += [*labels, landmarks_file]
    marker = {
        "subject": subject, "sequence": sequence, "frames": len(plan.frames),
        "config_hash": config_hash(config),
        "files": [p.relative_to(root).as_posix() for p in files],
    }
    atomic_save_text(marker_file, json.dumps(marker, indent=1) + "\n")
    return len(plan.frames)


def render_subject(config: SynthConfig, subject: str, sequences: Sequence[str], root: str | os.PathLike) -> int:
    """Render the given sequences of one subject (its identity is drawn once)."""
    renderer = FaceRenderer(make_identity(config.seed, config.dataset, subject), config.image_size)
    return sum(render_sequence(config, subject, sequence, root, renderer) for sequence in sequences)


def _render_job(config_values: dict[str, Any], subject: str, sequences: list[str], root: str) -> int:
    """Process-pool entry point (plain arguments only)."""
    return render_subject(SynthConfig(**config_values), subject, sequences, root)


def _is_complete(root: Path, config: SynthConfig, subject: str, sequence: str) -> bool:
    marker = done_path(root, config.dataset, subject, sequence)
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if info.get("config_hash") != config_hash(config):
        return False
    return all((root / rel).is_file() for rel in info.get("files", ()))


# -- the whole dataset ------------------------------------------------------------------
def _check_or_write_manifest(root: Path, config: SynthConfig) -> None:
    manifest = root / MANIFEST_NAME
    wanted = config.content_dict()
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text())
        except ValueError as err:
            raise ValueError(f"{manifest}: not a readable synthetic-data manifest ({err}); "
                             "remove the folder or choose another output folder") from err
        found_config = found.get("config", {})
        differences = config_differences(found_config, wanted)
        if differences:
            raise ValueError(
                f"{root} already holds synthetic data generated with another configuration "
                f"({manifest}); differences (existing != requested): {'; '.join(differences)}. "
                "Use a new output folder, or delete this one to regenerate.")
        return
    if root.exists() and any(entry.name != DONE_DIR for entry in os.scandir(root)):
        raise ValueError(
            f"{root}: expected an empty or new folder for synthetic data, found other files "
            f"and no {MANIFEST_NAME}; choose an empty output folder")
    root.mkdir(parents=True, exist_ok=True)
    atomic_save_text(manifest, json.dumps({
        "about": "synthetic faces written by mgrr_pyg.data.synthetic (mgrr-synth)",
        "config": wanted, "preset": config.preset,
    }, indent=1) + "\n")


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished child processes."""
    try:
        import resource
    except ImportError:  # not on POSIX: this process only
        return time.process_time()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def generate(
    out_root: str | os.PathLike,
    dataset: str = "BP4D",
    preset: str = "default",
    seed: int = 0,
    workers: int = 2,
    subjects: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    frames_per_task: int | None = None,
    progress: bool = True,
    config: SynthConfig | None = None,
) -> dict[str, Any]:
    """Generate a synthetic BP4D- or DISFA-style dataset (resumable, deterministic).

    Args:
        out_root: output folder (created; must be empty, or hold a run of the same config).
        dataset: ``"BP4D"`` or ``"DISFA"``. (default: ``"BP4D"``)
        preset: ``"tiny"``, ``"default"`` or ``"tied"`` (see :data:`~.config.PRESETS`).
            (default: ``"default"``)
        seed: every random choice derives from it. (default: ``0``)
        workers: worker processes; 0 or 1 renders in this process. (default: ``2``)
        subjects, tasks, frames_per_task: override the preset's sizes. (default: ``None``)
        progress: show a tqdm progress bar. (default: ``True``)
        config: a full :class:`~.config.SynthConfig`; when given, ``dataset``, ``preset``,
            ``seed``, ``subjects``, ``tasks`` and ``frames_per_task`` are not used.
            (default: ``None``)

    Returns:
        A summary: ``root``, ``config``, ``frames`` (in the dataset), ``generated_frames``,
        ``generated_sequences``, ``skipped_sequences``, ``seconds`` (wall clock),
        ``frames_per_second``, ``workers``, ``cpu_seconds`` (all processes; on a shared
        machine a steadier measure of cost than wall-clock time) and ``load_average``
        (1-minute system load at the end, to read the timing against).

    Raises:
        ValueError: for a bad argument, or a folder holding other data or another
            configuration's output.
    """
    if config is None:
        config = SynthConfig.from_preset(preset, dataset, seed=seed, subjects=subjects, tasks=tasks,
                                         frames_per_task=frames_per_task)
    if int(workers) < 0:
        raise ValueError(f"workers: expected >= 0, found {workers}")
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_root: expected a folder, found a file: {root}")
    _check_or_write_manifest(root, config)
    jobs = [(s, q) for s in config.subjects for q in config.sequences]
    pending = [(s, q) for s, q in jobs if not _is_complete(root, config, s, q)]
    by_subject: dict[str, list[str]] = {}
    for subject, sequence in pending:  # one job per subject: its identity is drawn once
        by_subject.setdefault(subject, []).append(sequence)
    per_sequence = int(config.frames_per_task)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    bar = tqdm(total=len(pending) * per_sequence, unit="frame", disable=not progress,
               desc=f"mgrr-synth {config.dataset}")
    written = 0
    try:
        if int(workers) <= 1 or len(by_subject) <= 1:
            for subject, sequences in by_subject.items():
                renderer = FaceRenderer(make_identity(config.seed, config.dataset, subject), config.image_size)
                for sequence in sequences:
                    written += render_sequence(config, subject, sequence, root, renderer)
                    bar.update(per_sequence)
        else:
            values = dict(vars(config))
            with ProcessPoolExecutor(max_workers=int(workers)) as pool:
                futures = [pool.submit(_render_job, values, s, q, str(root)) for s, q in by_subject.items()]
                try:
                    for future in as_completed(futures):
                        frames = future.result()
                        written += frames
                        bar.update(frames)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    cpu_seconds = _cpu_seconds() - cpu_start  # worker processes counted once they have exited
    return {
        "root": str(root),
        "config": config.to_dict(),
        "frames": config.num_frames,
        "generated_frames": written,
        "generated_sequences": len(pending),
        "skipped_sequences": len(jobs) - len(pending),
        "seconds": seconds,
        "frames_per_second": written / seconds if written and seconds > 0 else 0.0,
        "workers": int(workers),
        "cpu_seconds": cpu_seconds,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


__all__ = [
    "BP4D_CSV_AUS",
    "DONE_DIR",
    "MANIFEST_NAME",
    "SequencePlan",
    "bp4d_label_csv",
    "config_hash",
    "disfa_label_txt",
    "done_path",
    "generate",
    "image_path",
    "label_paths",
    "landmark_csv",
    "landmark_path",
    "render_sequence",
    "render_subject",
    "rendered_frame",
    "sequence_plan",
]

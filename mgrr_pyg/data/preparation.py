"""The preparation (``mgrr-prepare``): raw BP4D / DISFA -> aligned 200x200 faces +
prepared lists for the 3-fold protocol.

:func:`prepare_dataset` reads a raw tree (:mod:`mgrr_pyg.data.raw`), aligns every
labelled frame (similarity transform to the canonical template,
:mod:`mgrr_pyg.data.align`) in one :class:`SequenceJob` per sequence, run by worker
processes, and writes, under ``out_root`` (the list format:
:mod:`mgrr_pyg.data.prepared_lists`)::

    images/<DATASET>/<subject>/<task>/<frame>.jpg     (DISFA: images/DISFA/<subject>/<frame>.jpg)
    <DATASET>_part{1,2,3}_{path,land,biocular,AUoccur}.txt                 test lists
    <DATASET>_combine_{a}_{b}_{path,land,biocular,AUoccur,weight,prior}.txt training lists
    prepare.json                                     manifest, written last
    .prepare/identity.json, .prepare/done/<subject>__<sequence>.json       resume state

It is idempotent and resumable: every file is written atomically; a sequence is done
when its marker (which holds the aligned landmarks and the skipped frames) exists and
all its images do; an interrupted run redoes only what is missing; a finished folder
(``prepare.json`` present) returns at once; a folder holding a different preparation
is refused.
"""
from __future__ import annotations

import io
import json
import logging
import os
import warnings
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from mgrr_pyg import __version__
from mgrr_pyg.facs import ALIGNED_SIZE, AU_SETS, TEMPLATE_POINTS
from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text

from . import protocol
from .align import alignment_transform, transform_points, warp_image
from .bad_input import BadInputError, SkipLog, check_landmarks_inside
from .frames import MISSING_LABEL, FrameTable
from .images import read_image
from .prepared_lists import IMAGE_ROOT, PREPARED_MANIFEST, write_prepared
from .raw import DISFA_THRESHOLD, RAW_LAYOUTS, detect_layout
from .weights import class_weights

logger = logging.getLogger(__name__)

STATE_DIR = ".prepare"
FORMAT = "mgrr-prepared"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
#: Manifest keys that define a preparation; another value for any of them in an
#: existing output folder is "a different preparation".
IDENTITY_KEYS = ("format", "version", "dataset", "source", "landmarks", "aus", "threshold",
                 "aligned_size", "template", "image_format", "jpeg_quality")


def _identity(dataset: str, raw_root: Path, landmarks, threshold: int | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dataset": dataset,
        "source": str(raw_root),
        "landmarks": None if landmarks is None else str(Path(landmarks).resolve()),
        "aus": list(AU_SETS[dataset]),
        "threshold": threshold,
        "aligned_size": ALIGNED_SIZE,
        "template": TEMPLATE_POINTS.tolist(),
        "image_format": "jpg",
        "jpeg_quality": JPEG_QUALITY,
    }


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: expected a JSON file written by mgrr-prepare, {err}") from None


def _check_same(out_root: Path, found_in: Path, found: dict, wanted: dict) -> None:
    diffs = [f"{k}: {found.get(k)!r} there, {wanted[k]!r} requested"
             for k in IDENTITY_KEYS if found.get(k) != wanted[k]]
    if diffs:
        raise ValueError(
            f"{out_root} already holds a different preparation ({found_in.name}): "
            + "; ".join(diffs) + ". Choose another output folder or delete this one."
        )


def _claim_output(out_root: Path, identity: dict) -> dict | None:
    """Check ``out_root`` against ``identity``; returns the manifest when the folder
    already holds this finished preparation, else prepares it for (re)starting."""
    manifest, started = out_root / PREPARED_MANIFEST, out_root / STATE_DIR / "identity.json"
    if manifest.is_file():
        found = _load_json(manifest)
        _check_same(out_root, manifest, found, identity)
        return found
    if started.is_file():
        _check_same(out_root, started, _load_json(started), identity)
        return None
    if out_root.exists():
        if not out_root.is_dir():
            raise ValueError(f"output {out_root}: expected a folder, found a file")
        entries = sorted(p.name for p in out_root.iterdir())
        if entries:
            raise ValueError(
                f"output folder {out_root} is not empty and holds no mgrr-prepare state "
                f"(found {entries[:5]}{' ...' if len(entries) > 5 else ''}); expected an empty "
                "or new folder, or one an earlier mgrr-prepare run wrote"
            )
    atomic_save_text(started, json.dumps(identity, indent=1))
    return None


def _image_relpath(dataset: str, subject: str, sequence: str, frame: int) -> str:
    if dataset == "DISFA":
        return f"DISFA/{subject}/{frame}.jpg"
    return f"{dataset}/{subject}/{sequence}/{frame}.jpg"


def _marker_path(out_root: Path, subject: str, sequence: str) -> Path:
    return out_root / STATE_DIR / "done" / f"{subject}__{sequence}.json"


@dataclass(frozen=True, eq=False)
class SequenceJob:
    """The work of one worker call: align the frames of one sequence.

    Plain picklable fields, so a :class:`~concurrent.futures.ProcessPoolExecutor` sends
    it to a worker process as it is.

    Attributes:
        subject, sequence: Whose frames (DISFA: the sequence is the subject).
        frames: Frame numbers, in table order.
        sources: The raw image file of each frame.
        landmarks: ``[F, 49, 2]`` landmarks in the raw images' pixels.
        outputs: The aligned image file to write for each frame.
        marker: The done-marker file written when the sequence is finished.
        skip_bad: Skip (and record in the marker) bad frames instead of raising.
    """

    subject: str
    sequence: str
    frames: tuple[int, ...]
    sources: tuple[str, ...]
    landmarks: np.ndarray
    outputs: tuple[str, ...]
    marker: str
    skip_bad: bool


def _valid_marker(job: SequenceJob) -> dict | None:
    """The marker of a finished sequence job, or None when it must be (re)done."""
    path = Path(job.marker)
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    # Frames skipped as bad by an earlier skip_bad run stay skipped (they are in the
    # marker and counted again in the manifest).
    covered = set(marker.get("frames", [])) | {s[0] for s in marker.get("skipped", [])}
    if covered != set(job.frames):
        return None
    output = dict(zip(job.frames, job.outputs))
    if not all(os.path.isfile(output[f]) for f in marker["frames"]):
        return None
    return marker


def _align_frame(source: str, points: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Read, check and align one frame; every failure is a :class:`BadInputError` (an
    :class:`~mgrr_pyg.data.images.ImageReadError`, "unreadable image", for the image)."""
    image = read_image(source)  # upright 8-bit RGB: landmarks refer to the displayed frame
    check_landmarks_inside(source, points, image.size)
    try:
        matrix = alignment_transform(points)
        return warp_image(image, matrix), matrix
    except (ValueError, np.linalg.LinAlgError) as err:
        raise BadInputError("degenerate landmarks", f"{source}: no alignment from its landmarks, "
                                                    f"{err}") from None


def align_sequence(job: SequenceJob) -> dict:
    """Align the frames of one sequence, write their images and the done marker.

    Runs in a worker process. Returns the marker (the content of ``job.marker``, JSON):
    ``subject``, ``sequence``, ``frames`` aligned, their ``landmarks`` (98 floats each)
    and ``skipped`` as ``[frame, reason, message]``.
    """
    frames, landmarks, skipped = [], [], []
    for frame, source, points, output in zip(job.frames, job.sources, job.landmarks,
                                            job.outputs):
        try:
            aligned, matrix = _align_frame(source, points)
        except BadInputError as err:
            if not job.skip_bad:
                raise
            skipped.append([frame, err.reason, str(err)])
            continue
        buffer = io.BytesIO()
        aligned.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        atomic_save_bytes(output, buffer.getvalue())
        frames.append(frame)
        landmarks.append(transform_points(points, matrix).reshape(-1).tolist())
    marker = {"subject": job.subject, "sequence": job.sequence, "frames": frames,
              "landmarks": landmarks, "skipped": skipped}
    atomic_save_text(job.marker, json.dumps(marker))
    return marker


def _run_jobs(jobs: list[SequenceJob], workers: int, progress: bool, done_frames: int,
              total_frames: int) -> list[dict]:
    bar = tqdm(total=total_frames, initial=done_frames, unit="frame", desc="aligning faces",
               disable=not progress)
    results = []
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                results.append(align_sequence(job))
                bar.update(len(job.frames))
            return results
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending = {pool.submit(align_sequence, job): job for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    job = pending.pop(future)
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()
                    results.append(future.result())
                    bar.update(len(job.frames))
        return results
    finally:
        bar.close()


def _drop_unpartitioned(table: FrameTable, dataset: str, log: SkipLog) -> FrameTable:
    keep = np.ones(len(table), dtype=bool)
    for subject in sorted(set(table.subject.tolist())):
        try:
            protocol.part_of(dataset, subject)
        except ValueError as err:
            rows = table.subject == subject
            log.bad("subject in no part", f"{err} ({int(rows.sum())} frames)")
            keep &= ~rows
    return table.take(keep)


def _write_lists(aligned: FrameTable, dataset: str, out_root: Path) -> dict[str, dict]:
    # Imported here: the graphs package pulls in torch_geometric, which nothing else
    # in the data pipeline needs.
    from mgrr_pyg.graphs import au_cooccurrence_prior

    image_root = out_root / IMAGE_ROOT
    part_of = {s: protocol.part_of(dataset, s) for s in set(aligned.subject.tolist())}
    parts = np.asarray([part_of[s] for s in aligned.subject.tolist()], dtype=np.int64)
    prefixes: dict[str, dict] = {}
    for f in protocol.folds(dataset):
        test = aligned.take(parts == f.test_part)
        write_prepared(test, out_root, f.test_prefix, image_root=image_root)
        prefixes[f.test_prefix] = {"kind": "test", "frames": len(test), "part": f.test_part}
    for f in protocol.folds(dataset):
        a, b = f.train_parts
        train = FrameTable.concat([aligned.take(parts == a), aligned.take(parts == b)])
        info: dict[str, Any] = {"kind": "train", "frames": len(train), "parts": [a, b],
                                "test_prefix": f.test_prefix}
        weights = prior = None
        if len(train):
            never = [au for au, column in zip(train.aus, train.labels.T) if not (column == 1).any()]
            if never:
                logger.warning("%s: AU %s never occur in the training fold; their class weight uses "
                               "the rate of one positive", f.train_prefix, never)
                info["aus_without_positives"] = never
            with warnings.catch_warnings():  # reported above, with the prefix and AU numbers
                warnings.simplefilter("ignore", UserWarning)
                weights = class_weights(train.labels).numpy()
            prior = au_cooccurrence_prior(train.labels, missing_value=MISSING_LABEL)
            info["class_weights"] = [round(float(w), 6) for w in weights]
        else:
            logger.warning("%s: no frames in parts %d and %d; no class weights or prior written",
                           f.train_prefix, a, b)
        write_prepared(train, out_root, f.train_prefix, image_root=image_root,
                       weights=weights, prior=prior)
        prefixes[f.train_prefix] = info
    return prefixes


def prepare_dataset(raw_root: str | os.PathLike, out_root: str | os.PathLike,
                    dataset: str | None = None, workers: int = 2,
                    landmarks: str | os.PathLike | None = None, skip_bad: bool = False,
                    threshold: int = DISFA_THRESHOLD, progress: bool = True) -> dict:
    """Prepare a raw BP4D or DISFA tree for training (see the module docstring for the
    output layout).

    Args:
        raw_root: The raw dataset folder.
        out_root: Output folder: new, empty, or one an earlier run with the same
            settings wrote (then only the missing work is done).
        dataset (optional): ``"BP4D"`` or ``"DISFA"``; must match the detected layout.
            (default: detected by :func:`~mgrr_pyg.data.detect_layout`)
        workers (int, optional): Worker processes (per-sequence jobs); 0 or 1 runs in
            this process. (default: :obj:`2`)
        landmarks (optional): Folder of per-sequence landmark CSVs.
            (default: ``<raw_root>/Landmarks``)
        skip_bad (bool, optional): Skip bad frames / sequences, logging and recording
            the counts by reason in the manifest, instead of raising. (default: :obj:`False`)
        threshold (int, optional): Occurrence threshold on intensity, for the layouts
            that read one (DISFA: :func:`~mgrr_pyg.data.read_disfa`).
            (default: :obj:`2`, :data:`~mgrr_pyg.data.raw.DISFA_THRESHOLD`)
        progress (bool, optional): Show a progress bar. (default: :obj:`True`)

    Returns:
        The manifest (the content of ``prepare.json``).
    """
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0, found {workers!r}")
    raw_root = Path(raw_root).resolve()
    out_root = Path(out_root).resolve()
    layout = detect_layout(raw_root)
    if layout not in RAW_LAYOUTS:
        raise ValueError(f"{raw_root}: holds prepared lists already (found "
                         f"{PREPARED_MANIFEST} or *_path.txt); load them with "
                         "PreparedListDataset instead")
    raw_layout = RAW_LAYOUTS[layout]
    if dataset is not None and dataset != raw_layout.dataset:
        raise ValueError(f"dataset: {dataset!r} requested, but {raw_root} has the {layout} layout")
    dataset = raw_layout.dataset
    if out_root == raw_root or raw_root in out_root.parents:
        raise ValueError(f"output {out_root}: expected a folder outside the raw dataset {raw_root}")
    # The threshold is part of the preparation only where the layout reads one.
    identity = _identity(dataset, raw_root, landmarks, threshold if raw_layout.threshold else None)
    finished = _claim_output(out_root, identity)
    if finished is not None:
        logger.info("%s already holds this preparation (%s); nothing to do", out_root,
                    PREPARED_MANIFEST)
        return finished

    log = SkipLog(skip_bad=skip_bad)
    raw_table = raw_layout.read(raw_root, landmarks, log, threshold=threshold)
    table = _drop_unpartitioned(raw_table, dataset, log)

    # One job per sequence, in table order.
    keys = list(zip(table.subject.tolist(), table.sequence.tolist()))
    rows_of: dict[tuple[str, str], list[int]] = {}
    for row, key in enumerate(keys):
        rows_of.setdefault(key, []).append(row)
    image_root = out_root / IMAGE_ROOT
    jobs: list[SequenceJob] = []
    markers: dict[tuple[str, str], dict] = {}
    for (subject, sequence), rows in rows_of.items():
        frames = tuple(table.frame[rows].tolist())
        job = SequenceJob(
            subject=subject, sequence=sequence, frames=frames,
            sources=tuple(table.image_path[rows].tolist()), landmarks=table.landmarks[rows],
            outputs=tuple(str(image_root / _image_relpath(dataset, subject, sequence, f))
                          for f in frames),
            marker=str(_marker_path(out_root, subject, sequence)), skip_bad=skip_bad,
        )
        marker = _valid_marker(job)
        if marker is None:
            jobs.append(job)
        else:
            markers[(subject, sequence)] = marker
    done = sum(len(m["frames"]) + len(m["skipped"]) for m in markers.values())
    if markers:
        logger.info("resuming: %d of %d sequences already done", len(markers), len(rows_of))
    for marker in _run_jobs(jobs, workers, progress, done, len(table)):
        markers[(marker["subject"], marker["sequence"])] = marker

    # Aligned frame table, in the raw table's order.
    keep = np.zeros(len(table), dtype=bool)
    aligned_points = np.zeros_like(table.landmarks)
    for key, rows in rows_of.items():
        marker = markers[key]
        for frame, reason, message in marker["skipped"]:
            log.record(reason, message)
        position = {f: i for i, f in enumerate(marker["frames"])}
        for row in rows:
            i = position.get(int(table.frame[row]))
            if i is not None:
                keep[row] = True
                aligned_points[row] = np.asarray(marker["landmarks"][i]).reshape(-1, 2)
    aligned = FrameTable(
        aus=table.aus, subject=table.subject, sequence=table.sequence, frame=table.frame,
        image_path=[str(image_root / _image_relpath(dataset, s, q, f))
                    for s, q, f in zip(table.subject.tolist(), table.sequence.tolist(),
                                       table.frame.tolist())],
        landmarks=aligned_points, labels=table.labels, intensity=table.intensity, dataset=dataset,
    ).take(keep)

    prefixes = _write_lists(aligned, dataset, out_root)
    manifest = dict(identity)
    manifest.update({
        "mgrr_pyg_version": __version__,
        "layout": layout,
        "image_root": IMAGE_ROOT,
        "skip_bad": skip_bad,
        "frames": len(aligned),
        "sequences": len(rows_of),
        "prefixes": prefixes,
        "skipped": log.summary(),
    })
    log.log_summary(dataset)
    # Written last: its presence marks the preparation finished.
    atomic_save_text(out_root / PREPARED_MANIFEST, json.dumps(manifest, indent=1))
    logger.info("prepared %d %s frames into %s", len(aligned), dataset, out_root)
    return manifest


__all__ = ["FORMAT_VERSION", "IDENTITY_KEYS", "JPEG_QUALITY", "STATE_DIR", "SequenceJob",
           "align_sequence", "prepare_dataset"]

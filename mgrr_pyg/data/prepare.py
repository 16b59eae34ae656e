"""Raw BP4D / DISFA -> aligned 200x200 faces + prepared lists for the 3-fold protocol.

:func:`prepare_dataset` reads a raw tree, aligns every labelled frame (similarity
transform to the canonical template, :mod:`mgrr_pyg.data.align`) in parallel
per-sequence jobs, and writes, under ``out_root``::

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
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from mgrr_pyg import __version__
from mgrr_pyg.facs import ALIGNED_SIZE, AU_SETS, TEMPLATE_POINTS
from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text

from . import protocol
from .align import alignment_transform, transform_points, warp_image
from .frames import BadInputError, FrameTable, SkipLog
from .prepared import IMAGE_ROOT, write_prepared
from .raw import DISFA_THRESHOLD, PREPARED_MANIFEST, detect_layout, read_bp4d, read_disfa
from .weights import class_weights

logger = logging.getLogger(__name__)

MANIFEST = PREPARED_MANIFEST
STATE_DIR = ".prepare"
FORMAT = "mgrr-prepared"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
#: Manifest keys that define a preparation; another value for any of them in an
#: existing output folder is "a different preparation".
IDENTITY_KEYS = ("format", "version", "dataset", "source", "landmarks", "aus", "threshold",
                 "aligned_size", "template", "image_format", "jpeg_quality")
_LAYOUT_DATASET = {"raw-bp4d": "BP4D", "raw-disfa": "DISFA"}


def _identity(dataset: str, raw_root: Path, landmarks, threshold: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dataset": dataset,
        "source": str(raw_root),
        "landmarks": None if landmarks is None else str(Path(landmarks).resolve()),
        "aus": list(AU_SETS[dataset]),
        "threshold": threshold if dataset == "DISFA" else None,
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
    manifest, started = out_root / MANIFEST, out_root / STATE_DIR / "identity.json"
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


def _valid_marker(job: dict) -> dict | None:
    """The marker of a finished sequence job, or None when it must be (re)done."""
    path = Path(job["marker"])
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    # Frames skipped as bad by an earlier skip_bad run stay skipped (they are in the
    # marker and counted again in the manifest).
    covered = set(marker.get("frames", [])) | {s[0] for s in marker.get("skipped", [])}
    if covered != set(job["frames"]):
        return None
    output = dict(zip(job["frames"], job["outputs"]))
    if not all(os.path.isfile(output[f]) for f in marker["frames"]):
        return None
    return marker


def _check_inside(source: str, points: np.ndarray, size: tuple[int, int]) -> None:
    width, height = size
    outside = ((points[:, 0] < -0.5) | (points[:, 0] > width - 0.5)
               | (points[:, 1] < -0.5) | (points[:, 1] > height - 0.5))
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise BadInputError(
            "landmarks outside image",
            f"{source}: expected landmarks inside the {width}x{height} image, found "
            f"{int(outside.sum())} outside (e.g. point {first} at "
            f"({points[first, 0]:.1f}, {points[first, 1]:.1f}))",
        )


def _align_frame(source: str, points: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Decode, check and align one frame; every failure is a :class:`BadInputError`."""
    try:
        with Image.open(source) as image:
            image.load()
            _check_inside(source, points, image.size)
            matrix = alignment_transform(points)
            return warp_image(image, matrix), matrix
    except BadInputError:
        raise
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as err:
        raise BadInputError("unreadable image", f"{source}: expected a readable image, {err}") from None
    except (ValueError, np.linalg.LinAlgError) as err:
        raise BadInputError("degenerate landmarks", f"{source}: no alignment from its landmarks, "
                                                    f"{err}") from None


def align_sequence(job: dict) -> dict:
    """Align the frames of one sequence, write their images and the done marker.

    ``job``: subject, sequence, frames, sources (raw images), landmarks ``[F, 49, 2]``,
    outputs (aligned image files), marker (file), skip_bad. Runs in a worker process.
    Returns the marker: ``frames`` aligned, their ``landmarks`` (98 floats each) and
    ``skipped`` as ``[frame, reason, message]``.
    """
    frames, landmarks, skipped = [], [], []
    for frame, source, points, output in zip(job["frames"], job["sources"], job["landmarks"],
                                            job["outputs"]):
        try:
            aligned, matrix = _align_frame(source, points)
        except BadInputError as err:
            if not job["skip_bad"]:
                raise
            skipped.append([frame, err.reason, str(err)])
            continue
        buffer = io.BytesIO()
        aligned.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        atomic_save_bytes(output, buffer.getvalue())
        frames.append(frame)
        landmarks.append(transform_points(points, matrix).reshape(-1).tolist())
    marker = {"subject": job["subject"], "sequence": job["sequence"], "frames": frames,
              "landmarks": landmarks, "skipped": skipped}
    atomic_save_text(job["marker"], json.dumps(marker))
    return marker


def _run_jobs(jobs: list[dict], workers: int, progress: bool, done_frames: int,
              total_frames: int) -> list[dict]:
    bar = tqdm(total=total_frames, initial=done_frames, unit="frame", desc="aligning faces",
               disable=not progress)
    results = []
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                results.append(align_sequence(job))
                bar.update(len(job["frames"]))
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
                    bar.update(len(job["frames"]))
        return results
    finally:
        bar.close()


def _read_raw(layout: str, raw_root: Path, landmarks, threshold: int, log: SkipLog) -> FrameTable:
    if layout == "raw-bp4d":
        return read_bp4d(raw_root, landmarks=landmarks, log=log)
    return read_disfa(raw_root, landmarks=landmarks, threshold=threshold, log=log)


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
            prior = au_cooccurrence_prior(train.labels, missing_value=9)
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
        threshold (int, optional): DISFA occurrence threshold on intensity. (default: :obj:`2`)
        progress (bool, optional): Show a progress bar. (default: :obj:`True`)

    Returns:
        The manifest (the content of ``prepare.json``).
    """
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0, found {workers!r}")
    raw_root = Path(raw_root).resolve()
    out_root = Path(out_root).resolve()
    layout = detect_layout(raw_root)
    if layout not in _LAYOUT_DATASET:
        raise ValueError(f"{raw_root}: holds prepared lists already (found {MANIFEST} or "
                         "*_path.txt); load them with PreparedListDataset instead")
    detected = _LAYOUT_DATASET[layout]
    if dataset is not None and dataset != detected:
        raise ValueError(f"dataset: {dataset!r} requested, but {raw_root} has the {layout} layout")
    dataset = detected
    if out_root == raw_root or raw_root in out_root.parents:
        raise ValueError(f"output {out_root}: expected a folder outside the raw dataset {raw_root}")
    identity = _identity(dataset, raw_root, landmarks, threshold)
    finished = _claim_output(out_root, identity)
    if finished is not None:
        logger.info("%s already holds this preparation (%s); nothing to do", out_root, MANIFEST)
        return finished

    log = SkipLog(skip_bad=skip_bad)
    table = _drop_unpartitioned(_read_raw(layout, raw_root, landmarks, threshold, log), dataset, log)

    # One job per sequence, in table order.
    keys = list(zip(table.subject.tolist(), table.sequence.tolist()))
    rows_of: dict[tuple[str, str], list[int]] = {}
    for row, key in enumerate(keys):
        rows_of.setdefault(key, []).append(row)
    image_root = out_root / IMAGE_ROOT
    jobs, markers = [], {}
    for (subject, sequence), rows in rows_of.items():
        frames = table.frame[rows].tolist()
        job = {
            "subject": subject, "sequence": sequence, "frames": frames,
            "sources": table.image_path[rows].tolist(), "landmarks": table.landmarks[rows],
            "outputs": [str(image_root / _image_relpath(dataset, subject, sequence, f)) for f in frames],
            "marker": str(_marker_path(out_root, subject, sequence)), "skip_bad": skip_bad,
        }
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
    atomic_save_text(out_root / MANIFEST, json.dumps(manifest, indent=1))  # last: marks completion
    logger.info("prepared %d %s frames into %s", len(aligned), dataset, out_root)
    return manifest


__all__ = ["FORMAT_VERSION", "IDENTITY_KEYS", "MANIFEST", "align_sequence", "prepare_dataset"]

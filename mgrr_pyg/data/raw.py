"""Readers for the raw BP4D and DISFA layouts, and layout detection.

Layouts (``docs/protocol.md``):

- BP4D: images ``<root>/<subject>/<task>/<frame>.jpg`` (frame numbers with or without
  zero padding); occurrence labels ``<root>/AUCoding/AU_OCC/<subject>_<task>.csv``
  (header row of AU numbers, first column the frame number, one row per coded frame,
  values 0 / 1 / 9); landmarks ``<root>/Landmarks/<subject>_<task>.csv``.
- DISFA: images ``<root>/<subject>/<i>.png`` (i from 0); intensities
  ``<root>/ActionUnit_Labels/<subject>/<subject>_au<N>.txt`` with lines
  ``frame,intensity`` (frame 1-based, intensity 0-5); landmarks
  ``<root>/Landmarks/<subject>.csv`` (0-based image index).

Only labelled frames become rows; images without labels are counted (``notes`` of the
:class:`~mgrr_pyg.data.bad_input.SkipLog`) but not used.

To read another layout, add a reader here that returns a
:class:`~mgrr_pyg.data.frames.FrameTable` (pair each sequence's label rows with its
images and landmarks through ``_TableBuilder``, report bad input through the
:class:`~mgrr_pyg.data.bad_input.SkipLog`) and a :class:`RawLayout` entry in
:data:`RAW_LAYOUTS`: :func:`detect_layout` and the preparation find it there. (A new
*dataset* also needs its AU set in :data:`mgrr_pyg.facs.AU_SETS` and its partition in
:data:`mgrr_pyg.data.protocol.PARTITION`.)
"""
from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS

from .bad_input import BadInputError, SkipLog, check_landmarks_finite
from .frames import LABEL_VALUES, MISSING_LABEL, FrameTable
from .landmarks import landmark_csv_path, read_landmark_csv
from .prepared_lists import PREPARED_MANIFEST

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
BP4D_LABEL_DIR = Path("AUCoding") / "AU_OCC"
DISFA_LABEL_DIR = Path("ActionUnit_Labels")
LANDMARK_DIR = "Landmarks"
#: DISFA's occurrence rule: intensity >= 2, as ME-GraphAU's label script codes it. The
#: paper's words are intensity "higher than two", which read literally is >= 3
#: (``threshold=3``); docs/protocol.md, "DISFA binarisation", has the sources.
DISFA_THRESHOLD = 2

_UNUSED_IMAGES = "images without labels (not used)"


def detect_layout(root: str | os.PathLike) -> str:
    """Tell what a folder holds: ``"raw-bp4d"``, ``"raw-disfa"`` or ``"prepared"``.

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        ValueError: if none (or more than one raw layout) is found, naming what was looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if (root / PREPARED_MANIFEST).is_file() or any(root.glob("*_path.txt")):
        return "prepared"
    found = [layout for layout in RAW_LAYOUTS.values() if (root / layout.marker).is_dir()]
    if len(found) == 1:
        return found[0].name
    if len(found) > 1:
        raise ValueError(
            f"{root}: holds both " + " and ".join(layout.describe() for layout in found)
            + "; expected one dataset per folder"
        )
    raise ValueError(
        f"{root}: cannot tell the dataset layout; looked for {PREPARED_MANIFEST} or *_path.txt "
        "(prepared lists), " + " and ".join(layout.describe() for layout in RAW_LAYOUTS.values())
        + ", found none of them"
    )


def _list_frame_images(folder: Path, log: SkipLog) -> dict[int, Path]:
    """Image files of one sequence folder keyed by integer frame number."""
    images: dict[int, Path] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file():
            continue
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not stem.isdigit():
            log.bad("frame name", f"{entry.path}: expected an image named by its frame number "
                                  f"(e.g. 0042{suffix}), found {entry.name!r}")
            continue
        frame = int(stem)
        if frame in images:
            log.bad("duplicate frame", f"{entry.path}: frame {frame} already has image "
                                       f"{images[frame]}")
            continue
        images[frame] = Path(entry.path)
    return images


def _subject_dirs(root: Path, reserved: set[str]) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name not in reserved
                  and not p.name.startswith("."))


def _landmark_folder(root: Path, landmarks: str | os.PathLike | None) -> Path:
    folder = root / LANDMARK_DIR if landmarks is None else Path(landmarks)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"landmark folder not found: {folder} (expected a folder of per-sequence CSV files "
            "frame,x1,y1,...; pass landmarks=PATH / --landmarks PATH)"
        )
    return folder


def _parse_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _au_number(cell: str) -> int | None:
    match = re.fullmatch(r"\s*(?:AU)?0*(\d+)\s*", cell, flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def read_bp4d_labels(path: Path, aus: Sequence[int], log: SkipLog) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One BP4D occurrence CSV: ``(frames [M], labels [M, n], line numbers [M])`` with
    the columns of ``aus`` picked by AU number, or :obj:`None` if the file is skipped."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        log.bad("label file", f"{path}: expected a header row of AU numbers, found an empty file")
        return None
    header = rows[0]
    column_of: dict[int, int] = {}
    for col, cell in enumerate(header[1:], start=1):
        au = _au_number(cell)
        if au is None:
            log.bad("label file", f"{path}, line 1, column {col + 1}: expected an AU number in "
                                  f"the header, found {cell!r}")
            return None
        column_of.setdefault(au, col)
    missing = [au for au in aus if au not in column_of]
    if missing:
        log.bad("label file", f"{path}: expected columns for AU {list(aus)}, AU {missing} missing "
                              f"(header has AU {sorted(column_of)})")
        return None
    columns = [column_of[au] for au in aus]
    frames, labels, lines = [], [], []
    seen: dict[int, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            log.bad("label row", f"{path}, line {line_no}: expected {len(header)} columns like "
                                 f"the header, found {len(row)}")
            continue
        frame = _parse_int(row[0])
        if frame is None:
            log.bad("label row", f"{path}, line {line_no}: expected an integer frame number, "
                                 f"found {row[0]!r}")
            continue
        if frame in seen:
            log.bad("label row", f"{path}, line {line_no}: frame {frame} already labelled on "
                                 f"line {seen[frame]}")
            continue
        values = []
        for au, col in zip(aus, columns):
            value = _parse_int(row[col])
            if value not in LABEL_VALUES:
                log.bad("label value", f"{path}, line {line_no}, AU{au}: expected 0, 1 or "
                                       f"{MISSING_LABEL}, found {row[col]!r}")
                break
            values.append(value)
        else:
            seen[frame] = line_no
            frames.append(frame)
            labels.append(values)
            lines.append(line_no)
    return (np.asarray(frames, dtype=np.int64), np.asarray(labels, dtype=np.int64).reshape(-1, len(aus)),
            np.asarray(lines, dtype=np.int64))


class _TableBuilder:
    """Collects the rows of one reader, checking landmarks and images per frame."""

    def __init__(self, aus: Sequence[int], dataset: str, log: SkipLog):
        self.aus, self.dataset, self.log = tuple(aus), dataset, log
        self.rows: dict[str, list] = {k: [] for k in
                                      ("subject", "sequence", "frame", "image_path", "landmarks",
                                       "labels", "intensity")}

    def add_sequence(self, subject: str, sequence: str, images: dict[int, Path],
                     frames: np.ndarray, labels: np.ndarray, where: list[str],
                     landmark_file: Path, intensity: np.ndarray | None = None) -> None:
        """``where[i]`` names the label source of frame ``i`` for messages."""
        try:
            lm_frames, lm_points = read_landmark_csv(landmark_file)
        except (ValueError, FileNotFoundError) as err:
            self.log.bad("landmark file", f"{err} (sequence {subject}/{sequence} left out)")
            return
        lm_row = {int(f): i for i, f in enumerate(lm_frames)}
        used = set()
        for i, frame in enumerate(frames.tolist()):
            image = images.get(frame)
            if image is None:
                self.log.bad("missing image", f"{where[i]}: frame {frame} is labelled but has no "
                                              f"image in {self._image_dir(images, subject, sequence)}")
                continue
            row = lm_row.get(frame)
            if row is None:
                self.log.bad("missing landmarks", f"{landmark_file}: no row for frame {frame} "
                                                  f"(labelled in {where[i]})")
                continue
            points = lm_points[row]
            try:
                check_landmarks_finite(f"{landmark_file}, frame {frame}", points)
            except BadInputError as err:
                self.log.skip_or_raise(err)
                continue
            used.add(frame)
            r = self.rows
            r["subject"].append(subject)
            r["sequence"].append(sequence)
            r["frame"].append(frame)
            r["image_path"].append(str(image))
            r["landmarks"].append(points)
            r["labels"].append(labels[i])
            if intensity is not None:
                r["intensity"].append(intensity[i])
        unused = len(set(images) - set(frames.tolist()))
        if unused:
            self.log.notes[_UNUSED_IMAGES] += unused

    @staticmethod
    def _image_dir(images: dict[int, Path], subject: str, sequence: str) -> str:
        return str(next(iter(images.values())).parent) if images else f"{subject}/{sequence}"

    def table(self) -> FrameTable:
        r = self.rows
        if not r["frame"]:
            return FrameTable.empty(self.aus, self.dataset)
        return FrameTable(
            aus=self.aus, subject=r["subject"], sequence=r["sequence"], frame=r["frame"],
            image_path=r["image_path"], landmarks=np.stack(r["landmarks"]),
            labels=np.stack(r["labels"]),
            intensity=np.stack(r["intensity"]) if r["intensity"] else None,
            dataset=self.dataset,
        )


def _start(root, skip_bad: bool, log: SkipLog | None) -> tuple[Path, SkipLog]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    return root, (log if log is not None else SkipLog(skip_bad=skip_bad))


def _finish(table: FrameTable, log: SkipLog, own_log: bool, what: str) -> FrameTable:
    if own_log:  # nobody else will report the skips: log them here
        log.log_summary(what)
    if log.notes.get(_UNUSED_IMAGES):
        logger.info("%s: %d images without labels are not used", what, log.notes[_UNUSED_IMAGES])
    return table


def read_bp4d(root: str | os.PathLike, landmarks: str | os.PathLike | None = None,
              aus: Sequence[int] = BP4D_AUS, skip_bad: bool = False,
              log: SkipLog | None = None) -> FrameTable:
    """Read a raw BP4D tree into a :class:`~mgrr_pyg.data.frames.FrameTable`.

    Args:
        root: The BP4D folder (``<root>/<subject>/<task>/<frame>.jpg``,
            ``<root>/AUCoding/AU_OCC/<subject>_<task>.csv``).
        landmarks (optional): Folder of per-sequence landmark CSVs
            ``<subject>_<task>.csv``. (default: ``<root>/Landmarks``)
        aus (optional): AU numbers to read, picked from the CSVs by number (the real
            files hold more AUs than the 12). (default: :data:`mgrr_pyg.facs.BP4D_AUS`)
        skip_bad (bool, optional): Skip bad frames / sequences (counted) instead of
            raising. (default: :obj:`False`)
        log (optional): A :class:`SkipLog` to record into (its ``skip_bad`` wins).

    Returns:
        The labelled frames: sequences in (subject, task) order, the frames of each in
        its label file's row order.
    """
    root, log_ = _start(root, skip_bad, log)
    label_dir = root / BP4D_LABEL_DIR
    if not label_dir.is_dir():
        raise FileNotFoundError(f"BP4D label folder not found: {label_dir} (expected "
                                "AUCoding/AU_OCC/<subject>_<task>.csv)")
    lm_folder = _landmark_folder(root, landmarks)
    label_files: dict[tuple[str, str], Path] = {}
    for path in sorted(label_dir.glob("*.csv")):
        subject, sep, task = path.stem.partition("_")
        if not sep or not subject or not task:
            log_.bad("label file", f"{path}: expected a name <subject>_<task>.csv, found {path.name!r}")
            continue
        label_files[(subject, task)] = path
    reserved = {BP4D_LABEL_DIR.parts[0], LANDMARK_DIR, lm_folder.name if lm_folder.parent == root else ""}
    image_dirs: dict[tuple[str, str], Path] = {}
    for subject_dir in _subject_dirs(root, reserved):
        for task_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            image_dirs[(subject_dir.name, task_dir.name)] = task_dir
    builder = _TableBuilder(aus, "BP4D", log_)
    for key in sorted(set(label_files) | set(image_dirs)):
        subject, task = key
        images = _list_frame_images(image_dirs[key], log_) if key in image_dirs else {}
        if key not in label_files:
            if images:
                log_.bad("sequence without labels",
                         f"{image_dirs[key]}: {len(images)} images but no label file "
                         f"{label_dir / f'{subject}_{task}.csv'}")
            continue
        if not images:
            rows = max(len(label_files[key].read_text().splitlines()) - 1, 0)
            log_.bad("sequence without images",
                     f"{label_files[key]}: labels ({rows} rows) but no images in {root / subject / task}")
            continue
        parsed = read_bp4d_labels(label_files[key], aus, log_)
        if parsed is None:
            continue
        frames, labels, lines = parsed
        where = [f"{label_files[key]}, line {n}" for n in lines.tolist()]
        builder.add_sequence(subject, task, images, frames, labels, where,
                             landmark_csv_path(lm_folder, "BP4D", subject, task))
    return _finish(builder.table(), log_, log is None, f"BP4D {root}")


def read_disfa_intensities(path: Path, log: SkipLog) -> dict[int, int]:
    """One DISFA ``<subject>_au<N>.txt``: 1-based frame -> intensity (0-5); bad lines are
    reported through ``log`` (a skipped line's frame is missing from the result)."""
    result: dict[int, int] = {}
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            parts = [p for p in re.split(r"[,\s]+", text) if p]
            frame = _parse_int(parts[0]) if parts else None
            value = _parse_int(parts[1]) if len(parts) == 2 else None
            if len(parts) != 2 or frame is None or frame < 1:
                log.bad("label row", f"{path}, line {line_no}: expected 'frame,intensity' with "
                                     f"a 1-based frame number, found {text!r}")
                continue
            if value is None or not 0 <= value <= 5:
                log.bad("label value", f"{path}, line {line_no}: expected an intensity 0-5, "
                                       f"found {parts[1]!r}")
                result[frame] = -1  # marks the frame bad for every AU of the subject
                continue
            if frame in result:
                log.bad("label row", f"{path}, line {line_no}: frame {frame} given twice")
                continue
            result[frame] = value
    return result


def read_disfa(root: str | os.PathLike, landmarks: str | os.PathLike | None = None,
               aus: Sequence[int] = DISFA_AUS, threshold: int = DISFA_THRESHOLD,
               skip_bad: bool = False, log: SkipLog | None = None) -> FrameTable:
    """Read a raw DISFA tree into a :class:`~mgrr_pyg.data.frames.FrameTable`.

    Occurrence is ``intensity >= threshold``; the raw intensities are kept in
    :attr:`FrameTable.intensity`. DISFA codes every frame, so no label is
    :data:`~mgrr_pyg.data.frames.MISSING_LABEL`.

    Args:
        root: The DISFA folder (``<root>/<subject>/<i>.png``,
            ``<root>/ActionUnit_Labels/<subject>/<subject>_au<N>.txt``).
        landmarks (optional): Folder of per-subject landmark CSVs ``<subject>.csv``
            keyed by 0-based image index. (default: ``<root>/Landmarks``)
        aus (optional): AU numbers to read. (default: :data:`mgrr_pyg.facs.DISFA_AUS`)
        threshold (int, optional): Occurrence threshold on the 0-5 intensity.
            (default: :obj:`2`, as ME-GraphAU's label script; the paper's "higher than
            two" read literally is :obj:`3`, see docs/protocol.md)
        skip_bad (bool, optional): Skip bad frames / subjects (counted) instead of
            raising. (default: :obj:`False`)
        log (optional): A :class:`SkipLog` to record into.

    Returns:
        The labelled frames; ``frame`` is the 0-based image index (label frame - 1).
    """
    if not isinstance(threshold, (int, np.integer)) or not 1 <= threshold <= 5:
        raise ValueError(f"threshold: expected an integer intensity 1-5, found {threshold!r}")
    root, log_ = _start(root, skip_bad, log)
    label_root = root / DISFA_LABEL_DIR
    if not label_root.is_dir():
        raise FileNotFoundError(f"DISFA label folder not found: {label_root} (expected "
                                "ActionUnit_Labels/<subject>/<subject>_au<N>.txt)")
    lm_folder = _landmark_folder(root, landmarks)
    reserved = {DISFA_LABEL_DIR.name, LANDMARK_DIR, lm_folder.name if lm_folder.parent == root else ""}
    label_dirs = {p.name: p for p in _subject_dirs(label_root, set())}
    image_dirs = {p.name: p for p in _subject_dirs(root, reserved)}
    builder = _TableBuilder(aus, "DISFA", log_)
    for subject in sorted(set(label_dirs) | set(image_dirs)):
        images = _list_frame_images(image_dirs[subject], log_) if subject in image_dirs else {}
        if subject not in label_dirs:
            if images:
                log_.bad("sequence without labels",
                         f"{image_dirs[subject]}: {len(images)} images but no label folder "
                         f"{label_root / subject}")
            continue
        if not images:
            log_.bad("sequence without images",
                     f"{label_dirs[subject]}: labels but no images in {root / subject}")
            continue
        files = [label_dirs[subject] / f"{subject}_au{au}.txt" for au in aus]
        absent = [str(f) for f in files if not f.is_file()]
        if absent:
            log_.bad("label file", f"{label_dirs[subject]}: expected one file per AU "
                                   f"{list(aus)}, missing {absent}")
            continue
        per_au = [read_disfa_intensities(f, log_) for f in files]
        counts = {str(f): len(v) for f, v in zip(files, per_au)}
        if len({frozenset(v) for v in per_au}) != 1:
            log_.bad("label rows", f"{label_dirs[subject]}: the AU files list different frames "
                                   f"(rows per file: {counts}); expected the same frames in each")
            continue
        frames_1 = np.asarray(sorted(per_au[0]), dtype=np.int64)
        intensity = np.asarray([[v[f] for v in per_au] for f in frames_1.tolist()],
                               dtype=np.int64).reshape(-1, len(aus))
        good = (intensity >= 0).all(axis=1)  # rows with a bad value were reported already
        frames_1, intensity = frames_1[good], intensity[good]
        labels = (intensity >= threshold).astype(np.int64)
        where = [f"{label_dirs[subject]}/{subject}_au*.txt frame {f}" for f in frames_1.tolist()]
        builder.add_sequence(subject, subject, images, frames_1 - 1, labels, where,
                             landmark_csv_path(lm_folder, "DISFA", subject, subject),
                             intensity=intensity)
    return _finish(builder.table(), log_, log is None, f"DISFA {root}")


@dataclass(frozen=True)
class RawLayout:
    """A raw layout :func:`detect_layout` recognises and the preparation reads.

    Attributes:
        name: What :func:`detect_layout` returns (``"raw-bp4d"``).
        dataset: The dataset it holds, naming its AU set (:data:`mgrr_pyg.facs.AU_SETS`)
            and its partition (:data:`mgrr_pyg.data.protocol.PARTITION`).
        marker: A folder, relative to the root, that only this layout has.
        reader: ``reader(root, landmarks=..., log=..., **options) -> FrameTable``.
        threshold: The reader takes the occurrence ``threshold`` on intensities.
    """

    name: str
    dataset: str
    marker: Path
    reader: Callable[..., FrameTable]
    threshold: bool = False

    def describe(self) -> str:
        return f"{self.marker}/ (raw {self.dataset})"

    def read(self, root: Path, landmarks: str | os.PathLike | None, log: SkipLog,
             threshold: int = DISFA_THRESHOLD) -> FrameTable:
        options = {"threshold": threshold} if self.threshold else {}
        return self.reader(root, landmarks=landmarks, log=log, **options)


#: The raw layouts, by the name :func:`detect_layout` gives them.
RAW_LAYOUTS: dict[str, RawLayout] = {layout.name: layout for layout in (
    RawLayout("raw-bp4d", "BP4D", BP4D_LABEL_DIR, read_bp4d),
    RawLayout("raw-disfa", "DISFA", DISFA_LABEL_DIR, read_disfa, threshold=True),
)}


__all__ = ["DISFA_THRESHOLD", "IMAGE_SUFFIXES", "RAW_LAYOUTS", "RawLayout", "detect_layout",
           "read_bp4d", "read_bp4d_labels", "read_disfa", "read_disfa_intensities"]

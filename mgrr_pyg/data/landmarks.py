"""Landmark sources for the raw datasets: per-sequence CSV files.

The real releases ship landmarks in MATLAB files, which this package does not read:
the raw readers take landmarks from one CSV per sequence (``frame, x1, y1,
..., xK, yK`` with K = 49, 66 or 68, reduced to the 49-point layout by
:func:`mgrr_pyg.facs.convert_to_49`). Convert other trackers' output to this format
once. The prepared-list format carries its own landmarks (``P_land.txt``, see
:mod:`mgrr_pyg.data.prepared_lists`).

Folder layout (the default folder is ``<root>/Landmarks``):

- BP4D: ``<folder>/<subject>_<task>.csv``
- DISFA: ``<folder>/<subject>.csv``

Frame keys match the image frame numbers (DISFA: the 0-based image index).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from mgrr_pyg.facs import convert_to_49

#: Point counts a landmark CSV may hold (reduced to 49 on reading).
SUPPORTED_POINT_COUNTS = (49, 66, 68)


def landmark_csv_path(folder: str | os.PathLike, dataset: str, subject: str, sequence: str) -> Path:
    """Where the landmark CSV of one sequence lives in a landmark folder."""
    name = f"{subject}.csv" if dataset == "DISFA" else f"{subject}_{sequence}.csv"
    return Path(folder) / name


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_landmark_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one per-sequence landmark CSV.

    The file holds an optional header row (``frame,x1,y1,...``) and one row per frame:
    the frame number, then ``x, y`` for each of 49, 66 or 68 points. An empty cell reads
    as NaN (a tracking failure); callers treat non-finite landmarks as bad frames.

    Args:
        path: The CSV file.

    Returns:
        ``(frames [F] int64, points [F, 49, 2] float64)``, rows in file order.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: on a point count other than 49 / 66 / 68, a row of the wrong length,
            a non-numeric cell or a repeated frame (naming file, line and values).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark file not found: {path}")
    frames: list[int] = []
    rows: list[list[float]] = []
    width = None
    seen: dict[int, int] = {}
    with open(path, newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if width is None:
                width = len(row)
                count, odd = divmod(width - 1, 2)
                if odd or count not in SUPPORTED_POINT_COUNTS:
                    raise ValueError(
                        f"{path}, line {line_no}: expected a frame column and x, y for "
                        f"49, 66 or 68 landmarks (99, 133 or 137 columns), found {width} "
                        f"columns ({(width - 1) / 2:g} points)"
                    )
                if not _is_number(row[0].strip()):
                    continue  # header row
            if len(row) != width:
                raise ValueError(
                    f"{path}, line {line_no}: expected {width} columns like the first row, "
                    f"found {len(row)}"
                )
            try:
                frame_value = float(row[0])
                values = [float(c) if c.strip() else math.nan for c in row[1:]]
            except ValueError as err:
                raise ValueError(f"{path}, line {line_no}: expected numbers, {err}") from None
            if not math.isfinite(frame_value) or frame_value != int(frame_value):
                raise ValueError(
                    f"{path}, line {line_no}: expected an integer frame number in the first "
                    f"column, found {row[0]!r}"
                )
            frame = int(frame_value)
            if frame in seen:
                raise ValueError(
                    f"{path}, line {line_no}: frame {frame} already given on line {seen[frame]}"
                )
            seen[frame] = line_no
            frames.append(frame)
            rows.append(values)
    if width is None:
        raise ValueError(f"{path}: expected landmark rows, found an empty file")
    count = (width - 1) // 2
    points = np.asarray(rows, dtype=np.float64).reshape(len(rows), count, 2)
    return np.asarray(frames, dtype=np.int64), convert_to_49(points, name=str(path))


__all__ = ["SUPPORTED_POINT_COUNTS", "landmark_csv_path", "read_landmark_csv"]

"""The predictor's output table: OpenFace-style columns, one row per face per frame.

=================  ==========================================================================
column             meaning
=================  ==========================================================================
``input``          the file (or ``array`` / ``array[i]`` / ``image[i]``) the frame came from
``frame``          0-based index of the frame in its video (0 for an image)
``timestamp``      seconds from the start of the video (presentation time); 0 for an image,
                   empty for an array sequence
``face``           face index, stable across the frames of a video (tracked by box overlap);
                   numbered left to right in a single image; empty when ``success`` = 0
``success``        1 for a face, 0 for a frame in which no face was found (one such row, so
                   a video's timeline has every sampled frame)
``confidence``     the face finder's score in [0, 1] (cascade: a vote share, see
                   :mod:`mgrr_pyg.predict.faces`; mediapipe: its detector score; 1 for a
                   face the caller gave); 0 when ``success`` = 0
``box_x box_y``    top-left pixel of the face box, pixels of the original frame
``box_w box_h``    its width and height, pixels (it covers ``box_x .. box_x + box_w - 1``)
``AUxx_p``         probability that AU xx occurs, in [0, 1] (not an intensity)
``AUxx_c``         occurrence: 1 when ``AUxx_p`` >= the threshold (default 0.5), else 0
``x_0 .. x_48``    the 49 landmarks the face was aligned with and the AU regions placed
``y_0 .. y_48``    from, pixels of the original frame (0-based, pixel centres at integers)
=================  ==========================================================================

Rows with ``success`` = 0 leave every face column empty (NaN).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from mgrr_pyg.facs import NUM_LANDMARKS

ID_COLUMNS = ("input", "frame", "timestamp", "face", "success", "confidence")
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")


def au_name(au: int) -> str:
    """``AU01`` for 1 (two digits, as OpenFace names them)."""
    return f"AU{int(au):02d}"


def output_columns(aus: Sequence[int]) -> list[str]:
    """Every column, in order."""
    return (list(ID_COLUMNS) + list(BOX_COLUMNS) + [f"{au_name(a)}_p" for a in aus]
            + [f"{au_name(a)}_c" for a in aus] + [f"x_{i}" for i in range(NUM_LANDMARKS)]
            + [f"y_{i}" for i in range(NUM_LANDMARKS)])


def thresholds_for(aus: Sequence[int], threshold: float | Mapping[int, float]) -> np.ndarray:
    """``[n]`` occurrence thresholds: one value for every AU, or a mapping AU -> value
    (AUs not in it: 0.5)."""
    if isinstance(threshold, Mapping):
        unknown = sorted(set(int(a) for a in threshold) - set(int(a) for a in aus))
        if unknown:
            raise ValueError(f"threshold: AUs {unknown} are not predicted by this model "
                             f"(AUs {list(aus)})")
        values = np.array([float(threshold.get(a, 0.5)) for a in aus])
    else:
        values = np.full(len(aus), float(threshold))
    if not ((values >= 0) & (values <= 1)).all():
        raise ValueError(f"threshold: expected probabilities in [0, 1], found {values.tolist()}")
    return values


def table(rows: list[dict], aus: Sequence[int]):
    """A pandas DataFrame of ``rows`` with the columns of :func:`output_columns` and
    their dtypes (``frame``, ``success`` int; ``face`` and ``AUxx_c`` nullable ints)."""
    import pandas as pd

    columns = output_columns(aus)
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame["input"] = frame["input"].astype(object)
    frame["frame"] = frame["frame"].astype("int64")
    frame["success"] = frame["success"].astype("int8")
    frame["face"] = frame["face"].astype("Int64")
    for name in (f"{au_name(a)}_c" for a in aus):
        frame[name] = frame[name].astype("Int8")
    return frame


def face_row(input_name: str, frame: int, timestamp: float, face: int, confidence: float,
             box: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, landmarks: np.ndarray,
             aus: Sequence[int]) -> dict:
    row = {"input": input_name, "frame": int(frame), "timestamp": float(timestamp), "face": int(face),
           "success": 1, "confidence": float(confidence)}
    row.update(zip(BOX_COLUMNS, (float(v) for v in box)))
    names = [au_name(a) for a in aus]
    row.update({f"{n}_p": float(p) for n, p in zip(names, probs)})
    row.update({f"{n}_c": int(p >= t) for n, p, t in zip(names, probs, thresholds)})
    row.update({f"x_{i}": float(v) for i, v in enumerate(landmarks[:, 0])})
    row.update({f"y_{i}": float(v) for i, v in enumerate(landmarks[:, 1])})
    return row


def empty_row(input_name: str, frame: int, timestamp: float) -> dict:
    """The ``success`` = 0 row of a frame without a face (face columns left empty)."""
    return {"input": input_name, "frame": int(frame), "timestamp": float(timestamp), "face": None,
            "success": 0, "confidence": 0.0}


__all__ = ["BOX_COLUMNS", "ID_COLUMNS", "au_name", "empty_row", "face_row", "output_columns",
           "table", "thresholds_for"]

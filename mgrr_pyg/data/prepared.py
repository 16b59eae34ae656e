"""The prepared-list format (JAA-Net's), read and written.

A prefix ``P`` (``BP4D_combine_1_2``, ``BP4D_part3``, ...) names row-aligned text files,
one line per frame:

- ``P_path.txt``: image path relative to the image root (``BP4D/F001/T1/2440.jpg``)
- ``P_land.txt``: 98 floats ``x1 y1 ... x49 y49`` in the aligned 200x200 face (space or tab)
- ``P_biocular.txt``: the *squared* inter-ocular distance
- ``P_AUoccur.txt``: one int per AU, 0 / 1 and 9 = not coded
- ``P_weight.txt``: one line of class weights (training prefixes only)
- ``P_prior.txt``: the AU co-occurrence prior, one row per line (training prefixes
  written by :func:`~mgrr_pyg.data.prepare.prepare_dataset`; not in JAA-Net's lists)

Row counts that differ between the files of one prefix are a hard error naming the
files and their counts (a known source of silent NaNs elsewhere).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from mgrr_pyg.facs import AU_SETS, NUM_LANDMARKS, interocular_distance
from mgrr_pyg.utils.io import atomic_write

from .frames import FrameTable
from .raw import PREPARED_MANIFEST

#: The row-aligned files of a prefix, by suffix.
LIST_SUFFIXES = ("path", "land", "biocular", "AUoccur")
#: Default folder (relative to the prepared root) that listed image paths start from.
IMAGE_ROOT = "images"


def list_file(root: str | os.PathLike, prefix: str, suffix: str) -> Path:
    """``<root>/<prefix>_<suffix>.txt``."""
    return Path(root) / f"{prefix}_{suffix}.txt"


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"prepared-list file not found: {path}")
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"{path}, line {i}: expected one row per frame, found an empty line")
    return lines


def _parse_rows(path: Path, lines: list[str], columns: int, what: str) -> np.ndarray:
    """``[rows, columns]`` floats from whitespace-separated lines, naming the first bad
    line when a row has the wrong count or a non-number."""
    for i, line in enumerate(lines, start=1):
        found = len(line.split())
        if found != columns:
            raise ValueError(f"{path}, line {i}: expected {columns} {what}, found {found}")
    try:  # one C parse of the whole file
        return np.fromstring(" ".join(lines), sep=" ").reshape(len(lines), columns)
    except ValueError:
        pass
    for i, line in enumerate(lines, start=1):
        for c, cell in enumerate(line.split(), start=1):
            try:
                float(cell)
            except ValueError:
                raise ValueError(f"{path}, line {i}, value {c}: expected a number, "
                                 f"found {cell!r}") from None
    raise ValueError(f"{path}: expected {columns} numbers per line, could not parse the file")


def _manifest(root: Path) -> dict:
    path = root / PREPARED_MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: expected a JSON manifest, {err}") from None


def _resolve_au_columns(root: Path, prefix: str, count: int | None, au_columns,
                        occur_file: Path) -> tuple[int, ...]:
    """AU numbers of the ``AUoccur`` columns (``count`` is None for an empty file)."""
    manifest = _manifest(root)
    if au_columns is not None:
        source, aus = "au_columns", tuple(int(a) for a in au_columns)
    elif "aus" in manifest:
        source, aus = f"{root / PREPARED_MANIFEST}", tuple(manifest["aus"])
    else:
        by_name = [AU_SETS[d] for d in AU_SETS if prefix.startswith(d)]
        by_count = [aus for aus in AU_SETS.values() if count is not None and len(aus) == count]
        if by_name:
            source, aus = f"the prefix name {prefix!r}", by_name[0]
        elif len(by_count) == 1:
            source, aus = f"the column count {count}", by_count[0]
        else:
            raise ValueError(
                f"{occur_file}: cannot tell which AUs its {count} columns are (no manifest, the "
                "prefix names no dataset); pass au_columns=(AU numbers in column order)"
            )
    if count is not None and len(aus) != count:
        raise ValueError(f"{occur_file}: expected {len(aus)} columns (AUs {list(aus)} from "
                         f"{source}), found {count}")
    return aus


def resolve_image_root(root: str | os.PathLike, first_path: str | None = None,
                       image_root: str | os.PathLike | None = None) -> Path:
    """The folder listed image paths are relative to: ``image_root`` if given, else the
    manifest's, else ``<root>/images`` when the first listed image is there, else ``root``."""
    root = Path(root)
    if image_root is not None:
        return Path(image_root)
    manifest = _manifest(root)
    if "image_root" in manifest:
        return root / manifest["image_root"]
    candidate = root / IMAGE_ROOT
    if first_path is not None and (candidate / first_path).is_file():
        return candidate
    return root


def read_prepared(root: str | os.PathLike, prefix: str, aus: Sequence[int] | None = None,
                  au_columns: Sequence[int] | None = None,
                  image_root: str | os.PathLike | None = None) -> FrameTable:
    """Read the prepared lists of ``prefix`` into a :class:`FrameTable`.

    Args:
        root: Folder holding ``<prefix>_{path,land,biocular,AUoccur}.txt``.
        prefix: List prefix, e.g. ``"BP4D_part1"``.
        aus (optional): AU numbers to keep, in this order (ValueError naming missing AUs).
            (default: every column)
        au_columns (optional): AU numbers of the ``AUoccur`` columns. (default: from
            ``prepare.json``, else the dataset named by the prefix, else the column count)
        image_root (optional): Folder the listed paths are relative to.
            (default: :func:`resolve_image_root`)

    Returns:
        The frames with landmarks in aligned-face pixels, ``biocular`` set, and
        subject / sequence / frame parsed from the paths (``BP4D/F001/T1/2440.jpg``).

    Raises:
        ValueError: row counts differing between the files (naming files and counts),
            malformed rows, non-finite landmarks, labels outside {0, 1, 9}, a
            non-positive biocular distance (naming file and line).
    """
    root = Path(root)
    files = {s: list_file(root, prefix, s) for s in LIST_SUFFIXES}
    lines = {s: _read_lines(files[s]) for s in LIST_SUFFIXES}
    counts = {s: len(v) for s, v in lines.items()}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{files[s].name}: {counts[s]} rows" for s in LIST_SUFFIXES)
        raise ValueError(f"prefix {prefix!r} in {root}: row counts differ between its files "
                         f"({detail}); expected one row per frame in each")
    n = counts["path"]

    land = _parse_rows(files["land"], lines["land"], 2 * NUM_LANDMARKS, "landmark coordinates")
    _check_finite(files["land"], land, "finite landmark coordinates")
    biocular = _parse_rows(files["biocular"], lines["biocular"], 1, "value").reshape(n)
    bad = np.flatnonzero(~(np.isfinite(biocular) & (biocular > 0)))
    if bad.size:
        raise ValueError(f"{files['biocular']}, line {bad[0] + 1}: expected a positive squared "
                         f"inter-ocular distance, found {lines['biocular'][bad[0]].strip()!r}")
    count = len(lines["AUoccur"][0].split()) if n else None
    column_aus = _resolve_au_columns(root, prefix, count, au_columns, files["AUoccur"])
    labels = _parse_rows(files["AUoccur"], lines["AUoccur"], len(column_aus), "AU labels")
    bad_rows, bad_cols = np.nonzero(~np.isin(labels, (0, 1, 9)))
    if bad_rows.size:
        r, c = bad_rows[0], bad_cols[0]
        raise ValueError(f"{files['AUoccur']}, line {r + 1}, AU{column_aus[c]}: expected 0, 1 or 9, "
                         f"found {lines['AUoccur'][r].split()[c]!r}")

    paths = [line.strip() for line in lines["path"]]
    img_root = resolve_image_root(root, paths[0] if paths else None, image_root)
    subject, sequence, frame = zip(*(_parse_path(p) for p in paths)) if paths else ((), (), ())
    table = FrameTable(
        aus=column_aus, subject=list(subject), sequence=list(sequence), frame=list(frame),
        image_path=[os.path.join(img_root, p) for p in paths], landmarks=land,
        labels=labels.astype(np.int64), biocular=biocular,
        dataset=next((d for d in AU_SETS if prefix.startswith(d)), None),
    )
    return table if aus is None else table.select_aus(aus, source=str(files["AUoccur"]))


def _check_finite(path: Path, values: np.ndarray, expected: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}, line {bad[0] + 1}: expected {expected}, found NaN or inf")


def _parse_path(path: str) -> tuple[str, str, int]:
    """Subject, sequence and frame from ``[DATASET/]subject[/sequence]/frame.ext``
    (frame -1 when the file name is not a number). Plain string work: this runs once
    per listed frame."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if parts and parts[0] in AU_SETS:
        parts = parts[1:]
    stem = os.path.splitext(parts[-1])[0] if parts else ""
    frame = int(stem) if stem.isdigit() else -1
    if len(parts) >= 3:
        return parts[-3], parts[-2], frame
    if len(parts) == 2:
        return parts[0], parts[0], frame
    return "", "", frame


def _write_rows(path: Path, rows: Sequence[str]) -> None:
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(row)
            handle.write("\n")


def _format_matrix(values: np.ndarray, fmt: str) -> list[str]:
    return [" ".join(fmt % v for v in row) for row in np.asarray(values).tolist()]


def write_prepared(table: FrameTable, root: str | os.PathLike, prefix: str,
                   image_root: str | os.PathLike | None = None,
                   weights: Sequence[float] | None = None,
                   prior: np.ndarray | None = None) -> dict[str, Path]:
    """Write ``table`` as the prepared lists of ``prefix`` (each file atomically).

    Args:
        table: Frames whose ``image_path`` lies under ``image_root`` and whose landmarks
            are in aligned-face pixels. ``biocular`` is computed from the landmarks when
            the table has none.
        root: Output folder.
        prefix: List prefix.
        image_root (optional): Folder the written paths are relative to.
            (default: ``<root>/images``)
        weights (optional): Class weights, written as ``<prefix>_weight.txt``.
        prior (optional): ``[n, n]`` co-occurrence prior, written as ``<prefix>_prior.txt``.

    Returns:
        Suffix -> written file.
    """
    root = Path(root)
    image_root = Path(image_root) if image_root is not None else root / IMAGE_ROOT
    biocular = table.biocular if table.biocular is not None \
        else interocular_distance(table.landmarks) ** 2
    relative = [Path(os.path.relpath(p, image_root)).as_posix() for p in table.image_path.tolist()]
    content = {
        "path": relative,
        "land": _format_matrix(table.landmarks.reshape(len(table), 2 * NUM_LANDMARKS), "%.4f"),
        "biocular": ["%.4f" % b for b in np.asarray(biocular).tolist()],
        "AUoccur": _format_matrix(table.labels, "%d"),
    }
    if weights is not None:
        content["weight"] = _format_matrix(np.asarray(weights, dtype=np.float64)[None], "%.6f")
    if prior is not None:
        content["prior"] = _format_matrix(np.asarray(prior, dtype=np.float64), "%.6f")
    written = {}
    for suffix, rows in content.items():
        written[suffix] = list_file(root, prefix, suffix)
        _write_rows(written[suffix], rows)
    return written


def read_class_weights(root: str | os.PathLike, prefix: str) -> np.ndarray:
    """``<prefix>_weight.txt`` as an ``[n]`` array (FileNotFoundError if absent)."""
    path = list_file(root, prefix, "weight")
    lines = _read_lines(path)
    if len(lines) != 1:
        raise ValueError(f"{path}: expected one line of class weights, found {len(lines)}")
    return _parse_rows(path, lines, len(lines[0].split()), "weights")[0]


def read_prior(root: str | os.PathLike, prefix: str) -> np.ndarray:
    """``<prefix>_prior.txt`` as an ``[n, n]`` array (FileNotFoundError if absent)."""
    path = list_file(root, prefix, "prior")
    lines = _read_lines(path)
    prior = _parse_rows(path, lines, len(lines), "values (a square matrix)")
    _check_finite(path, prior, "finite prior values")
    return prior


__all__ = ["IMAGE_ROOT", "LIST_SUFFIXES", "list_file", "read_class_weights", "read_prepared",
           "read_prior", "resolve_image_root", "write_prepared"]

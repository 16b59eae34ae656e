"""The prepared-list format (JAA-Net's), read and written, and the manifest's name.

A prefix ``P`` (``BP4D_combine_1_2``, ``BP4D_part3``, ...) names row-aligned text files,
one line per frame:

- ``P_path.txt``: image path relative to the image root (``BP4D/F001/T1/2440.jpg``)
- ``P_land.txt``: 98 floats ``x1 y1 ... x49 y49`` in the aligned 200x200 face (space or tab)
- ``P_biocular.txt``: the *squared* inter-ocular distance
- ``P_AUoccur.txt``: one int per AU, 0 / 1 and 9 = not coded
  (:data:`~mgrr_pyg.data.frames.MISSING_LABEL`)
- ``P_weight.txt``: one line of class weights (training prefixes only)
- ``P_prior.txt``: the AU co-occurrence prior, one row per line (training prefixes
  written by :func:`~mgrr_pyg.data.preparation.prepare_dataset`; not in JAA-Net's lists)

Row counts that differ between the files of one prefix are a hard error naming the
files and their counts (a known source of silent NaNs elsewhere). With
``check_images=True`` every listed image is looked for (one ``stat`` each) and any
that is missing, a folder or empty is a :class:`MissingImagesError` naming the list
file, the rows and the paths looked for.

A folder written by :func:`~mgrr_pyg.data.preparation.prepare_dataset` also holds its
manifest :data:`PREPARED_MANIFEST`, from which the reader takes the AU columns and the
image folder when it is there (lists made elsewhere, e.g. JAA-Net's, have none).
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Sequence

import numpy as np

from mgrr_pyg.facs import AU_SETS, NUM_LANDMARKS, interocular_distance
from mgrr_pyg.utils.io import atomic_write

from .frames import LABEL_VALUES, MISSING_LABEL, FrameTable

#: The manifest a preparation writes last into its folder (``prepare.json``): its
#: presence marks a finished preparation and a folder of prepared lists.
PREPARED_MANIFEST = "prepare.json"

#: The row-aligned files of a prefix, by suffix.
LIST_SUFFIXES = ("path", "land", "biocular", "AUoccur")
#: Default folder (relative to the prepared root) that listed image paths start from.
IMAGE_ROOT = "images"


class MissingImagesError(FileNotFoundError):
    """Listed images that are not there, are folders or are empty files.

    The facts are attributes, so a caller (the training command) can replace the
    closing ``hint`` with advice in its own terms (:meth:`with_hint`).

    Attributes:
        list_path: The ``P_path.txt`` file.
        problems: ``(line, path looked for, what was found)`` of each bad row, 1-based lines.
        total: Rows in the list.
        image_root: The folder the listed paths were taken relative to, and
        image_root_source: why that folder.
        hint: What to do (default: the :func:`read_prepared` keyword).
    """

    SHOWN = 5

    def __init__(self, list_path, problems, total, image_root, image_root_source, hint=None):
        self.list_path = Path(list_path)
        self.problems = list(problems)
        self.total = int(total)
        self.image_root = Path(image_root)
        self.image_root_source = image_root_source
        self.hint = hint or ("pass image_root= (the folder the listed paths are relative to) "
                             "or put the images there")
        super().__init__(self.message())

    def message(self) -> str:
        line, path, found = self.problems[0]
        count = len(self.problems)
        if count == self.total > 1:
            text = (f"{self.list_path}, line {line}: expected an image file at {path}, found "
                    f"{found}; none of the {self.total} listed images is there, so the image "
                    "folder is probably the wrong one")
        else:
            text = (f"{self.list_path}, line {line}: expected an image file at {path}, found "
                    f"{found}; {count} of the {self.total} listed images are missing or empty")
            if count > 1:
                shown = [f"line {n}: {self._relative(p)} ({f})" for n, p, f in self.problems[1:self.SHOWN]]
                more = count - 1 - len(shown)
                text += " (also " + "; ".join(shown) + (f"; and {more} more" if more else "") + ")"
        return (f"{text}. The listed paths are relative to {self.image_root} "
                f"({self.image_root_source}); {self.hint}")

    def _relative(self, path: str) -> str:
        root = str(self.image_root)
        return os.path.relpath(path, root) if path.startswith(root) else path

    def __str__(self) -> str:
        return self.message()

    def with_hint(self, hint: str) -> "MissingImagesError":
        """The same facts with another closing hint."""
        return MissingImagesError(self.list_path, self.problems, self.total, self.image_root,
                                  self.image_root_source, hint)


def find_missing_images(paths: Sequence[str]) -> list[tuple[int, str, str]]:
    """``(1-based row, path, what was found)`` of each path that is not a non-empty
    file: ``"nothing"``, ``"a folder"``, ``"an empty file"``... One ``stat`` per path,
    no image is opened (about 20 us a path with a warm file cache on a busy 2-core
    machine: a couple of seconds for the ~100k frames of a BP4D training list)."""
    problems = []
    for row, path in enumerate(paths, start=1):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            problems.append((row, path, "nothing"))
            continue
        except NotADirectoryError:
            problems.append((row, path, "nothing (a parent folder is a file)"))
            continue
        except OSError as err:
            problems.append((row, path, f"a path that cannot be read ({err.strerror or err})"))
            continue
        if stat.S_ISDIR(info.st_mode):
            problems.append((row, path, "a folder"))
        elif not stat.S_ISREG(info.st_mode):
            problems.append((row, path, "something that is not a regular file"))
        elif info.st_size == 0:
            problems.append((row, path, "an empty file (0 bytes)"))
    return problems


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
    return _image_root_and_source(root, first_path, image_root)[0]


def _image_root_and_source(root, first_path, image_root) -> tuple[Path, str]:
    """:func:`resolve_image_root` and why that folder (for error messages)."""
    root = Path(root)
    if image_root is not None:
        return Path(image_root), "the image folder given"
    manifest = _manifest(root)
    if "image_root" in manifest:
        return root / manifest["image_root"], f"named by {root / PREPARED_MANIFEST}"
    candidate = root / IMAGE_ROOT
    if first_path is not None and (candidate / first_path).is_file():
        return candidate, f"{candidate} holds the first listed image"
    return root, (f"the lists' own folder: there is no {PREPARED_MANIFEST} naming an image folder "
                  f"and no {candidate / (first_path or '')}")


def read_prepared(root: str | os.PathLike, prefix: str, aus: Sequence[int] | None = None,
                  au_columns: Sequence[int] | None = None,
                  image_root: str | os.PathLike | None = None,
                  check_images: bool = False) -> FrameTable:
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
        check_images (bool): Look for every listed image (one ``stat`` each).
            (default: :obj:`False`)

    Returns:
        The frames with landmarks in aligned-face pixels, ``biocular`` set, and
        subject / sequence / frame parsed from the paths (``BP4D/F001/T1/2440.jpg``).

    Raises:
        ValueError: row counts differing between the files (naming files and counts),
            malformed rows, non-finite landmarks, labels outside {0, 1, 9}
            (:data:`~mgrr_pyg.data.frames.LABEL_VALUES`), a
            non-positive biocular distance (naming file and line).
        MissingImagesError: with ``check_images``, listed images that are missing,
            folders or empty (naming the list file, the lines and the paths).
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
    bad_rows, bad_cols = np.nonzero(~np.isin(labels, LABEL_VALUES))
    if bad_rows.size:
        r, c = bad_rows[0], bad_cols[0]
        raise ValueError(f"{files['AUoccur']}, line {r + 1}, AU{column_aus[c]}: expected 0, 1 or "
                         f"{MISSING_LABEL}, found {lines['AUoccur'][r].split()[c]!r}")

    paths = [line.strip() for line in lines["path"]]
    img_root, img_root_source = _image_root_and_source(root, paths[0] if paths else None, image_root)
    image_paths = [os.path.join(img_root, p) for p in paths]
    if check_images:
        problems = find_missing_images(image_paths)
        if problems:
            raise MissingImagesError(files["path"], problems, n, img_root, img_root_source)
    subject, sequence, frame = zip(*(_parse_path(p) for p in paths)) if paths else ((), (), ())
    table = FrameTable(
        aus=column_aus, subject=list(subject), sequence=list(sequence), frame=list(frame),
        image_path=image_paths, landmarks=land,
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


__all__ = ["IMAGE_ROOT", "LIST_SUFFIXES", "PREPARED_MANIFEST", "MissingImagesError",
           "find_missing_images", "list_file", "read_class_weights", "read_prepared",
           "read_prior", "resolve_image_root", "write_prepared"]

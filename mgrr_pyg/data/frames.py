"""The uniform frame table every reader returns.

Whatever the source (raw BP4D, raw DISFA, prepared lists), a reader returns one
:class:`FrameTable`: row-aligned arrays of subject, sequence, frame number, image path,
49 landmarks and occurrence labels whose columns are keyed by AU number
(:attr:`FrameTable.aus`), so a BP4D-trained model can be scored on DISFA's shared AUs
with ``table.select_aus(...)``. A label is 0, 1 or :data:`MISSING_LABEL` (not coded).

What the readers do with a bad frame (raise, or skip and count) is in
:mod:`mgrr_pyg.data.bad_input`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from mgrr_pyg.facs import NUM_LANDMARKS

# Re-exported for code that imported them from here before the bad-input policy had its
# own module; import them from mgrr_pyg.data.bad_input (or mgrr_pyg.data).
from .bad_input import BadInputError, SkipLog  # noqa: F401

#: The label of an AU that was not coded (BP4D's and JAA-Net's lists' convention, kept
#: everywhere: readers, prepared lists, class weights, priors, metrics). Such an entry
#: is left out, never counted as absent.
MISSING_LABEL = 9
#: The values an occurrence label may take: absent, present, not coded.
LABEL_VALUES = (0, 1, MISSING_LABEL)


@dataclass(frozen=True)
class FrameRecord:
    """One row of a :class:`FrameTable` (``table[i]``)."""

    subject: str
    sequence: str
    frame: int
    image_path: str
    landmarks: np.ndarray  # [49, 2]
    labels: dict[int, int]  # AU number -> 0 / 1 / MISSING_LABEL (9)
    intensity: dict[int, int] | None = None  # AU number -> 0..5 (DISFA)

    @property
    def mask(self) -> dict[int, bool]:
        """AU number -> True when the AU is coded."""
        return {au: value != MISSING_LABEL for au, value in self.labels.items()}


@dataclass
class FrameTable:
    """Row-aligned arrays describing ``N`` labelled frames.

    Args:
        aus: AU numbers of the label columns, in column order.
        subject, sequence: ``[N]`` strings (DISFA's sequence is the subject).
        frame: ``[N]`` int frame numbers (the image's number; DISFA: 0-based image index).
        image_path: ``[N]`` strings, the image files.
        landmarks: ``[N, 49, 2]`` float points in the image's pixel coordinates.
        labels: ``[N, n]`` int occurrence labels, 0 / 1 and 9 = not coded.
        intensity: ``[N, n]`` int raw intensities (DISFA) or :obj:`None`.
        biocular: ``[N]`` squared inter-ocular distances (prepared lists) or :obj:`None`.
        dataset: ``"BP4D"`` / ``"DISFA"`` or :obj:`None`.
    """

    aus: tuple[int, ...]
    subject: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    image_path: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    intensity: np.ndarray | None = None
    biocular: np.ndarray | None = None
    dataset: str | None = None

    def __post_init__(self) -> None:
        self.aus = tuple(int(a) for a in self.aus)
        # Fixed-width string arrays are one buffer each: cheap to fork into loader workers.
        self.subject = np.asarray(self.subject, dtype=str)
        self.sequence = np.asarray(self.sequence, dtype=str)
        self.image_path = np.asarray(self.image_path, dtype=str)
        self.frame = np.asarray(self.frame, dtype=np.int64)
        n, k = len(self.frame), len(self.aus)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(n, NUM_LANDMARKS, 2)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(n, k)
        if self.intensity is not None:
            self.intensity = np.asarray(self.intensity, dtype=np.int64).reshape(n, k)
        if self.biocular is not None:
            self.biocular = np.asarray(self.biocular, dtype=np.float64).reshape(n)
        for name in ("subject", "sequence", "image_path"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"FrameTable.{name}: expected {n} rows (one per frame), "
                    f"found {len(getattr(self, name))}"
                )

    @classmethod
    def empty(cls, aus: Sequence[int], dataset: str | None = None) -> "FrameTable":
        n = len(aus)
        return cls(aus, [], [], np.zeros(0), [], np.zeros((0, NUM_LANDMARKS, 2)),
                   np.zeros((0, n)), dataset=dataset)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def mask(self) -> np.ndarray:
        """``[N, n]`` bool, True where the AU is coded."""
        return self.labels != MISSING_LABEL

    def __getitem__(self, i: int) -> FrameRecord:
        i = int(i)
        return FrameRecord(
            subject=str(self.subject[i]),
            sequence=str(self.sequence[i]),
            frame=int(self.frame[i]),
            image_path=str(self.image_path[i]),
            landmarks=self.landmarks[i],
            labels={au: int(v) for au, v in zip(self.aus, self.labels[i])},
            intensity=None if self.intensity is None
            else {au: int(v) for au, v in zip(self.aus, self.intensity[i])},
        )

    def take(self, rows: Iterable[int] | np.ndarray) -> "FrameTable":
        """The table restricted to ``rows`` (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64)
        opt = lambda a: None if a is None else a[rows]  # noqa: E731
        return replace(
            self, subject=self.subject[rows], sequence=self.sequence[rows],
            frame=self.frame[rows], image_path=self.image_path[rows],
            landmarks=self.landmarks[rows], labels=self.labels[rows],
            intensity=opt(self.intensity), biocular=opt(self.biocular),
        )

    def select_aus(self, aus: Sequence[int], source: str = "the frame table") -> "FrameTable":
        """Label columns picked and ordered by AU number (ValueError naming missing AUs)."""
        columns = au_columns(self.aus, aus, source)
        return replace(
            self, aus=tuple(int(a) for a in aus), labels=self.labels[:, columns],
            intensity=None if self.intensity is None else self.intensity[:, columns],
        )

    @staticmethod
    def concat(tables: Sequence["FrameTable"]) -> "FrameTable":
        """Rows of ``tables`` one after another (they must share the AU columns)."""
        if not tables:
            raise ValueError("FrameTable.concat: expected at least one table, found none")
        first = tables[0]
        for t in tables[1:]:
            if t.aus != first.aus:
                raise ValueError(
                    f"FrameTable.concat: AU columns differ, {first.aus} vs {t.aus}"
                )

        def cat(name):
            parts = [getattr(t, name) for t in tables]
            return None if any(p is None for p in parts) else np.concatenate(parts)

        return FrameTable(
            aus=first.aus, subject=cat("subject"), sequence=cat("sequence"),
            frame=cat("frame"), image_path=cat("image_path"), landmarks=cat("landmarks"),
            labels=cat("labels"), intensity=cat("intensity"), biocular=cat("biocular"),
            dataset=first.dataset,
        )

    def __repr__(self) -> str:
        subjects = len(set(self.subject.tolist()))
        return (f"FrameTable({self.dataset or '?'}, {len(self)} frames, {subjects} subjects, "
                f"AUs {list(self.aus)})")


def au_columns(available: Sequence[int], wanted: Sequence[int], source: str) -> list[int]:
    """Column indices of AU numbers ``wanted`` among ``available`` (ValueError naming
    the missing AUs and ``source``)."""
    available = [int(a) for a in available]
    missing = [int(a) for a in wanted if int(a) not in available]
    if missing:
        raise ValueError(
            f"aus: AU {missing} not in {source}; it has AUs {available}"
        )
    if len(set(int(a) for a in wanted)) != len(wanted):
        raise ValueError(f"aus: expected distinct AU numbers, found {list(wanted)}")
    return [available.index(int(a)) for a in wanted]


__all__ = ["LABEL_VALUES", "MISSING_LABEL", "FrameRecord", "FrameTable", "au_columns"]

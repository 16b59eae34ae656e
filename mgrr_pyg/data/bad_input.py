"""What counts as a bad frame, and what happens to one: raise, or skip and count.

Every reader and the preparation send bad input (an unreadable image, a label outside
{0, 1, 9}, NaN landmarks, ...) through one :class:`SkipLog`: by default it raises a
:class:`BadInputError` naming the file, the row and what was expected and found; with
``skip_bad=True`` the frame (or sequence) is left out and counted by reason, and the
counts are logged and recorded in the preparation manifest, so nothing is ever dropped
silently.

The checks on a frame's landmarks are here (:func:`check_landmarks_finite`, run by the
raw readers; :func:`check_landmarks_inside`, run by the preparation once the image size
is known). The other checks belong to the file they read: a reader's own parsing (label
values, file names, a labelled frame without an image or landmark row) is in
:mod:`~mgrr_pyg.data.raw` and :mod:`~mgrr_pyg.data.prepared_lists`, the image decode in
:mod:`~mgrr_pyg.data.images`, the alignment in :mod:`~mgrr_pyg.data.preparation`; all
of them raise or report a :class:`BadInputError`.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

#: How many example messages :class:`SkipLog` keeps per reason (counts are always exact).
MAX_EXAMPLES_PER_REASON = 20


class BadInputError(ValueError):
    """A bad frame, sequence or file. ``reason`` is a short key (``"unreadable image"``,
    ``"label value"``, ...) under which ``skip_bad=True`` counts what it skipped."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # keep ``reason`` across process boundaries
        return (type(self), (self.reason, str(self)))


@dataclass
class SkipLog:
    """Raise on bad input, or (``skip_bad=True``) count and remember what was skipped.

    Args:
        skip_bad (bool, optional): Skip bad frames / sequences instead of raising.
            (default: :obj:`False`)
    """

    skip_bad: bool = False
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: Counts of things that are not errors but worth reporting (e.g. unlabelled images).
    notes: Counter = field(default_factory=Counter)

    def bad(self, reason: str, message: str) -> None:
        """Report one bad item: raises :class:`BadInputError` unless skipping."""
        self.skip_or_raise(BadInputError(reason, message))

    def skip_or_raise(self, error: BadInputError) -> None:
        """Raise ``error`` unless skipping; when skipping, count it under its reason."""
        if not self.skip_bad:
            raise error
        self.record(error.reason, str(error))

    def record(self, reason: str, message: str, count: int = 1) -> None:
        self.counts[reason] += count
        kept = self.examples.setdefault(reason, [])
        if len(kept) < MAX_EXAMPLES_PER_REASON:
            kept.append(message)

    def merge(self, other: "SkipLog") -> None:
        for reason, count in other.counts.items():
            self.counts[reason] += count
            kept = self.examples.setdefault(reason, [])
            room = MAX_EXAMPLES_PER_REASON - len(kept)
            kept.extend(other.examples.get(reason, [])[:max(room, 0)])
        self.notes.update(other.notes)

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def summary(self) -> dict:
        """``{"total": n, "by_reason": {reason: count}, "examples": {reason: [...]},
        "notes": {note: count}}`` with reasons sorted, for the manifest."""
        reasons = sorted(self.counts)
        return {
            "total": self.total,
            "by_reason": {r: int(self.counts[r]) for r in reasons},
            "examples": {r: list(self.examples.get(r, [])) for r in reasons},
            "notes": {k: int(v) for k, v in sorted(self.notes.items())},
        }

    def log_summary(self, what: str = "input") -> None:
        """Log the skip counts (WARNING) so that a skip is never silent."""
        if not self.total:
            return
        by_reason = ", ".join(f"{r}: {self.counts[r]}" for r in sorted(self.counts))
        logger.warning("skipped %d bad %s item(s) (frames, or whole sequences / files where "
                       "the message says so): %s", self.total, what, by_reason)
        for reason in sorted(self.examples):
            for message in self.examples[reason][:3]:
                logger.warning("  e.g. [%s] %s", reason, message)


def check_landmarks_finite(where: str, points: np.ndarray) -> None:
    """``points [49, 2]`` must be finite (a tracker writes NaN, or an empty CSV cell,
    where it lost the face): :class:`BadInputError` ``"landmarks not finite"`` naming
    ``where`` and the point indices."""
    if np.isfinite(points).all():
        return
    bad_points = sorted(set(np.flatnonzero(~np.isfinite(points).all(-1)).tolist()))
    raise BadInputError("landmarks not finite",
                        f"{where}: expected finite coordinates, found NaN/inf at 49-point "
                        f"indices {bad_points}")


def check_landmarks_inside(where: str, points: np.ndarray, size: tuple[int, int]) -> None:
    """``points [49, 2]`` must lie in the ``(width, height)`` image (pixel centres at
    integer positions, so the image spans -0.5 .. size - 0.5): :class:`BadInputError`
    ``"landmarks outside image"`` naming ``where`` and the first point outside."""
    width, height = size
    outside = ((points[:, 0] < -0.5) | (points[:, 0] > width - 0.5)
               | (points[:, 1] < -0.5) | (points[:, 1] > height - 0.5))
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise BadInputError(
            "landmarks outside image",
            f"{where}: expected landmarks inside the {width}x{height} image, found "
            f"{int(outside.sum())} outside (e.g. point {first} at "
            f"({points[first, 0]:.1f}, {points[first, 1]:.1f}))",
        )


__all__ = ["MAX_EXAMPLES_PER_REASON", "BadInputError", "SkipLog", "check_landmarks_finite",
           "check_landmarks_inside"]

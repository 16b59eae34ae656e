"""Face geometry shared by the model, the data tools and the plots.

This module is the one place that knows the AU sets, the 49-point landmark layout,
the horizontal-flip permutation, the eye centres / inter-ocular distance, the
alignment template and JAA-Net's rule that places two centres per AU from the
landmarks. Every function accepts NumPy arrays or torch tensors and returns the
same kind, so the data pipeline (NumPy) and the model (torch) share one
implementation.

Coordinates are 0-based pixels with pixel centres at integer positions, x to the
right and y downwards (so a negative y offset moves a point *up* the face).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
AU_SETS: dict[str, tuple[int, ...]] = {"BP4D": BP4D_AUS, "DISFA": DISFA_AUS}
ALL_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)

NUM_LANDMARKS = 49
ALIGNED_SIZE = 200  # side of the aligned face
CROP_SIZE = 176  # side of the training / test crop
CENTRE_CROP_OFFSET = (ALIGNED_SIZE - CROP_SIZE) // 2  # 12

# Named points of the 49-point layout (0-based).
LEFT_EYE = tuple(range(19, 25))  # first eye: 19 outer corner ... 22 inner corner
RIGHT_EYE = tuple(range(25, 31))  # second eye: 25 inner corner ... 28 outer corner
INNER_EYE_CORNERS = (22, 25)
NOSE_POINT = 13
MOUTH_CORNERS = (31, 37)

# JAA-Net's published flip permutation (``reflect_49.txt``, 1-based; docs/protocol.md) minus
# one: after mirroring x, point i of the flipped face is point FLIP_PERMUTATION[i] of the
# original face.
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    p - 1
    for p in (
        10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 11, 12, 13, 14, 19, 18, 17, 16, 15,
        29, 28, 27, 26, 31, 30, 23, 22, 21, 20, 25, 24,
        38, 37, 36, 35, 34, 33, 32, 43, 42, 41, 40, 39, 46, 45, 44, 49, 48, 47,
    )
)

# Canonical positions of the five alignment points in the 200x200 aligned face: the
# means over the 11 published aligned BP4D / DISFA faces of JAA-Net's example lists
# (tests/data/reference_landmarks.json; docs/protocol.md).
CANONICAL_TEMPLATE: dict[str, tuple[float, float]] = {
    "left_eye_centre": (65.9, 65.6),
    "right_eye_centre": (133.1, 65.6),
    "nose": (102.3, 104.0),
    "left_mouth_corner": (68.3, 132.2),
    "right_mouth_corner": (129.5, 133.3),
}
TEMPLATE_POINTS = np.array(list(CANONICAL_TEMPLATE.values()), dtype=np.float64)  # [5, 2]

#: The mean 49-point shape in the 200x200 aligned face: the mean of the same 11 aligned
#: faces as :data:`CANONICAL_TEMPLATE` (``tests/data/reference_landmarks.json``) made
#: left-right symmetric about x = 99.5 (brows, nose, eyes). Its mouth is open and smiling
#: (7 of the 11 faces smile); the synthetic faces rebuild a neutral mouth
#: (:func:`mgrr_pyg.data.synthetic.geometry.neutral_mouth`), the predictor's box template
#: places the whole shape into a face box.
MEAN_SHAPE = np.array([
    [40.3, 45.5], [50.3, 39.6], [61.9, 39.2], [73.1, 42.0], [83.6, 46.6],
    [115.4, 46.6], [125.9, 42.0], [137.1, 39.2], [148.7, 39.6], [158.7, 45.5],
    [99.5, 61.4], [99.5, 75.7], [99.5, 89.7], [99.5, 104.0],
    [84.6, 110.6], [92.0, 111.9], [99.5, 113.0], [107.0, 111.9], [114.4, 110.6],
    [52.7, 65.0], [61.4, 60.5], [71.3, 61.0], [78.9, 67.4], [70.2, 69.9], [61.0, 69.7],
    [120.1, 67.4], [127.7, 61.0], [137.6, 60.5], [146.3, 65.0], [138.0, 69.7], [128.8, 69.9],
    [68.9, 132.7], [77.4, 126.5], [88.2, 123.4], [99.5, 124.1], [110.8, 123.4],
    [121.6, 126.5], [130.1, 132.7], [123.0, 144.2], [112.3, 151.1], [99.5, 153.1],
    [86.7, 151.1], [76.0, 144.2], [86.3, 131.5], [99.5, 132.4], [112.7, 131.5],
    [112.8, 137.5], [99.5, 139.5], [86.2, 137.5],
], dtype=np.float64)  # [49, 2]


@dataclass(frozen=True)
class AUCentreRule:
    """Two landmarks whose positions, shifted vertically by ``offset_rulers`` times the
    ruler (the horizontal distance between the inner eye corners), give an AU's two
    centres (JAA-Net's rule)."""

    landmarks: tuple[int, int]
    offset_rulers: float

    def __post_init__(self) -> None:
        if len(self.landmarks) != 2:
            raise ValueError(
                f"AUCentreRule.landmarks: expected two landmark indices, found {self.landmarks!r}"
            )
        for index in self.landmarks:
            if not 0 <= int(index) < NUM_LANDMARKS:
                raise ValueError(
                    f"AUCentreRule.landmarks: expected indices in 0..{NUM_LANDMARKS - 1} "
                    f"(49-point layout), found {index}"
                )


AU_CENTRE_RULES: dict[int, AUCentreRule] = {
    1: AUCentreRule((4, 5), -1 / 2),
    2: AUCentreRule((1, 8), -1 / 3),
    4: AUCentreRule((2, 7), 1 / 3),
    6: AUCentreRule((24, 29), 1.0),
    7: AUCentreRule((21, 26), 0.0),
    9: AUCentreRule((15, 17), -1 / 2),
    10: AUCentreRule((43, 45), 0.0),
    12: AUCentreRule((31, 37), 0.0),
    14: AUCentreRule((31, 37), 0.0),
    15: AUCentreRule((31, 37), 0.0),
    17: AUCentreRule((39, 41), 1 / 2),
    23: AUCentreRule((34, 40), 0.0),
    24: AUCentreRule((34, 40), 0.0),
    25: AUCentreRule((34, 40), 0.0),
    26: AUCentreRule((39, 41), 1 / 2),
}


#: How far (pixels) a landmark may lie outside the crop before :func:`check_landmarks`
#: treats it as a coordinate-system mistake: one AU box half-size (3 cells of 4 pixels).
LANDMARK_TOLERANCE = 12.0


def check_landmarks(landmarks, name: str = "landmarks", *,
                    counts: Sequence[int] = (NUM_LANDMARKS,), batched: bool = False,
                    crop_size: int | None = None,
                    tolerance: float = LANDMARK_TOLERANCE) -> None:
    """The one landmark validator (NumPy or torch): raise a ValueError naming ``name``,
    what was expected and what was found.

    Args:
        landmarks: Points ``[..., P, 2]`` as (x, y).
        name: What the caller calls them, for the message.
        counts: Accepted point counts ``P`` (49; 49, 66, 68 for :func:`convert_to_49`).
        batched: Require exactly ``[B, P, 2]``.
        crop_size: Also check the values: finite, and inside a ``crop_size`` square crop
            up to ``tolerance`` pixels (the first bad sample and point are named). Reads
            the data (a device sync), so the model skips it for its own predictions.
    """
    shape = tuple(landmarks.shape) if hasattr(landmarks, "shape") else None
    layout = f"[{'B' if batched else '...'}, {'|'.join(str(c) for c in counts)}, 2]"
    if shape is None or (len(shape) != 3 if batched else len(shape) < 2) or \
            shape[-1] != 2 or shape[-2] not in counts:
        found = list(shape) if shape is not None else type(landmarks).__name__
        raise ValueError(f"{name}: expected shape {layout}"
                         f"{' (crop pixels)' if crop_size else ''}, found {found}")
    if crop_size is None:
        return
    points = torch.as_tensor(landmarks).reshape(-1, shape[-2], 2)  # [B, P, 2]
    finite = torch.isfinite(points).all(-1)  # [B, P]
    if not bool(finite.all()):
        sample, point = (~finite).nonzero()[0].tolist()
        raise ValueError(f"{name}: sample {sample}, point {point} is not finite "
                         f"({points[sample, point].tolist()}); landmarks must be finite")
    low, high = -tolerance, crop_size - 1 + tolerance
    outside = ((points < low) | (points > high)).any(-1)  # [B, P]
    if bool(outside.any()):
        sample, point = outside.nonzero()[0].tolist()
        raise ValueError(
            f"{name}: sample {sample}, point {point} = {points[sample, point].tolist()} lies "
            f"outside the {crop_size}x{crop_size} crop (allowed {low:g}..{high:g}); landmarks "
            f"must be in crop pixel coordinates ({int(outside.sum())} points outside in all)")


def resolve_au_rules(aus: Sequence[int],
                     rules: Mapping[int, AUCentreRule | tuple] | None = None
                     ) -> dict[int, AUCentreRule]:
    """The centre rule of every AU in ``aus`` (the one place rules are looked up):
    ``rules`` (AU -> :class:`AUCentreRule` or its ``((landmark_a, landmark_b),
    offset_rulers)`` pair) first, then :data:`AU_CENTRE_RULES`. An AU with neither is a
    ValueError naming it; a bad rule raises :class:`AUCentreRule`'s error."""
    custom = {int(au): rule if isinstance(rule, AUCentreRule) else AUCentreRule(*rule)
              for au, rule in (rules or {}).items()}
    missing = [au for au in aus if au not in custom and au not in AU_CENTRE_RULES]
    if missing:
        raise ValueError(
            f"aus: no centre rule for AU {missing}; built-in rules cover "
            f"{sorted(AU_CENTRE_RULES)}. Give one for a custom AU, e.g. "
            f"{{{missing[0]}: ((landmark_a, landmark_b), offset_in_rulers)}} (the model "
            "config's au_rules; AUCentreRule objects for au_centres' rules)")
    return {au: custom.get(au, AU_CENTRE_RULES.get(au)) for au in aus}


def _xy(x, y):
    """Stack x and y coordinates into a trailing axis of size 2."""
    return torch.stack([x, y], dim=-1) if isinstance(x, torch.Tensor) else np.stack([x, y], axis=-1)


def _stack(items, like):
    return torch.stack(items, dim=-2) if isinstance(like, torch.Tensor) else np.stack(items, axis=-2)


def au_centres(
    landmarks,
    aus: Sequence[int],
    rules: Mapping[int, AUCentreRule] | None = None,
):
    """Two centres per AU from 49 landmarks (the one implementation of JAA-Net's rule).

    Args:
        landmarks: ``[..., 49, 2]`` points (NumPy or torch).
        aus: AU numbers, in the order of the output.
        rules: AU number -> :class:`AUCentreRule` for AUs without a built-in rule (or
            to replace one); the others come from :data:`AU_CENTRE_RULES`
            (:func:`resolve_au_rules`).

    Returns:
        ``[..., len(aus), 2, 2]``: for each AU its two centres as (x, y), same kind and
        dtype as ``landmarks``.
    """
    check_landmarks(landmarks)
    rules = resolve_au_rules(aus, rules)
    x_inner = landmarks[..., INNER_EYE_CORNERS[0], 0]
    x_other = landmarks[..., INNER_EYE_CORNERS[1], 0]
    ruler = abs(x_inner - x_other)  # [...]
    per_au = []
    for au in aus:
        rule = rules[au]
        points = landmarks[..., list(rule.landmarks), :]  # [..., 2, 2]
        y = points[..., 1] + (ruler * rule.offset_rulers)[..., None]  # [..., 2]
        per_au.append(_xy(points[..., 0], y))
    if isinstance(landmarks, torch.Tensor):
        return torch.stack(per_au, dim=-3)
    return np.stack(per_au, axis=-3)


def eye_centres(landmarks):
    """``[..., 2, 2]``: the mean of points 19-24 and the mean of points 25-30."""
    check_landmarks(landmarks)
    left = landmarks[..., list(LEFT_EYE), :].mean(-2)
    right = landmarks[..., list(RIGHT_EYE), :].mean(-2)
    return _stack([left, right], landmarks)


def interocular_distance(landmarks):
    """``[...]``: distance between the two eye centres (d_o of the paper, not squared)."""
    centres = eye_centres(landmarks)
    diff = centres[..., 0, :] - centres[..., 1, :]
    return (diff**2).sum(-1) ** 0.5


def alignment_points(landmarks):
    """``[..., 5, 2]`` points matched to :data:`CANONICAL_TEMPLATE`: the two eye centres,
    nose point 13 and mouth corners 31, 37."""
    centres = eye_centres(landmarks)
    rest = landmarks[..., [NOSE_POINT, *MOUTH_CORNERS], :]
    if isinstance(landmarks, torch.Tensor):
        return torch.cat([centres, rest], dim=-2)
    return np.concatenate([centres, rest], axis=-2)


def flip_landmarks(landmarks, width: int):
    """Mirror landmarks for a horizontal flip of an image ``width`` pixels wide:
    ``x' = (width - 1) - x`` and the points are permuted so that each index keeps its
    meaning (left eye stays index 19-24, ...)."""
    check_landmarks(landmarks)
    order = list(FLIP_PERMUTATION)
    flipped = landmarks[..., order, :]
    if isinstance(flipped, torch.Tensor):
        flipped = flipped.clone()
    else:
        flipped = np.array(flipped, copy=True)
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped


def convert_to_49(points, name: str = "points"):
    """Reduce a 68-point (iBUG) or 66-point (DISFA) set to the 49-point layout.

    68 points: drop the jaw (0-16) and the inner-mouth corners (60, 64).
    66 points: the inner-mouth corners are already gone; keep 17-65.
    49 points are returned unchanged.
    """
    check_landmarks(points, name, counts=(49, 66, 68))
    count = points.shape[-2]
    if count == 49:
        return points
    if count == 66:
        keep = list(range(17, 66))
    else:
        keep = [i for i in range(17, 68) if i not in (60, 64)]
    return points[..., keep, :]


__all__ = [
    "ALIGNED_SIZE",
    "ALL_AUS",
    "AU_CENTRE_RULES",
    "AU_SETS",
    "AUCentreRule",
    "BP4D_AUS",
    "CANONICAL_TEMPLATE",
    "CENTRE_CROP_OFFSET",
    "CROP_SIZE",
    "DISFA_AUS",
    "FLIP_PERMUTATION",
    "INNER_EYE_CORNERS",
    "LANDMARK_TOLERANCE",
    "LEFT_EYE",
    "MEAN_SHAPE",
    "MOUTH_CORNERS",
    "NOSE_POINT",
    "NUM_LANDMARKS",
    "RIGHT_EYE",
    "TEMPLATE_POINTS",
    "alignment_points",
    "au_centres",
    "check_landmarks",
    "convert_to_49",
    "eye_centres",
    "flip_landmarks",
    "interocular_distance",
    "resolve_au_rules",
]

"""Face geometry of the synthetic faces: the neutral 49-point shape, what each AU does
to it, and the face outline.

All coordinates here are in the *face frame*: the 200x200 aligned-face coordinates of
``mgrr_pyg.facs`` (eye centres near (66, 66) and (133, 66), 0-based pixels, y down).
The capture step (``render.py``) maps the face frame into each unaligned frame with
one affine transform, and the same transform maps these points, so the landmarks
written to disk are exactly the geometry that was drawn.

Every AU is a fixed displacement field over the 49 points at full intensity (5),
scaled by the response :func:`au_response` ``= (intensity / 5) ** 0.8`` (slightly
concave: a trace (A) is subtle but not invisible, the top grades E and D differ less
than A and B), summed over AUs and then made physically consistent (lips and lids
cannot pass through each other). The appearance changes of ``render.py`` use the same
response.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np

from mgrr_pyg.facs import ALL_AUS, FLIP_PERMUTATION, MEAN_SHAPE, NUM_LANDMARKS

#: x of the face's vertical midline in the face frame (between the template eye centres).
MIDLINE_X = 99.5

# MEAN_SHAPE, the mean 49-point shape of real aligned faces (a fact of the layout and the
# alignment template), lives in mgrr_pyg.facs; imported above, it keeps its name here. Its
# mouth is open and smiling, so the neutral mouth is rebuilt in neutral_mouth().

# Index groups of the 49-point layout (see docs/protocol.md).
BROW_FIRST = (0, 1, 2, 3, 4)  # outer -> inner
BROW_SECOND = (5, 6, 7, 8, 9)  # inner -> outer
NOSE_BRIDGE = (10, 11, 12, 13)
NOSE_BASE = (14, 15, 16, 17, 18)
EYE_FIRST = (19, 20, 21, 22, 23, 24)  # outer, upper, upper, inner, lower, lower
EYE_SECOND = (25, 26, 27, 28, 29, 30)  # inner, upper, upper, outer, lower, lower
MOUTH_CORNERS = (31, 37)
OUTER_UPPER_LIP = (31, 32, 33, 34, 35, 36, 37)
OUTER_LOWER_LIP = (37, 38, 39, 40, 41, 42, 31)
INNER_UPPER_LIP = (43, 44, 45)  # left -> right
INNER_LOWER_LIP = (46, 47, 48)  # right -> left
MIDLINE_POINTS = (10, 11, 12, 13, 16, 34, 40, 44, 47)

# (upper, lower) pairs that must not cross: inner lips, outer/inner lip thickness, eyelids.
_INNER_LIP_PAIRS = ((43, 48), (44, 47), (45, 46))
_UPPER_LIP_THICKNESS_PAIRS = ((33, 43), (34, 44), (35, 45))
_LOWER_LIP_THICKNESS_PAIRS = ((48, 41), (47, 40), (46, 39))
_EYELID_PAIRS = ((20, 24), (21, 23), (26, 30), (27, 29))
MIN_LIP_THICKNESS = 1.5
MIN_EYE_APERTURE = 0.6

# Displacement at full intensity (5) of the points on the first (image-left) side and on
# the midline, as (outward dx, dy) in face-frame pixels; "outward" is away from the
# midline, y grows downwards. The mirrored point of the other side gets the same
# (outward dx, dy). Sources: FACS manual descriptions of each AU's appearance changes.
_AU_DISPLACEMENTS_HALF: dict[int, dict[int, tuple[float, float]]] = {
    # AU1 inner brow raiser (frontalis, pars medialis): inner brow ends up most.
    1: {4: (0.0, -8.0), 3: (0.0, -6.0), 2: (0.0, -3.5), 1: (0.0, -1.5), 0: (0.0, -0.5),
        21: (0.0, -0.8), 22: (0.0, -0.3)},
    # AU2 outer brow raiser (frontalis, pars lateralis): outer brow up, arched.
    2: {0: (0.5, -7.5), 1: (0.0, -7.0), 2: (0.0, -4.5), 3: (0.0, -2.0), 4: (0.0, -0.5),
        19: (0.0, -0.5), 20: (0.0, -1.0)},
    # AU4 brow lowerer (corrugator, depressor supercilii, procerus): down and together.
    4: {4: (-4.5, 5.5), 3: (-3.0, 5.0), 2: (-1.5, 4.5), 1: (-0.5, 3.5), 0: (0.0, 2.0),
        20: (0.0, 1.2), 21: (0.0, 1.6), 22: (0.0, 0.5), 10: (0.0, 1.0)},
    # AU6 cheek raiser (orbicularis oculi, pars orbitalis): cheeks and lower lids up,
    # outer brow pulled down a little, mouth corners lifted slightly by the cheeks.
    6: {23: (0.0, -2.5), 24: (0.0, -3.0), 19: (0.0, -1.2), 22: (0.0, -0.5), 20: (0.0, 0.6),
        0: (0.0, 1.5), 1: (0.0, 1.0), 31: (0.5, -1.2), 32: (0.0, -0.5), 14: (0.0, -0.5)},
    # AU7 lid tightener (orbicularis oculi, pars palpebralis): lower lid up and straight.
    7: {23: (0.0, -3.2), 24: (0.0, -3.0), 19: (0.0, -0.5), 22: (0.0, -0.3),
        20: (0.0, 1.5), 21: (0.0, 1.5)},
    # AU9 nose wrinkler (levator labii superioris alaeque nasi): nose and upper lip up,
    # inner brows pulled down, lower lids pushed up.
    9: {14: (1.5, -3.5), 15: (0.5, -3.5), 16: (0.0, -3.0), 13: (0.0, -2.0), 12: (0.0, -1.0),
        4: (-1.0, 3.0), 3: (-0.5, 2.0), 23: (0.0, -1.5), 24: (0.0, -1.5),
        32: (0.0, -2.0), 33: (0.0, -2.5), 34: (0.0, -2.5), 43: (0.0, -2.0), 44: (0.0, -2.0),
        31: (0.0, -1.0)},
    # AU10 upper lip raiser (levator labii superioris): upper lip up, nostril wings up.
    10: {32: (0.5, -3.5), 33: (0.3, -4.5), 34: (0.0, -4.0), 43: (0.0, -3.5), 44: (0.0, -3.0),
         31: (0.0, -1.0), 14: (1.2, -1.5), 15: (0.3, -1.2), 16: (0.0, -0.8)},
    # AU12 lip corner puller (zygomaticus major): corners up and out.
    12: {31: (6.0, -6.5), 32: (3.0, -3.5), 33: (1.5, -1.2), 42: (4.0, -4.0), 41: (2.0, -1.8),
         40: (0.0, -0.8), 43: (3.0, -2.5), 48: (3.0, -2.5), 44: (0.0, -0.8), 47: (0.0, -0.8),
         23: (0.0, -1.0), 24: (0.0, -1.2), 14: (0.8, -0.5)},
    # AU14 dimpler (buccinator): corners tightened and drawn in, lips thinned.
    14: {31: (-3.0, -1.5), 32: (-1.0, -0.5), 42: (-1.5, -0.5), 43: (-2.0, -0.8),
         48: (-2.0, -0.8), 33: (0.0, 0.8), 34: (0.0, 0.6), 41: (0.0, -0.8), 40: (0.0, -0.8)},
    # AU15 lip corner depressor (depressor anguli oris): corners down.
    15: {31: (1.0, 6.0), 32: (0.3, 2.0), 42: (0.5, 3.0), 41: (0.0, 1.0), 40: (0.0, 0.3),
         43: (0.5, 2.0), 48: (0.5, 2.0)},
    # AU17 chin raiser (mentalis): chin boss and lower lip pushed up, corners down a little.
    17: {40: (0.0, -4.0), 41: (0.0, -3.5), 42: (0.0, -2.5), 47: (0.0, -2.0), 48: (0.0, -1.5),
         44: (0.0, -1.5), 43: (0.0, -1.0), 34: (0.0, -1.0), 33: (0.0, -0.8), 31: (0.0, 1.2)},
    # AU23 lip tightener (orbicularis oris): red parts narrowed, mouth narrower.
    23: {33: (0.0, 2.5), 34: (0.0, 2.2), 32: (0.0, 1.5), 41: (0.0, -3.0), 40: (0.0, -3.0),
         42: (0.0, -2.0), 31: (-2.5, 0.0), 43: (-1.5, 0.0), 48: (-1.5, 0.0)},
    # AU24 lip presser (orbicularis oris): lips pressed together, red parts thinned more.
    24: {33: (0.0, 3.5), 34: (0.0, 3.0), 32: (0.0, 2.0), 41: (0.0, -4.0), 40: (0.0, -4.0),
         42: (0.0, -2.5), 31: (-1.5, 0.5), 43: (-1.0, 0.5), 48: (-1.0, 0.5), 44: (0.0, 0.5),
         47: (0.0, 0.5)},
    # AU25 lips part (depressor labii / relaxed mentalis): lips apart, jaw in place.
    25: {43: (0.0, -1.2), 44: (0.0, -1.5), 48: (0.0, 3.5), 47: (0.0, 4.0), 41: (0.0, 2.5),
         40: (0.0, 2.8), 42: (0.0, 1.8), 33: (0.0, -0.5), 34: (0.0, -0.5)},
    # AU26 jaw drop (masseter relaxed): lower lip and chin drop with the jaw.
    26: {48: (0.0, 8.0), 47: (0.0, 9.0), 42: (0.0, 6.0), 41: (0.0, 9.0), 40: (0.0, 9.5),
         31: (-1.5, 2.5), 43: (0.0, -0.3), 44: (0.0, -0.3)},
}

#: How far the chin drops (AU26) / rises (AU17) at full intensity, face-frame pixels.
JAW_DROP_FULL = 12.0
CHIN_RAISE_FULL = 4.0

#: Exponent of the intensity response (see :func:`au_response`).
RESPONSE_EXPONENT = 0.8

#: Index of each AU in intensity vectors (the order of ``mgrr_pyg.facs.ALL_AUS``).
AU_INDEX: dict[int, int] = {au: k for k, au in enumerate(ALL_AUS)}


def _side_of_points(shape: np.ndarray) -> np.ndarray:
    """-1 for points left of the midline, +1 right of it, 0 on it."""
    side = np.sign(shape[:, 0] - MIDLINE_X)
    side[list(MIDLINE_POINTS)] = 0.0
    return side


def _build_displacements() -> np.ndarray:
    """``[15, 49, 2]`` full-intensity displacements as (outward dx, dy), both sides."""
    table = np.zeros((len(ALL_AUS), NUM_LANDMARKS, 2))
    for au, half in _AU_DISPLACEMENTS_HALF.items():
        for point, (dx, dy) in half.items():
            mirror = FLIP_PERMUTATION[point]
            table[AU_INDEX[au], point] = (dx, dy)
            table[AU_INDEX[au], mirror] = (dx, dy)
    return table


#: ``[15, 49, 2]`` AU displacement fields at intensity 5 (outward dx, dy).
AU_DISPLACEMENTS = _build_displacements()
_SIDE = _side_of_points(MEAN_SHAPE)  # [49]; the neutral shapes keep the mean's sides


def intensity_vector(intensities: Mapping[int, float] | np.ndarray | None) -> np.ndarray:
    """A ``[15]`` float vector in :data:`mgrr_pyg.facs.ALL_AUS` order from a mapping
    AU -> intensity (missing AUs are 0), or a ``[..., 15]`` array checked and returned."""
    if intensities is None:
        return np.zeros(len(ALL_AUS))
    if isinstance(intensities, Mapping):
        unknown = [au for au in intensities if au not in AU_INDEX]
        if unknown:
            raise ValueError(
                f"intensities: AU {unknown} is not modelled; expected AUs from {ALL_AUS}")
        vector = np.zeros(len(ALL_AUS))
        for au, value in intensities.items():
            vector[AU_INDEX[au]] = float(value)
    else:
        vector = np.asarray(intensities, dtype=np.float64)
        if vector.shape[-1] != len(ALL_AUS):
            raise ValueError(
                f"intensities: expected a trailing axis of {len(ALL_AUS)} AUs "
                f"(order {ALL_AUS}), found shape {list(vector.shape)}")
    if np.any(vector < 0) or np.any(vector > 5):
        raise ValueError(f"intensities: expected values in 0..5, found {vector.min()}..{vector.max()}")
    return vector


def au_response(intensity):
    """How much of an AU's full effect shows at ``intensity`` (0..5): ``(I / 5) ** 0.8``."""
    return (np.asarray(intensity, dtype=np.float64) / 5.0) ** RESPONSE_EXPONENT


def expression_shape(
    neutral: np.ndarray,
    intensities: Mapping[int, float] | np.ndarray | None,
    scale: float = 1.0,
    blink: float = 0.0,
) -> np.ndarray:
    r"""The 49 landmarks of a face showing the given AU intensities.

    .. math::
        \mathbf{x} = \mathbf{x}_0 + s \sum_{a} \Big(\frac{I_a}{5}\Big)^{0.8} \mathbf{D}_a

    followed by the contact constraints (closed lips meet instead of crossing, lips keep
    a minimum thickness, lids keep a minimum aperture).

    Args:
        neutral: ``[49, 2]`` neutral landmarks of the identity (face frame).
        intensities: AU -> intensity 0..5, or a ``[15]`` vector in ``ALL_AUS`` order.
        scale: the identity's size relative to the mean face (displacements scale with it).
            (default: ``1.0``)
        blink: 0 (open) .. 1 (closed): lowers the upper lids onto the lower lids; not an AU
            of the label sets, a nuisance as in real video. (default: ``0.0``)

    Returns:
        ``[49, 2]`` landmarks (a new array).
    """
    vector = intensity_vector(intensities)
    weights = au_response(vector)  # [15]
    move = np.tensordot(weights, AU_DISPLACEMENTS, axes=1) * scale  # [49, 2]
    shape = np.array(neutral, dtype=np.float64, copy=True)
    shape[:, 0] += move[:, 0] * _SIDE
    shape[:, 1] += move[:, 1]
    if blink > 0:
        for upper, lower in _EYELID_PAIRS:
            shape[upper, 1] += blink * (shape[lower, 1] - MIN_EYE_APERTURE - shape[upper, 1])
    return apply_contacts(shape)


def apply_contacts(shape: np.ndarray) -> np.ndarray:
    """Closed lips meet at the mean instead of crossing; lips keep a minimum red-part
    thickness; lids keep a minimum aperture. Changes ``shape`` in place and returns it."""
    for upper, lower in _INNER_LIP_PAIRS:
        if shape[lower, 1] < shape[upper, 1]:
            meet = 0.5 * (shape[lower, 1] + shape[upper, 1])
            shape[lower, 1] = shape[upper, 1] = meet
    for outer, inner in _UPPER_LIP_THICKNESS_PAIRS:
        shape[outer, 1] = min(shape[outer, 1], shape[inner, 1] - MIN_LIP_THICKNESS)
    for inner, outer in _LOWER_LIP_THICKNESS_PAIRS:
        shape[outer, 1] = max(shape[outer, 1], shape[inner, 1] + MIN_LIP_THICKNESS)
    for upper, lower in _EYELID_PAIRS:
        shape[lower, 1] = max(shape[lower, 1], shape[upper, 1] + MIN_EYE_APERTURE)
    return shape


def neutral_mouth(
    centre_x: float, line_y: float, half_width: float, upper_thickness: float,
    lower_thickness: float, bow: float = 1.0,
) -> np.ndarray:
    """``[18, 2]`` neutral closed mouth (points 31..48): corners at the lip line,
    Cupid's bow on the upper lip (``bow`` scales its dip), inner lips meeting."""
    hw, tu, tl, c, y = half_width, upper_thickness, lower_thickness, centre_x, line_y
    dip = 0.12 * tu * bow
    pts = [
        (c - hw, y - 0.4),  # 31 corner
        (c - 0.62 * hw, y - 0.78 * tu),  # 32
        (c - 0.24 * hw, y - 1.0 * tu - dip),  # 33 bow peak
        (c, y - 1.0 * tu + dip),  # 34 bow dip
        (c + 0.24 * hw, y - 1.0 * tu - dip),  # 35
        (c + 0.62 * hw, y - 0.78 * tu),  # 36
        (c + hw, y - 0.4),  # 37 corner
        (c + 0.6 * hw, y + 0.78 * tl),  # 38
        (c + 0.27 * hw, y + 0.97 * tl),  # 39
        (c, y + tl),  # 40
        (c - 0.27 * hw, y + 0.97 * tl),  # 41
        (c - 0.6 * hw, y + 0.78 * tl),  # 42
        (c - 0.45 * hw, y),  # 43 inner upper
        (c, y + 0.2),  # 44
        (c + 0.45 * hw, y),  # 45
        (c + 0.45 * hw, y),  # 46 inner lower (closed: meets 45)
        (c, y + 0.2),  # 47
        (c - 0.45 * hw, y),  # 48
    ]
    return np.array(pts, dtype=np.float64)


# Face outline: half-widths of the head at face-frame heights, for the mean head.
# Rows: (y, half-width); the top (y < 0) is hidden by hair or the frame's edge.
OUTLINE_PROFILE = np.array([
    (-12.0, 0.0), (-6.0, 34.0), (6.0, 55.0), (25.0, 68.0), (50.0, 74.0), (75.0, 75.5),
    (100.0, 73.0), (125.0, 67.0), (148.0, 56.0), (166.0, 42.0), (179.0, 25.0),
    (185.0, 10.0), (187.0, 0.0),
])


def face_outline(
    profile: np.ndarray, centre_x: float, mouth_y: float, jaw_drop: float = 0.0,
    chin_raise: float = 0.0,
) -> np.ndarray:
    """``[2K-1, 2]`` closed outline of the head (control points, clockwise from the top):
    the lower face (below the lip line) moves down with the jaw and up with the chin
    boss, more so towards the chin."""
    ys = profile[:, 0].copy()
    half = profile[:, 1]
    chin_y = ys[-1]
    below = np.clip((ys - mouth_y) / max(chin_y - mouth_y, 1e-6), 0.0, 1.0)  # 0 at lips, 1 at chin
    ys = ys + jaw_drop * below - chin_raise * below**2
    half = half * (1.0 - 0.04 * (jaw_drop / JAW_DROP_FULL) * below)  # the jaw narrows as it drops
    right = np.stack([centre_x + half, ys], axis=1)
    left = np.stack([centre_x - half, ys], axis=1)[::-1][1:-1]
    return np.concatenate([right, left], axis=0)


@lru_cache(maxsize=None)
def _catmull_rom_basis(samples: int) -> np.ndarray:
    t = np.arange(samples) / samples
    t2, t3 = t * t, t * t * t
    return 0.5 * np.stack([
        -t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2,
    ], axis=1)  # [samples, 4]


@lru_cache(maxsize=None)
def _catmull_rom_index(count: int, closed: bool) -> np.ndarray:
    """Rows of 4 control-point indices per segment, into the padded point list."""
    n_seg = count if closed else count - 1
    return np.arange(n_seg)[:, None] + np.arange(4)[None, :]  # [n_seg, 4]


def catmull_rom(points: np.ndarray, samples: int = 4, closed: bool = False) -> np.ndarray:
    """A smooth curve through ``points`` (uniform Catmull-Rom), ``samples`` per segment.

    Shapes:
        points ``[K, 2]`` -> ``[(K - 1) * samples + 1, 2]`` open, ``[K * samples, 2]`` closed.
    """
    pts = np.asarray(points, dtype=np.float64)
    if closed:
        ext = np.concatenate([pts[-1:], pts, pts[:2]], axis=0)
    else:
        ext = np.concatenate([2 * pts[:1] - pts[1:2], pts, 2 * pts[-1:] - pts[-2:-1]], axis=0)
    seg = ext[_catmull_rom_index(len(pts), closed)]  # [n_seg, 4, 2]
    curve = (_catmull_rom_basis(samples) @ seg).reshape(-1, 2)  # [n_seg * samples, 2]
    if not closed:
        curve = np.concatenate([curve, pts[-1:]], axis=0)
    return curve


__all__ = [
    "AU_DISPLACEMENTS",
    "AU_INDEX",
    "CHIN_RAISE_FULL",
    "JAW_DROP_FULL",
    "MEAN_SHAPE",
    "MIDLINE_X",
    "RESPONSE_EXPONENT",
    "apply_contacts",
    "au_response",
    "catmull_rom",
    "expression_shape",
    "face_outline",
    "intensity_vector",
    "neutral_mouth",
]

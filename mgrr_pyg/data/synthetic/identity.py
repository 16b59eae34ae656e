"""Fixed per-subject identities of the synthetic faces.

An :class:`Identity` is a deterministic function of ``(seed, dataset, subject)``: face
outline and proportions, eye spacing and size, brow / nose / lip size and shape, skin
tone, eye colour, hair (colour, style, hairline), optional fringe or glasses covering
part of a brow, optional stubble, background and clothing. Its neutral landmarks start
from the symmetrised mean of real aligned faces (:data:`~.geometry.MEAN_SHAPE`) and are
varied per feature, with a little asymmetry, so subjects differ in geometry the way a
CNN and the alignment step see real subjects differ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import rng_for
from .geometry import MEAN_SHAPE, MIDLINE_X, OUTLINE_PROFILE, apply_contacts, neutral_mouth

# Skin tones from very light to very dark (sRGB), interpolated per subject.
_SKIN_TONES = np.array([
    (250, 221, 199), (236, 192, 160), (222, 170, 128), (196, 138, 97),
    (160, 104, 70), (118, 76, 52), (84, 56, 40),
], dtype=np.float64)
_HAIR_COLOURS = np.array([
    (22, 18, 16), (44, 32, 24), (78, 54, 36), (112, 76, 46), (150, 104, 60),
    (196, 160, 108), (120, 52, 30), (150, 146, 140),
], dtype=np.float64)
_IRIS_COLOURS = np.array([
    (58, 38, 26), (84, 56, 34), (96, 120, 150), (88, 116, 80), (110, 90, 60), (40, 30, 26),
], dtype=np.float64)
HAIR_STYLES = ("short", "long", "bun", "shaved")


@dataclass(frozen=True)
class Glasses:
    """Spectacles: a frame around each eye; the top rim crosses the lower brow."""

    half_width: float  # of each lens, face-frame px
    half_height: float
    centre_dy: float  # lens centre below the eye centre
    rim: float  # rim thickness, face-frame px
    colour: tuple[int, int, int]
    round: bool


@dataclass(frozen=True)
class Fringe:
    """A fringe (bangs) on one side, covering the outer or middle part of one brow."""

    side: int  # -1 = image-left brow, +1 = image-right brow
    inner_x: float  # where the fringe's edge meets the brow line, face-frame x
    bottom: float  # lowest y of the fringe (near the brow), face-frame px


@dataclass(frozen=True)
class Identity:
    """One synthetic subject's fixed appearance. Coordinates are in the face frame."""

    subject: str
    shape: np.ndarray  # [49, 2] neutral landmarks
    outline_profile: np.ndarray  # [K, 2] (y, half-width) of the head
    scale: float  # size relative to the mean face (inter-ocular distance / template's)
    skin: tuple[int, int, int]
    lip: tuple[int, int, int]
    hair: tuple[int, int, int]
    brow: tuple[int, int, int]
    iris: tuple[int, int, int]
    background: tuple[int, int, int]
    background_accent: tuple[int, int, int]
    background_style: int  # 0 plain, 1 vertical split, 2 soft blobs, 3 horizontal band
    clothes: tuple[int, int, int]
    hair_style: str
    hairline_y: float  # hairline height at the midline
    brow_thickness: float
    lid_crease: float  # height of the upper-lid crease above the lid
    iris_radius: float
    nostril_size: float
    ear_size: float
    stubble: float  # 0 none .. 1 dark
    texture_seed: int
    glasses: Glasses | None
    fringe: Fringe | None


def _mix(palette: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation along a palette at position ``t`` in 0..1."""
    pos = np.clip(t, 0.0, 1.0) * (len(palette) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(palette) - 1)
    return palette[lo] + (pos - lo) * (palette[hi] - palette[lo])


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(round(v)) for v in np.clip(values, 0, 255))
    return (r, g, b)


def _scale_about(points: np.ndarray, centre: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return centre + (points - centre) * np.array([sx, sy])


def _neutral_shape(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Neutral landmarks of one identity, and its scale (eye distance / template's)."""
    shape = MEAN_SHAPE.copy()
    cx = MIDLINE_X
    # Eyes: spacing, size, openness, tilt (the outer corners up or down).
    spacing = rng.normal(0.0, 2.2)
    eye_w, eye_h = rng.uniform(0.9, 1.1), rng.uniform(0.8, 1.2)
    tilt = rng.normal(0.0, 1.0)
    for eye, side in ((list(range(19, 25)), -1.0), (list(range(25, 31)), 1.0)):
        centre = shape[eye].mean(0)
        shape[eye] = _scale_about(shape[eye], centre, eye_w, eye_h)
        shape[eye, 0] += side * spacing
        outer = 19 if side < 0 else 28
        shape[outer, 1] -= tilt
    # Brows: height above the eyes, arch, length, inner-end spacing.
    brow_lift = rng.normal(0.0, 2.0)
    arch = rng.normal(0.0, 1.5)
    brow_len = rng.uniform(0.9, 1.1)
    for brow, side in (([0, 1, 2, 3, 4], -1.0), ([9, 8, 7, 6, 5], 1.0)):  # outer -> inner
        inner = shape[brow[-1]].copy()
        shape[brow, 0] = inner[0] + (shape[brow, 0] - inner[0]) * brow_len + side * spacing * 0.8
        shape[brow, 1] -= brow_lift + arch * np.array([0.2, 0.8, 1.0, 0.6, 0.0])
    # Nose: length (tip and base move together), width of the base.
    nose_len = rng.normal(0.0, 3.0)
    nose_w = rng.uniform(0.85, 1.18)
    shape[[11, 12, 13], 1] += nose_len * np.array([0.33, 0.66, 1.0])
    shape[14:19, 1] += nose_len
    shape[14:19, 0] = cx + (shape[14:19, 0] - cx) * nose_w
    # Mouth: rebuilt closed and neutral (the mean's mouth is open and smiling).
    mouth = neutral_mouth(
        centre_x=cx,
        line_y=135.0 + 0.6 * nose_len + rng.normal(0.0, 2.0),
        half_width=27.0 * rng.uniform(0.9, 1.12),
        upper_thickness=rng.uniform(6.5, 10.0),
        lower_thickness=rng.uniform(8.5, 13.0),
        bow=rng.uniform(0.4, 1.6),
    )
    shape[31:49] = mouth
    # A little asymmetry and placement noise, as in every real face.
    shape += rng.normal(0.0, 0.45, size=shape.shape)
    shape[[46, 47, 48], 1] = shape[[45, 44, 43], 1]  # the neutral mouth is closed
    apply_contacts(shape)
    left = shape[19:25].mean(0)
    right = shape[25:31].mean(0)
    scale = float(np.linalg.norm(right - left) / (133.1 - 65.9))
    return shape, scale


def make_identity(seed: int, dataset: str, subject: str) -> Identity:
    """The identity of ``subject`` in ``dataset`` under ``seed`` (a pure function)."""
    rng = rng_for(seed, dataset, subject, purpose="identity")
    shape, scale = _neutral_shape(rng)
    # BP4D ids carry the sex (F001 / M001); DISFA's (SN001) do not, so draw it.
    male = subject.startswith("M") if dataset == "BP4D" else bool(rng.random() < 0.5)

    profile = OUTLINE_PROFILE.copy()
    width = rng.uniform(0.92, 1.08) * (1.03 if male else 1.0)
    jaw = rng.uniform(0.86, 1.1) * (1.04 if male else 1.0)
    lower = profile[:, 0] > 110
    profile[:, 1] *= width
    profile[lower, 1] *= jaw
    chin = rng.normal(0.0, 4.0)
    profile[lower, 0] += chin * (profile[lower, 0] - 110) / (profile[-1, 0] - 110)
    # the chin must stay below the lower lip
    profile[-1, 0] = max(profile[-1, 0], shape[40, 1] + 28.0)

    skin = _mix(_SKIN_TONES, rng.beta(1.4, 2.0)) * rng.uniform(0.96, 1.04, size=3)
    lip_tint = np.array([1.0, 0.6, 0.62]) * rng.uniform(0.78, 0.92)
    lip = skin * lip_tint + np.array([18.0, 0.0, 4.0])
    hair = _mix(_HAIR_COLOURS, rng.random())
    if skin.mean() < 120:  # very dark skin: dark hair is most common
        hair = _HAIR_COLOURS[rng.integers(0, 3)]
    brow = hair * 0.75 + skin * 0.1
    iris = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * rng.uniform(0.85, 1.15)
    background = rng.uniform(40, 220, size=3)
    background = background * 0.6 + background.mean() * 0.4  # muted colours
    accent = np.clip(background + rng.normal(0.0, 35.0, size=3), 0, 255)
    clothes = rng.uniform(20, 230, size=3)

    style_p = (0.55, 0.08, 0.07, 0.30) if male else (0.2, 0.55, 0.2, 0.05)
    hair_style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=style_p)]
    hairline = rng.uniform(-10.0, 8.0) + (4.0 if male else 0.0)

    glasses = None
    if rng.random() < 0.22:
        glasses = Glasses(
            half_width=rng.uniform(15.5, 19.0), half_height=rng.uniform(14.5, 18.0),
            centre_dy=rng.uniform(-2.0, 1.0), rim=rng.uniform(1.2, 2.6),
            colour=_rgb(rng.choice([(20, 20, 20), (70, 45, 30), (150, 150, 155), (110, 20, 30)])),
            round=bool(rng.random() < 0.4),
        )
    fringe = None
    if hair_style in ("short", "long") and rng.random() < 0.25:
        side = int(rng.choice([-1, 1]))
        brow_ends = shape[[0, 4]] if side < 0 else shape[[9, 5]]  # outer, inner
        # the fringe covers the brow from its outer end to somewhere past its middle
        inner_x = brow_ends[0, 0] + rng.uniform(0.35, 0.75) * (brow_ends[1, 0] - brow_ends[0, 0])
        fringe = Fringe(side=side, inner_x=float(inner_x),
                        bottom=float(shape[[1, 2, 7, 8], 1].mean() + rng.uniform(-1.0, 4.0)))

    return Identity(
        subject=subject, shape=shape, outline_profile=profile, scale=scale,
        skin=_rgb(skin), lip=_rgb(lip), hair=_rgb(hair), brow=_rgb(brow), iris=_rgb(iris),
        background=_rgb(background), background_accent=_rgb(accent),
        background_style=int(rng.integers(4)), clothes=_rgb(clothes),
        hair_style=hair_style, hairline_y=float(hairline),
        brow_thickness=float(rng.uniform(3.2, 5.5) * (1.15 if male else 1.0)),
        lid_crease=float(rng.uniform(2.5, 5.0)), iris_radius=float(rng.uniform(5.4, 6.4)),
        nostril_size=float(rng.uniform(0.8, 1.25)), ear_size=float(rng.uniform(0.9, 1.15)),
        stubble=float(rng.uniform(0.3, 1.0)) if male and rng.random() < 0.35 else 0.0,
        texture_seed=int(rng.integers(2**31)), glasses=glasses, fringe=fringe,
    )


__all__ = ["Fringe", "Glasses", "HAIR_STYLES", "Identity", "make_identity"]

"""Drawing and capturing synthetic faces (NumPy + Pillow).

A frame is made in two spaces:

1. the **face frame** (the 200x200 aligned-face coordinates): the face is drawn upright
   on a canvas with a margin, colours with Pillow ``ImageDraw`` polygons at 2x
   supersampling (edges antialiased by the 2x2 reduction, so sub-pixel landmark motion
   at low AU intensities still changes pixels), and a separate grey *shading* layer
   (128 = unchanged) holding the skin relief, wrinkles and furrows of the active AUs;
2. the **capture**: one affine transform (head roll, scale, translation, a small yaw
   squash) maps the canvas into the unaligned ``image_size`` frame; then blur,
   illumination gradient, colour cast, sensor noise and JPEG compression.

The 49 landmarks are the drawn geometry mapped by the same affine transform, so they are
exact (up to the rounding of polygon vertices to 1/2 pixel of the 2x canvas).

Pixel conventions: coordinates are 0-based with pixel centres at integers (as in
``mgrr_pyg.facs``). Pillow's ``Image.transform`` maps pixel *corners* (centre + 0.5) and
``ImageDraw`` truncates polygon vertices, both accounted for below.
"""
from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from .config import rng_for
from .geometry import (
    AU_INDEX, CHIN_RAISE_FULL, JAW_DROP_FULL, MIDLINE_X, au_response, catmull_rom, expression_shape,
    face_outline, intensity_vector,
)
from .identity import Identity

#: Face-frame margin of the drawing canvas (the canvas covers -MARGIN .. 200 + MARGIN).
MARGIN = 60
CANVAS = 200 + 2 * MARGIN
SUPERSAMPLE = 2
FACE_CENTRE = np.array([MIDLINE_X, 100.0])
NEUTRAL_SHADE = 128
#: Neutral shading level in the multiply step (a * b / 255); highlights up to +27%.
SHADE_MULTIPLY_NEUTRAL = 200
_SHADE_LUT = [min(255, int(round(v * SHADE_MULTIPLY_NEUTRAL / NEUTRAL_SHADE))) for v in range(256)]
#: Extra rows / columns of a sequence's sensor-noise field (frames cut it at random offsets).
NOISE_PAD = 48

# Upper and lower lid point order of each eye (corner, lid, lid, corner).
_UPPER_LIDS = ((19, 20, 21, 22), (25, 26, 27, 28))
_LOWER_LIDS = ((19, 24, 23, 22), (25, 30, 29, 28))
_EYES = ((19, 20, 21, 22, 23, 24), (25, 26, 27, 28, 29, 30))
_BROWS = ((0, 1, 2, 3, 4), (9, 8, 7, 6, 5))  # outer -> inner, both brows


@dataclass(frozen=True)
class Capture:
    """How one frame was captured.

    Args:
        roll: head roll, degrees (positive = clockwise in the image).
        scale: face size relative to the 200x200 aligned face.
        shift: (x, y) offset of the face centre from the image centre, pixels.
        yaw_squash: horizontal compression of the face (1 = frontal), a small-yaw stand-in.
        light: (gx, gy) illumination gradient across the frame (relative gain per frame width).
        ambient: overall gain.
        cast: per-channel colour gains (white balance).
        noise: sensor noise standard deviation, grey levels.
        blur: Gaussian blur standard deviation, pixels (0 = none).
        jpeg_quality: JPEG quality of the compression (``None`` = no compression).
        gaze: (x, y) iris offset in face-frame pixels.
        blink: 0 (open) .. 1 (closed).
        noise_offset: (x, y) where this frame's noise is cut from the sequence's noise field.
    """

    roll: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    yaw_squash: float = 1.0
    light: tuple[float, float] = (0.0, 0.0)
    ambient: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 0.0
    blur: float = 0.0
    jpeg_quality: int | None = None
    gaze: tuple[float, float] = (0.0, 0.0)
    blink: float = 0.0
    noise_offset: tuple[int, int] = (0, 0)


def capture_matrix(capture: Capture, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(M [2, 2], t [2])`` with image point = ``M @ face_point + t``."""
    angle = math.radians(capture.roll)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    m = capture.scale * rot @ np.diag([capture.yaw_squash, 1.0])
    centre = np.full(2, (image_size - 1) / 2.0) + np.asarray(capture.shift, dtype=np.float64)
    return m, centre - m @ FACE_CENTRE


def to_image(points: np.ndarray, capture: Capture, image_size: int) -> np.ndarray:
    """Face-frame points ``[..., 2]`` -> image coordinates of the captured frame."""
    m, t = capture_matrix(capture, image_size)
    return np.asarray(points) @ m.T + t


class SequenceCapture:
    """Smooth capture conditions of one sequence (head motion, light, camera): per-frame
    values are sinusoids of time around per-sequence draws, plus per-frame jitter drawn
    from the frame's own generator. Holds the sequence's sensor-noise field."""

    def __init__(self, rng: np.random.Generator, image_size: int = 256):
        self.roll0 = float(np.clip(rng.normal(0.0, 5.0), -14.0, 14.0))
        self.scale0 = float(rng.uniform(0.95, 1.18))
        self.shift0 = rng.uniform(-12.0, 12.0, size=2)
        self.yaw0 = float(rng.uniform(0.0, 0.08))
        self.light_dir = float(rng.uniform(0.0, 2 * math.pi))
        self.light_strength = float(rng.uniform(0.05, 0.45))
        self.ambient0 = float(rng.uniform(0.78, 1.15))
        self.cast0 = 1.0 + rng.normal(0.0, 0.04, size=3)
        self.noise0 = float(rng.uniform(1.5, 6.0))
        self.blur0 = float(rng.uniform(0.2, 0.8))
        self.gaze0 = rng.normal(0.0, [1.2, 0.5])
        self.freq = rng.uniform(0.002, 0.012, size=6)  # cycles per video frame
        self.phase = rng.uniform(0.0, 2 * math.pi, size=6)
        side = int(image_size) + NOISE_PAD
        self.noise_bank = rng.standard_normal((side, side, 3), dtype=np.float32)

    def at(self, time: float, rng: np.random.Generator, jpeg_quality: tuple[int, int] | None) -> Capture:
        """The capture of the frame at video ``time``; ``rng`` is that frame's generator."""
        w = np.sin(2 * math.pi * self.freq * time + self.phase)  # [6] smooth head motion
        roll = self.roll0 + 3.0 * w[0]
        scale = self.scale0 * (1.0 + 0.03 * w[1])
        shift = self.shift0 + 4.0 * w[2:4]
        yaw = self.yaw0 * (0.5 + 0.5 * w[4])
        strength = self.light_strength * (1.0 + 0.1 * w[5])
        light = (strength * math.cos(self.light_dir), strength * math.sin(self.light_dir))
        blink = float(rng.uniform(0.5, 1.0)) if rng.random() < 0.03 else 0.0
        quality = None if jpeg_quality is None else int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
        return Capture(
            roll=float(roll), scale=float(scale), shift=(float(shift[0]), float(shift[1])),
            yaw_squash=float(1.0 - yaw), light=light,
            ambient=float(self.ambient0 * rng.uniform(0.97, 1.03)),
            cast=tuple(float(c) for c in self.cast0),
            noise=float(self.noise0 * rng.uniform(0.8, 1.2)),
            blur=float(np.clip(self.blur0 + rng.normal(0.0, 0.2), 0.0, 1.2)),
            jpeg_quality=quality,
            gaze=(float(self.gaze0[0] + 1.2 * w[4] + rng.normal(0, 0.3)),
                  float(self.gaze0[1] + 0.4 * w[5] + rng.normal(0, 0.15))),
            blink=blink,
            noise_offset=(int(rng.integers(NOISE_PAD)), int(rng.integers(NOISE_PAD))),
        )


#: Scales every wrinkle / furrow / highlight depth (the cues' contrast at the 176x176 crop).
APPEARANCE_GAIN = 1.25


def _shade(amount: float, depth: float) -> int:
    """Grey level of a wrinkle ``depth`` levels deep at AU ``amount`` in 0..1
    (negative depth = highlight)."""
    return int(np.clip(round(NEUTRAL_SHADE - APPEARANCE_GAIN * depth * amount), 0, 255))


@lru_cache(maxsize=None)
def _unit_circle(n: int) -> np.ndarray:
    a = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([np.cos(a), np.sin(a)], axis=1)  # [n, 2]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> np.ndarray:
    """``[n, 2]`` points of an axis-aligned ellipse (drawn as a polygon)."""
    return _unit_circle(n) * (rx, ry) + (cx, cy)


def _soft_blob(draw: ImageDraw.ImageDraw, xy, cx: float, cy: float, rx: float, ry: float,
               level: int) -> None:
    """A soft-edged blob on a shading layer: concentric ellipses stepping from the
    neutral level at the rim to ``level`` in the middle."""
    for frac in (1.0, 0.72, 0.45):
        value = int(round(NEUTRAL_SHADE + (level - NEUTRAL_SHADE) * (1.15 - frac) / 0.7))
        draw.polygon(xy(_ellipse(cx, cy, rx * frac, ry * frac, 16)), fill=value)


def _flat(points: np.ndarray, scale: float, offset: float) -> list[float]:
    return (np.asarray(points, dtype=np.float64) * scale + offset).ravel().tolist()


class FaceRenderer:
    """Renders frames of one identity (static layers are drawn once, per sequence).

    Args:
        identity: the subject's :class:`~.identity.Identity`.
        image_size: side of the captured frames, pixels. (default: ``256``)
    """

    def __init__(self, identity: Identity, image_size: int = 256):
        self.identity = identity
        self.image_size = int(image_size)
        self._ss = SUPERSAMPLE
        # ImageDraw truncates vertices: +0.5 rounds them; the 2x canvas' pixel centres
        # sit at 2c + 0.5 of the 1x canvas' centres c.
        self._rgb_offset = self._ss * MARGIN + 0.5 * self._ss
        self._shade_offset = MARGIN + 0.5
        self._base = self._draw_base()
        self._texture = self._draw_texture()
        chin_rng = np.random.default_rng(identity.texture_seed + 1)
        self._chin_dots = np.stack([chin_rng.uniform(-1, 1, 28), chin_rng.uniform(0, 1, 28)], axis=1)

    # -- drawing helpers -------------------------------------------------------------
    def _rgb_xy(self, points: np.ndarray) -> list[float]:
        return _flat(points, self._ss, self._rgb_offset)

    def _shade_xy(self, points: np.ndarray) -> list[float]:
        return _flat(points, 1.0, self._shade_offset)

    def _draw_base(self) -> Image.Image:
        """Background, clothes, neck, ears and the hair behind the head (static)."""
        ident = self.identity
        size = CANVAS * self._ss
        low = CANVAS // 4  # smooth (out-of-focus) patterns: computed small, then enlarged
        bg = np.array(ident.background, dtype=np.float64)
        accent = np.array(ident.background_accent, dtype=np.float64)
        ys, xs = np.mgrid[0:low, 0:low] / low
        if ident.background_style == 1:  # two-tone split
            t = (xs > 0.35 + 0.3 * (ident.texture_seed % 7) / 7).astype(np.float64)
        elif ident.background_style == 2:  # soft blobs
            t = 0.5 + 0.5 * np.sin(6 * xs + ident.texture_seed % 5) * np.cos(5 * ys)
        elif ident.background_style == 3:  # horizontal band
            t = np.exp(-((ys - 0.3) / 0.12) ** 2)
        else:  # plain with a vertical gradient
            t = ys * 0.6
        pixels = bg[None, None, :] * (1 - t[..., None]) + accent[None, None, :] * t[..., None]
        img = Image.fromarray(pixels.astype(np.uint8), "RGB").resize((size, size), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(img)
        skin = np.array(ident.skin, dtype=np.float64)
        shadow = tuple(int(v) for v in skin * 0.78)
        cx = MIDLINE_X
        hw = ident.outline_profile[:, 1].max()
        if ident.hair_style == "long":  # hair behind the head, down to the shoulders
            back = np.array([(cx - hw - 14, 40), (cx - hw - 20, 140), (cx - hw - 24, 235),
                             (cx + hw + 24, 235), (cx + hw + 20, 140), (cx + hw + 14, 40),
                             (cx, -30)])
            draw.polygon(self._rgb_xy(catmull_rom(back, 6, closed=True)), fill=ident.hair)
        if ident.hair_style == "bun":
            draw.polygon(self._rgb_xy(_ellipse(cx, -18, 26, 20)), fill=ident.hair)
        # clothes and neck
        shoulders = np.array([(cx - 150, 260), (cx - 120, 214), (cx - 45, 196), (cx + 45, 196),
                              (cx + 120, 214), (cx + 150, 260)])
        draw.polygon(self._rgb_xy(shoulders), fill=ident.clothes)
        neck = np.array([(cx - 36, 140), (cx + 36, 140), (cx + 40, 205), (cx, 215), (cx - 40, 205)])
        draw.polygon(self._rgb_xy(neck), fill=shadow)
        # ears
        ear_y = 0.5 * (ident.shape[22, 1] + ident.shape[13, 1])
        for side in (-1.0, 1.0):
            half = np.interp(ear_y, ident.outline_profile[:, 0], ident.outline_profile[:, 1])
            ear = _ellipse(cx + side * (half + 2.0), ear_y, 9.0 * ident.ear_size, 19.0 * ident.ear_size)
            draw.polygon(self._rgb_xy(ear), fill=tuple(int(v) for v in skin * 0.9))
        return img

    def _draw_texture(self) -> Image.Image:
        """Static shading: skin blotches and pores (128 = unchanged)."""
        rng = np.random.default_rng(self.identity.texture_seed)
        coarse = rng.normal(0.0, 1.0, size=(CANVAS // 16 + 2, CANVAS // 16 + 2))
        low = Image.fromarray(((coarse * 4.0) + NEUTRAL_SHADE).clip(0, 255).astype(np.uint8), "L")
        low = np.asarray(low.resize((CANVAS, CANVAS), Image.Resampling.BICUBIC), dtype=np.float64)
        pores = rng.normal(0.0, 3.0, size=(CANVAS, CANVAS))
        return Image.fromarray((low + pores).clip(0, 255).astype(np.uint8), "L")

    # -- the face -------------------------------------------------------------------
    def landmarks(self, intensities, blink: float = 0.0) -> np.ndarray:
        """``[49, 2]`` face-frame landmarks for AU ``intensities`` (see ``expression_shape``)."""
        return expression_shape(self.identity.shape, intensities, self.identity.scale, blink)

    def draw_face(self, intensities, gaze=(0.0, 0.0), blink: float = 0.0
                  ) -> tuple[Image.Image, Image.Image, np.ndarray]:
        """Draw the upright face: ``(rgb canvas 1x, shading canvas, landmarks [49, 2])``."""
        ident = self.identity
        vec = intensity_vector(intensities)
        response = au_response(vec)
        amount = {au: float(response[k]) for au, k in AU_INDEX.items()}  # 0..1 per AU
        pts = self.landmarks(vec, blink)
        rgb = self._base.copy()
        d = ImageDraw.Draw(rgb)
        shade = self._texture.copy()
        s = ImageDraw.Draw(shade)
        skin = np.array(ident.skin, dtype=np.float64)
        cx = MIDLINE_X

        # head outline (the jaw drops with AU26, the chin boss rises with AU17)
        mouth_y = float(pts[[31, 37], 1].mean())
        outline = face_outline(ident.outline_profile, cx, mouth_y,
                               jaw_drop=JAW_DROP_FULL * amount[26] * ident.scale,
                               chin_raise=CHIN_RAISE_FULL * amount[17] * ident.scale)
        outline_curve = catmull_rom(outline, 4, closed=True)
        d.polygon(self._rgb_xy(outline_curve), fill=ident.skin)
        s.line(self._shade_xy(np.concatenate([outline_curve, outline_curve[:1]])), fill=108, width=7)
        chin_y = float(outline_curve[:, 1].max())

        self._draw_hair_cap(d, outline_curve)
        self._draw_eyes(d, s, pts, gaze, skin)
        self._draw_brows(d, pts)
        self._draw_nose(d, s, pts, skin)
        self._draw_mouth(d, s, pts, amount, skin)
        if ident.stubble > 0:  # beard shadow: darker towards its middle, soft rim
            area = catmull_rom(np.concatenate([
                pts[[31, 32, 33, 34, 35, 36, 37]] + [0, -3],
                [[cx + 40, mouth_y + 12], [cx + 22, chin_y - 1], [cx - 22, chin_y - 1],
                 [cx - 40, mouth_y + 12]]]), 3, closed=True)
            middle = area.mean(0)
            for frac, level in ((1.0, 0.35), (0.9, 0.7), (0.8, 1.0)):
                s.polygon(self._shade_xy(middle + (area - middle) * frac),
                          fill=int(NEUTRAL_SHADE - 20 * level * ident.stubble))
        self._draw_wrinkles(s, pts, amount, chin_y)
        if ident.fringe is not None:
            self._draw_fringe(d, outline_curve)
        if ident.glasses is not None:
            self._draw_glasses(d, outline_curve)

        rgb = rgb.reduce(self._ss)
        shade = shade.filter(ImageFilter.BoxBlur(1))
        return rgb, shade, pts

    def _draw_hair_cap(self, d: ImageDraw.ImageDraw, outline: np.ndarray) -> None:
        ident = self.identity
        if ident.hair_style == "shaved":
            colour = tuple(int(0.35 * h + 0.65 * k) for h, k in zip(ident.hair, ident.skin))
        else:
            colour = ident.hair
        cut = ident.shape[[19, 28], 1].mean() - 4.0  # sideburns stop above the eyes
        centre = np.array([MIDLINE_X, 80.0])
        top = outline[outline[:, 1] < cut]
        top = top[np.argsort(np.arctan2(top[:, 1] - centre[1], top[:, 0] - centre[0]))]  # left -> right over the top
        volume = 3.0 if ident.hair_style == "shaved" else 7.0
        direction = top - centre
        top = top + volume * direction / np.linalg.norm(direction, axis=1, keepdims=True)
        u = np.linspace(1.0, -1.0, 17)
        half = 0.5 * (top[-1, 0] - top[0, 0])
        line = np.stack([MIDLINE_X + u * half,
                         ident.hairline_y + (cut - ident.hairline_y) * np.abs(u) ** 3], axis=1)
        d.polygon(self._rgb_xy(np.concatenate([top, line])), fill=colour)

    def _draw_eyes(self, d, s, pts, gaze, skin) -> None:
        ident = self.identity
        sclera = (236, 232, 226)
        lash = (34, 26, 24)
        lower_lid = tuple(int(v) for v in skin * 0.72)
        for eye, upper, lower in zip(_EYES, _UPPER_LIDS, _LOWER_LIDS):
            contour = catmull_rom(pts[list(eye)], 4, closed=True)
            d.polygon(self._rgb_xy(contour), fill=sclera)
            centre = pts[list(eye)].mean(0) + np.asarray(gaze)
            r = ident.iris_radius * ident.scale
            d.polygon(self._rgb_xy(_ellipse(centre[0], centre[1], r, r)), fill=ident.iris)
            d.polygon(self._rgb_xy(_ellipse(centre[0], centre[1], 0.45 * r, 0.45 * r, 16)), fill=(12, 10, 10))
            d.polygon(self._rgb_xy(_ellipse(centre[0] + 0.35 * r, centre[1] - 0.35 * r, 0.22 * r, 0.22 * r, 8)),
                      fill=(250, 250, 250))
            up = catmull_rom(pts[list(upper)], 4)
            lo = catmull_rom(pts[list(lower)], 4)
            # skin above the upper lid and below the lower lid clips the iris to the opening
            d.polygon(self._rgb_xy(np.concatenate([up, (up + [0, -16])[::-1]])), fill=ident.skin)
            d.polygon(self._rgb_xy(np.concatenate([lo, (lo + [0, 10])[::-1]])), fill=ident.skin)
            d.line(self._rgb_xy(up), fill=lash, width=int(round(2.2 * self._ss)), joint="curve")
            d.line(self._rgb_xy(lo), fill=lower_lid, width=max(1, int(0.9 * self._ss)))
            # lid crease and the socket shadow above the eye
            s.line(self._shade_xy(up + [0, -ident.lid_crease]), fill=100, width=1)
            socket = _ellipse(centre[0], centre[1] - 6.0, 17.0, 8.0, 16)
            s.polygon(self._shade_xy(socket), fill=118)

    def _draw_brows(self, d, pts) -> None:
        ident = self.identity
        taper = np.array([0.5, 0.75, 0.9, 1.0, 1.0])  # thinner towards the outer end
        for brow in _BROWS:
            line = pts[list(brow)]
            t = ident.brow_thickness * taper[:, None]
            upper = catmull_rom(line - np.concatenate([np.zeros_like(t), 0.45 * t], axis=1), 3)
            lower = catmull_rom(line + np.concatenate([np.zeros_like(t), 0.55 * t], axis=1), 3)
            d.polygon(self._rgb_xy(np.concatenate([upper, lower[::-1]])), fill=ident.brow)

    def _draw_nose(self, d, s, pts, skin) -> None:
        ident = self.identity
        nostril = tuple(int(v) for v in skin * 0.32)
        n = ident.nostril_size * ident.scale
        for a, b in ((14, 15), (18, 17)):
            c = 0.45 * pts[a] + 0.55 * pts[b] + [0.0, -1.6]
            d.polygon(self._rgb_xy(_ellipse(c[0], c[1], 3.4 * n, 1.8 * n, 12)), fill=nostril)
        # relief: shadows along the bridge, a highlight on the tip, the shadow under the nose
        for side in (-1.0, 1.0):
            bridge = pts[[10, 11, 12]] + [side * 6.5, 0.0]
            s.line(self._shade_xy(np.concatenate([bridge, pts[[14 if side < 0 else 18]]])), fill=110, width=3)
        s.polygon(self._shade_xy(_ellipse(pts[13, 0], pts[13, 1] - 1.0, 5.0, 4.0, 12)), fill=146)
        s.line(self._shade_xy(catmull_rom(pts[14:19] + [0, 1.5], 3)), fill=100, width=2)
        for a in (14, 18):
            side = -1.0 if a == 14 else 1.0
            wing = pts[a] + np.array([[0.0, -6.0], [side * 2.5, -2.5], [side * 1.0, 1.5]])
            s.line(self._shade_xy(catmull_rom(wing, 3)), fill=104, width=1)

    def _draw_mouth(self, d, s, pts, amount, skin) -> None:
        ident = self.identity
        lip = np.array(ident.lip, dtype=np.float64)
        # AU24 presses the blood out of the lips; AU23 tightens and darkens them a little
        lip = lip + 0.28 * amount[24] * (skin - lip)
        lip = lip * (1.0 - 0.12 * amount[23])
        lip_rgb = tuple(int(v) for v in np.clip(lip, 0, 255))
        outer = catmull_rom(pts[31:43], 4, closed=True)
        d.polygon(self._rgb_xy(outer), fill=lip_rgb)
        upper = catmull_rom(pts[[31, 43, 44, 45, 37]], 4)
        lower = catmull_rom(pts[[31, 48, 47, 46, 37]], 4)
        gap = lower[:, 1] - upper[:, 1]
        if gap.max() > 0.3:
            d.polygon(self._rgb_xy(np.concatenate([upper, lower[::-1]])), fill=(58, 22, 26))
            teeth = upper + np.stack([np.zeros_like(gap), np.minimum(4.5 * ident.scale, 0.8 * gap)], axis=1)
            d.polygon(self._rgb_xy(np.concatenate([upper, teeth[::-1]])), fill=(232, 226, 212))
            if gap.max() > 8.0:
                bottom = lower - np.stack([np.zeros_like(gap), np.minimum(3.0, 0.25 * gap)], axis=1)
                d.polygon(self._rgb_xy(np.concatenate([bottom, lower[::-1]])), fill=(214, 206, 190))
        d.line(self._rgb_xy(upper), fill=tuple(int(v) for v in lip * 0.5), width=max(1, int(1.0 * self._ss)))
        # relief: the shadow under the lower lip, the philtrum
        below = pts[[42, 41, 40, 39, 38]] + [0, 3.0]
        s.line(self._shade_xy(catmull_rom(below, 3)), fill=110, width=3)
        for side in (-1.0, 1.0):
            s.line(self._shade_xy([pts[16] + [side * 2.5, 3.0], pts[34] + [side * 3.0, -2.0]]),
                   fill=116, width=1)

    def _draw_wrinkles(self, s, pts, a, chin_y) -> None:
        """The appearance changes of each AU on the shading layer (depth grows with
        intensity; at intensity 1 they are faint, as in life)."""
        cx = MIDLINE_X
        sides = ((-1.0, 19), (1.0, 28))  # (side, outer eye corner)
        if a[1] > 0:  # AU1: horizontal lines in the middle of the forehead
            top = min(pts[4, 1], pts[5, 1])
            for k, depth in enumerate((62.0, 52.0, 40.0)):
                half = 14.0 + 4.0 * k
                x = np.linspace(-half, half, 7)
                y = top - 9.0 - 5.5 * k - 2.5 * (1.0 - (x / half) ** 2)
                s.line(self._shade_xy(np.stack([cx + x, y], axis=1)), fill=_shade(a[1], depth), width=1)
        if a[2] > 0:  # AU2: arched lines above the outer brows
            for side_brow in ((0, 1, 2), (9, 8, 7)):
                for k, depth in enumerate((58.0, 44.0)):
                    arc = pts[list(side_brow)] + [0.0, -8.5 - 5.5 * k]
                    s.line(self._shade_xy(catmull_rom(arc, 3)), fill=_shade(a[2], depth), width=1)
        if a[4] > 0:  # AU4: vertical furrows between the brows, shadow, procerus line
            top = 0.5 * (pts[4, 1] + pts[5, 1])
            s.polygon(self._shade_xy(_ellipse(cx, top - 1.0, 8.0, 6.0, 12)), fill=_shade(a[4], 24.0))
            gap = 0.5 * (pts[5, 0] - pts[4, 0])
            for side in (-1.0, 1.0):
                x = cx + side * min(5.0, 0.3 * gap)
                s.line(self._shade_xy([(x + side * 0.8, top - 11.0), (x, top + 3.0)]),
                       fill=_shade(a[4], 72.0), width=1)
            s.line(self._shade_xy([(cx - 5.0, pts[10, 1] - 1.0), (cx + 5.0, pts[10, 1] - 1.0)]),
                   fill=_shade(a[4], 40.0), width=1)
            for brow, upper in (((1, 2, 3, 4), (20, 21, 22)), ((8, 7, 6, 5), (27, 26, 25))):
                # the lowered brow pushes the eye-cover fold down: a shadow between brow and lid
                fold = 0.5 * (pts[list(brow[1:])] + pts[list(upper)]) + [0.0, 1.0]
                s.line(self._shade_xy(catmull_rom(fold, 3)), fill=_shade(a[4], 50.0), width=3)
                # oblique wrinkles above the inner brow
                inner = pts[brow[-1]]
                side = -1.0 if inner[0] < cx else 1.0
                s.line(self._shade_xy([inner + [side * 1.0, -5.0], inner + [side * 6.0, -10.0]]),
                       fill=_shade(a[4], 52.0), width=1)
        for side, corner in sides:
            eye = (19, 20, 21, 22, 23, 24) if side < 0 else (25, 26, 27, 28, 29, 30)
            centre = pts[list(eye)].mean(0)
            lower = (19, 24, 23, 22) if side < 0 else (28, 29, 30, 25)
            if a[6] > 0:  # AU6: crow's feet, infraorbital furrow, raised cheek
                for dy in (-4.0, 0.0, 4.5):
                    s.line(self._shade_xy([pts[corner] + [side * 3.0, 0.3 * dy],
                                           pts[corner] + [side * 11.0, dy]]),
                           fill=_shade(a[6], 58.0), width=1)
                furrow = catmull_rom(pts[list(lower)], 3) + [0.0, 5.5]
                furrow[:, 0] = centre[0] + (furrow[:, 0] - centre[0]) * 1.15
                s.line(self._shade_xy(furrow), fill=_shade(a[6], 46.0), width=1)
                _soft_blob(s, self._shade_xy, centre[0] + side * 4.0, centre[1] + 24.0 - 4.0 * a[6],
                           16.0, 10.0, _shade(a[6], -14.0))
                s.line(self._shade_xy(catmull_rom(
                    np.array([[centre[0] - 12.0, centre[1] + 34.0], [centre[0], centre[1] + 37.0],
                              [centre[0] + 12.0, centre[1] + 34.0]]) - [0.0, 4.0 * a[6]], 3)),
                    fill=_shade(a[6], 26.0), width=2)
            if a[7] > 0:  # AU7: the tensed lower lid bulge
                bulge = catmull_rom(pts[list(lower)], 3) + [0.0, 1.8]
                s.line(self._shade_xy(bulge), fill=_shade(a[7], 62.0), width=1)
        if a[9] > 0:  # AU9: wrinkles across the nose bridge and at its root
            for k, dy in enumerate((3.0, 6.5, 10.0)):
                y = pts[10, 1] + dy
                s.line(self._shade_xy([(cx - 6.0, y + 0.8), (cx, y), (cx + 6.0, y + 0.8)]),
                       fill=_shade(a[9], 66.0 - 6.0 * k), width=1)
            for side in (-1.0, 1.0):
                s.line(self._shade_xy([(cx + side * 5.0, pts[10, 1] + 2.0),
                                       (cx + side * 11.0, pts[10, 1] + 10.0)]),
                       fill=_shade(a[9], 46.0), width=1)
        for side, wing, corner in ((-1.0, 14, 31), (1.0, 18, 37)):
            fold = a[10] * 0.55 + a[12] * 0.6 + a[9] * 0.35 + a[6] * 0.35
            if fold > 0:  # AU10 / AU12 / AU9: the nasolabial furrow deepens
                bend = -side * (8.0 + 3.0 * a[12])
                curve = np.array([pts[wing] + [side * 3.0, -2.0],
                                  pts[wing] + [side * 8.5 - 0.3 * bend, 9.0],
                                  pts[corner] + [side * (5.0 + 2.0 * a[12]), -3.0 + 1.5 * a[12]]])
                s.line(self._shade_xy(catmull_rom(curve, 4)), fill=_shade(min(fold, 1.0), 70.0), width=2)
            if a[12] > 0:  # cheek lifted by the smile
                eye_c = pts[[19, 22] if side < 0 else [25, 28]].mean(0)
                _soft_blob(s, self._shade_xy, eye_c[0] + side * 6.0, eye_c[1] + 32.0 - 3.0 * a[12],
                           14.0, 9.0, _shade(a[12], -12.0))
            if a[14] > 0:  # AU14: dimple beside the corner
                c = pts[corner]
                s.line(self._shade_xy(catmull_rom(np.array([c + [side * 4.5, -5.0], c + [side * 6.0, 0.0],
                                                            c + [side * 5.0, 5.0]]), 3)),
                       fill=_shade(a[14], 56.0), width=1)
                s.polygon(self._shade_xy(_ellipse(c[0] + side * 2.0, c[1], 2.5, 4.0, 10)),
                          fill=_shade(a[14], -6.0))
            if a[15] > 0:  # AU15: lines pulled down from the corners
                c = pts[corner]
                s.line(self._shade_xy([c + [side * 1.0, 2.0], c + [side * 3.5, 14.0]]),
                       fill=_shade(a[15], 50.0), width=1)
            if a[26] > 0:  # AU26: hollow cheeks as the jaw drops
                _soft_blob(s, self._shade_xy, cx + side * 40.0, 138.0, 6.0, 16.0, _shade(a[26], 20.0))
        if a[17] > 0:  # AU17: mentolabial furrow, chin boss, dimpled chin
            y = pts[40, 1]
            furrow = np.array([[pts[41, 0] - 4.0, y + 4.0], [cx, y + 6.5], [pts[39, 0] + 4.0, y + 4.0]])
            s.line(self._shade_xy(catmull_rom(furrow, 3)), fill=_shade(a[17], 58.0), width=1)
            top, bottom = y + 10.0, max(y + 14.0, chin_y - 5.0)
            _soft_blob(s, self._shade_xy, cx, 0.5 * (top + bottom), 15.0, 0.5 * (bottom - top) + 3.0,
                       _shade(a[17], -16.0))
            level = _shade(a[17], 48.0)
            for u, v in self._chin_dots:
                px, py = cx + 16.0 * u * (1.0 - 0.4 * v), top + (bottom - top) * v
                s.ellipse(self._shade_xy([(px - 0.6, py - 0.6), (px + 0.6, py + 0.6)]), fill=level)
        if a[23] > 0:  # AU23: sharpened lip edges, fine lines above the upper lip
            s.line(self._shade_xy(np.concatenate([catmull_rom(pts[31:43], 3, closed=True), pts[31:32]])),
                   fill=_shade(a[23], 45.0), width=1)
            for dx in (-14.0, -9.0, -4.0, 4.0, 9.0, 14.0):
                base = np.interp(cx + dx, pts[31:38, 0], pts[31:38, 1])
                s.line(self._shade_xy([(cx + dx, base - 1.0), (cx + dx * 1.05, base - 5.0)]),
                       fill=_shade(a[23], 50.0), width=1)
        if a[24] > 0:  # AU24: bulges above and below the pressed lips
            for y, sign in ((pts[34, 1] - 5.0, -1.0), (pts[40, 1] + 4.5, 1.0)):
                half = 14.0
                arc = np.array([[cx - half, y - sign * 1.5], [cx, y], [cx + half, y - sign * 1.5]])
                s.line(self._shade_xy(catmull_rom(arc, 3)), fill=_shade(a[24], 40.0), width=1)
                s.line(self._shade_xy(catmull_rom(arc + [0.0, -sign * 2.5], 3)),
                       fill=_shade(a[24], -18.0), width=2)

    def _draw_fringe(self, d, outline) -> None:
        ident, fr = self.identity, self.identity.fringe
        side = fr.side
        outer_x = MIDLINE_X + side * (np.abs(outline[:, 0] - MIDLINE_X).max() + 4.0)
        pts = np.array([
            (MIDLINE_X - side * 6.0, ident.hairline_y - 2.0),
            (fr.inner_x - side * 4.0, fr.bottom - 10.0),
            (fr.inner_x, fr.bottom - 2.0),
            (0.5 * (fr.inner_x + outer_x), fr.bottom),
            (outer_x, fr.bottom - 6.0),
            (outer_x, ident.hairline_y - 10.0),
        ])
        d.polygon(self._rgb_xy(catmull_rom(pts, 3, closed=True)), fill=ident.hair)

    def _draw_glasses(self, d, outline) -> None:
        ident, g = self.identity, self.identity.glasses
        shape = ident.shape
        width = max(1, int(round(g.rim * self._ss)))
        lenses = []
        for eye in ((19, 20, 21, 22, 23, 24), (25, 26, 27, 28, 29, 30)):
            c = shape[list(eye)].mean(0) + [0.0, g.centre_dy]
            if g.round:
                ring = _ellipse(c[0], c[1], g.half_width, g.half_height, 32)
            else:
                hw, hh = g.half_width, g.half_height
                ring = catmull_rom(np.array([(c[0] - hw, c[1] - hh), (c[0] + hw, c[1] - hh),
                                             (c[0] + hw, c[1] + hh * 0.8), (c[0] - hw, c[1] + hh * 0.8)]),
                                   6, closed=True)
            d.line(self._rgb_xy(np.concatenate([ring, ring[:1]])), fill=g.colour, width=width, joint="curve")
            lenses.append(ring)
        left, right = lenses
        bridge_l = left[np.argmax(left[:, 0] - 0.5 * left[:, 1])]
        bridge_r = right[np.argmin(right[:, 0] + 0.5 * right[:, 1])]
        d.line(self._rgb_xy(np.array([bridge_l, [MIDLINE_X, bridge_l[1] - 2.0], bridge_r])), fill=g.colour,
               width=width, joint="curve")
        half = np.abs(outline[:, 0] - MIDLINE_X).max()
        for ring, side in ((left, -1.0), (right, 1.0)):
            edge = ring[np.argmin(ring[:, 0])] if side < 0 else ring[np.argmax(ring[:, 0])]
            d.line(self._rgb_xy(np.array([edge, [MIDLINE_X + side * half, edge[1] + 2.0]])), fill=g.colour,
                   width=width)

    # -- capture --------------------------------------------------------------------
    def capture(self, rgb: Image.Image, shade: Image.Image, capture: Capture,
                noise_bank: np.ndarray | None = None) -> Image.Image:
        """Map the upright canvases into the captured frame and degrade it like a camera.

        ``noise_bank``: a standard-normal ``[n + pad, n + pad, 3]`` float32 field from which
        the frame's sensor noise is cut at ``capture.noise_offset`` (one field per sequence
        is much cheaper than fresh noise per frame, and as random to a model).
        """
        n = self.image_size
        # Shading: ImageChops.multiply computes a * b / 255, so shading levels are mapped
        # to a neutral of SHADE_MULTIPLY_NEUTRAL (room for highlights); the gain below
        # undoes the overall darkening.
        shade = shade.point(_SHADE_LUT)
        lit = ImageChops.multiply(rgb, Image.merge("RGB", (shade, shade, shade)))
        m, t = capture_matrix(capture, n)
        minv = np.linalg.inv(m)
        # Pillow maps output pixel corners (o + 0.5) to input corners (c + 0.5).
        k = -minv @ np.array([0.5, 0.5]) - minv @ t + MARGIN + 0.5
        data = (minv[0, 0], minv[0, 1], k[0], minv[1, 0], minv[1, 1], k[1])
        background = tuple(int(v * SHADE_MULTIPLY_NEUTRAL / 255) for v in self.identity.background)
        img = lit.transform((n, n), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR,
                            fillcolor=background)
        pixels = np.asarray(img, dtype=np.float32)  # [n, n, 3]
        axis = (np.arange(n, dtype=np.float32) - (n - 1) / 2.0) / n
        gain = np.float32(capture.ambient * 255.0 / SHADE_MULTIPLY_NEUTRAL) * (
            1.0 + np.float32(capture.light[0]) * axis[None, :] + np.float32(capture.light[1]) * axis[:, None])
        pixels *= gain[..., None]
        pixels *= np.asarray(capture.cast, dtype=np.float32)
        _blur_inplace(pixels, capture.blur)
        if capture.noise > 0 and noise_bank is not None:
            ox, oy = capture.noise_offset
            pixels += noise_bank[oy:oy + n, ox:ox + n] * np.float32(capture.noise)
        np.clip(pixels, 0.0, 255.0, out=pixels)
        return Image.fromarray(pixels.astype(np.uint8), "RGB")

    def render(self, intensities, capture: Capture, noise_bank: np.ndarray | None = None
               ) -> tuple[Image.Image, np.ndarray]:
        """One captured frame: ``(RGB image, landmarks [49, 2] in image coordinates)``.

        JPEG compression is applied when the frame is encoded (:func:`encode_frame`),
        where the file format is chosen.
        """
        rgb, shade, pts = self.draw_face(intensities, capture.gaze, capture.blink)
        image = self.capture(rgb, shade, capture, noise_bank)
        return image, to_image(pts, capture, self.image_size)


def _blur_inplace(pixels: np.ndarray, sigma: float) -> None:
    """Gaussian-like blur of ``[H, W, C]`` float pixels by repeated [1, 2, 1]-diffusion
    steps (each adds variance ``w / 2`` per axis); cheaper than Pillow's RGB blur."""
    variance = float(sigma) ** 2
    if variance < 0.01:
        return
    passes = int(math.ceil(variance / 0.5))
    w = np.float32(variance / (0.5 * passes) / 4.0)
    for _ in range(passes):
        for axis in (0, 1):
            x = np.moveaxis(pixels, axis, 0)  # a view
            lap = x[:-2] + x[2:]
            lap -= 2.0 * x[1:-1]
            x[1:-1] += w * lap


def encode_frame(image: Image.Image, fmt: str, jpeg_quality: int | None) -> bytes:
    """File bytes of a frame with fixed encoder options (so output is reproducible).

    ``fmt="jpg"``: baseline JPEG, 4:2:0 chroma subsampling, no optimisation.
    ``fmt="png"``: the frame first goes through the same JPEG compression (DISFA frames
    come from compressed video), then lossless PNG (zlib level 1, run-length strategy:
    fast, and smaller than the default strategy on noisy frames).
    """
    def jpeg(img: Image.Image, quality: int) -> bytes:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=int(quality), subsampling=2, optimize=False,
                 progressive=False)
        return buffer.getvalue()

    if fmt == "jpg":
        return jpeg(image, 90 if jpeg_quality is None else jpeg_quality)
    if fmt == "png":
        if jpeg_quality is not None:
            image = Image.open(io.BytesIO(jpeg(image, jpeg_quality))).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE, optimize=False)
        return buffer.getvalue()
    raise ValueError(f"fmt: expected 'jpg' or 'png', found {fmt!r}")


def frame_rng(seed: int, dataset: str, subject: str, sequence: str, frame: int) -> np.random.Generator:
    """The generator of one frame's random choices (noise, jitter, JPEG quality)."""
    return rng_for(seed, dataset, subject, sequence, int(frame), purpose="frame")


__all__ = [
    "CANVAS",
    "Capture",
    "FaceRenderer",
    "MARGIN",
    "SequenceCapture",
    "capture_matrix",
    "encode_frame",
    "frame_rng",
    "to_image",
]

"""Face alignment: a similarity transform from five landmark-derived points to the
canonical template (:data:`mgrr_pyg.facs.TEMPLATE_POINTS`), applied to the image
(200x200 output, border grey 128) and to the landmarks.

Transforms are ``[2, 3]`` matrices ``[A | t]`` mapping a point ``p`` (0-based pixels,
pixel centres at integer positions) to ``A @ p + t``.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from mgrr_pyg.facs import ALIGNED_SIZE, TEMPLATE_POINTS, alignment_points

#: Grey level of the border outside the source image.
BORDER_GREY = 128


def estimate_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""Least-squares similarity (rotation, uniform scale, translation; no reflection)
    mapping ``source`` points onto ``target`` points (Umeyama, 1991).

    .. math::
        \min_{s, R, t} \sum_k \lVert s R\, p_k + t - q_k \rVert^2

    Args:
        source: ``[K, 2]`` points, K >= 2, not all equal.
        target: ``[K, 2]`` points.

    Returns:
        ``[2, 3]`` matrix ``[sR | t]``.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"estimate_similarity: expected two [K, 2] point sets with K >= 2, "
                         f"found {list(src.shape)} and {list(dst.shape)}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    variance = (src_c**2).sum() / len(src)
    if not variance > 1e-12:
        raise ValueError("estimate_similarity: the source points coincide; no transform is defined")
    covariance = dst_c.T @ src_c / len(src)  # [2, 2]
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # forbid a reflection
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / variance
    translation = dst_mean - scale * rotation @ src_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``[2, 3]`` transform to ``[..., 2]`` points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def alignment_transform(landmarks: np.ndarray) -> np.ndarray:
    """``[2, 3]`` similarity taking a face's five alignment points (eye centres, nose
    point 13, mouth corners 31 and 37 of ``landmarks [49, 2]``) onto the template."""
    return estimate_similarity(alignment_points(np.asarray(landmarks, dtype=np.float64)),
                               TEMPLATE_POINTS)


def warp_image(image: Image.Image, matrix: np.ndarray, size: int = ALIGNED_SIZE,
               fill: int = BORDER_GREY) -> Image.Image:
    """Resample ``image`` through the forward transform ``matrix`` into a ``size`` x
    ``size`` RGB image (bilinear; outside the source filled with grey ``fill``)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]  # output -> input
    # Pillow puts pixel centres at +0.5; move the transform into its convention.
    linear, offset = inverse[:, :2], inverse[:, 2]
    offset = offset + 0.5 - linear @ np.array([0.5, 0.5])
    data = (linear[0, 0], linear[0, 1], offset[0], linear[1, 0], linear[1, 1], offset[1])
    return image.convert("RGB").transform((size, size), Image.Transform.AFFINE, data,
                                          resample=Image.Resampling.BILINEAR,
                                          fillcolor=(fill, fill, fill))


def align_face(image: Image.Image, landmarks: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Align one face: ``(200x200 RGB image, landmarks [49, 2] in its pixels)``."""
    matrix = alignment_transform(landmarks)
    return warp_image(image, matrix), transform_points(landmarks, matrix)


__all__ = ["BORDER_GREY", "align_face", "alignment_transform", "estimate_similarity",
           "transform_points", "warp_image"]

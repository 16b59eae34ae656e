"""From a face in a frame to the model's input, exactly as the data preparation and the
test-time dataset make it: alignment to the 200x200 template
(:func:`mgrr_pyg.data.align.alignment_transform` / :func:`~mgrr_pyg.data.align.warp_image`,
the code ``mgrr-prepare`` uses), the centre 176x176 crop (offset 12) and pixels mapped
linearly from [0, 255] to [-1, 1].

Transforms are ``[2, 3]`` matrices ``[A | t]`` (``p -> A p + t``), as in
:mod:`mgrr_pyg.data.align`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from mgrr_pyg.data.align import alignment_transform, transform_points, warp_image
from mgrr_pyg.facs import ALIGNED_SIZE, CENTRE_CROP_OFFSET, CROP_SIZE

#: How far beyond the aligned face's footprint a face patch reaches (fraction of its
#: size on each side): room for the refined alignment to move.
PATCH_MARGIN = 0.35


def centre_crop_pixels(aligned: Image.Image) -> np.ndarray:
    """``[3, 176, 176]`` float32 in [-1, 1]: the centre crop of a 200x200 aligned face,
    scaled as :class:`~mgrr_pyg.data.PreparedListDataset` scales its test samples."""
    if aligned.size != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise ValueError(f"aligned: expected a {ALIGNED_SIZE}x{ALIGNED_SIZE} aligned face, found "
                         f"{aligned.size[0]}x{aligned.size[1]}")
    o = CENTRE_CROP_OFFSET
    crop = aligned.crop((o, o, o + CROP_SIZE, o + CROP_SIZE))
    pixels = np.asarray(crop.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    image = np.empty(pixels.shape, dtype=np.float32)
    np.multiply(pixels, 1.0 / 127.5, out=image)
    image -= 1.0
    return image


def crop_transform(landmarks: np.ndarray) -> np.ndarray:
    """``[2, 3]`` frame pixels -> crop pixels for a face with ``landmarks [49, 2]`` (the
    alignment similarity, then the centre-crop offset)."""
    matrix = alignment_transform(landmarks).copy()
    matrix[:, 2] -= CENTRE_CROP_OFFSET
    return matrix


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a ``[2, 3]`` affine transform."""
    return np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]


class FacePatch:
    """The part of a frame around one face, cut without resampling, so that the face can
    be aligned again (after landmark refinement) once the frame is gone: warping the
    patch gives the same pixels as warping the frame wherever the aligned face stays
    inside the patch."""

    def __init__(self, image: Image.Image, landmarks: np.ndarray):
        # The frame region the aligned 200x200 face is resampled from, grown by the margin.
        to_aligned = alignment_transform(landmarks)
        corners = np.array([[0, 0], [ALIGNED_SIZE, 0], [0, ALIGNED_SIZE], [ALIGNED_SIZE, ALIGNED_SIZE]],
                           dtype=np.float64)
        footprint = transform_points(corners, invert(to_aligned))
        low, high = footprint.min(0), footprint.max(0)
        grow = (high - low) * PATCH_MARGIN
        x0, y0 = np.floor(np.maximum(low - grow, 0)).astype(int)
        x1 = int(np.ceil(min(high[0] + grow[0], image.width)))
        y1 = int(np.ceil(min(high[1] + grow[1], image.height)))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        self.offset = np.array([x0, y0], dtype=np.float64)
        self.image = image.crop((int(x0), int(y0), x1, y1))

    def model_input(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pixels [3, 176, 176], frame -> crop transform [2, 3])`` for the face
        aligned with ``landmarks [49, 2]`` (frame pixels)."""
        to_crop = crop_transform(landmarks)
        to_aligned = alignment_transform(landmarks)
        # Patch pixel p is frame pixel p + offset.
        patch_to_aligned = to_aligned.copy()
        patch_to_aligned[:, 2] += to_aligned[:, :2] @ self.offset
        return centre_crop_pixels(warp_image(self.image, patch_to_aligned)), to_crop


def model_input(image: Image.Image, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels [3, 176, 176], frame -> crop transform [2, 3])`` of the face with
    ``landmarks [49, 2]`` (frame pixels) in ``image``."""
    aligned = warp_image(image, alignment_transform(landmarks))
    return centre_crop_pixels(aligned), crop_transform(landmarks)


__all__ = ["FacePatch", "PATCH_MARGIN", "centre_crop_pixels", "crop_transform", "invert",
           "model_input"]

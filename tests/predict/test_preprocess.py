"""The model input is made exactly as the data preparation and the test-time dataset
make theirs."""
from __future__ import annotations

import numpy as np
from PIL import Image

from mgrr_pyg.data.align import align_face, transform_points
from mgrr_pyg.predict.faces import box_template_landmarks
from mgrr_pyg.predict.preprocess import FacePatch, model_input

from .conftest import render_face


def dataset_test_sample(image: Image.Image, landmarks: np.ndarray):
    """The reference: align as mgrr-prepare does, then crop and scale as
    PreparedListDataset does at test time (centre crop at offset 12, x / 127.5 - 1)."""
    aligned, points = align_face(image, landmarks)
    crop = np.asarray(aligned, dtype=np.float32)[12:188, 12:188]
    return (crop / np.float32(127.5) - np.float32(1.0)).transpose(2, 0, 1), points - 12


def test_model_input_equals_the_prepared_test_sample():
    pixels, landmarks = render_face("F002", size=200, scale=0.8)
    image = Image.fromarray(pixels)
    expected, expected_points = dataset_test_sample(image, landmarks)
    got, to_crop = model_input(image, landmarks)
    assert got.dtype == np.float32 and got.shape == (3, 176, 176)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(transform_points(landmarks, to_crop), expected_points, atol=1e-9)


def test_a_face_patch_aligns_to_the_same_pixels_as_the_whole_frame(astronaut):
    image = Image.fromarray(astronaut)
    start = box_template_landmarks([175, 66, 100, 100])
    patch = FacePatch(image, start)
    assert patch.image.width < image.width / 2  # a small part of the frame is kept
    # a refined alignment a few pixels and degrees away
    angle = np.radians(4.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = start.mean(0)
    moved = (start - centre) @ rotation.T * 1.05 + centre + [3.0, -2.0]
    from_patch, matrix_patch = patch.model_input(moved)
    from_frame, matrix_frame = model_input(image, moved)
    np.testing.assert_array_equal(from_patch, from_frame)
    np.testing.assert_allclose(matrix_patch, matrix_frame)

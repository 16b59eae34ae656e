"""Faces without downloads: the LBP cascade on real photographs, the box template
against hand-placed points, the MediaPipe mesh mapping, tracking by overlap."""
from __future__ import annotations

import numpy as np
import pytest

from mgrr_pyg.predict.faces import (BOX_TEMPLATE, MESH_TO_49, CascadeFaceFinder, FaceTracker,
                                    box_template_landmarks, calibrate_box_template, iou,
                                    make_face_finder)


def named_points(points: dict) -> np.ndarray:
    """The five alignment points (eye centres, nose, mouth corners) of a hand-annotated
    face; the nose was not placed (NaN)."""
    return np.array([points["first_eye_centre"], points["second_eye_centre"], [np.nan, np.nan],
                     points["first_mouth_corner"], points["second_mouth_corner"]])


@pytest.fixture(scope="module")
def cascade():
    return CascadeFaceFinder()


@pytest.fixture(scope="module")
def real_boxes(cascade, astronaut, grace_hopper):
    return {"astronaut": cascade(astronaut), "grace_hopper": cascade(grace_hopper)}


def test_the_cascade_finds_exactly_the_one_face_of_each_real_photo(real_boxes, hand_points):
    for name, faces in real_boxes.items():
        assert len(faces) == 1, name
        x, y, w, h = faces[0].box
        points = named_points(hand_points[name])[[0, 1, 3, 4]]
        # the hand-placed eyes and mouth corners lie inside the box
        assert ((points >= [x, y]) & (points <= [x + w, y + h])).all(), name
        assert 0.5 < faces[0].confidence < 1


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_jpeg_copies_of_the_real_photos_still_have_one_face(cascade, astronaut, grace_hopper,
                                                            quality):
    """A copy saved as JPEG (what users have) moves the cascade's weak windows around; at
    quality 75 three of them once agreed on Grace Hopper's uniform. Only the face has
    the votes."""
    import io

    from PIL import Image

    for image in (astronaut, grace_hopper):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        copy = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        faces = cascade(copy)
        assert len(faces) == 1, [(f.box.round().tolist(), f.confidence) for f in faces]


def test_the_box_template_lands_within_10_percent_of_hand_placed_points(real_boxes, hand_points):
    for name, faces in real_boxes.items():
        truth = named_points(hand_points[name])
        iod = np.linalg.norm(truth[0] - truth[1])
        placed = box_template_landmarks(faces[0].box)
        eyes = np.stack([placed[19:25].mean(0), placed[25:31].mean(0)])
        mouth = placed[[31, 37]]
        errors = np.linalg.norm(np.concatenate([eyes, mouth]) - truth[[0, 1, 3, 4]], axis=1) / iod
        assert (errors < 0.10).all(), (name, errors)


def test_box_template_constants_are_the_fit_to_the_hand_placed_points(real_boxes, hand_points):
    samples = [(real_boxes[name][0].box, named_points(hand_points[name])) for name in real_boxes]
    template, errors = calibrate_box_template(samples)
    np.testing.assert_allclose(template, BOX_TEMPLATE, rtol=2e-4, atol=2e-5)
    assert max(errors) < 0.07


def test_box_template_scales_and_moves_with_the_box():
    a = box_template_landmarks([10, 20, 100, 100])
    b = box_template_landmarks([110, 70, 200, 200])  # moved by (100, 50), twice the size
    np.testing.assert_allclose(b - b.mean(0), 2 * (a - a.mean(0)))
    np.testing.assert_allclose(b.mean(0) - [110, 70], 2 * (a.mean(0) - [10, 20]))
    with pytest.raises(ValueError, match="positive width"):
        box_template_landmarks([0, 0, 0, 10])


def test_iou_against_hand_computed_values():
    assert float(iou([0, 0, 10, 10], [5, 0, 10, 10])) == pytest.approx(50 / 150)
    assert float(iou([0, 0, 10, 10], [20, 20, 5, 5])) == 0.0
    assert float(iou([0, 0, 10, 10], [0, 0, 10, 10])) == 1.0
    assert float(iou([0, 0, 4, 4], [1, 1, 2, 2])) == pytest.approx(4 / 16)


def test_tracker_keeps_indices_by_overlap_and_never_reuses_one():
    tracker = FaceTracker(min_iou=0.3, max_gap=2)
    left, right = np.array([0, 0, 50, 50]), np.array([100, 0, 50, 50])
    assert tracker.assign([right, left]) == [1, 0]  # numbered left to right
    # both move a little, given in the other order
    assert tracker.assign([left + [5, 0, 0, 0], right + [4, 2, 0, 0]]) == [0, 1]
    assert tracker.assign([right + [6, 2, 0, 0]]) == [1]  # the left face is gone for a frame
    assert tracker.assign([left + [8, 0, 0, 0], right + [6, 2, 0, 0]]) == [0, 1]
    far = np.array([300, 0, 50, 50])
    assert tracker.assign([far]) == [2]  # a new face: a new index
    for _ in range(3):
        tracker.assign([])
    # after more than max_gap frames away, the old faces come back as new ones
    assert tracker.assign([left, right]) == [3, 4]


def test_mesh_mapping_is_49_distinct_vertices():
    assert len(MESH_TO_49) == 49 and len(set(MESH_TO_49)) == 49
    assert all(0 <= v < 468 for v in MESH_TO_49)


def test_unknown_face_finder_is_refused():
    with pytest.raises(ValueError, match="cascade"):
        make_face_finder("dlib")


def test_mediapipe_without_the_extra_names_it():
    try:
        import mediapipe  # noqa: F401  (only whether it imports)
    except ImportError:
        with pytest.raises(ImportError, match=r"mgrr_pyg\[mediapipe\]"):
            make_face_finder("mediapipe")
    else:  # the extra's own environment: the finder builds
        make_face_finder("mediapipe").close()

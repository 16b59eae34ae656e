"""Face alignment: least-squares similarity, warping convention, known transforms undone."""
import numpy as np
import pytest
from raw_tree_helpers import MARKS, draw_face, nearest_mark, reference_faces, skimage_similarity
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from skimage.transform import SimilarityTransform, warp

from mgrr_pyg.data import align_face, alignment_transform, estimate_similarity, transform_points, warp_image
from mgrr_pyg.facs import TEMPLATE_POINTS, alignment_points


def similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.concatenate([rot, [[tx], [ty]]], axis=1)


points = arrays(np.float64, st.tuples(st.integers(3, 8), st.just(2)),
                elements=st.floats(-200, 200, allow_nan=False))


@given(points, points.map(lambda p: p))
def test_least_squares_similarity_agrees_with_skimage(source, target):
    n = min(len(source), len(target))
    source, target = source[:n], target[:n]
    assume(np.linalg.svd(source - source.mean(0), compute_uv=False)[-1] > 1.0)
    assume(np.abs(target - target.mean(0)).max() > 1.0)
    reference = skimage_similarity(source, target)
    ours = estimate_similarity(source, target)
    np.testing.assert_allclose(ours, reference.params[:2], atol=1e-6 * (1 + np.abs(reference.params).max()))


@given(st.floats(-180, 180), st.floats(0.2, 5), st.floats(-300, 300), st.floats(-300, 300))
def test_an_exact_similarity_is_recovered(angle, scale, tx, ty):
    source = reference_faces()[0]
    matrix = similarity(angle, scale, tx, ty)
    estimate = estimate_similarity(source, transform_points(source, matrix))
    np.testing.assert_allclose(estimate, matrix, atol=1e-7 * max(1.0, abs(tx), abs(ty)))


def test_a_mirrored_target_gives_no_reflection():
    source = reference_faces()[0]
    mirrored = source * np.array([-1.0, 1.0])
    assert np.linalg.det(estimate_similarity(source, mirrored)[:, :2]) > 0


def test_coincident_points_are_an_error():
    with pytest.raises(ValueError, match="coincide"):
        estimate_similarity(np.ones((5, 2)), np.zeros((5, 2)))


def test_warp_keeps_pixel_centres_at_integer_positions():
    image = np.zeros((30, 30, 3), np.uint8)
    image[5, 7] = 255  # x=7, y=5
    out = np.asarray(warp_image(Image.fromarray(image), similarity(0, 2.0, 3.0, 1.0), size=80))
    assert np.unravel_index(out[..., 0].argmax(), out.shape[:2]) == (11, 17)  # (2*5+1, 2*7+3)
    assert out[11, 17].tolist() == [255, 255, 255]
    assert out[40, 40].tolist() == [0, 0, 0]  # from source pixel (18.5, 19.5): black
    assert out[79, 79].tolist() == [128, 128, 128]  # from (38, 39), outside: grey border


@pytest.mark.parametrize("face", range(len(reference_faces())))
def test_alignment_points_land_near_the_template_whatever_the_pose(face):
    landmarks = reference_faces()[face]
    aligned = transform_points(landmarks, alignment_transform(landmarks))
    assert np.abs(alignment_points(aligned) - TEMPLATE_POINTS).max() < 5.0
    posed = transform_points(landmarks, similarity(25.0, 1.7, -40.0, 90.0))
    aligned_posed = transform_points(posed, alignment_transform(posed))
    np.testing.assert_allclose(aligned_posed, aligned, atol=1e-8)


def test_an_image_with_a_known_similarity_is_undone():
    rng = np.random.default_rng(0)
    face = reference_faces()[3]
    # A face whose alignment is the identity: least squares is equivariant, so aligning
    # an aligned face changes nothing.
    canonical = transform_points(face, alignment_transform(face))
    np.testing.assert_allclose(alignment_transform(canonical), np.eye(2, 3), atol=1e-9)
    original = np.asarray(draw_face(200, canonical, rng))

    known = np.vstack([similarity(-17.0, 1.35, 40.0, 25.0), [0, 0, 1]])
    # The raw frame, rendered independently with scikit-image (same pixel convention).
    raw = warp(original / 255.0, SimilarityTransform(matrix=known).inverse, output_shape=(320, 320),
               order=1, cval=0.5)
    raw = Image.fromarray(np.round(raw * 255).astype(np.uint8))
    raw_landmarks = transform_points(canonical, known[:2])

    aligned, aligned_landmarks = align_face(raw, raw_landmarks)
    np.testing.assert_allclose(aligned_landmarks, canonical, atol=1e-6)
    assert aligned.size == (200, 200)
    difference = np.abs(np.asarray(aligned, dtype=np.float64) - original)[20:180, 20:180]
    assert difference.mean() < 3.0, difference.mean()
    # The blobs moved with the image: the colour at each aligned marked landmark is its own.
    pixels = np.asarray(aligned)
    for index in MARKS:
        x, y = np.round(aligned_landmarks[index]).astype(int)
        assert nearest_mark(pixels[y, x]) == index
        error = np.abs(blob_centre(pixels, index, (x, y)) - aligned_landmarks[index]).max()
        assert error < 0.25


def blob_centre(pixels, index, near, radius=8):
    """Sub-pixel centre of the blob of MARKS[index] around ``near`` (weighted by how
    close each pixel's colour is to the blob's)."""
    x0, y0 = near
    window = pixels[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1].astype(np.float64)
    distance = np.abs(window - np.asarray(MARKS[index], dtype=np.float64)).sum(-1)
    weight = np.clip(1.0 - distance / 150.0, 0.0, None)
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return np.array([x0 + (weight * xx).sum() / weight.sum(), y0 + (weight * yy).sum() / weight.sum()])

"""What each AU does to the landmarks: the direction FACS describes, growing with
intensity, symmetric, and physically consistent for any combination."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgrr_pyg.data.synthetic.geometry import (
    MEAN_SHAPE, MIDLINE_X, OUTLINE_PROFILE, expression_shape, face_outline, intensity_vector,
)
from mgrr_pyg.data.synthetic.identity import make_identity
from mgrr_pyg.facs import ALL_AUS, flip_landmarks

BROW_INNER = [4, 5]
BROW_OUTER = [0, 1, 8, 9]
LOWER_LIDS = [23, 24, 29, 30]
UPPER_LIDS = [20, 21, 26, 27]
CORNERS = [31, 37]


def neutral():
    return make_identity(0, "BP4D", "F001").shape


def moved(au, intensity=5.0):
    base = neutral()
    return base, expression_shape(base, {au: intensity})


def y(points, idx):
    return points[idx, 1].mean()


def width(points, a, b):
    return abs(points[b, 0] - points[a, 0])


def aperture(points):
    return (points[[24, 23, 30, 29], 1] - points[[20, 21, 26, 27], 1]).mean()


def test_neutral_face_is_unchanged_without_aus():
    base = neutral()
    np.testing.assert_array_equal(expression_shape(base, {}), base)


def test_au1_raises_the_inner_brow_more_than_the_outer_brow():
    base, face = moved(1)
    assert y(face, BROW_INNER) < y(base, BROW_INNER) - 4.0
    assert (y(base, BROW_INNER) - y(face, BROW_INNER)) > 2 * (y(base, [0, 9]) - y(face, [0, 9]))


def test_au2_raises_the_outer_brow_more_than_the_inner_brow():
    base, face = moved(2)
    assert y(face, BROW_OUTER) < y(base, BROW_OUTER) - 4.0
    assert (y(base, BROW_OUTER) - y(face, BROW_OUTER)) > 2 * (y(base, BROW_INNER) - y(face, BROW_INNER))


def test_au4_lowers_the_brows_and_draws_them_together():
    base, face = moved(4)
    assert y(face, BROW_INNER) > y(base, BROW_INNER) + 3.0
    assert width(face, 4, 5) < width(base, 4, 5) - 4.0


@pytest.mark.parametrize("au", [6, 7])
def test_au6_and_au7_raise_the_lower_lids_and_narrow_the_eyes(au):
    base, face = moved(au)
    assert y(face, LOWER_LIDS) < y(base, LOWER_LIDS) - 1.5
    assert aperture(face) < aperture(base) - 1.5


def test_au9_raises_the_nostrils_and_lowers_the_inner_brows():
    base, face = moved(9)
    assert y(face, [14, 15, 16, 17, 18]) < y(base, [14, 15, 16, 17, 18]) - 2.0
    assert y(face, BROW_INNER) > y(base, BROW_INNER) + 1.5


def test_au10_raises_the_upper_lip_more_than_the_corners():
    base, face = moved(10)
    lift_lip = y(base, [33, 34, 35]) - y(face, [33, 34, 35])
    lift_corners = y(base, CORNERS) - y(face, CORNERS)
    assert lift_lip > 3.0 and lift_lip > 2 * lift_corners


def test_au12_pulls_the_mouth_corners_up_and_out():
    base, face = moved(12)
    assert y(face, CORNERS) < y(base, CORNERS) - 4.0
    assert width(face, 31, 37) > width(base, 31, 37) + 8.0


def test_au14_draws_the_corners_in():
    base, face = moved(14)
    assert width(face, 31, 37) < width(base, 31, 37) - 4.0


def test_au15_pulls_the_mouth_corners_down():
    base, face = moved(15)
    assert y(face, CORNERS) > y(base, CORNERS) + 4.0


def test_au17_pushes_the_lower_lip_up():
    base, face = moved(17)
    assert y(face, [39, 40, 41]) < y(base, [39, 40, 41]) - 2.5


@pytest.mark.parametrize("au", [23, 24])
def test_au23_and_au24_thin_the_lips(au):
    base, face = moved(au)
    red = lambda p: (p[40, 1] - p[34, 1])  # outer lip height at the midline
    assert red(face) < red(base) - 3.0


def test_au23_narrows_the_mouth():
    base, face = moved(23)
    assert width(face, 31, 37) < width(base, 31, 37) - 3.0


def test_au25_parts_the_lips_and_au26_drops_the_jaw_further():
    base, lips = moved(25)
    _, jaw = moved(26)
    gap = lambda p: p[47, 1] - p[44, 1]  # inner lips at the midline
    assert gap(base) == pytest.approx(0.0, abs=1.0)
    assert gap(lips) > 3.0
    assert y(jaw, [40]) > y(lips, [40]) > y(base, [40])
    outline = lambda drop: face_outline(OUTLINE_PROFILE, MIDLINE_X, 135.0, jaw_drop=drop)
    assert outline(12.0)[:, 1].max() > outline(0.0)[:, 1].max() + 10.0


@pytest.mark.parametrize("au", ALL_AUS)
def test_low_intensity_moves_less_in_the_same_direction(au):
    """Subtle at low intensity: the motion grows with intensity 1..5 along one direction
    per point, and a trace (1) is well under half of the full motion."""
    base = neutral()
    moves = [expression_shape(base, {au: level}) - base for level in (1.0, 2.0, 3.0, 4.0, 5.0)]
    strong = moves[-1]
    moving = np.linalg.norm(strong, axis=1) > 0.5
    assert moving.any()
    sizes = [np.linalg.norm(m[moving], axis=1) for m in moves]
    for smaller, larger in zip(sizes, sizes[1:]):
        assert (smaller < larger).all()
    for m in moves:
        cosine = (m[moving] * strong[moving]).sum(1) / (np.linalg.norm(m[moving], axis=1) * sizes[-1])
        assert cosine.min() > 0.99
    ratio = sizes[0] / sizes[-1]
    assert 0.1 < ratio.min() and ratio.max() < 0.45


def symmetric_shape():
    mirrored = MEAN_SHAPE.copy()
    flipped = flip_landmarks(mirrored, width=int(2 * MIDLINE_X + 1))
    return 0.5 * (mirrored + flipped)


@settings(max_examples=40)
@given(st.lists(st.floats(0.0, 5.0), min_size=len(ALL_AUS), max_size=len(ALL_AUS)))
def test_expressions_are_mirror_symmetric(values):
    """AUs act on both sides alike: expressing then flipping = flipping then expressing."""
    shape = symmetric_shape()
    w = int(2 * MIDLINE_X + 1)
    a = flip_landmarks(expression_shape(shape, np.array(values)), width=w)
    b = expression_shape(flip_landmarks(shape, width=w), np.array(values))
    np.testing.assert_allclose(a, b, atol=1e-9)


@settings(max_examples=60)
@given(st.lists(st.floats(0.0, 5.0), min_size=len(ALL_AUS), max_size=len(ALL_AUS)),
       st.floats(0.0, 1.0))
def test_lips_and_lids_never_cross(values, blink):
    face = expression_shape(neutral(), np.array(values), blink=blink)
    for upper, lower in ((43, 48), (44, 47), (45, 46)):
        assert face[lower, 1] >= face[upper, 1] - 1e-9
    for upper, lower in ((20, 24), (21, 23), (26, 30), (27, 29)):
        assert face[lower, 1] > face[upper, 1]
    assert face[40, 1] > face[47, 1] and face[34, 1] < face[44, 1]


def test_intensities_outside_0_to_5_or_unknown_aus_are_named():
    with pytest.raises(ValueError, match="0..5"):
        intensity_vector({12: 6.0})
    with pytest.raises(ValueError, match="AU \\[3\\]"):
        intensity_vector({3: 1.0})

"""Face geometry: the AU centre rule, the flip permutation, eye centres, 68/66 -> 49."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from mgrr_pyg import facs

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference-data" / "example-landmarks.json"


def reference_faces() -> np.ndarray:
    data = json.loads(REFERENCE.read_text())
    faces = [r["landmarks"] for key in ("BP4D", "DISFA", "BP4D_more") for r in data.get(key, [])]
    return np.asarray(faces, dtype=np.float64).reshape(-1, 49, 2)


def test_flip_permutation_is_an_involution_and_a_permutation():
    perm = np.asarray(facs.FLIP_PERMUTATION)
    assert sorted(perm.tolist()) == list(range(49))
    assert (perm[perm] == np.arange(49)).all()


def test_flip_twice_is_identity_and_keeps_left_eye_on_the_left():
    faces = reference_faces()
    flipped = facs.flip_landmarks(faces, 200)
    np.testing.assert_allclose(facs.flip_landmarks(flipped, 200), faces)
    # after the flip, points 19-24 are still the eye on the image's left
    assert (flipped[:, 19:25, 0].mean(1) < flipped[:, 25:31, 0].mean(1)).all()
    # and the inter-ocular distance is unchanged
    np.testing.assert_allclose(facs.interocular_distance(flipped), facs.interocular_distance(faces))


def test_reference_biocular_matches_eye_centres():
    data = json.loads(REFERENCE.read_text())
    for record in data["BP4D"] + data["DISFA"]:
        points = np.asarray(record["landmarks"]).reshape(49, 2)
        assert facs.interocular_distance(points) ** 2 == pytest.approx(record["biocular_squared"], rel=1e-4)


def test_au_centres_follow_the_rule_written_out_by_hand():
    face = reference_faces()[0]
    ruler = abs(face[22, 0] - face[25, 0])
    centres = facs.au_centres(face, (1, 6, 17))
    # AU1: inner brow ends 4, 5 moved up by half a ruler
    np.testing.assert_allclose(centres[0, 0], [face[4, 0], face[4, 1] - ruler / 2])
    np.testing.assert_allclose(centres[0, 1], [face[5, 0], face[5, 1] - ruler / 2])
    # AU6: lower lids 24, 29 moved down by a whole ruler
    np.testing.assert_allclose(centres[1, 1], [face[29, 0], face[29, 1] + ruler])
    # AU17: 39, 41 moved down by half a ruler
    np.testing.assert_allclose(centres[2, 0], [face[39, 0], face[39, 1] + ruler / 2])


def test_au_centres_numpy_and_torch_agree_and_batch():
    faces = reference_faces()
    as_numpy = facs.au_centres(faces, facs.BP4D_AUS)
    as_torch = facs.au_centres(torch.from_numpy(faces), facs.BP4D_AUS)
    assert as_numpy.shape == (len(faces), 12, 2, 2)
    np.testing.assert_allclose(as_torch.numpy(), as_numpy)


@given(st.sampled_from(facs.ALL_AUS))
def test_flipping_the_face_mirrors_each_aus_pair_of_centres(au):
    face = reference_faces()[0]
    centres = facs.au_centres(face, (au,))[0]
    flipped_centres = facs.au_centres(facs.flip_landmarks(face, 200), (au,))[0]
    mirrored = centres.copy()
    mirrored[:, 0] = 199 - mirrored[:, 0]
    # the same two points, possibly in the other order
    key = lambda pts: sorted(map(tuple, np.round(pts, 6)))
    assert key(flipped_centres) == key(mirrored)


def test_convert_68_and_66_to_49():
    pts68 = np.arange(68 * 2, dtype=float).reshape(68, 2)
    out = facs.convert_to_49(pts68)
    assert out.shape == (49, 2)
    np.testing.assert_array_equal(out[:43], pts68[17:60])  # 49-pt i = 68-pt i + 17 for i <= 42
    np.testing.assert_array_equal(out[43:], pts68[[61, 62, 63, 65, 66, 67]])
    pts66 = np.delete(pts68, [60, 64], axis=0)
    np.testing.assert_array_equal(facs.convert_to_49(pts66), out)


def test_bad_geometry_input_is_named():
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 49\|66\|68, 2\].*\[50, 2\]"):
        facs.convert_to_49(np.zeros((50, 2)))
    with pytest.raises(ValueError, match=r"landmarks: expected shape \[\.\.\., 49, 2\], found \[48, 2\]"):
        facs.au_centres(np.zeros((48, 2)), (1,))
    with pytest.raises(ValueError, match=r"no centre rule for AU \[3\]"):
        facs.au_centres(np.zeros((49, 2)), (1, 3))
    with pytest.raises(ValueError, match=r"indices in 0\.\.48.*found 49"):
        facs.AUCentreRule((1, 49), 0.0)


def test_template_is_the_reference_mean():
    faces = reference_faces()
    mean_points = facs.alignment_points(faces).mean(0)
    np.testing.assert_allclose(mean_points, facs.TEMPLATE_POINTS, atol=0.06)

"""Face geometry: the AU centre rule, the flip permutation, eye centres, 68/66 -> 49."""
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from reference_landmarks import reference_data, reference_faces

from mgrr_pyg import facs


def test_reference_file_keeps_every_field_of_the_published_lists():
    data = reference_data()
    assert {"about", "source", "licence"} <= data.keys()
    assert [r["path"] for r in data["BP4D"]] == ["BP4D/F001/T1/2440.jpg", "BP4D/F001/T1/2441.jpg"]
    assert [r["path"] for r in data["DISFA"]] == ["DISFA/SN002/0.jpg", "DISFA/SN002/1.jpg"]
    for record in data["BP4D"] + data["DISFA"]:
        assert record.keys() == {"path", "landmarks", "biocular_squared"}
        assert len(record["landmarks"]) == 98
    assert len(data["BP4D_more"]) == 7
    for record in data["BP4D_more"]:
        assert record.keys() == {"landmarks", "AUoccur"}
        assert len(record["landmarks"]) == 98 and len(record["AUoccur"]) == len(facs.BP4D_AUS)
    assert reference_faces().shape == (11, 49, 2)


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
    data = reference_data()
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
    with pytest.raises(ValueError, match=r"expected shape \[\.\.\., 49\|66\|68, 2\].*\[50, 2\]"):
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


def test_au_rules_are_resolved_in_one_place_custom_first_then_built_in():
    custom = facs.AUCentreRule((10, 13), -0.25)
    rules = facs.resolve_au_rules((12, 99, 1), {99: custom, 12: ((4, 5), 0.5)})
    assert list(rules) == [12, 99, 1]  # the AUs asked for, in their order
    assert rules[99] is custom and rules[1] is facs.AU_CENTRE_RULES[1]
    assert rules[12] == facs.AUCentreRule((4, 5), 0.5)  # a pair replaces the built-in rule
    with pytest.raises(ValueError, match=r"no centre rule for AU \[98\].*built-in rules cover"):
        facs.resolve_au_rules((1, 98))
    with pytest.raises(ValueError, match=r"indices in 0\.\.48"):
        facs.resolve_au_rules((99,), {99: ((10, 60), 0.0)})
    # au_centres uses the same resolution: a custom AU next to built-in ones
    points = np.random.default_rng(0).uniform(30, 140, (49, 2))
    centres = facs.au_centres(points, (1, 99), {99: custom})
    np.testing.assert_allclose(centres[0], facs.au_centres(points, (1,))[0])
    ruler = abs(points[22, 0] - points[25, 0])
    np.testing.assert_allclose(centres[1, :, 1], points[[10, 13], 1] - 0.25 * ruler)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 48, 2)),
     r"points: expected shape \[B, 49, 2\] \(crop pixels\), found \[2, 48, 2\]"),
    (np.zeros((49, 2)), r"expected shape \[B, 49, 2\].*found \[49, 2\]"),
    ([[0.0, 0.0]] * 49, r"expected shape \[B, 49, 2\].*found list"),
])
def test_the_one_landmark_validator_names_the_expected_and_found_shapes(bad, match):
    with pytest.raises(ValueError, match=match):
        facs.check_landmarks(bad, "points", batched=True, crop_size=176)


def test_the_one_landmark_validator_checks_values_in_numpy_and_torch():
    points = np.full((3, 49, 2), 80.0)
    facs.check_landmarks(points, batched=True, crop_size=176)  # fine
    facs.check_landmarks(points[0], counts=(49,))  # any leading shape without batched
    points[2, 4, 0] = np.nan
    with pytest.raises(ValueError, match="sample 2, point 4 is not finite"):
        facs.check_landmarks(points, batched=True, crop_size=176)
    moved = torch.full((3, 49, 2), 80.0)
    moved[1, 9, 1] = 176 - 1 + facs.LANDMARK_TOLERANCE + 0.5
    with pytest.raises(ValueError, match=r"sample 1, point 9 .* outside the 176x176 crop"):
        facs.check_landmarks(moved, batched=True, crop_size=176)
    moved[1, 9, 1] = 176 - 1 + facs.LANDMARK_TOLERANCE  # the tolerance itself is accepted
    facs.check_landmarks(moved, batched=True, crop_size=176)


# JAA-Net's rule for every AU, typed from its published code (PyTorch-JAANet network.py,
# AlignNet.forward, commit 9a0cedc; 0-based landmark indices as in that code): each AU's
# two centres as (landmark, vertical offset in rulers), ruler = |x[22] - x[25]|. AU14 and
# AU15 take AU12's map, AU24 AU23's; AU9, 25, 26 are the DISFA branch.
JAA_NET_CENTRES = {
    1: ((4, -1 / 2), (5, -1 / 2)),
    2: ((1, -1 / 3), (8, -1 / 3)),
    4: ((2, 1 / 3), (7, 1 / 3)),
    6: ((24, 1), (29, 1)),
    7: ((21, 0), (26, 0)),
    9: ((15, -1 / 2), (17, -1 / 2)),
    10: ((43, 0), (45, 0)),
    12: ((31, 0), (37, 0)),
    14: ((31, 0), (37, 0)),
    15: ((31, 0), (37, 0)),
    17: ((39, 1 / 2), (41, 1 / 2)),
    23: ((34, 0), (40, 0)),
    24: ((34, 0), (40, 0)),
    25: ((34, 0), (40, 0)),
    26: ((39, 1 / 2), (41, 1 / 2)),
}


def test_every_aus_two_centres_on_the_real_faces_follow_jaa_nets_published_rule():
    faces = reference_faces()  # the 11 real aligned faces
    assert sorted(JAA_NET_CENTRES) == sorted(facs.ALL_AUS)
    for au in facs.ALL_AUS:
        centres = facs.au_centres(faces, (au,))[:, 0]  # [11, 2, 2]
        for face, found in zip(faces, centres):
            ruler = abs(face[22, 0] - face[25, 0])
            expected = [[face[point, 0], face[point, 1] + offset * ruler]
                        for point, offset in JAA_NET_CENTRES[au]]
            np.testing.assert_allclose(found, expected, rtol=0, atol=1e-9,
                                       err_msg=f"AU{au}")

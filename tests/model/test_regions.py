"""AU regions: box maps, centres from facs, flip consistency, detachment, the AU features V^0."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_helpers import random_landmarks

from mgrr_pyg import facs
from mgrr_pyg.model import AUFeatures, au_attention_maps, create_model
from mgrr_pyg.model.regions import box_maps, point_to_cell


def reference_box(cx_pixel: float, cy_pixel: float) -> torch.Tensor:
    """Written out for one centre: the containing 4x4-pixel cell, a 7x7 box around it,
    value 1 - manhattan/11."""
    col, row = int((cx_pixel + 0.5) // 4), int((cy_pixel + 0.5) // 4)
    col, row = min(max(col, 0), 43), min(max(row, 0), 43)
    out = torch.zeros(44, 44)
    for r in range(44):
        for c in range(44):
            if abs(r - row) <= 3 and abs(c - col) <= 3:
                out[r, c] = 1 - (abs(r - row) + abs(c - col)) / 11
    return out


def test_box_map_matches_the_written_out_rule():
    cells = point_to_cell(torch.tensor([[50.3, 80.9], [1.0, 174.0]]))
    assert cells.tolist() == [[12, 20], [0, 43]]
    maps = box_maps(cells)
    torch.testing.assert_close(maps[0], reference_box(50.3, 80.9))
    torch.testing.assert_close(maps[1], reference_box(1.0, 174.0))  # clipped at the corner
    assert maps[0].max() == 1 and (maps[0] > 0).sum() == 49  # a full 7x7 box
    assert maps[0][20, 12 + 3] == pytest.approx(1 - 3 / 11)
    assert maps[0][20 + 3, 12 + 3] == pytest.approx(1 - 6 / 11)


def test_au_map_is_the_max_of_its_two_boxes_at_the_facs_centres(generator):
    landmarks = random_landmarks(2, generator)
    aus = (1, 12, 26)
    au_maps, boxes, centres = au_attention_maps(landmarks, aus)
    torch.testing.assert_close(centres, facs.au_centres(landmarks, aus).clamp(0, 175))
    for b in range(2):
        for i in range(len(aus)):
            first = reference_box(*centres[b, i, 0].tolist())
            second = reference_box(*centres[b, i, 1].tolist())
            torch.testing.assert_close(au_maps[b, i], torch.maximum(first, second))
            torch.testing.assert_close(boxes[b, i, 0], first)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), dataset=st.sampled_from(["BP4D", "DISFA"]))
def test_flip_maps_au_centres_and_boxes_onto_their_mirror_images(seed, dataset):
    """Flipping the crop and mirroring/permuting its landmarks (facs.flip_landmarks)
    gives, per AU, the mirrored pair of centres (as a set) and the mirrored AU map."""
    landmarks = random_landmarks(3, torch.Generator().manual_seed(seed))
    aus = facs.AU_SETS[dataset]
    maps, _, centres = au_attention_maps(landmarks, aus)
    flipped_maps, _, flipped_centres = au_attention_maps(facs.flip_landmarks(landmarks, 176), aus)
    mirrored = centres.clone()
    mirrored[..., 0] = 175 - mirrored[..., 0]

    def as_sets(c):  # order the two centres of each AU by (x, y)
        key = c[..., 0] * 1000 + c[..., 1]
        order = key.argsort(dim=-1)
        return torch.gather(c, -2, order.unsqueeze(-1).expand_as(c))

    torch.testing.assert_close(as_sets(flipped_centres), as_sets(mirrored))
    torch.testing.assert_close(flipped_maps, maps.flip(-1))


def test_flipped_image_and_landmarks_give_mirrored_au_maps_in_the_model(generator, images):
    model = create_model("tiny").eval()
    landmarks = random_landmarks(2, generator)
    with torch.no_grad():
        out = model(images, region_landmarks=landmarks)
        flipped = model(images.flip(-1), region_landmarks=facs.flip_landmarks(landmarks, 176))
    torch.testing.assert_close(flipped.au_maps, out.au_maps.flip(-1))


def test_landmarks_are_detached_where_they_define_regions(generator):
    landmarks = random_landmarks(1, generator).requires_grad_(True)
    au_maps, boxes, centres = au_attention_maps(landmarks, facs.BP4D_AUS)
    assert not au_maps.requires_grad and not boxes.requires_grad and not centres.requires_grad


def test_custom_au_with_its_own_rule(generator):
    landmarks = random_landmarks(1, generator)
    rule = facs.AUCentreRule((10, 13), -0.25)
    maps, _, centres = au_attention_maps(landmarks, (1, 99), rules={99: rule})
    ruler = (landmarks[0, 22, 0] - landmarks[0, 25, 0]).abs()
    expected_y = landmarks[0, [10, 13], 1] - 0.25 * ruler
    torch.testing.assert_close(centres[0, 1, :, 1], expected_y.clamp(0, 175))
    with pytest.raises(ValueError, match="no centre rule for AU \\[99\\]"):
        au_attention_maps(landmarks, (1, 99))


@pytest.mark.parametrize("bad, match", [
    (float("nan"), "not finite"),
    (float("inf"), "not finite"),
    (300.0, "outside the 176x176 crop"),
    (-40.0, "outside the 176x176 crop"),
])
def test_bad_landmarks_are_refused_with_the_sample_and_point(generator, bad, match):
    landmarks = random_landmarks(2, generator)
    landmarks[1, 7, 0] = bad
    with pytest.raises(ValueError, match=match) as error:
        au_attention_maps(landmarks, facs.DISFA_AUS)
    assert "sample 1, point 7" in str(error.value)


def test_landmarks_of_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"\[B, 49, 2\]"):
        au_attention_maps(torch.zeros(2, 68, 2), facs.DISFA_AUS)


def test_au_features_are_box_weighted_means_then_per_au_linear_maps():
    """With a spatially constant input the local map is constant away from the border
    (the 3x3 conv zero-pads), so every box-weighted mean over interior boxes is that
    constant and v_i = BN_i(W_i [f || f] + b_i) (eval-mode batch norm per AU and channel)."""
    torch.manual_seed(0)
    n, hidden, d_v = 3, 4, 5
    head = AUFeatures(2, hidden, d_v, n)
    head.out_norm.running_mean.uniform_(-1, 1)
    head.out_norm.running_var.uniform_(0.5, 2)
    head.out_norm.weight.data.uniform_(0.5, 2)
    head.out_norm.bias.data.uniform_(-1, 1)
    head.eval()
    norm = head.out_norm
    global_map = torch.randn(1, 2, 1, 1).expand(1, 2, 44, 44).contiguous()
    boxes = torch.zeros(1, n, 2, 44, 44)
    boxes[..., 10:30, 10:30] = torch.rand(20, 20) + 0.1  # arbitrary interior weights
    with torch.no_grad():
        out = head(global_map, boxes)
        local = torch.relu(head.norm(head.conv(global_map)))[0, :, 20, 20]
    for i in range(n):
        linear = torch.cat([local, local]) @ head.weight[i] + head.bias[i]
        rows = slice(i * d_v, (i + 1) * d_v)
        expected = ((linear - norm.running_mean[rows]) / (norm.running_var[rows] + norm.eps).sqrt()
                    * norm.weight[rows] + norm.bias[rows])
        torch.testing.assert_close(out[0, i], expected)


def test_au_features_follow_the_boxes():
    """Moving one AU's box changes only that AU's feature."""
    torch.manual_seed(0)
    head = AUFeatures(2, 4, 5, 2).eval()
    global_map = torch.randn(1, 2, 44, 44)
    cells = torch.tensor([[[[10, 10], [30, 10]], [[20, 30], [25, 30]]]])  # [1, 2 AUs, 2, 2]
    moved = cells.clone()
    moved[0, 1, 0] = torch.tensor([5, 35])
    with torch.no_grad():
        a = head(global_map, box_maps(cells))
        b = head(global_map, box_maps(moved))
    torch.testing.assert_close(a[0, 0], b[0, 0])
    assert (a[0, 1] - b[0, 1]).abs().max() > 1e-4


def test_the_old_name_of_the_au_features_warns_and_works():
    import mgrr_pyg.model
    from mgrr_pyg.model import regions

    with pytest.warns(DeprecationWarning, match="use AUFeatures"):
        assert regions.AURegionFeatures is AUFeatures
    with pytest.warns(DeprecationWarning, match="use AUFeatures"):
        assert mgrr_pyg.model.AURegionFeatures is AUFeatures

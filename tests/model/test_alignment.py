"""The face-alignment branch: landmarks around the crop centre in half-crop units, the
512-dim hidden feature the integrated classifier reads, and its sizes from the config."""
from __future__ import annotations

import torch

from mgrr_pyg.model import AlignmentBranch, AlignmentConfig


def small_branch(**changes) -> AlignmentBranch:
    torch.manual_seed(0)
    return AlignmentBranch(4, AlignmentConfig(channels=(6, 6, 8), hidden=10).replace(**changes),
                           map_size=44).eval()


def test_a_zero_regression_predicts_the_crop_centre_and_offsets_are_in_half_crops():
    """s = (S - 1)/2 + S/2 (W_2 h + b_2) with S = 176: zero weights put every point at
    87.5; a bias of 0.5 on one coordinate moves it by 44 pixels (a quarter of the crop)."""
    branch = small_branch()
    with torch.no_grad():
        branch.regress.weight.zero_()
        branch.regress.bias.zero_()
        branch.regress.bias[2 * 7 + 1] = 0.5  # point 7, y
        branch.regress.bias[0] = -0.25  # point 0, x
        landmarks, _ = branch(torch.randn(3, 4, 44, 44))
    expected = torch.full((3, 49, 2), 87.5)
    expected[:, 7, 1] = 87.5 + 44.0
    expected[:, 0, 0] = 87.5 - 22.0
    torch.testing.assert_close(landmarks, expected)


def test_hidden_feature_is_the_relu_of_a_linear_map_of_the_flattened_blocks():
    branch = small_branch()
    global_map = torch.randn(2, 4, 44, 44)
    with torch.no_grad():
        landmarks, hidden = branch(global_map)
        blocks = branch.features(global_map)  # three conv blocks, 44 -> 22 -> 11 -> 5
        expected = torch.relu(blocks.flatten(1) @ branch.hidden.weight.T + branch.hidden.bias)
        offsets = hidden @ branch.regress.weight.T + branch.regress.bias
    assert blocks.shape == (2, 8, 5, 5) and branch.flat_features == 8 * 5 * 5
    torch.testing.assert_close(hidden, expected)
    torch.testing.assert_close(landmarks, 87.5 + 88 * offsets.view(2, 49, 2))
    assert hidden.shape == (2, 10)


def test_the_config_sets_the_block_widths_and_the_hidden_width():
    branch = AlignmentBranch(64, AlignmentConfig(), map_size=44)  # the paper's sizes
    convs = [m for m in branch.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 96, 128, 128, 160, 160]
    assert all(c.bias is None for c in convs)  # BatchNorm follows every conv (and folds in)
    assert branch.hidden.in_features == 4000 and branch.hidden.out_features == 512
    assert branch.regress.out_features == 98

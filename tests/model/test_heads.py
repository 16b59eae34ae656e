"""The two classifiers (Eq. 9-11): one linear map per AU on its own refined feature, and
the integrated map on all AU features with the alignment feature."""
from __future__ import annotations

import torch

from mgrr_pyg.model import IntegratedHead, LocalAUHeads


def test_local_heads_are_one_linear_classifier_per_au():
    torch.manual_seed(0)
    heads = LocalAUHeads(5, 3)
    features = torch.randn(2, 3, 5)
    logits = heads(features)
    for b in range(2):
        for i in range(3):
            expected = sum(heads.weight[i, k] * features[b, i, k] for k in range(5)) + heads.bias[i]
            torch.testing.assert_close(logits[b, i], expected)


def test_an_aus_local_logit_reads_only_that_aus_feature():
    torch.manual_seed(0)
    heads = LocalAUHeads(5, 3)
    features = torch.randn(2, 3, 5)
    changed = features.clone()
    changed[:, 1] += 10.0
    before, after = heads(features), heads(changed)
    torch.testing.assert_close(before[:, [0, 2]], after[:, [0, 2]])
    assert (before[:, 1] - after[:, 1]).abs().min() > 1e-3


def test_integrated_head_concatenates_the_au_features_in_order_then_the_alignment_feature():
    """z = W [v_1 || ... || v_n || h] + b, written out with an explicit concatenation."""
    torch.manual_seed(0)
    n, d_v, hidden = 3, 4, 6
    head = IntegratedHead(d_v, n, hidden)
    features, alignment = torch.randn(2, n, d_v), torch.randn(2, hidden)
    joint = torch.cat([features[:, i] for i in range(n)] + [alignment], dim=1)
    classifier = head.classifier
    torch.testing.assert_close(head(features, alignment), joint @ classifier.weight.T
                               + classifier.bias)
    assert classifier.weight.shape == (n, n * d_v + hidden)


def test_heads_start_like_nn_linear_and_reset_redraws_them():
    torch.manual_seed(0)
    heads = LocalAUHeads(16, 4)
    bound = 1 / 16 ** 0.5  # nn.Linear's default bound for 16 inputs
    assert heads.weight.abs().max() <= bound and heads.bias.abs().max() <= bound
    assert heads.weight.abs().max() > bound / 2  # drawn over the range, not near zero
    before = heads.weight.detach().clone()
    heads.reset_parameters()
    assert not torch.equal(before, heads.weight)

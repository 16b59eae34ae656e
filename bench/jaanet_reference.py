r"""A JAA-Net-shaped reference network for the speed comparison of ``bench_model.py``.

JAA-Net (Shao, Liu, Cai, Ma: "Deep Adaptive Attention for Joint Facial Action Unit
Detection and Face Alignment", ECCV 2018; "JAA-Net: Joint Facial Action Unit Detection and
Face Alignment via Adaptive Attention", IJCV 129, 2021) is the network whose stem and
alignment branch MGRR-Net reuses, and the paper's speed comparison (16.5 ms vs 26.6 ms per
image on an RTX 2080Ti). This module rebuilds it from its published layer shapes, not from
its code, so that both networks can be timed in the same process, round by round: a ratio
measured side by side, where a constant measured long ago under another load is not.
It is never trained; only its shapes, parameter count and FLOPs matter.

Modules (12 AUs, base width 8 as in the papers; 176 x 176 face crop):

* **Hierarchical multi-scale region learning**: the same two region layers as MGRR-Net's
  stem (:class:`mgrr_pyg.model.stem.Stem`, imported: one implementation of the layer),
  3 -> 32 channels at 176x176, 32 -> 64 at 88x88, each followed by 2x2 max-pooling:
  the 64 x 44 x 44 feature map.
* **Feature extractor** (:func:`feature_extractor`, the papers' three blocks of two 3x3
  convolutions and a max-pooling, 64 -> 96 -> 128 -> 160 channels, 44 -> 22 -> 11 -> 5
  pixels, 160 x 5 x 5 = 4000 features). JAA-Net uses it fourteen times: for face
  alignment, for global feature learning, and once per AU for the local AU features.
* **Face alignment**: extractor, ``Linear(4000, 512)``, ``Linear(512, 98)``: 49 landmarks.
* **Adaptive attention learning**: per AU, the predefined attention map (box maps around
  the AU centres of the landmarks, :func:`mgrr_pyg.model.regions.au_attention_maps`)
  refined by four 3x3 convolutions (1 -> 64 -> 64 -> 64 -> 1, BatchNorm, ReLU; Sigmoid
  last).
* **Local AU features**: per AU, the extractor on the feature map weighted by the AU's
  refined attention, then ``Linear(4000, 64)``, ``Linear(64, 2)`` (the AU's local
  prediction).
* **AU detection**: ``Linear(12000, 512)``, ``Linear(512, 2 n)`` on the alignment,
  global and local features (4000 each; the 12 local feature vectors are summed: a
  choice of ours, it costs no parameters and 0.0003 % of the FLOPs), softmax per AU.

Totals at 12 AUs: 25.2 M parameters, 17.0 GFLOP per image (torch's ``FlopCounterMode``:
two FLOPs per multiply-add, convolutions and matrix products; ``tests/test_bench_jaanet.py``
re-derives both from the layer shapes). Where we had to choose (the box maps, the sum of
the local features, no bias in a convolution that BatchNorm follows, 2x2 pooling by strided
maxima) the choice changes neither count measurably.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mgrr_pyg.facs import BP4D_AUS, CROP_SIZE, NUM_LANDMARKS
from mgrr_pyg.model.alignment import conv_bn_relu
from mgrr_pyg.model.regions import au_attention_maps
from mgrr_pyg.model.stem import MaxPool2x2, Stem

EXTRACTOR_CHANNELS = (96, 128, 160)
EXTRACTOR_FEATURES = 160 * 5 * 5  # 4000
ALIGNMENT_HIDDEN = 512
LOCAL_HIDDEN = 64
ATTENTION_CHANNELS = 64
DETECTION_HIDDEN = 512


class JAANetOutput(NamedTuple):
    probs: Tensor  # [B, n] AU occurrence probabilities
    landmarks: Tensor  # [B, 49, 2] in crop pixels
    local_logits: Tensor  # [B, n, 2] each AU branch's own prediction
    attention: Tensor  # [B, n, 44, 44] refined attention maps


def feature_extractor(in_channels: int = 64) -> nn.Sequential:
    """JAA-Net's three blocks of ``[conv3x3-BN-ReLU] x 2 + 2x2 max-pool``
    (96, 128, 160 channels): ``[B, 64, 44, 44] -> [B, 160, 5, 5]``."""
    blocks = []
    width = in_channels
    for out in EXTRACTOR_CHANNELS:
        blocks += [conv_bn_relu(width, out), conv_bn_relu(out, out), MaxPool2x2()]
        width = out
    return nn.Sequential(*blocks)


def attention_refiner() -> nn.Sequential:
    """One AU's attention refinement: four 3x3 convolutions 1 -> 64 -> 64 -> 64 -> 1,
    BatchNorm after each, ReLU between, Sigmoid at the end."""
    return nn.Sequential(
        conv_bn_relu(1, ATTENTION_CHANNELS),
        conv_bn_relu(ATTENTION_CHANNELS, ATTENTION_CHANNELS),
        conv_bn_relu(ATTENTION_CHANNELS, ATTENTION_CHANNELS),
        nn.Conv2d(ATTENTION_CHANNELS, 1, 3, padding=1, bias=False),
        nn.BatchNorm2d(1),
        nn.Sigmoid(),
    )


class JAANetReference(nn.Module):
    r"""JAA-Net's layer shapes (see the module docstring); ``forward`` takes
    :math:`(B, 3, 176, 176)` images and returns a :class:`JAANetOutput`.

    Args:
        aus (sequence of int, optional): AU numbers with a built-in centre rule.
            (default: the 12 BP4D AUs)
    """

    def __init__(self, aus=BP4D_AUS) -> None:
        super().__init__()
        self.aus = tuple(aus)
        n = len(self.aus)
        self.stem = Stem()
        self.alignment_features = feature_extractor()
        self.alignment_output = nn.Sequential(
            nn.Linear(EXTRACTOR_FEATURES, ALIGNMENT_HIDDEN),
            nn.Linear(ALIGNMENT_HIDDEN, NUM_LANDMARKS * 2))
        self.attention_refiners = nn.ModuleList(attention_refiner() for _ in range(n))
        self.local_features = nn.ModuleList(feature_extractor() for _ in range(n))
        self.local_outputs = nn.ModuleList(
            nn.Sequential(nn.Linear(EXTRACTOR_FEATURES, LOCAL_HIDDEN), nn.Linear(LOCAL_HIDDEN, 2))
            for _ in range(n))
        self.global_features = feature_extractor()
        self.detection = nn.Sequential(
            nn.Linear(3 * EXTRACTOR_FEATURES, DETECTION_HIDDEN),
            nn.Linear(DETECTION_HIDDEN, 2 * n))

    def forward(self, images: Tensor) -> JAANetOutput:
        feature = self.stem(images)  # [B, 64, 44, 44]
        batch = feature.size(0)
        alignment = self.alignment_features(feature).flatten(1)  # [B, 4000]
        landmarks = self.alignment_output(alignment).view(batch, NUM_LANDMARKS, 2)
        boxes, _, _ = au_attention_maps(landmarks.clamp(0, CROP_SIZE - 1), self.aus,
                                        check=False)  # [B, n, 44, 44]
        boxes = boxes.to(feature.dtype)
        attention, local_logits = [], []
        local_sum = None
        for i, (refine, extract, output) in enumerate(
                zip(self.attention_refiners, self.local_features, self.local_outputs)):
            refined = refine(boxes[:, i:i + 1])  # [B, 1, 44, 44]
            local = extract(feature * refined).flatten(1)  # [B, 4000]
            attention.append(refined)
            local_logits.append(output(local))  # [B, 2]
            local_sum = local if local_sum is None else local_sum + local
        global_feature = self.global_features(feature).flatten(1)  # [B, 4000]
        logits = self.detection(torch.cat([alignment, global_feature, local_sum], dim=1))
        probs = torch.softmax(logits.view(batch, -1, 2).float(), dim=-1)[..., 1]
        return JAANetOutput(probs, landmarks, torch.stack(local_logits, 1),
                            torch.cat(attention, 1))

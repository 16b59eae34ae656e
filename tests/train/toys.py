"""Small stand-ins for the model, loss and dataset of the trainer contract (fast on CPU)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

N_AUS = 3
SIZE = 12


@dataclass
class ToyOutput:
    probs: torch.Tensor
    local_logits: torch.Tensor
    integrated_logits: torch.Tensor
    landmarks: torch.Tensor


class ToyConfig:
    def __init__(self, aus=(1, 2, 4), width=4):
        self.aus = tuple(aus)
        self.width = width

    def to_dict(self):
        return {"aus": list(self.aus), "width": self.width}


class ToyModel(nn.Module):
    """conv-BN-ReLU-pool, dropout (so the RNG state matters), two heads, landmarks."""

    def __init__(self, aus=(1, 2, 4), width=4, dropout=0.2):
        super().__init__()
        self.config = ToyConfig(aus, width)
        n = len(aus)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(dropout)
        self.local = nn.Linear(width, n)
        self.integrated = nn.Linear(width, n)
        self.lm = nn.Linear(width, 49 * 2)

    def forward(self, images):
        x = F.relu(self.bn(self.conv(images))).mean((2, 3))  # [B, width]
        x = self.drop(x)
        local, integrated = self.local(x), self.integrated(x)
        probs = 0.5 * (torch.sigmoid(local) + torch.sigmoid(integrated))
        landmarks = self.lm(x).view(-1, 49, 2) + 6.0
        return ToyOutput(probs, local, integrated, landmarks)


def toy_loss(out, labels, label_mask, landmarks, interocular):
    mask = label_mask.float()
    bce = F.binary_cross_entropy_with_logits(out.local_logits, labels, reduction="none")
    bce2 = F.binary_cross_entropy_with_logits(out.integrated_logits, labels, reduction="none")
    au = (bce * mask).sum() / mask.sum().clamp_min(1)
    integrated = (bce2 * mask).sum() / mask.sum().clamp_min(1)
    align = (((out.landmarks - landmarks) ** 2).sum((1, 2)) / (2 * interocular**2)).mean()
    return {"total": au + integrated + 0.5 * align, "au": au, "integrated": integrated, "align": align}


class ToyDataset(torch.utils.data.Dataset):
    """Deterministic frames; the 'augmentation' (flip + noise) is a function of
    (seed, epoch, index) as in the data contract; some labels are 9 (not coded)."""

    def __init__(self, n=20, n_aus=N_AUS, seed=0, train=True):
        g = torch.Generator().manual_seed(1234)
        self.base = torch.rand(n, 3, SIZE, SIZE, generator=g) * 2 - 1
        labels = (torch.rand(n, n_aus, generator=g) < 0.4).long()
        labels[torch.rand(n, n_aus, generator=g) < 0.1] = 9
        labels[0] = torch.tensor([1, 0, 1][:n_aus])  # every AU has both classes
        labels[1] = torch.tensor([0, 1, 0][:n_aus])
        self.labels = labels
        self.landmarks = torch.rand(n, 49, 2, generator=g) * SIZE
        self.seed, self.train, self.epoch = seed, train, 0
        self.subjects = [f"S{i % 4}" for i in range(n)]
        self.frame_ids = [f"S{i % 4}/{i}.jpg" for i in range(n)]
        self.aus = (1, 2, 4)[:n_aus]

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.base.shape[0]

    def __getitem__(self, i):
        image = self.base[i]
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + i)
            if torch.rand((), generator=g) < 0.5:
                image = image.flip(-1)
            image = image + 0.05 * torch.randn(image.shape, generator=g)
        mask = self.labels[i] != 9
        return {"image": image, "landmarks": self.landmarks[i],
                "labels": torch.where(mask, self.labels[i], 0).float(), "label_mask": mask,
                "interocular": torch.tensor(5.0), "index": i}

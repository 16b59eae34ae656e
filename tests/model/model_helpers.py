"""Constants and helpers shared by the model tests (imported by name: the tests folder
has no __init__.py, so pytest puts this folder on sys.path)."""
from __future__ import annotations

import torch

from mgrr_pyg.model import PRESETS

#: The width fields of the ``tiny`` preset, to shrink any preset for a test.
TINY_SIZES = {
    name: getattr(PRESETS["tiny"], name)
    for name in ("stem_channels", "align_channels", "align_hidden", "region_channels",
                 "d_v", "embed_dim", "heads")
}


def random_landmarks(batch: int, generator: torch.Generator, low: float = 30.0,
                     high: float = 146.0) -> torch.Tensor:
    """[B, 49, 2] points uniformly inside the crop (continuous, so no point lies on a
    cell border, with probability 1)."""
    return low + (high - low) * torch.rand(batch, 49, 2, generator=generator)

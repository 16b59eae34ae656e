"""Constants and helpers shared by the model tests (imported by name: the tests folder
has no __init__.py, so pytest puts this folder on sys.path)."""
from __future__ import annotations

import torch

from mgrr_pyg.model import MGRRLoss, create_model, get_config

#: The width settings of the ``tiny`` preset (flat keys), to shrink any preset for a test.
TINY_SIZES = {
    key: value for key, value in get_config("tiny").to_dict().items()
    if key in ("stem_channels", "align_channels", "align_hidden", "region_channels",
               "d_v", "embed_dim", "heads")
}


def random_landmarks(batch: int, generator: torch.Generator, low: float = 30.0,
                     high: float = 146.0) -> torch.Tensor:
    """[B, 49, 2] points uniformly inside the crop (continuous, so no point lies on a
    cell border, with probability 1)."""
    return low + (high - low) * torch.rand(batch, 49, 2, generator=generator)


def tiny(preset="tiny", **overrides):
    """Any preset at the widths of ``tiny``."""
    return create_model(preset, **{**TINY_SIZES, **overrides})


def full_loss(model, out, landmarks, generator):
    """The joint loss (Eq. 9-11) on random labels; L_align only with ``landmarks``."""
    batch, n = out.probs.shape
    labels = torch.randint(0, 2, (batch, n), generator=generator).float()
    interocular = None if landmarks is None else torch.full((batch,), 60.0)
    return MGRRLoss(torch.linspace(0.5, 1.5, n))(out, labels, None, landmarks, interocular)

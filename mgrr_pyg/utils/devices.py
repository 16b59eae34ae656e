"""Device names from the user (``--device``, ``device=``) as devices that exist here.

One function for training, prediction and export, so that ``cuda:N`` means the same
everywhere and a device that is not there is an error naming what this machine has,
never a silent fall-back to another device.
"""
from __future__ import annotations

import torch

DEVICE_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU; ``"cpu"``;
    ``"cuda"`` -> ``cuda:<local_rank>``; ``"cuda:N"`` as given.

    Raises:
        ValueError: a name torch does not know, CUDA asked for on a machine without it,
            or a CUDA device index this machine does not have (the message says how many
            it has).
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected {DEVICE_HELP}, found {name!r}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} asked for but CUDA is not available on this "
                             f"machine (torch {torch.__version__}); use 'cpu'")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
        count = torch.cuda.device_count()
        if device.index >= count:
            have = f"cuda:0 .. cuda:{count - 1}" if count > 1 else "cuda:0" if count else "none"
            raise ValueError(f"device: {str(device)!r} asked for, but this machine has {count} "
                             f"CUDA device{'s' if count != 1 else ''} ({have})")
    return device


__all__ = ["DEVICE_HELP", "resolve_device"]

"""Checks of the model's input images: shape, dtype and value range.

The model is trained on RGB crops whose pixels are mapped linearly from [0, 255] to
[-1, 1] (:class:`~mgrr_pyg.data.PreparedListDataset`). Anything else (NaN or inf from a
broken decode, 0..255 pixels, mean/std-normalised values) would silently give wrong
predictions and, in train mode, poison the BatchNorm statistics, so it is refused as
the input's fault, before the network runs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mgrr_pyg.facs import CROP_SIZE

#: How far outside [-1, 1] a value may lie and still count as float rounding. The
#: package's own conversion ``pixels * (1 / 127.5) - 1`` overshoots by ~1e-7 in float32;
#: a float16 pipeline by one unit in the last place at 1.0 (2**-10 ~ 9.8e-4). Values
#: further out are not rounding (e.g. bicubic resampling after normalising overshoots
#: by up to ~0.2) and are refused; the caller clamps or resamples first.
IMAGE_RANGE_TOLERANCE = 1e-3

_EXPECTED = (f"a tensor [B, 3, {CROP_SIZE}, {CROP_SIZE}] of floating-point RGB crops with "
             "values in [-1, 1]")


def _which_samples(bad: Tensor, limit: int = 8) -> str:
    """``samples [0, 3] of 4`` for a boolean ``[B]`` tensor."""
    indices = bad.nonzero().flatten().tolist()
    shown = ", ".join(str(i) for i in indices[:limit])
    more = f", ... ({len(indices)} in all)" if len(indices) > limit else ""
    return f"sample{'s' if len(indices) > 1 else ''} [{shown}{more}] of {bad.numel()}"


def _likely_fix(low: float, high: float) -> str:
    tol = IMAGE_RANGE_TOLERANCE
    if low >= -tol and high <= 255 + tol and high > 1.5:
        return "this looks like 0..255 pixels: pass images / 127.5 - 1"
    if low >= -tol and high <= 65535 + tol and high > 255 + tol:
        return "this looks like 16-bit pixels (0..65535): pass images / 32767.5 - 1"
    if low >= -1.5 and high <= 1.5:
        return ("this looks like values pushed slightly out (added noise, or bicubic / Lanczos "
                "resampling after normalising): clamp with images.clamp(-1, 1)")
    if low >= -3.0 and high <= 3.0:
        return ("this looks like mean/std-normalised values (e.g. ImageNet statistics); the "
                "model expects pixels mapped linearly from [0, 255]: pass pixels / 127.5 - 1")
    return "map the pixels linearly to [-1, 1] (pixels / 127.5 - 1 for 8-bit images)"


def check_images(images, name: str = "images") -> None:
    """Raise a ValueError unless ``images`` is a non-empty floating-point
    ``[B, 3, 176, 176]`` tensor with finite values in [-1, 1] (up to
    :data:`IMAGE_RANGE_TOLERANCE`).

    The value check costs one ``aminmax`` over the batch (and one device sync); the
    per-sample details are computed only for the message, when it fails."""
    check_image_layout(images, name)
    check_image_values(images, name)


def check_image_layout(images, name: str = "images") -> None:
    """The static part of :func:`check_images` (type, shape, dtype; no data access, so
    it also runs while ``torch.compile`` traces)."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.size(1) != 3 or \
            tuple(images.shape[-2:]) != (CROP_SIZE, CROP_SIZE):
        found = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected {_EXPECTED}, found {found}")
    if images.size(0) == 0:
        raise ValueError(f"{name}: expected {_EXPECTED} with B >= 1, found an empty batch "
                         f"{list(images.shape)}")
    if not images.is_floating_point():
        fix = (": convert with images.float() / 127.5 - 1" if images.dtype == torch.uint8
               else "")
        raise ValueError(f"{name}: expected {_EXPECTED}, found dtype {images.dtype}{fix}")


def check_image_values(images: Tensor, name: str = "images") -> None:
    """The data-dependent part of :func:`check_images`: finite values in [-1, 1]."""
    tol = IMAGE_RANGE_TOLERANCE
    low, high = torch.stack(torch.aminmax(images.detach())).tolist()
    if low >= -1 - tol and high <= 1 + tol:  # False for NaN, so NaN falls through
        return
    flat = images.detach().flatten(1)  # [B, 3 * 176 * 176]
    finite = torch.isfinite(flat)
    if not bool(finite.all()):
        nan = int(torch.isnan(flat).sum())
        inf = int((~finite).sum()) - nan
        valid = flat[finite]
        seen = (f"; the finite values span {float(valid.min()):g}..{float(valid.max()):g}"
                if valid.numel() else "")
        raise ValueError(
            f"{name}: expected {_EXPECTED}, found {nan + inf} non-finite "
            f"value{'s' if nan + inf > 1 else ''} (NaN: {nan}, "
            f"inf: {inf}) in {_which_samples(~finite.all(1))}{seen}; the input is broken, "
            "not the model: check how these images were decoded and normalised")
    sample_low, sample_high = flat.aminmax(dim=1)  # [B] each
    outside = (sample_low < -1 - tol) | (sample_high > 1 + tol)
    raise ValueError(
        f"{name}: expected {_EXPECTED} (up to {tol:g} outside is accepted as float rounding), "
        f"found min {low:g}, max {high:g}, with {_which_samples(outside)} outside the range; "
        f"{_likely_fix(low, high)}")


__all__ = ["IMAGE_RANGE_TOLERANCE", "check_images", "check_image_layout", "check_image_values"]

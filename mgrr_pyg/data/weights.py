"""Class weights of the weighted AU loss (JAA-Net's data-balance weights): ONE place."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .frames import MISSING_LABEL


def class_weights(labels, missing_value: int = MISSING_LABEL) -> torch.Tensor:
    r"""Per-AU weights from the training fold's occurrence rates.

    .. math::
        r_i = \frac{\#\{a_i = 1\}}{\#\{a_i \text{ coded}\}}, \qquad
        w_i = \frac{1 / r_i}{\sum_j 1 / r_j} \, n

    so the weights average to 1 and rarer AUs weigh more. Uncoded entries
    (``missing_value``) count neither as positive nor as coded.

    Decided edge case: an AU with no positive frame in the fold (rate 0, weight
    infinite) gets the rate of one positive, :math:`r_i = 1 / \max(\#\text{coded}, 1)`,
    and a warning naming it; its loss term then has the largest finite weight.

    Args:
        labels: ``[N, n]`` array or tensor of 0 / 1 / ``missing_value``.
        missing_value (int, optional): Code of an uncoded label.
            (default: :data:`~mgrr_pyg.data.frames.MISSING_LABEL`, 9)

    Returns:
        ``[n]`` float32 tensor with mean 1.

    Shapes:
        - **input:** labels :math:`(N, n)`
        - **output:** :math:`(n,)`
    """
    values = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"labels: expected a [frames, AUs] matrix, found shape {list(values.shape)}")
    bad = ~np.isin(values, (0, 1, missing_value))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"labels: expected 0, 1 or {missing_value}, found {values[row, col].item()!r} "
                         f"at row {row}, column {col}")
    positives = (values == 1).sum(axis=0).astype(np.float64)  # [n]
    coded = (values != missing_value).sum(axis=0).astype(np.float64)  # [n]
    empty = np.flatnonzero(positives == 0)
    if empty.size:
        warnings.warn(
            f"class_weights: columns {empty.tolist()} have no positive frame "
            f"(coded frames: {coded[empty].astype(int).tolist()}); using the rate of one positive",
            stacklevel=2,
        )
    rate = np.maximum(positives, 1.0) / np.maximum(coded, 1.0)
    inverse = 1.0 / rate
    weights = inverse / inverse.sum() * len(inverse)
    return torch.as_tensor(weights, dtype=torch.float32)


__all__ = ["class_weights"]

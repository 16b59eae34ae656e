"""AU co-occurrence prior (paper Eq. 1-2), computed from training labels."""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[np.ndarray, Tensor]


def au_cooccurrence_prior(labels: ArrayLike, missing_value: int = 9) -> ArrayLike:
    r"""The AU relation prior :math:`\mathbf{A}` of MGRR-Net (Eq. 1-2).

    .. math::
        P_{ij} = \tfrac{1}{2}\big(P(a_i = 1 \mid a_j = 1) + P(a_i = 0 \mid a_j = 0)\big),
        \qquad A_{ij} = \lvert 2 (P_{ij} - 0.5) \rvert

    :math:`A_{ij}` says how much the state of AU :math:`j` tells about AU :math:`i`
    (row :math:`i` receives from column :math:`j`, the orientation
    :class:`~mgrr_pyg.layers.RegionGraphConv` uses: the message from node
    :math:`j` to node :math:`i` is weighted by :math:`A_{ij}`). It is not symmetric
    in general.

    Missing labels are excluded *pairwise*: for the pair :math:`(i, j)` only the
    frames where both AU :math:`i` and AU :math:`j` are coded are counted.

    Decided edge cases (the paper does not say):

    * If AU :math:`j` is constant on the frames where both AUs are coded (never 1 or
      never 0 there), or no frame codes both, one of the conditional probabilities
      is undefined; AU :math:`j` then carries no information about AU :math:`i`, so
      :math:`P_{ij} = 0.5` and :math:`A_{ij} = 0` for :math:`i \neq j`.
    * The diagonal is always 1 (a node fully informs itself; the region graph of
      Eq. 5 starts with :math:`A_{ii} = 1`), even for an AU that is never coded.

    Args:
        labels (numpy.ndarray or torch.Tensor): The ``[frames, AUs]`` label matrix
            with entries 0 (absent), 1 (present) or :obj:`missing_value`.
        missing_value (int, optional): The code of an uncoded entry (BP4D uses 9).
            (default: :obj:`9`)

    Returns:
        The ``[AUs, AUs]`` prior, of the same kind as the input: a ``float64``
        numpy array for numpy input, a tensor of the default float dtype on the
        input's device for torch input.

    Raises:
        ValueError: if :obj:`labels` is not 2-D, is empty, or holds a value other
            than 0, 1 or :obj:`missing_value` (the message names the row, the
            column and the value).

    Shapes:
        - **input:** labels :math:`(F, n)`
        - **output:** :math:`(n, n)`
    """
    is_torch = isinstance(labels, Tensor)
    if is_torch:
        device = labels.device
        values = labels.detach().cpu().numpy()
    elif isinstance(labels, np.ndarray):
        values = labels
    else:
        raise ValueError(
            "labels must be a numpy array or a torch tensor of shape [frames, AUs]; "
            f"found {type(labels).__name__}")
    if values.ndim != 2:
        raise ValueError(
            "labels must be 2-D [frames, AUs]; found shape "
            f"{tuple(values.shape)} ({values.ndim}-D)")
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(
            "labels must hold at least one frame and one AU; found shape "
            f"{tuple(values.shape)}")

    present = values == 1
    absent = values == 0
    coded = present | absent
    bad = ~(coded | (values == missing_value))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(
            f"labels must hold only 0, 1 or the missing code {missing_value}; found "
            f"{values[row, column].item()!r} at row {row}, column {column} "
            f"(labels[{row}, {column}]; {int(bad.sum())} bad entries in all)")

    # Pairwise counts by matrix products; float64 holds integer counts exactly.
    present = present.astype(np.float64)  # [F, n]
    absent = absent.astype(np.float64)
    coded = coded.astype(np.float64)
    both_present = present.T @ present  # [i, j]: a_i = 1 and a_j = 1
    both_absent = absent.T @ absent  # [i, j]: a_i = 0 and a_j = 0
    j_present = coded.T @ present  # [i, j]: i coded and a_j = 1
    j_absent = coded.T @ absent  # [i, j]: i coded and a_j = 0

    informative = (j_present > 0) & (j_absent > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 0.5 * (both_present / j_present + both_absent / j_absent)
    p = np.where(informative, p, 0.5)
    prior = np.abs(2.0 * (p - 0.5))
    np.fill_diagonal(prior, 1.0)
    prior = np.clip(prior, 0.0, 1.0)  # rounding can leave 1 + 1e-16

    if is_torch:
        return torch.as_tensor(prior, dtype=torch.get_default_dtype(), device=device)
    return prior

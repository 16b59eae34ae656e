r"""The joint loss of MGRR-Net (Eq. 9-11)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .regions import check_landmarks


def masked_weighted_bce(logits: Tensor, labels: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    r"""Eq. 9 with missing labels masked out:

    .. math::
        L = \frac{1}{n} \sum_{i=1}^{n} w_i \cdot
        \frac{\sum_{b \in \mathcal{C}_i} \mathrm{BCE}(z_{bi}, p_{bi})}{|\mathcal{C}_i|}

    :math:`\mathcal{C}_i` the frames of the batch on which AU :math:`i` is coded; an AU
    coded on none of them contributes 0. BCE on logits (``binary_cross_entropy_with_logits``)
    for numerical stability.
    """
    mask = mask.to(logits.dtype)
    targets = torch.where(mask > 0, labels.to(logits.dtype), torch.zeros_like(logits))
    per_frame = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # [B, n]
    coded = mask.sum(0)  # [n]
    per_au = (per_frame * mask).sum(0) / coded.clamp_min(1.0)  # [n], 0 where none coded
    return (weights * per_au).mean()


class MGRRLoss(nn.Module):
    r"""The joint loss (Eq. 11): :math:`L = L_{au} + L_{int} + \lambda L_{align}`.

    * :math:`L_{au}`: :func:`masked_weighted_bce` on the local (per-AU) logits (Eq. 9).
    * :math:`L_{int}`: the same on the integrated classifier's logits.
    * :math:`L_{align}` (Eq. 10), averaged over the batch:

      .. math::
          L_{align} = \frac{1}{2 d_o^2} \sum_{j=1}^{49}
          \big[(x_j - \hat{x}_j)^2 + (y_j - \hat{y}_j)^2\big]

    Args:
        class_weights (torch.Tensor, optional): :math:`w_i` per AU, shape :math:`(n,)`
            (from :func:`mgrr_pyg.data.class_weights` on the training fold).
            (default: all ones)
        lambda_align (float, optional): :math:`\lambda`. (default: :obj:`0.5`)

    Returns (forward):
        ``dict(total=, au=, integrated=, align=)`` of scalar tensors.
    """

    def __init__(self, class_weights: Optional[Tensor] = None, lambda_align: float = 0.5) -> None:
        super().__init__()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights)
            if not class_weights.is_floating_point():
                class_weights = class_weights.to(torch.get_default_dtype())
            if class_weights.dim() != 1 or not bool(torch.isfinite(class_weights).all()) \
                    or bool((class_weights < 0).any()):
                raise ValueError("class_weights: expected a 1-D tensor [n] of finite, "
                                 f"non-negative weights, found {class_weights.tolist()}")
        self.register_buffer("class_weights", class_weights)
        self.lambda_align = float(lambda_align)

    def forward(self, out, labels: Tensor, label_mask: Optional[Tensor] = None,
                landmarks: Optional[Tensor] = None,
                interocular: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Args:
            out (MGRROutput): The model's output (``local_logits``,
                ``integrated_logits``, ``landmarks``).
            labels (torch.Tensor): :math:`(B, n)` 0/1 (anything where not coded).
            label_mask (torch.Tensor, optional): :math:`(B, n)` bool, True = coded.
                (default: all coded)
            landmarks (torch.Tensor, optional): Ground-truth :math:`(B, 49, 2)` in crop
                pixels; without them :math:`L_{align} = 0`. (default: :obj:`None`)
            interocular (torch.Tensor, optional): :math:`d_o` per frame :math:`(B,)`
                (NOT squared); required with :obj:`landmarks`. (default: :obj:`None`)
        """
        local, integrated = out.local_logits, out.integrated_logits
        batch, num_aus = local.shape
        if not isinstance(labels, Tensor) or tuple(labels.shape) != (batch, num_aus):
            found = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"labels: expected shape [{batch}, {num_aus}] (batch, AUs), "
                             f"found {found}")
        if label_mask is None:
            label_mask = torch.ones_like(labels, dtype=torch.bool)
        elif tuple(label_mask.shape) != (batch, num_aus):
            raise ValueError(f"label_mask: expected shape [{batch}, {num_aus}], found "
                             f"{tuple(label_mask.shape)}")
        label_mask = label_mask.bool()
        coded_values = labels[label_mask]
        if coded_values.numel() and not bool(((coded_values == 0) | (coded_values == 1)).all()):
            bad = ((labels != 0) & (labels != 1) & label_mask).nonzero()[0].tolist()
            raise ValueError(
                f"labels: coded entries must be 0 or 1; found {labels[bad[0], bad[1]].item()} "
                f"at sample {bad[0]}, AU column {bad[1]} (mark uncoded entries in label_mask)")
        weights = self.class_weights
        if weights is None:
            weights = torch.ones(num_aus, dtype=local.dtype, device=local.device)
        elif weights.numel() != num_aus:
            raise ValueError(f"class_weights: {weights.numel()} weights for {num_aus} AUs")
        else:
            weights = weights.to(local.dtype)

        loss_au = masked_weighted_bce(local, labels, label_mask, weights)
        loss_int = masked_weighted_bce(integrated, labels, label_mask, weights)
        loss_align = self.alignment_loss(out.landmarks, landmarks, interocular)
        total = loss_au + loss_int + self.lambda_align * loss_align
        return {"total": total, "au": loss_au, "integrated": loss_int, "align": loss_align}

    @staticmethod
    def alignment_loss(predicted: Tensor, landmarks: Optional[Tensor],
                       interocular: Optional[Tensor]) -> Tensor:
        """Eq. 10 averaged over the batch (0 when no ground-truth landmarks are given)."""
        if landmarks is None:
            if interocular is not None:
                raise ValueError("interocular was given without landmarks")
            return predicted.new_zeros(())
        check_landmarks(landmarks, "landmarks (ground truth)")
        if tuple(landmarks.shape) != tuple(predicted.shape):
            raise ValueError(f"landmarks: expected shape {list(predicted.shape)} to match the "
                             f"prediction, found {list(landmarks.shape)}")
        if interocular is None:
            raise ValueError("interocular: the inter-ocular distance d_o (shape [B]) is "
                             "required with landmarks")
        interocular = torch.as_tensor(interocular, dtype=predicted.dtype, device=predicted.device)
        if tuple(interocular.shape) != (predicted.size(0),):
            raise ValueError(f"interocular: expected shape [{predicted.size(0)}], found "
                             f"{list(interocular.shape)}")
        if not bool((torch.isfinite(interocular) & (interocular > 0)).all()):
            raise ValueError(f"interocular: expected finite distances > 0 (d_o, not squared), "
                             f"found {interocular.tolist()}")
        squared = ((predicted - landmarks.to(predicted.dtype)) ** 2).sum((1, 2))  # [B]
        return (squared / (2 * interocular ** 2)).mean()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(lambda_align={self.lambda_align})"

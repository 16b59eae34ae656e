"""Class activation maps per AU with the landmark-defined region centres (paper Fig. 4),
drawn with matplotlib's Agg backend (no display)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .figure import finish_figure

METHODS = ("gradcam", "attention")


def class_activation_maps(model, images: Tensor, method: str = "gradcam",
                          region_landmarks: Optional[Tensor] = None):
    r"""Where the model looks for each AU, on the :math:`44 \times 44` grid of :math:`O_G`.

    * ``"gradcam"``: Grad-CAM on the global feature :math:`O_G` for each AU's predicted
      probability :math:`\hat{p}_i` (the mean of the local and integrated outputs):
      :math:`\mathrm{ReLU}(\sum_c \bar{\partial}_c \hat{p}_i \, O_{G,c})` with
      :math:`\bar{\partial}_c` the spatial mean of the gradient (one backward per AU).
    * ``"attention"``: the last reasoning layer's per-AU pooling attention over
      :math:`G^K` (needs ``pooling="attention"`` and a global input; no backward).

    Each map is scaled to :math:`[0, 1]` per image and AU.

    Args:
        model (MGRRNet): The model (its mode is kept; use eval for BatchNorm statistics).
        images (torch.Tensor): :math:`(B, 3, 176, 176)` in :math:`[-1, 1]`.
        method (str, optional): ``"gradcam"`` or ``"attention"``. (default: ``"gradcam"``)
        region_landmarks (torch.Tensor, optional): Passed to the model.

    Returns:
        ``(maps [B, n, 44, 44], output)`` with the model's :class:`MGRROutput` (detached).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, found {method!r}")
    with torch.enable_grad():
        out = model(images, region_landmarks=region_landmarks)
        if method == "attention":
            if not out.pool_attention:
                raise ValueError("method='attention' needs a model with attention pooling and "
                                 "a global input (pooling='attention'); use method='gradcam'")
            maps = out.pool_attention[-1].detach()
        else:
            global_map = out.global_map
            rows = []
            for i in range(out.probs.size(1)):
                (gradient,) = torch.autograd.grad(out.probs[:, i].sum(), global_map,
                                                  retain_graph=i + 1 < out.probs.size(1))
                weights = gradient.mean((2, 3), keepdim=True)  # [B, c, 1, 1]
                rows.append(torch.relu((weights * global_map).sum(1)).detach())  # [B, S, S]
            maps = torch.stack(rows, dim=1)
    low = maps.flatten(2).amin(-1)[..., None, None]
    high = maps.flatten(2).amax(-1)[..., None, None]
    maps = (maps - low) / (high - low).clamp_min(1e-12)
    detached = type(out)(**{name: _detach(value) for name, value in vars(out).items()})
    return maps, detached


def _detach(value):
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, list):
        return [_detach(v) for v in value]
    return value


def plot_class_activation_maps(image: Tensor, maps: Tensor, centres: Tensor, aus: Sequence[int],
                               probs: Optional[Tensor] = None,
                               path: Optional[Union[str, Path]] = None, columns: int = 4,
                               alpha: float = 0.5):
    """One panel per AU: the face, its activation map and the AU's two region centres.

    Args:
        image: ``[3, 176, 176]`` in [-1, 1] (one sample of the model's input).
        maps: ``[n, S, S]`` maps in [0, 1] (from :func:`class_activation_maps`).
        centres: ``[n, 2, 2]`` the AU centres in crop pixels (``MGRROutput.au_centres[b]``).
        aus: The ``n`` AU numbers.
        probs (optional): ``[n]`` predicted probabilities, shown in the panel titles.
        path (optional): Write a PNG there (atomically) and return the path; otherwise
            return the matplotlib figure.
        columns (int): Panels per row.
        alpha (float): Opacity of the map over the face.
    """
    from matplotlib.figure import Figure

    n = len(aus)
    if image.shape != (3, 176, 176):
        raise ValueError(f"image: expected shape [3, 176, 176], found {list(image.shape)}")
    if maps.dim() != 3 or maps.size(0) != n:
        raise ValueError(f"maps: expected [{n}, S, S] for AUs {tuple(aus)}, found {list(maps.shape)}")
    if tuple(centres.shape) != (n, 2, 2):
        raise ValueError(f"centres: expected shape [{n}, 2, 2], found {list(centres.shape)}")
    if probs is not None and tuple(probs.shape) != (n,):
        raise ValueError(f"probs: expected shape [{n}], found {list(probs.shape)}")
    face = ((image.detach().cpu().permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
    rows = -(-n // columns)
    fig = Figure(figsize=(2.4 * min(columns, n), 2.6 * rows))
    size = face.shape[0]
    for i, au in enumerate(aus):
        ax = fig.add_subplot(rows, min(columns, n), i + 1)
        ax.imshow(face)
        # The map's cells cover the crop: extent in pixel-centre coordinates.
        ax.imshow(maps[i].detach().cpu().numpy(), cmap="jet", alpha=alpha,
                  extent=(-0.5, size - 0.5, size - 0.5, -0.5), vmin=0.0, vmax=1.0)
        points = centres[i].detach().cpu().numpy()
        ax.scatter(points[:, 0], points[:, 1], s=30, c="white", edgecolors="black", zorder=3)
        title = f"AU{au}" + (f"  p={float(probs[i]):.2f}" if probs is not None else "")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return finish_figure(fig, path)


__all__ = ["class_activation_maps", "plot_class_activation_maps"]

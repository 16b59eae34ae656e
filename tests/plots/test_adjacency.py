"""The prior next to the learned relation matrix (paper Fig. 5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mgrr_pyg.plots.adjacency import plot_adjacency


def test_both_matrices_are_drawn_on_one_colour_scale(tmp_path):
    generator = torch.Generator().manual_seed(0)
    prior = torch.rand(4, 4, generator=generator)
    learned = 2 * torch.rand(4, 4, generator=generator) - 0.5
    fig = plot_adjacency(prior, learned, (1, 2, 4, 6))
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    np.testing.assert_allclose(images[0].get_array(), prior.numpy(), rtol=1e-6)
    np.testing.assert_allclose(images[1].get_array(), learned.numpy(), rtol=1e-6)
    low = min(0.0, float(learned.min()))
    assert images[0].get_clim() == images[1].get_clim() == pytest.approx(
        (low, float(max(prior.max(), learned.max()))))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["AU1", "AU2", "AU4", "AU6"]
    path = plot_adjacency(prior, learned, (1, 2, 4, 6), path=tmp_path / "a.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError, match=r"learned: expected an \[3, 3\] matrix"):
        plot_adjacency(np.eye(3), np.eye(4), (1, 2, 4))
    with pytest.raises(ValueError, match="prior: holds non-finite"):
        plot_adjacency(np.full((2, 2), np.nan), np.eye(2), (1, 2))

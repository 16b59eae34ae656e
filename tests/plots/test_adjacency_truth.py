"""Learned adjacencies next to the generator's truth and the prior (Fig. 5 with the truth):
panels, shared colour scales per row, labels; ``mgrr-plot adjacency-truth RUN_DIR``."""
from __future__ import annotations

import numpy as np
import pytest

from mgrr_pyg.data.synthetic.truth import preset_truth
from mgrr_pyg.facs import DISFA_AUS
from mgrr_pyg.plots.adjacency_truth import WEAK_COLOUR, plot_adjacency_truth
from mgrr_pyg.plots.cli import main
from train.test_adjacency_truth import write_run


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]


def test_references_and_layers_are_drawn_with_one_scale_per_row():
    truth = preset_truth("tied", "DISFA")
    rng = np.random.default_rng(0)
    prior = rng.uniform(0, 0.6, truth.shape)
    learned = [rng.normal(0.2, 0.3, truth.shape) for _ in range(3)]
    fig = plot_adjacency_truth(learned, prior, DISFA_AUS, truth, ties={6: 12, 26: 25})
    panels = _panels(fig)
    assert [ax.get_title().split("\n")[0] for ax in panels] == [
        "generator truth T = P(i | j)", "training-fold prior (Eq. 1-2)",
        "learned A, layer 1", "learned A, layer 2", "learned A, layer 3"]
    off = ~np.eye(8, dtype=bool)
    for ax, matrix in zip(panels, [truth, prior, *learned]):
        shown = np.ma.getdata(ax.images[0].get_array())
        np.testing.assert_allclose(shown[off], matrix[off])
        assert np.isnan(np.diag(shown)).all()  # the diagonal is left out, as in the numbers
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim() == (0.0, 1.0)
    values = np.concatenate([m[off] for m in learned])
    for ax in panels[2:]:
        assert ax.images[0].get_clim() == pytest.approx((min(0.0, values.min()), values.max()))
    labels = panels[0].get_xticklabels()
    assert [t.get_text() for t in labels] == [f"AU{a}" for a in DISFA_AUS]
    red = {t.get_text() for t in labels if t.get_color() == WEAK_COLOUR}
    assert red == {"AU6", "AU26"}
    # the truth edges are marked on every panel
    edges = int(((truth > 0.5) & off).sum())
    assert all(len(ax.collections[0].get_offsets()) == edges for ax in panels)


def test_without_truth_only_the_prior_is_a_reference():
    fig = plot_adjacency_truth([np.eye(3)], np.eye(3), (1, 2, 4))
    assert [ax.get_title().split("\n")[0] for ax in _panels(fig)] == [
        "training-fold prior (Eq. 1-2)", "learned A, layer 1"]


def test_no_layers_is_an_error():
    with pytest.raises(ValueError, match="learned: expected at least one learned adjacency"):
        plot_adjacency_truth([], np.eye(3), (1, 2, 4))


def test_the_command_draws_a_run_folder(tmp_path, capsys):
    truth = preset_truth("tied", "DISFA")
    write_run(tmp_path / "run", learned=[truth, truth * 0.5], prior=truth)
    out = tmp_path / "fig.png"
    assert main(["adjacency-truth", str(tmp_path / "run"), "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    write_run(tmp_path / "plain", use_region_graph=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["adjacency-truth", str(tmp_path / "plain"), "-o", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert "no learned adjacency to draw" in capsys.readouterr().err

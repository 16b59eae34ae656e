"""Fold tables and the per-AU F1 box plot (the runners' own pieces)."""
import numpy as np
import pytest

from mgrr_pyg.train.metrics import evaluate_predictions
from mgrr_pyg.train.runners import fold_tables


def metrics(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((30, 3)) < 0.5).astype(int)
    labels[0], labels[1] = 1, 0
    return evaluate_predictions(rng.random((30, 3)), labels, aus=(1, 2, 4))


def test_fold_tables_mean_row_is_the_mean_of_the_folds():
    per_fold = {f"Fold {f}": metrics(f) for f in (1, 2, 3)}
    md = fold_tables(per_fold)
    f1_block = md.split("**Accuracy")[0]
    mean_row = [line for line in f1_block.splitlines() if line.startswith("| Mean")][0]
    cells = [c.strip() for c in mean_row.split("|")[1:-1]]
    expected = np.mean([m.f1 for m in per_fold.values()], axis=0) * 100
    assert cells[1:4] == [f"{v:.1f}" for v in expected]
    assert cells[4] == f"{expected.mean():.1f}"
    csv_text = fold_tables(per_fold, fmt="csv")
    assert csv_text.splitlines()[0] == "metric,row,AU1,AU2,AU4,Avg."
    assert sum(line.startswith("auc,Mean") for line in csv_text.splitlines()) == 1


def test_boxplot_writes_a_png(tmp_path):
    from mgrr_pyg.plots.boxplot import f1_boxplot

    path = f1_boxplot({f"Fold {f}": metrics(f) for f in (1, 2, 3)}, tmp_path / "box.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = f1_boxplot([np.array([0.5, 0.6]), np.array([0.7, 0.2])], aus=(1, 2))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AU1", "AU2", "Avg."]
    with pytest.raises(ValueError, match="aus"):
        f1_boxplot([np.array([0.5, 0.6])], aus=(1,))

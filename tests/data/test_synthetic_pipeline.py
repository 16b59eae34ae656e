"""Integration: the synthetic generator's raw trees -> prepare -> a training batch."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mgrr_pyg.data import PreparedListDataset, prepare_dataset, read_bp4d, read_disfa
from mgrr_pyg.data.protocol import folds
from mgrr_pyg.data.synthetic import generate
from mgrr_pyg.facs import AU_SETS, TEMPLATE_POINTS, alignment_points


@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
def test_generate_prepare_and_load_a_batch(tmp_path, dataset):
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate(raw, dataset=dataset, preset="tiny", seed=0, workers=1, progress=False)
    table = (read_bp4d if dataset == "BP4D" else read_disfa)(raw)
    manifest = prepare_dataset(raw, out, workers=0, progress=False)
    assert manifest["frames"] == len(table) > 0 and manifest["skipped"]["total"] == 0

    fold = folds(dataset)[0]
    train = PreparedListDataset(out, fold.train_prefix, train=True, seed=0)
    test = PreparedListDataset(out, fold.test_prefix, train=False)
    assert len(train) + len(test) == len(table) and train.aus == AU_SETS[dataset]
    assert not set(train.table.subject.tolist()) & set(test.table.subject.tolist())
    # Every aligned face has its alignment points near the template.
    residual = np.abs(alignment_points(train.table.landmarks) - TEMPLATE_POINTS).max()
    assert residual < 10.0, residual

    batch = next(iter(DataLoader(train, batch_size=4, shuffle=True,
                                 generator=torch.Generator().manual_seed(0))))
    assert batch["image"].shape == (4, 3, 176, 176)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["landmarks"].shape == (4, 49, 2) and batch["labels"].shape == (4, len(train.aus))
    assert torch.isfinite(batch["landmarks"]).all() and (batch["interocular"] > 20).all()
    # Labels in the batch are the raw labels of those frames.
    rows = {(s, q, f): i for i, (s, q, f) in
            enumerate(zip(table.subject.tolist(), table.sequence.tolist(), table.frame.tolist()))}
    for k, index in enumerate(batch["index"].tolist()):
        key = (train.table.subject[index], train.table.sequence[index], int(train.table.frame[index]))
        raw_labels = table.labels[rows[key]]
        np.testing.assert_array_equal(batch["label_mask"][k].numpy(), raw_labels != 9)
        np.testing.assert_array_equal(batch["labels"][k].numpy(), (raw_labels == 1).astype(np.float32))

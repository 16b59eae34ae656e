"""The protocol by value, against the published facts typed here (not the package's own
tables): which subject is in which of the three parts of BP4D and DISFA, the DISFA
occurrence cut and the probability threshold exactly at their boundaries."""
from __future__ import annotations

import numpy as np
import pytest
from raw_tree_helpers import write_disfa

from mgrr_pyg.data import protocol, read_disfa, read_prepared
from mgrr_pyg.data.prepared_lists import list_file
from mgrr_pyg.data.synthetic.expressions import occurrence
from mgrr_pyg.facs import DISFA_AUS
from mgrr_pyg.train.metrics import evaluate_predictions

# The subjects of JAA-Net's part lists, typed from its published files (the subject
# folders of data/list/{BP4D,DISFA}_part{1,2,3}_path.txt, PyTorch-JAANet; the same in the
# Caffe repository's data/*_part*_path.txt), 41 BP4D and 27 DISFA subjects.
PUBLISHED_PARTS = {
    "BP4D": {
        1: "F001 F002 F008 F009 F010 F016 F018 F023 M001 M004 M007 M008 M012 M014",
        2: "F003 F005 F011 F013 F020 F022 M002 M005 M010 M011 M013 M016 M017 M018",
        3: "F004 F006 F007 F012 F014 F015 F017 F019 F021 M003 M006 M009 M015",
    },
    "DISFA": {
        1: "SN001 SN002 SN009 SN010 SN016 SN026 SN027 SN030 SN032",
        2: "SN006 SN011 SN012 SN013 SN018 SN021 SN024 SN028 SN031",
        3: "SN003 SN004 SN005 SN007 SN008 SN017 SN023 SN025 SN029",
    },
}


def published(dataset: str, part: int) -> set[str]:
    return set(PUBLISHED_PARTS[dataset][part].split())


@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
def test_every_subject_is_in_its_published_part(dataset):
    assert {p: set(s) for p, s in protocol.PARTITION[dataset].items()} == \
        {p: published(dataset, p) for p in (1, 2, 3)}
    for part in (1, 2, 3):
        for subject in sorted(published(dataset, part)):
            assert protocol.part_of(dataset, subject) == part, subject


@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
@pytest.mark.parametrize("f", [1, 2, 3])
def test_fold_f_tests_on_part_f_and_trains_on_the_other_two(dataset, f):
    fold = protocol.fold(dataset, f)
    others = [p for p in (1, 2, 3) if p != f]
    assert set(fold.test_subjects) == published(dataset, f)
    assert set(fold.train_subjects) == published(dataset, others[0]) | published(dataset, others[1])
    assert len(fold.train_subjects) == len(set(fold.train_subjects))


def test_prepared_part_lists_hold_the_frames_of_their_published_subjects(prepared_bp4d):
    """The raw tree has F001 (part 1), F003 (part 2) and F004 (part 3); each part's
    prepared path list must hold exactly the frames of its subjects."""
    tree, out = prepared_bp4d
    by_part = {p: {key for key in tree.truth if key[0] in published("BP4D", p)} for p in (1, 2, 3)}
    assert all(by_part.values())  # every part is exercised
    for part, frames in by_part.items():
        table = read_prepared(out, f"BP4D_part{part}")
        assert {(s, q, int(f)) for s, q, f in zip(table.subject, table.sequence, table.frame)} \
            == frames
        paths = list_file(out, f"BP4D_part{part}", "path").read_text().splitlines()
        assert {path.split("/")[1] for path in paths} == {key[0] for key in frames}


def test_disfa_intensity_exactly_at_the_cut_is_positive(tmp_path):
    """Intensities 0..5 in frames 1..6 of every AU: occurrence is intensity >= 2 (the
    code MGRR-Net follows), >= 3 with the paper's literal "higher than two"."""
    tree = write_disfa(tmp_path / "DISFA", subjects=("SN001",), frames=6)
    for au in DISFA_AUS:
        label_file = tree.root / "ActionUnit_Labels" / "SN001" / f"SN001_au{au}.txt"
        label_file.write_text("".join(f"{i + 1},{i}\n" for i in range(6)))
    for threshold, expected in ((None, [0, 0, 1, 1, 1, 1]), (3, [0, 0, 0, 1, 1, 1])):
        table = read_disfa(tree.root) if threshold is None else read_disfa(tree.root,
                                                                           threshold=threshold)
        order = np.argsort(table.frame)
        assert table.frame[order].tolist() == [0, 1, 2, 3, 4, 5]
        assert table.intensity[order].tolist() == [[i] * len(DISFA_AUS) for i in range(6)]
        assert table.labels[order].tolist() == [[e] * len(DISFA_AUS) for e in expected]
    # the synthetic DISFA labels use the same cut
    assert occurrence(np.arange(6.0), "DISFA").tolist() == [0, 0, 1, 1, 1, 1]


def test_a_probability_exactly_at_the_threshold_is_a_positive_prediction():
    # one AU; frames: p = 0.5 (on the threshold), just below, just above, far below
    probs = np.array([[0.5], [np.nextafter(0.5, 0.0)], [np.nextafter(0.5, 1.0)], [0.1]])
    labels = np.array([[1], [1], [0], [0]])
    m = evaluate_predictions(probs, labels, aus=(1,))
    # predictions 1, 0, 1, 0: TP 1 (frame 0), FN 1 (frame 1), FP 1 (frame 2), TN 1
    assert m.f1[0] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert m.accuracy[0] == pytest.approx(2 / 4)
    # another threshold is the boundary then: 0.1 on it counts as positive
    m = evaluate_predictions(probs, labels, aus=(1,), threshold=0.1)
    assert m.accuracy[0] == pytest.approx(2 / 4)  # every frame predicted positive
    assert m.f1[0] == pytest.approx(2 * 2 / (2 * 2 + 2))

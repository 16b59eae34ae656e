"""The subject-exclusive 3-fold protocol (mgrr_pyg.data.protocol)."""
import pytest

from mgrr_pyg.data import protocol

DATASETS = ("BP4D", "DISFA")
# Subject counts of the published partition (docs/protocol.md; JAA-Net's part lists).
EXPECTED_SUBJECTS = {"BP4D": 41, "DISFA": 27}


@pytest.mark.parametrize("dataset", DATASETS)
def test_no_subject_is_on_both_sides_of_any_fold(dataset):
    for f in protocol.folds(dataset):
        train, test = set(f.train_subjects), set(f.test_subjects)
        assert train, f
        assert test, f
        assert not train & test, f"{f.describe()}: {sorted(train & test)} on both sides"
        assert train | test == set(protocol.subjects(dataset))


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_subject_belongs_to_exactly_one_part(dataset):
    parts = protocol.PARTITION[dataset]
    everyone = [s for p in (1, 2, 3) for s in parts[p]]
    assert len(everyone) == len(set(everyone)) == EXPECTED_SUBJECTS[dataset]
    for subject in everyone:
        owners = [p for p in (1, 2, 3) if subject in parts[p]]
        assert owners == [protocol.part_of(dataset, subject)]


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_part_is_tested_once_and_trained_on_twice(dataset):
    folds = protocol.folds(dataset)
    assert sorted(f.test_part for f in folds) == [1, 2, 3]
    for part in (1, 2, 3):
        assert sum(part in f.train_parts for f in folds) == 2
    for f in folds:
        assert f.test_part not in f.train_parts
        a, b = f.train_parts
        assert f.train_prefix == f"{dataset}_combine_{a}_{b}" and a < b
        assert f.test_prefix == f"{dataset}_part{f.test_part}"


def test_subject_in_no_part_is_an_error_naming_it():
    with pytest.raises(ValueError, match="F099"):
        protocol.part_of("BP4D", "F099")


def test_bad_fold_and_dataset_are_errors():
    with pytest.raises(ValueError, match="fold"):
        protocol.fold("BP4D", 4)
    with pytest.raises(ValueError, match="CK"):
        protocol.folds("CK+")


def test_describe_folds_states_the_numbering():
    text = protocol.describe_folds("DISFA")
    assert "fold 1" in text and "DISFA_part1" in text and "ME-GraphAU" in text

"""Raw BP4D / DISFA readers and layout detection."""
from pathlib import Path

import numpy as np
import pytest
from raw_tree_helpers import write_bp4d, write_disfa

from mgrr_pyg.data import FrameTable, SkipLog, detect_layout, raw, read_bp4d, read_disfa
from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS


def check_against_truth(table: FrameTable, tree, intensity=False):
    assert len(table) == len(tree.truth)
    for i in range(len(table)):
        row = table[i]
        truth = tree.truth[(row.subject, row.sequence, row.frame)]
        assert row.labels == {au: truth["labels"][au] for au in table.aus}
        np.testing.assert_allclose(row.landmarks, truth["landmarks"], atol=1e-9)
        assert row.image_path == str(truth["image"])
        if intensity:
            assert row.intensity == {au: truth["intensity"][au] for au in table.aus}


def test_bp4d_labels_are_picked_by_au_number_from_shuffled_extra_columns(bp4d_tree):
    table = read_bp4d(bp4d_tree.root)
    assert table.aus == BP4D_AUS and table.dataset == "BP4D"
    check_against_truth(table, bp4d_tree)
    assert (table.labels == 9).any() and table.mask.sum() == (table.labels != 9).sum()
    assert table.intensity is None


def test_bp4d_reads_unpadded_names_and_49_point_csvs(tmp_path):
    tree = write_bp4d(tmp_path / "b", sequences={"M001": ["T8"]}, padded=False, points=49)
    check_against_truth(read_bp4d(tree.root), tree)


def test_bp4d_unlabelled_images_are_counted_not_used(bp4d_tree):
    log = SkipLog()
    table = read_bp4d(bp4d_tree.root, log=log)
    assert len(table) == len(bp4d_tree.truth)
    assert log.notes["images without labels (not used)"] == 4  # one per sequence
    assert log.total == 0


def test_au_subset_in_any_order(bp4d_tree):
    table = read_bp4d(bp4d_tree.root, aus=(12, 1, 24))
    assert table.aus == (12, 1, 24)
    check_against_truth(table, bp4d_tree)


def test_bp4d_au_missing_from_the_csv_is_an_error_naming_it(bp4d_tree):
    with pytest.raises(ValueError, match=r"AU \[9\] missing"):
        read_bp4d(bp4d_tree.root, aus=(1, 9))


def test_cross_dataset_selection_by_au_number(bp4d_tree):
    table = read_bp4d(bp4d_tree.root)
    shared = [au for au in DISFA_AUS if au in BP4D_AUS]
    sub = table.select_aus(shared)
    assert sub.aus == tuple(shared)
    for i in range(len(sub)):
        assert sub[i].labels == {au: table[i].labels[au] for au in shared}
    with pytest.raises(ValueError, match=r"AU \[9, 25, 26\] not in"):
        table.select_aus(DISFA_AUS)


def test_disfa_occurrence_is_intensity_at_least_threshold_and_intensity_is_kept(disfa_tree):
    table = read_disfa(disfa_tree.root)
    assert table.aus == DISFA_AUS and table.dataset == "DISFA"
    check_against_truth(table, disfa_tree, intensity=True)
    assert not (table.labels == 9).any()
    # image index = label frame - 1 (the fixture writes frame i+1 for image i.png)
    assert sorted(set(table.frame.tolist())) == [0, 1, 2, 3]
    assert (table.sequence == table.subject).all()


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_disfa_threshold_is_configurable(disfa_tree, threshold):
    table = read_disfa(disfa_tree.root, threshold=threshold)
    np.testing.assert_array_equal(table.labels, (table.intensity >= threshold).astype(int))
    for i in range(len(table)):
        truth = disfa_tree.truth[(table.subject[i], table.sequence[i], int(table.frame[i]))]
        assert table[i].labels == {au: int(v >= threshold) for au, v in truth["intensity"].items()}


@pytest.mark.parametrize("threshold", [0, 6, 2.5])
def test_disfa_bad_threshold(disfa_tree, threshold):
    with pytest.raises(ValueError, match="threshold"):
        read_disfa(disfa_tree.root, threshold=threshold)


def test_disfa_jpg_frames_and_49_points(tmp_path):
    tree = write_disfa(tmp_path / "d", subjects=("SN002",), frames=2, extension=".jpg", points=49)
    check_against_truth(read_disfa(tree.root), tree, intensity=True)


def test_landmarks_from_another_folder(bp4d_tree, tmp_path):
    moved = tmp_path / "elsewhere"
    (bp4d_tree.root / "Landmarks").rename(moved)
    with pytest.raises(FileNotFoundError, match="landmark folder not found"):
        read_bp4d(bp4d_tree.root)
    check_against_truth(read_bp4d(bp4d_tree.root, landmarks=moved), bp4d_tree)


def test_detect_layout(bp4d_tree, disfa_tree, tmp_path):
    assert detect_layout(bp4d_tree.root) == "raw-bp4d"
    assert detect_layout(disfa_tree.root) == "raw-disfa"
    prepared = tmp_path / "lists"
    prepared.mkdir()
    (prepared / "BP4D_part1_path.txt").write_text("BP4D/F001/T1/1.jpg\n")
    assert detect_layout(prepared) == "prepared"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"AUCoding/AU_OCC.*ActionUnit_Labels"):
        detect_layout(empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        detect_layout(tmp_path / "missing")
    (bp4d_tree.root / "ActionUnit_Labels").mkdir()
    with pytest.raises(ValueError, match="both"):
        detect_layout(bp4d_tree.root)


def test_the_raw_layouts_and_their_marker_folders():
    assert {name: (layout.dataset, layout.marker.as_posix(), layout.threshold)
            for name, layout in raw.RAW_LAYOUTS.items()} == {
        "raw-bp4d": ("BP4D", "AUCoding/AU_OCC", False),
        "raw-disfa": ("DISFA", "ActionUnit_Labels", True)}


def test_a_registered_layout_is_detected_by_its_marker_folder(tmp_path):
    """Adding a layout is one entry: detect_layout finds it and names it when nothing fits."""
    layout = raw.RawLayout("raw-mine", "BP4D", Path("MyLabels"), read_bp4d)
    registered = dict(raw.RAW_LAYOUTS)
    raw.RAW_LAYOUTS["raw-mine"] = layout
    try:
        (tmp_path / "mine" / "MyLabels").mkdir(parents=True)
        assert detect_layout(tmp_path / "mine") == "raw-mine"
        (tmp_path / "empty").mkdir()
        with pytest.raises(ValueError, match=r"ActionUnit_Labels/ \(raw DISFA\) and MyLabels/ "
                                             r"\(raw BP4D\), found none"):
            detect_layout(tmp_path / "empty")
    finally:
        raw.RAW_LAYOUTS.clear()
        raw.RAW_LAYOUTS.update(registered)


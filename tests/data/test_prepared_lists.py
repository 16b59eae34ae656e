"""The prepared-list format: round trip, separators, AU columns, row-count mismatch."""
import numpy as np
import pytest

from mgrr_pyg.data import FrameTable, read_class_weights, read_prepared, read_prior, write_prepared
from mgrr_pyg.data.prepared import list_file
from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS, interocular_distance


def make_table(root, n=5, aus=BP4D_AUS, dataset="BP4D", seed=0):
    rng = np.random.default_rng(seed)
    paths = [root / "images" / dataset / "F001" / "T1" / f"{i}.jpg" for i in range(n)]
    landmarks = rng.uniform(20, 180, (n, 49, 2))
    labels = rng.choice([0, 1, 9], size=(n, len(aus)))
    return FrameTable(aus=aus, subject=["F001"] * n, sequence=["T1"] * n, frame=range(n),
                      image_path=[str(p) for p in paths], landmarks=landmarks, labels=labels,
                      dataset=dataset)


def test_round_trip(tmp_path):
    table = make_table(tmp_path)
    written = write_prepared(table, tmp_path, "BP4D_part1", weights=[0.5] * 12,
                             prior=np.eye(12))
    assert set(written) == {"path", "land", "biocular", "AUoccur", "weight", "prior"}
    assert list_file(tmp_path, "BP4D_part1", "path").read_text().splitlines()[0] == "BP4D/F001/T1/0.jpg"
    back = read_prepared(tmp_path, "BP4D_part1", image_root=tmp_path / "images")
    assert back.aus == BP4D_AUS
    np.testing.assert_array_equal(back.labels, table.labels)
    np.testing.assert_allclose(back.landmarks, table.landmarks, atol=1e-4)
    np.testing.assert_allclose(back.biocular, interocular_distance(table.landmarks) ** 2, rtol=1e-5)
    assert back.image_path.tolist() == table.image_path.tolist()
    assert back.subject.tolist() == ["F001"] * 5 and back.sequence.tolist() == ["T1"] * 5
    assert back.frame.tolist() == list(range(5))
    np.testing.assert_allclose(read_class_weights(tmp_path, "BP4D_part1"), [0.5] * 12)
    np.testing.assert_allclose(read_prior(tmp_path, "BP4D_part1"), np.eye(12))


def test_image_root_is_found_where_the_first_image_is(tmp_path):
    table = make_table(tmp_path)
    write_prepared(table, tmp_path, "BP4D_part1")
    assert read_prepared(tmp_path, "BP4D_part1").image_path[0] == str(tmp_path / "BP4D/F001/T1/0.jpg")
    first = tmp_path / "images/BP4D/F001/T1/0.jpg"
    first.parent.mkdir(parents=True)
    first.write_bytes(b"")
    assert read_prepared(tmp_path, "BP4D_part1").image_path.tolist() == table.image_path.tolist()


def test_the_biocular_file_is_the_squared_distance_of_the_reference_lists():
    # The published JAA-Net lists give 4480.04532 for this BP4D face (reference data).
    from raw_tree_helpers import reference_faces
    assert interocular_distance(reference_faces()[0]) ** 2 == pytest.approx(4480.04532, abs=0.01)


def test_tab_separated_landmarks_and_trailing_spaces(tmp_path):
    write_prepared(make_table(tmp_path), tmp_path, "BP4D_part2")
    land = list_file(tmp_path, "BP4D_part2", "land")
    original = read_prepared(tmp_path, "BP4D_part2").landmarks
    land.write_text("".join(line.replace(" ", "\t") + " \n" for line in land.read_text().splitlines()))
    np.testing.assert_allclose(read_prepared(tmp_path, "BP4D_part2").landmarks, original)


def test_aus_select_and_reorder(tmp_path):
    write_prepared(make_table(tmp_path), tmp_path, "BP4D_part1")
    full = read_prepared(tmp_path, "BP4D_part1")
    sub = read_prepared(tmp_path, "BP4D_part1", aus=(24, 1))
    np.testing.assert_array_equal(sub.labels, full.labels[:, [11, 0]])
    with pytest.raises(ValueError, match=r"AU \[25\] not in .*BP4D_part1_AUoccur.txt"):
        read_prepared(tmp_path, "BP4D_part1", aus=(1, 25))


def test_au_columns_from_prefix_count_or_argument(tmp_path):
    write_prepared(make_table(tmp_path, aus=DISFA_AUS, dataset="DISFA"), tmp_path, "mylist")
    assert read_prepared(tmp_path, "mylist").aus == DISFA_AUS  # 8 columns: only DISFA has 8
    write_prepared(make_table(tmp_path, aus=(1, 2, 4)), tmp_path, "other")
    with pytest.raises(ValueError, match="cannot tell which AUs"):
        read_prepared(tmp_path, "other")
    assert read_prepared(tmp_path, "other", au_columns=(1, 2, 4)).aus == (1, 2, 4)
    with pytest.raises(ValueError, match=r"expected 2 columns .* found 3"):
        read_prepared(tmp_path, "other", au_columns=(1, 2))


@pytest.mark.parametrize("suffix", ["path", "land", "biocular", "AUoccur"])
def test_row_counts_that_differ_name_the_files_and_counts(tmp_path, suffix):
    write_prepared(make_table(tmp_path), tmp_path, "BP4D_part1")
    path = list_file(tmp_path, "BP4D_part1", suffix)
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    with pytest.raises(ValueError, match=rf"row counts differ.*BP4D_part1_{suffix}.txt: 4 rows") as err:
        read_prepared(tmp_path, "BP4D_part1")
    for other in {"path", "land", "biocular", "AUoccur"} - {suffix}:
        assert f"BP4D_part1_{other}.txt: 5 rows" in str(err.value)


def test_missing_list_file_is_named(tmp_path):
    write_prepared(make_table(tmp_path), tmp_path, "BP4D_part1")
    list_file(tmp_path, "BP4D_part1", "biocular").unlink()
    with pytest.raises(FileNotFoundError, match="BP4D_part1_biocular.txt"):
        read_prepared(tmp_path, "BP4D_part1")


def test_empty_prefix_reads_as_an_empty_table(tmp_path):
    write_prepared(make_table(tmp_path, n=0), tmp_path, "BP4D_part3")
    table = read_prepared(tmp_path, "BP4D_part3")
    assert len(table) == 0 and table.aus == BP4D_AUS and table.labels.shape == (0, 12)

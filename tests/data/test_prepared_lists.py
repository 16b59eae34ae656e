"""The prepared-list format: round trip, separators, AU columns, row-count mismatch; and
the listed images: every image a prepared list names is looked for when the dataset is
built (one stat each), so a missing, empty or misplaced image is an error naming the
list file, the row and the path before any training, not a DataLoader traceback after it."""
import json
import shutil

import numpy as np
import pytest

from mgrr_pyg.data import (FrameTable, PreparedListDataset, read_class_weights, read_prepared,
                           read_prior, write_prepared)
from mgrr_pyg.data import prepared_lists
from mgrr_pyg.data.prepared_lists import MissingImagesError, find_missing_images, list_file
from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS, interocular_distance
from mgrr_pyg.train.cli import main


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


def test_the_old_module_name_still_works_with_a_warning():
    import mgrr_pyg.data.prepared as old

    with pytest.warns(DeprecationWarning, match=r"mgrr_pyg\.data\.prepared\.read_prepared is "
                                                r"deprecated.*use mgrr_pyg\.data\.prepared_lists"
                                                r"\.read_prepared"):
        from mgrr_pyg.data.prepared import read_prepared as old_read_prepared
    assert old_read_prepared is read_prepared
    with pytest.warns(DeprecationWarning, match="prepared_lists.MissingImagesError"):
        assert old.MissingImagesError is MissingImagesError
    assert set(prepared_lists.__all__) <= set(dir(old))


# --- listed images: looked for before training (the last three through the training command) ---

@pytest.fixture
def prepared(prepared_bp4d, tmp_path):
    """A private copy of the session's BP4D preparation (tests damage it)."""
    out = tmp_path / "prepared"
    shutil.copytree(prepared_bp4d[1], out)
    return out


def listed_image(root, prefix, row):
    """The image file of 1-based ``row`` of ``prefix``, by the manifest's image folder
    (read here from the files, not through the package)."""
    relative = list_file(root, prefix, "path").read_text().splitlines()[row - 1].strip()
    folder = json.loads((root / "prepare.json").read_text())["image_root"]
    return root / folder / relative


def test_missing_empty_and_folder_rows_are_each_named(prepared):
    rows = len(list_file(prepared, "BP4D_part1", "path").read_text().splitlines())
    assert rows >= 6
    gone, empty, folder = (listed_image(prepared, "BP4D_part1", r) for r in (3, 5, 6))
    gone.unlink()
    empty.write_bytes(b"")
    folder.unlink()
    folder.mkdir()
    with pytest.raises(MissingImagesError) as info:
        PreparedListDataset(prepared, "BP4D_part1", train=False)
    err = info.value
    assert [line for line, _, _ in err.problems] == [3, 5, 6]
    assert err.total == rows and err.list_path == list_file(prepared, "BP4D_part1", "path")
    message = str(err)
    assert message.startswith(f"{err.list_path}, line 3: expected an image file at {gone}, found nothing")
    assert f"3 of the {rows} listed images are missing or empty" in message
    assert "line 5: " in message and "(an empty file (0 bytes))" in message
    assert "line 6: " in message and "(a folder)" in message
    assert f"relative to {prepared / 'images'} (named by {prepared / 'prepare.json'})" in message
    assert isinstance(err, FileNotFoundError)


def test_only_the_first_few_are_listed_and_the_rest_counted(prepared):
    rows = len(list_file(prepared, "BP4D_combine_1_2", "path").read_text().splitlines())
    assert rows > 8
    for row in range(2, 10):  # eight of them
        listed_image(prepared, "BP4D_combine_1_2", row).unlink()
    message = str(pytest.raises(MissingImagesError, PreparedListDataset, prepared,
                                "BP4D_combine_1_2", train=True).value)
    assert "line 2: " in message and f"8 of the {rows} listed" in message
    assert "line 6: " in message and "line 7: " not in message and "and 3 more" in message


def test_a_wrong_image_folder_is_named_as_the_likely_cause(prepared, tmp_path):
    elsewhere = tmp_path / "nowhere"
    elsewhere.mkdir()
    message = str(pytest.raises(MissingImagesError, PreparedListDataset, prepared, "BP4D_part1",
                                train=False, image_root=elsewhere).value)
    assert "none of the" in message and "the image folder is probably the wrong one" in message
    assert f"relative to {elsewhere} (the image folder given)" in message
    assert "pass image_root=" in message  # the Python API's words for the Python API


def test_find_missing_images_looks_at_files_only(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"x")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    paths = [str(tmp_path / n) for n in ("ok.png", "gone.png", "empty.png", "dir", "file/below.png")]
    found = find_missing_images(paths)
    assert [(row, what) for row, _, what in found] == [
        (2, "nothing"), (3, "an empty file (0 bytes)"), (4, "a folder"),
        (5, "nothing (a parent folder is a file)")]
    assert found[0][1] == paths[1]


def test_reading_the_lists_alone_does_not_look_for_images(prepared):
    listed_image(prepared, "BP4D_part1", 2).unlink()
    table = read_prepared(prepared, "BP4D_part1")  # e.g. to count labels
    assert len(table) > 2


TINY_RUN = ["--preset", "tiny", "--epochs", "1", "--batch-size", "4", "--max-train-frames", "8",
            "--max-test-frames", "6", "--workers", "0", "--device", "cpu", "--no-progress",
            "--no-tensorboard"]


def test_a_missing_test_image_stops_the_command_before_training(prepared, tmp_path, capsys):
    """Fold 1 tests on part 1: a missing image in its last row is found before training,
    in the command line's words."""
    rows = list_file(prepared, "BP4D_part1", "path").read_text().splitlines()
    listed_image(prepared, "BP4D_part1", len(rows)).unlink()
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(TINY_RUN + ["--data-root", str(prepared), "--output", str(out)], dataset="BP4D",
             prog="train_bp4d.py")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train_bp4d.py: error: {list_file(prepared, 'BP4D_part1', 'path')}, "
                          f"line {len(rows)}: expected an image file at")
    assert f"1 of the {len(rows)} listed images are missing or empty" in err
    assert "--image-root" in err and "--data-root" in err and "image_root=" not in err
    assert not out.exists()  # no trainer was built: nothing trained, nothing written


def test_image_root_option_reaches_the_lists(prepared, tmp_path, capsys):
    elsewhere = tmp_path / "faces"
    elsewhere.mkdir()
    with pytest.raises(SystemExit):
        main(TINY_RUN + ["--data-root", str(prepared), "--image-root", str(elsewhere),
                         "--output", str(tmp_path / "run")], dataset="BP4D")
    err = capsys.readouterr().err
    assert f"relative to {elsewhere} (the image folder given)" in err


def test_missing_images_of_a_prepared_cache_say_to_prepare_again(bp4d_tree, tmp_path, capsys):
    """Raw data prepared into the cache: the run manages that folder, so the fix it names
    is to prepare it again, not an option."""
    from mgrr_pyg.train.config import TrainConfig
    from mgrr_pyg.train.data_sources import prepared_root

    cache = tmp_path / "cache"
    argv = TINY_RUN + ["--data-root", str(bp4d_tree.root), "--cache-dir", str(cache),
                       "--output", str(tmp_path / "run")]
    with pytest.raises(SystemExit):  # --image-root is for prepared lists only
        main(argv + ["--image-root", str(tmp_path)], dataset="BP4D")
    assert "only used with prepared lists" in capsys.readouterr().err
    assert not cache.exists()  # refused before preparing anything

    root, _ = prepared_root(TrainConfig(data_root=str(bp4d_tree.root), cache_dir=str(cache),
                                        workers=0, progress=False), log=lambda message: None)
    assert root.parent == cache / "prepared"
    listed_image(root, "BP4D_combine_2_3", 1).unlink()
    with pytest.raises(SystemExit):
        main(argv, dataset="BP4D")
    err = capsys.readouterr().err
    assert f"{list_file(root, 'BP4D_combine_2_3', 'path')}, line 1: expected an image file" in err
    assert f"the prepared data in {root} is incomplete" in err
    assert f"delete {root} and run again to prepare it afresh" in err
    assert "image_root=" not in err

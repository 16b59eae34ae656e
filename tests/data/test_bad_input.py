"""Every kind of bad input: a clear error naming file, row, expected and found, or, with
skip_bad, a counted skip recorded in the manifest; never a silent drop or a NaN later."""
import json
import logging
import pickle

import numpy as np
import pytest
from raw_tree_helpers import write_landmark_csv

from mgrr_pyg.data import BadInputError, PreparedListDataset, SkipLog, prepare_dataset, read_bp4d, read_disfa, read_prepared
from mgrr_pyg.data.bad_input import MAX_EXAMPLES_PER_REASON, check_landmarks_finite, check_landmarks_inside
from mgrr_pyg.data.prepared_lists import list_file


def prepare(tree, out, skip_bad):
    return prepare_dataset(tree.root, out, workers=0, skip_bad=skip_bad, progress=False)


def all_paths(out):
    return [line for p in (1, 2, 3)
            for line in list_file(out, f"BP4D_part{p}", "path").read_text().splitlines()]


def expect_skip(tree, tmp_path, reason, skipped_frames, caplog):
    """Prepare with skip_bad: the skip is counted in the manifest and logged."""
    with caplog.at_level(logging.WARNING):
        manifest = prepare(tree, tmp_path / "skipped", skip_bad=True)
    assert manifest["skipped"]["by_reason"] == {reason: manifest["skipped"]["total"]}
    assert manifest["skipped"]["examples"][reason]
    assert manifest["frames"] == len(tree.truth) - skipped_frames
    assert json.loads((tmp_path / "skipped" / "prepare.json").read_text())["skipped"] == manifest["skipped"]
    assert reason in caplog.text
    assert len(all_paths(tmp_path / "skipped")) == manifest["frames"]
    return manifest


def first_frame(tree, subject="F001", task="T1"):
    frame = min(f for (s, t, f) in tree.truth if (s, t) == (subject, task))
    return tree.truth[(subject, task, frame)], frame


@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_unreadable_images(bp4d_tree, tmp_path, damage, caplog):
    truth, frame = first_frame(bp4d_tree)
    image = truth["image"]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"GIF89a? no, text")
    with pytest.raises(BadInputError, match=rf"{image}: expected a readable image"):
        prepare(bp4d_tree, tmp_path / "out", skip_bad=False)
    expect_skip(bp4d_tree, tmp_path, "unreadable image", 1, caplog)
    assert f"BP4D/F001/T1/{frame}.jpg" not in all_paths(tmp_path / "skipped")


def test_bp4d_label_value_outside_0_1_9(bp4d_tree, tmp_path, caplog):
    csv = bp4d_tree.root / "AUCoding" / "AU_OCC" / "F003_T1.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("12")
    cells = lines[2].split(",")
    cells[column] = "2"
    lines[2] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{csv}, line 3, AU12: expected 0, 1 or 9, found '2'"):
        read_bp4d(bp4d_tree.root)
    expect_skip(bp4d_tree, tmp_path, "label value", 1, caplog)


def test_disfa_intensity_outside_0_5(disfa_tree, tmp_path):
    path = disfa_tree.root / "ActionUnit_Labels" / "SN006" / "SN006_au25.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",7"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 2: expected an intensity 0-5, found '7'"):
        read_disfa(disfa_tree.root)
    table = read_disfa(disfa_tree.root, skip_bad=True)
    assert len(table) == len(disfa_tree.truth) - 1
    assert 1 not in table.frame[table.subject == "SN006"].tolist()  # label frame 2 = image 1


def test_prepared_label_value_outside_0_1_9(prepared_bp4d, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(prepared_bp4d[1], out)
    path = list_file(out, "BP4D_part2", "AUoccur")
    lines = path.read_text().splitlines()
    lines[1] = "5 " + lines[1].split(" ", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 2, AU1: expected 0, 1 or 9, found '5'"):
        read_prepared(out, "BP4D_part2")


@pytest.mark.parametrize("value", ["nan", "", "inf"])
def test_non_finite_raw_landmarks(bp4d_tree, tmp_path, value, caplog):
    _, frame = first_frame(bp4d_tree, "F004", "T1")
    path = bp4d_tree.root / "Landmarks" / "F004_T1.csv"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"{frame},"))
    cells = lines[row].split(",")
    cells[40] = value  # a coordinate of 68-point index 19 = 49-point index 2
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, frame {frame}: expected finite coordinates, found NaN/inf at 49-point indices \[2\]"):
        read_bp4d(bp4d_tree.root)
    expect_skip(bp4d_tree, tmp_path, "landmarks not finite", 1, caplog)


def test_non_finite_prepared_landmarks(prepared_bp4d, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(prepared_bp4d[1], out)
    path = list_file(out, "BP4D_part1", "land")
    lines = path.read_text().splitlines()
    lines[2] = "nan " + lines[2].split(" ", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 3: expected finite landmark coordinates, found NaN"):
        read_prepared(out, "BP4D_part1")


def test_malformed_prepared_rows_name_the_line(prepared_bp4d, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(prepared_bp4d[1], out)
    path = list_file(out, "BP4D_part1", "land")
    lines = path.read_text().splitlines()
    lines[1] = lines[1] + " 7.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 2: expected 98 landmark coordinates, found 99"):
        read_prepared(out, "BP4D_part1")
    lines[1] = lines[1].rsplit(" ", 2)[0] + " x1"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 2, value 98: expected a number, found 'x1'"):
        read_prepared(out, "BP4D_part1")


def test_landmarks_outside_the_image(bp4d_tree, tmp_path, caplog):
    truth, frame = first_frame(bp4d_tree, "F003", "T1")
    path = bp4d_tree.root / "Landmarks" / "F003_T1.csv"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"{frame},"))
    cells = lines[row].split(",")
    cells[1 + 2 * 17] = "250.0"  # 68-point index 17 (49-point 0) x, beyond the 240-px image
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{truth['image']}: expected landmarks inside the 240x240 image, "
                                         r"found 1 outside \(e.g. point 0 at \(250.0"):
        prepare(bp4d_tree, tmp_path / "out", skip_bad=False)
    expect_skip(bp4d_tree, tmp_path, "landmarks outside image", 1, caplog)


def rename_subject(tree, old, new):
    (tree.root / old).rename(tree.root / new)
    for folder in (tree.root / "AUCoding" / "AU_OCC", tree.root / "Landmarks"):
        for path in folder.glob(f"{old}_*.csv"):
            path.rename(folder / path.name.replace(old, new))


def test_subject_in_no_part(bp4d_tree, tmp_path, caplog):
    rename_subject(bp4d_tree, "F004", "F099")
    lost = sum(1 for (s, _, _) in bp4d_tree.truth if s == "F004")
    with pytest.raises(ValueError, match=r"subject 'F099' belongs to no part of the BP4D partition"):
        prepare(bp4d_tree, tmp_path / "out", skip_bad=False)
    expect_skip(bp4d_tree, tmp_path, "subject in no part", lost, caplog)


def test_sequence_with_images_but_no_labels(bp4d_tree, tmp_path, caplog):
    csv = bp4d_tree.root / "AUCoding" / "AU_OCC" / "F001_T2.csv"
    csv.unlink()
    lost = sum(1 for (s, t, _) in bp4d_tree.truth if (s, t) == ("F001", "T2"))
    with pytest.raises(ValueError, match=rf"{bp4d_tree.root / 'F001' / 'T2'}: 4 images but no label file {csv}"):
        read_bp4d(bp4d_tree.root)
    expect_skip(bp4d_tree, tmp_path, "sequence without labels", lost, caplog)


def test_sequence_with_labels_but_no_images(bp4d_tree, tmp_path, caplog):
    import shutil
    shutil.rmtree(bp4d_tree.root / "F003" / "T1")
    lost = sum(1 for (s, t, _) in bp4d_tree.truth if (s, t) == ("F003", "T1"))
    with pytest.raises(ValueError, match=r"F003_T1.csv: labels \(3 rows\) but no images in .*F003/T1"):
        read_bp4d(bp4d_tree.root)
    expect_skip(bp4d_tree, tmp_path, "sequence without images", lost, caplog)


def test_disfa_subject_without_images_or_without_labels(disfa_tree):
    import shutil
    shutil.rmtree(disfa_tree.root / "SN003")
    with pytest.raises(ValueError, match=r"SN003: labels but no images"):
        read_disfa(disfa_tree.root)
    shutil.rmtree(disfa_tree.root / "ActionUnit_Labels" / "SN003")
    shutil.rmtree(disfa_tree.root / "ActionUnit_Labels" / "SN006")
    with pytest.raises(ValueError, match=r"SN006: 4 images but no label folder .*ActionUnit_Labels/SN006"):
        read_disfa(disfa_tree.root)
    log = SkipLog(skip_bad=True)
    table = read_disfa(disfa_tree.root, log=log)
    assert set(table.subject.tolist()) == {"SN001"}
    assert dict(log.counts) == {"sequence without labels": 1}


def test_labelled_frame_without_image(bp4d_tree):
    truth, frame = first_frame(bp4d_tree)
    truth["image"].unlink()
    with pytest.raises(ValueError, match=rf"F001_T1.csv, line 2: frame {frame} is labelled but has no image"):
        read_bp4d(bp4d_tree.root)


def test_labelled_frame_without_landmarks(bp4d_tree):
    _, frame = first_frame(bp4d_tree)
    path = bp4d_tree.root / "Landmarks" / "F001_T1.csv"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                            if not line.startswith(f"{frame},")))
    with pytest.raises(ValueError, match=rf"{path}: no row for frame {frame}"):
        read_bp4d(bp4d_tree.root)


@pytest.mark.parametrize("count", [5, 50, 67])
def test_landmark_counts_other_than_49_66_68(bp4d_tree, tmp_path, count, caplog):
    path = bp4d_tree.root / "Landmarks" / "F001_T2.csv"
    frames = sorted(f for (s, t, f) in bp4d_tree.truth if (s, t) == ("F001", "T2"))
    write_landmark_csv(path, frames, [np.full((count, 2), 50.0)] * len(frames))
    with pytest.raises(ValueError, match=rf"{path}, line 1: expected .*49, 66 or 68 landmarks.*found "
                                         rf"{2 * count + 1} columns \({count} points\)"):
        read_bp4d(bp4d_tree.root)
    expect_skip(bp4d_tree, tmp_path, "landmark file", len(frames), caplog)


def test_unreadable_aligned_image_in_the_dataset(prepared_bp4d, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(prepared_bp4d[1], out)
    ds = PreparedListDataset(out, "BP4D_part1", train=True)
    path = ds.table.image_path[1]
    data = open(path, "rb").read()
    open(path, "wb").write(data[:200])
    with pytest.raises(ValueError, match=rf"BP4D_part1_path.txt, line 2: expected a readable image {path}"):
        ds[1]


# --- the policy itself ---------------------------------------------------------------------

def test_the_policy_raises_by_default_and_counts_when_skipping():
    strict = SkipLog()
    with pytest.raises(BadInputError, match="a.csv, line 3: expected 0, 1 or 9") as info:
        strict.bad("label value", "a.csv, line 3: expected 0, 1 or 9, found '7'")
    assert info.value.reason == "label value" and strict.total == 0

    lenient = SkipLog(skip_bad=True)
    for i in range(MAX_EXAMPLES_PER_REASON + 5):
        lenient.bad("label value", f"message {i}")
    lenient.skip_or_raise(BadInputError("missing image", "b.jpg: gone"))
    assert lenient.counts == {"label value": MAX_EXAMPLES_PER_REASON + 5, "missing image": 1}
    assert lenient.examples["label value"] == [f"message {i}" for i in range(MAX_EXAMPLES_PER_REASON)]
    assert lenient.total == MAX_EXAMPLES_PER_REASON + 6
    summary = lenient.summary()
    assert list(summary["by_reason"]) == ["label value", "missing image"]
    assert summary["examples"]["missing image"] == ["b.jpg: gone"]


def test_merged_logs_add_counts_and_keep_the_example_limit():
    first, second = SkipLog(skip_bad=True), SkipLog(skip_bad=True)
    for i in range(MAX_EXAMPLES_PER_REASON - 1):
        first.record("label row", f"first {i}")
    second.record("label row", "second 0")
    second.record("label row", "second 1")
    second.notes["images without labels (not used)"] += 4
    first.merge(second)
    assert first.counts["label row"] == MAX_EXAMPLES_PER_REASON + 1
    assert first.examples["label row"][-1] == "second 0"
    assert len(first.examples["label row"]) == MAX_EXAMPLES_PER_REASON
    assert first.summary()["notes"] == {"images without labels (not used)": 4}


def test_bad_input_errors_keep_their_reason_across_process_boundaries():
    error = pickle.loads(pickle.dumps(BadInputError("unreadable image", "x.jpg: truncated")))
    assert type(error) is BadInputError and error.reason == "unreadable image"
    assert str(error) == "x.jpg: truncated"


def test_landmark_checks_name_the_frame_and_the_points():
    points = np.full((49, 2), 10.0)
    check_landmarks_finite("F001_T1.csv, frame 7", points)
    points[[3, 30], 1] = np.nan
    with pytest.raises(BadInputError, match=r"F001_T1.csv, frame 7: expected finite coordinates, "
                                            r"found NaN/inf at 49-point indices \[3, 30\]") as info:
        check_landmarks_finite("F001_T1.csv, frame 7", points)
    assert info.value.reason == "landmarks not finite"

    # Pixel centres sit at integer positions: a 4x3 image spans -0.5 .. 3.5 by -0.5 .. 2.5.
    edge = np.tile([[-0.5, 2.5]], (49, 1))
    edge[1] = [3.5, -0.5]
    check_landmarks_inside("a.jpg", edge, (4, 3))
    edge[5] = [3.6, 1.0]
    with pytest.raises(BadInputError, match=r"a.jpg: expected landmarks inside the 4x3 image, "
                                            r"found 1 outside \(e.g. point 5 at \(3.6, 1.0\)\)") as info:
        check_landmarks_inside("a.jpg", edge, (4, 3))
    assert info.value.reason == "landmarks outside image"


def test_the_frame_table_module_still_hands_out_the_policy():
    """Code written before the split imports them from mgrr_pyg.data.frames."""
    from mgrr_pyg.data import frames

    assert frames.BadInputError is BadInputError and frames.SkipLog is SkipLog

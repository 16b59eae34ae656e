"""``mgrr-prepare --check RAW``: a raw tree compared with the published facts of the
release (or, for the synthetic stand-in, with the sizes it was generated with), every
difference reported, exit 0 only when everything matches."""
import shutil

import pytest

from mgrr_pyg.data.check import PUBLISHED, check_raw
from mgrr_pyg.data.cli import main
from mgrr_pyg.data.synthetic import generate

# Typed from the releases' papers (Zhang et al. 2014, BP4D-Spontaneous; Mavadati et al.
# 2013, DISFA), not from the package.
BP4D_WOMEN = ["F001", "F002", "F003", "F004", "F005", "F006", "F007", "F008", "F009", "F010",
              "F011", "F012", "F013", "F014", "F015", "F016", "F017", "F018", "F019", "F020",
              "F021", "F022", "F023"]
BP4D_MEN = ["M001", "M002", "M003", "M004", "M005", "M006", "M007", "M008", "M009", "M010",
            "M011", "M012", "M013", "M014", "M015", "M016", "M017", "M018"]
DISFA_SUBJECTS = ["SN001", "SN002", "SN003", "SN004", "SN005", "SN006", "SN007", "SN008", "SN009",
                  "SN010", "SN011", "SN012", "SN013", "SN016", "SN017", "SN018", "SN021", "SN023",
                  "SN024", "SN025", "SN026", "SN027", "SN028", "SN029", "SN030", "SN031", "SN032"]
DISFA_CODED = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]


def test_published_facts_are_the_papers():
    bp4d, disfa = PUBLISHED["BP4D"], PUBLISHED["DISFA"]
    assert sorted(bp4d.subjects) == BP4D_WOMEN + BP4D_MEN
    assert len(BP4D_WOMEN) == 23 and len(BP4D_MEN) == 18
    assert list(bp4d.sequences) == ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8"]
    assert len(bp4d.subjects) * len(bp4d.sequences) == 328
    assert sorted(disfa.subjects) == DISFA_SUBJECTS and len(DISFA_SUBJECTS) == 27
    assert disfa.frames_per_sequence == 4845 and list(disfa.coded_aus) == DISFA_CODED
    assert "Zhang et al. 2014" in bp4d.source and "Mavadati et al. 2013" in disfa.source


# -- the synthetic stand-in: checked against its own manifest -------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    trees = {}
    for dataset in ("BP4D", "DISFA"):
        trees[dataset] = root / dataset
        generate(trees[dataset], dataset=dataset, preset="tiny", workers=0, progress=False)
    return trees


@pytest.mark.parametrize("dataset", ["BP4D", "DISFA"])
def test_a_complete_synthetic_tree_matches_its_manifest(synthetic, dataset, capsys):
    assert main(["--check", str(synthetic[dataset])]) == 0
    printed = capsys.readouterr().out
    assert "synthetic, smaller than the release on purpose" in printed
    assert "Everything matches." in printed and "!!" not in printed


def test_the_synthetic_tree_against_the_release_differs_and_says_why(synthetic, capsys):
    assert main(["--check", str(synthetic["DISFA"]), "--expect", "published"]) == 1
    printed = capsys.readouterr().out
    assert "| subjects" in printed and "27 |" in printed and "4845 |" in printed
    assert "SN005: no image folder SN005/" in printed  # a subject the tiny set leaves out
    assert "--expect synthetic" in printed and "What to do" in printed


@pytest.fixture()
def disfa_copy(synthetic, tmp_path):
    return shutil.copytree(synthetic["DISFA"], tmp_path / "DISFA")


@pytest.fixture()
def bp4d_copy(synthetic, tmp_path):
    return shutil.copytree(synthetic["BP4D"], tmp_path / "BP4D")


def test_a_missing_subject(disfa_copy, capsys):
    shutil.rmtree(disfa_copy / "SN002")
    shutil.rmtree(disfa_copy / "ActionUnit_Labels" / "SN002")
    assert main(["--check", str(disfa_copy)]) == 1
    printed = capsys.readouterr().out
    assert "missing subjects (1):" in printed
    assert "SN002: no image folder SN002/ and no label folder ActionUnit_Labels/SN002/" in printed
    assert ("subjects", "6", "5", False) in check_raw(disfa_copy).rows


def test_a_short_label_file_and_a_value_outside_the_coding(disfa_copy):
    short = disfa_copy / "ActionUnit_Labels" / "SN001" / "SN001_au4.txt"
    lines = short.read_text().splitlines()
    short.write_text("\n".join(lines[:-3]) + "\n")
    bad = disfa_copy / "ActionUnit_Labels" / "SN003" / "SN003_au12.txt"
    lines = bad.read_text().splitlines()
    lines[4] = lines[4].split(",")[0] + ",7"
    bad.write_text("\n".join(lines) + "\n")
    report = check_raw(disfa_copy)
    assert not report.ok
    assert report.differences["short or long label files"] == [
        f"{short}: 13 frames coded, expected 16 (frames 1-16)"]
    [message] = report.differences["bad input: label value"]
    assert str(bad) in message and "line 5" in message and "'7'" in message


def test_labels_without_images_and_a_missing_landmark_file(disfa_copy):
    shutil.rmtree(disfa_copy / "SN004")
    (disfa_copy / "Landmarks" / "SN001.csv").unlink()
    (disfa_copy / "SN003" / "15.png").unlink()
    report = check_raw(disfa_copy)
    assert report.differences["label files without images"] == [
        f"{disfa_copy / 'ActionUnit_Labels' / 'SN004'}/: no image folder {disfa_copy / 'SN004'}/"]
    [missing] = report.differences["missing landmark files"]
    assert str(disfa_copy / "Landmarks" / "SN001.csv") in missing
    [frames] = report.differences["frame counts"]
    assert frames.startswith(f"{disfa_copy / 'SN003'}/: 15 images, expected 16")


def test_bp4d_deviations(bp4d_copy, capsys):
    subject = "F001"  # in the tiny set (two subjects per part)
    (bp4d_copy / subject / "T2").rename(bp4d_copy / "moved")  # a task's images gone
    shutil.rmtree(bp4d_copy / "moved")
    first = sorted((bp4d_copy / subject / "T1").iterdir())[0]
    first.unlink()  # one labelled frame without its image
    (bp4d_copy / "M999" / "T1").mkdir(parents=True)  # not a BP4D subject
    (bp4d_copy / "M999" / "T1" / "1.jpg").write_bytes(b"")
    assert main(["--check", str(bp4d_copy)]) == 1
    printed = capsys.readouterr().out
    label_dir = bp4d_copy / "AUCoding" / "AU_OCC"
    assert f"{label_dir / 'F001_T2.csv'}: no image folder {bp4d_copy / 'F001' / 'T2'}/" in printed
    assert f"{label_dir / 'F001_T1.csv'}: 1 of 8 labelled frames have no image" in printed
    assert "extra subjects (1):" in printed and "M999: not a BP4D subject" in printed


# -- the release's sizes: a fake BP4D tree of empty files ------------------------------------
def _fake_bp4d(root, subjects):
    labels, landmarks = root / "AUCoding" / "AU_OCC", root / "Landmarks"
    labels.mkdir(parents=True)
    landmarks.mkdir()
    header = "frame," + ",".join(str(a) for a in (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24))
    for subject in subjects:
        for task in [f"T{i}" for i in range(1, 9)]:
            (root / subject / task).mkdir(parents=True)
            for frame in (12, 13):  # the check reads folder listings, never the pixels
                (root / subject / task / f"{frame:04d}.jpg").write_bytes(b"")
            rows = [f"{frame}," + ",".join(["0"] * 12) for frame in (12, 13)]
            (labels / f"{subject}_{task}.csv").write_text("\n".join([header, *rows]) + "\n")
            (landmarks / f"{subject}_{task}.csv").write_text("frame\n")


def test_a_tree_with_the_published_bp4d_sizes_passes_and_one_missing_subject_fails(tmp_path, capsys):
    _fake_bp4d(tmp_path / "full", BP4D_WOMEN + BP4D_MEN)
    assert main(["--check", str(tmp_path / "full"), "--dataset", "BP4D"]) == 0
    assert "Zhang et al. 2014" in capsys.readouterr().out
    rows = check_raw(tmp_path / "full").rows
    assert ("subjects", "41", "41", True) in rows
    assert ("sequences (subject x task)", "328", "328", True) in rows
    _fake_bp4d(tmp_path / "short", BP4D_WOMEN + BP4D_MEN[:-1])
    assert main(["--check", str(tmp_path / "short")]) == 1
    printed = capsys.readouterr().out
    assert "M018: no image folder M018/" in printed


def test_bad_use_is_a_clear_error(synthetic, tmp_path, capsys):
    assert main(["--check", str(synthetic["BP4D"]), "--dataset", "DISFA"]) == 2
    assert "'DISFA' requested, but" in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--check", str(synthetic["BP4D"]), str(tmp_path / "out")])
    assert "writes nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(synthetic["BP4D"])])
    assert "OUT" in capsys.readouterr().err
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "ActionUnit_Labels").mkdir()
    assert main(["--check", str(tmp_path / "real"), "--expect", "synthetic"]) == 2
    assert "synth_manifest.json: not found" in capsys.readouterr().err

"""mgrr-prepare: the command-line front of prepare_dataset."""
import json

from mgrr_pyg.data.cli import main


def test_prepares_and_reports(bp4d_tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(bp4d_tree.root), str(out), "--dataset", "BP4D", "--workers", "0", "--quiet"]) == 0
    manifest = json.loads((out / "prepare.json").read_text())
    assert manifest["frames"] == len(bp4d_tree.truth)
    assert main([str(bp4d_tree.root), str(out), "--workers", "0"]) == 0  # finished: nothing to do
    printed = capsys.readouterr().out
    assert "fold 1: train on parts 2+3 (BP4D_combine_2_3), test on part 1" in printed
    assert f"{len(bp4d_tree.truth)} frames prepared" in printed


def test_errors_are_one_line_on_stderr(bp4d_tree, tmp_path, capsys):
    assert main([str(bp4d_tree.root), str(tmp_path / "o"), "--dataset", "DISFA", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mgrr-prepare: error: dataset: 'DISFA' requested") and "Traceback" not in err


def test_bad_frames_suggest_skip_bad_and_skip_bad_records_them(bp4d_tree, tmp_path, capsys):
    image = next(iter(bp4d_tree.truth.values()))["image"]
    image.write_bytes(b"not a jpeg")
    assert main([str(bp4d_tree.root), str(tmp_path / "o"), "--workers", "0", "--quiet"]) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main([str(bp4d_tree.root), str(tmp_path / "o"), "--workers", "0", "--quiet", "--skip-bad"]) == 0
    manifest = json.loads((tmp_path / "o" / "prepare.json").read_text())
    assert manifest["skipped"]["by_reason"] == {"unreadable image": 1} and manifest["skip_bad"]


def test_threshold_and_landmarks_options(disfa_tree, tmp_path):
    moved = tmp_path / "lm"
    (disfa_tree.root / "Landmarks").rename(moved)
    out = tmp_path / "o"
    assert main([str(disfa_tree.root), str(out), "--landmarks", str(moved), "--threshold", "4",
                 "--workers", "0", "--quiet"]) == 0
    manifest = json.loads((out / "prepare.json").read_text())
    assert manifest["threshold"] == 4 and manifest["landmarks"] == str(moved.resolve())

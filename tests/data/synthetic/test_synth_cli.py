"""The mgrr-synth command line."""
from mgrr_pyg.data.synthetic.cli import main


def test_cli_writes_a_dataset_and_a_report(tmp_path, capsys):
    out = tmp_path / "disfa"
    code = main([str(out), "--dataset", "DISFA", "--preset", "tiny", "--subjects", "SN001", "SN003",
                 "--frames-per-task", "3", "--seed", "4", "--workers", "1", "--no-progress", "--report"])
    assert code == 0
    assert sorted(p.name for p in (out / "SN001").glob("*.png")) == ["0.png", "1.png", "2.png"]
    assert (out / "ActionUnit_Labels" / "SN003" / "SN003_au26.txt").read_text().count("\n") == 3
    report = (out / "calibration.md").read_text()
    assert "| AU25 |" in report and (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "6 frames" in printed and "2 DISFA subjects" in printed


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    code = main([str(tmp_path / "x"), "--dataset", "BP4D", "--preset", "tiny", "--subjects", "SN001",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "SN001" in err and "Traceback" not in err

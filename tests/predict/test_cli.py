"""mgrr-predict and mgrr-export from the command line."""
from __future__ import annotations

import argparse

import pandas as pd
import pytest
from PIL import Image

from mgrr_pyg.predict.cli import _threshold, main
from mgrr_pyg.predict.columns import output_columns
from mgrr_pyg.predict.weights import digest_path, file_sha256

from .conftest import render_face


def test_a_run_over_images_and_a_video_writes_the_documented_table(checkpoint, two_face_video,
                                                                   tmp_path, capsys):
    Image.fromarray(render_face("F002", size=176)[0]).save(tmp_path / "face.png")
    out = tmp_path / "out.csv"
    assert main([str(tmp_path / "face.png"), str(two_face_video), "--checkpoint", str(checkpoint),
                 "-o", str(out), "--every", "4", "--batch-size", "3", "--landmarks", "template",
                 "--threshold", "AU12=0.2,4=0.9"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == output_columns((1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24))
    assert table["input"].tolist()[0] == str(tmp_path / "face.png")
    video = table[table["input"] == str(two_face_video)]
    assert sorted(set(video["frame"])) == [0, 4, 8]
    assert (table["AU12_c"] == (table["AU12_p"] >= 0.2)).all()
    assert (table["AU04_c"] == (table["AU04_p"] >= 0.9)).all()
    assert "7 rows (7 faces in 4 frames)" in capsys.readouterr().err


def test_threshold_argument():
    assert _threshold("0.3") == 0.3
    assert _threshold("AU12=0.4, au04=0.6,17=0.1") == {12: 0.4, 4: 0.6, 17: 0.1}
    with pytest.raises(argparse.ArgumentTypeError, match="AU12=0.4"):
        _threshold("high")


def test_write_digest_and_missing_arguments(checkpoint, tmp_path, capsys):
    copy = tmp_path / "c.pt"
    copy.write_bytes(checkpoint.read_bytes())
    assert main(["--write-digest", str(copy)]) == 0
    assert digest_path(copy).read_text().split()[0] == file_sha256(copy)
    with pytest.raises(SystemExit):
        main(["x.png"])
    assert "missing --checkpoint, --output" in capsys.readouterr().err


def test_precision_flags(checkpoint, tmp_path, capsys):
    image = tmp_path / "face.png"
    Image.fromarray(render_face("F002", size=176)[0]).save(image)
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit):
        main([str(image), "--checkpoint", str(checkpoint), "-o", str(out), "--bf16",
              "--precision", "fp32"])
    assert "--bf16 and --precision fp32 disagree" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(image), "--checkpoint", str(checkpoint), "-o", str(out), "--backend",
              "torchscript", "--precision", "bf16"])
    assert "bf16 runs on the eager backend only" in capsys.readouterr().err
    assert not out.exists()
    assert main([str(image), "--checkpoint", str(checkpoint), "-o", str(out), "--precision",
                 "fp32", "--landmarks", "template"]) == 0
    assert "backend=eager, precision=fp32" in capsys.readouterr().err

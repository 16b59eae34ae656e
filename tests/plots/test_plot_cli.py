"""mgrr-plot: predictions over photos and video frames, CAMs, adjacencies and F1 box plots
from files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mgrr_pyg.plots.cli import COMMANDS, main, read_f1_rows
from mgrr_pyg.plots.faces import plot_face_predictions, plot_prediction_sequence
from mgrr_pyg.predict.columns import face_row, empty_row, table, thresholds_for

AUS = (1, 12)


def fake_table(frames=3, faces=2):
    """Predictions of ``faces`` faces over ``frames`` frames (frame 1 without a face)."""
    rows = []
    rng = np.random.default_rng(0)
    for f in range(frames):
        if f == 1:
            rows.append(empty_row("clip.mp4", f, f / 10))
            continue
        for k in range(faces):
            box = np.array([20 + 100 * k + 2 * f, 30, 60, 60], dtype=float)
            landmarks = box[:2] + 10 + rng.uniform(0, 40, (49, 2))
            rows.append(face_row("clip.mp4", f, f / 10, k, 0.9, box, rng.uniform(0, 1, 2),
                                 thresholds_for(AUS, 0.5), landmarks, AUS))
    return table(rows, AUS)


def test_face_plot_draws_a_box_per_face_and_the_landmarks_where_they_are():
    from matplotlib.patches import Rectangle

    predictions = fake_table()
    image = np.zeros((140, 260, 3), np.uint8)
    fig = plot_face_predictions(image, predictions, frame=2, zoom=False)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 2
    rows = predictions[predictions["frame"] == 2]
    assert sorted(b.get_x() + 0.5 for b in boxes) == rows["box_x"].tolist()
    landmarks = ax.collections[0].get_offsets()  # face 0's landmarks, the first drawn
    np.testing.assert_allclose(landmarks[:, 0], rows.iloc[0][[f"x_{i}" for i in range(49)]].to_numpy(float))
    assert "face 0" in " ".join(t.get_text() for t in ax.texts)


def test_sequence_heat_map_holds_each_faces_probabilities_and_gaps():
    predictions = fake_table(frames=4)
    frames = [(f, np.zeros((140, 260, 3), np.uint8)) for f in (0, 3)]
    fig = plot_prediction_sequence(frames, predictions)
    heat_axes = [ax for ax in fig.axes if ax.get_images() and ax.get_ylabel().startswith("face")]
    assert [ax.get_ylabel() for ax in heat_axes] == ["face 0", "face 1"]
    matrix = heat_axes[1].get_images()[0].get_array()  # [AUs, frames]
    face1 = predictions[predictions["face"] == 1]
    np.testing.assert_allclose(matrix[:, 3], face1[face1["frame"] == 3][["AU01_p", "AU12_p"]].to_numpy(float)[0])
    assert np.ma.getmaskarray(matrix[:, 1]).all() or np.isnan(np.asarray(matrix[:, 1])).all()


def test_f1_rows_read_from_a_results_file(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("metric,row,AU1,AU12,Avg.\n"
                    "f1,MGRR-Net,50.00,n/a,50.00\n"
                    "f1,label-only: all positive,10.00,20.00,15.00\n"
                    "accuracy,MGRR-Net,90.00,80.00,85.00\n")
    aus, runs = read_f1_rows(str(path), r"MGRR-Net|[Ff]old \d+")
    assert aus == (1, 12) and list(runs) == ["MGRR-Net"]
    np.testing.assert_array_equal(runs["MGRR-Net"], [0.5, np.nan])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other.csv: expected a results table"):
        read_f1_rows(str(tmp_path / "other.csv"), "x")


@pytest.fixture(scope="module")
def predictions_csv(two_face_video, checkpoint, tmp_path_factory):
    from mgrr_pyg.predict.cli import main as predict_main

    out = tmp_path_factory.mktemp("plots") / "pred.csv"
    assert predict_main([str(two_face_video), "--checkpoint", str(checkpoint), "-o", str(out),
                         "--landmarks", "template", "--every", "2"]) == 0
    return out


def is_png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def _curve_run(run):
    """A run folder as a --curve-frames run leaves it: epochs.csv and curve.json."""
    run.mkdir()
    (run / "epochs.csv").write_text("epoch,train_au,lr,curve_f1,curve_auc\n"
                                    "1,0.6,0.01,0.3,0.6\n2,0.5,0.01,0.4,0.7\n")
    (run / "curve.json").write_text(json.dumps({
        "frames": 12, "points": [{"epoch": 1, "curve_f1": 0.3, "curve_auc": 0.6},
                                 {"epoch": 2, "curve_f1": 0.4, "curve_auc": 0.7}],
        "best_baseline": {"name": "all positive", "f1": 0.35, "auc": 0.5}}))
    return run


def test_every_subcommand_writes_a_png(predictions_csv, two_face_video, checkpoint, astronaut,
                                       tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    for folds in (1, 2):
        (tmp_path / f"fold{folds}").mkdir()
        (tmp_path / f"fold{folds}" / "results.csv").write_text(
            "metric,row,AU1,AU12,Avg.\n" f"f1,MGRR-Net,{40 + folds},{60 - folds},50.00\n")
    commands = {
        "faces": ["faces", str(two_face_video), "--predictions", str(predictions_csv), "--frame", "2"],
        "sequence": ["sequence", str(two_face_video), "--predictions", str(predictions_csv),
                     "--frames", "4"],
        "cam": ["cam", str(tmp_path / "a.png"), "--checkpoint", str(checkpoint), "--landmarks",
                "template"],
        "adjacency": ["adjacency", "--checkpoint", str(checkpoint)],
        "boxplot": ["boxplot", str(tmp_path / "fold1" / "results.csv"),
                    str(tmp_path / "fold2" / "results.csv")],
        "curve": ["curve", str(_curve_run(tmp_path / "run"))],
    }
    # adjacency-truth needs a run on a synthetic set: tests/plots/test_adjacency_truth.py
    assert set(commands) | {"adjacency-truth"} == set(COMMANDS)
    for name, argv in commands.items():
        out = tmp_path / f"{name}.png"
        assert main(argv + ["-o", str(out)]) == 0, name
        width, height = is_png(out)
        assert width > 300 and height > 200, name


def test_bad_plot_inputs_are_named(predictions_csv, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["faces", str(tmp_path / "other.mp4"), "--predictions", str(predictions_csv),
              "-o", str(tmp_path / "x.png")])
    assert "no rows for input" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        main(["faces", "x.png", "--predictions", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "x.png")])
    assert "expected the columns of mgrr-predict" in capsys.readouterr().err


def test_the_curve_legends_name_each_baseline_by_its_value_and_the_runs_once(tmp_path):
    from mgrr_pyg.plots.curve import plot_curve

    first, second = _curve_run(tmp_path / "a"), _curve_run(tmp_path / "b")
    curve = json.loads((second / "curve.json").read_text())
    curve["best_baseline"]["f1"] = 0.41  # other frames, another baseline
    (second / "curve.json").write_text(json.dumps(curve))
    fig = plot_curve([first, second], labels=["run A", "run B"])
    loss_ax, f1_ax, _ = fig.axes
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["run A", "run B"]
    assert [t.get_text() for t in f1_ax.get_legend().get_texts()] == [
        "label-only baseline (all positive, 35.0)", "label-only baseline (all positive, 41.0)"]

"""``mgrr-plot``: the package's figures from files, as PNG (matplotlib, no display).

Subcommands:

- ``faces INPUT``: one photo (or ``--frame`` of a video) with its predicted faces: boxes,
  the 49 landmarks, each AU's two region centres coloured by its probability, top AUs.
- ``sequence VIDEO``: an annotated image sequence of a video's predictions: sampled
  frames, and each tracked face's AU probabilities over time.
- ``cam INPUT``: per-AU class activation maps over the aligned face (paper Fig. 4).
- ``adjacency``: every reasoning layer's learned adjacency next to the co-occurrence
  prior stored in the checkpoint (Fig. 5).
- ``adjacency-truth RUN_DIR``: the same for a run folder, with the synthetic generator's
  true AU relations beside them and how close each layer comes (Spearman, edge AUC).
- ``boxplot RESULTS...``: per-AU F1 box plots (Fig. 3) from ``results.csv`` / ``folds.csv``
  files written by ``mgrr-train`` / ``examples/run_folds.py``.

``faces`` and ``sequence`` read a table written by ``mgrr-predict`` (``--predictions``)
or predict on the fly (``--checkpoint``).
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def _add_prediction_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--predictions", metavar="CSV", help="table written by mgrr-predict")
    group.add_argument("--checkpoint", metavar="PATH", help="predict now with this checkpoint")
    parser.add_argument("--faces", choices=("cascade", "mediapipe"), default="cascade",
                        help="face finder when predicting now (default: cascade)")
    parser.add_argument("--landmarks", choices=("model", "template", "finder"), default=None,
                        help="landmark method when predicting now (see mgrr-predict)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mgrr-plot", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    faces = sub.add_parser("faces", help="predicted faces over a photo or a video frame")
    faces.add_argument("input", metavar="INPUT", help="the image or video the predictions are for")
    faces.add_argument("--frame", type=int, default=None, help="video frame (default: the first "
                                                                "predicted one)")
    faces.add_argument("--top", type=int, default=3, help="AUs named per face (default: 3)")
    _add_prediction_source(faces)

    sequence = sub.add_parser("sequence", help="annotated image sequence of a video's predictions")
    sequence.add_argument("input", metavar="VIDEO")
    sequence.add_argument("--frames", type=int, default=8, help="frames shown (default: 8)")
    sequence.add_argument("--every", type=int, default=1,
                          help="with --checkpoint: predict on every N-th frame")
    _add_prediction_source(sequence)

    cam = sub.add_parser("cam", help="per-AU class activation maps (paper Fig. 4)")
    cam.add_argument("input", metavar="INPUT", help="an image")
    cam.add_argument("--checkpoint", required=True, metavar="PATH")
    cam.add_argument("--face", type=int, default=0, help="face index (default: 0)")
    cam.add_argument("--method", choices=("gradcam", "attention"), default="gradcam")
    cam.add_argument("--faces", choices=("cascade", "mediapipe"), default="cascade")
    cam.add_argument("--landmarks", choices=("model", "template", "finder"), default=None)

    adjacency = sub.add_parser("adjacency", help="learned adjacencies next to the prior (Fig. 5)")
    adjacency.add_argument("--checkpoint", required=True, metavar="PATH")

    adjacency_truth = sub.add_parser(
        "adjacency-truth", help="a run's learned adjacencies next to the synthetic generator's true "
                                "AU relations and the training-fold prior, with Spearman and "
                                "edge-recovery AUC (Fig. 5 with the truth)")
    adjacency_truth.add_argument("run", metavar="RUN_DIR", help="a mgrr-train output folder")
    adjacency_truth.add_argument("--checkpoint", default=None, metavar="best|last|PATH",
                                 help="the checkpoint read (default: best.pt if there, else last.pt)")

    boxplot = sub.add_parser("boxplot", help="per-AU F1 box plots from results files (Fig. 3)")
    boxplot.add_argument("results", nargs="+", metavar="RESULTS.csv")
    boxplot.add_argument("--row", default=r"MGRR-Net|[Ff]old \d+",
                         help="regular expression for the rows taken (default: the model's row "
                              "of results.csv, the fold rows of folds.csv)")
    boxplot.add_argument("--title", default="Per-AU F1")

    curve = sub.add_parser("curve", help="learning curves of training runs (loss, held-out F1 / AUC "
                                         "per epoch, with the label-only baseline)")
    curve.add_argument("runs", nargs="+", metavar="RUN", help="run output folders (curve.json, "
                       "or a history with --curve-frames points)")
    curve.add_argument("--label", action="append", default=None, metavar="NAME",
                       help="a name per run, in order (repeat; default: the folder names)")
    curve.add_argument("--title", default=None)

    for command in (faces, sequence, cam, adjacency, adjacency_truth, boxplot, curve):
        command.add_argument("--output", "-o", required=True, metavar="OUT.png")
    return parser


# -- helpers --------------------------------------------------------------------------------
def _read_predictions(path: str):
    import pandas as pd

    from mgrr_pyg.predict.columns import ID_COLUMNS

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: expected a table written by mgrr-predict, could not read it "
                         f"({err})") from None
    missing = [c for c in ID_COLUMNS if c not in table.columns]
    if missing or not any(c.endswith("_p") for c in table.columns):
        raise ValueError(f"{path}: expected the columns of mgrr-predict (input, frame, face, "
                         f"success, AUxx_p, x_0 ...), missing {missing or ['AUxx_p']}")
    return table


def _rows_of(table, input_name: str, source: str):
    """Rows of ``input_name`` (matched exactly, then as the same file)."""
    names = table["input"].astype(str)
    if (names == input_name).any():
        return table[names == input_name], input_name
    target = Path(input_name).resolve()
    for name in names.unique():
        if Path(name).resolve() == target:
            return table[names == name], name
    shown = ", ".join(sorted(names.unique())[:5])
    raise ValueError(f"{source}: no rows for input {input_name!r}; it holds {shown}")


def _predict(args, inputs, every: int = 1):
    from mgrr_pyg.predict import Detector

    detector = Detector.from_checkpoint(args.checkpoint, faces=args.faces, landmarks=args.landmarks)
    return detector.predict(inputs, every=every)


def _video_frames(path: str, wanted: set, max_side: int = 480):
    """``(frames [(index, thumbnail)], (width, height))`` of the wanted frame indices,
    decoded as a stream (thumbnails at most ``max_side`` pixels)."""
    from PIL import Image

    from mgrr_pyg.predict.sources import iter_video

    frames, size = [], None
    last = max(wanted)
    for index, _, pixels in iter_video(path):
        if index > last:
            break
        if index in wanted:
            image = Image.fromarray(pixels)
            size = image.size
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            frames.append((index, np.asarray(image)))
    return frames, size


def _image_or_frame(path: str, frame: Optional[int]):
    from mgrr_pyg.predict.sources import VIDEO_SUFFIXES, read_image_frame

    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        frames, _ = _video_frames(path, {frame or 0}, max_side=10 ** 6)
        if not frames:
            raise ValueError(f"{path}: the video has no frame {frame}")
        return frames[0][1]
    return read_image_frame(Path(path))


# -- subcommands ----------------------------------------------------------------------------
def _faces(args) -> Path:
    from mgrr_pyg.plots.faces import plot_face_predictions

    if args.predictions:
        rows, name = _rows_of(_read_predictions(args.predictions), args.input, args.predictions)
    else:
        rows, name = _predict(args, [args.input]), args.input
    frame = args.frame if args.frame is not None else int(rows["frame"].min())
    image = _image_or_frame(args.input, frame)
    return plot_face_predictions(image, rows, frame=frame, path=args.output, top=args.top,
                                 title=f"{Path(name).name}, frame {frame}")


def _sequence(args) -> Path:
    from mgrr_pyg.plots.faces import plot_prediction_sequence

    if args.predictions:
        rows, _ = _rows_of(_read_predictions(args.predictions), args.input, args.predictions)
    else:
        rows = _predict(args, [args.input], every=args.every)
    timeline = sorted(int(f) for f in rows["frame"].unique())
    picks = np.unique(np.linspace(0, len(timeline) - 1, min(args.frames, len(timeline))).round()
                      .astype(int))
    frames, size = _video_frames(args.input, {timeline[k] for k in picks})
    return plot_prediction_sequence(frames, rows, path=args.output, frame_size=size,
                                    input_name=None)


def _cam(args) -> Path:
    import torch

    from mgrr_pyg.data.align import transform_points
    from mgrr_pyg.plots.cam import class_activation_maps, plot_class_activation_maps
    from mgrr_pyg.plots.faces import row_landmarks
    from mgrr_pyg.predict.preprocess import model_input
    from mgrr_pyg.train.checkpoint import model_from_checkpoint
    from PIL import Image

    table = _predict(args, [args.input])
    rows = table[(table["success"] == 1) & (table["face"] == args.face)]
    if rows.empty:
        raise ValueError(f"{args.input}: no face {args.face} found (faces found: "
                         f"{sorted(int(f) for f in table['face'].dropna())})")
    row = rows.iloc[0]
    landmarks = row_landmarks(row)
    image = Image.fromarray(_image_or_frame(args.input, None))
    pixels, to_crop = model_input(image, landmarks)
    region = np.clip(transform_points(landmarks, to_crop), 0, 175).astype(np.float32)
    model = model_from_checkpoint(args.checkpoint)
    images = torch.from_numpy(pixels)[None]
    maps, out = class_activation_maps(model, images, args.method,
                                      region_landmarks=torch.from_numpy(region)[None])
    return plot_class_activation_maps(images[0], maps[0], out.au_centres[0], model.config.aus,
                                      probs=out.probs[0], path=args.output)


def _adjacency(args) -> Path:
    from mgrr_pyg.plots.adjacency import plot_adjacencies
    from mgrr_pyg.train.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(args.checkpoint)
    learned = [layer.adjacency.detach() for layer in model.layers if layer.adjacency is not None]
    return plot_adjacencies(model.prior, learned, model.config.aus, path=args.output)


def read_f1_rows(path: str, pattern: str) -> tuple[tuple[int, ...], dict]:
    """``(aus, {run name: [n] F1 in [0, 1]})`` from a results / folds CSV (``metric,row,
    AU1,...,Avg.``, F1 in percent), rows whose name matches ``pattern``."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[:2] != ["metric", "row"]:
            raise ValueError(f"{path}: expected a results table with header 'metric,row,AU1,...' "
                             f"(results.csv of mgrr-train), found {header}")
        au_columns = [(k, int(name[2:])) for k, name in enumerate(header) if re.fullmatch(r"AU\d+", name)]
        runs = {}
        for line_number, row in enumerate(reader, start=2):
            if row and row[0] == "f1" and re.fullmatch(pattern, row[1]):
                try:
                    values = [np.nan if row[k] in ("", "n/a") else float(row[k]) / 100 for k, _ in au_columns]
                except ValueError as err:
                    raise ValueError(f"{path}, line {line_number}: expected F1 values, {err}") from None
                runs[row[1]] = np.array(values)
    if not runs:
        raise ValueError(f"{path}: no f1 row matches {pattern!r}")
    return tuple(a for _, a in au_columns), runs


def _boxplot(args) -> Path:
    from mgrr_pyg.plots.boxplot import f1_boxplot

    results, aus = {}, None
    for path in args.results:
        found, runs = read_f1_rows(path, args.row)
        if aus is not None and found != aus:
            raise ValueError(f"{path}: AUs {found} differ from {aus} of {args.results[0]}")
        aus = found
        for name, values in runs.items():
            key = name if len(args.results) == 1 else f"{Path(path).parent.name}/{name}"
            results[key] = values
    return f1_boxplot(results, args.output, aus=aus, title=args.title)


def _adjacency_truth(args) -> Path:
    from mgrr_pyg.plots.adjacency_truth import plot_run_adjacency_truth

    return plot_run_adjacency_truth(args.run, args.output, checkpoint=args.checkpoint)


def _curve(args) -> Path:
    from mgrr_pyg.plots.curve import plot_curve

    return plot_curve(args.runs, args.output, labels=args.label, title=args.title)


COMMANDS = {"curve": _curve, "faces": _faces, "sequence": _sequence, "cam": _cam, "adjacency": _adjacency,
            "adjacency-truth": _adjacency_truth,
            "boxplot": _boxplot}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mgrr_pyg.data.frames import BadInputError
    from mgrr_pyg.train.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        path = COMMANDS[args.command](args)
    except (FileNotFoundError, CheckpointError, BadInputError, ValueError, ImportError) as err:
        parser.exit(2, f"mgrr-plot {args.command}: error: {err}\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


__all__ = ["build_parser", "main", "read_f1_rows"]

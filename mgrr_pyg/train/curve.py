"""The learning curve of a run: held-out test metrics after every epoch.

Two ways to get one, with the same numbers:

- during training, ``--curve-frames N`` evaluates ``N`` evenly spaced test frames after
  every epoch (``curve_*`` columns of ``epochs.csv``, the ``history`` of ``results.json``);
- afterwards, from the checkpoints ``--keep-epoch-checkpoints`` kept
  (``<run>/epochs/epoch-NN.pt``): ``python -m mgrr_pyg.train.curve RUN --frames N``.

Either way the curve is for looking at: the reported epoch is the last one, or the one the
validation subjects choose (``--val-subjects``), never one chosen on the test frames.
:func:`write_curve` writes ``<run>/curve.json`` with the label-only baselines of the same
frames, and :func:`mgrr_pyg.plots.curve.plot_curve` draws it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

from mgrr_pyg.utils.digest import file_sha256
from mgrr_pyg.utils.io import atomic_save_text

CURVE_FILE = "curve.json"
CURVE_FORMAT = "mgrr-pyg learning curve v1"
#: The curve's metrics, as the keys of a point (``curve_<name>`` in the history).
CURVE_METRICS = ("f1", "accuracy", "auc", "landmark_error")


def _run_config(run_dir: Path):
    from mgrr_pyg.train.config import TrainConfig

    path = run_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; expected the folder of a training run "
                                f"(its --output), which holds config.json")
    return TrainConfig.from_dict(TrainConfig.complete_dict(json.loads(path.read_text())))


def _epoch_of(path: Path) -> Optional[int]:
    """NN of a kept checkpoint's name ``epoch-NN.pt``; None for any other name."""
    try:
        return int(path.stem.split("-", 1)[1]) if path.stem.startswith("epoch-") else None
    except ValueError:
        return None


def _kept_in(folder: Path) -> dict[int, Path]:
    return {e: p for p in sorted(folder.glob("epoch-*.pt")) if (e := _epoch_of(p)) is not None}


def epoch_checkpoints(run_dir, branch_from: Optional[str] = None) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the kept checkpoints ``<run>/epochs/epoch-NN.pt``, by epoch. A run
    branched off another run's ``epoch-NN.pt`` (``branch_from``, ``--branch-from``) shares
    that run's first NN epochs: those come from the parent's kept checkpoints."""
    from mgrr_pyg.train.trainer import EPOCHS_DIR

    found = _kept_in(Path(run_dir) / EPOCHS_DIR)
    if branch_from:
        parent = Path(branch_from)
        at = _epoch_of(parent)
        if parent.parent.name == EPOCHS_DIR and at is not None:  # up to the branch point
            shared = {e: p for e, p in _kept_in(parent.parent).items() if e <= at}
            found = {**shared, **found}
    return sorted(found.items())


def curve_from_checkpoints(run_dir, frames: Optional[int] = None, log=None,
                           reuse: bool = True) -> dict:
    """Evaluate every kept epoch checkpoint of the run in ``run_dir`` on ``frames`` evenly
    spaced test frames of its fold (default: the run's ``curve_frames``, else every test
    frame of the run) and return the curve (the :func:`write_curve` format).

    A run that is still training gains a checkpoint an epoch: with ``reuse`` (default) the
    points of ``<run>/curve.json`` made from the same checkpoints (the SHA-256 of each file
    is recorded) on the same frames are kept, and only new or changed checkpoints are
    evaluated; ``reuse=False`` evaluates them all again.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run folder, or it kept no epoch checkpoint
            (the message names ``--keep-epoch-checkpoints``).
    """
    from mgrr_pyg.data import class_weights, protocol
    from mgrr_pyg.facs import AU_SETS
    from mgrr_pyg.model import MGRRLoss
    from mgrr_pyg.train import data_sources
    from mgrr_pyg.train.checkpoint import load_checkpoint
    from mgrr_pyg.train.fold_frames import fold_frames
    from mgrr_pyg.train.logging import console
    from mgrr_pyg.train.pipeline import build_model
    from mgrr_pyg.train.trainer import Trainer

    log = log or console
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    kept = epoch_checkpoints(run_dir, config.branch_from)
    if not kept:
        raise FileNotFoundError(
            f"{run_dir}: no epoch checkpoints in {run_dir / 'epochs'}; train with "
            f"--keep-epoch-checkpoints (or --curve-frames N for a curve during training)")
    config = config.replace(output=None, resume=False, overwrite=False, progress=False,
                            tensorboard=False, compile=False, init_from=None, device="cpu")
    root, _ = data_sources.prepared_root(config, log)
    fold = protocol.fold(config.dataset, config.fold)
    model, _, _ = build_model(config, AU_SETS[config.dataset])
    aus = tuple(model.config.aus)
    chosen = fold_frames(config, root, fold, aus)
    frames = frames or config.curve_frames or len(chosen.test_positions)
    earlier = _reusable_points(run_dir, frames) if reuse else {}
    trainer = None
    points, digests = [], {}
    for epoch, path in kept:
        digest = file_sha256(path)
        digests[str(epoch)] = digest
        if earlier.get(epoch, (None,))[0] == digest:
            point = earlier[epoch][1]
            log(f"epoch {epoch}: kept from {CURVE_FILE} (the same checkpoint)")
        else:
            if trainer is None:  # only when a checkpoint needs evaluating
                trainer = Trainer(model, MGRRLoss(class_weights(chosen.train_labels)),
                                  chosen.train_set, config, curve_dataset=chosen.curve_set(frames),
                                  aus=aus, log=log)
            state = load_checkpoint(path, map_location="cpu")
            trainer.model.load_state_dict(state["model"])
            point = {"epoch": epoch, **trainer.curve_point()}
            log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in point.items() if k != "epoch"))
        points.append(point)
    labels = chosen.test_part.labels.numpy()[chosen.curve_positions(frames)]
    curve = curve_record(points, chosen.train_labels, labels, aus, config, source="checkpoints")
    curve["checkpoint_sha256"] = digests
    return curve


def _reusable_points(run_dir: Path, frames: int) -> dict[int, tuple[str, dict]]:
    """``epoch -> (checkpoint digest, point)`` of the run's ``curve.json`` when it was made
    from checkpoints on ``frames`` frames (else nothing to reuse)."""
    path = run_dir / CURVE_FILE
    try:
        curve = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if (curve.get("format") != CURVE_FORMAT or curve.get("source") != "checkpoints"
            or curve.get("frames") != frames):
        return {}
    digests = curve.get("checkpoint_sha256") or {}
    return {int(p["epoch"]): (digests[str(p["epoch"])], p) for p in curve.get("points", [])
            if str(p.get("epoch")) in digests}


def curve_record(points: Sequence[dict], train_labels, curve_labels, aus, config,
                 source: str) -> dict:
    """The ``curve.json`` content: the points (``epoch`` and ``curve_<metric>`` keys, as in
    the history), the label-only baselines on the same frames, and what was evaluated."""
    from mgrr_pyg.train.metrics import best_baseline, label_only_baselines

    baselines = label_only_baselines(train_labels, curve_labels, aus, seed=config.seed,
                                     threshold=config.threshold)
    name, best = best_baseline(baselines)
    return {
        "format": CURVE_FORMAT, "source": source, "frames": int(len(curve_labels)),
        "dataset": config.dataset, "fold": config.fold, "preset": config.preset,
        "points": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in p.items()} for p in points],
        "best_baseline": {"name": name, "f1": best.f1_mean, "accuracy": best.accuracy_mean,
                          "auc": best.auc_mean},
    }


def curve_from_history(history: Sequence[dict]) -> list[dict]:
    """The curve points a run recorded during training (``--curve-frames``), from its
    history (``results.json``) or ``epochs.csv`` rows; epochs without a point are left out."""
    points = []
    for row in history:
        point = {f"curve_{m}": float(row[f"curve_{m}"]) for m in CURVE_METRICS
                 if row.get(f"curve_{m}") not in (None, "")}
        if point:
            points.append({"epoch": int(float(row["epoch"])), **point})
    return points


def write_curve(run_dir, curve: dict) -> Path:
    """Write ``curve`` to ``<run_dir>/curve.json`` (atomically) and return the path."""
    path = Path(run_dir) / CURVE_FILE
    atomic_save_text(path, json.dumps(curve, indent=2) + "\n")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mgrr_pyg.train.curve",
        description="The learning curve of a training run from the epoch checkpoints it kept "
                    "(--keep-epoch-checkpoints): each is evaluated on evenly spaced test frames "
                    "of the run's fold; writes <run>/curve.json (and a picture with --plot).")
    parser.add_argument("run", metavar="RUN", help="the run's output folder")
    parser.add_argument("--frames", type=int, default=None,
                        help="evenly spaced test frames to evaluate (default: the run's "
                             "--curve-frames, else every test frame of the run)")
    parser.add_argument("--plot", metavar="PNG", default=None, help="also draw the curve here")
    parser.add_argument("--again", action="store_true",
                        help="evaluate every checkpoint again (default: keep the points of the "
                             "run's curve.json made from the same checkpoints on the same frames)")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames: expected a positive number of frames, found {args.frames}")
    try:
        curve = curve_from_checkpoints(args.run, args.frames, reuse=not args.again)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = write_curve(args.run, curve)
    print(f"written: {path}")
    if args.plot:
        from mgrr_pyg.plots.curve import plot_curve

        print(f"written: {plot_curve(args.run, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["CURVE_FILE", "CURVE_METRICS", "curve_from_checkpoints", "curve_from_history",
           "curve_record", "epoch_checkpoints", "main", "write_curve"]

"""Command line: ``mgrr-train`` (one fold), ``examples/run_folds.py`` (3 folds) and
``examples/run_ablation.py`` (Table 6 / 7 ablations).

With no ``--data-root`` the run uses the synthetic dataset (generated once into the
cache) and the *quick* schedule, sized to finish in minutes on a 2-core CPU; with
``--data-root`` the default is the paper's schedule. ``--schedule`` picks either
explicitly; any explicit option (``--preset``, ``--epochs``...) wins over both.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from mgrr_pyg.train.config import ABLATIONS, AMP_MODES, DATASETS, OPTIMIZERS, TrainConfig

#: Sized for a 2-core CPU (about 6 minutes including data generation): the tiny model,
#: AdamW, every training frame, 600 test frames. The paper's schedule is ``--schedule paper``.
SCHEDULES = {
    "quick": {"preset": "tiny", "epochs": 8, "batch_size": 8, "optimizer": "adamw", "lr": 1e-3,
              "max_train_frames": None, "max_test_frames": 600},
    "paper": {"preset": None, "epochs": 15, "batch_size": 8, "optimizer": "sgd", "lr": 0.01,
              "max_train_frames": None, "max_test_frames": None},
}
PAPER_PRESET = {"BP4D": "mgrr_bp4d", "DISFA": "mgrr_disfa"}


def _preset_names() -> list[str]:
    try:
        from mgrr_pyg.model import list_presets

        return list_presets()
    except ImportError:  # the model package is not importable: leave the check to create_model
        return []


def _val_subjects(text: str):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of subjects (e.g. 3) or a fraction (e.g. 0.2), found {text!r}"
        ) from None
    if value >= 1:
        if value != int(value):
            raise argparse.ArgumentTypeError(f"expected a whole number of subjects, found {text!r}")
        return int(value)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive count or fraction, found {text!r}")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes >= 0, found {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of minutes >= 0, found {text!r}")
    return value


def _override(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. num_layers=3), found {text!r}")
    key, raw = text.split("=", 1)
    import yaml

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, list):
        value = tuple(value)
    return key.strip(), value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, found {text!r}")
    return value


def add_training_arguments(parser: argparse.ArgumentParser, dataset: Optional[str] = None) -> None:
    """The options shared by the single-fold, 3-fold and ablation commands."""
    presets = _preset_names()
    data = parser.add_argument_group("data")
    if dataset is None:
        data.add_argument("--dataset", choices=DATASETS, default="BP4D", help="dataset (default: BP4D)")
    data.add_argument("--data-root", help="raw BP4D / DISFA folder or prepared lists (detected); "
                      "default: synthetic data generated into the cache")
    data.add_argument("--prepared-root", help="where raw data is prepared (default: in the cache)")
    data.add_argument("--image-root", help="with prepared lists in --data-root: the folder their image "
                      "paths are relative to (default: from prepare.json, else <data-root>/images "
                      "or <data-root>)")
    data.add_argument("--cache-dir", help="cache folder (default: $MGRR_CACHE or ~/.cache/mgrr_pyg)")
    data.add_argument("--synthetic-preset", choices=("tiny", "default"), default="default",
                      help="size of the synthetic dataset (default: default)")
    data.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic data")
    data.add_argument("--max-train-frames", type=_positive_int,
                      help="train on a seeded random subset of this many frames")
    data.add_argument("--max-test-frames", type=_positive_int,
                      help="evaluate on this many evenly spaced test frames")
    data.add_argument("--val-subjects", type=_val_subjects,
                      help="hold out N training-part subjects (or a fraction) to choose the epoch")
    model = parser.add_argument_group("model")
    model.add_argument("--schedule", choices=sorted(SCHEDULES),
                       help="quick (tiny model, frame budget; the default without --data-root) or "
                            "paper (full model, 15 epochs, every frame; the default with --data-root)")
    model.add_argument("--preset", choices=presets or None, metavar="PRESET",
                       help="model preset" + (f": {', '.join(presets)}" if presets else ""))
    model.add_argument("--ablation", choices=sorted(ABLATIONS),
                       help="Table 6 setting / Table 7 depth switches applied to the preset")
    model.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                       metavar="KEY=VALUE", help="model config override, e.g. --set num_layers=3 (repeatable)")
    model.add_argument("--init-from", help="checkpoint of another AU set to start from (DISFA from BP4D)")
    opt = parser.add_argument_group("optimisation (defaults: the paper's)")
    opt.add_argument("--epochs", type=_positive_int)
    opt.add_argument("--batch-size", type=_positive_int)
    opt.add_argument("--optimizer", choices=OPTIMIZERS,
                     help="sgd (the paper's, Nesterov) or adamw (default: the schedule's)")
    opt.add_argument("--lr", type=float, help="learning rate (default: the schedule's)")
    opt.add_argument("--momentum", type=float, default=0.9)
    opt.add_argument("--weight-decay", type=float, default=5e-4)
    opt.add_argument("--lr-step", type=_positive_int, default=2, help="halve the lr every N epochs")
    opt.add_argument("--lr-gamma", type=float, default=0.5)
    opt.add_argument("--lambda-align", type=float, default=0.5)
    opt.add_argument("--threshold", type=float, default=0.5, help="decision threshold")
    opt.add_argument("--seed", type=int, default=0)
    run = parser.add_argument_group("runtime")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    run.add_argument("--amp", choices=AMP_MODES, default="none", help="autocast dtype (fp16: CUDA only)")
    run.add_argument("--channels-last", action="store_true", help="channels_last memory format (CUDA)")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument("--workers", type=_non_negative_int, help="DataLoader workers (default: min(2, cpus))")
    run.add_argument("--threads", type=_positive_int,
                     help="torch intra-op CPU threads for this run (default: $OMP_NUM_THREADS if "
                          "set, else half the usable CPUs, at least 1, so the run degrades gracefully "
                          "on a CPU shared with other jobs); results are bit-reproducible only at "
                          "the same thread count")
    run.add_argument("--checkpoint-every", type=_non_negative_int, default=0,
                     help="also checkpoint every N steps inside an epoch (0: not by steps)")
    run.add_argument("--checkpoint-minutes", type=_minutes, default=5.0,
                     help="also checkpoint inside an epoch every M minutes of training, so a "
                          "killed run loses at most M minutes (0: not by time)")
    run.add_argument("--output", help="output folder (default: runs/<dataset>-fold<f>-<preset>-seed<s>)")
    run.add_argument("--resume", action="store_true", help="resume from <output>/last.pt (error if absent); "
                     "a run with the same config resumes automatically")
    run.add_argument("--overwrite", action="store_true", help="start afresh: delete the checkpoints "
                     "(last.pt, best.pt) and logs an earlier run left in --output")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs")


def config_from_args(args: argparse.Namespace, dataset: Optional[str] = None, **extra) -> TrainConfig:
    """A :class:`TrainConfig` from parsed arguments (schedule defaults filled in)."""
    dataset = dataset or args.dataset
    schedule = args.schedule or ("quick" if args.data_root is None else "paper")
    defaults = SCHEDULES[schedule]
    preset = args.preset or defaults["preset"] or PAPER_PRESET[dataset]
    overrides = {}
    for key, value in args.overrides:
        overrides[key] = value
    values = dict(
        dataset=dataset, data_root=args.data_root, prepared_root=args.prepared_root,
        image_root=args.image_root,
        cache_dir=args.cache_dir, synthetic_preset=args.synthetic_preset,
        synthetic_seed=args.synthetic_seed, preset=preset, model_overrides=overrides,
        ablation=args.ablation, epochs=args.epochs or defaults["epochs"],
        batch_size=args.batch_size or defaults["batch_size"],
        optimizer=args.optimizer or defaults["optimizer"],
        lr=args.lr if args.lr is not None else defaults["lr"], momentum=args.momentum,
        weight_decay=args.weight_decay, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
        lambda_align=args.lambda_align, threshold=args.threshold, seed=args.seed,
        max_train_frames=args.max_train_frames if args.max_train_frames else defaults["max_train_frames"],
        max_test_frames=args.max_test_frames if args.max_test_frames else defaults["max_test_frames"],
        val_subjects=args.val_subjects, device=args.device, amp=args.amp,
        channels_last=args.channels_last, compile=args.compile, workers=args.workers,
        checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
        output=args.output, resume=args.resume,
        overwrite=args.overwrite, progress=not args.no_progress,
        tensorboard=not args.no_tensorboard, init_from=args.init_from,
    )
    if getattr(args, "fold", None) is not None:
        values["fold"] = args.fold
    values.update(extra)
    return TrainConfig(**values)


def build_parser(dataset: Optional[str] = None, prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=(f"Train and evaluate MGRR-Net on one fold of {dataset or 'BP4D / DISFA'} "
                                "(fold f tests on part f and trains on the other two)."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fold", type=int, choices=(1, 2, 3), default=1, help="fold 1-3")
    add_training_arguments(parser, dataset)
    return parser


def _run_or_exit(parser: argparse.ArgumentParser, fn, args=None):
    """Run ``fn``; a ValueError / FileNotFoundError becomes ``prog: error: message`` and
    exit status 2 (no traceback: these are input errors for people)."""
    from mgrr_pyg.train.checkpoint import CheckpointError

    if args is not None:  # CPU threads: --threads, else $OMP_NUM_THREADS, else the package default
        from mgrr_pyg.utils.threads import apply_thread_policy, describe_threads

        settings = apply_thread_policy(getattr(args, "threads", None))
        if os.environ.get("RANK", "0") == "0":  # once per run, not per DDP process
            print(describe_threads(settings))

    try:
        return fn()
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command (or add --resume) to continue "
              "from the last checkpoint", file=sys.stderr)
        raise SystemExit(130) from None


def main(argv: Optional[Sequence[str]] = None, dataset: Optional[str] = None,
         prog: Optional[str] = None):
    """``mgrr-train``: train one fold and print the results table."""
    parser = build_parser(dataset, prog)
    args = parser.parse_args(argv)

    def go():
        from mgrr_pyg.train.distributed import init_distributed, shutdown
        from mgrr_pyg.train.pipeline import run_training

        config = config_from_args(args, dataset)
        ctx = init_distributed(config.device)
        try:
            return run_training(config, dist_ctx=ctx)
        finally:
            shutdown(ctx)

    return _run_or_exit(parser, go, args)


def folds_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    """``examples/run_folds.py``: all three folds, per-fold and mean tables, box plot."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the 3-fold protocol; per-fold and mean F1 / accuracy / AUC "
                               "tables and a per-AU F1 box plot.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3])
    add_training_arguments(parser)
    args = parser.parse_args(argv)

    def go():
        from mgrr_pyg.train.runners import run_folds

        config = config_from_args(args)
        return run_folds(config, folds=args.folds)

    return _run_or_exit(parser, go, args)


def ablation_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    """``examples/run_ablation.py``: Table 6 settings and K = 1/2/3 over several seeds."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Ablations (Table 6 settings, Table 7 depths) on one budget with "
                               "several seeds; mean and spread of the mean F1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fold", type=int, choices=(1, 2, 3), default=1)
    parser.add_argument("--settings", nargs="+", choices=sorted(ABLATIONS),
                        default=["setting1", "setting2", "setting3", "setting4", "setting5",
                                 "setting6", "full", "k1", "k3"],
                        help="Table 6 settings / Table 7 depths ('full' is also K=2, so k2 is "
                             "left out by default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_training_arguments(parser)
    args = parser.parse_args(argv)

    def go():
        from mgrr_pyg.train.runners import run_ablation

        config = config_from_args(args)
        return run_ablation(config, settings=args.settings, seeds=args.seeds)

    return _run_or_exit(parser, go, args)


__all__ = ["SCHEDULES", "ablation_main", "add_training_arguments", "build_parser", "config_from_args",
           "folds_main", "main"]

"""Command line: ``mgrr-train`` (one fold), ``examples/run_folds.py`` (3 folds) and
``examples/run_ablation.py`` (Table 6 / 7 ablations).

Every option of a training setting is made from its
:class:`~mgrr_pyg.train.config.TrainConfig` field (:func:`~mgrr_pyg.train.config.setting`:
name, help, parsing, choices, default), so a new setting is one field. With no
``--data-root`` the run uses the synthetic dataset (generated once into the cache) and
the *quick* schedule, sized to finish in minutes on a 2-core CPU; with ``--data-root``
the default is the paper's schedule. ``--schedule`` picks either explicitly; any explicit
option (``--preset``, ``--epochs``...) wins over both. ``--help`` shows the defaults of
the schedule the rest of the command line chooses.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Optional, Sequence

from mgrr_pyg.train.config import (ABLATIONS, GROUPS, TrainConfig, field_help,
                                   parse_positive_int)

#: Sized for a 2-core CPU (about 6 minutes including data generation): the tiny model,
#: AdamW, every training frame, 600 test frames. The paper's schedule is ``--schedule paper``
#: (``preset`` ``None``: the dataset's full model, :data:`PAPER_PRESET`).
SCHEDULES = {
    "quick": {"preset": "tiny", "epochs": 8, "batch_size": 8, "optimizer": "adamw", "lr": 1e-3,
              "max_train_frames": None, "max_test_frames": 600},
    "paper": {"preset": None, "epochs": 15, "batch_size": 8, "optimizer": "sgd", "lr": 0.01,
              "max_train_frames": None, "max_test_frames": None},
}
PAPER_PRESET = {"BP4D": "mgrr_bp4d", "DISFA": "mgrr_disfa"}


def resolve_schedule(schedule: Optional[str], data_root: Optional[str]) -> str:
    """``schedule`` if given, else ``paper`` with a ``data_root`` and ``quick`` without."""
    return schedule or ("quick" if data_root is None else "paper")


def chosen_schedule(argv: Optional[Sequence[str]]) -> str:
    """The schedule a command line chooses (``--schedule``, else ``--data-root``), read
    before the options are built so that ``--help`` shows that schedule's defaults."""
    schedule = data_root = None
    argv = list(argv or [])
    for position, arg in enumerate(argv):
        if arg == "--schedule" and position + 1 < len(argv):
            schedule = argv[position + 1]
        elif arg.startswith("--schedule="):
            schedule = arg.split("=", 1)[1]
        elif arg == "--data-root" or arg.startswith("--data-root="):
            data_root = arg
    schedule = schedule if schedule in SCHEDULES else None  # a bad value: the parser says so
    return resolve_schedule(schedule, data_root)


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


def _argument_type(parse):
    """A field's text parser as an argparse ``type``: its ValueError message becomes
    ``argument --name: message`` (Python's own ``int`` / ``float`` keep argparse's)."""
    if parse in (None, str, int, float):
        return parse

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(f: dataclasses.Field) -> Optional[list]:
    choices = f.metadata["choices"]
    if callable(choices):
        try:
            choices = choices()
        except ImportError:  # e.g. the model package is not importable: the run will say so
            return None
    return list(choices) if choices else None


def _schedule_default(name: str, schedule: str, dataset: Optional[str]) -> Any:
    value = SCHEDULES[schedule][name]
    if name == "preset" and value is None:
        return PAPER_PRESET[dataset] if dataset else " / ".join(
            f"{preset} ({data})" for data, preset in PAPER_PRESET.items())
    return value


def describe_schedule_defaults(schedule: str, dataset: Optional[str] = None) -> str:
    """What a schedule of :data:`SCHEDULES` sets, in words (the ``--schedule`` help)."""
    values = SCHEDULES[schedule]
    train, test = values["max_train_frames"], values["max_test_frames"]
    return (f"preset {_schedule_default('preset', schedule, dataset)}, {values['epochs']} epochs, "
            f"batch {values['batch_size']}, {values['optimizer']} lr {values['lr']:g}, "
            + ("every training frame" if train is None else f"{train} training frames") + ", "
            + ("every test frame" if test is None else f"{test} test frames"))


def add_field_argument(container, f: dataclasses.Field, schedule: str = "quick",
                       dataset: Optional[str] = None) -> None:
    """The option of one :class:`TrainConfig` field, with its help and the default that
    applies: the field's, or ``schedule``'s where the schedule sets it."""
    meta = f.metadata
    name = f.name
    dash = name.replace("_", "-")
    help_text = field_help(f)
    if isinstance(f.default, bool):  # a switch: the flag turns the default around
        flag = meta["flag"] or (f"--no-{dash}" if f.default else f"--{dash}")
        container.add_argument(flag, dest=name, action="store_false" if f.default else "store_true",
                               help=_escape(meta["flag_help"] or help_text))
        return
    flag = meta["flag"] or f"--{dash}"
    choices = _choices(f)
    metavar = meta["metavar"]
    if choices and metavar:  # too many to show in the usage line: listed in the help
        help_text += ": " + ", ".join(str(c) for c in choices)
    if name == "model_overrides":  # --set KEY=VALUE, repeatable
        container.add_argument(flag, dest=name, action="append", type=_override, default=[],
                               metavar=metavar, help=_escape(help_text))
        return
    if name in SCHEDULES[schedule]:
        default = None  # filled in by config_from_args from the chosen schedule
        value = _schedule_default(name, schedule, dataset)
        shown = (meta["shown_default"] if value is None else _shown(value)) + f", {schedule} schedule"
    else:
        default = f.default
        shown = meta["shown_default"] if default is None else _shown(default)
    if shown:
        help_text += f" (default: {shown})"
    container.add_argument(flag, dest=name, type=_argument_type(meta["parse"]), default=default,
                           choices=choices, metavar=metavar, help=_escape(help_text))


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %-style placeholders


def _field(name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}[name]


def add_training_arguments(parser: argparse.ArgumentParser, dataset: Optional[str] = None,
                           schedule: str = "quick") -> None:
    """The options shared by the single-fold, 3-fold and ablation commands: one per
    :class:`TrainConfig` field (those declared ``cli=False``, like ``fold``, are the
    command's own), ``--schedule`` and ``--threads``. Defaults that a schedule sets are
    shown as ``schedule``'s (:func:`chosen_schedule` of the command line)."""
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    groups["model"].add_argument(
        "--schedule", choices=sorted(SCHEDULES),
        help=_escape("which defaults the options marked 'quick schedule' / 'paper schedule' take. "
                     + "; ".join(f"{name}: {describe_schedule_defaults(name, dataset)}"
                                 for name in SCHEDULES)
                     + f" (default: {schedule}; without --data-root quick, with it paper)"))
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["cli"] or (f.name == "dataset" and dataset is not None):
            continue
        add_field_argument(groups[f.metadata["group"]], f, schedule, dataset)
    groups["runtime"].add_argument(
        "--threads", type=_argument_type(parse_positive_int),
        help="torch intra-op CPU threads for this run (default: $OMP_NUM_THREADS if set, else half "
             "the usable CPUs, at least 1, so the run degrades gracefully on a CPU shared with "
             "other jobs); results are bit-reproducible only at the same thread count")


def config_from_args(args: argparse.Namespace, dataset: Optional[str] = None, **extra) -> TrainConfig:
    """A :class:`TrainConfig` from parsed arguments (schedule defaults filled in)."""
    dataset = dataset or args.dataset
    defaults = SCHEDULES[resolve_schedule(args.schedule, args.data_root)]
    values: dict[str, Any] = {"dataset": dataset}
    for f in dataclasses.fields(TrainConfig):
        if f.name == "dataset" or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if value is None and f.name in defaults:
            value = defaults[f.name]
        values[f.name] = value
    values["model_overrides"] = dict(args.model_overrides)
    values["preset"] = values["preset"] or PAPER_PRESET[dataset]
    values.update(extra)
    return TrainConfig(**values)


def _add_fold(parser: argparse.ArgumentParser) -> None:
    add_field_argument(parser, _field("fold"))


def build_parser(dataset: Optional[str] = None, prog: Optional[str] = None,
                 schedule: str = "quick") -> argparse.ArgumentParser:
    """The ``mgrr-train`` options; ``--help`` shows the defaults of ``schedule``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=(f"Train and evaluate MGRR-Net on one fold of {dataset or 'BP4D / DISFA'} "
                                "(fold f tests on part f and trains on the other two)."))
    _add_fold(parser)
    add_training_arguments(parser, dataset, schedule)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(dataset, prog, chosen_schedule(argv))
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
                               "tables and a per-AU F1 box plot.")
    parser.add_argument("--folds", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3],
                        help="the folds to run, each in <output>/fold<f> (default: 1 2 3)")
    argv = sys.argv[1:] if argv is None else list(argv)
    add_training_arguments(parser, schedule=chosen_schedule(argv))
    args = parser.parse_args(argv)

    def go():
        from mgrr_pyg.train.runners import run_folds

        config = config_from_args(args)
        return run_folds(config, folds=args.folds)

    return _run_or_exit(parser, go, args)


def ablation_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    """``examples/run_ablation.py``: Table 6 settings, K = 1/2/3 and the random adjacency,
    several seeds each, on one budget and one or both datasets, in parallel and
    resumably; the report with paired bootstrap intervals (:mod:`mgrr_pyg.train.ablation`)."""
    from mgrr_pyg.train.ablation import DEFAULT_SEEDS, DEFAULT_SETTINGS, REFERENCE_SETTING, SETTING_DESCRIPTIONS

    parser = argparse.ArgumentParser(
        prog=prog, conflict_handler="resolve",
        description="Ablations (Table 6 settings, Table 7 depths, random adjacency initialisation) on "
                    "one budget with several seeds, each run in <output>/<dataset>/<setting>-seed<s>; "
                    "finished runs are skipped, interrupted ones resume. The report: mean and std over "
                    "seeds of F1 and AUC per setting and a paired bootstrap 95 % interval of its F1 "
                    "difference to the full model, or to --reference (test subjects resampled).")
    _add_fold(parser)
    parser.add_argument("--settings", nargs="+", choices=sorted(ABLATIONS), default=list(DEFAULT_SETTINGS),
                        metavar="SETTING",
                        help=_escape("; ".join(f"{name}: {SETTING_DESCRIPTIONS.get(name, name)}"
                                               for name in sorted(ABLATIONS))
                                     + f" (default: {' '.join(DEFAULT_SETTINGS)}; 'full' is K=2, so k2 is "
                                       "left out)"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                        help="the seeds of every setting; the same seed pairs the settings (default: 0 1 2)")
    parser.add_argument("--jobs", type=_argument_type(parse_positive_int),
                        help="runs at a time, each in its own process (default: one per usable CPU, "
                             f"here {_usable_cpus()})")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the report from the runs finished so far")
    parser.add_argument("--reference", metavar="SETTING",
                        help=f"the setting every other one is compared with, one of --settings (default: "
                             f"{REFERENCE_SETTING}; e.g. setting1 for what D_G adds in setting2); another than "
                             f"{REFERENCE_SETTING} writes ablation-vs-SETTING.md / .json beside ablation.md")
    parser.add_argument("--publish", metavar="DIR",
                        help="then copy what the report needs of every finished run (results.json, the "
                             "adjacency agreement, the predictions' probabilities, labels and subjects: "
                             "a few tens of KB a run) to DIR/<DATASET>/<setting>-seed<s>/ and write the "
                             "report there, its tables regenerable by python -m mgrr_pyg.train.report: a "
                             "folder to commit")
    argv = sys.argv[1:] if argv is None else list(argv)
    add_training_arguments(parser, schedule=chosen_schedule(argv))
    parser.add_argument("--dataset", nargs="+", default=["disfa", "bp4d"], metavar="DATASET",
                        type=str.lower, choices=["bp4d", "disfa"],
                        help="the datasets, each its own study in <output>/<DATASET> (default: disfa bp4d)")
    parser.add_argument("--threads", type=_argument_type(parse_positive_int),
                        help="torch intra-op CPU threads of each run (default: 1 with more than one job, "
                             "else the package's policy: $OMP_NUM_THREADS, else half the usable CPUs)")
    args = parser.parse_args(argv)
    if args.ablation is not None:
        parser.error(f"argument --ablation: the study runs --settings (found --ablation {args.ablation})")
    if args.seed != _field("seed").default:
        parser.error(f"argument --seed: the study runs --seeds (found --seed {args.seed})")
    if args.reference is not None and args.reference not in args.settings:
        parser.error(f"argument --reference: expected one of the study's --settings ({' '.join(args.settings)}), "
                     f"found --reference {args.reference}")
    reference = REFERENCE_SETTING if args.reference is None else args.reference

    def go():
        from pathlib import Path

        from mgrr_pyg.train.ablation import parse_datasets, run_study

        datasets = parse_datasets(args.dataset)
        if args.data_root is not None and len(datasets) > 1:
            raise ValueError(f"--data-root {args.data_root} with --dataset {' '.join(args.dataset)}: one "
                             "data root is one dataset; run each dataset with its own --data-root (the "
                             "same --output keeps them together)")
        configs = {dataset: config_from_args(args, dataset) for dataset in datasets}
        output = Path(args.output) if args.output else Path("runs/ablation")
        return run_study(configs, settings=args.settings, seeds=args.seeds, output=output, jobs=args.jobs,
                         threads=args.threads, report_only=args.report_only, reference=reference,
                         publish=Path(args.publish) if args.publish else None)

    return _run_or_exit(parser, go)


def _usable_cpus() -> int:
    from mgrr_pyg.utils.threads import usable_cpus

    return usable_cpus()


def console_main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``mgrr-train`` console script: :func:`main`, exit status 0 on success. (A console
    script passes its function's return value to ``sys.exit``; :func:`main` returns the
    run's results for Python callers, which ``sys.exit`` would print and turn into status 1.)"""
    main(argv)
    return 0


__all__ = ["PAPER_PRESET", "console_main", "SCHEDULES", "ablation_main", "add_field_argument", "add_training_arguments",
           "build_parser", "chosen_schedule", "config_from_args", "describe_schedule_defaults",
           "folds_main", "main", "resolve_schedule"]

"""``mgrr-prepare``: raw BP4D / DISFA -> aligned faces + prepared lists.

    mgrr-prepare RAW_ROOT OUT [--dataset BP4D|DISFA] [--workers 2] [--skip-bad]
                 [--landmarks PATH] [--threshold 2] [--quiet]
    mgrr-prepare --check RAW_ROOT [--dataset BP4D|DISFA] [--expect auto|published|synthetic]

``--check`` scans the raw tree without preparing it and compares it with the published
facts of the release (:mod:`mgrr_pyg.data.check`): exit status 0 when everything
matches, 1 when anything differs, 2 for an error.
"""
from __future__ import annotations

import argparse
import logging
import sys

from mgrr_pyg.facs import AU_SETS

from .bad_input import BadInputError
from .preparation import prepare_dataset
from .protocol import describe_folds
from .raw import DISFA_THRESHOLD


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgrr-prepare",
        description="Align the faces of a raw BP4D or DISFA tree to 200x200 and write the "
                    "prepared lists of the subject-exclusive 3-fold protocol. Resumable: "
                    "run it again on the same OUT to finish an interrupted preparation.",
    )
    parser.add_argument("raw_root", metavar="RAW_ROOT", help="raw dataset folder")
    parser.add_argument("out", metavar="OUT", nargs="?",
                        help="output folder (new, empty or an earlier run's); not with --check")
    parser.add_argument("--check", action="store_true",
                        help="scan RAW_ROOT without preparing it and compare it with the published "
                             "facts of the release (subjects, sequences, frames, label files); "
                             "exit 0 when all match, 1 when anything differs")
    parser.add_argument("--expect", choices=("auto", "published", "synthetic"), default="auto",
                        help="with --check: compare with the published release, or with the sizes "
                             "a synthetic tree was generated with (its synth_manifest.json; the "
                             "synthetic sets are smaller on purpose); auto: synthetic where that "
                             "manifest is there (default: %(default)s)")
    parser.add_argument("--dataset", choices=sorted(AU_SETS),
                        help="dataset of RAW_ROOT (default: detected from its layout)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad frames / sequences (counted in the log and the manifest) "
                             "instead of stopping at the first one")
    parser.add_argument("--landmarks", metavar="PATH",
                        help="folder of per-sequence landmark CSVs (default: RAW_ROOT/Landmarks)")
    parser.add_argument("--threshold", "--intensity-cut", type=int, default=DISFA_THRESHOLD,
                        dest="threshold", metavar="N",
                        help="DISFA: an AU occurs where its intensity (0-5) is >= N; mgrr-train "
                             "--intensity-cut N prepares at the same cut (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check:
        if args.out is not None:
            parser.error(f"--check scans RAW_ROOT only and writes nothing; found OUT {args.out!r}")
        return check(args)
    if args.out is None:
        parser.error("the following arguments are required: OUT (or --check to scan RAW_ROOT only)")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="mgrr-prepare: %(message)s")
    try:
        manifest = prepare_dataset(args.raw_root, args.out, dataset=args.dataset,
                                   workers=args.workers, landmarks=args.landmarks,
                                   skip_bad=args.skip_bad, threshold=args.threshold,
                                   progress=not args.quiet)
    except (ValueError, FileNotFoundError) as err:
        hint = " (rerun with --skip-bad to skip such frames)" if isinstance(err, BadInputError) else ""
        print(f"mgrr-prepare: error: {err}{hint}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(describe_folds(manifest["dataset"]))
        for prefix, info in manifest["prefixes"].items():
            print(f"  {prefix}: {info['frames']} frames")
        skipped = manifest["skipped"]["total"]
        print(f"{manifest['frames']} frames prepared in {args.out}; {skipped} skipped")
    return 0


def check(args) -> int:
    """``mgrr-prepare --check``: print the comparison table; 0 all match, 1 differences."""
    from .check import WHAT_TO_DO, check_raw

    try:
        report = check_raw(args.raw_root, dataset=args.dataset, expect=args.expect,
                           landmarks=args.landmarks)
    except (ValueError, FileNotFoundError) as err:
        print(f"mgrr-prepare: error: {err}", file=sys.stderr)
        return 2
    print(report.format())
    if report.ok:
        print(f"Ready: mgrr-prepare {args.raw_root} OUT prepares it.")
        return 0
    print(WHAT_TO_DO)
    if report.synthetic_tree and args.expect == "published":
        print(f"({args.raw_root} is a synthetic tree, smaller than the release on purpose: "
              "--expect synthetic compares it with the sizes it was generated with.)")
    return 1


if __name__ == "__main__":
    sys.exit(main())

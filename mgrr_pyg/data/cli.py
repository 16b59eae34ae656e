"""``mgrr-prepare``: raw BP4D / DISFA -> aligned faces + prepared lists.

    mgrr-prepare RAW_ROOT OUT [--dataset BP4D|DISFA] [--workers 2] [--skip-bad]
                 [--landmarks PATH] [--threshold 2] [--quiet]
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
    parser.add_argument("out", metavar="OUT", help="output folder (new, empty or an earlier run's)")
    parser.add_argument("--dataset", choices=sorted(AU_SETS),
                        help="dataset of RAW_ROOT (default: detected from its layout)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad frames / sequences (counted in the log and the manifest) "
                             "instead of stopping at the first one")
    parser.add_argument("--landmarks", metavar="PATH",
                        help="folder of per-sequence landmark CSVs (default: RAW_ROOT/Landmarks)")
    parser.add_argument("--threshold", type=int, default=DISFA_THRESHOLD,
                        help="DISFA occurrence threshold on intensity 0-5 (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())

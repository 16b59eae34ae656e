"""Command line: ``mgrr-predict`` (AUs on images, folders and videos) and ``mgrr-export``
(TorchScript / ONNX of the inference model)."""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .columns import output_columns


def _threshold(text: str):
    """``0.5`` (every AU) or ``AU12=0.4,4=0.6`` (per AU; the others 0.5)."""
    try:
        return float(text)
    except ValueError:
        pass
    values = {}
    for part in text.split(","):
        match = re.fullmatch(r"\s*(?:AU)?0*(\d+)\s*=\s*([0-9.eE+-]+)\s*", part, flags=re.IGNORECASE)
        if not match:
            raise argparse.ArgumentTypeError(
                f"expected a probability (0.5) or AU=value pairs (AU12=0.4,AU4=0.6), found {text!r}")
        values[int(match.group(1))] = float(match.group(2))
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgrr-predict",
        description="Facial action units on image files, folders and videos with a trained "
                    "MGRR-Net checkpoint (written by mgrr-train; nothing is downloaded). One CSV "
                    "row per face per frame (OpenFace-style columns, see the README), and one "
                    "success=0 row for a frame without a face.")
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, video files (mp4, avi, mkv, mov, webm, ...) or folders")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="checkpoint written by mgrr-train (last.pt), or an exported .onnx / "
                             "TorchScript file written by mgrr-export")
    parser.add_argument("--output", "-o", metavar="OUT.csv", help="where the table is written")
    parser.add_argument("--every", type=_positive_int, default=1, metavar="N",
                        help="take every N-th video frame (default: 1, every frame)")
    parser.add_argument("--batch-size", type=_positive_int, default=32,
                        help="faces per model call (default: 32)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--backend", choices=("eager", "torchscript", "onnx"), default="eager",
                        help="run the model in eager PyTorch (default), TorchScript or ONNX "
                             "Runtime (mgrr_pyg[onnx]); a checkpoint is exported in memory first")
    parser.add_argument("--faces", choices=("cascade", "mediapipe"), default="cascade",
                        help="face finder: scikit-image's LBP cascade (default) or MediaPipe "
                             "(the mgrr_pyg[mediapipe] extra)")
    parser.add_argument("--landmarks", choices=("model", "template", "finder"), default=None,
                        help="landmark method: the mean face shape fitted to the box (template, "
                             "the default with the cascade), the checkpoint's alignment branch "
                             "started from it (model: only for a checkpoint trained on real "
                             "faces), or the face finder's (finder, the default with mediapipe)")
    parser.add_argument("--refine-steps", type=int, default=1,
                        help="re-alignments with the model's landmarks (--landmarks model)")
    parser.add_argument("--threshold", type=_threshold, default=0.5,
                        help="occurrence threshold for the AUxx_c columns: one probability, or "
                             "AU=value pairs such as AU12=0.4,AU4=0.6 (default: 0.5)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                        help="eager backend: auto (default) takes bf16 autocast on CUDA and on "
                             "CPUs with native bf16, fp32 elsewhere (bf16 is slower there); "
                             "fp32 / bf16 force one; the exported backends run fp32")
    parser.add_argument("--bf16", action="store_true", help="the same as --precision bf16")
    parser.add_argument("--recursive", action="store_true", help="descend into subfolders")
    parser.add_argument("--skip-bad", action="store_true",
                        help="report and skip unreadable files given by name too (folder entries "
                             "always are)")
    parser.add_argument("--require-digest", action="store_true",
                        help="refuse a checkpoint without its .sha256 file")
    parser.add_argument("--write-digest", metavar="CHECKPOINT",
                        help="write CHECKPOINT.sha256 for a checkpoint you trust, and exit")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.write_digest:
        from .weights import write_digest

        try:
            target = write_digest(args.write_digest)
        except FileNotFoundError as err:
            parser.error(str(err))
        print(f"wrote {target}")
        return 0
    missing = [name for name, value in (("INPUT", args.inputs), ("--checkpoint", args.checkpoint),
                                        ("--output", args.output)) if not value]
    if missing:
        parser.error(f"missing {', '.join(missing)}")
    from mgrr_pyg.data.frames import BadInputError
    from mgrr_pyg.train.checkpoint import CheckpointError
    from mgrr_pyg.utils.io import atomic_write

    from .detector import Detector
    from .weights import DigestError

    if args.bf16 and args.precision not in (None, "bf16"):
        parser.error(f"--bf16 and --precision {args.precision} disagree; give one")
    precision = "bf16" if args.bf16 else (args.precision or "auto")

    started = time.perf_counter()
    try:
        detector = Detector.from_checkpoint(
            args.checkpoint, device=args.device, backend=args.backend, batch_size=args.batch_size,
            precision=precision, require_digest=args.require_digest, faces=args.faces,
            landmarks=args.landmarks, threshold=args.threshold, refine_steps=args.refine_steps)
    except (FileNotFoundError, CheckpointError, DigestError, ValueError, ImportError) as err:
        parser.exit(2, f"mgrr-predict: error: {err}\n")
    rows = frames = faces = 0
    try:
        # Rows are written as each batch comes; the file appears only when all are in.
        with atomic_write(args.output, "w") as handle:
            header = True
            for chunk in detector.iter_predict(args.inputs, every=args.every,
                                               skip_bad=args.skip_bad, recursive=args.recursive):
                chunk.to_csv(handle, index=False, header=header, lineterminator="\n")
                header = False
                rows += len(chunk)
                frames += int(chunk.drop_duplicates(["input", "frame"]).shape[0])
                faces += int(chunk["success"].sum())
            if header:  # nothing could be read: still a valid, empty table
                handle.write(",".join(output_columns(detector.aus)) + "\n")
    except (BadInputError, ValueError) as err:
        parser.exit(2, f"mgrr-predict: error: {err}\n(no output written)\n")
    elapsed = time.perf_counter() - started
    print(f"wrote {args.output}: {rows} rows ({faces} faces in {frames} frames) in {elapsed:.1f} s "
          f"[{detector!r}]", file=sys.stderr)
    if detector.report.skipped:
        print(detector.report.summary(), file=sys.stderr)
    return 0


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgrr-export",
        description="Export a checkpoint's inference model (BatchNorm folded) to TorchScript or "
                    "ONNX at a fixed batch size, check it against eager mode, and write it.")
    parser.add_argument("--checkpoint", required=True, metavar="PATH")
    parser.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    parser.add_argument("--output", "-o", required=True, metavar="FILE")
    parser.add_argument("--batch-size", type=_positive_int, default=8,
                        help="the exported graph's batch size (default: 8)")
    return parser


def export_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_export_parser()
    args = parser.parse_args(argv)
    from mgrr_pyg.train.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint

    from .export import check_export, export_onnx, export_torchscript
    from .weights import HOW_TO_TRAIN, DigestError, verify_digest

    try:
        sha256 = verify_digest(args.checkpoint)
        load_checkpoint(args.checkpoint, hint=HOW_TO_TRAIN)
        model = model_from_checkpoint(args.checkpoint)
    except (FileNotFoundError, CheckpointError, DigestError) as err:
        parser.exit(2, f"mgrr-export: error: {err}\n")
    export = export_onnx if args.format == "onnx" else export_torchscript
    try:
        export(model, Path(args.output), args.batch_size, sha256)
        differences = check_export(model, args.output)
    except ImportError as err:
        parser.exit(2, f"mgrr-export: error: {err}\n")
    print(f"wrote {args.output} ({args.format}, batch size {args.batch_size}); largest difference "
          f"to eager mode: probabilities {differences['probs']:.2e}, landmarks "
          f"{differences['landmarks']:.2e} px")
    return 0


__all__ = ["build_export_parser", "build_parser", "export_main", "main"]

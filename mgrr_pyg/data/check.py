"""``mgrr-prepare --check RAW``: compare a raw BP4D / DISFA tree with the published facts
of the release before a multi-hour preparation.

The scan reads only folder listings and label files (no image is decoded), and reports
every difference from what the tree should hold: missing or extra subjects, missing or
extra sequences, label files without images (and images without labels), label files
that are short or hold values outside the coding, image counts that differ from the
frames of the video, missing landmark files. :func:`check_raw` returns a
:class:`CheckReport`; ``mgrr-prepare --check`` prints it and exits 0 when everything
matches, 1 when anything differs.

What a tree should hold is a :class:`DatasetFacts`: :data:`PUBLISHED` (the releases, as
their papers describe them) or, for the synthetic stand-in written by ``mgrr-synth``,
which is smaller on purpose, the sizes its ``synth_manifest.json`` records
(:func:`synthetic_facts`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mgrr_pyg.facs import AU_SETS

from . import protocol
from .bad_input import SkipLog
from .landmarks import landmark_csv_path
from .raw import (BP4D_LABEL_DIR, DISFA_LABEL_DIR, LANDMARK_DIR, RAW_LAYOUTS, _au_number,
                  _list_frame_images, detect_layout, read_bp4d_labels, read_disfa_intensities)


@dataclass(frozen=True)
class DatasetFacts:
    """What a raw tree of one dataset holds.

    Attributes:
        dataset: ``"BP4D"`` or ``"DISFA"``.
        subjects: The subject ids.
        sequences: The sequences of every subject (BP4D tasks; DISFA: one video, ``("",)``).
        frames_per_sequence: Frames (images, and label rows for DISFA) of every sequence,
            or None where they vary (BP4D).
        coded_aus: The AUs with labels: DISFA one intensity file each; BP4D the columns the
            protocol needs in every occurrence file.
        source: Where the facts come from.
    """

    dataset: str
    subjects: tuple[str, ...]
    sequences: tuple[str, ...]
    frames_per_sequence: Optional[int]
    coded_aus: tuple[int, ...]
    source: str


#: The published facts of the two releases, in one table:
#:
#: - BP4D-Spontaneous: X. Zhang, L. Yin, J. F. Cohn et al., "BP4D-Spontaneous: a
#:   high-resolution spontaneous 3D dynamic facial expression database", Image and Vision
#:   Computing 32(10), 2014: 41 participants, 23 women (F001-F023) and 18 men (M001-M018),
#:   8 tasks each (T1-T8), 328 sequences; frames per task vary; occurrence coded for the
#:   12 AUs of the protocol (and more).
#: - DISFA: S. M. Mavadati, M. H. Mahoor, K. Bartlett, P. Trinh, J. F. Cohn, "DISFA: a
#:   spontaneous facial action intensity database", IEEE Transactions on Affective
#:   Computing 4(2), 2013: 27 adults, one 4-minute video each at 20 fps, 4,845 frames;
#:   12 AUs (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26) coded for intensity 0-5 in every
#:   frame. The subject ids are the release's (SN001-SN032 with gaps), as the 3-fold
#:   partition lists them (:data:`mgrr_pyg.data.protocol.PARTITION`).
PUBLISHED: dict[str, DatasetFacts] = {
    "BP4D": DatasetFacts(
        "BP4D",
        tuple(f"F{i:03d}" for i in range(1, 24)) + tuple(f"M{i:03d}" for i in range(1, 19)),
        tuple(f"T{i}" for i in range(1, 9)), None, AU_SETS["BP4D"],
        "Zhang et al. 2014, BP4D-Spontaneous: 41 subjects (23 F, 18 M), 8 tasks each, "
        "328 sequences"),
    "DISFA": DatasetFacts(
        "DISFA", tuple(sorted(protocol.subjects("DISFA"))), ("",), 4845,
        (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26),
        "Mavadati et al. 2013, DISFA: 27 subjects, 4,845 frames per video, 12 AUs coded 0-5"),
}

SYNTH_MANIFEST = "synth_manifest.json"  # written by mgrr_pyg.data.synthetic (mgrr-synth)
#: How many examples of one kind of difference the report lists (counts are exact).
MAX_LISTED = 8


def synthetic_facts(root: Path) -> DatasetFacts:
    """The sizes a synthetic tree was generated with (its ``synth_manifest.json``)."""
    path = Path(root) / SYNTH_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; --expect synthetic compares a tree written by mgrr-synth with "
            "its manifest (use --expect published for a real release)")
    try:
        config = json.loads(path.read_text())["config"]
        dataset = config["dataset"]
        sequences = ("",) if dataset == "DISFA" else tuple(config["tasks"])
        aus = AU_SETS[dataset]  # the generator writes the protocol's AUs only
        return DatasetFacts(dataset, tuple(config["subjects"]), sequences,
                            int(config["frames_per_task"]), aus,
                            f"{path} (synthetic, smaller than the release on purpose)")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected a manifest written by mgrr-synth, {err!r}") from None


@dataclass
class CheckReport:
    """The outcome of :func:`check_raw`: table rows and the differences found."""

    root: Path
    facts: DatasetFacts
    rows: list = field(default_factory=list)  # (what, expected, found, matches)
    differences: dict = field(default_factory=dict)  # kind -> [message]

    @property
    def synthetic_tree(self) -> bool:
        """The tree was written by mgrr-synth (it has a ``synth_manifest.json``)."""
        return _is_synthetic(self.root)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.differences.values())

    def row(self, what: str, expected, found, matches: bool) -> None:
        self.rows.append((what, str(expected), str(found), matches))

    def differ(self, kind: str, message: str) -> None:
        self.differences.setdefault(kind, []).append(message)

    def format(self) -> str:
        widths = [max(len(r[i]) for r in self.rows + [("check", "expected", "found")])
                  for i in range(3)]
        line = "| {:<{}} | {:>{}} | {:>{}} | {} |"
        lines = [f"{self.root}: raw {self.facts.dataset}, compared with {self.facts.source}",
                 line.format("check", widths[0], "expected", widths[1], "found", widths[2], "  "),
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|----|"]
        for what, expected, found, matches in self.rows:
            lines.append(line.format(what, widths[0], expected, widths[1], found, widths[2],
                                     "ok" if matches else "!!"))
        if self.ok:
            lines.append("Everything matches.")
            return "\n".join(lines)
        lines.append(f"{self.count} difference(s):")
        for kind, messages in self.differences.items():
            lines.append(f"- {kind} ({len(messages)}):")
            lines += [f"    {m}" for m in messages[:MAX_LISTED]]
            if len(messages) > MAX_LISTED:
                lines.append(f"    ... and {len(messages) - MAX_LISTED} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"root": str(self.root), "dataset": self.facts.dataset, "source": self.facts.source,
                "ok": self.ok, "rows": [list(r) for r in self.rows],
                "differences": {k: list(v) for k, v in self.differences.items()}}


def _is_synthetic(root: Path) -> bool:
    return (root / SYNTH_MANIFEST).is_file()


def check_raw(root, dataset: Optional[str] = None, expect: str = "auto",
              landmarks=None, facts: Optional[DatasetFacts] = None) -> CheckReport:
    """Scan a raw tree and compare it with what it should hold (see the module docstring).

    Args:
        root: The raw BP4D or DISFA folder.
        dataset (optional): ``"BP4D"`` or ``"DISFA"``; must match the detected layout.
        expect (str, optional): ``"published"`` (:data:`PUBLISHED`), ``"synthetic"`` (the
            tree's ``synth_manifest.json``) or ``"auto"`` (synthetic where that manifest is
            there, else published). (default: ``"auto"``)
        landmarks (optional): Folder of per-sequence landmark CSVs.
            (default: ``<root>/Landmarks``)
        facts (optional): Compare with these instead (``expect`` is then not used).

    Raises:
        FileNotFoundError / ValueError: ``root`` is not a folder or not a raw layout, or
            ``dataset`` / ``expect`` do not fit it.
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout not in RAW_LAYOUTS:
        raise ValueError(f"{root}: holds prepared lists, not a raw release; --check scans a "
                         "raw BP4D or DISFA folder")
    found_dataset = RAW_LAYOUTS[layout].dataset
    if dataset is not None and dataset != found_dataset:
        raise ValueError(f"dataset: {dataset!r} requested, but {root} has the {layout} layout")
    if facts is None:
        if expect not in ("auto", "published", "synthetic"):
            raise ValueError(f"expect: expected 'auto', 'published' or 'synthetic', found {expect!r}")
        synthetic = expect == "synthetic" or (expect == "auto" and _is_synthetic(root))
        facts = synthetic_facts(root) if synthetic else PUBLISHED[found_dataset]
    if facts.dataset != found_dataset:
        raise ValueError(f"{root}: holds {found_dataset}, the expected facts are of {facts.dataset}")
    report = CheckReport(root, facts)
    lm_folder = root / LANDMARK_DIR if landmarks is None else Path(landmarks)
    (_check_bp4d if found_dataset == "BP4D" else _check_disfa)(root, facts, report, lm_folder)
    return report


def _subject_rows(report: CheckReport, expected: set, found: set, where: str) -> None:
    """``where``: what a missing subject lacks, with ``{s}`` for its id."""
    facts = report.facts
    report.row("subjects", len(expected), len(found), found == expected)
    for subject in sorted(expected - found):
        report.differ("missing subjects", f"{subject}: no " + where.format(s=subject))
    for subject in sorted(found - expected):
        report.differ("extra subjects", f"{subject}: not a {facts.dataset} subject of "
                                        f"{facts.source.split(':')[0]}")


def _sub_folders(folder: Path, reserved=()) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir())
            if p.is_dir() and p.name not in reserved and not p.name.startswith(".")}


def _check_landmarks(report: CheckReport, lm_folder: Path, keys: list) -> None:
    dataset = report.facts.dataset
    missing = [landmark_csv_path(lm_folder, dataset, s, q) for s, q in keys
               if not landmark_csv_path(lm_folder, dataset, s, q).is_file()]
    report.row("landmark files (one per sequence found)", len(keys), len(keys) - len(missing),
               not missing)
    for path in missing:
        report.differ("missing landmark files", f"{path} (the preparation needs one per sequence; "
                                                "--landmarks PATH names another folder)")


def _check_bp4d(root: Path, facts: DatasetFacts, report: CheckReport, lm_folder: Path) -> None:
    label_dir = root / BP4D_LABEL_DIR
    reserved = {BP4D_LABEL_DIR.parts[0], LANDMARK_DIR, lm_folder.name, *(n for n in os.listdir(root)
                                                                        if n.startswith("."))}
    subject_dirs = _sub_folders(root, reserved)
    image_dirs = {(s, t): p for s, d in subject_dirs.items() for t, p in _sub_folders(d).items()}
    label_files = {tuple(p.stem.split("_", 1)): p for p in sorted(label_dir.glob("*.csv"))
                   if "_" in p.stem}
    expected_subjects = set(facts.subjects)
    found_subjects = {s for s, _ in image_dirs} | {s for s, _ in label_files} | set(subject_dirs)
    _subject_rows(report, expected_subjects, found_subjects,
                  f"image folder {{s}}/ and no label file {BP4D_LABEL_DIR}/{{s}}_T*.csv")
    expected = {(s, t) for s in facts.subjects for t in facts.sequences}
    found = set(image_dirs) | set(label_files)
    report.row("sequences (subject x task)", len(expected), len(found), found == expected)
    for s, t in sorted(expected - found):
        if s in found_subjects:
            report.differ("missing sequences", f"{s} {t}: no image folder {s}/{t}/ and no "
                                               f"label file {BP4D_LABEL_DIR / f'{s}_{t}.csv'}")
    for s, t in sorted(found - expected):
        if s in expected_subjects:
            report.differ("extra sequences", f"{s} {t}: not a task of the release "
                                             f"({', '.join(facts.sequences)})")
    both = sorted(set(image_dirs) & set(label_files))
    for key in sorted(set(label_files) - set(image_dirs)):
        report.differ("label files without images", f"{label_files[key]}: no image folder "
                                                    f"{root / key[0] / key[1]}/")
    for key in sorted(set(image_dirs) - set(label_files)):
        report.differ("images without a label file", f"{image_dirs[key]}/: no label file "
                                                     f"{label_dir / f'{key[0]}_{key[1]}.csv'}")
    report.row("sequences with images and labels", len(expected), len(both),
               len(both) == len(expected) and set(both) == expected)
    log = SkipLog(skip_bad=True)
    labelled = unlabelled_images = missing_images = 0
    short = []
    for key in both:
        images = _list_frame_images(image_dirs[key], log)
        parsed = read_bp4d_labels(label_files[key], facts.coded_aus, log)
        if parsed is None:
            continue
        frames = set(parsed[0].tolist())
        labelled += len(frames)
        absent = sorted(frames - set(images))
        missing_images += len(absent)
        unlabelled_images += len(set(images) - frames)
        if absent:
            report.differ("labelled frames without an image",
                          f"{label_files[key]}: {len(absent)} of {len(frames)} labelled frames "
                          f"have no image in {image_dirs[key]}/ (e.g. frame {absent[0]})")
        if facts.frames_per_sequence is not None and (
                len(frames) != facts.frames_per_sequence or len(images) != facts.frames_per_sequence):
            short.append(f"{key[0]} {key[1]}: {len(frames)} label rows, {len(images)} images, "
                         f"expected {facts.frames_per_sequence} each")
    for message in short:
        report.differ("frame counts", message)
    _bad_input_rows(report, log)
    report.row("labelled frames with an image", labelled, labelled - missing_images,
               not missing_images)
    if facts.frames_per_sequence is not None:
        report.row("frames per sequence", facts.frames_per_sequence,
                   "all" if not short else f"{len(short)} sequences differ", not short)
    _check_landmarks(report, lm_folder, both)


def _bad_input_rows(report: CheckReport, log: SkipLog) -> None:
    """Label files the readers would reject (bad header, bad rows, values outside the
    coding) and badly named images: every one a difference."""
    for reason, count in sorted(log.counts.items()):
        examples = log.examples.get(reason, [])
        for message in examples:
            report.differ(f"bad input: {reason}", message)
        if count > len(examples):
            report.differ(f"bad input: {reason}", f"... {count - len(examples)} more of this kind")
    report.row("label rows the reader rejects", 0, log.total, not log.total)


def _check_disfa(root: Path, facts: DatasetFacts, report: CheckReport, lm_folder: Path) -> None:
    label_root = root / DISFA_LABEL_DIR
    reserved = {DISFA_LABEL_DIR.name, LANDMARK_DIR, lm_folder.name}
    label_dirs = _sub_folders(label_root)
    image_dirs = _sub_folders(root, reserved)
    expected = set(facts.subjects)
    found = set(label_dirs) | set(image_dirs)
    _subject_rows(report, expected, found, f"image folder {{s}}/ and no label folder "
                                           f"{DISFA_LABEL_DIR}/{{s}}/")
    for subject in sorted(set(label_dirs) - set(image_dirs)):
        report.differ("label files without images", f"{label_dirs[subject]}/: no image folder "
                                                     f"{root / subject}/")
    for subject in sorted(set(image_dirs) - set(label_dirs)):
        report.differ("images without a label folder", f"{image_dirs[subject]}/: no label folder "
                                                       f"{label_root / subject}/")
    both = sorted(set(label_dirs) & set(image_dirs))
    report.row("subjects with images and labels", len(expected), len(both),
               set(both) == expected)
    n = facts.frames_per_sequence
    log = SkipLog(skip_bad=True)
    image_counts, au_files_ok, rows_ok = {}, 0, 0
    for subject in both:
        images = _list_frame_images(image_dirs[subject], log)
        image_counts[subject] = len(images)
        if n is not None and set(images) != set(range(n)):
            extra = sorted(set(images) - set(range(n)))
            report.differ("frame counts", f"{image_dirs[subject]}/: {len(images)} images, expected "
                                          f"{n} (0.png .. {n - 1}.png)"
                                          + (f"; frames beyond the video: {extra[:3]}" if extra else ""))
        files = {}
        for path in sorted(label_dirs[subject].glob(f"{subject}_au*.txt")):
            au = _au_number(path.stem.split("_au", 1)[-1])
            if au is not None:
                files[au] = path
        absent = [au for au in facts.coded_aus if au not in files]
        if absent:
            report.differ("missing label files", f"{label_dirs[subject]}/: no "
                          + ", ".join(f"{subject}_au{au}.txt" for au in absent)
                          + (" (the protocol's AUs: the preparation needs them)"
                             if set(absent) & set(AU_SETS["DISFA"]) else
                             " (not used by the protocol)"))
        else:
            au_files_ok += 1
        subject_rows_ok = True
        for au in facts.coded_aus:
            if au not in files:
                continue
            values = read_disfa_intensities(files[au], log)
            if n is not None and set(values) != set(range(1, n + 1)):
                subject_rows_ok = False
                report.differ("short or long label files",
                              f"{files[au]}: {len(values)} frames coded, expected {n} (frames 1-{n})")
        rows_ok += subject_rows_ok
    report.row("label files per subject (AUs coded 0-5)", len(facts.coded_aus),
               "all" if au_files_ok == len(both)
               else f"subjects: {len(both) - au_files_ok} of {len(both)} differ",
               au_files_ok == len(both))
    if n is not None:
        counts = sorted(set(image_counts.values()))
        report.row("images per subject (frames of the video)", n,
                   counts[0] if len(counts) == 1 else f"{counts[0]}-{counts[-1]}" if counts else 0,
                   counts == [n])
        report.row("label rows per file", n, "all" if rows_ok == len(both)
                   else f"subjects: {len(both) - rows_ok} of {len(both)} differ", rows_ok == len(both))
    _bad_input_rows(report, log)
    _check_landmarks(report, lm_folder, [(s, s) for s in both])


WHAT_TO_DO = (
    "What to do: a missing subject, sequence or file is usually an incomplete download or "
    "extraction (DISFA: every frame of each video extracted as <subject>/<i>.png, i from 0), a "
    "short label file a truncated copy: fix the tree and run the check again. Prepared as it "
    "is (mgrr-prepare RAW OUT, with --skip-bad for what the reader rejects), the folds hold "
    "fewer frames than the paper's and the results are not comparable."
)


__all__ = ["CheckReport", "DatasetFacts", "PUBLISHED", "WHAT_TO_DO", "check_raw", "synthetic_facts"]

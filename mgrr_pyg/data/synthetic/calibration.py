"""The calibration report of synthetic datasets: how their labels compare with the real
datasets, and what the faces look like.

:func:`calibration_report` writes a markdown file and one PNG figure with, per dataset
(e.g. BP4D and DISFA),

- the marginal positive rate of each AU in the generated set, next to the population
  rate of the generator (a large label-only sample) and the real-data rate of
  ``docs/protocol.md``;
- the co-occurrence prior of the generated labels (paper Eq. 1-2, computed by
  :func:`mgrr_pyg.graphs.au_cooccurrence_prior`) as a heatmap;

and once

- a grid of faces with each AU switched on alone (intensity 4.5) next to the neutral
  face, as the model sees them (aligned 176x176 centre crop), and the difference to
  neutral, which shows where each AU acts;
- a few captured frames (unaligned, with head pose, light, noise, compression) with
  their 49 landmarks drawn on.

Labels are taken from :func:`~.writer.sequence_plan` (the exact values that are, or
would be, written), so the report needs no rendering of the dataset itself.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from mgrr_pyg.data.frames import MISSING_LABEL
from mgrr_pyg.facs import ALL_AUS, AU_SETS

from .config import SynthConfig, rng_for
from .expressions import OCCURRENCE_THRESHOLD, REAL_RATES, label_rates, label_sample
from .identity import make_identity
from .render import Capture, FaceRenderer, SequenceCapture, encode_frame
from .writer import MANIFEST_NAME, rendered_frame, sequence_plan

_AU_INDEX = {au: k for k, au in enumerate(ALL_AUS)}
#: Where the aligned 176x176 centre crop sits in a frontal 256x256 capture (face frame
#: 12..188 maps to image 40..216).
_CROP_OFFSET = 40


def config_from_root(root: str | os.PathLike) -> SynthConfig:
    """The :class:`~.config.SynthConfig` recorded in a generated folder's manifest."""
    manifest = Path(root) / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(f"no synthetic-data manifest in {root} (expected {manifest})")
    content = json.loads(manifest.read_text())
    values = dict(content["config"])
    values.pop("generator_version", None)
    values["preset"] = content.get("preset")
    values["subjects"] = tuple(values["subjects"])
    values["tasks"] = tuple(values["tasks"]) or SynthConfig.tasks
    values["jpeg_quality"] = tuple(values["jpeg_quality"])
    return SynthConfig(**values)


def dataset_labels(config: SynthConfig) -> dict[str, Any]:
    """Labels of every frame of ``config`` in protocol AU order.

    Returns:
        dict with ``occurrence`` ``[N, n]`` (0/1, 9 = not coded), ``intensity`` ``[N, 15]``
        (continuous), ``subject`` ``[N]`` and ``aus`` (the dataset's AU set).
    """
    aus = AU_SETS[config.dataset]
    occ, inten, subj = [], [], []
    for subject in config.subjects:
        for sequence in config.sequences:
            plan = sequence_plan(config, subject, sequence)
            cols = [plan.label_aus.index(au) for au in aus]
            values = plan.labels[:, cols]
            if config.dataset == "DISFA":  # intensities -> occurrence, as the readers do
                values = (values >= OCCURRENCE_THRESHOLD["DISFA"]).astype(np.int64)
            occ.append(values)
            inten.append(plan.intensity)
            subj += [subject] * len(values)
    return {"occurrence": np.concatenate(occ), "intensity": np.concatenate(inten),
            "subject": np.array(subj), "aus": aus}


def marginal_rates(occurrence: np.ndarray, aus) -> dict[int, float]:
    """Positive rate per AU over coded entries (9 = not coded is left out)."""
    coded = occurrence != MISSING_LABEL
    return {au: float((occurrence[:, k] == 1).sum() / max(coded[:, k].sum(), 1)) for k, au in enumerate(aus)}


def au_grid(seed: int, dataset: str, subjects, intensity: float = 4.5, image_size: int = 256,
            tile: int = 112) -> tuple[Image.Image, list[str]]:
    """Faces with each AU alone (columns) for a few identities (rows), aligned centre
    crops, plus a last row: |AU - neutral| of the first identity (amplified)."""
    columns = ["neutral"] + [f"AU{au}" for au in ALL_AUS]
    frontal = Capture()
    crop = (_CROP_OFFSET, _CROP_OFFSET, _CROP_OFFSET + 176, _CROP_OFFSET + 176)
    rows: list[list[Image.Image]] = []
    first_row_full: list[Image.Image] = []
    for r, subject in enumerate(subjects):
        renderer = FaceRenderer(make_identity(seed, dataset, subject), image_size)
        row = []
        for au in (None, *ALL_AUS):
            image, _ = renderer.render({} if au is None else {au: intensity}, frontal, None)
            face = image.crop(crop)
            if r == 0:
                first_row_full.append(face)
            row.append(face.resize((tile, tile), Image.Resampling.LANCZOS))
        rows.append(row)
    diff_row = []
    for face in first_row_full:
        diff = ImageChops.difference(face, first_row_full[0]).convert("L")
        diff = Image.eval(diff, lambda v: min(255, 4 * v))
        diff_row.append(diff.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS))
    rows.append(diff_row)
    grid = Image.new("RGB", (tile * len(columns), tile * len(rows)), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, face in enumerate(row):
            grid.paste(face, (c * tile, r * tile))
    return grid, columns


def captured_samples(config: SynthConfig, count: int = 6, tile: int = 192) -> Image.Image:
    """A few frames exactly as the generator writes them (compressed, unaligned), with
    their 49 landmarks drawn on."""
    rng = rng_for(config.seed, config.dataset, purpose="report-samples")
    picks = []
    for _ in range(count):
        subject = config.subjects[int(rng.integers(len(config.subjects)))]
        sequence = config.sequences[int(rng.integers(len(config.sequences)))]
        picks.append((subject, sequence, int(rng.integers(config.frames_per_task))))
    strip = Image.new("RGB", (tile * count, tile), (255, 255, 255))
    for i, (subject, sequence, k) in enumerate(picks):
        plan = sequence_plan(config, subject, sequence)
        renderer = FaceRenderer(make_identity(config.seed, config.dataset, subject), config.image_size)
        camera = SequenceCapture(rng_for(config.seed, config.dataset, subject, sequence, purpose="capture"),
                                 config.image_size)
        frame = int(plan.frames[k])
        image, points, capture = rendered_frame(config, plan, k, renderer, camera)
        fmt = "png" if config.dataset == "DISFA" else "jpg"
        image = Image.open(io.BytesIO(encode_frame(image, fmt, capture.jpeg_quality))).convert("RGB")
        scale = tile / config.image_size
        image = image.resize((tile, tile), Image.Resampling.LANCZOS)
        draw = ImageDraw.Draw(image)
        for x, y in points * scale + 0.5 * scale - 0.5:
            draw.ellipse((x - 1.2, y - 1.2, x + 1.2, y + 1.2), fill=(0, 255, 0))
        draw.text((4, 4), f"{subject} {sequence} {frame}", fill=(255, 255, 0))
        strip.paste(image, (i * tile, 0))
    return strip


def dataset_statistics(config: SynthConfig, population_seeds: int = 3) -> dict[str, Any]:
    """Rates (this set, generator population, real), the prior and per-subject spread."""
    from mgrr_pyg.graphs import au_cooccurrence_prior

    labels = dataset_labels(config)
    aus, occ = labels["aus"], labels["occurrence"]
    sequences = ("T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8")
    population_sample = np.concatenate([
        label_sample(config.dataset, seed=config.seed + 1000 + s, sequences=sequences, frames=100,
                     frame_step=config.frame_step, au_structure=config.au_structure)
        for s in range(population_seeds)])
    per_subject = {subject: marginal_rates(occ[labels["subject"] == subject], aus) for subject in config.subjects}
    return {
        "config": config, "aus": aus, "rates": marginal_rates(occ, aus),
        "population": label_rates(population_sample, config.dataset, aus),
        "real": dict(REAL_RATES[config.dataset]), "prior": np.asarray(au_cooccurrence_prior(occ)),
        "per_subject": per_subject, "uncoded": float((occ == MISSING_LABEL).mean()),
        "active": float((occ == 1).sum(1).mean()), "population_seeds": population_seeds,
    }


def _plot_rates(ax, stats: dict[str, Any]) -> None:
    config, aus = stats["config"], stats["aus"]
    x = np.arange(len(aus))
    ax.bar(x - 0.27, [stats["rates"][a] for a in aus], 0.27, label="this set", color="#3b75af")
    ax.bar(x, [stats["population"][a] for a in aus], 0.27, label="generator (large sample)", color="#9ecae9")
    ax.bar(x + 0.27, [stats["real"][a] for a in aus], 0.27, label=f"real {config.dataset}", color="#ef8636")
    ax.set_xticks(x, [f"AU{a}" for a in aus])
    ax.set_ylabel("positive rate")
    ax.set_title(f"{config.dataset}: marginal AU rates (occurrence = intensity >= "
                 f"{OCCURRENCE_THRESHOLD[config.dataset]})")
    ax.legend(fontsize=8)


def _plot_prior(fig, ax, stats: dict[str, Any]) -> None:
    aus, prior = stats["aus"], stats["prior"]
    x = np.arange(len(aus))
    im = ax.imshow(prior, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(x, [str(a) for a in aus])
    ax.set_yticks(x, [str(a) for a in aus])
    ax.set_xlabel("AU j (condition)")
    ax.set_ylabel("AU i")
    ax.set_title(f"{stats['config'].dataset}: co-occurrence prior A (Eq. 1-2)")
    for i in range(len(aus)):
        for j in range(len(aus)):
            ax.text(j, i, f"{prior[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if prior[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)


def _markdown_section(stats: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    config, aus = stats["config"], stats["aus"]
    rates, population, real, prior = stats["rates"], stats["population"], stats["real"], stats["prior"]
    lines = [
        f"## {config.dataset}",
        "",
        f"Preset `{config.preset}`, seed {config.seed}: {len(config.subjects)} subjects x "
        f"{len(config.sequences)} sequence(s) x {config.frames_per_task} frames = {config.num_frames} "
        f"frames of {config.image_size}x{config.image_size} px, one written frame every "
        f"{config.frame_step} video frames (generator version {config.to_dict()['generator_version']}).",
    ]
    if summary is not None and summary.get("generated_frames"):
        line = (f"Generated in {summary['seconds']:.1f} s ({summary['frames_per_second']:.0f} frames/s, "
                f"{summary.get('workers', '?')} worker processes")
        if summary.get("cpu_seconds"):
            line += (f"; {1000 * summary['cpu_seconds'] / summary['generated_frames']:.1f} ms of CPU time "
                     "per frame, all processes")
        if summary.get("load_average") is not None:
            line += f"; machine load average {summary['load_average']:.1f} at the end"
        lines.append(line + ").")
    lines += [
        "",
        "### Marginal positive rates",
        "",
        f"Occurrence = integer intensity >= {OCCURRENCE_THRESHOLD[config.dataset]} "
        f"({'BP4D codes presence at any intensity A-E' if config.dataset == 'BP4D' else 'the DISFA protocol'}). "
        "*This set*: the frames above (not-coded entries left out). *Generator*: the expected "
        f"rate, from a label-only sample of all subjects x 8 sequences x 100 frames x "
        f"{stats['population_seeds']} seeds. *Real*: the real-data rates of mgrr_pyg's `docs/protocol.md` "
        "(rough rates, consistent with the published class weights). *Subjects*: the "
        "range of per-subject rates in this set (subjects differ in base rates).",
        "",
        "| AU | this set | generator | real | set - real | subjects min-max |",
        "|---|---|---|---|---|---|",
    ]
    for au in aus:
        values = [stats["per_subject"][s][au] for s in config.subjects]
        lines.append(f"| AU{au} | {rates[au]:.3f} | {population[au]:.3f} | {real[au]:.2f} | "
                     f"{rates[au] - real[au]:+.3f} | {min(values):.2f}-{max(values):.2f} |")
    mean_abs = float(np.mean([abs(rates[a] - real[a]) for a in aus]))
    mean_abs_pop = float(np.mean([abs(population[a] - real[a]) for a in aus]))
    lines += [
        "",
        f"Mean |this set - real| = {mean_abs:.3f}; mean |generator - real| = {mean_abs_pop:.3f}. "
        f"Mean number of active AUs per frame: {stats['active']:.2f}."
        + (f" Not-coded (9) entries: {100 * stats['uncoded']:.1f}%." if config.dataset == "BP4D" else ""),
        "",
        "### Co-occurrence prior (Eq. 1-2)",
        "",
        "A_ij = |2(P_ij - 0.5)|, P_ij = (P(a_i=1 | a_j=1) + P(a_i=0 | a_j=0)) / 2, from this set's "
        "labels by `mgrr_pyg.graphs.au_cooccurrence_prior` (rows i, columns j).",
        "",
        "| | " + " | ".join(f"AU{a}" for a in aus) + " |",
        "|---|" + "---|" * len(aus),
    ]
    for i, au in enumerate(aus):
        lines.append(f"| **AU{au}** | " + " | ".join(f"{prior[i, j]:.2f}" for j in range(len(aus))) + " |")
    off = sorted(((prior[i, j], aus[i], aus[j]) for i in range(len(aus)) for j in range(len(aus)) if i != j),
                 reverse=True)
    lines += ["", "Strongest relations: " + ", ".join(f"A[{i},{j}] = {v:.2f}" for v, i, j in off[:6]) + ".", ""]
    return lines


def calibration_report(
    source: SynthConfig | str | os.PathLike | Sequence[SynthConfig | str | os.PathLike],
    markdown_path: str | os.PathLike,
    figure_path: str | os.PathLike,
    grid_subjects: int = 3,
    population_seeds: int = 3,
    summary: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Write the calibration report of one or more synthetic datasets (markdown + PNG).

    Args:
        source: a dataset's :class:`~.config.SynthConfig` or generated folder (its manifest
            is read), or a list of them (one section each, e.g. BP4D and DISFA).
        markdown_path: the markdown file to write.
        figure_path: the PNG figure to write (the markdown links it by relative path).
        grid_subjects: identities in the AU grid (from the first dataset). (default: ``3``)
        population_seeds: seeds of the label-only population sample (all subjects x 8
            sequences x 100 frames per seed) that gives the generator's expected rates.
            (default: ``3``)
        summary: :func:`~.writer.generate` summaries (sizes and timing go into the
            report), one per source. (default: ``None``)
        notes: markdown added as its own section (e.g. measurements made elsewhere).
            (default: ``None``)

    Returns:
        dict with ``markdown``, ``figure`` (paths) and, for the first source, ``rates``
        (this set), ``population`` (expected rates), ``real``, ``prior`` (``[n, n]``) and
        ``aus``; ``datasets`` holds these for every source.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text

    sources = list(source) if isinstance(source, (list, tuple)) else [source]
    summaries = list(summary) if isinstance(summary, (list, tuple)) else [summary] * len(sources)
    if len(summaries) != len(sources):
        raise ValueError(f"summary: expected one per source ({len(sources)}), found {len(summaries)}")
    configs = [s if isinstance(s, SynthConfig) else config_from_root(s) for s in sources]
    markdown_path, figure_path = Path(markdown_path), Path(figure_path)
    stats = [dataset_statistics(c, population_seeds) for c in configs]

    # -- figure -------------------------------------------------------------------------
    first = configs[0]
    grid_ids = first.subjects[:grid_subjects]
    grid, columns = au_grid(first.seed, first.dataset, grid_ids, image_size=first.image_size)
    per_strip = max(1, 6 // len(configs))
    strips = [captured_samples(c, count=per_strip) for c in configs]
    samples = Image.new("RGB", (sum(s.width for s in strips), strips[0].height), (255, 255, 255))
    x0 = 0
    for strip in strips:
        samples.paste(strip, (x0, 0))
        x0 += strip.width
    n = len(configs)
    fig = plt.figure(figsize=(20, 5.2 * n + 5.6 + 3.6), dpi=100)
    spec = fig.add_gridspec(n + 2, 2, height_ratios=[5.2] * n + [5.6, 3.6], width_ratios=[1.7, 1.0],
                            hspace=0.28, wspace=0.08)
    for row, st in enumerate(stats):
        _plot_rates(fig.add_subplot(spec[row, 0]), st)
        _plot_prior(fig, fig.add_subplot(spec[row, 1]), st)
    ax = fig.add_subplot(spec[n, :])
    ax.imshow(np.asarray(grid))
    tile = grid.width / len(columns)
    ax.set_xticks((np.arange(len(columns)) + 0.5) * tile, columns)
    ax.set_yticks((np.arange(len(grid_ids) + 1) + 0.5) * tile, [*grid_ids, "|diff| x4"])
    ax.set_title("Each AU alone at intensity 4.5 (aligned 176x176 centre crops); last row: "
                 f"difference to neutral of {grid_ids[0]}")
    ax = fig.add_subplot(spec[n + 1, :])
    ax.imshow(np.asarray(samples))
    ax.set_axis_off()
    ax.set_title("Frames as written (unaligned; pose, light, blur, noise, compression) with their 49 landmarks")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_save_bytes(figure_path, buffer.getvalue())

    # -- markdown -----------------------------------------------------------------------
    figure_link = os.path.relpath(figure_path, markdown_path.parent)
    lines = [
        "# Synthetic faces: calibration",
        "",
        "Written by `mgrr_pyg.data.synthetic.calibration_report` "
        "(`mgrr-synth OUT --report` writes the same for one generated folder).",
        "",
        f"![calibration]({figure_link})",
        "",
    ]
    for st, summ in zip(stats, summaries):
        lines += _markdown_section(st, summ)
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "## Reproduce",
        "",
        "```python",
        "from mgrr_pyg.data.synthetic import generate, calibration_report",
        *[f"s{i} = generate({str(Path('data') / f'synth-{c.dataset.lower()}')!r}, dataset={c.dataset!r}, "
          f"preset={c.preset!r}, seed={c.seed}, workers=2)" for i, c in enumerate(configs)],
        f"calibration_report([{', '.join(repr(str(Path('data') / f'synth-{c.dataset.lower()}')) for c in configs)}], "
        f"'docs/synthetic-calibration.md', 'docs/synthetic-calibration.png', "
        f"summary=[{', '.join(f's{i}' for i in range(len(configs)))}]" + (", notes=notes)" if notes else ")"),
        "```",
        "",
    ]
    if notes:
        lines += ["`notes` is the markdown of the sections between the last dataset and this one "
                  "(written and measured separately, passed in as it is).", ""]
    lines += [
        "## Faces",
        "",
        "The grid shows each AU alone at intensity 4.5 on the first "
        f"{len(grid_ids)} identities ({', '.join(grid_ids)}), as aligned 176x176 centre crops; "
        "the last row is the amplified difference to the neutral face, which shows where each "
        "AU acts (brows and forehead for AU1/2/4, eyes and cheeks for AU6/7, nose for AU9, "
        "mouth, cheeks and chin for AU10-26). The bottom strip shows frames exactly as written: "
        "unaligned, with head roll / scale / translation, a small yaw squash, illumination "
        "gradient, colour cast, blur, sensor noise and JPEG compression, and their 49 landmarks.",
        "",
    ]
    atomic_save_text(markdown_path, "\n".join(lines))
    head = stats[0]
    return {"markdown": str(markdown_path), "figure": str(figure_path), "rates": head["rates"],
            "population": head["population"], "real": head["real"], "prior": head["prior"],
            "aus": head["aus"], "datasets": stats}


__all__ = ["au_grid", "calibration_report", "captured_samples", "config_from_root", "dataset_labels",
           "dataset_statistics", "marginal_rates"]

"""A tiny raw-dataset writer for the data tests, independent of the synthetic generator.

Faces are plausible 49-point landmark sets (the real aligned landmarks of
``tests/data/reference_landmarks.json``, rotated, scaled and shifted) over a gradient image with a
coloured blob drawn at a few named landmarks, so tests can check that landmarks move
with the image content through alignment, cropping and flipping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reference_landmarks import reference_faces  # noqa: F401  (the 11 real faces, [11, 49, 2])


#: Landmark index -> blob colour. Brow ends, outer eye corners and mouth corners:
#: pairs that swap under a horizontal flip.
MARKS: dict[int, tuple[int, int, int]] = {
    0: (230, 30, 30),
    9: (30, 200, 30),
    19: (30, 30, 230),
    28: (230, 230, 30),
    31: (230, 30, 230),
    37: (30, 220, 220),
}
BLOB_RADIUS = 4.5


def nearest_mark(colour) -> int:
    """The landmark index whose blob colour is nearest to ``colour``."""
    colour = np.asarray(colour, dtype=np.float64)
    return min(MARKS, key=lambda k: np.abs(np.asarray(MARKS[k]) - colour).sum())


def draw_face(size: int, landmarks: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A ``size``x``size`` RGB image: smooth gradient + mild noise + blobs at MARKS."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    base = np.stack([60 + 80 * xx / size, 70 + 60 * yy / size, 110 + 40 * (xx + yy) / (2 * size)], -1)
    image = base + rng.normal(0, 2.0, base.shape)
    for index, colour in MARKS.items():
        x, y = landmarks[index]
        image[(xx - x) ** 2 + (yy - y) ** 2 <= BLOB_RADIUS**2] = colour
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def skimage_similarity(source, target):
    """scikit-image's least-squares similarity (the independent reference)."""
    from skimage.transform import SimilarityTransform

    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        reference = SimilarityTransform.from_estimate(source, target)
    else:
        reference = SimilarityTransform()
        reference.estimate(source, target)
    assert np.isfinite(reference.params).all()
    return reference


def random_similarity(rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``[2, 3]`` similarity putting a 200x200-aligned face into a ``size`` image."""
    angle = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.95, 1.1) * size / 240
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([100.0, 100.0])
    shift = np.array([size / 2, size / 2]) + rng.uniform(-6, 6, 2) - rot @ centre
    return np.concatenate([rot, shift[:, None]], axis=1)


def to_68(points49: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 68-point set whose 49-point reduction is ``points49`` (jaw and inner-mouth
    corners filled with plausible noise)."""
    out = np.zeros((68, 2))
    keep = [i for i in range(17, 68) if i not in (60, 64)]
    out[keep] = points49
    out[:17] = points49[14] + rng.normal(0, 30, (17, 2))
    out[60], out[64] = points49[31] + 1, points49[37] - 1
    return out


def to_66(points49: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((66, 2))
    out[17:] = points49
    out[:17] = points49[14] + rng.normal(0, 30, (17, 2))
    return out


def write_landmark_csv(path: Path, frames, points: list[np.ndarray], header: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = len(points[0]) if points else 49
    lines = []
    if header:
        lines.append(",".join(["frame"] + [f"{a}{i}" for i in range(1, count + 1) for a in "xy"]))
    for frame, p in zip(frames, points):
        lines.append(",".join([str(frame)] + [repr(float(v)) for v in p.reshape(-1)]))
    path.write_text("\n".join(lines) + "\n")


@dataclass
class RawTree:
    """What a fixture wrote: ``truth[(subject, sequence, frame)]`` -> dict with
    ``landmarks`` [49, 2], ``labels`` {AU: 0/1/9}, ``image`` path, (``intensity``)."""

    root: Path
    dataset: str
    truth: dict = field(default_factory=dict)


BP4D_EXTRA_AUS = (3, 5, 11, 13, 16, 18, 20, 22, 27, 28)


def write_bp4d(root: Path, sequences: dict[str, list[str]] | None = None, frames: int = 3,
               size: int = 240, seed: int = 0, padded: bool = True, points: int = 68,
               unlabelled: int = 1) -> RawTree:
    """A raw BP4D tree. Label CSVs hold the 12 AUs plus extra ones in shuffled column
    order; frame numbers start at 7 (zero-padded file names if ``padded``); each
    sequence also has ``unlabelled`` images without labels."""
    from mgrr_pyg.facs import BP4D_AUS

    sequences = sequences or {"F001": ["T1", "T2"], "F003": ["T1"], "F004": ["T1"]}
    rng = np.random.default_rng(seed)
    faces = reference_faces()
    tree = RawTree(Path(root), "BP4D")
    columns = list(BP4D_AUS + BP4D_EXTRA_AUS)
    rng.shuffle(columns)
    for subject, tasks in sequences.items():
        for task in tasks:
            frame_ids = [7 + 5 * i for i in range(frames + unlabelled)]
            lm_rows, csv_rows = [], []
            for k, frame in enumerate(frame_ids):
                matrix = random_similarity(rng, size)
                base = faces[rng.integers(len(faces))]
                lm = base @ matrix[:, :2].T + matrix[:, 2]
                name = f"{frame:04d}.jpg" if padded else f"{frame}.jpg"
                image_path = tree.root / subject / task / name
                image_path.parent.mkdir(parents=True, exist_ok=True)
                draw_face(size, lm, rng).save(image_path, quality=95)
                lm_rows.append(to_68(lm, rng) if points == 68 else lm)
                if k >= frames:
                    continue  # an image without labels
                values = {au: int(rng.choice([0, 1, 9], p=[0.55, 0.4, 0.05])) for au in columns}
                csv_rows.append([frame] + [values[au] for au in columns])
                tree.truth[(subject, task, frame)] = {
                    "landmarks": lm, "labels": {au: values[au] for au in BP4D_AUS},
                    "image": image_path,
                }
            label_file = tree.root / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text("\n".join(",".join(str(v) for v in row)
                                            for row in [["0"] + columns] + csv_rows) + "\n")
            write_landmark_csv(tree.root / "Landmarks" / f"{subject}_{task}.csv", frame_ids, lm_rows)
    return tree


def write_disfa(root: Path, subjects: tuple[str, ...] = ("SN001", "SN006", "SN003"), frames: int = 4,
                size: int = 240, seed: int = 1, points: int = 66, extension: str = ".png") -> RawTree:
    """A raw DISFA tree: images ``<subject>/<i>.png`` (i from 0), intensity files with
    1-based frames (all 0-5 values used), 66-point landmark CSVs keyed by image index."""
    from mgrr_pyg.facs import DISFA_AUS

    rng = np.random.default_rng(seed)
    faces = reference_faces()
    tree = RawTree(Path(root), "DISFA")
    for subject in subjects:
        lm_rows = []
        intensities = rng.integers(0, 6, size=(frames, len(DISFA_AUS)))
        for i in range(frames):
            matrix = random_similarity(rng, size)
            lm = faces[rng.integers(len(faces))] @ matrix[:, :2].T + matrix[:, 2]
            image_path = tree.root / subject / f"{i}{extension}"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            draw_face(size, lm, rng).save(image_path)
            lm_rows.append(to_66(lm, rng) if points == 66 else lm)
            tree.truth[(subject, subject, i)] = {
                "landmarks": lm, "image": image_path,
                "intensity": {au: int(v) for au, v in zip(DISFA_AUS, intensities[i])},
                "labels": {au: int(v >= 2) for au, v in zip(DISFA_AUS, intensities[i])},
            }
        for j, au in enumerate(DISFA_AUS):
            path = tree.root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{i + 1},{intensities[i, j]}\n" for i in range(frames)))
        write_landmark_csv(tree.root / "Landmarks" / f"{subject}.csv", list(range(frames)), lm_rows)
    return tree


@pytest.fixture
def bp4d_tree(tmp_path) -> RawTree:
    return write_bp4d(tmp_path / "BP4D")


@pytest.fixture
def disfa_tree(tmp_path) -> RawTree:
    return write_disfa(tmp_path / "DISFA")


@pytest.fixture(scope="session")
def prepared_bp4d(tmp_path_factory):
    """A finished BP4D preparation shared by read-only tests: (RawTree, out folder)."""
    from mgrr_pyg.data import prepare_dataset

    base = tmp_path_factory.mktemp("prepared_bp4d")
    tree = write_bp4d(base / "raw")
    prepare_dataset(tree.root, base / "out", workers=0, progress=False)
    return tree, base / "out"

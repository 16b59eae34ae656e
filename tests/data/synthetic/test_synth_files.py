"""The files the generator writes: layout, formats, value sets, landmarks that match the
pixels, and byte-identical output from the same seed. Files are parsed here with plain
``csv`` / ``str.split`` code, independent of the package's readers."""
import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgrr_pyg.data.protocol import PARTITION
from mgrr_pyg.data.synthetic import PRESETS, SynthConfig, generate
from mgrr_pyg.data.synthetic.identity import make_identity
from mgrr_pyg.data.synthetic.render import Capture, FaceRenderer

BP4D_12 = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_8 = (1, 2, 4, 6, 9, 12, 25, 26)
SIZE = 256


@pytest.fixture(scope="module")
def bp4d(tmp_path_factory):
    root = tmp_path_factory.mktemp("bp4d")
    summary = generate(root, dataset="BP4D", preset="tiny", seed=0, workers=1, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def disfa(tmp_path_factory):
    root = tmp_path_factory.mktemp("disfa")
    summary = generate(root, dataset="DISFA", preset="tiny", seed=0, workers=2, progress=False,
                       subjects=["SN001", "SN006", "SN003"], frames_per_task=6)
    return root, summary


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def read_landmarks(path: Path):
    rows = read_rows(path)
    header, body = rows[0], rows[1:]
    expected = ["frame"] + [f"{a}{i}" for i in range(1, 50) for a in ("x", "y")]
    assert header == expected
    frames = [int(r[0]) for r in body]
    points = np.array([[float(v) for v in r[1:]] for r in body]).reshape(len(body), 49, 2)
    return frames, points


def test_tiny_preset_has_subjects_in_every_part_so_three_folds_work():
    for dataset in ("BP4D", "DISFA"):
        subjects = SynthConfig.from_preset("tiny", dataset).subjects
        for part in (1, 2, 3):
            assert len(set(subjects) & set(PARTITION[dataset][part])) >= 2


def test_bp4d_layout_and_formats(bp4d):
    root, summary = bp4d
    config = SynthConfig.from_preset("tiny", "BP4D")
    assert summary["generated_frames"] == config.num_frames == 6 * 2 * 8
    for subject in config.subjects:
        for task in config.tasks:
            images = sorted((root / subject / task).glob("*.jpg"), key=lambda p: int(p.stem))
            names = [int(p.stem) for p in images]
            assert len(names) == PRESETS["tiny"]["BP4D"]["frames_per_task"]
            assert min(names) >= 1  # frame numbers as in the real release, not 0-based
            with Image.open(images[0]) as image:
                assert image.format == "JPEG" and image.size == (SIZE, SIZE) and image.mode == "RGB"
            rows = read_rows(root / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv")
            header = rows[0]
            aus = [int(c) for c in header[1:]]
            assert set(BP4D_12) < set(aus) and len(aus) > 12 and aus != list(BP4D_12)
            assert [int(r[0]) for r in rows[1:]] == names
            values = {int(v) for r in rows[1:] for v in r[1:]}
            assert values <= {0, 1, 9}
            assert all(len(r) == len(header) for r in rows)
            frames, points = read_landmarks(root / "Landmarks" / f"{subject}_{task}.csv")
            assert frames == names
            assert points.min() > 0 and points.max() < SIZE - 1


def test_bp4d_labels_vary_and_include_positives(bp4d):
    root, _ = bp4d
    table = []
    for path in sorted((root / "AUCoding" / "AU_OCC").glob("*.csv")):
        rows = read_rows(path)
        cols = [rows[0].index(str(au)) for au in BP4D_12]
        table += [[int(r[c]) for c in cols] for r in rows[1:]]
    table = np.array(table)
    coded = table != 9
    positive_rate = ((table == 1) & coded).sum() / coded.sum()
    assert 0.1 < positive_rate < 0.7
    assert len({tuple(r) for r in table}) > 10  # many different AU combinations


def test_disfa_layout_and_formats(disfa):
    root, summary = disfa
    assert summary["generated_frames"] == 3 * 6
    for subject in ("SN001", "SN006", "SN003"):
        names = sorted(int(p.stem) for p in (root / subject).glob("*.png"))
        assert names == list(range(6))
        with Image.open(root / subject / "0.png") as image:
            assert image.format == "PNG" and image.size == (SIZE, SIZE)
        for au in DISFA_8:
            lines = (root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt").read_text().split()
            pairs = [tuple(int(v) for v in line.split(",")) for line in lines]
            assert [f for f, _ in pairs] == list(range(1, 7))  # 1-based frames
            assert all(0 <= v <= 5 for _, v in pairs)
        frames, points = read_landmarks(root / "Landmarks" / f"{subject}.csv")
        assert frames == list(range(6))
        assert points.min() > 0 and points.max() < SIZE - 1


def test_same_seed_gives_identical_files_in_any_work_order(tmp_path):
    small = dict(dataset="BP4D", preset="tiny", subjects=["F001", "F003"], tasks=["T1"], frames_per_task=3,
                 progress=False)
    one = generate(tmp_path / "a", seed=0, workers=1, **small)
    two = generate(tmp_path / "b", seed=0, workers=2, **small)
    other = generate(tmp_path / "c", seed=1, **small)
    assert one["generated_frames"] == two["generated_frames"] == 6
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6 + 2 + 2 + 2 + 1  # images, labels, landmarks, markers, manifest
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    image = Path("F001") / "T1"
    a_images = sorted((tmp_path / "a" / image).iterdir())
    c_images = sorted((tmp_path / "c" / image).iterdir())
    assert [p.read_bytes() for p in a_images] != [p.read_bytes() for p in c_images]
    assert (tmp_path / "a" / "Landmarks" / "F003_T1.csv").read_text().splitlines()[1] != \
        (tmp_path / "c" / "Landmarks" / "F003_T1.csv").read_text().splitlines()[1]


def pupil_centre(image: np.ndarray, centre, radius=4.0, level=40.0):
    """Darkness-weighted centroid near ``centre`` (the pupil, with its catchlight)."""
    grey = image.mean(axis=2)
    ys, xs = np.mgrid[0:grey.shape[0], 0:grey.shape[1]]
    weight = np.clip(level - grey, 0.0, None) * ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2)
    assert weight.sum() > 0
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()


def render_pupils(capture):
    renderer = FaceRenderer(make_identity(0, "BP4D", "F002"), SIZE)
    image, points = renderer.render({}, capture)
    pixels = np.asarray(image, dtype=np.float64)
    eyes = [points[19:25].mean(axis=0), points[25:31].mean(axis=0)]
    return points, [pupil_centre(pixels, c) for c in eyes], eyes


def test_pupils_are_drawn_at_the_landmark_eye_centres():
    _, pupils, eyes = render_pupils(Capture())
    for pupil, eye in zip(pupils, eyes):
        np.testing.assert_allclose(pupil, eye, atol=0.6)  # the catchlight pulls it a little


@pytest.mark.parametrize("roll,scale,shift,squash", [(12.0, 1.15, (9.0, -6.0), 0.92),
                                                     (-9.0, 0.95, (-11.0, 8.0), 1.0),
                                                     (3.0, 1.05, (0.3, 0.7), 0.96)])
def test_landmarks_move_exactly_with_the_pixels(roll, scale, shift, squash):
    """Capture a face frontally and with head pose: the affine map between the two
    landmark sets (fitted here by least squares) must carry the pupils of the first
    image onto the pupils of the second to a fraction of a pixel."""
    front_points, front_pupils, _ = render_pupils(Capture())
    points, pupils, _ = render_pupils(Capture(roll=roll, scale=scale, shift=shift, yaw_squash=squash))
    design = np.concatenate([front_points, np.ones((49, 1))], axis=1)  # [49, 3]
    affine, *_ = np.linalg.lstsq(design, points, rcond=None)  # [3, 2]
    np.testing.assert_allclose(design @ affine, points, atol=1e-6)  # one affine map, as drawn
    for front, pupil in zip(front_pupils, pupils):
        np.testing.assert_allclose(np.append(front, 1.0) @ affine, pupil, atol=0.3)


def test_frames_as_written_decode_to_the_rendered_size(bp4d):
    root, _ = bp4d
    data = next((root / "F001" / "T1").glob("*.jpg")).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (SIZE, SIZE)

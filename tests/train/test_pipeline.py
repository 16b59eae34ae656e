"""The run split by responsibility: where the data comes from (train/data_sources.py),
which frames of the fold it uses (train/fold_frames.py), what it writes
(train/outputs.py) and the run itself (train/pipeline.py); the names that lived in
pipeline.py still import from there, with a DeprecationWarning naming the new place."""
import ast
import json
import warnings
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mgrr_pyg.data import FrameTable, MissingImagesError, protocol, write_prepared
from mgrr_pyg.facs import BP4D_AUS
from mgrr_pyg.train import pipeline
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.fold_frames import fold_frames
from mgrr_pyg.train.metrics import evaluate_predictions, label_only_baselines
from mgrr_pyg.train.outputs import OUTPUT_FILES, RunResult, default_output, write_outputs

REPO = Path(__file__).resolve().parents[2]


# -- the old import paths -------------------------------------------------------------------
@pytest.mark.parametrize("name, module", [
    ("cache_dir", "data_sources"), ("synthetic_name", "data_sources"),
    ("ensure_synthetic", "data_sources"), ("prepared_root", "data_sources"),
    ("choose_validation_subjects", "fold_frames"), ("strided", "fold_frames"),
    ("sampled", "fold_frames"),
    ("RunResult", "outputs"), ("default_output", "outputs"), ("results_markdown", "outputs"),
])
def test_moved_names_still_import_from_the_pipeline_with_a_warning(name, module):
    with pytest.warns(DeprecationWarning, match=rf"use mgrr_pyg\.train\.{module}\.{name}$"):
        old = getattr(pipeline, name)
    assert old is getattr(import_module(f"mgrr_pyg.train.{module}"), name)


def test_the_runner_names_import_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from mgrr_pyg.train.pipeline import (build_model, check_model_config,  # noqa: F401
                                             check_run, run_training)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        pipeline.no_such_name


def _imported_modules(path: Path, package: str) -> set:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_nothing_imports_the_deprecated_data_module_names():
    """``mgrr_pyg.data.prepared`` / ``.prepare`` are the deprecated names of
    ``prepared_lists`` / ``preparation``: only those two forwarding modules may name them."""
    deprecated = {"mgrr_pyg.data.prepared", "mgrr_pyg.data.prepare"}
    offenders = []
    for folder in ("mgrr_pyg", "examples", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO)
            module = ".".join(relative.with_suffix("").parts)
            if module in deprecated:
                continue
            package = module.rsplit(".", 1)[0]  # of a module and of an __init__ alike
            if deprecated & _imported_modules(path, package):
                offenders.append(str(relative))
    assert offenders == []


# -- the fold's frames ---------------------------------------------------------------------
def _write_part(root: Path, prefix: str, subjects, frames_per_subject: int, seed: int) -> None:
    """Prepared lists of ``prefix``: BP4D frames ``BP4D/<subject>/T1/<k>.jpg`` (stand-in
    image files: the run looks for them, these tests never decode them)."""
    rng = np.random.default_rng(seed)
    rows = [(s, k) for s in subjects for k in range(frames_per_subject)]
    paths = [root / "images" / "BP4D" / s / "T1" / f"{k}.jpg" for s, k in rows]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded")
    table = FrameTable(aus=BP4D_AUS, subject=[s for s, _ in rows], sequence=["T1"] * len(rows),
                       frame=[k for _, k in rows], image_path=[str(p) for p in paths],
                       landmarks=rng.uniform(40, 160, (len(rows), 49, 2)),
                       labels=rng.choice([0, 1], size=(len(rows), len(BP4D_AUS))), dataset="BP4D")
    write_prepared(table, root, prefix)


@pytest.fixture
def prepared(tmp_path):
    """Fold 1 of BP4D: a training part of 4 subjects x 3 frames, a test part of 2 x 5."""
    fold = protocol.fold("BP4D", 1)
    _write_part(tmp_path, fold.train_prefix, ["F002", "F003", "F004", "F005"], 3, seed=1)
    _write_part(tmp_path, fold.test_prefix, ["F001", "M001"], 5, seed=2)
    return tmp_path, fold


def test_fold_frames_choose_training_validation_and_test_frames(prepared):
    root, fold = prepared
    config = TrainConfig(data_root=str(root), val_subjects=1, max_train_frames=4, max_test_frames=4)
    with warnings.catch_warnings():  # and nothing on the way names a deprecated module
        warnings.simplefilter("error", DeprecationWarning)
        frames = fold_frames(config, root, fold, BP4D_AUS)
        test_ids = frames.test_frame_ids()
    # validation: one of the 4 training subjects, all its frames (3 <= max_test_frames)
    assert len(frames.val_subject_ids) == 1 and frames.val_subject_ids[0] in {"F002", "F003", "F004", "F005"}
    held_out = ["F002", "F003", "F004", "F005"].index(frames.val_subject_ids[0])
    assert frames.val_positions.tolist() == [3 * held_out, 3 * held_out + 1, 3 * held_out + 2]
    assert len(frames.val_set) == 3 and frames.val_set.dataset.train is False  # no augmentation
    # training: 4 of the other 9 frames, none of the validation subject's
    assert len(frames.train_positions) == 4 and len(frames.train_set) == 4
    assert not set(frames.train_positions.tolist()) & set(frames.val_positions.tolist())
    assert frames.train_set.dataset.train is True
    # test: 4 evenly strided of the 10 frames, rounded from 0, 3, 6, 9
    assert frames.test_positions.tolist() == [0, 3, 6, 9]
    assert test_ids == ["BP4D/F001/T1/0.jpg", "BP4D/F001/T1/3.jpg", "BP4D/M001/T1/1.jpg",
                        "BP4D/M001/T1/4.jpg"]
    assert frames.test_subjects == 2 and frames.train_subjects in (2, 3)
    assert frames.test_labels.shape == (4, 12) and frames.train_labels.shape == (4, 12)
    again = fold_frames(config, root, fold, BP4D_AUS)  # seeded: the same choice
    assert again.val_subject_ids == frames.val_subject_ids
    assert again.train_positions.tolist() == frames.train_positions.tolist()


def test_fold_frames_of_a_missing_image_say_what_to_do(prepared):
    root, fold = prepared
    (root / "images" / "BP4D" / "M001" / "T1" / "2.jpg").unlink()
    with pytest.raises(MissingImagesError, match="M001/T1/2.jpg") as caught:
        fold_frames(TrainConfig(data_root=str(root)), root, fold, BP4D_AUS)
    assert "--image-root" in str(caught.value)  # the lists were given as --data-root


def test_fold_frames_of_an_empty_part_are_refused(prepared):
    root, fold = prepared
    for suffix in ("path", "land", "biocular", "AUoccur"):  # a training part of no frame
        (root / f"{fold.train_prefix}_{suffix}.txt").write_text("")
    with pytest.raises(ValueError, match=r"fold 1: found 0 training and 10 test frames"):
        fold_frames(TrainConfig(data_root=str(root)), root, fold, BP4D_AUS)


# -- the outputs ---------------------------------------------------------------------------
def _result(tmp_path) -> RunResult:
    rng = np.random.default_rng(0)
    aus = (1, 2, 4)
    labels = (rng.random((6, 3)) < 0.5).astype(int)
    labels[0], labels[1] = 1, 0
    probs = rng.random((6, 3))
    metrics = evaluate_predictions(probs, labels, aus=aus)
    info = {"preset": "tiny", "parameters": np.int64(1234), "train_frames": 12, "test_frames": 6,
            "source": "synthetic", "overrides": {"aus": (1, 2, 4)}, "prepared_root": tmp_path,
            "val_subject_ids": [], "train_subjects": np.int64(3)}
    result = RunResult(tmp_path, TrainConfig(preset="tiny"), metrics,
                       label_only_baselines(labels, labels, aus, seed=0), None, 1, "last epoch",
                       [{"epoch": 1, "train_total": np.float32(0.5)}], 12.5, "fold 1", "# results\n",
                       info, environment={"command": "train_bp4d.py", "cpus": np.int64(2)},
                       data={"synthetic_set": None, "prepared_digest": None})
    test_eval = SimpleNamespace(probs=probs, labels=labels, landmarks_pred=None,
                                landmarks_true=None, interocular=None)
    return result, test_eval, aus


def test_write_outputs_writes_each_named_file_as_plain_json(tmp_path):
    result, test_eval, aus = _result(tmp_path)
    write_outputs(result, tmp_path, test_eval, [f"frame{i}" for i in range(6)], aus)
    names = {"results.md", "results.csv", "results.json", "predictions_test.npz", "predictions_test.csv"}
    assert {p.name for p in tmp_path.iterdir()} == names
    assert ", ".join(OUTPUT_FILES) == "results.md, results.csv, results.json, predictions_test.npz/.csv"
    assert (tmp_path / "results.md").read_text() == "# results\n"
    text = (tmp_path / "results.json").read_text()
    saved = json.loads(text)
    assert text.startswith('{\n  "format": ')  # indent 2, the keys in to_dict's order
    assert list(saved)[:4] == ["format", "config", "fold", "metrics"]
    assert saved["info"]["parameters"] == 1234 and saved["info"]["train_subjects"] == 3
    assert saved["info"]["prepared_root"] == str(tmp_path)
    assert saved["info"]["overrides"] == {"aus": [1, 2, 4]}
    assert saved["history"] == [{"epoch": 1, "train_total": 0.5}]
    assert saved["environment"] == {"command": "train_bp4d.py", "cpus": 2}
    assert saved["config"]["preset"] == "tiny" and saved["seconds"] == 12.5
    lines = (tmp_path / "predictions_test.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[1].startswith("frame0,")


def test_default_output_names_dataset_fold_preset_ablation_and_seed():
    assert default_output(TrainConfig()) == Path("runs/BP4D-fold1-mgrr_bp4d-seed0")
    assert default_output(TrainConfig(dataset="DISFA", fold=3, preset="tiny", seed=2)) == \
        Path("runs/DISFA-fold3-tiny-seed2")


def test_the_package_imports_without_a_circle():
    """The deepest new module imported first, in a fresh interpreter, then the package."""
    import subprocess
    import sys

    code = ("import mgrr_pyg.train.fold_frames, mgrr_pyg.train.outputs; "
            "import mgrr_pyg, mgrr_pyg.train, mgrr_pyg.predict, mgrr_pyg.train.pipeline")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

"""prepare_dataset: aligned faces + prepared lists; idempotent, resumable, refuses mixing."""
import dataclasses
import json
import os
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from raw_tree_helpers import MARKS, nearest_mark, skimage_similarity
from PIL import Image

from mgrr_pyg.data import class_weights, preparation, prepare_dataset, raw, read_bp4d, read_prepared
from mgrr_pyg.data.prepared_lists import list_file, read_class_weights, read_prior
from mgrr_pyg.data.protocol import folds, part_of
from mgrr_pyg.data.raw import RawLayout
from mgrr_pyg.facs import BP4D_AUS, TEMPLATE_POINTS, alignment_points, interocular_distance
from mgrr_pyg.graphs import au_cooccurrence_prior


def snapshot(folder):
    """Every file under ``folder`` -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_list_of_the_protocol_is_written(prepared_bp4d):
    tree, out = prepared_bp4d
    manifest = json.loads((out / "prepare.json").read_text())
    assert manifest["dataset"] == "BP4D" and manifest["aus"] == list(BP4D_AUS)
    assert manifest["frames"] == len(tree.truth) and manifest["skipped"]["total"] == 0
    for f in folds("BP4D"):
        test = read_prepared(out, f.test_prefix)
        assert {part_of("BP4D", s) for s in test.subject.tolist()} <= {f.test_part}
        train = read_prepared(out, f.train_prefix)
        a, b = f.train_parts
        expected_paths = (list_file(out, f"BP4D_part{a}", "path").read_text().splitlines()
                          + list_file(out, f"BP4D_part{b}", "path").read_text().splitlines())
        assert list_file(out, f.train_prefix, "path").read_text().splitlines() == expected_paths
        assert not set(train.subject.tolist()) & set(test.subject.tolist())
        np.testing.assert_allclose(read_class_weights(out, f.train_prefix),
                                   class_weights(train.labels).numpy(), atol=1e-6)
        np.testing.assert_allclose(read_prior(out, f.train_prefix),
                                   au_cooccurrence_prior(train.labels, missing_value=9), atol=1e-6)
        assert manifest["prefixes"][f.train_prefix]["frames"] == len(train)
    sizes = [len(read_prepared(out, f"BP4D_part{p}")) for p in (1, 2, 3)]
    assert sum(sizes) == len(tree.truth) and all(sizes)


def test_labels_and_landmarks_follow_their_frames(prepared_bp4d):
    tree, out = prepared_bp4d
    for table in [read_prepared(out, f"BP4D_part{p}") for p in (1, 2, 3)]:
        for i in range(len(table)):
            row = table[i]
            truth = tree.truth[(row.subject, row.sequence, row.frame)]
            assert row.labels == truth["labels"]
            # The aligned landmarks are the raw ones under the least-squares similarity
            # from their alignment points to the template (scikit-image as reference).
            reference = skimage_similarity(alignment_points(truth["landmarks"]), TEMPLATE_POINTS)
            np.testing.assert_allclose(row.landmarks, reference(truth["landmarks"]), atol=1e-3)
            assert np.abs(alignment_points(row.landmarks) - TEMPLATE_POINTS).max() < 5.0
            assert table.biocular[i] == pytest.approx(interocular_distance(row.landmarks) ** 2, rel=1e-4)


def test_aligned_images_carry_the_face_under_the_landmarks(prepared_bp4d):
    tree, out = prepared_bp4d
    table = read_prepared(out, "BP4D_combine_1_2")
    for i in range(len(table)):
        with Image.open(table.image_path[i]) as image:
            assert image.size == (200, 200) and image.format == "JPEG"
            pixels = np.asarray(image.convert("RGB"))
        for index in MARKS:
            x, y = np.round(table.landmarks[i, index]).astype(int)
            assert nearest_mark(pixels[y, x]) == index


def test_a_finished_folder_is_left_alone(bp4d_tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = prepare_dataset(bp4d_tree.root, out, workers=0, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}

    def fail(job):
        raise AssertionError("a finished preparation must not align again")

    monkeypatch.setattr(preparation, "align_sequence", fail)
    again = prepare_dataset(bp4d_tree.root, out, dataset="BP4D", workers=0, progress=False)
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_an_interrupted_run_finishes_and_matches_an_uninterrupted_one(bp4d_tree, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    prepare_dataset(bp4d_tree.root, reference, workers=0, progress=False)

    out = tmp_path / "out"
    calls = []
    real = preparation.align_sequence

    def interrupted(job):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third sequence
        calls.append(job.sequence)
        return real(job)

    monkeypatch.setattr(preparation, "align_sequence", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(bp4d_tree.root, out, workers=0, progress=False)
    assert not (out / "prepare.json").exists()
    assert len(list((out / ".prepare" / "done").iterdir())) == 2
    assert not [p for p in out.rglob("*.tmp")]

    monkeypatch.setattr(preparation, "align_sequence", real)
    prepare_dataset(bp4d_tree.root, out, workers=0, progress=False)
    assert snapshot(out) == snapshot(reference)


def test_removed_outputs_are_redone(bp4d_tree, tmp_path):
    reference = tmp_path / "reference"
    prepare_dataset(bp4d_tree.root, reference, workers=0, progress=False)
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "prepare.json").unlink()
    images = sorted((out / "images").rglob("*.jpg"))
    images[0].unlink()
    images[-1].unlink()
    sorted((out / ".prepare" / "done").iterdir())[1].unlink()
    list_file(out, "BP4D_combine_1_3", "land").unlink()
    list_file(out, "BP4D_part2", "path").write_text("half-written\n")
    prepare_dataset(bp4d_tree.root, out, workers=0, progress=False)
    assert snapshot(out) == snapshot(reference)


def test_worker_processes_give_the_same_result(bp4d_tree, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    prepare_dataset(bp4d_tree.root, serial, workers=0, progress=False)
    prepare_dataset(bp4d_tree.root, parallel, workers=2, progress=False)
    assert snapshot(parallel) == snapshot(serial)


def test_a_folder_holding_a_different_preparation_is_refused(bp4d_tree, disfa_tree, tmp_path):
    out = tmp_path / "out"
    prepare_dataset(bp4d_tree.root, out, workers=0, progress=False)
    with pytest.raises(ValueError, match=r"already holds a different preparation.*dataset: 'BP4D' there, 'DISFA'"):
        prepare_dataset(disfa_tree.root, out, workers=0, progress=False)
    other_landmarks = tmp_path / "lm"
    shutil.copytree(bp4d_tree.root / "Landmarks", other_landmarks)
    with pytest.raises(ValueError, match="landmarks: None there"):
        prepare_dataset(bp4d_tree.root, out, landmarks=other_landmarks, workers=0, progress=False)


def test_an_unfinished_different_preparation_is_refused(disfa_tree, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def stop(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(preparation, "align_sequence", stop)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(disfa_tree.root, out, workers=0, progress=False)
    with pytest.raises(ValueError, match=r"different preparation \(identity.json\).*threshold: 2 there, 3"):
        prepare_dataset(disfa_tree.root, out, threshold=3, workers=0, progress=False)


def test_a_foreign_non_empty_folder_is_refused(bp4d_tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not empty.*notes.txt"):
        prepare_dataset(bp4d_tree.root, out, workers=0, progress=False)


def test_disfa_preparation(disfa_tree, tmp_path):
    out = tmp_path / "out"
    manifest = prepare_dataset(disfa_tree.root, out, threshold=3, workers=0, progress=False)
    assert manifest["threshold"] == 3 and manifest["dataset"] == "DISFA"
    assert list_file(out, "DISFA_part1", "path").read_text().splitlines()[0] == "DISFA/SN001/0.jpg"
    total = 0
    for p in (1, 2, 3):
        table = read_prepared(out, f"DISFA_part{p}")
        total += len(table)
        for i in range(len(table)):
            truth = disfa_tree.truth[(table.subject[i], table.sequence[i], int(table.frame[i]))]
            assert table[i].labels == {au: int(v >= 3) for au, v in truth["intensity"].items()}
    assert total == len(disfa_tree.truth)


def test_wrong_arguments(bp4d_tree, prepared_bp4d, tmp_path):
    with pytest.raises(ValueError, match="'DISFA' requested, but .* raw-bp4d"):
        prepare_dataset(bp4d_tree.root, tmp_path / "o", dataset="DISFA", progress=False)
    with pytest.raises(ValueError, match="prepared lists already"):
        prepare_dataset(prepared_bp4d[1], tmp_path / "o2", progress=False)
    with pytest.raises(ValueError, match="outside the raw dataset"):
        prepare_dataset(bp4d_tree.root, bp4d_tree.root / "prepared", progress=False)
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "o2")


def test_sequence_jobs_are_frozen_and_cross_process_boundaries(bp4d_tree, tmp_path):
    """A job is what a worker process receives: it must pickle whole and not change."""
    table = read_bp4d(bp4d_tree.root)
    rows = np.flatnonzero((table.subject == "F001") & (table.sequence == "T1"))
    job = preparation.SequenceJob(
        subject="F001", sequence="T1", frames=tuple(table.frame[rows].tolist()),
        sources=tuple(table.image_path[rows].tolist()), landmarks=table.landmarks[rows],
        outputs=tuple(str(tmp_path / "faces" / f"{f}.jpg") for f in table.frame[rows].tolist()),
        marker=str(tmp_path / "done.json"), skip_bad=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.skip_bad = True
    again = pickle.loads(pickle.dumps(job))
    assert (again.subject, again.sequence, again.frames, again.sources, again.outputs,
            again.marker, again.skip_bad) == (job.subject, job.sequence, job.frames, job.sources,
                                              job.outputs, job.marker, job.skip_bad)
    np.testing.assert_array_equal(again.landmarks, job.landmarks)
    with ProcessPoolExecutor(max_workers=2) as pool:
        marker = pool.submit(preparation.align_sequence, job).result()
    assert marker["frames"] == list(job.frames) and marker["skipped"] == []
    assert json.loads(Path(job.marker).read_text()) == marker
    assert all(Path(output).is_file() for output in job.outputs)


def test_the_preparation_reads_a_raw_layout_through_its_registry_entry(bp4d_tree, tmp_path):
    """A layout is one RawLayout entry: detection and preparation both find it there."""
    read = []

    def reader(root, landmarks=None, log=None):
        read.append(root)
        return read_bp4d(root, landmarks=landmarks, log=log)

    custom = RawLayout("raw-custom", "BP4D", Path("AUCoding") / "AU_OCC", reader)
    registered = dict(raw.RAW_LAYOUTS)
    raw.RAW_LAYOUTS.clear()  # the registry itself, as every user of it sees it
    raw.RAW_LAYOUTS["raw-custom"] = custom
    try:
        manifest = prepare_dataset(bp4d_tree.root, tmp_path / "out", workers=0, progress=False)
    finally:
        raw.RAW_LAYOUTS.clear()
        raw.RAW_LAYOUTS.update(registered)
    assert read == [bp4d_tree.root.resolve()]
    assert manifest["layout"] == "raw-custom" and manifest["dataset"] == "BP4D"
    assert manifest["threshold"] is None  # the threshold belongs to layouts that read one
    assert manifest["frames"] == len(bp4d_tree.truth)


def test_the_old_module_name_still_works_with_a_warning():
    import mgrr_pyg.data.prepare as old

    with pytest.warns(DeprecationWarning, match=r"mgrr_pyg\.data\.prepare\.prepare_dataset is "
                                                r"deprecated.*use mgrr_pyg\.data\.preparation"
                                                r"\.prepare_dataset"):
        from mgrr_pyg.data.prepare import prepare_dataset as old_prepare_dataset
    assert old_prepare_dataset is prepare_dataset
    with pytest.warns(DeprecationWarning, match=r"use mgrr_pyg\.data\.preparation\.align_sequence"):
        assert old.align_sequence is preparation.align_sequence
    with pytest.warns(DeprecationWarning, match=r"use mgrr_pyg\.data\.prepared_lists\.PREPARED_MANIFEST"):
        assert old.MANIFEST == "prepare.json"
    assert "prepare_dataset" in dir(old)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        old.nothing

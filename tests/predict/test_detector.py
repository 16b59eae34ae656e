"""The prediction pipeline: rows, columns and scales, the landmark methods, batching,
thresholds and devices, checked against computations written out independently."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mgrr_pyg.predict.columns import output_columns
from mgrr_pyg.predict.faces import CascadeFaceFinder, box_template_landmarks
from mgrr_pyg.train.checkpoint import model_from_checkpoint

from .conftest import render_face
from .test_preprocess import dataset_test_sample

AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)


def row_landmarks(row) -> np.ndarray:
    return np.array([[row[f"x_{i}"], row[f"y_{i}"]] for i in range(49)])


def reference_prediction(checkpoint, image: np.ndarray, landmarks: np.ndarray):
    """The plain eval-mode model (no BatchNorm folding) on the face prepared as the test
    set is prepared, AU regions placed from the same landmarks."""
    model = model_from_checkpoint(checkpoint)
    pixels, crop_points = dataset_test_sample(Image.fromarray(image), landmarks)
    with torch.no_grad():
        out = model(torch.from_numpy(pixels)[None],
                    region_landmarks=torch.from_numpy(np.clip(crop_points, 0, 175)).float()[None])
    return out.probs[0].numpy(), out.landmarks[0].numpy(), crop_points


@pytest.fixture(scope="module")
def detector(detector_factory):
    return detector_factory(batch_size=4)


def test_one_row_for_the_astronauts_one_face_with_every_column(detector, astronaut):
    table = detector.predict(astronaut)
    assert list(table.columns) == output_columns(AUS)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["input"], row["frame"], row["timestamp"], row["face"], row["success"]) == \
        ("array", 0, 0.0, 0, 1)
    box = CascadeFaceFinder()(astronaut)[0].box
    np.testing.assert_allclose(row[["box_x", "box_y", "box_w", "box_h"]].to_numpy(float), box)
    probs = row[[f"AU{a:02d}_p" for a in AUS]].to_numpy(float)
    assert ((probs > 0) & (probs < 1)).all()
    np.testing.assert_array_equal(row[[f"AU{a:02d}_c" for a in AUS]].to_numpy(int), probs >= 0.5)


def test_given_landmarks_are_used_as_they_are(detector, checkpoint, astronaut):
    landmarks = box_template_landmarks([175, 66, 100, 100]) + np.random.default_rng(0).normal(0, 1, (49, 2))
    table = detector.predict(astronaut, landmarks=landmarks[None])
    row = table.iloc[0]
    np.testing.assert_allclose(row_landmarks(row), landmarks)
    assert row["confidence"] == 1.0
    expected, _, _ = reference_prediction(checkpoint, astronaut, landmarks)
    np.testing.assert_allclose(row[[f"AU{a:02d}_p" for a in AUS]].to_numpy(float), expected, atol=1e-5)


def test_the_model_method_aligns_again_with_the_models_own_landmarks(detector_factory, checkpoint,
                                                                      astronaut):
    detector = detector_factory(landmarks="model", refine_steps=1)
    row = detector.predict(astronaut).iloc[0]
    box = row[["box_x", "box_y", "box_w", "box_h"]].to_numpy(float)
    template = box_template_landmarks(box)
    # pass 1, written out: the model on the template-aligned face
    _, predicted_crop, crop_points = reference_prediction(checkpoint, astronaut, template)
    # crop -> frame: invert the similarity that took the template into the crop
    a, b = np.c_[template, np.ones(49)], crop_points
    matrix, *_ = np.linalg.lstsq(a, b, rcond=None)  # [3, 2]
    linear, offset = matrix[:2].T, matrix[2]
    refined = (predicted_crop - offset) @ np.linalg.inv(linear).T
    np.testing.assert_allclose(row_landmarks(row), refined, atol=1e-3)
    assert np.abs(refined - template).max() > 1.0  # an untrained model moves them
    expected, _, _ = reference_prediction(checkpoint, astronaut, refined)
    np.testing.assert_allclose(row[[f"AU{a:02d}_p" for a in AUS]].to_numpy(float), expected, atol=1e-5)


def test_given_boxes_go_through_the_template(detector_factory, checkpoint, astronaut):
    detector = detector_factory(landmarks="template")
    boxes = np.array([[175.0, 66.0, 100.0, 100.0], [300.0, 300.0, 80.0, 80.0]])
    table = detector.predict(astronaut, boxes=boxes)
    assert table["face"].tolist() == [0, 1]
    for k in range(2):
        np.testing.assert_allclose(table.iloc[k][["box_x", "box_y", "box_w", "box_h"]].to_numpy(float), boxes[k])
        np.testing.assert_allclose(row_landmarks(table.iloc[k]), box_template_landmarks(boxes[k]))


def test_an_image_without_a_face_gives_one_success_0_row(detector):
    table = detector.predict(np.full((120, 160, 3), 200, np.uint8))
    assert len(table) == 1
    row = table.iloc[0]
    assert row["success"] == 0 and row["confidence"] == 0.0
    assert table[["face", "x_0", "box_x"] + [f"AU{a:02d}_p" for a in AUS]
                 + [f"AU{a:02d}_c" for a in AUS]].isna().all(axis=None)


def test_results_do_not_depend_on_the_batch_size(detector_factory):
    faces = [render_face(s, size=176)[0] for s in ("F002", "F003", "F004")]
    one = detector_factory(batch_size=1, landmarks="template").predict(faces)
    many = detector_factory(batch_size=8, landmarks="template").predict(faces)
    assert one["input"].tolist() == ["array[0]", "array[1]", "array[2]"]
    np.testing.assert_allclose(one.iloc[:, 5:].to_numpy(float), many.iloc[:, 5:].to_numpy(float),
                               atol=1e-5)


def test_the_occurrence_threshold_is_configurable(detector_factory, astronaut):
    table = detector_factory(threshold={12: 0.0, 1: 1.0}).predict(astronaut)
    row = table.iloc[0]
    assert row["AU12_c"] == 1 and row["AU01_c"] == 0
    assert row["AU04_c"] == int(row["AU04_p"] >= 0.5)
    with pytest.raises(ValueError, match="AUs \\[25\\] are not predicted"):
        detector_factory(threshold={25: 0.3})
    with pytest.raises(ValueError, match="threshold"):
        detector_factory(threshold=1.5)


def test_an_array_sequence_is_tracked_like_a_video(detector):
    left, _ = render_face("F002")
    frames = np.full((3, 176, 400, 3), 90, np.uint8)
    for k in (0, 2):
        frames[k, 8:168, 10 + 4 * k:170 + 4 * k] = left
    table = detector.predict(frames)
    assert table["frame"].tolist() == [0, 1, 2]
    assert table["success"].tolist() == [1, 0, 1]
    assert table["face"].tolist()[0] == 0 and table["face"].tolist()[2] == 0
    assert all(math.isnan(t) for t in table["timestamp"])


def test_devices_that_do_not_exist_are_refused(monkeypatch, checkpoint):
    from mgrr_pyg.predict import Detector
    from mgrr_pyg.predict.inference import resolve_inference_device

    assert resolve_inference_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Detector.from_checkpoint(checkpoint, device="cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_inference_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"'cuda:2' asked for, but this machine has 2 CUDA devices"):
        resolve_inference_device("cuda:2")
    with pytest.raises(ValueError, match="device"):
        resolve_inference_device("gpu")


def test_bad_arguments_are_named(detector_factory, astronaut, detector):
    with pytest.raises(ValueError, match="landmarks: expected one of"):
        detector_factory(landmarks="dlib")
    with pytest.raises(ValueError, match="faces='mediapipe'"):
        detector_factory(landmarks="finder")
    with pytest.raises(ValueError, match="every"):
        detector.predict(astronaut, every=0)
    with pytest.raises(ValueError, match=r"landmarks: expected \[F, 49 \| 66 \| 68, 2\]"):
        detector.predict(astronaut, landmarks=np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="boxes"):
        detector.predict(astronaut, boxes=[[0, 0, -1, 5]])


def test_training_after_predicting_in_the_same_process(detector_factory):
    """Graph structures are cached per batch size (in the model and process-wide); built
    first under the predictor's inference mode, they must still serve a forward that
    records autograd (inference tensors cannot be saved for backward)."""
    from mgrr_pyg.graphs.structure import _cached_structure

    from .conftest import tiny_model

    _cached_structure.cache_clear()  # the first build happens below, inside inference mode
    faces = [render_face(s, size=176)[0] for s in ("F002", "F003")]
    table = detector_factory(batch_size=2, landmarks="template").predict(faces)
    assert table["success"].tolist() == [1, 1]  # one model call on a batch of 2

    model = tiny_model(seed=3).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(torch.rand(2, 3, 176, 176) * 2 - 1)  # a training step on a batch of 2
    (out.probs.mean() + out.landmarks.mean() / 100).backward()
    optimiser.step()
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert changed > 0.5 * len(before)


def test_the_precision_follows_the_device_unless_one_is_asked_for(monkeypatch, checkpoint):
    """``Detector.from_checkpoint`` takes the fast path's per-device precision by default
    (on a device with native bf16: bf16; elsewhere fp32), as ``prepare_for_inference``
    does; ``precision=`` / the older ``bf16=`` force one. The device with native bf16 is
    played here by a CPU that says it has it (the same branch as a CUDA device)."""
    import mgrr_pyg.model.inference as fast_path
    from mgrr_pyg.predict import Detector

    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: False)
    plain = Detector.from_checkpoint(checkpoint)
    assert plain.backend.precision == "fp32" and plain.metadata["precision"] == "fp32"
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: True)
    native = Detector.from_checkpoint(checkpoint)
    assert native.backend.precision == "bf16" and native.metadata["precision"] == "bf16"
    assert "precision=bf16" in repr(native)
    assert Detector.from_checkpoint(checkpoint, precision="fp32").backend.precision == "fp32"
    assert Detector.from_checkpoint(checkpoint, bf16=False).backend.precision == "fp32"
    monkeypatch.setattr(fast_path, "cpu_has_fast_bf16", lambda: False)
    assert Detector.from_checkpoint(checkpoint, bf16=True).backend.precision == "bf16"


@pytest.mark.parametrize("options, message", [
    ({"precision": "fp16"}, r"precision: expected one of \('auto', 'fp32', 'bf16'\), found 'fp16'"),
    ({"precision": "fp32", "bf16": True}, "bf16=True and precision='fp32' disagree"),
    ({"bf16": "yes"}, "bf16: expected True, False or None, found 'yes'"),
    ({"precision": "bf16", "backend": "torchscript"}, "bf16 runs on the eager backend only; the torchscript"),
])
def test_a_precision_that_cannot_run_is_refused_before_anything_loads(checkpoint, options, message):
    from mgrr_pyg.predict import Detector

    with pytest.raises(ValueError, match=message):
        Detector.from_checkpoint(checkpoint, **options)

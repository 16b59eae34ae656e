"""TorchScript and ONNX exports of the inference model match eager mode, and the
predictor runs them (``--backend torchscript | onnx``)."""
from __future__ import annotations

import numpy as np
import pytest

from mgrr_pyg.predict.export import (LANDMARK_TOLERANCE, PROB_TOLERANCE, check_export,
                                     exported_format, load_exported)
from mgrr_pyg.predict.inference import EagerBackend, example_inputs
from mgrr_pyg.predict.weights import file_sha256
from mgrr_pyg.train.checkpoint import model_from_checkpoint

BATCH = 2


@pytest.fixture(scope="module")
def model(checkpoint):
    return model_from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """Both formats written by ``mgrr-export``."""
    from mgrr_pyg.predict.cli import export_main

    folder = tmp_path_factory.mktemp("export")
    paths = {"torchscript": folder / "model.ts", "onnx": folder / "model.onnx"}
    for kind, path in paths.items():
        assert export_main(["--checkpoint", str(checkpoint), "--format", kind, "-o", str(path),
                            "--batch-size", str(BATCH)]) == 0
    return paths


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_exports_match_eager_mode_within_the_stated_tolerance(model, exported, kind, checkpoint):
    path = exported[kind]
    assert exported_format(path) == kind
    backend, meta = load_exported(path)
    assert meta["batch_size"] == BATCH and meta["aus"] == list(model.config.aus)
    assert meta["checkpoint_sha256"] == file_sha256(checkpoint)
    differences = check_export(model, path, batches=2)
    assert differences["probs"] <= PROB_TOLERANCE
    assert differences["landmarks"] <= LANDMARK_TOLERANCE
    # and the outputs are not trivially equal to any input: different faces differ
    images, landmarks = (t.numpy() for t in example_inputs(BATCH, seed=5))
    probs, _ = backend(images, landmarks)
    assert np.abs(probs[0] - probs[1]).max() > 1e-4


def test_the_eager_backend_is_the_fused_model_and_leaves_the_original_alone(model):
    import torch

    before = {k: v.clone() for k, v in model.state_dict().items()}
    eager = EagerBackend(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in eager.model.alignment.modules())
    images, landmarks = example_inputs(3, seed=2)
    with torch.no_grad():
        reference = model(images, region_landmarks=landmarks)
    probs, points = eager(images.numpy(), landmarks.numpy())
    np.testing.assert_allclose(probs, reference.probs.numpy(), atol=PROB_TOLERANCE)
    np.testing.assert_allclose(points, reference.landmarks.numpy(), atol=LANDMARK_TOLERANCE)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_the_predictor_runs_an_exported_model_like_eager(detector_factory, exported, astronaut,
                                                         kind):
    from mgrr_pyg.predict import Detector

    faces = [astronaut, astronaut[::-1, ::-1].copy(), astronaut[:, ::-1].copy()]  # pads to 4
    eager = detector_factory(landmarks="template").predict(faces)
    other = Detector.from_checkpoint(exported[kind], backend=kind, landmarks="template").predict(faces)
    assert other.shape == eager.shape
    np.testing.assert_allclose(other.iloc[:, 6:].to_numpy(float), eager.iloc[:, 6:].to_numpy(float),
                               atol=LANDMARK_TOLERANCE)


def test_mgrr_predict_backend_onnx_runs_the_exported_file(exported, tmp_path, astronaut, capsys):
    from PIL import Image

    from mgrr_pyg.predict.cli import main

    Image.fromarray(astronaut).save(tmp_path / "a.png")
    out = tmp_path / "out.csv"
    assert main([str(tmp_path / "a.png"), "--checkpoint", str(exported["onnx"]), "-o", str(out),
                 "--backend", "onnx", "--landmarks", "template"]) == 0
    assert "backend=onnx" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 2


def test_a_checkpoint_is_exported_in_memory_for_another_backend(checkpoint, detector_factory,
                                                                astronaut):
    from mgrr_pyg.predict import Detector

    traced = Detector.from_checkpoint(checkpoint, backend="torchscript", batch_size=1,
                                      landmarks="template")
    assert traced.backend.name == "torchscript" and traced.batch_size == 1
    eager = detector_factory(landmarks="template").predict(astronaut)
    np.testing.assert_allclose(traced.predict(astronaut).iloc[:, 6:].to_numpy(float),
                               eager.iloc[:, 6:].to_numpy(float), atol=LANDMARK_TOLERANCE)


def test_an_exported_file_refuses_another_backend(exported):
    from mgrr_pyg.predict import Detector

    with pytest.raises(ValueError, match="--backend onnx"):
        Detector.from_checkpoint(exported["onnx"], backend="torchscript")

"""Shared fixtures of the prediction tests: a tiny checkpoint (never downloaded), real
photographs bundled with the dependencies, synthetic faces and a synthetic video."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

HERE = Path(__file__).parent
#: Synthetic identities the LBP cascade finds at 160 px (several others it misses).
FACE_SUBJECTS = ("F002", "F003")


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded: small ops on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_model(seed: int = 0):
    """The ``tiny`` preset with BatchNorm statistics and a prior as training leaves them
    (random, so that folding BatchNorm and the learned adjacencies are not trivial)."""
    from mgrr_pyg.model import create_model

    torch.manual_seed(seed)
    model = create_model("tiny")
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    n = model.config.num_aus
    prior = torch.rand(n, n, generator=generator)
    prior = (prior + prior.T) / 2
    prior.fill_diagonal_(1.0)
    model.set_prior(prior)
    return model.eval()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint, written as the trainer writes one (``save_checkpoint`` writes
    its digest beside it)."""
    from mgrr_pyg.train.checkpoint import build_metadata, save_checkpoint

    model = tiny_model()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.pt", model=model, epoch=1,
                           model_name="tiny", metadata=build_metadata(model.config.aus, "BP4D", 1))


@pytest.fixture(scope="session")
def detector_factory(checkpoint):
    from mgrr_pyg.predict import Detector

    def make(**options):
        return Detector.from_checkpoint(checkpoint, **options)

    return make


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def hand_points() -> dict:
    """Hand-placed points on the real photographs (see the file's "about")."""
    return json.loads((HERE / "real_faces.json").read_text())["faces"]


def render_face(subject: str, size: int = 160, intensities=None, scale: float = 0.62):
    """``(image [S, S, 3] uint8, landmarks [49, 2])`` of one frontal synthetic face."""
    from mgrr_pyg.data.synthetic.identity import make_identity
    from mgrr_pyg.data.synthetic.render import Capture, FaceRenderer

    renderer = FaceRenderer(make_identity(0, "BP4D", subject), size)
    image, points = renderer.render(intensities or {}, Capture(scale=scale), None)
    return np.asarray(image), points


#: Frame rate of the synthetic test video.
VIDEO_FPS = 10


def video_frames(count: int = 12, blank=(5,), late_right: int = 0):
    """Frames 400x176 with two synthetic faces: the left one moves 3 px per frame to the
    right, the right one stays (from frame ``late_right``); frames in ``blank`` have no
    face. Yields ``[176, 400, 3]`` uint8."""
    left, _ = render_face(FACE_SUBJECTS[0])
    right, _ = render_face(FACE_SUBJECTS[1], intensities={12: 4.0, 6: 3.0})
    for index in range(count):
        canvas = np.full((176, 400, 3), 90, np.uint8)
        if index not in blank:
            x = 10 + 3 * index
            canvas[8:168, x:x + 160] = left
            if index >= late_right:
                canvas[8:168, 232:392] = right
        yield canvas


@pytest.fixture(scope="session")
def two_face_video(tmp_path_factory) -> Path:
    from mgrr_pyg.predict.sources import write_video

    return write_video(tmp_path_factory.mktemp("video") / "two_faces.mp4", video_frames(),
                       fps=VIDEO_FPS)

"""Fingerprints of what the synthetic generator writes for a preset, to show that adding a
preset leaves the existing ones unchanged (their cached data and the committed results
were made with them).

- ``config``: SHA-1 of the preset's full generator configuration (``SynthConfig.to_dict``,
  what names the training cache folder and the manifest), exact;
- ``labels``: SHA-1 of the integer labels of every sequence of the preset, exact;
- ``landmarks``: SHA-1 of the landmark CSV text (3 decimals, as written) of five
  rendered frames, exact;
- ``pixels``: 6 random projections of those frames' pixels each (``[-1, 1]`` scaled,
  divided by sqrt of the pixel count), compared with a tolerance: a change in the last bit
  of a float in the drawing (another CPU's SIMD maths) may move one pixel by one grey
  level, i.e. a projection by ~1e-5, while a changed cue moves hundreds of pixels by tens
  of levels (~1e-2 and more).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from mgrr_pyg.data.synthetic import SynthConfig, sequence_plan
from mgrr_pyg.data.synthetic.identity import make_identity
from mgrr_pyg.data.synthetic.config import rng_for
from mgrr_pyg.data.synthetic.render import FaceRenderer, SequenceCapture
from mgrr_pyg.data.synthetic.writer import landmark_csv, rendered_frame
from mgrr_pyg.utils.records import plain

PROJECTIONS = 6


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def rendered_frames(config: SynthConfig, subject: str, sequence: str, indices) -> tuple:
    """``(images [k, H, W, 3] uint8, landmarks [k, 49, 2], frame numbers)`` as
    :func:`~mgrr_pyg.data.synthetic.writer.render_sequence` draws them (before encoding)."""
    plan = sequence_plan(config, subject, sequence)
    renderer = FaceRenderer(make_identity(config.seed, config.dataset, subject), config.image_size)
    camera = SequenceCapture(rng_for(config.seed, config.dataset, subject, sequence, purpose="capture"),
                             config.image_size)
    images, points = [], []
    for k in indices:
        image, pts, _ = rendered_frame(config, plan, k, renderer, camera)
        images.append(np.asarray(image))
        points.append(pts)
    return np.stack(images), np.stack(points), plan.frames[list(indices)]


def fingerprint(preset: str, dataset: str) -> dict:
    config = SynthConfig.from_preset(preset, dataset)
    config_text = json.dumps(plain(config.to_dict()), sort_keys=True)
    labels = hashlib.sha1()
    for subject in config.subjects:
        for sequence in config.sequences:
            labels.update(np.ascontiguousarray(sequence_plan(config, subject, sequence).labels,
                                               dtype=np.int64).tobytes())
    # The first, middle and last frame of the last sequence, and the two frames of the
    # first sequence with the most AU activity (so that changed AU cues show).
    subject, sequence = config.subjects[-1], config.sequences[-1]
    count = int(config.frames_per_task)
    images, points, frames = rendered_frames(config, subject, sequence, (0, count // 2, count - 1))
    first = sequence_plan(config, config.subjects[0], config.sequences[0])
    busiest = sorted(np.argsort(-first.intensity.sum(1), kind="stable")[:2].tolist())
    more = rendered_frames(config, config.subjects[0], config.sequences[0], busiest)
    images, points, frames = (np.concatenate([a, b]) for a, b in zip((images, points, frames), more))
    weights = np.random.default_rng(12345).standard_normal((PROJECTIONS,) + images.shape[1:])
    scaled = images.astype(np.float64) / 127.5 - 1.0
    projections = np.einsum("khwc,phwc->kp", scaled, weights) / np.sqrt(scaled[0].size)
    return {
        "config": _sha(config_text.encode()),
        "labels": labels.hexdigest()[:16],
        "landmarks": _sha(landmark_csv(frames.tolist(), points).encode()),
        "pixels": np.round(projections, 4).tolist(),
    }

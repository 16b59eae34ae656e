"""AU detection on people's own photos and videos with a trained checkpoint.

Pipeline per frame: faces (box and, from some finders, landmarks) -> the 49 landmarks
the face is aligned with -> alignment to the 200x200 template and the centre 176x176
crop (:mod:`mgrr_pyg.predict.preprocess`, the data preparation's code) -> the model, in
batches of faces across frames -> one row per face (or one ``success`` = 0 row per frame
without a face), :mod:`mgrr_pyg.predict.columns`.

Landmark methods (``landmarks=``):

- ``"template"`` (the default with the cascade): **the box template**, the mean 49-point
  shape placed into the face box by a fixed similarity
  (:func:`~mgrr_pyg.predict.faces.box_template_landmarks`, fitted to hand-placed points on
  two real photographs). It knows only the box: expression, head roll and yaw are
  invisible to it. On the two real photographs its eye centres and mouth corners land
  5 % of the inter-ocular distance from the hand-placed points on average (4-10 % on a
  face it was not fitted to).
- ``"model"``: **the checkpoint's own alignment branch, started from the box template**
  (with a finder that gives landmarks, from those): the model predicts the 49 landmarks
  on the template-aligned face and the face is aligned again with them (``refine_steps``
  times) before the AU pass. It is as good as the checkpoint's alignment branch on the
  faces it is shown. A checkpoint trained on the synthetic set has never seen a real
  face: after two of the default run's eight epochs it brought synthetic faces' eye
  centres and mouth corners closer (13 -> 10 % of the inter-ocular distance) but moved
  the two real photographs' from 5 % to 9-13 % (13-19 % with two steps). Use it with a
  checkpoint trained on real faces.
- ``"finder"``: the face finder's own landmarks (``faces="mediapipe"``: the face mesh
  mapped to the 49 points); the default with ``faces="mediapipe"``.

Landmarks given by the caller are used as they are; boxes given by the caller go
through the landmark method like a finder's boxes. Every method places the AU regions
from the landmarks the face was aligned with, and reports them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from mgrr_pyg.data.align import transform_points
from mgrr_pyg.facs import CROP_SIZE

from .columns import empty_row, face_row, table, thresholds_for
from .faces import Face, FaceTracker, box_template_landmarks, landmark_box, make_face_finder
from .preprocess import FacePatch, invert, model_input
from .sources import Frame, SkipReport, iter_frames

LANDMARK_METHODS = ("model", "template", "finder")
#: Frames held before their rows are emitted even if the batch of faces is not full.
MAX_PENDING_FRAMES = 256


def _checked_precision(precision, bf16, backend: str) -> str:
    """``precision`` after the older ``bf16`` switch, checked against the backend."""
    from mgrr_pyg.model.inference import PRECISIONS

    if bf16 is not None:
        if not isinstance(bf16, bool):
            raise ValueError(f"bf16: expected True, False or None, found {bf16!r}")
        wanted = "bf16" if bf16 else "fp32"
        if precision not in ("auto", wanted):
            raise ValueError(f"bf16={bf16} and precision={precision!r} disagree; give one")
        precision = wanted
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, found {precision!r}")
    if precision == "bf16" and backend != "eager":
        raise ValueError(f"precision: bf16 runs on the eager backend only; the {backend} "
                         f"backend runs the exported fp32 graph (use precision 'fp32' or "
                         f"'auto', or --backend eager)")
    return precision


@dataclass
class _FaceJob:
    face: Face
    index: int
    landmarks: np.ndarray  # [49, 2] frame pixels the input was aligned with
    pixels: np.ndarray  # [3, 176, 176]
    to_crop: np.ndarray  # [2, 3]
    patch: Optional[FacePatch] = None
    probs: Optional[np.ndarray] = None


@dataclass
class _FrameRecord:
    frame: Frame
    jobs: list = field(default_factory=list)


class Detector:
    """Detect AUs in images, folders, videos and arrays with a trained model.

    Build it with :meth:`from_checkpoint`; :meth:`predict` returns a pandas DataFrame
    (columns: :func:`mgrr_pyg.predict.columns.output_columns`).

    Args:
        backend: An inference backend (:mod:`mgrr_pyg.predict.inference`).
        aus (sequence of int): The AU numbers the model predicts, in output order.
        faces (str): Face finder, ``"cascade"`` (default) or ``"mediapipe"``.
        landmarks (str, optional): Landmark method (see the module docstring); default
            ``"finder"`` with mediapipe, else ``"template"``.
        threshold (float or mapping): Occurrence threshold for ``AUxx_c``, one for every
            AU or ``{AU: value}``. (default: :obj:`0.5`)
        batch_size (int): Faces per model call. (default: :obj:`32`)
        refine_steps (int): Re-alignments of the ``"model"`` method. (default: :obj:`1`)
        face_options (dict, optional): Passed to the face finder.
    """

    def __init__(self, backend, aus: Sequence[int], faces: str = "cascade",
                 landmarks: Optional[str] = None, threshold: float | Mapping[int, float] = 0.5,
                 batch_size: int = 32, refine_steps: int = 1, face_options: Optional[dict] = None,
                 metadata: Optional[dict] = None):
        self.backend = backend
        self.aus = tuple(int(a) for a in aus)
        self.landmark_method = landmarks or ("finder" if faces == "mediapipe" else "template")
        if self.landmark_method not in LANDMARK_METHODS:
            raise ValueError(f"landmarks: expected one of {LANDMARK_METHODS}, found "
                             f"{self.landmark_method!r}")
        if self.landmark_method == "finder" and faces != "mediapipe":
            raise ValueError("landmarks='finder' needs a face finder with landmarks "
                             "(faces='mediapipe'); the cascade gives boxes only")
        self.faces = faces
        self.face_finder = make_face_finder(faces, **(face_options or {}))
        self.thresholds = thresholds_for(self.aus, threshold)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, found {batch_size!r}")
        fixed = getattr(backend, "batch_size", None)
        self.batch_size = int(fixed or batch_size)
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
            raise ValueError(f"refine_steps: expected an int >= 0, found {refine_steps!r}")
        self.refine_steps = refine_steps
        self.metadata = dict(metadata or {})
        self.report = SkipReport()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", backend: str = "eager",
                        batch_size: int = 32, precision: str = "auto",
                        bf16: Optional[bool] = None,
                        channels_last: bool = True, require_digest: bool = False,
                        **options) -> "Detector":
        """A detector from a checkpoint written by ``mgrr-train`` (its SHA-256 checked
        against ``<path>.sha256``), or from a file written by ``mgrr-export``.

        Args:
            path: The checkpoint (``.pt``), or an exported ``.onnx`` / TorchScript file.
            device (str): ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (checked to exist).
            backend (str): ``"eager"``, ``"torchscript"`` or ``"onnx"``; for a checkpoint
                the last two export it in memory first (at ``batch_size``).
            batch_size (int): Faces per model call (an exported file has its own).
            precision (str): ``"auto"`` (default): the fast path's precision for the
                device (:func:`~mgrr_pyg.model.inference.default_precision`: bf16 autocast
                on CUDA and on CPUs with native bf16, fp32 elsewhere); ``"fp32"`` or
                ``"bf16"`` force one. bf16 runs on the eager backend only; the exported
                backends run fp32 (``"auto"`` gives fp32 there).
            bf16 (bool or None): the older switch: True is ``precision="bf16"``, False
                ``precision="fp32"``; None (default) leaves ``precision`` as given.
            channels_last (bool): NHWC (eager backend), see
                :func:`~mgrr_pyg.model.inference.prepare_for_inference`.
            require_digest (bool): Refuse a checkpoint without a digest file.
            **options: :class:`Detector` arguments (``faces``, ``landmarks``,
                ``threshold``, ``refine_steps``, ``face_options``).
        """
        from .export import exported_format, load_exported
        from .inference import BACKENDS, EagerBackend, OnnxBackend, TorchScriptBackend
        from .weights import HOW_TO_TRAIN, verify_digest

        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, found {backend!r}")
        precision = _checked_precision(precision, bf16, backend)
        path = Path(path)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"checkpoint {path} {what}; {HOW_TO_TRAIN}")
        kind = exported_format(path)
        if kind is not None:
            if backend not in ("eager", kind):
                raise ValueError(f"backend: {path} is an exported {kind} model; run it with "
                                 f"--backend {kind} (or give the training checkpoint)")
            runner, meta = load_exported(path, device)
            return cls(runner, meta["aus"], batch_size=runner.batch_size, metadata=meta, **options)

        from mgrr_pyg.train.checkpoint import load_checkpoint, model_from_checkpoint

        sha256 = verify_digest(path, required=require_digest)
        state = load_checkpoint(path, hint=HOW_TO_TRAIN)
        meta = {"checkpoint": str(path), "checkpoint_sha256": sha256,
                **(state.get("metadata") or {})}
        del state  # the optimiser state may be large; the model is rebuilt from the file
        model = model_from_checkpoint(path)
        if backend == "eager":
            runner = EagerBackend(model, device, channels_last=channels_last, precision=precision)
        elif backend == "torchscript":
            from .export import export_torchscript

            module, _ = export_torchscript(model, None, batch_size, sha256)
            runner = TorchScriptBackend(module, batch_size, device)
        else:
            from .export import export_onnx

            data, _ = export_onnx(model, None, batch_size, sha256)
            runner = OnnxBackend(data, batch_size, device)
        meta["precision"] = getattr(runner, "precision", "fp32")
        return cls(runner, model.config.aus, batch_size=batch_size, metadata=meta, **options)

    # -- prediction ---------------------------------------------------------------------
    def predict(self, inputs: Any, every: int = 1, boxes: Any = None, landmarks: Any = None,
                skip_bad: bool = False, recursive: bool = False):
        """One DataFrame of every row (see :meth:`iter_predict` for the arguments)."""
        import pandas as pd

        chunks = list(self.iter_predict(inputs, every=every, boxes=boxes, landmarks=landmarks,
                                        skip_bad=skip_bad, recursive=recursive))
        return pd.concat(chunks, ignore_index=True) if chunks else table([], self.aus)

    def iter_predict(self, inputs: Any, every: int = 1, boxes: Any = None, landmarks: Any = None,
                     skip_bad: bool = False, recursive: bool = False) -> Iterator:
        """DataFrames of consecutive rows, one per model batch (memory stays flat for
        any video length; the CLI writes each as it comes).

        Args:
            inputs: Image / video files, folders, NumPy arrays (``[H, W, C]`` an image,
                ``[N, H, W, C]`` a sequence), PIL images, or a list of them.
            every (int): Every ``every``-th frame of videos and sequences.
            boxes, landmarks (optional): Faces given per input (single images):
                ``[F, 4]`` boxes ``x, y, w, h`` or ``[F, 49 | 66 | 68, 2]`` landmarks.
            skip_bad (bool): Report unreadable inputs on :attr:`report` and go on
                (folder entries always are).
            recursive (bool): Descend into subfolders.
        """
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an int >= 1, found {every!r}")
        self.report = SkipReport()
        trackers: dict[str, FaceTracker] = {}
        pending: list[_FrameRecord] = []
        faces_pending = 0
        for frame in iter_frames(inputs, every=every, skip_bad=skip_bad, report=self.report,
                                 recursive=recursive, boxes=boxes, landmarks=landmarks):
            record = self._prepare(frame, trackers)
            pending.append(record)
            faces_pending += len(record.jobs)
            frame.image = None  # the pixels are no longer needed: flat memory
            # A long stretch without faces is written out too (rows stay in order).
            if faces_pending >= self.batch_size or len(pending) >= MAX_PENDING_FRAMES:
                yield self._flush(pending)
                pending, faces_pending = [], 0
        if pending:
            yield self._flush(pending)

    # -- steps --------------------------------------------------------------------------
    def _faces(self, frame: Frame) -> list[Face]:
        if frame.landmarks is not None:
            return [Face(box=landmark_box(lm), confidence=1.0, landmarks=lm, finder="given")
                    for lm in frame.landmarks]
        if frame.boxes is not None:
            return [Face(box=np.asarray(b, dtype=np.float64), confidence=1.0, finder="given")
                    for b in frame.boxes]
        return self.face_finder(frame.image)

    def _start_landmarks(self, face: Face) -> tuple[np.ndarray, bool]:
        """``(landmarks to align with first, refine them with the model?)``."""
        if face.finder == "given" and face.landmarks is not None:
            return face.landmarks, False  # the caller's landmarks are used as they are
        if self.landmark_method == "template" or face.landmarks is None:
            return box_template_landmarks(face.box), self.landmark_method == "model"
        return face.landmarks, self.landmark_method == "model"

    def _prepare(self, frame: Frame, trackers: dict) -> _FrameRecord:
        record = _FrameRecord(frame)
        faces = self._faces(frame)
        # One tracker per video / sequence; a single image numbers its faces left to right.
        tracker = (trackers.setdefault(frame.sequence, FaceTracker()) if frame.sequence is not None
                   else FaceTracker())
        indices = tracker.assign([f.box for f in faces])
        image = Image.fromarray(frame.image)
        for face, index in sorted(zip(faces, indices), key=lambda item: item[1]):
            start, refine = self._start_landmarks(face)
            if refine and self.refine_steps:
                patch = FacePatch(image, start)
                pixels, to_crop = patch.model_input(start)
            else:
                patch = None
                pixels, to_crop = model_input(image, start)
            record.jobs.append(_FaceJob(face, index, start, pixels, to_crop, patch))
        return record

    def _run(self, jobs: list[_FaceJob]) -> np.ndarray:
        """One backend pass over ``jobs`` (padded to a fixed batch size if the backend
        has one); returns the predicted landmarks ``[J, 49, 2]`` (crop pixels) and sets
        each job's probabilities."""
        images = np.stack([j.pixels for j in jobs])
        region = np.stack([transform_points(j.landmarks, j.to_crop) for j in jobs])
        # AU centres are clamped into the crop by the model anyway; landmarks far outside
        # (a bad box) are brought to its edge rather than refused.
        region = np.clip(region, 0.0, CROP_SIZE - 1.0).astype(np.float32)
        fixed = getattr(self.backend, "batch_size", None)
        probs_all, landmarks_all = [], []
        step = fixed or len(jobs)
        for start in range(0, len(jobs), step):
            x, lm = images[start:start + step], region[start:start + step]
            count = len(x)
            if fixed and count < fixed:  # pad with copies of the last face
                x = np.concatenate([x, np.repeat(x[-1:], fixed - count, 0)])
                lm = np.concatenate([lm, np.repeat(lm[-1:], fixed - count, 0)])
            probs, landmarks = self.backend(np.ascontiguousarray(x), np.ascontiguousarray(lm))
            probs_all.append(probs[:count])
            landmarks_all.append(landmarks[:count])
        probs, landmarks = np.concatenate(probs_all), np.concatenate(landmarks_all)
        for job, p in zip(jobs, probs):
            job.probs = p
        return landmarks

    def _flush(self, records: list[_FrameRecord]):
        jobs = [job for record in records for job in record.jobs]
        if jobs:
            refine = [j for j in jobs if j.patch is not None]
            for _ in range(self.refine_steps if refine else 0):
                predicted = self._run(refine)  # [R, 49, 2] crop pixels
                for job, crop_points in zip(refine, predicted):
                    job.landmarks = transform_points(crop_points, invert(job.to_crop))
                    job.pixels, job.to_crop = job.patch.model_input(job.landmarks)
            self._run(jobs)
        rows = []
        for record in records:
            frame = record.frame
            if not record.jobs:
                rows.append(empty_row(frame.input, frame.frame, frame.timestamp))
            for job in record.jobs:
                rows.append(face_row(frame.input, frame.frame, frame.timestamp, job.index,
                                     job.face.confidence, job.face.box, job.probs, self.thresholds,
                                     job.landmarks, self.aus))
                job.patch = job.pixels = None
        return table(rows, self.aus)

    def __repr__(self) -> str:
        precision = getattr(self.backend, "precision", "fp32")
        return (f"{type(self).__name__}(AUs {list(self.aus)}, backend={self.backend.name}, "
                f"precision={precision}, faces={self.faces!r}, landmarks={self.landmark_method!r}, "
                f"batch_size={self.batch_size})")


__all__ = ["Detector", "LANDMARK_METHODS"]

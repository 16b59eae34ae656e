"""Finding faces in a frame and keeping them apart across frames, with nothing downloaded.

- :class:`CascadeFaceFinder` (the default): scikit-image's bundled LBP frontal-face
  cascade (``skimage.data.lbp_frontal_face_cascade_filename()``, OpenCV's
  ``lbpcascade_frontalface``) on a frame scaled to at most :attr:`max_side` pixels. The
  raw windows that fire are grouped here (so each box has a vote count); a box's
  ``confidence`` is ``votes / (votes + 5)``, a monotone score of how many windows at
  nearby positions and scales agreed (0.5 at 5 votes), not a calibrated probability.
  Frontal faces only (about +-30 degrees of yaw); it also fires on some face-like
  texture, hence the vote threshold (5).
- :class:`MediaPipeFaceFinder` (the ``mgrr_pyg[mediapipe]`` extra): MediaPipe's face
  detector (its score is the confidence) and its 468-point face mesh, mapped to the
  49-point layout by :data:`MESH_TO_49`.
- :func:`box_template_landmarks`: the mean 49-point face shape placed into a box by a
  fixed similarity (:data:`BOX_TEMPLATE`, fitted to two real photographs). It only
  knows the box, so it is as good as the box: its eye centres and mouth corners land
  4-10 % of the inter-ocular distance from hand-placed points on a face it was not
  fitted to, but expression, head roll and yaw are invisible to it.
- :class:`FaceTracker`: a stable face index across the frames of a video, by box
  overlap (IoU) with each face's last box.

Boxes are ``[x, y, w, h]`` in pixels of the frame (0-based, pixel centres at integers):
``(x, y)`` is the top-left pixel and the box covers pixels ``x .. x + w - 1`` across and
``y .. y + h - 1`` down.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
from PIL import Image

from mgrr_pyg.facs import MEAN_SHAPE, NUM_LANDMARKS, alignment_points

FACE_FINDERS = ("cascade", "mediapipe")

#: The template's reference points: the five alignment points of :data:`MEAN_SHAPE`,
#: centred. ``BOX_TEMPLATE`` places them at ``box_xy + size * (offset + scale * q)``.
_MEAN_ALIGNMENT = alignment_points(MEAN_SHAPE)  # [5, 2]
_MEAN_CENTRE = _MEAN_ALIGNMENT.mean(0)

#: ``(scale, offset_x, offset_y)`` of the box template, in box sizes: the least-squares
#: fit (:func:`calibrate_box_template`) to the eye centres and mouth corners placed by
#: hand on the two real photographs that ship with the dependencies (scikit-image's
#: astronaut, matplotlib's Grace Hopper; ``tests/predict/real_faces.json``) in their
#: cascade boxes. Fit error 5.5 % of the inter-ocular distance (RMS) on both; fitted on
#: one and tested on the other, 4-10 % per point. Two faces is little evidence: expect
#: more on faces boxed differently (glasses, beards, other ages). Synthetic faces were
#: not used: the cascade boxes them about 30 % larger relative to the eyes.
BOX_TEMPLATE = (0.006056, 0.48724, 0.56421)


@dataclass
class Face:
    """One face in one frame.

    Attributes:
        box: ``[4]`` ``x, y, w, h`` in frame pixels.
        confidence: The finder's score in [0, 1] (1 for a box the caller gave).
        landmarks: ``[49, 2]`` frame pixels, when the finder (or the caller) has them.
        finder: ``"cascade"``, ``"mediapipe"`` or ``"given"``.
    """

    box: np.ndarray
    confidence: float = 1.0
    landmarks: Optional[np.ndarray] = None
    finder: str = "given"


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of ``[..., 4]`` ``x, y, w, h`` boxes (broadcast)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x0 = np.maximum(a[..., 0], b[..., 0])
    y0 = np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """``[x, y, w, h]`` bounding box of ``[K, 2]`` points."""
    low, high = landmarks.min(0), landmarks.max(0)
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]], dtype=np.float64)


def box_template_landmarks(box: Sequence[float], template: Sequence[float] = BOX_TEMPLATE) -> np.ndarray:
    """``[49, 2]``: the mean face shape placed into ``box`` (``x, y, w, h``) by the
    box template ``(scale, offset_x, offset_y)`` (see :data:`BOX_TEMPLATE`)."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ValueError(f"box: expected a positive width and height, found {list(box)}")
    scale, ox, oy = template
    size = (w * h) ** 0.5
    return np.array([x, y]) + size * (np.array([ox, oy]) + scale * (MEAN_SHAPE - _MEAN_CENTRE))


def _group_windows(windows: np.ndarray, min_votes: int, same: float = 0.4):
    """Group raw ``[N, 4]`` cascade windows: two windows are one face when their IoU is
    at least ``same``; returns ``[(mean box, votes)]`` for groups of ``min_votes`` or
    more, weaker groups overlapping a stronger one removed."""
    n = len(windows)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    overlaps = iou(windows[:, None, :], windows[None, :, :])  # [N, N]
    for i, j in zip(*np.nonzero(np.triu(overlaps >= same, k=1))):
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    found = sorted(((windows[m].mean(0), len(m)) for m in groups.values() if len(m) >= min_votes),
                   key=lambda item: -item[1])
    kept: list = []
    for box, votes in found:
        # A weaker group inside or across a stronger one is the same face at another scale.
        if all(iou(box, other) < 0.2 and _inside(box, other) < 0.6 for other, _ in kept):
            kept.append((box, votes))
    return kept


def _inside(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller box's area that lies inside the other."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / max(min(a[2] * a[3], b[2] * b[3]), 1e-9)


class CascadeFaceFinder:
    """Frontal faces by scikit-image's bundled LBP cascade (nothing downloaded).

    Args:
        max_side (int): The frame is scaled down (area averaging) so that its longer
            side is at most this many pixels before the search; the cascade's smallest
            window is 24 pixels there, so faces under ``24 / max_side`` of the frame's
            longer side (1/16 by default: 120 px in a 1920-px frame) are missed: raise
            it for small faces (slower). (default: :obj:`384`)
        min_face (float): Smallest face searched, as a fraction of the shorter side.
            (default: :obj:`0.1`)
        scale_factor (float): Window growth per scale step. (default: :obj:`1.15`)
        min_votes (int): Raw windows a face needs. Faces gather 10-14 on the two real
            photographs and 20-40 on the synthetic test faces; false boxes 1-3 (a JPEG
            re-encoding of Grace Hopper gave one with 3 on her uniform), hence 5.
            (default: :obj:`5`)
        max_faces (int, optional): Keep the most confident faces only.
    """

    name = "cascade"

    def __init__(self, max_side: int = 384, min_face: float = 0.1, scale_factor: float = 1.15,
                 min_votes: int = 5, max_faces: Optional[int] = None):
        from skimage import data, feature

        if not 0 < min_face <= 1:
            raise ValueError(f"min_face: expected a fraction of the image side in (0, 1], "
                             f"found {min_face!r}")
        self.cascade = feature.Cascade(data.lbp_frontal_face_cascade_filename())
        self.max_side, self.min_face = int(max_side), float(min_face)
        self.scale_factor, self.min_votes, self.max_faces = float(scale_factor), int(min_votes), max_faces

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Faces of one ``[H, W, 3]`` uint8 RGB frame, most confident first."""
        height, width = image.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        grey = Image.fromarray(image).convert("L")
        if factor < 1.0:
            grey = grey.resize((max(1, round(width * factor)), max(1, round(height * factor))),
                               Image.Resampling.BOX)
        pixels = np.asarray(grey)
        smallest = max(24, int(self.min_face * min(pixels.shape)))
        largest = min(pixels.shape)
        if smallest > largest:
            return []
        # No merging inside scikit-image (threshold > 1): the raw windows are grouped
        # below, which gives each face its vote count.
        raw = self.cascade.detect_multi_scale(
            img=pixels, scale_factor=self.scale_factor, step_ratio=1.0,
            min_size=(smallest, smallest), max_size=(largest, largest),
            min_neighbor_number=1, intersection_score_threshold=1.01)
        if not raw:
            return []
        windows = np.array([[d["c"], d["r"], d["width"], d["height"]] for d in raw], dtype=np.float64)
        faces = [Face(box=box / factor, confidence=votes / (votes + 5.0), finder=self.name)
                 for box, votes in _group_windows(windows, self.min_votes)]
        return faces[: self.max_faces] if self.max_faces else faces


# -- MediaPipe (optional extra) -------------------------------------------------------------
#: MediaPipe face-mesh vertex for each point of the 49-point layout (0-based, the order
#: of :mod:`mgrr_pyg.facs`: brows, nose bridge, nose base, eyes, outer lips, inner lips).
#: "First" is the image-left side (the subject's right). Chosen by looking at the mesh
#: on scikit-image's astronaut (``tests/predict/test_mediapipe.py`` checks eye centres and
#: mouth corners against hand-placed points): brow points on the brow's upper edge,
#: eye and lip points on the lid and lip contours.
MESH_TO_49: tuple[int, ...] = (
    70, 63, 105, 66, 107,  # first brow, outer -> inner (0-4)
    336, 296, 334, 293, 300,  # second brow, inner -> outer (5-9)
    168, 197, 5, 4,  # nose bridge, top -> tip (10-13)
    98, 97, 2, 326, 327,  # nose base, left -> right (14-18)
    33, 160, 158, 133, 153, 144,  # first eye: outer, upper x2, inner, lower x2 (19-24)
    362, 385, 387, 263, 373, 380,  # second eye: inner, upper x2, outer, lower x2 (25-30)
    61, 40, 37, 0, 267, 270, 291,  # outer upper lip, left corner -> right corner (31-37)
    321, 314, 17, 84, 91,  # outer lower lip, right -> left (38-42)
    81, 13, 311,  # inner upper lip, left -> right (43-45)
    402, 14, 178,  # inner lower lip, right -> left (46-48)
)
assert len(MESH_TO_49) == NUM_LANDMARKS


def mesh_to_49(mesh: np.ndarray) -> np.ndarray:
    """``[49, 2]`` from a ``[468 or 478, 2+]`` MediaPipe face mesh (pixels)."""
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.ndim != 2 or mesh.shape[0] < 468 or mesh.shape[1] < 2:
        raise ValueError(f"mesh: expected [468, 2] face-mesh points, found {list(mesh.shape)}")
    return mesh[list(MESH_TO_49), :2]


def import_mediapipe():
    """``mediapipe`` with its ``solutions`` API, or an ImportError naming the extra."""
    try:
        import mediapipe
        solutions = mediapipe.solutions
    except (ImportError, AttributeError) as err:
        raise ImportError(
            "faces='mediapipe' needs mediapipe 0.10.21 (the last release whose wheel ships the "
            "face detector and face mesh; it needs numpy < 2): pip install 'mgrr_pyg[mediapipe]' "
            f"in its own environment ({type(err).__name__}: {err})") from err
    return solutions


class MediaPipeFaceFinder:
    """Faces by MediaPipe's face detector (boxes, scores) and face mesh (landmarks),
    bundled in the mediapipe 0.10.21 wheel (nothing downloaded).

    Args:
        max_faces (int): Faces the mesh tracks per frame. (default: :obj:`8`)
        min_confidence (float): Detector score threshold. (default: :obj:`0.5`)
    """

    name = "mediapipe"

    def __init__(self, max_faces: int = 8, min_confidence: float = 0.5):
        solutions = import_mediapipe()
        # Full-range detector (model 1): faces up to ~5 m away, not only selfies.
        self.detector = solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence)
        self.mesh = solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                                 refine_landmarks=False,
                                                 min_detection_confidence=min_confidence)

    def __call__(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        image = np.ascontiguousarray(image)
        detections = self.detector.process(image).detections or []
        boxes = []
        for det in detections:
            rel = det.location_data.relative_bounding_box
            boxes.append((np.array([rel.xmin * width, rel.ymin * height, rel.width * width,
                                    rel.height * height]), float(det.score[0])))
        meshes = []
        for face in self.mesh.process(image).multi_face_landmarks or []:
            points = np.array([[p.x * width, p.y * height] for p in face.landmark])
            meshes.append(mesh_to_49(points))
        faces = []
        used: set[int] = set()
        for box, score in boxes:
            # The mesh whose landmark box overlaps the detector's box most is this face's.
            best, best_iou = None, 0.2
            for k, lm in enumerate(meshes):
                overlap = float(iou(box, landmark_box(lm)))
                if k not in used and overlap > best_iou:
                    best, best_iou = k, overlap
            if best is not None:
                used.add(best)
            faces.append(Face(box=box, confidence=score, finder=self.name,
                              landmarks=None if best is None else meshes[best]))
        return faces

    def close(self) -> None:
        self.detector.close()
        self.mesh.close()


def make_face_finder(name: str, **options):
    """A face finder by name (:data:`FACE_FINDERS`)."""
    if name == "cascade":
        return CascadeFaceFinder(**options)
    if name == "mediapipe":
        return MediaPipeFaceFinder(**options)
    raise ValueError(f"faces: expected one of {FACE_FINDERS}, found {name!r}")


# -- tracking -------------------------------------------------------------------------------
@dataclass
class _Track:
    index: int
    box: np.ndarray
    last_seen: int


@dataclass
class FaceTracker:
    """Stable face indices across the frames of one video: each face takes the index of
    the track whose last box it overlaps most (IoU at least ``min_iou``; pairs taken
    greedily, best overlap first); a face matching no track starts a new index (the
    faces of a frame are numbered left to right). A track not seen for more than
    ``max_gap`` sampled frames is forgotten (its index is never reused).
    """

    min_iou: float = 0.3
    max_gap: int = 10
    tracks: list = field(default_factory=list)
    next_index: int = 0
    step: int = 0

    def assign(self, boxes: Sequence[np.ndarray]) -> list[int]:
        """Face indices of this frame's ``boxes`` (call once per sampled frame)."""
        self.step += 1
        self.tracks = [t for t in self.tracks if self.step - t.last_seen <= self.max_gap + 1]
        order = sorted(range(len(boxes)), key=lambda k: float(boxes[k][0]))
        indices: list[Optional[int]] = [None] * len(boxes)
        pairs = sorted(((float(iou(boxes[k], t.box)), k, n) for k in order
                        for n, t in enumerate(self.tracks)), reverse=True)
        taken: set[int] = set()
        for overlap, k, n in pairs:
            if overlap < self.min_iou:
                break
            if indices[k] is None and n not in taken:
                indices[k] = self.tracks[n].index
                taken.add(n)
                self.tracks[n].box, self.tracks[n].last_seen = np.asarray(boxes[k]), self.step
        for k in order:
            if indices[k] is None:
                indices[k] = self.next_index
                self.tracks.append(_Track(self.next_index, np.asarray(boxes[k]), self.step))
                self.next_index += 1
        return [int(i) for i in indices]


# -- calibration of the box template ------------------------------------------------------
def calibrate_box_template(samples: Iterable) -> tuple[tuple[float, float, float], list[float]]:
    """Fit :data:`BOX_TEMPLATE` ``(scale, offset_x, offset_y)`` by least squares to faces
    with a box and known alignment points.

    Args:
        samples: ``(box [4], points [5, 2])`` pairs: a finder's box and the face's five
            alignment points (eye centres, nose, mouth corners, the order of
            :func:`mgrr_pyg.facs.alignment_points`) in the same pixels; a NaN row is a
            point that was not placed.

    Returns:
        ``(template, errors)``: the fit and, per sample, the RMS distance of the fitted
        template's placed points to the given ones, in inter-ocular distances.
    """
    q = _MEAN_ALIGNMENT - _MEAN_CENTRE  # [5, 2]
    rows, targets, kept = [], [], []
    for box, points in samples:
        points = np.asarray(points, dtype=np.float64)
        x, y, w, h = (float(v) for v in box)
        size = (w * h) ** 0.5
        rel = (points - [x, y]) / size  # [5, 2] in box units
        for k in np.flatnonzero(np.isfinite(points).all(1)):
            rows += [[q[k, 0], 1.0, 0.0], [q[k, 1], 0.0, 1.0]]
            targets += [rel[k, 0], rel[k, 1]]
        kept.append((box, points))
    if len(targets) < 3:
        raise ValueError("calibrate_box_template: expected at least two placed points, found "
                         f"{len(targets) // 2}")
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)
    template = tuple(float(v) for v in solution)
    errors = []
    for box, points in kept:
        placed = alignment_points(box_template_landmarks(box, template))
        valid = np.isfinite(points).all(1)
        distance = np.linalg.norm(placed[valid] - points[valid], axis=1)
        errors.append(float(np.sqrt(np.mean(distance ** 2)) / np.linalg.norm(points[0] - points[1])))
    return template, errors


__all__ = ["BOX_TEMPLATE", "CascadeFaceFinder", "FACE_FINDERS", "Face", "FaceTracker",
           "MESH_TO_49", "MediaPipeFaceFinder", "box_template_landmarks",
           "calibrate_box_template", "import_mediapipe", "iou", "landmark_box",
           "make_face_finder", "mesh_to_49"]

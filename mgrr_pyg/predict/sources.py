"""What the predictor reads: image files, folders, video files, arrays and Pillow images,
as one stream of frames.

Videos are decoded as a stream with PyAV (FFmpeg ships in its wheel): one frame is held
at a time and only every ``every``-th frame is converted to RGB, so memory does not
grow with the video's length. Images go through the package's one image reader,
:func:`mgrr_pyg.data.images.read_image` (EXIF orientation, 16-bit, alpha, ...).

A file that cannot be read raises :class:`InputError` naming it; inside a folder (or
with ``skip_bad=True``) it is reported on the :class:`SkipReport` and skipped.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
from PIL import Image

from mgrr_pyg.data.frames import BadInputError

IMAGE_SUFFIXES = frozenset(".jpg .jpeg .png .bmp .tif .tiff .webp .gif .ppm .pgm .pbm .jp2".split())
VIDEO_SUFFIXES = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .ts .mts .3gp .ogv".split())


class InputError(BadInputError):
    """An input (file, folder entry, array) that cannot be read; the message names it."""

    def __init__(self, source: str, problem: str):
        super().__init__("unreadable input", f"{source}: {problem}")
        self.source, self.problem = str(source), problem

    def __reduce__(self):
        return (type(self), (self.source, self.problem))


@dataclass
class SkipReport:
    """Inputs skipped (folder entries, or everything with ``skip_bad=True``)."""

    skipped: list = field(default_factory=list)  # [(source, message)]

    def add(self, source: str, message: str) -> None:
        self.skipped.append((str(source), message))

    def summary(self) -> str:
        if not self.skipped:
            return "no input was skipped"
        lines = [f"skipped {len(self.skipped)} unreadable input"
                 f"{'s' if len(self.skipped) != 1 else ''}:"]
        lines += [f"  {message}" for _, message in self.skipped]
        return "\n".join(lines)


@dataclass
class Frame:
    """One frame to predict on.

    Attributes:
        input: The file path, or ``array[i]`` / ``image[i]`` for in-memory inputs.
        frame: 0-based index of the frame in its video (0 for an image).
        timestamp: Seconds from the video's start (its presentation time); 0 for an
            image, NaN for an array sequence (no time base).
        image: ``[H, W, 3]`` uint8 RGB.
        sequence: A key shared by the frames of one video / array sequence (faces are
            tracked within it), None for a single image.
        boxes, landmarks: Faces the caller gave for this frame (``[F, 4]`` / ``[F, 49, 2]``).
    """

    input: str
    frame: int
    timestamp: float
    image: np.ndarray
    sequence: Optional[str] = None
    boxes: Optional[np.ndarray] = None
    landmarks: Optional[np.ndarray] = None


def _rgb_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def read_image_frame(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 of an image file (:class:`InputError` naming it if unreadable)."""
    from mgrr_pyg.data.images import ImageReadError, read_image

    try:
        return _rgb_array(read_image(path))
    except ImageReadError as err:
        raise InputError(str(path), f"expected a readable image, {err.problem}") from None


def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        size = path.stat().st_size if path.is_file() else None
        what = "an empty file (0 bytes)" if size == 0 else f"a file FFmpeg cannot open ({err.strerror or err})"
        raise InputError(str(path), f"expected a video in a container FFmpeg reads (mp4, avi, mkv, "
                                    f"mov, webm, ...), found {what}") from None
    if not container.streams.video:
        container.close()
        raise InputError(str(path), "expected a video, found a container without a video stream")
    return container


def iter_video(path: str | os.PathLike, every: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, timestamp in seconds, [H, W, 3] uint8)`` of every ``every``-th
    frame of a video, decoded as a stream.

    Raises:
        InputError: The container cannot be opened, holds no video stream, fails to
            decode part-way (the message says after which frame) or holds no frame.
    """
    import av

    path = Path(path)
    if every < 1:
        raise ValueError(f"every: expected an int >= 1, found {every!r}")
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's own frame / slice threads
        rate = float(stream.average_rate) if stream.average_rate else math.nan
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if index % every:
                    continue
                time = frame.time if frame.time is not None else index / rate
                yield index, float(time), frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            where = f"after frame {index}" if index >= 0 else "before the first frame"
            raise InputError(str(path), f"the video stream is damaged: decoding failed {where} "
                                        f"({err.strerror or err})") from None
        if index < 0:
            raise InputError(str(path), "expected a video with frames, found none that decode")
    finally:
        container.close()


#: FFmpeg muxer names of suffixes that are not themselves one.
_MUXERS = {"mkv": "matroska", "m4v": "mp4", "ts": "mpegts", "mts": "mpegts", "3gp": "3gp"}


def write_video(path: str | os.PathLike, frames, fps: int = 25, codec: str = "mpeg4",
                quality: int = 4) -> Path:
    """Encode ``[H, W, 3]`` uint8 frames (any iterable, consumed as a stream) into a
    video file with PyAV (for tests, benchmarks and annotated outputs). ``mpeg4`` at
    ``quality`` (FFmpeg's qscale, 1 = best) is in every FFmpeg build; H and W must be
    even. The file is written atomically."""
    import av

    from mgrr_pyg.utils.io import atomic_write

    path = Path(path)
    with atomic_write(path, "wb") as handle:
        suffix = path.suffix.lower().lstrip(".") or "mp4"
        container = av.open(handle, mode="w", format=_MUXERS.get(suffix, suffix))
        stream = None
        for pixels in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = pixels.shape[:2]
                stream.pix_fmt = "yuv420p"
                # constant quantiser: FFmpeg's default bit rate blurs small test frames
                stream.codec_context.qscale = quality
                stream.codec_context.flags |= int(av.codec.context.Flags.qscale)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
        container.close()
    return path


def _probe_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "unknown"


def _file_frames(path: Path, every: int) -> Iterator[Frame]:
    kind = _probe_kind(path)
    if not path.exists():
        raise InputError(str(path), "found no such file or folder")
    if kind == "video":
        for index, time, pixels in iter_video(path, every):
            yield Frame(str(path), index, time, pixels, sequence=str(path))
        return
    if kind == "image":
        yield Frame(str(path), 0, 0.0, read_image_frame(path))
        return
    # Unknown suffix: an image if Pillow reads it, else a video if FFmpeg does.
    try:
        pixels = read_image_frame(path)
    except InputError as image_error:
        try:
            yield from (Frame(str(path), i, t, p, sequence=str(path)) for i, t, p in iter_video(path, every))
        except InputError as video_error:
            if "damaged" in video_error.problem:
                raise
            raise InputError(str(path), f"expected an image or a video, found neither: as an image, "
                                        f"{image_error.problem}; as a video, {video_error.problem}") from None
        return
    yield Frame(str(path), 0, 0.0, pixels)


def folder_entries(folder: Path, recursive: bool = False) -> list[Path]:
    """The files of a folder in name order (subfolders too with ``recursive``); names
    starting with a dot are left out."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _array_frames(array: np.ndarray, name: str, every: int) -> Iterator[Frame]:
    from mgrr_pyg.data.images import ImageReadError, to_rgb8

    def convert(a, source):
        try:
            return _rgb_array(to_rgb8(a, source=source))
        except ImageReadError as err:
            raise InputError(source, err.problem) from None

    if array.ndim == 4:  # a sequence of frames: tracked like a video
        if len(array) == 0:
            raise InputError(name, "expected a sequence of frames [N, H, W, C], found N = 0")
        for index in range(0, len(array), every):
            yield Frame(name, index, math.nan, convert(array[index], f"{name}[{index}]"), sequence=name)
    else:
        yield Frame(name, 0, 0.0, convert(array, name))


def iter_frames(inputs: Any, every: int = 1, skip_bad: bool = False,
                report: Optional[SkipReport] = None, recursive: bool = False,
                boxes: Any = None, landmarks: Any = None) -> Iterator[Frame]:
    """The frames of ``inputs``, in order.

    Args:
        inputs: A path (image, video or folder), a NumPy array (``[H, W(, C)]`` one image,
            ``[N, H, W, C]`` a sequence), a Pillow image, or a list / tuple of these.
        every (int): Take every ``every``-th frame of videos and sequences.
        skip_bad (bool): Report and skip unreadable inputs instead of raising (always so
            for the entries of a folder).
        report (SkipReport, optional): Where skipped inputs are recorded.
        recursive (bool): Descend into subfolders of folders.
        boxes, landmarks (optional): Faces given by the caller, one entry per input
            (single images only): ``[F, 4]`` boxes ``x, y, w, h`` / ``[F, 49 or 68, 2]``.
    """
    report = report if report is not None else SkipReport()
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    given_boxes = _per_input(boxes, len(items), "boxes")
    given_landmarks = _per_input(landmarks, len(items), "landmarks")
    for position, item in enumerate(items):
        frames = _item_frames(item, position, every, report, recursive, len(items))
        faces_given = given_boxes[position] is not None or given_landmarks[position] is not None
        try:
            first = True
            for frame in frames:
                if faces_given:
                    if frame.sequence is not None or not first:
                        raise ValueError(f"{frame.input}: boxes / landmarks are accepted for single "
                                         "images only, found a video or sequence")
                    frame.boxes, frame.landmarks = given_boxes[position], given_landmarks[position]
                first = False
                yield frame
        except InputError as err:
            if not skip_bad:
                raise
            report.add(err.source, str(err))


def _item_frames(item, position: int, every: int, report: SkipReport, recursive: bool,
                 count: int) -> Iterator[Frame]:
    if isinstance(item, np.ndarray):
        yield from _array_frames(item, f"array[{position}]" if count > 1 else "array", every)
    elif isinstance(item, Image.Image):
        yield from _array_frames(np.asarray(item.convert("RGB")) if item.mode not in ("RGB", "L")
                                 else np.asarray(item), f"image[{position}]" if count > 1 else "image", every)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.is_dir():
            entries = folder_entries(path, recursive)
            if not entries:
                report.add(str(path), f"{path}: a folder without files")
            for entry in entries:
                try:
                    yield from _file_frames(entry, every)
                except InputError as err:  # a folder run reports and skips
                    report.add(err.source, str(err))
        else:
            yield from _file_frames(path, every)
    else:
        raise TypeError(f"inputs[{position}]: expected a path, a NumPy array or a PIL image, "
                        f"found {type(item).__name__}")


def _per_input(value, count: int, name: str) -> list:
    if value is None:
        return [None] * count
    if count == 1:
        return [_faces_array(value, name)]
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ValueError(f"{name}: expected one entry (or None) per input, {count} in all, found "
                         f"{len(value) if isinstance(value, (list, tuple)) else type(value).__name__}")
    return [None if v is None else _faces_array(v, f"{name}[{k}]") for k, v in enumerate(value)]


def _faces_array(value, name: str) -> np.ndarray:
    from mgrr_pyg.facs import convert_to_49

    array = np.asarray(value, dtype=np.float64)
    if name.startswith("boxes"):
        array = array.reshape(-1, 4) if array.size else np.zeros((0, 4))
        if array.ndim != 2 or (array[:, 2:] <= 0).any() or not np.isfinite(array).all():
            raise ValueError(f"{name}: expected [F, 4] boxes x, y, w, h with w, h > 0, found "
                             f"{array.tolist()}")
        return array
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] not in ((49, 2), (66, 2), (68, 2)):
        raise ValueError(f"{name}: expected [F, 49 | 66 | 68, 2] landmarks in image pixels, "
                         f"found shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: landmarks must be finite")
    return convert_to_49(array, name)


__all__ = ["Frame", "IMAGE_SUFFIXES", "InputError", "SkipReport", "VIDEO_SUFFIXES",
           "folder_entries", "iter_frames", "iter_video", "read_image_frame"]

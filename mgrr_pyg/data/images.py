"""The package's one image reader: any image file a user meets becomes 8-bit RGB, or is
refused with an :class:`ImageReadError` naming the file.

:func:`read_image` opens a file; :func:`to_rgb8` converts an image already in memory
(a Pillow image or a NumPy array) the same way. The conversions:

- **Orientation.** The EXIF Orientation tag is applied
  (:func:`PIL.ImageOps.exif_transpose`), so the picture is the one every viewer shows;
  landmarks refer to this displayed orientation (width and height swap for a
  90-degree tag).
- **8-bit RGB** is returned as decoded, pixel for pixel. 8-bit grey (``L``), bilevel
  (``1``), palette (``P``), ``YCbCr``, ``CMYK`` (Pillow's formula
  ``R = (255 - C)(255 - K) / 255``, rounded; a CMYK JPEG is taken to hold inverted
  inks, Photoshop's convention, as Pillow and web browsers take it) and other colour
  modes are converted by Pillow. Embedded ICC colour profiles are not applied.
- **16-bit** samples ``v`` (grey ``I;16`` / ``I;16B``, and 16-bit colour PNG and
  TIFF) become ``round(v / 257)``: 65535 -> 255, never clipped to 255. The
  scale is the container's, not the range used: a 16-bit file holding only 0..255 reads
  as 0..1. 32-bit integer images (``I``) are taken as 16-bit data and must hold
  0..65535; float images (``F``) must hold 0..1 and become ``round(255 v)``. Other
  values are refused.
- **Transparency** (an alpha channel, a palette or colour-key ``transparency``) is
  composited over the grey 128 that alignment fills the border with
  (:data:`~mgrr_pyg.data.align.BORDER_GREY`):
  ``round((c a + 128 (255 - a)) / 255)``.
- **Refused**, naming the file: missing, empty, non-image and truncated files (even when
  other code has turned on Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES``), files Pillow
  cannot decode, and images over Pillow's decompression-bomb limit
  ``PIL.Image.MAX_IMAGE_PIXELS`` (raise that limit to read larger ones). A multi-frame
  file gives its first frame.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from .align import BORDER_GREY
from .bad_input import BadInputError

#: Pillow modes holding 16-bit grey samples.
SIXTEEN_BIT_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
#: Modes whose pixels carry an alpha channel.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
#: Pillow decodes 16-bit colour to 8 bits by keeping each sample's high byte
#: (``v // 256``). Decoding the same data again with the opposite byte order's unpacker
#: gives the low bytes, so the reader recovers ``v`` and scales it like 16-bit grey.
#: (``;16N`` is the machine's byte order: libtiff hands Pillow native samples.)
_NOT_NATIVE = "B" if sys.byteorder == "little" else "L"
_OTHER_BYTE_RAWMODE = {f"{mode};16{order}": f"{mode};16{other}"
                       for mode in ("RGB", "RGBA")
                       for order, other in (("B", "L"), ("L", "B"), ("N", _NOT_NATIVE))}
#: 16-bit grey + alpha PNG (opened as RGBA): its 4 bytes per pixel
#: (grey high, grey low, alpha high, alpha low) read as 8-bit RGBA give every byte.
_GREY_ALPHA_16 = "LA;16B"
_truncation_lock = threading.Lock()


class ImageReadError(BadInputError):
    """An image that cannot be read or converted to 8-bit RGB. The message names the
    file: ``"<source>: expected a readable image, <problem>"``; ``prepare_dataset``
    with ``skip_bad=True`` counts it under ``"unreadable image"``."""

    def __init__(self, source: str, problem: str):
        super().__init__("unreadable image", f"{source}: expected a readable image, {problem}")
        self.source = str(source)
        self.problem = problem

    def __reduce__(self):  # keep source and problem across process boundaries
        return (type(self), (self.source, self.problem))


def read_image(path: str | os.PathLike) -> Image.Image:
    """Read an image file as an 8-bit RGB Pillow image, upright as viewers show it (see
    the module docstring for every conversion).

    Raises:
        ImageReadError: The file is missing, not an image, truncated or damaged, too
            large, or holds values with no 8-bit meaning; the message names it.
    """
    source = os.fspath(path)
    with _decoding(source):
        image = Image.open(source)
    with image:
        with _decoding(source):
            tiles = list(image.tile)
            image.load()
            samples = _sixteen_bit_colour(source, image, tiles)
            # Read now, while the file is open: a TIFF's EXIF is read from the file.
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        if samples is not None:
            image = _with_orientation(_compose(_sixteen_bit_samples(samples, image)), orientation)
        return to_rgb8(image, source=source)


def to_rgb8(image: Image.Image | np.ndarray, source: str = "image") -> Image.Image:
    """Convert an image in memory to 8-bit RGB exactly as :func:`read_image` converts a
    file (may return ``image`` itself when it is already upright 8-bit RGB).

    Args:
        image: A Pillow image of any mode, or an array ``[H, W]`` (grey) or
            ``[H, W, C]`` with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), of
            dtype uint8, uint16 (16-bit), bool, or float in [0, 1].
        source (str, optional): What to call the image in error messages.
            (default: :obj:`"image"`)

    Raises:
        ImageReadError: A mode, shape, dtype or value range with no 8-bit RGB meaning.
    """
    if isinstance(image, np.ndarray):
        return _compose(_array_samples(image, source))
    if not isinstance(image, Image.Image):
        raise TypeError(f"{source}: expected a PIL image or a NumPy array, found "
                        f"{type(image).__name__}")
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in SIXTEEN_BIT_GREY_MODES or mode == "I":
        values = np.asarray(image).astype(np.int64)  # [H, W]
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(source, f"found 32-bit integer pixels from {values.min()} to "
                                         f"{values.max()}; expected 0..65535 (read as 16-bit)")
        return _compose(_with_colour_key(_scale_16_bit(values[..., None]), values, image))
    if mode == "F":
        values = np.asarray(image)
        return _compose(_with_colour_key(_scale_float(values[..., None], source), values, image))
    if mode in _ALPHA_MODES or _has_transparency_key(image):
        try:
            rgba = image.convert("RGBA")
        except ValueError as err:
            raise ImageReadError(source, f"found mode {mode}, which Pillow cannot convert "
                                         f"({err})") from None
        return _compose(np.asarray(rgba))
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise ImageReadError(source, f"found mode {mode}, which Pillow cannot convert to RGB "
                                     f"({err})") from None


@contextmanager
def _decoding(source: str) -> Iterator[None]:
    """Run Pillow's opening / decoding of ``source``: truncated files and decompression
    bombs refused, every failure an :class:`ImageReadError` naming the file."""
    try:
        with _truncated_files_refused(), warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a face frame is
            # a few megapixels, so anything past the limit is refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(source, "found no such file") from None
    except IsADirectoryError:
        raise ImageReadError(source, "found a folder") from None
    except UnidentifiedImageError:
        found = ("an empty file (0 bytes)" if os.path.getsize(source) == 0
                 else "a file in no image format Pillow reads")
        raise ImageReadError(source, f"found {found}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(source, f"found an image over the decompression-bomb limit "
                                     f"PIL.Image.MAX_IMAGE_PIXELS ({err})") from None
    except Exception as err:  # noqa: BLE001
        # Pillow's format plugins raise many types on damaged data (OSError for a
        # truncated file, SyntaxError, EOFError, struct.error, ...): all the file's fault.
        raise ImageReadError(source, f"found a truncated or damaged file "
                                     f"({type(err).__name__}: {err})") from None


@contextmanager
def _truncated_files_refused() -> Iterator[None]:
    """Switch Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` off while reading, if other
    code turned it on: with it, a truncated file decodes as if whole, the missing part
    grey."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _truncation_lock:
        saved = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _rawmode(tile) -> str | None:
    args = tile[3]
    if isinstance(args, str):  # PNG tiles: the raw mode
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):  # TIFF: (raw mode, ...)
        return args[0]
    return None


def _with_rawmode(tile, rawmode: str):
    args = rawmode if isinstance(tile[3], str) else (rawmode, *tile[3][1:])
    if hasattr(tile, "_replace"):  # Pillow >= 11 tiles are named tuples, read by name
        return tile._replace(args=args)
    return (*tile[:3], args)


def _sixteen_bit_colour(source: str, image: Image.Image, tiles: list) -> np.ndarray | None:
    """``[H, W, C]`` 16-bit samples of a 16-bit colour PNG or TIFF (which Pillow
    opened as 8-bit, ``image``), or None for any other file."""
    if image.format not in ("PNG", "TIFF") or not tiles:
        return None
    rawmodes = {_rawmode(t) for t in tiles}
    if len(rawmodes) != 1 or {t[0] for t in tiles} - {"zip", "raw", "libtiff"}:
        return None
    rawmode = rawmodes.pop()

    def decode_again(other: str) -> np.ndarray:
        with Image.open(source) as again:
            again.tile = [_with_rawmode(t, other) for t in tiles]
            again.load()
            return np.asarray(again).astype(np.int64)

    if rawmode == _GREY_ALPHA_16:
        both = decode_again("RGBA")
        return np.stack([both[..., 0] * 256 + both[..., 1], both[..., 2] * 256 + both[..., 3]], -1)
    if rawmode not in _OTHER_BYTE_RAWMODE:
        return None
    high = np.asarray(image).astype(np.int64)
    return high * 256 + decode_again(_OTHER_BYTE_RAWMODE[rawmode])


def _sixteen_bit_samples(values: np.ndarray, image: Image.Image) -> np.ndarray:
    """``[H, W, C]`` uint8 samples of 16-bit colour ``values``; a colour-key
    ``transparency`` (16-bit values) becomes an alpha channel."""
    samples = _scale_16_bit(values)
    key = image.info.get("transparency")
    if isinstance(key, tuple) and values.shape[2] == 3 and len(key) == 3:
        alpha = np.where((values == np.asarray(key)).all(-1), 0, 255).astype(np.uint8)
        samples = np.concatenate([samples, alpha[..., None]], axis=-1)
    return samples


def _scale_16_bit(values: np.ndarray) -> np.ndarray:
    # (v + 128) // 257 == round(v / 257) exactly: v / 257 is never a half (257 is odd).
    return ((values + 128) // 257).astype(np.uint8)


def _scale_float(values: np.ndarray, source: str) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.all():
        raise ImageReadError(source, f"found {int((~finite).sum())} NaN/inf float pixels")
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ImageReadError(source, f"found float pixels from {values.min():g} to "
                                     f"{values.max():g}; expected 0..1")
    return np.floor(values.astype(np.float64) * 255 + 0.5).astype(np.uint8)


def _array_samples(array: np.ndarray, source: str) -> np.ndarray:
    """``[H, W, C]`` uint8 samples of an array image."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(source, f"found an array of shape {list(array.shape)}; expected "
                                     "[H, W] or [H, W, C] with C = 1, 2, 3 or 4")
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return _scale_16_bit(array.astype(np.int64))
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return _scale_float(array, source)
    raise ImageReadError(source, f"found an array of dtype {array.dtype}; expected uint8, uint16, "
                                 "bool or float in [0, 1]")


def _has_transparency_key(image: Image.Image) -> bool:
    if image.info.get("transparency") is not None:
        return True
    return image.mode == "P" and image.palette is not None and image.palette.mode == "RGBA"


def _with_colour_key(grey: np.ndarray, values: np.ndarray, image: Image.Image) -> np.ndarray:
    """Add an alpha channel where a colour-key ``transparency`` marks pixels of a
    16-bit, 32-bit or float grey image as transparent."""
    key = image.info.get("transparency")
    if not isinstance(key, (int, float)):
        return grey
    alpha = np.where(values == key, 0, 255).astype(np.uint8)[..., None]
    return np.concatenate([grey, alpha], axis=-1)


def _compose(samples: np.ndarray) -> Image.Image:
    """8-bit RGB from ``[H, W, C]`` uint8 samples (grey / grey + alpha / RGB / RGBA),
    alpha composited over the border grey."""
    channels = samples.shape[2]
    colour = samples[..., :1] if channels <= 2 else samples[..., :3]
    if channels in (2, 4):
        alpha = samples[..., -1:].astype(np.int64)
        # (x + 127) // 255 == round(x / 255) exactly for integer x.
        colour = (colour.astype(np.int64) * alpha + BORDER_GREY * (255 - alpha) + 127) // 255
    colour = np.broadcast_to(colour, samples.shape[:2] + (3,)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(colour))


def _with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` carrying an EXIF Orientation tag for :func:`to_rgb8` to apply."""
    if orientation != 1:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        image.info["exif"] = exif.tobytes()
    return image


__all__ = ["ImageReadError", "SIXTEEN_BIT_GREY_MODES", "read_image", "to_rgb8"]

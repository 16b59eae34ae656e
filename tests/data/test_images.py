"""The one image reader: every encoding a user meets becomes upright 8-bit RGB, or is
refused naming the file. Each file is built here (Pillow, NumPy, or by hand where
Pillow cannot write the encoding); expected pixels are typed in or come from the
published formula, never from the reader."""
import io
import pickle
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from mgrr_pyg.data import BadInputError, ImageReadError, PreparedListDataset, prepare_dataset, read_image, to_rgb8
from mgrr_pyg.data import preparation
from mgrr_pyg.data.align import alignment_transform, warp_image
from raw_tree_helpers import write_bp4d

# 16-bit samples at the rounding edges of v / 257, and the 8-bit values they must give
# (v = 257 k + 128 is just under k + 0.5, v = 257 k + 129 just over).
SIXTEEN_BIT = [0, 128, 129, 385, 386, 32767, 32896, 65406, 65407, 65535]
EIGHT_BIT = [0, 0, 1, 1, 2, 127, 128, 254, 255, 255]


def mode_of(path):
    with Image.open(path) as image:
        return image.mode


def pixels(image):
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_16(path, samples: np.ndarray, colour_type: int) -> None:
    """A 16-bit PNG (colour type 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA) written by hand
    (Pillow writes no 16-bit colour PNG), every row with the Sub filter so the decoder's
    bytes-per-pixel matters."""
    height, width = samples.shape[:2]
    rows = samples.astype(">u2").reshape(height, -1).view(np.uint8)  # big-endian bytes
    step = rows.shape[1] // width  # bytes per pixel
    filtered = rows.copy()
    filtered[:, step:] = rows[:, step:] - rows[:, :-step]  # Sub: minus the pixel to the left (mod 256)
    raw = b"".join(b"\x01" + row.tobytes() for row in filtered)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def write_tiff_16_rgb(path, samples: np.ndarray, deflate: bool) -> None:
    """A 16-bit RGB little-endian TIFF, uncompressed or deflate, written by hand."""
    height, width, _ = samples.shape
    data = samples.astype("<u2").tobytes()
    if deflate:
        data = zlib.compress(data)
    bits_at = 8 + len(data)
    ifd_at = bits_at + 6
    short, long_ = 3, 4
    entries = [(256, short, 1, width), (257, short, 1, height), (258, short, 3, bits_at),
               (259, short, 1, 8 if deflate else 1), (262, short, 1, 2), (273, long_, 1, 8),
               (277, short, 1, 3), (278, short, 1, height), (279, long_, 1, len(data)),
               (284, short, 1, 1)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += (struct.pack("<HHIHH", tag, kind, count, value, 0) if kind == short and count == 1
                else struct.pack("<HHII", tag, kind, count, value))
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + data + struct.pack("<3H", 16, 16, 16) + ifd)


def without_adobe_marker(jpeg: bytes) -> bytes:
    """The JPEG without its APP14 "Adobe" segment (the one that says CMYK is inverted)."""
    out, i = bytearray(jpeg[:2]), 2
    while jpeg[i + 1] != 0xDA:  # up to the start of scan
        length = int.from_bytes(jpeg[i + 2:i + 4], "big")
        if jpeg[i + 1] != 0xEE:
            out += jpeg[i:i + 2 + length]
        i += 2 + length
    return bytes(out + jpeg[i:])


def expect_refused(path, found):
    with pytest.raises(ImageReadError, match=rf"^{path}: expected a readable image, found {found}") as info:
        read_image(path)
    assert info.value.reason == "unreadable image" and isinstance(info.value, BadInputError)
    return info.value


# --- 8-bit RGB: exactly what the package decoded before the reader ----------------------

@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_plain_8_bit_rgb_decodes_pixel_for_pixel_as_before(tmp_path, suffix):
    rng = np.random.default_rng(0)
    path = tmp_path / f"face{suffix}"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path, quality=95)
    with Image.open(path) as image:
        image.load()
        before = np.asarray(image.convert("RGB"))  # the decode prepare and the dataset used
        matrix = np.array([[0.9, 0.1, 3.0], [-0.1, 0.9, 5.0]])
        warped_before = np.asarray(warp_image(image, matrix))
    np.testing.assert_array_equal(pixels(read_image(path)), before)
    np.testing.assert_array_equal(np.asarray(warp_image(read_image(path), matrix)), warped_before)


def test_prepared_faces_are_byte_identical_to_the_former_decode(prepared_bp4d):
    """The default run's aligned faces do not change: each is the old decode + warp +
    JPEG, byte for byte."""
    tree, out = prepared_bp4d
    for (subject, task, frame), truth in sorted(tree.truth.items()):
        with Image.open(truth["image"]) as image:
            image.load()
            warped = warp_image(image, alignment_transform(truth["landmarks"]))
        buffer = io.BytesIO()
        warped.save(buffer, format="JPEG", quality=preparation.JPEG_QUALITY)
        assert (out / "images" / "BP4D" / subject / task / f"{frame}.jpg").read_bytes() == buffer.getvalue()


# --- 16-bit and wider ----------------------------------------------------------------------

def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([SIXTEEN_BIT], dtype=np.uint16)).save(path)
    assert mode_of(path) == "I;16"
    result = pixels(read_image(path))
    np.testing.assert_array_equal(result[0, :, 0], EIGHT_BIT)
    np.testing.assert_array_equal(result[..., 0], result[..., 2])  # grey in all three channels


def test_16_bit_big_endian_tiff(tmp_path):
    path = tmp_path / "grey16be.tif"
    Image.frombytes("I;16B", (10, 1), np.array(SIXTEEN_BIT, dtype=">u2").tobytes()).save(path)
    assert mode_of(path) == "I;16B"
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 1], EIGHT_BIT)


def test_16_bit_data_in_the_low_byte_range_is_scaled_like_any_16_bit(tmp_path):
    path = tmp_path / "dark16.png"
    Image.fromarray(np.array([[0, 100, 200, 255]], dtype=np.uint16)).save(path)
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 0], [0, 0, 1, 1])


def test_every_16_bit_value_rounds_to_the_nearest_8_bit_level():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expected = np.floor(values / 257.0 + 0.5)
    np.testing.assert_array_equal(pixels(to_rgb8(values))[..., 0], expected)


@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4)])
def test_16_bit_colour_png_is_scaled_exactly(tmp_path, colour_type, channels):
    path = tmp_path / f"colour16_{channels}.png"
    v = np.array(SIXTEEN_BIT, dtype=np.uint16)
    samples = np.stack([v, v[::-1], v, np.full_like(v, 65535)][:channels], -1)[None]  # [1, 10, C]
    write_png_16(path, samples, colour_type)
    result = pixels(read_image(path))
    np.testing.assert_array_equal(result[0, :, 0], EIGHT_BIT)
    np.testing.assert_array_equal(result[0, :, 1], EIGHT_BIT[::-1])


def test_16_bit_grey_with_alpha_png(tmp_path):
    path = tmp_path / "grey_alpha16.png"
    v = np.array(SIXTEEN_BIT, dtype=np.uint16)
    write_png_16(path, np.stack([v, np.full_like(v, 65535)], -1)[None], colour_type=4)
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 0], EIGHT_BIT)
    write_png_16(path, np.array([[[65535, 0], [0, 65535]]], dtype=np.uint16), colour_type=4)
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 0], [128, 0])  # transparent -> grey 128


@pytest.mark.parametrize("deflate", [False, True], ids=["uncompressed", "deflate"])
def test_16_bit_rgb_tiff_is_scaled_exactly(tmp_path, deflate):
    path = tmp_path / "colour16.tif"
    v = np.array(SIXTEEN_BIT, dtype=np.uint16)
    write_tiff_16_rgb(path, np.stack([v, v[::-1], v], -1).reshape(2, 5, 3), deflate)
    result = pixels(read_image(path))
    np.testing.assert_array_equal(result[..., 0].ravel(), EIGHT_BIT)
    np.testing.assert_array_equal(result[..., 1].ravel(), EIGHT_BIT[::-1])


def test_32_bit_integer_image_is_read_as_16_bit_or_refused(tmp_path):
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 385, 386, 65535]], dtype=np.int32)).save(path)
    assert mode_of(path) == "I"
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 0], [0, 1, 2, 255])
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(path)
    expect_refused(path, r"32-bit integer pixels from 0 to 70000; expected 0\.\.65535")


def test_float_image_is_read_as_0_to_1_or_refused(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.1, 0.25, 0.5, 1.0]], dtype=np.float32)).save(path)
    assert mode_of(path) == "F"
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 0], [0, 26, 64, 128, 255])
    Image.fromarray(np.array([[0.0, 255.0]], dtype=np.float32)).save(path)
    expect_refused(path, r"float pixels from 0 to 255; expected 0\.\.1")
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(path)
    expect_refused(path, "1 NaN/inf float pixels")


# --- grey, bilevel, palette, alpha ---------------------------------------------------------

def test_grey_and_bilevel(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.array([[0, 77, 255]], dtype=np.uint8)).save(grey)
    np.testing.assert_array_equal(pixels(read_image(grey))[0], [[0] * 3, [77] * 3, [255] * 3])
    bilevel = tmp_path / "bilevel.png"
    Image.fromarray(np.array([[True, False, True]])).save(bilevel)
    assert mode_of(bilevel) == "1"
    np.testing.assert_array_equal(pixels(read_image(bilevel))[0, :, 0], [255, 0, 255])


def test_rgba_is_composited_over_the_border_grey(tmp_path):
    path = tmp_path / "rgba.png"
    Image.fromarray(np.array([[[255, 0, 10, 64], [200, 200, 200, 255], [0, 0, 0, 0], [10, 10, 10, 200]]],
                             dtype=np.uint8)).save(path)
    # round((c a + 128 (255 - a)) / 255), worked by hand
    np.testing.assert_array_equal(pixels(read_image(path))[0],
                                  [[160, 96, 98], [200, 200, 200], [128, 128, 128], [35, 35, 35]])


def test_grey_with_alpha(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(np.array([[[200, 128], [0, 64], [90, 255]]], dtype=np.uint8)).save(path)
    assert mode_of(path) == "LA"
    np.testing.assert_array_equal(pixels(read_image(path))[0, :, 0], [164, 96, 90])


def palette_image():
    image = Image.new("P", (4, 1))
    image.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 0] + [0] * 759)
    image.putdata([0, 1, 2, 1])
    return image


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "palette.png"
    palette_image().save(path)
    np.testing.assert_array_equal(pixels(read_image(path))[0],
                                  [[10, 20, 30], [200, 100, 50], [0, 0, 0], [200, 100, 50]])


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_a_transparent_index(tmp_path, suffix):
    path = tmp_path / f"palette{suffix}"
    palette_image().save(path, transparency=2)
    np.testing.assert_array_equal(pixels(read_image(path))[0],
                                  [[10, 20, 30], [200, 100, 50], [128, 128, 128], [200, 100, 50]])


def test_palette_with_partial_alpha(tmp_path):
    path = tmp_path / "palette_alpha.png"
    palette_image().save(path, transparency=bytes([255, 100, 0]))  # alpha of entries 0, 1, 2
    np.testing.assert_array_equal(pixels(read_image(path))[0],
                                  [[10, 20, 30], [156, 117, 97], [128, 128, 128], [156, 117, 97]])


# --- CMYK, YCbCr ---------------------------------------------------------------------------

CMYK_BLOCKS = [(0, 0, 0, 0), (255, 0, 0, 0), (100, 50, 20, 0), (100, 50, 20, 100)]


def cmyk_blocks():
    """16x16, four flat 8x8 blocks (JPEG keeps flat blocks nearly exact)."""
    array = np.zeros((16, 16, 4), dtype=np.uint8)
    for k, colour in enumerate(CMYK_BLOCKS):
        array[8 * (k // 2):8 * (k // 2) + 8, 8 * (k % 2):8 * (k % 2) + 8] = colour
    return array


def cmyk_formula(cmyk):
    cmyk = np.asarray(cmyk, dtype=np.float64)
    return np.floor((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255 + 0.5)


@pytest.mark.parametrize("adobe_marker", [True, False], ids=["adobe-marker", "no-marker"])
def test_cmyk_jpeg(tmp_path, adobe_marker):
    """Standalone CMYK JPEGs hold inverted inks (Photoshop's convention, which Pillow and
    browsers assume with or without the APP14 "Adobe" marker); Pillow un-inverts them."""
    path = tmp_path / "cmyk.jpg"
    buffer = io.BytesIO()
    Image.frombytes("CMYK", (16, 16), cmyk_blocks().tobytes()).save(buffer, format="JPEG", quality=100)
    path.write_bytes(buffer.getvalue() if adobe_marker else without_adobe_marker(buffer.getvalue()))
    with Image.open(path) as raw:
        assert raw.mode == "CMYK" and ("adobe" in raw.info) == adobe_marker
        decoded = np.asarray(raw)
    assert np.abs(decoded.astype(int) - cmyk_blocks()).max() <= 3  # not read inverted
    result = pixels(read_image(path))
    np.testing.assert_array_equal(result, cmyk_formula(decoded))
    np.testing.assert_array_equal(result[4, 4], [255, 255, 255])
    np.testing.assert_allclose(result[12, 12], [94, 125, 143], atol=3)  # (100, 50, 20, 100) by the formula


def test_ycbcr(tmp_path):
    path = tmp_path / "ycbcr.tif"
    ycc = np.array([[[128, 128, 128], [200, 90, 160], [60, 170, 100], [235, 128, 128]]], dtype=np.uint8)
    Image.frombytes("YCbCr", (4, 1), ycc.tobytes()).save(path)
    assert mode_of(path) == "YCbCr"
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    # JFIF (ITU-R BT.601 full range)
    expected = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                         y + 1.772 * (cb - 128)], -1).clip(0, 255)
    np.testing.assert_allclose(pixels(read_image(path)), expected, atol=1.0)


# --- orientation -------------------------------------------------------------------------

# EXIF Orientation value -> how the stored pixels turn into the displayed picture
# (EXIF 2.3, tag 0x0112).
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],                       # mirrored left-right
    3: lambda a: a[::-1, ::-1],                    # rotated 180
    4: lambda a: a[::-1],                          # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),             # transposed
    6: lambda a: np.rot90(a, -1),                  # rotated 90 clockwise to display
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transversed
    8: lambda a: np.rot90(a, 1),                   # rotated 90 counter-clockwise to display
}


def exif_with_orientation(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("orientation", sorted(DISPLAYED))
def test_exif_orientation_is_applied(tmp_path, orientation):
    path = tmp_path / f"rotated{orientation}.jpg"
    rng = np.random.default_rng(orientation)
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(
        path, quality=95, exif=exif_with_orientation(orientation))
    with Image.open(path) as raw:
        assert raw.getexif()[0x0112] == orientation
        stored = np.asarray(raw.convert("RGB"))
    result = pixels(read_image(path))
    np.testing.assert_array_equal(result, DISPLAYED[orientation](stored))
    assert result.shape[:2] == ((40, 24) if orientation >= 5 else (24, 40))


# --- refused, naming the file ---------------------------------------------------------------

def a_jpeg_and_a_png(tmp_path):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    image.save(tmp_path / "whole.jpg", quality=90)
    image.save(tmp_path / "whole.png")
    return [tmp_path / "whole.jpg", tmp_path / "whole.png"]


def test_truncated_files_are_refused(tmp_path):
    for whole in a_jpeg_and_a_png(tmp_path):
        data = whole.read_bytes()
        for keep in (len(data) // 2, len(data) - 100):  # cut inside the pixel data
            cut = tmp_path / f"cut{keep}{whole.suffix}"
            cut.write_bytes(data[:keep])
            expect_refused(cut, "a truncated or damaged file")


def test_truncated_files_are_refused_even_if_pillow_was_told_to_load_them(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for whole in a_jpeg_and_a_png(tmp_path):
        data = whole.read_bytes()
        cut = tmp_path / f"cut{whole.suffix}"
        cut.write_bytes(data[:len(data) * 2 // 3])
        expect_refused(cut, "a truncated or damaged file")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is left as it was
        read_image(whole)


def test_empty_missing_folder_and_non_image_files_are_refused(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    expect_refused(tmp_path / "empty.png", r"an empty file \(0 bytes\)")
    (tmp_path / "notes.jpg").write_text("frame 7: subject blinked\n")
    expect_refused(tmp_path / "notes.jpg", "a file in no image format Pillow reads")
    expect_refused(tmp_path / "missing.jpg", "no such file")
    (tmp_path / "folder.jpg").mkdir()
    expect_refused(tmp_path / "folder.jpg", "a folder")


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
    # A PNG declaring 30000 x 30000 pixels (900 megapixels) in a few bytes.
    bomb = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + png_chunk(b"IEND", b""))
    expect_refused(bomb, "an image over the decompression-bomb limit PIL.Image.MAX_IMAGE_PIXELS")
    # Between the limit and twice it Pillow only warns; the reader refuses.
    path = tmp_path / "large.png"
    Image.new("RGB", (12, 12)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    expect_refused(path, "an image over the decompression-bomb limit")


def test_read_errors_cross_process_boundaries(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    err = expect_refused(tmp_path / "empty.png", "an empty file")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ImageReadError and str(again) == str(err)
    assert again.reason == "unreadable image" and again.source == str(tmp_path / "empty.png")


# --- arrays --------------------------------------------------------------------------------

def test_arrays_convert_like_files():
    np.testing.assert_array_equal(pixels(to_rgb8(np.array([SIXTEEN_BIT], dtype=np.uint16)))[0, :, 0],
                                  EIGHT_BIT)
    rgba = np.array([[[255, 0, 10, 64], [0, 0, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(pixels(to_rgb8(rgba))[0], [[160, 96, 98], [128, 128, 128]])
    np.testing.assert_array_equal(pixels(to_rgb8(np.array([[0.0, 0.5, 1.0]])))[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(pixels(to_rgb8(np.array([[True, False]])))[0, :, 0], [255, 0])
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(pixels(to_rgb8(rgb)), rgb)
    with pytest.raises(ImageReadError, match=r"^frame 3: expected a readable image, found an array of "
                                             r"dtype int32; expected uint8, uint16, bool or float"):
        to_rgb8(np.zeros((2, 2), dtype=np.int32), source="frame 3")
    with pytest.raises(ImageReadError, match=r"found an array of shape \[2, 2, 5\]"):
        to_rgb8(np.zeros((2, 2, 5), dtype=np.uint8))
    with pytest.raises(ImageReadError, match=r"found float pixels from 0 to 255; expected 0\.\.1"):
        to_rgb8(np.array([[0.0, 255.0]]))


# --- the package reads through it ----------------------------------------------------------

def replace_frame(tree, key, image: Image.Image) -> None:
    """Swap one raw frame's JPEG for ``image`` saved as PNG (same frame number)."""
    old = tree.truth[key]["image"]
    old.unlink()
    image.save(old.with_suffix(".png"))


def aligned(out, key):
    subject, task, frame = key
    return out / "images" / "BP4D" / subject / task / f"{frame}.jpg"


def grey_of(tree, key) -> np.ndarray:
    with Image.open(tree.truth[key]["image"]) as image:
        return np.asarray(image.convert("L"))


def test_prepare_aligns_a_16_bit_grey_frame_like_its_8_bit_twin(tmp_path):
    """A 16-bit grey raw frame gave a uniform white face (clipped to 255) counted as
    prepared; now it aligns exactly like the same picture in 8 bits."""
    reference, sixteen = write_bp4d(tmp_path / "raw8"), write_bp4d(tmp_path / "raw16")
    key = min(k for k in sixteen.truth if k[:2] == ("F001", "T1"))
    grey = grey_of(sixteen, key)
    replace_frame(reference, key, Image.fromarray(grey))
    replace_frame(sixteen, key, Image.fromarray(grey.astype(np.uint16) * 257))
    assert mode_of(sixteen.truth[key]["image"].with_suffix(".png")) == "I;16"
    prepare_dataset(reference.root, tmp_path / "out8", workers=0, progress=False)
    manifest = prepare_dataset(sixteen.root, tmp_path / "out16", workers=0, progress=False)
    assert manifest["frames"] == len(sixteen.truth) and manifest["skipped"]["total"] == 0
    with Image.open(aligned(tmp_path / "out16", key)) as image:
        face = np.asarray(image.convert("L"))
    assert face.std() > 10 and (face > 250).mean() < 0.05  # a face, not a white sheet
    assert aligned(tmp_path / "out16", key).read_bytes() == aligned(tmp_path / "out8", key).read_bytes()


def test_prepare_aligns_an_exif_rotated_frame_as_displayed(tmp_path):
    """Landmarks refer to the picture as viewers show it: a frame stored rotated with an
    EXIF Orientation tag aligns exactly like the upright frame."""
    upright, rotated = write_bp4d(tmp_path / "upright"), write_bp4d(tmp_path / "rotated")
    key = min(k for k in rotated.truth if k[:2] == ("F003", "T1"))
    with Image.open(rotated.truth[key]["image"]) as image:
        picture = np.asarray(image.convert("RGB"))
    replace_frame(upright, key, Image.fromarray(picture))
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(picture, 1)))  # orientation 6 turns it back
    old = rotated.truth[key]["image"]
    old.unlink()
    stored.save(old.with_suffix(".png"), exif=exif_with_orientation(6))
    prepare_dataset(upright.root, tmp_path / "out_upright", workers=0, progress=False)
    prepare_dataset(rotated.root, tmp_path / "out_rotated", workers=0, progress=False)
    for k in rotated.truth:
        assert aligned(tmp_path / "out_rotated", k).read_bytes() == aligned(tmp_path / "out_upright", k).read_bytes()


def test_the_dataset_reads_aligned_faces_through_the_reader(prepared_bp4d, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(prepared_bp4d[1], out)
    ds = PreparedListDataset(out, "BP4D_part1", train=False)
    path = ds.table.image_path[0]
    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(path, format="PNG")  # 16-bit under a .jpg name
    image = ds[0]["image"].numpy()  # [3, 176, 176] in [-1, 1]
    centre = grey[12:188, 12:188].astype(np.float32) / 127.5 - 1.0
    for channel in image:
        np.testing.assert_allclose(channel, centre, atol=1e-6)

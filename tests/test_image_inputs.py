"""Every image form users have: JPEGs decoded at the scale the network
needs, EXIF orientation, 16-bit images, bytes and file objects, OpenCV's BGR
order, HEIC, and a float array's error message. Each on a real photo."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_detect import as_tuples, assert_same_faces_iou  # tests/ is on sys.path (conftest)

import ssdface
from ssdface.image import decode


def assert_same_faces(got, want, min_iou=0.9):
    """The same faces (Face lists), boxes paired at IoU >= min_iou."""
    assert_same_faces_iou(as_tuples(got), as_tuples(want), min_iou)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory, photos):
    """A 4000x3000 JPEG of the group photo (upscaled at test time)."""
    path = tmp_path_factory.mktemp("big") / "group_4000x3000.jpg"
    Image.fromarray(photos["group_selfie"]).resize((4000, 3000), Image.BICUBIC).save(
        path, quality=92)
    return path


def test_big_jpeg_is_decoded_at_the_smallest_sufficient_scale(big_jpeg, detector):
    decoded = decode(big_jpeg)
    assert decoded.size == (4000, 3000)
    assert decoded.pixels.shape == (375, 500, 3)  # 1/8: still >= 300 on both axes
    assert decoded.scale == (8.0, 8.0)
    with Image.open(big_jpeg) as im:
        full = np.asarray(im.convert("RGB"))
    want = detector.detect(full)
    assert len(want) == 4
    got = detector.detect(big_jpeg)
    assert_same_faces(got, want)
    for f in got:  # boxes in pixels of the original 4000x3000 image
        assert 0 <= f.box[0] < f.box[2] <= 4000 and 0 <= f.box[1] < f.box[3] <= 3000
    assert ssdface.preprocess(big_jpeg).shape == (1, 300, 300, 3)


def test_small_jpeg_is_decoded_in_full(photo_paths):
    decoded = decode(photo_paths["foliage_no_face"])  # 600x400: 1/2 would be 200 high
    assert decoded.pixels.shape == (400, 600, 3) and decoded.scale == (1.0, 1.0)


def _rotated_with_exif(rgb: np.ndarray) -> Image.Image:
    """The photo stored rotated 90 degrees, with the EXIF orientation (6)
    that tells viewers to turn it upright again."""
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.info["exif"] = exif.tobytes()
    return stored, exif


@pytest.mark.parametrize("form", ["path", "bytes", "pil"])
def test_exif_orientation_is_applied(form, photos, detector, tmp_path):
    rgb = photos["group_selfie"]
    stored, exif = _rotated_with_exif(rgb)
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as im:
        assert ImageOps.exif_transpose(im).size == (1500, 1000)
    source = {"path": lambda: path, "bytes": lambda: path.read_bytes(),
              "pil": lambda: Image.open(path)}[form]()
    faces = detector.detect(source)
    assert_same_faces(faces, detector.detect(rgb))  # upright, original pixels
    assert decode(source if form != "pil" else Image.open(path)).size == (1500, 1000)


def test_bytes_bytesio_and_file_objects(photo_paths, detector):
    path = photo_paths["group_selfie"]
    want = detector.detect(path)
    data = path.read_bytes()
    assert detector.detect(data) == want
    assert detector.detect(bytearray(data)) == want
    assert detector.detect(memoryview(data)) == want
    assert detector.detect(io.BytesIO(data)) == want
    with open(path, "rb") as f:
        assert detector.detect(f) == want
        assert not f.closed  # the caller's file stays open
    with pytest.raises(OSError, match="cannot read image from bytes"):
        detector.detect(data[: len(data) // 50])  # truncated JPEG


def _png16_rgb(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def test_16_bit_images(photos, detector, tmp_path):
    rgb = photos["group_selfie"]
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    gray16 = gray.astype(np.uint16) * 257
    want_gray = detector.detect(gray)
    assert len(want_gray) == 3  # the faint face at the back is lost in gray
    for fmt in ("PNG", "TIFF"):
        path = tmp_path / f"gray16.{fmt.lower()}"
        Image.fromarray(gray16).save(path, fmt)
        with Image.open(path) as im:
            assert im.mode.startswith("I")  # 16-bit: used to give zero faces
            assert detector.detect(im) == want_gray
        assert detector.detect(path) == want_gray
    assert detector.detect(gray16) == want_gray  # uint16 array
    rgb16 = rgb.astype(np.uint16) * 257
    assert detector.detect(rgb16) == detector.detect(rgb)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png16_rgb(rgb16))
    assert_same_faces(detector.detect(path), detector.detect(rgb), 0.95)


def test_bgr_arrays(photos, detector):
    rgb = photos["group_selfie"]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    want = detector.detect(rgb)
    assert detector.detect(bgr, bgr=True) == want
    assert detector.detect(bgr) != want  # taken as RGB it is another image
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    bgra = np.dstack([bgr, alpha])
    assert detector.detect(bgra, bgr=True) == detector.detect(np.dstack([rgb, alpha]))
    assert detector.detect_batch([bgr, bgr], bgr=True) == [want, want]
    np.testing.assert_array_equal(ssdface.preprocess(bgr, bgr=True), ssdface.preprocess(rgb))
    np.testing.assert_array_equal(detector.preprocess(bgr, bgr=True), detector.preprocess(rgb))
    gray = rgb[:, :, 1]
    assert detector.detect(gray, bgr=True) == detector.detect(gray)  # nothing to swap
    with pytest.raises(ValueError, match="bgr=True applies to numpy arrays"):
        detector.detect(Image.fromarray(rgb), bgr=True)


def test_heic(photos, detector, tmp_path):
    import pillow_heif  # the "heif" extra; part of the test extra

    pillow_heif.register_heif_opener()
    path = tmp_path / "group.heic"
    Image.fromarray(photos["group_selfie"]).save(path, "HEIF", quality=90)
    assert_same_faces(detector.detect(path), detector.detect(photos["group_selfie"]))


@pytest.mark.parametrize("scale,hint", [(1 / 255, "np.clip(x, 0, 1) * 255"),
                                        (1.0, "np.clip(x, 0, 255)")])
def test_float_arrays_say_how_to_convert(photos, detector, scale, hint):
    x = photos["group_selfie"].astype(np.float32) * scale
    with pytest.raises(TypeError) as info:
        detector.detect(x)
    message = str(info.value)
    assert hint in message and "float32" in message and f"{x.max():g}" in message


def test_every_decoder_error_is_an_oserror_naming_the_file(tmp_path, detector):
    """Found by the fuzzer: Pillow raises SyntaxError for a PNG whose chunk
    length is wrong, and TypeError for a TIFF with a bad tag type."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24, 3), np.uint8)).save(
        buf, "PNG")
    png = bytearray(buf.getvalue())
    i = png.index(b"IDAT") - 4
    png[i:i + 4] = struct.pack(">I", struct.unpack(">I", png[i:i + 4])[0] - 8)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "TIFF")
    tif = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", tif, 4)[0]
    for k in range(struct.unpack_from("<H", tif, ifd)[0]):
        e = ifd + 2 + 12 * k
        if struct.unpack_from("<H", tif, e)[0] == 273:  # StripOffsets: a bad type
            struct.pack_into("<H", tif, e + 2, 2)
    for name, data in (("bad.png", png), ("bad.tif", tif)):
        path = tmp_path / name
        path.write_bytes(bytes(data))
        for call in (detector.detect, ssdface.preprocess):
            with pytest.raises(OSError, match=f"cannot read image .*{name}"):
                call(path)


def test_a_fifo_as_an_image_path_is_refused(tmp_path, detector):
    """Found by the fuzzer: Pillow would wait forever for a writer."""
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        detector.detect(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        ssdface.preprocess(str(fifo))

"""Bad input gets a clear Python exception, never a crash or a silent wrong
answer; odd-but-valid input gets the right answer."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ssdface
from ssdface import _core

# --- detect / preprocess -----------------------------------------------------


@pytest.mark.parametrize(
    "image,exc,message",
    [
        (np.zeros((50, 50, 3), np.float32), TypeError, "uint8"),
        (np.zeros((50, 50, 3), np.int64), TypeError, "uint8"),
        (np.zeros((50, 50, 3), bool), TypeError, "uint8"),
        (np.zeros((50, 50, 2), np.uint8), ValueError, "channels"),
        (np.zeros((50, 50, 5), np.uint8), ValueError, "channels"),
        (np.zeros(50, np.uint8), ValueError, "HxW"),
        (np.zeros((2, 50, 50, 3), np.uint8), ValueError, "HxW"),
        (np.zeros((0, 50, 3), np.uint8), ValueError, "empty"),
        (np.zeros((50, 0), np.uint8), ValueError, "empty"),
        ([[0, 1], [2, 3]], TypeError, "numpy array"),
        (None, TypeError, "numpy array"),
        (b"\xff\xd8", OSError, "cannot read image from bytes"),
        (b"", ValueError, "empty"),
    ],
)
def test_bad_images(detector, image, exc, message):
    with pytest.raises(exc, match=message):
        detector.detect(image)
    with pytest.raises(exc, match=message):
        ssdface.preprocess(image)


def test_bad_image_files(detector, tmp_path):
    with pytest.raises(FileNotFoundError):
        detector.detect(tmp_path / "missing.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(OSError, match="junk.jpg"):
        detector.detect(str(junk))
    with pytest.raises(OSError):
        detector.detect(tmp_path)  # a folder


def test_non_contiguous_and_odd_layouts(detector, photos):
    img = photos["group_selfie"]
    expect = detector.detect(np.ascontiguousarray(img[::2, ::2]))
    assert len(expect) == 4
    assert detector.detect(img[::2, ::2]) == expect  # strided view
    assert detector.detect(np.asfortranarray(img[::2, ::2])) == expect
    bgr_view = img[:, :, ::-1]  # negative strides; a different (BGR) image
    np.testing.assert_array_equal(ssdface.preprocess(bgr_view),
                                  ssdface.preprocess(np.ascontiguousarray(bgr_view)))
    gray = np.ascontiguousarray(img[:, :, 1])
    assert detector.detect(gray[:, :, None]) == detector.detect(gray)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 1), (1, 5000, 3), (3000, 2, 4), (299, 301, 3)])
def test_extreme_sizes(detector, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    faces = detector.detect(img)
    h, w = shape[:2]
    for f in faces:
        assert 0 <= f.box[0] <= f.box[2] <= w and 0 <= f.box[1] <= f.box[3] <= h
    x = ssdface.preprocess(img)
    assert x.shape == (1, 300, 300, 3) and x.dtype == np.float32
    assert np.all(np.abs(x) <= 1.0 + 1e-6)


# --- forward -----------------------------------------------------------------


@pytest.mark.parametrize(
    "x,exc,message",
    [
        (np.zeros((1, 300, 300, 3), np.float64), TypeError, "float32"),
        (np.zeros((1, 300, 300, 3), np.uint8), TypeError, "float32"),
        (np.zeros((300, 300, 3), np.float32), ValueError, r"x\[None\]"),
        (np.zeros((1, 300, 300, 4), np.float32), ValueError, "shape"),
        (np.zeros((1, 299, 300, 3), np.float32), ValueError, "shape"),
        (np.zeros((0, 300, 300, 3), np.float32), ValueError, "empty"),
        ([[0.0]], TypeError, "numpy array"),
    ],
)
def test_bad_forward_inputs(detector, x, exc, message):
    with pytest.raises(exc, match=message):
        detector.forward(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_forward_input(detector, bad):
    x = np.zeros((2, 300, 300, 3), np.float32)
    x[1, 150, 7, 2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        detector.forward(x)


@pytest.mark.parametrize("at", [(0, 0, 0), (0, 0, 2), (13, 200, 1), (150, 0, 0), (299, 299, 2)])
def test_non_finite_input_is_located(blob_bytes, at):
    """The engine names the first bad value's flat index (it scans in
    vectorised blocks, then looks inside the block that has one)."""
    engine = _core.Engine(blob_bytes, 1)
    x = np.zeros((1, 300, 300, 3), np.float32)
    x[(0, *at)] = np.nan
    x[0, 299, 299, 2] = np.inf
    flat = np.ravel_multi_index(at, (300, 300, 3))
    with pytest.raises(ValueError, match=rf"at flat index {flat}\b"):
        engine.forward(x)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", _core.kernel_sets(dtype="qu8"))
def test_int8_finds_non_finite_input_while_quantizing(blob_bytes, isa, threads):
    """In int8 the input is checked in the quantization's pass (each
    variant's kernel, each thread's part, its tail past the last 16 floats
    included): a NaN or an infinity anywhere is named as in f32, and the
    engine then runs a good input as it did before."""
    engine = _core.Engine(blob_bytes, threads, "qu8")
    engine.kernels = isa
    good = np.random.default_rng(5).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    want_boxes, want_logits = engine.forward(good)
    n = good.size
    for flat, bad in [(0, np.nan), (7, np.inf), (n // 2 - 3, -np.inf), (n // 2 + 5, np.nan),
                      (n - 9, np.nan), (n - 1, np.inf)]:
        x = good.copy()
        x.reshape(-1)[flat] = bad
        with pytest.raises(ValueError, match=rf"non-finite .* at flat index {flat}\b"):
            engine.forward(x)
    boxes, logits = engine.forward(good)
    np.testing.assert_array_equal(boxes, want_boxes)
    np.testing.assert_array_equal(logits, want_logits)


def test_forward_non_contiguous(detector):
    rng = np.random.default_rng(3)
    big = rng.uniform(-1, 1, (2, 300, 300, 6)).astype(np.float32)
    view = big[:, :, :, ::2]
    boxes, logits = detector.forward(view)
    expect = detector.forward(np.ascontiguousarray(view))
    np.testing.assert_array_equal(boxes, expect[0])
    np.testing.assert_array_equal(logits, expect[1])


def test_forward_unaligned(detector):
    """A C-contiguous float32 view at an odd byte offset: the C loops load
    floats from it, which needs 4-byte alignment (UBSan flagged the input
    check in run_forward before the binding copied such arrays)."""
    x = np.random.default_rng(4).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    view = raw[1:].view(np.float32).reshape(x.shape)
    view[...] = x
    assert view.flags.c_contiguous and not view.flags.aligned
    boxes, logits = detector.forward(view)
    expect = detector.forward(x)
    np.testing.assert_array_equal(boxes, expect[0])
    np.testing.assert_array_equal(logits, expect[1])


# --- Detector arguments --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"score_threshold": -0.1}, ValueError),
        ({"score_threshold": 1.5}, ValueError),
        ({"score_threshold": float("nan")}, ValueError),
        ({"iou_threshold": 2}, ValueError),
        ({"iou_threshold": -1e-9}, ValueError),
        ({"max_faces": 0}, ValueError),
        ({"max_faces": 2.5}, TypeError),
        ({"num_threads": 0}, ValueError),
        ({"num_threads": "2"}, TypeError),
        ({"num_threads": True}, TypeError),
    ],
)
def test_bad_detector_arguments(weights_dir, kwargs, exc):
    with pytest.raises(exc):
        ssdface.Detector(weights_dir, **kwargs)


def test_detector_arguments_accepted(weights_dir):
    d = ssdface.Detector(weights_dir, score_threshold=0, iou_threshold=1, max_faces=1,
                         num_threads=2)
    assert "max_faces=1" in repr(d)


@pytest.mark.parametrize(
    "name,value,exc",
    [
        ("score_threshold", 2.0, ValueError),
        ("score_threshold", float("nan"), ValueError),
        ("score_threshold", -1, ValueError),
        ("score_threshold", "0.5", TypeError),
        ("score_threshold", None, TypeError),
        ("iou_threshold", 1.01, ValueError),
        ("iou_threshold", float("nan"), ValueError),
        ("iou_threshold", "x", TypeError),
        ("max_faces", 0, ValueError),
        ("max_faces", -1, ValueError),
        ("max_faces", 2.0, TypeError),
        ("max_faces", True, TypeError),
        ("num_threads", 2, AttributeError),
        ("isa", "scalar", AttributeError),
        ("weights_path", "/tmp/x.blob", AttributeError),
    ],
)
def test_settings_changed_after_construction_are_checked(weights_dir, name, value, exc):
    d = ssdface.Detector(weights_dir)
    before = getattr(d, name)
    with pytest.raises(exc, match=name if exc is not AttributeError else None):
        setattr(d, name, value)
    assert getattr(d, name) == before  # unchanged, still usable
    assert isinstance(d.detect(np.zeros((40, 40, 3), np.uint8)), list)


def test_settings_changed_after_construction_take_effect(weights_dir, photos):
    d = ssdface.Detector(weights_dir)
    img = photos["group_selfie"]
    assert len(d.detect(img)) == 4
    d.score_threshold = 0.995
    assert len(d.detect(img)) == 2
    d.score_threshold = np.float32(0.5)
    d.max_faces = 1
    assert len(d.detect(img)) == 1
    d.max_faces = 2**40  # capped at the anchor count: no overflow, no huge allocation
    assert d.max_faces == 1917 and len(d.detect(img)) == 4
    d.max_faces = np.int64(3)
    assert d.max_faces == 3


@pytest.mark.parametrize("max_faces", [2**31 - 1, 2**40, 10**30])
def test_huge_max_faces_is_capped(weights_dir, photos, max_faces):
    d = ssdface.Detector(weights_dir, max_faces=max_faces)
    assert d.max_faces == 1917
    assert len(d.detect(photos["group_selfie"])) == 4


@pytest.mark.parametrize("isa,exc", [(123, TypeError), (b"avx2", TypeError), ("sse9", ValueError)])
def test_bad_isa(weights_dir, isa, exc):
    with pytest.raises(exc, match="isa|ISA"):
        ssdface.Detector(weights_dir, isa=isa)


def test_detect_batch_refuses_a_single_image(detector, photos, tmp_path):
    img = photos["group_selfie"]
    for one in (img, img[:, :, 0], np.stack([img, img]), str(tmp_path / "x.jpg"), b"\xff\xd8"):
        with pytest.raises(TypeError, match="list of images"):
            detector.detect_batch(one)
    assert detector.detect_batch([img, img[:, :, 0]])[0] == detector.detect(img)
    assert detector.detect_batch(()) == []


# --- threads -------------------------------------------------------------------


def test_one_detector_many_threads(detector, photos):
    """Calls on one detector from 8 threads are serialised and all correct."""
    images = [photos["group_selfie"], photos["portrait_padded"], photos["foliage_no_face"]]
    expected = [detector.detect(img) for img in images]
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(3):
            j = (k + i) % 3
            if detector.detect(images[j]) != expected[j]:
                errors.append(f"thread {k} image {j}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors

"""Batches that run one image per thread ("lanes") and views (an image region
resized into a rectangle of the network input): the same bits as one image at
a time, for every kernel variant and thread count."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ssdface
from ssdface import _core
from ssdface.detector import _faces

VARIANTS = ssdface.available_isas()  # includes "reference"
THREADS = [1, 2, 3]
SIZES = [1, 2, 3, 7]


@pytest.fixture(scope="module")
def inputs(photos):
    """7 different network inputs: the 3 photos and 4 random ones."""
    rng = np.random.default_rng(11)
    xs = [ssdface.preprocess(photos[k]) for k in sorted(photos)]
    xs += [rng.uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32) for _ in range(4)]
    return np.concatenate(xs)


@pytest.mark.parametrize("isa", VARIANTS)
def test_forward_batch_equals_one_image_at_a_time(weights_dir, inputs, isa):
    sizes = SIZES if isa != "reference" else [1, 3]  # the reference kernels are slow
    one = ssdface.Detector(weights_dir, isa=isa, num_threads=1)
    want = [one.forward(inputs[i:i + 1]) for i in range(max(sizes))]
    for threads in THREADS:
        det = ssdface.Detector(weights_dir, isa=isa, num_threads=threads)
        for n in sizes:
            boxes, logits = det.forward(inputs[:n])
            for i in range(n):
                where = f"{threads} threads, {n} images, image {i}"
                np.testing.assert_array_equal(boxes[i], want[i][0][0], err_msg=where)
                np.testing.assert_array_equal(logits[i], want[i][1][0], err_msg=where)


def test_forward_batch_larger_than_a_chunk(weights_dir, inputs):
    """More images than one engine call takes (4 per thread): several chunks,
    the last one a single image (split path)."""
    det = ssdface.Detector(weights_dir, num_threads=2)
    x = np.concatenate([inputs, inputs, inputs[:3]])  # 17 = 2 x 8 + 1
    boxes, logits = det.forward(x)
    for i in range(len(x)):
        b, lg = det.forward(x[i:i + 1])
        np.testing.assert_array_equal(boxes[i], b[0])
        np.testing.assert_array_equal(logits[i], lg[0])


def test_lanes_are_allocated_by_the_first_batch(weights_dir, inputs):
    det = ssdface.Detector(weights_dir, num_threads=2, padded_pass=False)
    start = det._engine.arena_bytes
    det.forward(inputs[:1])
    det.detect(np.zeros((40, 50, 3), np.uint8))
    assert det._engine.arena_bytes == start  # single views: no lanes
    det.forward(inputs[:2])
    grown = det._engine.arena_bytes
    assert grown > start + 2 * 300 * 300 * 3 * 4  # two lanes, each with an input at least
    det.forward(inputs)
    det._engine.detect_views([(np.zeros((5, 5), np.uint8), (0, 0, 300, 300))] * 3, 0.5, 0.5, 10)
    assert det._engine.arena_bytes == grown  # allocated once
    single = ssdface.Detector(weights_dir, num_threads=1)
    before = single._engine.arena_bytes
    single.forward(inputs)
    assert single._engine.arena_bytes == before  # one thread never uses lanes


def test_kernels_without_fusion_after_the_lanes_exist(weights_dir, inputs):
    """Switching to kernels that need spill buffers gives every lane its own."""
    det = ssdface.Detector(weights_dir, num_threads=2, isa="scalar")
    det.forward(inputs[:3])
    before = det._engine.arena_bytes
    det._engine.kernels = "reference"
    assert det._engine.arena_bytes > before
    ref = ssdface.Detector(weights_dir, num_threads=1, isa="reference")
    got = det.forward(inputs[:2])
    for i in range(2):
        want = ref.forward(inputs[i:i + 1])
        np.testing.assert_array_equal(got[0][i], want[0][0])
        np.testing.assert_array_equal(got[1][i], want[1][0])


def test_non_finite_input_fails_the_whole_batch(weights_dir, inputs):
    det = ssdface.Detector(weights_dir, num_threads=2)
    x = inputs.copy()
    x[5, 10, 20, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite.*image 5"):
        det.forward(x)
    boxes, _ = det.forward(inputs[:3])  # the detector still works
    np.testing.assert_array_equal(boxes[2], det.forward(inputs[2:3])[0][0])


# ---- Views ----

def _big_image(seed: int = 3) -> np.ndarray:
    """A photo-like RGBA test card: smooth gradients plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x * 255 / 640, y * 255 / 480, (x + y) * 255 / 1120, np.full_like(x, 200)], -1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def _expected_view(det, pixels, rect, isa, flip=False, **params):
    """The NumPy construction of a view: the crop resized to the rectangle,
    pasted into a mid-grey input (mirrored left-right with ``flip``),
    forward, post-processed in network-input pixels."""
    x0, y0, x1, y1 = rect
    x = np.zeros((1, 300, 300, 3), np.float32)
    x[0, y0:y1, x0:x1] = _core.resize_normalize(np.ascontiguousarray(pixels), y1 - y0, x1 - x0,
                                                impl=isa)
    if flip:
        x = np.ascontiguousarray(x[:, :, ::-1])
    boxes, logits = det.forward(x)
    return ssdface.postprocess(boxes, logits, (300, 300), **params)


def _views(photos):
    big = _big_image()
    group = photos["group_selfie"]
    return [
        (group, (0, 0, 300, 300)),                       # a whole image
        (group[100:700, 300:1200], (10, 20, 250, 280)),  # a crop, shrunk, strided rows
        (big[50:90, 100:160, :3], (40, 0, 300, 200)),     # enlarged (horizontal first)
        (big[:, :, 0], (0, 150, 300, 300)),               # gray, strided, into the bottom half
        (big[10:400, 20:600], (150, 0, 300, 300)),        # RGBA crop, right half
        (big[::2, ::3, :3], (7, 9, 8, 10)),               # not packed (copied), one pixel
        (photos["portrait_padded"], (30, 30, 270, 270)),  # a face, with a grey border
    ]


PARAMS = dict(score_threshold=0.02, iou_threshold=0.6, max_faces=25)


@pytest.mark.parametrize("isa", VARIANTS)
def test_views_match_a_numpy_construction(weights_dir, photos, isa):
    views = _views(photos)
    det1 = ssdface.Detector(weights_dir, isa=isa, num_threads=1)
    if isa == "reference":  # slow kernels: a few views
        views = views[1:4]
    want = [_expected_view(det1, px, rect, isa, **PARAMS) for px, rect in views]
    assert sum(len(w) for w in want) > len(views)  # boxes to compare
    for threads in THREADS if isa != "reference" else [2]:
        det = det1 if threads == 1 else ssdface.Detector(weights_dir, isa=isa,
                                                         num_threads=threads)
        got = det._engine.detect_views(views, *PARAMS.values())
        assert [_faces(g) for g in got] == want, threads
        one = det._engine.detect_views(views[1:2], *PARAMS.values())  # split path
        assert _faces(one[0]) == want[1]


@pytest.mark.parametrize("threads", THREADS)
def test_flipped_views_match_a_mirrored_numpy_construction(weights_dir, photos, threads):
    """flip mirrors the built input (rectangle and pixels), bit for bit, on
    the split path (one view) and on lanes (several)."""
    isa = ssdface.isa.default_isa()
    det = ssdface.Detector(weights_dir, isa=isa, num_threads=threads)
    views = [(px, rect, flip) for px, rect in _views(photos)[:5] for flip in (True, False)]
    want = [_expected_view(det, px, rect, isa, flip=flip, **PARAMS) for px, rect, flip in views]
    assert want[0] != want[1] and want[2] != want[3]  # mirroring changes what the network sees
    got = det._engine.detect_views(views, *PARAMS.values())
    assert [_faces(g) for g in got] == want
    assert _faces(det._engine.detect_views(views[2:3], *PARAMS.values())[0]) == want[2]
    with pytest.raises(TypeError, match="flip must be a bool"):
        det._engine.detect_views([(views[0][0], views[0][1], "yes")], *PARAMS.values())


def test_views_of_strided_crops_are_read_in_place(weights_dir, photos):
    """A crop with packed rows is not copied: changing the parent after
    building the views list changes the result (the crop is read at call
    time, through the parent's row stride)."""
    det = ssdface.Detector(weights_dir, num_threads=2)
    parent = photos["group_selfie"].copy()
    crop = parent[200:800, 100:1000]
    assert not crop.flags.c_contiguous
    got = det._engine.detect_views([(crop, (0, 0, 300, 300))] * 2, *PARAMS.values())
    want = det._engine.detect_views([(np.ascontiguousarray(crop), (0, 0, 300, 300))] * 2,
                                    *PARAMS.values())
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[0])
    # boxes clipped to the network input
    assert got[0].shape[1] == 6 and (got[0][:, :4] >= 0).all() and (got[0][:, :4] <= 300).all()


def test_box_sizes_give_the_boxes_of_detect(weights_dir, photos):
    det = ssdface.Detector(weights_dir, num_threads=2)
    imgs = [photos[k] for k in sorted(photos)]
    rows = det._engine.detect_views([(im, (0, 0, 300, 300)) for im in imgs], 0.5, 0.6, 100,
                                    box_sizes=[(im.shape[1], im.shape[0]) for im in imgs])
    for im, r in zip(imgs, rows):
        np.testing.assert_array_equal(r, det._engine.detect(im, 0.5, 0.6, 100))


# ---- detect_batch ----

def _mixed_images(photos, photo_paths):
    group, portrait = photos["group_selfie"], photos["portrait_padded"]
    gray = np.ascontiguousarray(group[:, :, 0])
    rgba = np.dstack([portrait, np.full(portrait.shape[:2], 255, np.uint8)])
    small = np.ascontiguousarray(group[::5, ::5])
    return [
        group, photo_paths["group_selfie"], gray, str(photo_paths["portrait_padded"]), rgba,
        photos["foliage_no_face"], small, group[100:900, 200:1300],
        photo_paths["foliage_no_face"], portrait, gray[:, :700], rgba[::2, ::2],
        photo_paths["group_selfie"].read_bytes(), group,
    ]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_detect_batch_equals_detect(weights_dir, photos, photo_paths, threads):
    det = ssdface.Detector(weights_dir, num_threads=threads)
    images = _mixed_images(photos, photo_paths)  # 14: several chunks at 1 and 2 threads
    got = det.detect_batch(images)
    want = [det.detect(im) for im in images]
    assert got == want
    assert sum(len(f) for f in got) >= 8
    assert det.detect_batch(images[:1]) == want[:1]
    assert det.detect_batch(tuple(images[:2])) == want[:2]


def test_detect_batch_isas_and_settings(weights_dir, photos, photo_paths):
    images = _mixed_images(photos, photo_paths)[:9]
    for isa in [v for v in VARIANTS if v != "reference"]:
        det = ssdface.Detector(weights_dir, num_threads=2, isa=isa, score_threshold=0.1,
                               max_faces=3, iou_threshold=0.3)
        assert det.detect_batch(images) == [det.detect(im) for im in images]


def test_detect_batch_bgr(weights_dir, photos):
    det = ssdface.Detector(weights_dir, num_threads=2)
    rgb = photos["group_selfie"]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    got = det.detect_batch([bgr] * 9, bgr=True)
    assert got == [det.detect(rgb)] * 9


def test_detect_batch_errors(weights_dir, photos, tmp_path):
    det = ssdface.Detector(weights_dir, num_threads=2)
    img = photos["portrait_padded"]
    with pytest.raises(TypeError, match="list of images"):
        det.detect_batch(img)
    with pytest.raises(FileNotFoundError):
        det.detect_batch([img] * 10 + [tmp_path / "missing.jpg"])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError, match="cannot read image"):
        det.detect_batch([bad] + [img] * 10)
    with pytest.raises(TypeError, match="dtype"):
        det.detect_batch([img, img.astype(np.float32)])
    with pytest.raises(ValueError, match="bgr=True"):
        det.detect_batch([str(bad)], bgr=True)
    assert det.detect_batch([img] * 3) == [det.detect(img)] * 3  # still fine


# ---- bad views ----

GOOD = np.zeros((20, 30, 3), np.uint8)


@pytest.mark.parametrize("views, exc, message", [
    ([], ValueError, "empty"),
    ((GOOD, (0, 0, 300, 300)), TypeError, "view 0"),  # one view, not a list of them
    ("abc", TypeError, "list"),
    ([GOOD], TypeError, "view 0"),
    ([(GOOD, (0, 0, 300, 300), 1)], TypeError, "view 0"),
    ([(GOOD, (0, 0, 300, 300)), ([[1]], (0, 0, 1, 1))], TypeError, "view 1: pixels"),
    ([(GOOD.astype(np.float32), (0, 0, 10, 10))], TypeError, "uint8"),
    ([(np.zeros((4, 4, 2), np.uint8), (0, 0, 10, 10))], ValueError, "channels"),
    ([(np.zeros((4, 4, 3, 1), np.uint8), (0, 0, 10, 10))], ValueError, "shape"),
    ([(np.zeros((0, 4, 3), np.uint8), (0, 0, 10, 10))], ValueError, "empty"),
    ([(GOOD, (0, 0, 301, 300))], ValueError, "inside"),
    ([(GOOD, (-1, 0, 30, 30))], ValueError, "inside"),
    ([(GOOD, (10, 0, 10, 30))], ValueError, "non-empty"),
    ([(GOOD, (0, 40, 30, 30))], ValueError, "non-empty"),
    ([(GOOD, (0, 0, 30.0, 30))], TypeError, "integers"),
    ([(GOOD, (0, 0, True, 30))], TypeError, "integers"),
    ([(GOOD, (0, 0, 30))], TypeError, "integers"),
    ([(GOOD, None)], TypeError, "integers"),
])
def test_bad_views(weights_dir, views, exc, message):
    det = ssdface.Detector(weights_dir, num_threads=2)
    with pytest.raises(exc, match=message):
        det._engine.detect_views(views, 0.5, 0.6, 10)
    ok = det._engine.detect_views([(GOOD, (0, 0, 300, 300))] * 2, 0.5, 0.6, 10)
    assert len(ok) == 2


def test_bad_view_arguments(weights_dir):
    det = ssdface.Detector(weights_dir, num_threads=2)
    views = [(GOOD, (0, 0, 300, 300))] * 2
    with pytest.raises(ValueError, match="max_faces"):
        det._engine.detect_views(views, 0.5, 0.6, 0)
    with pytest.raises(ValueError, match="box_sizes"):
        det._engine.detect_views(views, 0.5, 0.6, 10, box_sizes=[(1, 1)])
    with pytest.raises(ValueError, match="positive"):
        det._engine.detect_views(views, 0.5, 0.6, 10, box_sizes=[(1, 1), (0, 5)])
    with pytest.raises(ValueError, match="positive"):
        det._engine.detect_views(views, 0.5, 0.6, 10, box_sizes=[(1, 1), (float("nan"), 5)])
    with pytest.raises(TypeError, match="box_sizes"):
        det._engine.detect_views(views, 0.5, 0.6, 10, box_sizes=[(1, 1), "ab"])
    # a huge max_faces is capped at the anchor count
    assert len(det._engine.detect_views(views, 0.0, 1.0, 10**6)[0]) == 1917
    det.close()
    with pytest.raises(ValueError, match="closed"):
        det._engine.detect_views(views, 0.5, 0.6, 10)


def test_a_view_that_cannot_be_allocated_fails_the_batch_cleanly(weights_dir):
    """One view of a batch whose resize scratch cannot be allocated (under an
    address-space limit): MemoryError after every thread has finished, and
    the detector keeps working. On lanes (2 threads) and split (1 thread)."""
    code = textwrap.dedent(f"""
        import resource
        import numpy as np, ssdface
        for threads in (2, 1):
            det = ssdface.Detector({str(weights_dir)!r}, num_threads=threads)
            small = [(np.full((50, 60, 3), 90, np.uint8), (0, 0, 300, 300))] * 3
            want = det._engine.detect_views(small, 0.01, 0.6, 20)  # lanes, thread arenas
            # 1 x 2**26 gray into one pixel: some 512 MB of resize scratch
            huge = (np.zeros((1, 2**26), np.uint8), (0, 0, 1, 1))
            vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status")
                  if l.startswith("VmSize:")][0]
            resource.setrlimit(resource.RLIMIT_AS, (vm + 200 * 2**20, resource.RLIM_INFINITY))
            try:
                det._engine.detect_views(small[:2] + [huge] + small, 0.01, 0.6, 20)
                print("no error")
            except MemoryError as exc:
                print("MemoryError", threads, "out of memory resizing" in str(exc))
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
            got = det._engine.detect_views(small, 0.01, 0.6, 20)
            print("same", all(np.array_equal(a, b) for a, b in zip(got, want)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:4] == [
        "MemoryError 2 True", "same True", "MemoryError 1 True", "same True"], proc.stdout


def test_ctrl_c_interrupts_a_batch_on_lanes(weights_dir):
    """On 2 threads a forward batch runs in chunks of 8 images: SIGINT acts
    after the current chunk, long before the 64 images are done."""
    code = f"""
import os, signal, threading, time
import numpy as np, ssdface
d = ssdface.Detector({str(weights_dir)!r}, num_threads=2)
batch = np.zeros((64, 300, 300, 3), np.float32)
d.forward(batch[:8])
def chunk_time():
    t0 = time.perf_counter(); d.forward(batch[:8]); return time.perf_counter() - t0
chunks = [chunk_time(), chunk_time()]
# On a loaded machine (the sanitizer's xdist workers, other jobs) one
# measurement may be several times too long: the timer goes by the shorter,
# so that it fires during the batch; the bound by the longest, after too.
threading.Timer(0.5 * min(chunks), lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t0 = time.perf_counter()
try:
    d.forward(batch)
    print("not interrupted")
except KeyboardInterrupt:
    took = time.perf_counter() - t0
    print("chunks", took / max(*chunks, chunk_time()))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = proc.stdout.split()
    assert words[0] == "chunks", proc.stdout
    assert float(words[1]) < 4.0, f"interrupt took {words[1]} chunk times (8 were queued)"

"""Detector-level views: the padded pass (close-ups), min_face_size tiles,
their settings, and that every entry point (detect, detect_batch, decode,
pickling, files at reduced scale) agrees. The planner and the merge on
synthetic inputs: test_tiling.py; views in the engine: test_batch.py."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

import ssdface
from ssdface import tiling

# group_selfie.jpg's faces (README of shared/images), about 10 px.
GROUP_FACES = [(560, 254, 773, 526), (975, 293, 1154, 543), (313, 321, 502, 566),
               (813, 189, 981, 405)]


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def matches(found, truth, at: float = 0.5) -> int:
    return sum(any(iou(f.box, t) >= at for f in found) for t in truth)


@pytest.fixture(scope="module")
def det(weights_dir):
    return ssdface.Detector(weights_dir, num_threads=2)


@pytest.fixture(scope="module")
def close_up(photos, det):
    """The portrait of portrait_padded.jpg cut out so that the face spans
    80% of the frame's height (a close-up, as phones take them), and the
    face's box in it."""
    img = photos["portrait_padded"]
    faces = det.detect(img)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    side = max(x1 - x0, y1 - y0) / 0.8
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(cx - side / 2), int(cy - side / 2)
    crop = np.ascontiguousarray(img[top:top + int(side), left:left + int(side)])
    return crop, (x0 - left, y0 - top, x1 - left, y1 - top)


def test_close_up_portrait_found_by_the_defaults(det, close_up, weights_dir):
    crop, box = close_up
    faces = det.detect(crop)
    assert det.last_passes == 2
    assert len(faces) == 1 and iou(faces[0].box, box) > 0.6, faces
    # the padded pass is what finds it: one pass misses the face
    one = ssdface.Detector(weights_dir, padded_pass=False)
    assert one.detect(crop) == [] and one.last_passes == 1


def test_defaults_find_the_group(det, photos, photo_paths):
    for image in (photos["group_selfie"], photo_paths["group_selfie"]):
        faces = det.detect(image)
        assert len(faces) == 4 and matches(faces, GROUP_FACES) == 4, faces
    assert det.detect(photos["foliage_no_face"]) == []


@pytest.mark.parametrize("mfs", [48, 100])
def test_tiles_keep_the_faces_and_add_no_duplicates(det, photos, mfs):
    faces = det.detect(photos["group_selfie"], min_face_size=mfs)
    w, h = 1500, 1000
    assert det.last_passes == 2 + tiling.count(w, h, mfs) > 2
    assert len(faces) == 4 and matches(faces, GROUP_FACES) == 4, faces
    assert det.detect(photos["foliage_no_face"], min_face_size=mfs) == []


def test_a_small_face_needs_tiles(det, close_up):
    """A 36 px face in a 1600x1200 photo: 7 network pixels in the whole
    view, lost; min_face_size=32 magnifies it onto the anchors and the box
    comes back in original pixels."""
    crop, box = close_up
    scale = 36 / (box[3] - box[1])
    small = np.asarray(Image.fromarray(crop).resize(
        (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), Image.LANCZOS))
    canvas = np.full((1200, 1600, 3), 120, np.uint8)
    canvas += np.random.default_rng(0).integers(0, 20, canvas.shape, dtype=np.uint8)
    top, left = 700, 430
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    truth = [(left + box[0] * scale, top + box[1] * scale,
              left + box[2] * scale, top + box[3] * scale)]
    assert matches(det.detect(canvas), truth) == 0
    faces = det.detect(canvas, min_face_size=32)
    assert matches(faces, truth) == 1, (faces, truth)
    assert det.min_face_size is None  # a per-call override changes nothing else


def test_detect_batch_equals_detect(weights_dir, photos, close_up):
    images = [photos["group_selfie"], close_up[0], photos["foliage_no_face"],
              photos["portrait_padded"]] * 3
    for threads in (1, 2):
        det = ssdface.Detector(weights_dir, num_threads=threads, min_face_size=120)
        want = [det.detect(im) for im in images]
        passes = sum(2 + tiling.count(im.shape[1], im.shape[0], 120) for im in images)
        assert det.detect_batch(images) == want
        assert det.last_passes == passes
        want = [det.detect(im, min_face_size=None) for im in images]
        assert det.detect_batch(images, min_face_size=None) == want
        assert det.last_passes == 2 * len(images)


def test_bgr_through_the_views(det, photos):
    rgb = photos["group_selfie"]
    assert det.detect(np.ascontiguousarray(rgb[:, :, ::-1]), bgr=True, min_face_size=150) == \
        det.detect(rgb, min_face_size=150)


def test_jpeg_decoded_at_the_scale_the_tiles_need(det, photos):
    """A 3000x2000 JPEG: the default two passes take a 1/4-scale decode; tiles
    for 100 px faces need more of its pixels. Either way the boxes come back
    in pixels of the original and agree with the full-resolution array."""
    big = np.asarray(Image.fromarray(photos["group_selfie"]).resize((3000, 2000)))
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert det.decode(data).pixels.shape[1] == 750  # 1/4: at 1/8 the 2000 rows give 250 < 300
    tiled = det.decode(data, min_face_size=100)
    assert tiled.pixels.shape[1] > 750 and tiled.size == (3000, 2000)
    for mfs in (None, 100):
        from_file = det.detect(data, min_face_size=mfs)
        from_array = det.detect(decoded, min_face_size=mfs)
        assert len(from_file) == len(from_array) == 4
        for a, b in zip(sorted(from_file, key=lambda f: f.box), sorted(from_array,
                                                                       key=lambda f: f.box)):
            assert iou(a.box, b.box) > 0.85
        # detect takes a Decoded as it is (the CLI decodes in another thread)
        assert det.detect(det.decode(data, min_face_size=mfs), min_face_size=mfs) == from_file


@pytest.mark.parametrize("value, exc", [
    (0, ValueError), (-5, ValueError), (7.9, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), ("32", TypeError), (True, TypeError), ([32], TypeError),
])
def test_bad_min_face_size(weights_dir, det, photos, value, exc):
    with pytest.raises(exc, match="min_face_size"):
        ssdface.Detector(weights_dir, min_face_size=value)
    with pytest.raises(exc, match="min_face_size"):
        det.detect(photos["foliage_no_face"], min_face_size=value)
    with pytest.raises(exc, match="min_face_size"):
        det.min_face_size = value
    assert det.min_face_size is None


def test_other_view_settings(weights_dir):
    with pytest.raises(TypeError, match="padded_pass"):
        ssdface.Detector(weights_dir, padded_pass=1)
    with pytest.raises(ValueError, match="max_passes"):
        ssdface.Detector(weights_dir, max_passes=0)
    d = ssdface.Detector(weights_dir, min_face_size=np.float32(40), padded_pass=False)
    assert d.min_face_size == 40.0 and not d.padded_pass
    assert "min_face_size=40.0" in repr(d) and "padded_pass=False" in repr(d)


def test_a_plan_over_max_passes_is_refused_before_it_runs(det):
    huge = np.zeros((3000, 4000, 3), np.uint8)
    with pytest.raises(ValueError, match=r"takes \d+ forward passes, over max_passes=2048"):
        det.detect(huge, min_face_size=8)
    thin = np.zeros((10, 100000, 3), np.uint8)  # extreme aspect: a tile every few pixels
    with pytest.raises(ValueError, match="max_passes"):
        det.detect(thin, min_face_size=64)
    assert len(det.detect(thin)) == 0 and det.last_passes == 2


def test_pickled_detector_keeps_the_view_settings(weights_dir, photos):
    d = ssdface.Detector(weights_dir, min_face_size=64, padded_pass=False, max_passes=500,
                         score_threshold=0.4)
    c = pickle.loads(pickle.dumps(d))
    assert (c.min_face_size, c.padded_pass, c.max_passes, c.score_threshold) == (64, False, 500,
                                                                                 0.4)
    assert c.detect(photos["group_selfie"]) == d.detect(photos["group_selfie"])


def test_scores_stay_above_the_stand_in_floor(det, photos):
    """The all-zero stand-in tensor makes input-independent boxes up to
    0.267; the default threshold keeps them out even on a blank image."""
    assert ssdface.detector.DEFAULT_SCORE_THRESHOLD > 0.267
    for image in (np.zeros((300, 300, 3), np.uint8), np.full((480, 640, 3), 255, np.uint8)):
        assert det.detect(image) == []
        assert det.detect(image, min_face_size=32) == []

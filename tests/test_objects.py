"""Face records and the Detector as an object: helpers on Face, close and
the context manager, building from bytes, and pickling, exercised through
the real process pools users reach for (multiprocessing with fork and spawn,
concurrent.futures, joblib, Dask)."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import pickle

import numpy as np
import pytest
from PIL import Image
from thread_support import native_threads, settled_threads, wait_gone

import ssdface
from ssdface import Face

# --- Face ------------------------------------------------------------------------


def test_face_helpers():
    f = Face(box=(10.0, 20.0, 50.0, 100.0), score=0.9)
    assert f.xywh == (10.0, 20.0, 40.0, 80.0)
    assert f.center == (30.0, 60.0)
    assert f.area == 3200.0
    assert f.to_dict() == {"box": [10.0, 20.0, 50.0, 100.0], "score": 0.9}
    assert json.loads(json.dumps(f.to_dict())) == f.to_dict()


def test_face_crop(photos, detector):
    img = photos["group_selfie"]
    face = detector.detect(img)[0]
    crop = face.crop(img)
    x0, y0, x1, y1 = face.crop_box(img.shape[1], img.shape[0])
    assert crop.shape == (y1 - y0, x1 - x0, 3)
    np.testing.assert_array_equal(crop, img[y0:y1, x0:x1])
    wide = face.crop(img, margin=0.25)
    assert wide.shape[0] > crop.shape[0] * 1.4 and wide.shape[1] > crop.shape[1] * 1.4
    pil = face.crop(Image.fromarray(img), margin=0.25)
    np.testing.assert_array_equal(np.asarray(pil), wide)
    edge = Face(box=(-5.0, -5.0, 20.0, 30.0), score=1.0)  # clipped to the image
    assert edge.crop(img, margin=1.0).shape == (65, 45, 3)  # 30 + 35 high, 20 + 25 wide
    with pytest.raises(ValueError, match="margin"):
        face.crop(img, margin=-0.1)
    with pytest.raises(TypeError, match="crop takes"):
        face.crop("photo.jpg")


# --- close, context manager, bytes --------------------------------------------------


def test_close_and_context_manager(weights_dir, photos):
    with ssdface.Detector(weights_dir, num_threads=2) as d:
        assert len(d.detect(photos["group_selfie"])) == 4
    assert d.closed and "closed" in repr(d)
    for call in (lambda: d.detect(photos["group_selfie"]), lambda: d.isa,
                 lambda: d.forward(np.zeros((1, 300, 300, 3), np.float32))):
        with pytest.raises(ValueError, match="closed"):
            call()
    d.close()  # idempotent


def test_close_stops_the_threads(weights_dir):
    """close() stops the detector's own native threads (by thread id: see
    thread_support)."""
    import threading

    settled_threads()
    before = threading.active_count()
    tids = native_threads()
    d = ssdface.Detector(weights_dir, num_threads=4)
    # The caller's thread is the fourth: three workers.
    mine = native_threads() - tids
    assert len(mine) == 3, f"new threads: {sorted(mine)}"
    d.close()
    assert not wait_gone(mine), "close() left the detector's threads running"
    assert threading.active_count() == before


def test_detector_from_bytes(weights_dir, tmp_path, photos):
    path = tmp_path / "w.blob"
    ssdface.pack_weights(weights_dir, path)
    data = bytearray(path.read_bytes())
    d = ssdface.Detector(data)
    assert d.weights_path is None and len(d.detect(photos["group_selfie"])) == 4
    data[:] = b"\0" * len(data)  # the detector holds its own copy
    assert len(d.detect(photos["group_selfie"])) == 4
    with pytest.raises(ssdface.BlobError, match="magic"):
        ssdface.Detector(bytes(data))


# --- pickling ------------------------------------------------------------------------


def _faces_in(det: ssdface.Detector, path: str) -> list[tuple]:
    return [(tuple(round(v, 2) for v in f.box), round(f.score, 4)) for f in det.detect(path)]


_DET: ssdface.Detector | None = None


def _set_detector(det: ssdface.Detector) -> None:
    global _DET
    _DET = det


def _detect_with_global(path: str) -> list[tuple]:
    return _faces_in(_DET, path)


def _detect_with(args: tuple) -> list[tuple]:
    det, path = args
    return _faces_in(det, path)


@pytest.fixture(scope="module")
def tuned(weights_dir):
    """A detector with non-default settings, to see they travel."""
    return ssdface.Detector(weights_dir, score_threshold=0.7, max_faces=3, num_threads=2)


def test_pickle_round_trip(tuned, photo_paths, tmp_path, weights_dir):
    copy = pickle.loads(pickle.dumps(tuned))
    assert (copy.score_threshold, copy.max_faces, copy.num_threads, copy.isa) == (
        0.7, 3, 2, tuned.isa)
    assert copy.weights_path == tuned.weights_path
    path = str(photo_paths["group_selfie"])
    assert _faces_in(copy, path) == _faces_in(tuned, path)
    assert len(_faces_in(copy, path)) == 3  # max_faces travelled
    blob = tmp_path / "b.blob"
    ssdface.pack_weights(weights_dir, blob)
    from_bytes = ssdface.Detector(blob.read_bytes())
    again = pickle.loads(pickle.dumps(from_bytes))
    assert again.weights_path is None and _faces_in(again, path) == _faces_in(from_bytes, path)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pool(tuned, photo_paths, method):
    path = str(photo_paths["group_selfie"])
    want = _faces_in(tuned, path)
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        assert pool.map(_detect_with, [(tuned, path)] * 4) == [want] * 4
    with ctx.Pool(2, initializer=_set_detector, initargs=(tuned,)) as pool:
        assert pool.map(_detect_with_global, [path] * 4) == [want] * 4


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_executor(tuned, photo_paths, method):
    path = str(photo_paths["group_selfie"])
    want = _faces_in(tuned, path)
    with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context(method)) as ex:
        assert list(ex.map(_detect_with, [(tuned, path)] * 4)) == [want] * 4


def test_joblib(tuned, photo_paths):
    import joblib

    path = str(photo_paths["group_selfie"])
    want = _faces_in(tuned, path)
    out = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_faces_in)(tuned, path) for _ in range(4))
    assert out == [want] * 4


def test_dask_bag(tuned, photo_paths):
    import dask.bag as bag

    paths = [str(p) for p in photo_paths.values()]
    want = [_faces_in(tuned, p) for p in paths]
    got = bag.from_sequence(paths, npartitions=2).map(
        lambda p, det=tuned: _faces_in(det, p)).compute(scheduler="processes", num_workers=2)
    assert got == want

"""Kernel variants and threads: every variant this CPU runs, on the whole
network, against the float64 reference; work split in pieces as the thread
pool splits it; results independent of the thread count."""

from __future__ import annotations

import numpy as np
import pytest
import reference
from thread_support import native_threads, settled_threads, wait_gone

import ssdface
from ssdface import _testing

VARIANTS = ssdface.available_isas()  # includes "reference"




@pytest.fixture(scope="module")
def photo_input(photos):
    return ssdface.preprocess(photos["group_selfie"])


@pytest.fixture(scope="module")
def photo_reference(ref_cache, photo_input):
    return ref_cache.forward("isa:group_selfie", lambda: photo_input.astype(np.float64))


@pytest.mark.parametrize("isa", VARIANTS)
def test_whole_network_per_variant(weights_dir, photo_input, photo_reference, isa):
    det = ssdface.Detector(weights_dir, isa=isa)
    assert det.isa == isa
    boxes, logits = det.forward(photo_input)
    assert reference.rel_l2(boxes, photo_reference[0]) <= 1e-4
    assert reference.rel_l2(logits, photo_reference[1]) <= 1e-4


@pytest.mark.parametrize("isa", [v for v in VARIANTS if v != "reference"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_give_identical_results(weights_dir, photo_input, isa, threads):
    one = ssdface.Detector(weights_dir, isa=isa, num_threads=1).forward(photo_input)
    det = ssdface.Detector(weights_dir, isa=isa, num_threads=threads)
    for _ in range(3):  # the pool is reused across calls
        many = det.forward(photo_input)
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])


def test_threads_batch_and_detect(weights_dir, photos):
    det = ssdface.Detector(weights_dir, num_threads=2)
    assert len(det.detect(photos["group_selfie"])) == 4
    x = np.concatenate([ssdface.preprocess(photos[k]) for k in sorted(photos)])
    batch = det.forward(x)
    for i, k in enumerate(sorted(photos)):
        single = det.forward(ssdface.preprocess(photos[k]))
        np.testing.assert_array_equal(batch[0][i], single[0][0])


@pytest.mark.parametrize("isa", [v for v in VARIANTS if v != "reference"])
@pytest.mark.parametrize("split", [(3, 1), (1, 3), (2, 2), (7, 1)])
@pytest.mark.parametrize("op", ["conv1x1", "conv3x3", "dw"])
def test_kernels_in_pieces(isa, split, op):
    """A kernel run on sub-ranges of pixels and channels (as the thread pool
    splits a layer) writes every output exactly as one whole call does."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (9, 11, 40)).astype(np.float32)
    b = rng.uniform(-1, 1, 70 if op != "dw" else 40).astype(np.float32)
    if op == "dw":
        w = rng.standard_normal((1, 3, 3, 40)).astype(np.float32)
        whole = _testing.depthwise_conv2d(x, w, b, 2, True, impl=isa)
        parts = _testing.depthwise_conv2d(x, w, b, 2, True, impl=isa, split=split)
    else:
        k = 1 if op == "conv1x1" else 3
        w = rng.standard_normal((70, k, k, 40)).astype(np.float32)
        stride = 1 if k == 1 else 2
        whole = _testing.conv2d(x, w, b, stride, True, impl=isa)
        parts = _testing.conv2d(x, w, b, stride, True, impl=isa, split=split)
    assert not np.isnan(parts).any()  # outputs start as NaN: all were written
    np.testing.assert_array_equal(whole, parts)


def test_isa_selection(weights_dir, monkeypatch):
    assert ssdface.best_isa() == VARIANTS[-1]
    assert ssdface.default_isa() in VARIANTS
    monkeypatch.setenv("SSDFACE_ISA", "scalar")
    assert ssdface.default_isa() == "scalar"
    assert ssdface.Detector(weights_dir).isa == "scalar"
    monkeypatch.setenv("SSDFACE_ISA", "mmx")
    with pytest.raises(ValueError, match="unknown ISA"):
        ssdface.Detector(weights_dir)
    monkeypatch.delenv("SSDFACE_ISA")
    assert ssdface.default_isa() == ssdface.best_isa()
    with pytest.raises(ValueError, match="unknown ISA"):
        ssdface.Detector(weights_dir, isa="sse9")


def test_reference_kernels_are_the_yardstick(photo_input, photo_reference, weights_dir):
    """The C reference kernels alone agree with float64 NumPy to ~1e-6."""
    det = ssdface.Detector(weights_dir, isa="reference")
    boxes, logits = det.forward(photo_input)
    assert reference.rel_l2(boxes, photo_reference[0]) <= 1e-5
    assert reference.rel_l2(logits, photo_reference[1]) <= 1e-5


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_num_threads_is_exact(weights_dir, photos, threads):
    """A detector starts exactly num_threads - 1 workers (the caller is the
    last one), whatever the machine has, and stops them when collected (by
    thread id: see thread_support)."""
    import gc

    gc.collect()
    before = settled_threads()
    det = ssdface.Detector(weights_dir, num_threads=threads)
    det.detect(photos["portrait_padded"])
    mine = native_threads() - before
    assert len(mine) == threads - 1, f"new threads: {sorted(mine)}"
    del det
    gc.collect()
    assert not wait_gone(mine), "the collected detector left its threads running"


def test_detect_batch(detector, photos):
    names = ["group_selfie", "foliage_no_face", "portrait_padded"]
    batch = detector.detect_batch([photos[k] for k in names])
    assert [len(faces) for faces in batch] == [4, 0, 1]
    assert batch[2] == detector.detect(photos["portrait_padded"])


_FORKED: dict = {}  # what a forked child inherits: the detector and the image


def _detect_in_child(conn) -> None:
    conn.send([f.score for f in _FORKED["det"].detect(_FORKED["image"])])
    conn.close()


def test_detector_survives_fork(weights_dir, photos):
    """A detector whose pool was started before fork() works in the child
    (which inherits the pool but none of its threads), and in the parent."""
    import multiprocessing

    det = ssdface.Detector(weights_dir, num_threads=2)
    expected = [f.score for f in det.detect(photos["group_selfie"])]
    _FORKED.update(det=det, image=photos["group_selfie"])
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_detect_in_child, args=(child,))
    proc.start()
    try:
        assert parent.poll(120), "the child hung: its pool waited for threads it does not have"
        assert parent.recv() == expected
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
        _FORKED.clear()
    assert proc.exitcode == 0
    assert [f.score for f in det.detect(photos["group_selfie"])] == expected


@pytest.mark.parametrize("isa", [v for v in VARIANTS if v != "reference"])
def test_detector_preprocess_is_what_detect_uses(weights_dir, photos, isa):
    det = ssdface.Detector(weights_dir, isa=isa, padded_pass=False)
    img = photos["group_selfie"]
    boxes, logits = det.forward(det.preprocess(img))
    assert ssdface.postprocess(boxes, logits, (img.shape[1], img.shape[0])) == det.detect(img)

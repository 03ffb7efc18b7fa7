"""ssdface.Detector.forward and ssdface.preprocess against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import reference

import ssdface

PHOTO_NAMES = ["group_selfie", "portrait_padded", "foliage_no_face"]
RANDOM_SEEDS = [1234, 98765]
FORWARD_RTOL = 1e-4
PREPROCESS_ATOL = 1e-4






def check_forward(outputs, n: int, ref_box: np.ndarray, ref_cls: np.ndarray) -> None:
    assert isinstance(outputs, tuple) and len(outputs) == 2
    box, cls = outputs
    assert isinstance(box, np.ndarray) and isinstance(cls, np.ndarray)
    assert box.dtype == np.float32 and cls.dtype == np.float32
    assert box.shape == (n, reference.NUM_ANCHORS, 4)
    assert cls.shape == (n, reference.NUM_ANCHORS, 2)
    assert np.isfinite(box).all() and np.isfinite(cls).all()
    err_box = reference.rel_l2(box, ref_box)
    err_cls = reference.rel_l2(cls, ref_cls)
    assert err_box <= FORWARD_RTOL, f"box encodings relative L2 error {err_box:.3g}"
    assert err_cls <= FORWARD_RTOL, f"class logits relative L2 error {err_cls:.3g}"


# ---------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_forward_photo(name, photos, detector, ref_cache):
    x = ssdface.preprocess(photos[name])
    assert x.dtype == np.float32 and x.shape == (1, 300, 300, 3)
    ref_box, ref_cls = ref_cache.forward(f"net-photo:{name}", lambda: x)
    check_forward(detector.forward(x), 1, ref_box, ref_cls)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_forward_random(seed, detector, ref_cache):
    x = reference.random_input(seed)
    ref_box, ref_cls = ref_cache.forward(f"net-random:{seed}", lambda: x)
    check_forward(detector.forward(x), 1, ref_box, ref_cls)


def test_forward_batch(detector, ref_cache):
    inputs = [reference.random_input(seed) for seed in RANDOM_SEEDS]
    refs = [
        ref_cache.forward(f"net-random:{seed}", lambda x=x: x)
        for seed, x in zip(RANDOM_SEEDS, inputs)
    ]
    batch = np.concatenate(inputs)
    assert batch.shape == (2, 300, 300, 3)
    box, cls = detector.forward(batch)
    check_forward(
        (box, cls), 2, np.concatenate([r[0] for r in refs]), np.concatenate([r[1] for r in refs])
    )
    # Each image of the batch on its own, too (no mixing between images).
    for i, (ref_box, ref_cls) in enumerate(refs):
        assert reference.rel_l2(box[i], ref_box[0]) <= FORWARD_RTOL
        assert reference.rel_l2(cls[i], ref_cls[0]) <= FORWARD_RTOL


def test_forward_multithreaded(weights_dir, ref_cache):
    inputs = [reference.random_input(seed) for seed in RANDOM_SEEDS]
    refs = [
        ref_cache.forward(f"net-random:{seed}", lambda x=x: x)
        for seed, x in zip(RANDOM_SEEDS, inputs)
    ]
    det = ssdface.Detector(weights=weights_dir, num_threads=2)
    check_forward(
        det.forward(np.concatenate(inputs)),
        2,
        np.concatenate([r[0] for r in refs]),
        np.concatenate([r[1] for r in refs]),
    )


def test_forward_does_not_modify_input(detector):
    x = reference.random_input(7)
    before = x.copy()
    detector.forward(x)
    np.testing.assert_array_equal(x, before)


# ---------------------------------------------------------------------------
# preprocess
# ---------------------------------------------------------------------------


def check_preprocess(image: np.ndarray) -> None:
    got = ssdface.preprocess(image)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32
    assert got.shape == (1, 300, 300, 3)
    want = reference.preprocess_reference(image)
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= PREPROCESS_ATOL, f"preprocess max abs error {err:.3g} for input {image.shape}"


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_preprocess_photo(name, photos):
    check_preprocess(photos[name])


# (height, width): downscaling, upscaling, identity, odd sizes, mixed directions.
SIZES = [
    (5, 7),
    (7, 5),
    (1, 1),
    (1, 300),
    (2, 3),
    (299, 301),
    (301, 299),
    (300, 300),
    (150, 600),
    (1000, 3),
]


@pytest.mark.parametrize("mode", ["rgb", "gray", "rgba"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_preprocess_sizes(size, mode):
    h, w = size
    rng = np.random.default_rng(h * 10007 + w)
    channels = {"rgb": (3,), "gray": (), "rgba": (4,)}[mode]
    image = rng.integers(0, 256, size=(h, w, *channels), dtype=np.uint8)
    check_preprocess(image)

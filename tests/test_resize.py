"""The image resize (csrc/resize.c: ``ssdface.preprocess``, and the first step
of ``detect``): every kernel variant against the float64 reference on shapes
that take either pass order, thread counts, and the extreme inputs that used
to crash (row pointers on the stack) or take quadratic time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import reference

import ssdface
from ssdface import _core

VARIANTS = ssdface.available_isas()  # includes "reference"
ATOL = 1e-4  # max abs error against the reference, as test_network.PREPROCESS_ATOL
VARIANT_ATOL = 1e-5  # variants against each other: float32 rounding only


def _filter_axis(x: np.ndarray, axis: int, m: int) -> np.ndarray:
    """The reference filter (``reference.resize_taps``) along one axis, in
    float64, applied tap by tap: no dense matrix, so long axes fit."""
    moved = np.moveaxis(x, axis, 0)
    out = np.stack([
        np.tensordot(w, moved[s : s + w.size].astype(np.float64), axes=1)
        for s, w in reference.resize_taps(moved.shape[0], m)
    ])
    return np.moveaxis(out, 0, axis)


def expected(image: np.ndarray, out_h: int = 300, out_w: int = 300) -> np.ndarray:
    """Reference network input, float64 [out_h, out_w, 3]. The filter is
    separable, so the pass order is free: the one with the smaller
    intermediate image goes first (the dense reference would need
    300 x 20,000,000 matrices for the extreme shapes)."""
    img = np.asarray(image)
    img = img[:, :, None] if img.ndim == 2 else img[:, :, :3]  # gray stays one channel
    h, w = img.shape[:2]
    if h * out_w <= out_h * w:
        out = _filter_axis(_filter_axis(img, 1, out_w), 0, out_h)
    else:
        out = _filter_axis(_filter_axis(img, 0, out_h), 1, out_w)
    return (np.broadcast_to(out, (out_h, out_w, 3)) - 127.5) / 127.5


def random_image(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def max_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want)))


def run_python(code: str, timeout: float) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that imports this ssdface."""
    root = str(Path(ssdface.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- the sparse reference above is the reference ----------------------------


@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 1), (299, 301, 4), (40, 900, 3), (900, 40)])
def test_expected_is_the_reference(shape):
    img = random_image(shape, 1)
    np.testing.assert_allclose(expected(img), reference.preprocess_reference(img)[0],
                               rtol=0, atol=1e-12)


# --- every variant against the reference --------------------------------------

# (image shape, output (h, w)): both pass orders (vertical first when the
# image has at least out_h rows, horizontal first otherwise), enlarging one
# axis while shrinking the other, 1-pixel axes, sizes around 300, gray / RGB /
# RGBA, outputs other than 300x300.
CASES = [
    ((1, 1), (300, 300)),
    ((1, 1, 3), (300, 300)),
    ((1, 1, 4), (1, 1)),
    ((1, 7, 4), (300, 300)),
    ((7, 1, 3), (300, 300)),
    ((2, 3), (300, 300)),
    ((1, 5000, 3), (300, 300)),
    ((5000, 1, 3), (300, 300)),
    ((3, 4000), (300, 300)),
    ((4000, 3), (300, 300)),
    ((150, 900, 3), (300, 300)),
    ((900, 150, 3), (300, 300)),
    ((40, 3000, 4), (300, 300)),
    ((3000, 40, 4), (300, 300)),
    ((299, 301, 3), (300, 300)),
    ((301, 299, 3), (300, 300)),
    ((299, 299), (300, 300)),
    ((301, 301, 4), (300, 300)),
    ((300, 300, 3), (300, 300)),
    ((300, 17, 3), (300, 300)),
    ((17, 300), (300, 300)),
    ((1000, 1500, 3), (300, 300)),
    ((37, 53, 3), (301, 7)),
    ((53, 37, 4), (7, 301)),
    ((5, 5, 3), (1, 1)),
    ((64, 48), (1, 480)),
    ((64, 48, 3), (480, 1)),
    # long axes: weight tables too large to keep, weights computed on demand
    ((200_000, 2), (300, 300)),
    ((2, 200_000, 3), (300, 300)),
    ((150_000, 1, 4), (300, 300)),
]


def _random_cases(n: int, seed: int):
    """Random shapes and output sizes, log-uniform, gray / RGB / RGBA."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        h, w = (int(v) for v in np.exp(rng.uniform(0, np.log(2500), 2)))
        oh, ow = (int(v) for v in np.exp(rng.uniform(0, np.log(500), 2)))
        channels = [(), (3,), (4,)][rng.integers(3)]
        cases.append(((h, w, *channels), (oh, ow)))
    return cases


CASES += _random_cases(16, 2024)


def _case_id(case) -> str:
    shape, (oh, ow) = case
    return f"{'x'.join(map(str, shape))}-to-{oh}x{ow}"


@pytest.fixture(scope="module")
def case_results():
    """Every case resized by every variant, with its reference (computed once)."""
    cache = {}

    def get(case):
        if case not in cache:
            shape, (oh, ow) = case
            img = random_image(shape, hash(case) % 2**32)
            got = {v: _core.resize_normalize(img, oh, ow, impl=v) for v in VARIANTS}
            cache[case] = img, got, expected(img, oh, ow)
        return cache[case]

    return get


@pytest.mark.parametrize("isa", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_variant_against_reference(case_results, case, isa):
    _, got, want = case_results(case)
    out = got[isa]
    assert out.shape == want.shape and out.dtype == np.float32
    err = max_err(out, want)
    assert err <= ATOL, f"{isa}: max abs error {err:.3g} for {_case_id(case)}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_variants_agree(case_results, case):
    _, got, _ = case_results(case)
    base = got["reference"]
    for isa, out in got.items():
        err = max_err(out, base.astype(np.float64))
        assert err <= VARIANT_ATOL, f"{isa} vs reference kernels: {err:.3g}"


@pytest.mark.parametrize("isa", VARIANTS)
def test_strided_and_odd_layouts(isa):
    img = random_image((701, 433, 4), 7)
    for view in (img[::2, ::3], img[:, ::-1, :3], img[::-3, :, 1], np.asfortranarray(img),
                 img[100:101], img[:, 200:201, :3]):
        got = _core.resize_normalize(view, impl=isa)
        np.testing.assert_array_equal(got, _core.resize_normalize(np.ascontiguousarray(view),
                                                                  impl=isa))
        assert max_err(got, expected(view)) <= ATOL


@pytest.mark.parametrize("isa", VARIANTS)
@pytest.mark.parametrize("shape", [(2_000_000, 1), (1, 2_000_000, 3), (40_000, 20, 3)])
def test_constant_image_on_a_long_axis(isa, shape):
    """Tens of thousands of taps per output: the float sums stay accurate."""
    for value in (255, 17):
        got = _core.resize_normalize(np.full(shape, value, np.uint8), impl=isa)
        err = float(np.max(np.abs(got - (value - 127.5) / 127.5)))
        assert err <= ATOL, f"constant {value}: max abs error {err:.3g}"


# --- threads ------------------------------------------------------------------


@pytest.fixture(scope="module")
def detectors(weights_dir):
    """Detectors on 1, 2 and 3 threads keeping every candidate box."""
    opts = dict(score_threshold=0.0, iou_threshold=1.0, max_faces=200, padded_pass=False)
    return {n: ssdface.Detector(weights_dir, num_threads=n, **opts) for n in (1, 2, 3)}


@pytest.mark.parametrize("shape", [(150, 640, 3), (640, 150, 3), (1, 3000), (3000, 1, 4),
                                   (299, 301, 3), (2, 200_000)])
def test_detect_resize_is_independent_of_threads(detectors, shape):
    """detect() splits the resize between its threads (both passes of a
    horizontal-first plan); with every candidate box kept, the faces depend on
    every bit of the resized input: the same for 1, 2 and 3 threads, and what
    forward(preprocess(image)) gives."""
    img = random_image(shape, 3)
    results = []
    for det in detectors.values():
        results.append(det.detect(img))
        results.append(det.detect(img))  # the pool is reused
    assert len(results[0]) == 200
    assert all(r == results[0] for r in results)
    det = detectors[1]
    boxes, logits = det.forward(det.preprocess(img))
    faces = ssdface.postprocess(boxes, logits, (shape[1], shape[0]), score_threshold=0.0,
                                iou_threshold=1.0, max_faces=200)
    assert faces == results[0]


# --- regressions: extreme shapes ------------------------------------------------


@pytest.mark.parametrize("shape", [(12_000_000, 1, 3), (12_000_000, 1)], ids=["rgb", "gray"])
def test_tall_image_in_a_small_stack_thread(weights_dir, shape):
    """A 12,000,000-row image has 80,000 vertical taps per output row; their
    row pointers used to live on the stack (640 KB) and overflowed a thread's
    512 KiB stack: SIGSEGV."""
    proc = run_python(
        f"""
        import threading
        import numpy as np
        import ssdface

        det = ssdface.Detector({str(weights_dir)!r})
        img = np.random.default_rng(0).integers(0, 256, {shape!r}, dtype=np.uint8)
        out = {{}}

        def run():
            out["faces"] = det.detect(img)
            out["x"] = ssdface.preprocess(img)

        threading.stack_size(512 * 1024)
        t = threading.Thread(target=run)
        t.start()
        t.join()
        assert out["x"].shape == (1, 300, 300, 3), out
        print("ok")
        """,
        timeout=120,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, (
        f"exit code {proc.returncode}\n{proc.stderr[-2000:]}"
    )


EXTREME = [(1, 1_000_000, 3), (1_000_000, 1, 3), (1, 20_000_000), (20_000_000, 1)]


def test_extreme_aspect_ratios(weights_dir, tmp_path):
    """Cost used to be O(width x 300) per output row: a 1 x 20,000,000 gray
    image took over a minute to resize (this subprocess: over two minutes).
    Now each of these resizes, and is detected on, in well under a second; the
    bound only catches a hang, with room for a loaded machine."""
    proc = run_python(
        f"""
        import numpy as np
        import ssdface

        det = ssdface.Detector({str(weights_dir)!r}, num_threads=2)
        for i, shape in enumerate({EXTREME!r}):
            img = np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8)
            np.save({str(tmp_path)!r} + f"/x{{i}}.npy", ssdface.preprocess(img)[0])
            det.detect(img)
        print("ok")
        """,
        timeout=60,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, (
        f"exit code {proc.returncode}\n{proc.stderr[-2000:]}"
    )
    for i, shape in enumerate(EXTREME):
        img = np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8)
        err = max_err(np.load(tmp_path / f"x{i}.npy"), expected(img))
        assert err <= ATOL, f"{shape}: max abs error {err:.3g}"


def test_out_of_memory_is_a_memory_error():
    """The resize's scratch comes from the heap, sizes checked: when it cannot
    be had, a MemoryError (here a 1 x 100,000,000 row shrunk to 1 x 1 needs
    two 400 MB float rows, with the address space capped)."""
    proc = run_python(
        """
        import resource
        import numpy as np
        from ssdface import _core

        img = np.zeros((1, 100_000_000), np.uint8)
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, ((vm + 200_000) * 1024, resource.RLIM_INFINITY))
        try:
            _core.resize_normalize(img, 1, 1)
        except MemoryError as exc:
            print("MemoryError", exc)
        """,
        timeout=60,
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "MemoryError out of memory resizing" in proc.stdout, proc.stdout

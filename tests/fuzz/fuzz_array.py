"""Fuzz the in-memory image entry points: ``Detector.detect``,
``Detector.detect_batch``, ``ssdface.preprocess``, ``Detector.preprocess``
(arrays and PIL images) and ``Detector.forward`` (network input).

The input chooses the entry point, then an array's dtype (every numpy kind,
bool, object, structured...), number of dimensions and sizes (empty and
1-pixel included), contents (the input's bytes, zeros, extremes, NaN) and
layout (C, Fortran, strided, negative strides, zero-stride broadcast,
transposed, read-only, unaligned, ndarray subclasses), or a PIL image of any
mode, or a non-array object.

Contract: success or one of ``ALLOWED``; success only for valid input, with
sane results: faces finite, inside the image and sorted; network input
finite, in [-1, 1] and close to the float64 reference resize; the same
answer for a view as for its contiguous copy; forward outputs finite for
moderate inputs and non-finite input refused.

Sizes are capped (``MAX_SIDE``, ``MAX_PIXELS``) so that one input runs well
under a second: huge and extreme-aspect images are slow in resize (a known
issue being fixed elsewhere).

The input's decoding is in ``array_input.py``.

    python tests/fuzz/fuzz_array.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import _common as cm
import _fuzzlib as fl
from array_input import Plan, decode

ALLOWED: tuple[type, ...] = (TypeError, ValueError)
REFERENCE_MAX_PIXELS = 65536  # compare with the float64 reference resize below this

lib: Any = None
S: State | None = None


@dataclass
class State:
    det: Any  # 1 thread
    det2: Any  # 2 threads
    reference: Any  # tests/reference.py, the float64 resize


def setup() -> None:
    global lib, S
    if S is not None:
        return
    lib = cm.import_ssdface()
    det = cm.detector()
    det2 = cm.detector(num_threads=2)
    tests = str(fl.REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import reference

    S = State(det, det2, reference)


# --- checking the results -----------------------------------------------------------------


def _check_preprocessed(x: Any, image: Any, what: str) -> None:
    import numpy as np

    cm.check_network_input(x, what)
    if image.shape[0] * image.shape[1] <= REFERENCE_MAX_PIXELS:
        img = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        if img.dtype == np.uint16:  # the library's 16-to-8-bit scaling, rounded
            img = ((img.astype(np.uint64) * 255 + 32767) // 65535).astype(np.uint8)
        ref = S.reference.preprocess_reference(np.asarray(img))
        err = float(np.abs(x - ref).max())
        if err > 1e-5:
            raise fl.Finding(f"{what}: differs from the float64 reference resize by {err} "
                             f"for shape {image.shape} strides {image.strides}")


def _same_as_contiguous(func: Any, value: Any, result: Any, what: str) -> None:
    """A non-contiguous or subclass view must give the answer of its plain copy."""
    import numpy as np

    if type(value) is np.ndarray and value.flags.c_contiguous:
        return
    plain = np.ascontiguousarray(np.asarray(value))
    again = func(plain)
    if isinstance(result, tuple):
        same = all(np.array_equal(a, b) for a, b in zip(result, again))
    elif isinstance(result, np.ndarray):
        same = np.array_equal(result, again)
    else:
        same = result == again
    if not same:
        raise fl.Finding(f"{what}: a {type(value).__name__} view with strides "
                         f"{getattr(value, 'strides', None)} gives another answer than its "
                         "contiguous copy")


def _run_image(plan: Plan) -> None:
    import numpy as np

    det = S.det
    value = plan.value
    if plan.entry in ("detect", "object"):
        det = S.det2 if isinstance(value, np.ndarray) and value.size % 8 == 1 else S.det
        faces = det.detect(value)
        cm.check_faces(faces, *value.shape[:2], "detect")
        _same_as_contiguous(det.detect, value, faces, "detect")
    elif plan.entry in ("preprocess", "det_preprocess"):
        func = lib.preprocess if plan.entry == "preprocess" else det.preprocess
        x = func(value)
        _check_preprocessed(x, np.asarray(value), plan.entry)
        _same_as_contiguous(func, value, x, plan.entry)
        if plan.entry == "det_preprocess" and not np.array_equal(x, lib.preprocess(value)):
            raise fl.Finding("Detector.preprocess differs from ssdface.preprocess")
        if value.ndim == 3 and value.shape[2] == 4:
            opaque = np.array(value)
            opaque[:, :, 3] = 255 - opaque[:, :, 3]
            if not np.array_equal(x, lib.preprocess(opaque)):
                raise fl.Finding("RGBA input: alpha changes the network input")
            # The RGB path runs the ISA kernel, RGBA and gray a plain loop: 1 ulp apart.
            rgb = lib.preprocess(np.ascontiguousarray(value[:, :, :3]))
            if np.abs(x - rgb).max() > 1e-5:
                raise fl.Finding("RGBA input differs from its RGB part")
        elif value.ndim == 2 or value.shape[2] == 1:
            rgb = lib.preprocess(np.repeat(np.asarray(value).reshape(value.shape[:2])[:, :, None],
                                           3, axis=2))
            if np.abs(x - rgb).max() > 1e-5:
                raise fl.Finding("gray input differs from its RGB replication")
    elif plan.entry == "detect_batch":
        results = det.detect_batch(value)
        if not isinstance(results, list) or len(results) != len(value):
            raise fl.Finding(f"detect_batch of {len(value)} returned {results!r:.200}")
        for image, faces in zip(value, results):
            cm.check_faces(faces, *image.shape[:2], "detect_batch")
        if len(value) and results[0] != det.detect(value[0]):
            raise fl.Finding("detect_batch()[0] != detect(images[0])")
    elif plan.entry == "pil":
        img = plan.pil
        faces = det.detect(img)
        cm.check_faces(faces, img.height, img.width, "detect(PIL)")
        x = lib.preprocess(img)
        if img.mode in ("RGB", "L", "RGBA"):
            array = np.asarray(img)
        elif img.mode.startswith("I;16") or img.mode == "I":  # 16-bit: scaled, 65535 -> 255
            wide = np.clip(np.asarray(img), 0, 65535).astype(np.uint64)
            array = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        else:
            array = np.asarray(img.convert("RGB"))
        if not np.array_equal(x, lib.preprocess(array)):
            raise fl.Finding(f"preprocess(PIL {img.mode}) != preprocess(its pixel array)")


def _run_forward(plan: Plan) -> None:
    import numpy as np

    x = plan.value
    boxes, logits = S.det.forward(x)
    n = x.shape[0]
    if not (boxes.shape == (n, 1917, 4) and logits.shape == (n, 1917, 2)
            and boxes.dtype == logits.dtype == np.float32):
        raise fl.Finding(f"forward returned {boxes.shape} {logits.shape}")
    with np.errstate(all="ignore"):
        finite_in = bool(np.isfinite(x).all())
        moderate = finite_in and float(np.abs(x).max()) <= 100.0
    if not finite_in:
        raise fl.Finding("forward accepted non-finite input")
    if not (np.isfinite(boxes).all() and np.isfinite(logits).all()):
        if moderate:
            raise fl.Finding("forward: non-finite outputs for inputs within [-100, 100]")
        fl.count("forward: huge input overflows to non-finite outputs")
    _same_as_contiguous(S.det.forward, x, (boxes, logits), "forward")


def test_one_input(data: bytes) -> None:
    setup()
    plan = decode(fl.make_provider(data))
    if plan.entry == "skip":
        return
    what = plan.entry
    try:
        if plan.entry == "forward":
            _run_forward(plan)
        else:
            _run_image(plan)
    except fl.Finding:
        raise
    except Exception as exc:
        # A str (e.g. a 0-d string array's .tolist()) is a path, and bytes (or a
        # buffer) an encoded image: OSError ("cannot read image") is fine then.
        path = isinstance(plan.value, (str, os.PathLike, bytes, bytearray, memoryview)) or (
            hasattr(plan.value, "read") and hasattr(plan.value, "seek"))
        fl.check_exception(exc, ALLOWED + (OSError,) if path else ALLOWED, what)
        if plan.valid:
            raise fl.Finding(f"{what} refused a valid input {_describe(plan.value)}: "
                             f"{type(exc).__name__}: {exc}") from exc
        return
    if not plan.valid:
        raise fl.Finding(f"{what} accepted an invalid input: {_describe(plan.value)}")
    fl.count(f"accepted:{plan.entry}")


def _describe(value: Any) -> str:
    if hasattr(value, "dtype"):
        return f"{type(value).__name__} {value.dtype} {getattr(value, 'shape', '')}"
    if isinstance(value, list):
        return f"list of {[_describe(v) for v in value]}"
    return type(value).__name__


def main() -> None:
    fl.run(test_one_input, setup)


if __name__ == "__main__":
    main()

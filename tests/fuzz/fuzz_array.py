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

    python tests/fuzz/fuzz_array.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import _fuzzlib as fl

ALLOWED: tuple[type, ...] = (TypeError, ValueError)
MAX_SIDE = 8192
MAX_PIXELS = 4_000_000
MAX_BYTES = 48 << 20
REFERENCE_MAX_PIXELS = 65536  # compare with the float64 reference resize below this
SCORE_THRESHOLD = 0.2
MAX_FACES = 8

ENTRIES = ["detect", "preprocess", "det_preprocess", "detect_batch", "forward", "pil", "object"]
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16",
          "float32", "float64", "longdouble", "complex64", "complex128", "bool", "object",
          "rgb_struct", "V3", "U1", "S3", ">u2", "datetime64[s]", "timedelta64[ms]"]
NDIMS = [3, 2, 4, 1, 0, 5]
CHANNELS = [3, 1, 4, 2, 5, 0, 300]
FILLS = ["input", "zeros", "max", "nan", "ramp"]
LAYOUTS = ["c", "fortran", "strided", "flipped", "broadcast", "transposed", "readonly",
           "masked", "matrix", "memmap_like"]
WRAPPERS = ["array", "list", "tuple_of_rows", "bytes", "scalar", "none", "zero_d"]
PIL_MODES = ["RGB", "L", "RGBA", "P", "1", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "PA",
             "RGBX", "RGBa", "La", "I;16", "I;16B", "I;16L", "I;16N"]
# PIL modes that Pillow itself cannot convert to RGB (a ValueError is fine).
# "F" (float) has no fixed pixel range: the library asks the caller to convert.
PIL_UNCONVERTIBLE = {"La", "F"}
FORWARD_SHAPES = ["ok", "no_batch", "4_channels", "299", "extra_axis", "nchw", "batch0"]
FORWARD_DTYPES = ["float32", "float64", "float16", ">f4", "int32", "uint8", "object"]
FORWARD_FILLS = ["uniform", "zeros", "nan_at", "inf_at", "huge", "big_at", "denormal", "input",
                 "ones_100"]
FORWARD_LAYOUTS = ["c", "fortran", "flipped", "strided", "broadcast", "unaligned", "readonly"]

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
    import ssdface
    import ssdface.weights

    lib = ssdface
    blob = fl.workdir() / "weights.blob"
    if not blob.exists():
        ssdface.pack_weights(fl.weights_dir(), blob)
    det = ssdface.Detector(blob, score_threshold=SCORE_THRESHOLD, max_faces=MAX_FACES)
    det2 = ssdface.Detector(blob, score_threshold=SCORE_THRESHOLD, max_faces=MAX_FACES,
                            num_threads=2)
    tests = str(fl.REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import reference

    S = State(det, det2, reference)


# --- building the inputs ---------------------------------------------------------------


def _dim(fdp: Any) -> int:
    size_class = fdp.ConsumeIntInRange(0, 3)
    if size_class == 0:
        return fdp.ConsumeIntInRange(1, 64)
    if size_class == 1:
        return fdp.ConsumeIntInRange(0, 4)
    if size_class == 2:
        return fdp.ConsumeIntInRange(65, 1024)
    return fdp.ConsumeIntInRange(1025, MAX_SIDE)


def _shape(fdp: Any) -> tuple[int, ...]:
    ndim = NDIMS[fdp.ConsumeIntInRange(0, len(NDIMS) - 1)]
    dims = []
    for axis in range(ndim):
        if axis == 2:
            dims.append(CHANNELS[fdp.ConsumeIntInRange(0, len(CHANNELS) - 1)])
        else:
            dims.append(_dim(fdp))
    if len(dims) >= 2:  # the pixel cap: shrink the longer side
        while dims[0] * dims[1] > MAX_PIXELS:
            i = 0 if dims[0] >= dims[1] else 1
            dims[i] //= 2
    return tuple(dims)


def _dtype(name: str) -> Any:
    import numpy as np

    if name == "rgb_struct":
        return np.dtype([("r", "u1"), ("g", "u1"), ("b", "u1")])
    return np.dtype(name)


def _fill(fdp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    import numpy as np

    mode = FILLS[fdp.ConsumeIntInRange(0, len(FILLS) - 1)]
    n = math.prod(shape)
    if dtype.kind == "O":
        pool = [None, 0, 255, 1.5, "x", b"\xff", np.uint8(7), [1, 2], float("nan")]
        pick = fdp.ConsumeIntInRange(0, len(pool) - 1)
        arr = np.empty(n, dtype=object)
        for i in range(n):
            arr[i] = pool[(pick + i) % len(pool)]
        return arr.reshape(shape)
    if mode == "input" and dtype.kind != "U":  # (random bytes are no valid UCS-4)
        raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)) or b"\x80"
        nbytes = n * dtype.itemsize
        buf = (raw * (nbytes // len(raw) + 1))[:nbytes]
        return np.frombuffer(buf, dtype=dtype, count=n).reshape(shape).copy()
    arr = np.zeros(shape, dtype=dtype)
    if mode == "zeros" or dtype.kind in "VUSMm" or n == 0:
        return arr
    if mode == "max":
        arr[...] = True if dtype.kind == "b" else (
            np.iinfo(dtype).max if dtype.kind in "iu" else np.finfo(dtype).max)
    elif mode == "nan":
        if dtype.kind in "fc":
            arr[...] = np.nan
    else:  # a ramp, the same across channels
        arr.reshape(-1)[...] = (np.arange(n) * 7 % 256).astype(dtype)
    return arr


def _layout(fdp: Any, arr: Any, layout: str) -> Any:
    """A view of the same values as ``arr`` with another memory layout."""
    import numpy as np

    if arr.ndim == 0:
        return arr
    if layout == "fortran":
        return np.asfortranarray(arr)
    if layout == "strided":
        step = fdp.ConsumeIntInRange(2, 3)
        axis = fdp.ConsumeIntInRange(0, arr.ndim - 1)
        big_shape = list(arr.shape)
        big_shape[axis] *= step
        if math.prod(big_shape) * arr.itemsize > MAX_BYTES:
            return arr
        big = np.zeros(big_shape, dtype=arr.dtype)
        index = [slice(None)] * arr.ndim
        index[axis] = slice(None, None, step)
        big[tuple(index)] = arr
        return big[tuple(index)]
    if layout == "flipped":
        mask = fdp.ConsumeIntInRange(1, (1 << arr.ndim) - 1)
        axes = [a for a in range(arr.ndim) if mask >> a & 1]
        return np.flip(np.flip(arr, axes).copy(), axes)  # same values, negative strides
    if layout == "broadcast":
        # Values constant along the chosen axes: a zero-stride view of one slice.
        mask = fdp.ConsumeIntInRange(1, (1 << arr.ndim) - 1)
        index = tuple(slice(0, 1) if mask >> a & 1 else slice(None) for a in range(arr.ndim))
        return np.broadcast_to(arr[index], arr.shape)
    if layout == "transposed" and arr.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(arr, 0, 1)).swapaxes(0, 1)
    if layout == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    if layout == "masked":
        return np.ma.masked_array(arr, mask=np.zeros(arr.shape, bool))
    if layout == "matrix" and arr.ndim == 2 and arr.dtype.kind != "O":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return np.asmatrix(arr)
    if layout == "memmap_like":
        class Sub(np.ndarray):
            pass

        return arr.view(Sub)
    return arr


def _wrap(fdp: Any, arr: Any) -> Any:
    import numpy as np

    wrapper = WRAPPERS[fdp.ConsumeIntInRange(0, len(WRAPPERS) - 1)]
    if wrapper == "list" and arr.size <= 4096:
        return arr.tolist()
    if wrapper == "tuple_of_rows" and arr.ndim >= 1 and arr.shape[0] <= 64:
        return tuple(arr)
    if wrapper == "bytes" and arr.dtype.kind != "O":
        return arr.tobytes()
    if wrapper == "scalar":
        return 7
    if wrapper == "none":
        return None
    if wrapper == "zero_d":
        flat = np.asarray(arr).reshape(-1)
        return flat[:1].reshape(()).copy() if flat.size else np.zeros((), dtype=arr.dtype)
    return arr


@dataclass
class Plan:
    entry: str
    value: Any  # what is passed
    valid: bool  # whether the contract says it must be accepted
    pil: Any = None  # the PIL image, for "pil"
    batch: list | None = None


def _image_plan(fdp: Any, entry: str) -> Plan:
    import numpy as np

    dtype = _dtype(DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)])
    shape = _shape(fdp)
    if math.prod(shape) * max(dtype.itemsize, 1) > MAX_BYTES or (
            dtype.kind == "O" and math.prod(shape) > 4096):
        shape = tuple(min(d, 16) for d in shape)
    arr = _fill(fdp, shape, dtype)
    layout = LAYOUTS[fdp.ConsumeIntInRange(0, len(LAYOUTS) - 1)]
    view = _layout(fdp, arr, layout)
    value = _wrap(fdp, view) if entry == "object" else view
    valid = (
        isinstance(value, np.ndarray)
        and value.dtype in (np.uint8, np.uint16)  # 16-bit is scaled to 8
        and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (1, 3, 4)))
        and value.size > 0
    )
    return Plan(entry, value, valid)


def _pil_plan(fdp: Any) -> Plan:
    from PIL import Image

    mode = PIL_MODES[fdp.ConsumeIntInRange(0, len(PIL_MODES) - 1)]
    size = (fdp.ConsumeIntInRange(0, 96), fdp.ConsumeIntInRange(0, 96))
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)) or b"\x00\x7f\xff"
    try:
        probe = Image.new(mode, (1, 1))
        per_pixel = max(1, len(probe.tobytes()))
        n = per_pixel * size[0] * size[1] + 8
        img = Image.frombytes(mode, size, (raw * (n // len(raw) + 1))[:n])
    except (ValueError, OSError, TypeError) as exc:  # a mode Pillow cannot build this way
        fl.count(f"skip:pil {mode} {type(exc).__name__}")
        return Plan("skip", None, False)
    valid = size[0] > 0 and size[1] > 0 and mode not in PIL_UNCONVERTIBLE
    return Plan("pil", img, valid, pil=img)


def _forward_plan(fdp: Any) -> Plan:
    import numpy as np

    n = [1, 2][fdp.ConsumeIntInRange(0, 1)]
    shape_kind = FORWARD_SHAPES[fdp.ConsumeIntInRange(0, len(FORWARD_SHAPES) - 1)]
    shape = {"ok": (n, 300, 300, 3), "no_batch": (300, 300, 3), "4_channels": (n, 300, 300, 4),
             "299": (n, 299, 300, 3), "extra_axis": (n, 300, 300, 3, 1),
             "nchw": (n, 3, 300, 300), "batch0": (0, 300, 300, 3)}[shape_kind]
    dtype = np.dtype(FORWARD_DTYPES[fdp.ConsumeIntInRange(0, len(FORWARD_DTYPES) - 1)])
    fill = FORWARD_FILLS[fdp.ConsumeIntInRange(0, len(FORWARD_FILLS) - 1)]
    where = fdp.ConsumeIntInRange(0, (1 << 32) - 1)
    size = math.prod(shape)
    x = np.zeros(size, np.float64)
    if fill == "uniform":
        x = np.random.default_rng(where).uniform(-1, 1, size)
    elif fill in ("nan_at", "inf_at", "big_at") and size:
        x[where % size] = {"nan_at": np.nan, "inf_at": -np.inf, "big_at": 1e30}[fill]
    elif fill == "huge":
        x[:] = 3e38
    elif fill == "denormal":
        x[:] = 1e-40
    elif fill == "ones_100":
        x[:] = 100.0
    elif fill == "input":
        raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)) or b"\0\0\0\0"
        raw = raw + b"\0" * (-len(raw) % 4)
        x = np.resize(np.frombuffer(raw, np.float32), size).astype(np.float64)
    with np.errstate(all="ignore"):
        x = x.reshape(shape).astype(dtype) if dtype.kind != "O" else x.reshape(shape).astype(object)
    layout = FORWARD_LAYOUTS[fdp.ConsumeIntInRange(0, len(FORWARD_LAYOUTS) - 1)]
    if layout == "unaligned" and dtype.kind != "O":
        buf = np.zeros(x.nbytes + 1, np.uint8)
        view = buf[1:].view(dtype).reshape(shape)
        view[...] = x
        x = view
    elif layout != "unaligned":
        x = _layout(fdp, x, layout)
    with np.errstate(all="ignore"):
        valid = bool(dtype == np.float32 and shape_kind == "ok" and np.isfinite(x).all())
    return Plan("forward", x, valid)


def decode(fdp: Any) -> Plan:
    entry = ENTRIES[fdp.ConsumeIntInRange(0, len(ENTRIES) - 1)]
    if entry == "forward":
        return _forward_plan(fdp)
    if entry == "pil":
        return _pil_plan(fdp)
    if entry == "detect_batch":
        plans = [_image_plan(fdp, "detect") for _ in range(fdp.ConsumeIntInRange(0, 3))]
        return Plan("detect_batch", [p.value for p in plans], all(p.valid for p in plans),
                    batch=plans)
    return _image_plan(fdp, entry)


# --- writing seeds (the inverse of the decoding above, for make_corpus.py) -------


def _encode_dim(w: fl.SeedWriter, d: int) -> None:
    if 1 <= d <= 64:
        w.int(0, 3, 0).int(1, 64, d)
    elif d <= 4:
        w.int(0, 3, 1).int(0, 4, d)
    elif d <= 1024:
        w.int(0, 3, 2).int(65, 1024, d)
    else:
        w.int(0, 3, 3).int(1025, MAX_SIDE, d)


def encode_image(w: fl.SeedWriter, dtype: str, shape: tuple[int, ...], fill: str = "ramp",
                 layout: str = "c", layout_args: tuple[int, ...] = (), fill_bytes: bytes = b"",
                 wrapper: str | None = None) -> fl.SeedWriter:
    """Answers for :func:`_image_plan`: ``layout_args`` are (step, axis) for
    "strided" and (mask,) for "flipped" and "broadcast"; ``wrapper`` only for
    the "object" entry; object arrays take ``fill_bytes[0]`` as the pool pick."""
    w.pick(DTYPES, dtype).pick(NDIMS, len(shape))
    for axis, d in enumerate(shape):
        if axis == 2:
            w.pick(CHANNELS, d)
        else:
            _encode_dim(w, d)
    w.pick(FILLS, fill)
    if dtype == "object":
        w.int(0, 8, fill_bytes[0] if fill_bytes else 0)
    elif fill == "input" and not dtype.startswith("U"):
        w.int(0, 256, len(fill_bytes)).bytes(fill_bytes)
    w.pick(LAYOUTS, layout)
    if layout == "strided":
        w.int(2, 3, layout_args[0]).int(0, len(shape) - 1, layout_args[1])
    elif layout in ("flipped", "broadcast"):
        w.int(1, (1 << len(shape)) - 1, layout_args[0])
    if wrapper is not None:
        w.pick(WRAPPERS, wrapper)
    return w


def encode_forward(w: fl.SeedWriter, n: int = 1, shape: str = "ok", dtype: str = "float32",
                   fill: str = "uniform", where: int = 0, layout: str = "c",
                   layout_args: tuple[int, ...] = (), fill_bytes: bytes = b"") -> fl.SeedWriter:
    w.pick(ENTRIES, "forward").int(0, 1, n - 1).pick(FORWARD_SHAPES, shape)
    w.pick(FORWARD_DTYPES, dtype).pick(FORWARD_FILLS, fill).int(0, (1 << 32) - 1, where)
    if fill == "input":
        w.int(0, 256, len(fill_bytes)).bytes(fill_bytes)
    w.pick(FORWARD_LAYOUTS, layout)
    if layout == "strided":
        w.int(2, 3, layout_args[0]).int(0, 3, layout_args[1])
    elif layout in ("flipped", "broadcast"):
        w.int(1, 15, layout_args[0])
    return w


def encode_pil(w: fl.SeedWriter, mode: str, size: tuple[int, int], data: bytes) -> fl.SeedWriter:
    w.pick(ENTRIES, "pil").pick(PIL_MODES, mode).int(0, 96, size[0]).int(0, 96, size[1])
    return w.int(0, 256, len(data)).bytes(data)


# --- checking the results -----------------------------------------------------------------


def _check_faces(faces: Any, h: int, w: int, what: str) -> None:
    if not isinstance(faces, list) or len(faces) > MAX_FACES:
        raise fl.Finding(f"{what}: returned {type(faces).__name__} {faces!r:.200}")
    for f in faces:
        values = (*f.box, f.score)
        if not all(isinstance(v, float) and math.isfinite(v) for v in values):
            raise fl.Finding(f"{what}: non-finite face {f}")
        x0, y0, x1, y1 = f.box
        if not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h and SCORE_THRESHOLD <= f.score <= 1):
            raise fl.Finding(f"{what}: face {f} outside the {w}x{h} image or below threshold")
    scores = [f.score for f in faces]
    if scores != sorted(scores, reverse=True):
        raise fl.Finding(f"{what}: faces not sorted by score")


def _check_preprocessed(x: Any, image: Any, what: str) -> None:
    import numpy as np

    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (1, 300, 300, 3)):
        raise fl.Finding(f"{what}: returned {type(x).__name__} {getattr(x, 'shape', '')}")
    if not np.isfinite(x).all() or np.abs(x).max() > 1 + 1e-5:
        raise fl.Finding(f"{what}: values outside [-1, 1] or non-finite")
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
        _check_faces(faces, *value.shape[:2], "detect")
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
            _check_faces(faces, *image.shape[:2], "detect_batch")
        if len(value) and results[0] != det.detect(value[0]):
            raise fl.Finding("detect_batch()[0] != detect(images[0])")
    elif plan.entry == "pil":
        img = plan.pil
        faces = det.detect(img)
        _check_faces(faces, img.height, img.width, "detect(PIL)")
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

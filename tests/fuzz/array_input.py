"""The ``array`` target's input: the entry point, then an array's dtype,
number of dimensions and sizes, contents and memory layout (or a wrapper
around it for the "object" entry), or a PIL image of any mode, or network
input for ``Detector.forward``. :func:`decode` reads a :class:`Plan` from the
fuzzer's input, with whether the contract says it must be accepted; the
``encode_*`` functions write the input of a plan (the seeds,
``make_corpus.py``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import _fuzzlib as fl
from _common import MAX_PIXELS, MAX_SIDE

MAX_BYTES = 48 << 20  # the largest array (or strided base) an input builds

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


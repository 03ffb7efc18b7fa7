"""Fuzz the ``.npy`` weights reader: ``ssdface.weights.read_npy_dir``,
``pack_bytes`` and ``open_engine`` on a folder.

The folder is a private copy of the shared weights folder made of symlinks to
the real files; for each input one of them is replaced by: the input's bytes,
a ``.npy`` file built from the input (header version, dtype, fortran order,
shape, header text and data chosen by it), the real tensor re-encoded (byte
order, Fortran order, NaN/inf/huge values, other dtypes, truncated...), or an
odd filesystem entry (missing, a folder, a dangling symlink...).

Contract: success, or one of ``ALLOWED`` (a ``TypeError`` only with a clear
message), whose message names the bad file or folder. On success every array
is float32, C-contiguous, finite and of its tensor's shape, the replaced one
equals what ``numpy.load`` reads from the file, and the packed blob differs
from the original one at most in the checksum and the changed tensor's data.

    python tests/fuzz/fuzz_npy.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _fuzzlib as fl

ALLOWED: tuple[type, ...] = (ValueError, OSError)
# TypeError is allowed when its message names the file and says what is wrong.
ALLOWED_IF_CLEAR: tuple[type, ...] = (TypeError,)
# Errors must name the file (or folder) at fault, as read_npy_dir documents.
REQUIRE_NAMED_ERRORS = True

CALLS = ["read_npy_dir", "pack_bytes", "open_engine"]
(KIND_RAW, KIND_BUILT, KIND_VARIANT, KIND_FS) = range(4)
VERSIONS = [(1, 0), (2, 0), (3, 0), (0, 0), (4, 0), (1, 1)]
DESCRS = ["'<f4'", "'>f4'", "'<f8'", "'<f2'", "'<i4'", "'|u1'", "'|b1'", "'<c8'", "'|O'",
          "'|V4'", "[('a', '<f4')]", "('<f4', (2,))", "'<U1'", "'<M8[s]'", "'f4'", "'=f4'",
          "'float32'", "'<f4 '", "'xyz'", "[]", "None", "1", "'>f8'", "'<u4'", "'<i8'",
          "'<f4', 'x': 1", "{'names': ['a'], 'formats': ['<f4']}"]
FORTRAN = ["False", "True", "0", "1", "None", "'yes'"]
SHAPE_MODES = ["real", "reversed", "one_dim", "extra_dim", "scalar", "empty", "flat", "custom",
               "negative", "huge", "list", "string"]
DATA_MODES = ["real", "input", "zeros", "nan", "inf", "huge"]
VARIANTS = ["big_endian", "fortran", "float64", "float16", "int32", "nan", "inf", "neg_inf",
            "huge_finite", "neg_zero", "subarray_dtype", "extra_dim", "flat", "v2_header",
            "v3_header", "trailing_bytes", "truncated", "object_pickle", "zero_size",
            "transposed"]
FS_MODES = ["missing", "folder", "dangling_symlink", "symlink_loop", "empty_file",
            "dir_is_file", "dir_missing", "char_device", "fifo"]

lib: Any = None
S: State | None = None


@dataclass
class State:
    src: Path  # the shared weights folder
    folder: Path  # private folder of symlinks
    specs: list[tuple[str, str, tuple[int, ...]]]
    pristine: bytes
    payload_off: int
    entries: list[tuple[int, int]]  # (offset, size) of each tensor in the payload
    packed_with: dict[int, set[int]]  # tensor -> tensors whose packed data it is part of
    originals: dict[int, Any]


def setup() -> None:
    global lib, S
    if S is not None:
        return
    import ssdface
    import ssdface.weights
    from ssdface import _testing  # noqa: F401 (lib._testing.xxh64: the blob checksum)

    lib = ssdface
    src = fl.weights_dir()
    specs = ssdface.weights.tensor_specs()
    pristine = ssdface.weights.pack_bytes(src).tobytes()
    count = struct.unpack_from("<I", pristine, 16)[0]
    entries = [struct.unpack_from("<QQ", pristine, 128 + 128 * i + 112) for i in range(count)]
    index = {name: i for i, (name, _, _) in enumerate(specs)}
    packed_with = {i: {i} for i in range(len(specs))}
    try:  # a bias is packed into its weight tensor's panels too
        for layer in ssdface._core.layers():
            packed_with[index[layer["bias"]]].add(index[layer["weight"]])
    except Exception:  # noqa: BLE001 - a private helper; the check just gets looser
        packed_with = {i: set(range(len(specs))) for i in range(len(specs))}
    folder = fl.workdir() / "npy"
    folder.mkdir()
    for name, _, _ in specs:
        (folder / f"{name}.npy").symlink_to(src / f"{name}.npy")
    S = State(src, folder, specs, pristine, struct.unpack_from("<Q", pristine, 32)[0], entries,
              packed_with, {})


def original(t: int) -> Any:
    import numpy as np

    if t not in S.originals:
        S.originals[t] = np.load(S.src / f"{S.specs[t][0]}.npy")
    return S.originals[t]


# --- building the replacement -------------------------------------------------------


def npy_bytes(version: tuple[int, int], header: str, data: bytes, header_len: int | None = None,
              fix_padding: bool = True) -> bytes:
    """A .npy file from its parts (numpy.lib.format, written by hand so that
    any part can be wrong)."""
    major = version[0]
    len_size = 2 if major < 2 else 4
    encoded = header.encode("utf-8" if major >= 3 else "latin1", "replace")
    if fix_padding:
        pad = -(6 + 2 + len_size + len(encoded) + 1) % 64
        encoded += b" " * pad + b"\n"
    n = len(encoded) if header_len is None else header_len
    size = n.to_bytes(len_size, "little", signed=False) if 0 <= n < (1 << 8 * len_size) else b""
    return b"\x93NUMPY" + bytes(version) + size + encoded + data


def _shape_text(fdp: Any, shape: tuple[int, ...]) -> str:
    mode = SHAPE_MODES[fdp.ConsumeIntInRange(0, len(SHAPE_MODES) - 1)]
    if mode == "real":
        return repr(tuple(shape))
    if mode == "reversed":
        return repr(tuple(reversed(shape)))
    if mode == "one_dim":
        dims = list(shape)
        dims[fdp.ConsumeIntInRange(0, len(dims) - 1)] = fdp.ConsumeIntInRange(0, 4096)
        return repr(tuple(dims))
    if mode == "extra_dim":
        return repr((1, *shape))
    if mode == "scalar":
        return "()"
    if mode == "empty":
        return repr((0, *shape[1:]))
    if mode == "flat":
        n = 1
        for d in shape:
            n *= d
        return repr((n,))
    if mode == "custom":
        return repr(tuple(fdp.ConsumeIntInRange(0, 1 << 20)
                          for _ in range(fdp.ConsumeIntInRange(0, 5))))
    if mode == "negative":
        return repr((-1, *shape[1:]))
    if mode == "huge":
        return repr((1 << fdp.ConsumeIntInRange(31, 70), *shape[1:]))
    if mode == "list":
        return repr(list(shape))
    return "'x'"


def _data(fdp: Any, t: int, nbytes: int) -> bytes:
    import numpy as np

    mode = DATA_MODES[fdp.ConsumeIntInRange(0, len(DATA_MODES) - 1)]
    delta = fdp.ConsumeIntInRange(-64, 64)
    nbytes = max(0, min(nbytes + delta, 1 << 24))
    if mode == "real":
        raw = original(t).astype("<f4").tobytes()
    elif mode == "input":
        raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1024)) or b"\0"
    else:
        value = {"zeros": 0.0, "nan": np.nan, "inf": np.inf, "huge": 3e38}[mode]
        raw = np.float32(value).tobytes()
    reps = -(-nbytes // len(raw)) if raw else 0
    return (raw * reps)[:nbytes]


def build_npy(fdp: Any, t: int) -> bytes:
    shape = S.specs[t][2]
    version = VERSIONS[fdp.ConsumeIntInRange(0, len(VERSIONS) - 1)]
    descr = DESCRS[fdp.ConsumeIntInRange(0, len(DESCRS) - 1)]
    fortran = FORTRAN[fdp.ConsumeIntInRange(0, len(FORTRAN) - 1)]
    shape_text = _shape_text(fdp, shape)
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape_text}, }}"
    style = fdp.ConsumeIntInRange(0, 7)
    if style == 1:  # a key missing
        header = f"{{'descr': {descr}, 'shape': {shape_text}}}"
    elif style == 2:  # an extra key
        header = header[:-1] + "'extra': 1}"
    elif style == 3:  # bytes from the input spliced into the text
        at = fdp.ConsumeIntInRange(0, len(header))
        junk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16)).decode("latin1")
        header = header[:at] + junk + header[at:]
    elif style == 4:  # not a dict
        header = f"[{descr}, {fortran}, {shape_text}]"
    header_len = None
    if fdp.ConsumeIntInRange(0, 7) == 0:
        header_len = fdp.ConsumeIntInRange(0, 70000)
    fix_padding = fdp.ConsumeIntInRange(0, 7) != 0
    n = 1
    for d in shape:
        n *= d
    return npy_bytes(version, header, _data(fdp, t, 4 * n), header_len, fix_padding)


def variant_npy(variant: str, t: int) -> bytes:
    """The real tensor, re-encoded."""
    import io

    import numpy as np

    arr = original(t)
    if variant == "big_endian":
        arr = arr.astype(">f4")
    elif variant == "fortran":
        arr = np.asfortranarray(arr)
    elif variant in ("float64", "float16", "int32"):
        arr = arr.astype(variant)
    elif variant in ("nan", "inf", "neg_inf", "huge_finite", "neg_zero"):
        arr = arr.copy()
        value = {"nan": np.nan, "inf": np.inf, "neg_inf": -np.inf, "huge_finite": 3.4e38,
                 "neg_zero": -0.0}[variant]
        arr.reshape(-1)[arr.size // 2] = value
    elif variant == "subarray_dtype":
        header = (f"{{'descr': ('<f4', {arr.shape[-1:]!r}), 'fortran_order': False, "
                  f"'shape': {arr.shape[:-1]!r}, }}")
        return npy_bytes((1, 0), header, arr.astype("<f4").tobytes())
    elif variant == "extra_dim":
        arr = arr[None]
    elif variant == "flat":
        arr = arr.reshape(-1)
    elif variant == "transposed":
        arr = arr.T
    elif variant == "zero_size":
        arr = arr[:0]
    buf = io.BytesIO()
    if variant == "object_pickle":
        np.save(buf, np.array([arr], dtype=object), allow_pickle=True)
        return buf.getvalue()
    version = {"v2_header": (2, 0), "v3_header": (3, 0)}.get(variant)
    np.lib.format.write_array(buf, np.asanyarray(arr), version=version)
    data = buf.getvalue()
    if variant == "trailing_bytes":
        data += b"trailing junk"
    elif variant == "truncated":
        data = data[:-7]
    return data


# --- one input ----------------------------------------------------------------------


@dataclass
class Plan:
    call: str
    tensor: int
    kind: int
    arg: Any  # bytes (raw/built), variant name or fs mode


def decode(fdp: Any) -> Plan:
    call = CALLS[fdp.ConsumeIntInRange(0, len(CALLS) - 1)]
    tensor = fdp.ConsumeIntInRange(0, len(S.specs) - 1)
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == KIND_BUILT:
        return Plan(call, tensor, kind, build_npy(fdp, tensor))
    if kind == KIND_VARIANT:
        return Plan(call, tensor, kind, VARIANTS[fdp.ConsumeIntInRange(0, len(VARIANTS) - 1)])
    if kind == KIND_FS:
        return Plan(call, tensor, kind, FS_MODES[fdp.ConsumeIntInRange(0, len(FS_MODES) - 1)])
    return Plan(call, tensor, KIND_RAW, fdp.ConsumeBytes(fdp.remaining_bytes()))


def encode(call: str, tensor: int, kind: int, arg: Any = b"", **built: Any) -> bytes:
    """The input that makes :func:`decode` build this plan (for make_corpus.py).
    ``arg``: the raw bytes, variant or filesystem mode; for KIND_BUILT the
    keywords of :func:`_encode_built`."""
    w = fl.SeedWriter()
    w.pick(CALLS, call).int(0, 143, tensor).int(0, 3, kind)
    if kind == KIND_BUILT:
        _encode_built(w, **built)
    elif kind == KIND_VARIANT:
        w.pick(VARIANTS, arg)
    elif kind == KIND_FS:
        w.pick(FS_MODES, arg)
    else:
        w.bytes(arg)
    return w.getvalue()


def _encode_built(w: fl.SeedWriter, version: tuple[int, int] = (1, 0), descr: str = "'<f4'",
                  fortran: str = "False", shape: str = "real", shape_args: tuple = (),
                  header_len: int | None = None, fix_padding: bool = True,
                  data: str = "real", delta: int = 0, data_bytes: bytes = b"") -> None:
    w.pick(VERSIONS, version).pick(DESCRS, descr).pick(FORTRAN, fortran).pick(SHAPE_MODES, shape)
    if shape == "one_dim":
        w.int(0, shape_args[0], shape_args[1]).int(0, 4096, shape_args[2])  # (ndim-1, axis, n)
    elif shape == "custom":
        w.int(0, 5, len(shape_args))
        for d in shape_args:
            w.int(0, 1 << 20, d)
    elif shape == "huge":
        w.int(31, 70, shape_args[0])
    w.int(0, 7, 0)  # header text style: the plain dict
    w.int(0, 7, 0 if header_len is not None else 1)
    if header_len is not None:
        w.int(0, 70000, header_len)
    w.int(0, 7, 1 if fix_padding else 0)
    w.pick(DATA_MODES, data).int(-64, 64, delta)
    if data == "input":
        w.int(0, 1024, len(data_bytes)).bytes(data_bytes)


def _replace(plan: Plan, path: Path) -> Path:
    """Put the replacement at ``path``; returns the folder to read."""
    path.unlink()
    if plan.kind in (KIND_RAW, KIND_BUILT):
        path.write_bytes(plan.arg)
    elif plan.kind == KIND_VARIANT:
        path.write_bytes(variant_npy(plan.arg, plan.tensor))
    elif plan.arg == "folder":
        path.mkdir()
    elif plan.arg == "dangling_symlink":
        path.symlink_to(S.folder / "nowhere.npy")
    elif plan.arg == "symlink_loop":
        path.symlink_to(path.name)
    elif plan.arg == "empty_file":
        path.write_bytes(b"")
    elif plan.arg == "dir_is_file":
        path.symlink_to(S.src / path.name)
        return path
    elif plan.arg == "dir_missing":
        path.symlink_to(S.src / path.name)
        return S.folder / "no-such-folder"
    elif plan.arg == "char_device":
        path.symlink_to("/dev/zero")
    elif plan.arg == "fifo":
        os.mkfifo(path)
    return S.folder


def _restore(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(S.src / path.name)


def _expected_array(path: Path) -> Any:
    """What the replaced file holds, read with numpy directly."""
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise fl.Finding(f"read_npy_dir accepted {path.name}, which numpy.load refuses: "
                         f"{exc!r}") from exc
    return arr


def _check_arrays(arrays: Any, plan: Plan, path: Path) -> bool:
    """Check read_npy_dir's result; returns whether the replaced tensor
    still holds the original values."""
    import numpy as np

    if not isinstance(arrays, list) or len(arrays) != len(S.specs):
        raise fl.Finding(f"read_npy_dir returned {type(arrays).__name__} of {len(arrays)}")
    for i, (arr, (name, _, shape)) in enumerate(zip(arrays, S.specs)):
        if not (isinstance(arr, np.ndarray) and arr.dtype == np.float32
                and arr.flags.c_contiguous and arr.shape == shape):
            raise fl.Finding(f"read_npy_dir: {name} is {type(arr).__name__} "
                             f"{getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}")
        if not np.isfinite(arr).all():
            raise fl.Finding(f"read_npy_dir accepted non-finite values in {name}")
        if i != plan.tensor and not np.array_equal(arr, original(i)):
            raise fl.Finding(f"read_npy_dir changed the untouched tensor {name}")
    got = arrays[plan.tensor]
    want = _expected_array(path)
    if want.shape != got.shape or not np.array_equal(want.astype(np.float32), got):
        raise fl.Finding(f"read_npy_dir: {path.name} read as other values than numpy.load's")
    return got.tobytes() == original(plan.tensor).astype("<f4").tobytes()


def _check_blob(blob: Any, plan: Plan, unchanged: bool) -> None:
    import numpy as np

    if not (isinstance(blob, np.ndarray) and blob.dtype == np.uint8 and blob.ctypes.data % 64 == 0):
        raise fl.Finding(f"pack_bytes returned {type(blob).__name__} {getattr(blob, 'dtype', '')}")
    data = blob.tobytes()
    if len(data) != len(S.pristine):
        raise fl.Finding(f"pack_bytes: {len(data)} bytes, expected {len(S.pristine)}")
    if unchanged:
        if data != S.pristine:
            raise fl.Finding("pack_bytes: the same values packed into another blob")
        return
    if data[:56] != S.pristine[:56] or data[64:S.payload_off] != S.pristine[64:S.payload_off]:
        raise fl.Finding("pack_bytes: header or table changed with a tensor's values")
    if struct.unpack_from("<Q", data, 56)[0] != lib._testing.xxh64(blob[64:]):
        raise fl.Finding("pack_bytes: wrong checksum")
    for i, (off, size) in enumerate(S.entries):
        if i in S.packed_with[plan.tensor]:
            continue
        lo, hi = S.payload_off + off, S.payload_off + off + size
        if data[lo:hi] != S.pristine[lo:hi]:
            raise fl.Finding(f"pack_bytes: tensor {S.specs[i][0]} changed, though only "
                             f"{S.specs[plan.tensor][0]} was")


def _check_error(exc: Exception, plan: Plan, folder: Path, path: Path) -> None:
    what = f"{plan.call}(folder with {path.name} replaced)"
    if isinstance(exc, ALLOWED_IF_CLEAR) and not isinstance(exc, fl.Finding):
        if path.stem not in str(exc):
            raise fl.Finding(f"{what} raised an unclear {type(exc).__name__}: {exc}") from exc
        fl.count(fl.outcome(exc))
        return
    fl.check_exception(exc, ALLOWED, what)
    if REQUIRE_NAMED_ERRORS and path.stem not in str(exc) and folder.name not in str(exc):
        raise fl.Finding(f"{what}: the error names neither the file nor the folder: "
                         f"{type(exc).__name__}: {exc}") from exc


def test_one_input(data: bytes) -> None:
    setup()
    plan = decode(fl.make_provider(data))
    path = S.folder / f"{S.specs[plan.tensor][0]}.npy"
    try:
        folder = _replace(plan, path)
        try:
            if plan.call == "read_npy_dir":
                result = lib.weights.read_npy_dir(folder)
            elif plan.call == "pack_bytes":
                result = lib.weights.pack_bytes(folder)
            else:
                result = lib.weights.open_engine(folder)
        except Exception as exc:
            _check_error(exc, plan, folder, path)
            return
        if plan.kind == KIND_FS:
            raise fl.Finding(f"{plan.call} accepted a folder whose {path.name} is {plan.arg}")
        if plan.call == "read_npy_dir":
            _check_arrays(result, plan, path)
        elif plan.call == "pack_bytes":
            arr = _expected_array(path).astype("<f4")
            _check_blob(result, plan, arr.tobytes() == original(plan.tensor).astype("<f4")
                        .tobytes())
        else:
            engine, where = result
            if Path(where) != folder or engine.info["tensor_count"] != len(S.specs):
                raise fl.Finding(f"open_engine returned {where}, {engine.info}")
        fl.count(f"accepted:{plan.call}")
    finally:
        _restore(path)


def _instrument_numpy_format(atheris: Any) -> None:
    """Coverage of numpy's .npy parser too (instrumenting all of numpy is slow)."""
    import numpy.lib.format as fmt

    source = fmt.read_array.__code__.co_filename
    for value in list(fmt.read_array.__globals__.values()):
        code = getattr(value, "__code__", None)
        if code is not None and code.co_filename == source:
            atheris.instrument_func(value)


def main() -> None:
    fl.run(test_one_input, setup, also=_instrument_numpy_format)


if __name__ == "__main__":
    main()


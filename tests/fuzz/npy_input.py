"""The ``npy`` target's input: which call, which tensor, and what replaces
its ``.npy`` file - the input's bytes, a ``.npy`` file built from the input
(header version, dtype, fortran order, shape, header text, data), the real
tensor re-encoded (byte order, Fortran order, NaN/inf/huge values, other
dtypes, truncation...), or an odd filesystem entry. :func:`decode` reads a
plan from the fuzzer's input, :func:`encode` writes the input of a plan (the
seeds, ``make_corpus.py``), :func:`replace` and :func:`restore` put the
replacement in the folder and take it out again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import _fuzzlib as fl

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


class Weights(Protocol):
    """What the input reads of the weights (the target's state)."""

    src: Path  # the shared weights folder
    folder: Path  # private folder of symlinks to it, where a file is replaced
    specs: list[tuple[str, str, tuple[int, ...]]]  # (name, dtype, shape) per tensor

    def original(self, t: int) -> Any:
        """Tensor ``t`` as the shared folder holds it."""


# --- building a replacement .npy file -----------------------------------------------


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


def _data(fdp: Any, t: int, nbytes: int, base: Weights) -> bytes:
    import numpy as np

    mode = DATA_MODES[fdp.ConsumeIntInRange(0, len(DATA_MODES) - 1)]
    delta = fdp.ConsumeIntInRange(-64, 64)
    nbytes = max(0, min(nbytes + delta, 1 << 24))
    if mode == "real":
        raw = base.original(t).astype("<f4").tobytes()
    elif mode == "input":
        raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1024)) or b"\0"
    else:
        value = {"zeros": 0.0, "nan": np.nan, "inf": np.inf, "huge": 3e38}[mode]
        raw = np.float32(value).tobytes()
    reps = -(-nbytes // len(raw)) if raw else 0
    return (raw * reps)[:nbytes]


def build_npy(fdp: Any, t: int, base: Weights) -> bytes:
    shape = base.specs[t][2]
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
    return npy_bytes(version, header, _data(fdp, t, 4 * n, base), header_len, fix_padding)


def variant_npy(variant: str, t: int, base: Weights) -> bytes:
    """The real tensor, re-encoded."""
    import io

    import numpy as np

    arr = base.original(t)
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


# --- the plan -----------------------------------------------------------------------


@dataclass
class Plan:
    call: str
    tensor: int
    kind: int
    arg: Any  # bytes (raw/built), variant name or fs mode


def decode(fdp: Any, base: Weights) -> Plan:
    call = CALLS[fdp.ConsumeIntInRange(0, len(CALLS) - 1)]
    tensor = fdp.ConsumeIntInRange(0, len(base.specs) - 1)
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == KIND_BUILT:
        return Plan(call, tensor, kind, build_npy(fdp, tensor, base))
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


# --- putting it in the folder ---------------------------------------------------------


def replace(plan: Plan, path: Path, base: Weights) -> Path:
    """Put the replacement at ``path``; returns the folder to read."""
    path.unlink()
    if plan.kind in (KIND_RAW, KIND_BUILT):
        path.write_bytes(plan.arg)
    elif plan.kind == KIND_VARIANT:
        path.write_bytes(variant_npy(plan.arg, plan.tensor, base))
    elif plan.arg == "folder":
        path.mkdir()
    elif plan.arg == "dangling_symlink":
        path.symlink_to(base.folder / "nowhere.npy")
    elif plan.arg == "symlink_loop":
        path.symlink_to(path.name)
    elif plan.arg == "empty_file":
        path.write_bytes(b"")
    elif plan.arg == "dir_is_file":
        path.symlink_to(base.src / path.name)
        return path
    elif plan.arg == "dir_missing":
        path.symlink_to(base.src / path.name)
        return base.folder / "no-such-folder"
    elif plan.arg == "char_device":
        path.symlink_to("/dev/zero")
    elif plan.arg == "fifo":
        os.mkfifo(path)
    return base.folder


def restore(path: Path, base: Weights) -> None:
    """Put the symlink to the shared file back at ``path``."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(base.src / path.name)

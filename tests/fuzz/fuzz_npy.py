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

The input's decoding and the replacement files are in ``npy_input.py``.

    python tests/fuzz/fuzz_npy.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as cm
import _fuzzlib as fl
from npy_input import KIND_FS, Plan, decode, replace, restore

ALLOWED: tuple[type, ...] = (ValueError, OSError)
# TypeError is allowed when its message names the file and says what is wrong.
ALLOWED_IF_CLEAR: tuple[type, ...] = (TypeError,)
# Errors must name the file (or folder) at fault, as read_npy_dir documents.
REQUIRE_NAMED_ERRORS = True

lib: Any = None
S: State | None = None


@dataclass
class State:
    src: Path  # the shared weights folder
    folder: Path  # private folder of symlinks
    specs: list[tuple[str, str, tuple[int, ...]]]
    pristine: bytes  # the reference weights' blob (with the int8 section)
    float_only: bytes  # the same weights packed float32 only: what other weights give
    payload_off: int  # of float_only
    entries: list[tuple[int, int]]  # (offset, size) of each tensor in float_only's payload
    packed_with: dict[int, set[int]]  # tensor -> tensors whose packed data it is part of
    originals: dict[int, Any] = field(default_factory=dict)

    def original(self, t: int) -> Any:
        """Tensor ``t`` as the shared folder holds it (loaded once)."""
        import numpy as np

        if t not in self.originals:
            self.originals[t] = np.load(self.src / f"{self.specs[t][0]}.npy")
        return self.originals[t]


def setup() -> None:
    global lib, S
    if S is not None:
        return
    lib = ssdface = cm.import_ssdface()
    src = fl.weights_dir()
    specs = ssdface.weights.tensor_specs()
    pristine = ssdface.weights.pack_bytes(src).tobytes()
    # Weights other than the calibrated reference pack without the int8
    # section: a changed tensor gives this blob with that tensor's bytes changed.
    float_only = ssdface._core.pack_blob(ssdface.weights.read_npy_dir(src)).tobytes()
    _, payload_off, entries = cm.blob_table(float_only)
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
    S = State(src, folder, specs, pristine, float_only, payload_off, entries, packed_with)


# --- what a result must be -------------------------------------------------------------


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
        if i != plan.tensor and not np.array_equal(arr, S.original(i)):
            raise fl.Finding(f"read_npy_dir changed the untouched tensor {name}")
    got = arrays[plan.tensor]
    want = _expected_array(path)
    if want.shape != got.shape or not np.array_equal(want.astype(np.float32), got):
        raise fl.Finding(f"read_npy_dir: {path.name} read as other values than numpy.load's")
    return got.tobytes() == S.original(plan.tensor).astype("<f4").tobytes()


def _check_blob(blob: Any, plan: Plan, unchanged: bool) -> None:
    import numpy as np

    if not (isinstance(blob, np.ndarray) and blob.dtype == np.uint8 and blob.ctypes.data % 64 == 0):
        raise fl.Finding(f"pack_bytes returned {type(blob).__name__} {getattr(blob, 'dtype', '')}")
    data = blob.tobytes()
    ref = S.pristine if unchanged else S.float_only
    if len(data) != len(ref):
        raise fl.Finding(f"pack_bytes: {len(data)} bytes, expected {len(ref)}")
    if unchanged:
        if data != S.pristine:
            raise fl.Finding("pack_bytes: the same values packed into another blob")
        return
    if data[:56] != ref[:56] or data[64:S.payload_off] != ref[64:S.payload_off]:
        raise fl.Finding("pack_bytes: header or table changed with a tensor's values")
    if struct.unpack_from("<Q", data, 56)[0] != lib._testing.xxh64(blob[64:]):
        raise fl.Finding("pack_bytes: wrong checksum")
    for i, (off, size) in enumerate(S.entries):
        if i in S.packed_with[plan.tensor]:
            continue
        lo, hi = S.payload_off + off, S.payload_off + off + size
        if data[lo:hi] != ref[lo:hi]:
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


# --- one input ---------------------------------------------------------------------------

def test_one_input(data: bytes) -> None:
    setup()
    plan = decode(fl.make_provider(data), S)
    path = S.folder / f"{S.specs[plan.tensor][0]}.npy"
    try:
        folder = replace(plan, path, S)
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
            _check_blob(result, plan, arr.tobytes() == S.original(plan.tensor).astype("<f4")
                        .tobytes())
        else:
            engine, where = result
            # the reference values pack with the int8 section, others without
            same = (_expected_array(path).astype("<f4").tobytes()
                    == S.original(plan.tensor).astype("<f4").tobytes())
            count = struct.unpack_from("<I", S.pristine if same else S.float_only, 16)[0]
            if Path(where) != folder or engine.info["tensor_count"] != count:
                raise fl.Finding(f"open_engine returned {where}, {engine.info}")
        fl.count(f"accepted:{plan.call}")
    finally:
        restore(path, S)


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

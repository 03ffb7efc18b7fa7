"""Finding, validating, packing and loading the model weights.

The network reads one blob: every tensor packed in the layout the kernels use,
with a checksummed header (format in ``csrc/blob.h``). A blob is written once
from the model's 144 ``.npy`` files with :func:`pack_weights` (or
``ssdface pack``) and read into private memory at start-up.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import _core

PathLike = Union[str, "os.PathLike[str]"]
BytesLike = Union[bytes, bytearray, memoryview, np.ndarray]

BLOB_NAME = "ssd_mobilenetv2_face.blob"
BUILD_INFO_NAME = "build_info.json"
ENV_VAR = "SSDFACE_WEIGHTS"
UPSTREAM = (
    "the 144 .npy files of the SSD MobileNetV2 face model in the Apache-2.0 repository "
    "webmachinelearning/test-data, folder models/ssd_mobilenetv2_face_nhwc/weights/"
)

# XXH64 (the blob header's checksum) of the blob `ssdface pack` writes from
# the reference weights this release expects: the 144 .npy files of
# webmachinelearning/test-data, models/ssd_mobilenetv2_face_nhwc/weights/
# (with the zero stand-in tensor the README describes), with the int8
# section quantized by the committed calibration
# (ssdface/quant/*.int8-ranges.json). Packing is deterministic, so the same
# files give the same checksum on any machine; it changes with the blob
# format and with the calibration.
EXPECTED_CHECKSUM = 0x23282F8894D83376

BlobError = _core.BlobError


class WeightsNotFoundError(FileNotFoundError):
    """No weights were given and none were found in the usual places."""


def embedded_blob_path() -> Path:
    """Where the build puts the blob when it found the weights."""
    return Path(__file__).resolve().parent / "data" / BLOB_NAME


def build_info() -> dict:
    """What the build of this installation did about the weights.

    ``weights_embedded`` is True when the build packed the weights into the
    package (then ``weights_source``, ``blob``, ``blob_size`` and
    ``blob_sha256`` say from where and what), False when it found none (then
    ``reason`` says why), and None when the package holds no build record
    (a source tree that was never built). ``blob_present`` says whether the
    embedded blob is there now.
    """
    path = embedded_blob_path().with_name(BUILD_INFO_NAME)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {"weights_embedded": None}
    if not isinstance(info, dict):
        info = {"weights_embedded": None}
    info["blob_present"] = embedded_blob_path().is_file()
    return info


def _not_found_message() -> str:
    embedded = build_info().get("weights_embedded")
    if embedded is False:
        why = ("no model weights found: this build of ssdface embeds none (it was built "
               f"without the model's .npy files) and ${ENV_VAR} is not set")
    elif embedded:
        why = (f"no model weights found: the blob this build embedded, {embedded_blob_path()}, "
               f"has been removed, and ${ENV_VAR} is not set")
    else:
        why = f"no model weights found: no blob at {embedded_blob_path()}, ${ENV_VAR} is not set"
    return (
        f"{why}, and there is no {cached_blob_path()}. The weights are {UPSTREAM}. Pass "
        f"Detector(weights=PATH) with PATH that folder or a blob, set ${ENV_VAR} to either, "
        f"or run `ssdface pack NPY_DIR` once to write {cached_blob_path()} (`ssdface verify "
        f"PATH` checks a downloaded folder or blob first). To embed them "
        f"instead, reinstall with {ENV_VAR}=NPY_DIR and pip's --no-cache-dir (else pip may "
        "reuse the weightless wheel it cached). See the README, \"Weights\"."
    )


def cache_dir() -> Path:
    """The per-user cache folder (``$XDG_CACHE_HOME/ssdface`` or ``~/.cache/ssdface``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssdface"


def cached_blob_path() -> Path:
    """The blob ``ssdface pack SRC`` writes when no destination is given."""
    return cache_dir() / BLOB_NAME


def find_weights(weights: PathLike | None = None) -> Path:
    """Resolve where the weights come from.

    Order: the argument, ``$SSDFACE_WEIGHTS``, the blob embedded in the
    installed package, the blob in the cache folder. Each may be a blob file
    or a folder of ``.npy`` files.
    """
    if weights is not None:
        path = Path(os.fspath(weights))
        if not path.exists():
            raise FileNotFoundError(f"weights not found: {path}")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
        if not path.exists():
            raise FileNotFoundError(f"${ENV_VAR} points to {path}, which does not exist")
        return path
    for path in (embedded_blob_path(), cached_blob_path()):
        if path.is_file():
            return path
    raise WeightsNotFoundError(_not_found_message())


def tensor_specs() -> list[tuple[str, str, tuple[int, ...]]]:
    """``(name, layout kind, shape)`` of every tensor the network reads, in blob order."""
    return _core.tensor_specs()


def read_npy_dir(src_dir: PathLike) -> list[np.ndarray]:
    """Read and check the model's ``.npy`` files, in blob order.

    Every file must exist, be a plain float32 array of the expected shape and
    hold only finite values; errors name the file.
    """
    src = Path(os.fspath(src_dir))
    if not src.is_dir():
        raise NotADirectoryError(f"not a folder of .npy files: {src}")
    arrays = []
    for name, _kind, shape in tensor_specs():
        path = src / f"{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"missing weight file: {path}")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises several types for a bad file
            raise ValueError(f"{path}: not a readable .npy file ({exc})") from exc
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f" or arr.dtype.itemsize != 4:
            raise ValueError(f"{path}: dtype {getattr(arr, 'dtype', type(arr))}, expected float32")
        if arr.shape != shape:
            raise ValueError(f"{path}: shape {arr.shape}, expected {shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: holds NaN or infinite values")
        arrays.append(np.ascontiguousarray(arr, dtype=np.float32))
    return arrays


def float_checksum(arrays: Sequence[np.ndarray]) -> int:
    """The identity of a set of float weights: the XXH64 of the float32-only
    blob they pack to (what an int8 calibration is tied to)."""
    return int.from_bytes(bytes(_core.pack_blob(list(arrays))[56:64]), "little")


def pack_arrays(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Pack the model's float32 tensors (blob order) into an in-memory blob,
    with the int8 (qu8) section when the committed calibration is of these
    very weights (:func:`ssdface.quant.blob.int8_section`); other weights
    pack float32 only, and an int8 detector on them says how to calibrate."""
    from .quant.blob import int8_section  # ssdface.quant imports this module

    section = int8_section(arrays, float_checksum(arrays))
    return _core.pack_blob(list(arrays), qu8=section)


def pack_bytes(src_dir: PathLike) -> np.ndarray:
    """Pack a folder of ``.npy`` files into an in-memory blob (aligned uint8 array)."""
    return pack_arrays(read_npy_dir(src_dir))


def pack_weights(src_dir: PathLike, dst_path: PathLike) -> Path:
    """Write the blob for the ``.npy`` files in ``src_dir`` to ``dst_path``.

    The blob is written to a temporary file in the destination's folder,
    flushed to disk and renamed over the destination, so a reader (or a
    second pack running at the same time) never sees a half-written blob; on
    any failure the temporary file is removed. The file is mode 0644. Returns
    the destination path.
    """
    blob = pack_bytes(src_dir)
    dst = Path(os.fspath(dst_path))
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(blob))
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes it 0600: others could not read it
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(dst.parent)  # make the rename itself durable
    return dst


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the data itself is synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_blob(path: PathLike) -> np.ndarray:
    """Read a blob file into private, 64-byte aligned memory.

    Only a regular file is read: a FIFO, a socket or a device is refused
    (reading one could block forever or never end). The header is checked
    against the file's size before anything else is read, so a file whose
    size is not this model's blob size is refused at once, however large.
    The detector keeps this copy: rewriting, truncating or deleting the
    file afterwards cannot change its results or crash it (see the README,
    "Weights"). The full validation happens in the engine.
    """
    path = Path(os.fspath(path))
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BlobError(f"{path}: not a regular file, cannot be a weights blob")
        size = info.st_size
        header = f.read(_core.BLOB_HEADER_SIZE)
        try:
            _core.check_blob_header(header, size)
        except BlobError as exc:
            raise BlobError(f"{path}: {exc}") from None
        buffer = _core._aligned_empty(size)
        view = memoryview(buffer)
        view[: len(header)] = header
        filled = len(header)
        while filled < size:
            n = f.readinto(view[filled:])
            if not n:
                break
            filled += n
        if filled != size or f.read(1):
            raise BlobError(f"{path}: the file changed size while it was being read")
    return buffer


def blob_from_bytes(data: BytesLike) -> np.ndarray:
    """A blob held in memory, checked from its header, as aligned private memory."""
    view = memoryview(data).cast("B")
    _core.check_blob_header(view[: _core.BLOB_HEADER_SIZE], len(view))
    buffer = _core._aligned_empty(len(view))
    buffer[:] = view
    return buffer


def open_engine(
    weights: PathLike | BytesLike | None = None, num_threads: int = 1, precision: str = "f32"
) -> tuple[_core.Engine, Path | None]:
    """Build an engine from a blob file, a folder of ``.npy`` files or the
    bytes of a blob, running in ``precision`` ("f32", or "int8": the blob's
    quantized section); returns it and where the weights came from (None for
    bytes)."""
    mode = {"f32": "f32", "int8": "qu8"}[precision]
    if isinstance(weights, (bytes, bytearray, memoryview, np.ndarray)):
        return _core.Engine(blob_from_bytes(weights), num_threads, mode), None
    path = find_weights(weights)
    buffer = pack_bytes(path) if path.is_dir() else read_blob(path)
    try:
        return _core.Engine(buffer, num_threads, mode), path
    except BlobError as exc:
        raise BlobError(f"{path}: {exc}") from None


def verify_weights(weights: PathLike | None = None) -> dict[str, Any]:
    """Check a weights blob, or a folder of ``.npy`` files, as fully as a
    detector does when it loads it (header, size, table, checksum, finite
    values, biases), without keeping a detector.

    ``weights`` None means the weights ``Detector()`` would use. A folder is
    checked and packed in memory. Returns the blob header facts
    (``version``, ``tensor_count``, ``payload_size``, ``file_size``,
    ``checksum``, ``model_name``) plus ``path``, ``packed`` (True for a
    folder) and ``expected`` (the checksum equals :data:`EXPECTED_CHECKSUM`,
    i.e. these are the reference weights). Raises what loading raises:
    :class:`BlobError` (a ``ValueError``) for an invalid blob, ``ValueError``
    or ``FileNotFoundError`` for a bad folder, ``OSError`` for an unreadable
    file, :class:`WeightsNotFoundError` when nothing is found.
    """
    engine, path = open_engine(weights, 1)
    try:
        info = dict(engine.info)
    finally:
        engine.close()
    info.update(path=path, packed=path is not None and path.is_dir(),
                expected=info["checksum"] == EXPECTED_CHECKSUM)
    return info

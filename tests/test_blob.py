"""The weights blob: round trip, corruption, truncation, tampered tables, and
the .npy checks of the packer. Every failure must be a Python exception that
names the problem, never a crash."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import ssdface
from ssdface import _core
from ssdface.weights import BlobError, WeightsNotFoundError

HEADER = 128
ENTRY = 128


@pytest.fixture(scope="module")
def blob_bytes(weights_dir) -> bytes:
    return ssdface.weights.pack_bytes(weights_dir).tobytes()


@pytest.fixture(scope="module")
def blob_file(tmp_path_factory, weights_dir) -> Path:
    path = tmp_path_factory.mktemp("blob") / "model.blob"
    ssdface.pack_weights(weights_dir, path)
    return path


def rechecksum(data: bytearray) -> bytearray:
    """Recompute the header checksum so structural checks are reached."""
    data[56:64] = struct.pack("<Q", _core.xxh64(bytes(data[64:])))
    return data


def entry_offset(data: bytes, name: str) -> int:
    count = struct.unpack_from("<I", data, 16)[0]
    for i in range(count):
        off = HEADER + i * ENTRY
        if data[off:off + 88].rstrip(b"\0").decode() == name:
            return off
    raise KeyError(name)


def test_header_fields(blob_bytes):
    assert blob_bytes[:8] == b"SSDFBLOB"
    version, header, count, entry = struct.unpack_from("<IIII", blob_bytes, 8)
    assert (version, header, count, entry) == (_core.BLOB_VERSION, 128, 144, 128)
    table, payload, payload_size, file_size, checksum = struct.unpack_from("<QQQQQ", blob_bytes, 24)
    assert table == 128 and payload % 64 == 0
    assert file_size == len(blob_bytes) and payload + payload_size == file_size
    assert checksum == _core.xxh64(blob_bytes[64:])
    assert blob_bytes[64:96].rstrip(b"\0") == b"ssd_mobilenetv2_face"
    for i in range(count):  # every tensor 64-byte aligned and inside the payload
        off, size = struct.unpack_from("<QQ", blob_bytes, HEADER + i * ENTRY + 112)
        assert off % 64 == 0 and off + size <= payload_size


def test_xxh64_known_values():
    assert _core.xxh64(b"") == 0xEF46DB3751D8E999
    assert _core.xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert _core.xxh64(b"abc") == 0x44BC2CF5AD770999


def test_packing_is_deterministic(weights_dir, blob_bytes):
    assert ssdface.weights.pack_bytes(weights_dir).tobytes() == blob_bytes


def test_blob_file_and_folder_give_identical_outputs(weights_dir, blob_file):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    from_dir = ssdface.Detector(weights_dir).forward(x)
    from_blob = ssdface.Detector(blob_file).forward(x)
    np.testing.assert_array_equal(from_dir[0], from_blob[0])
    np.testing.assert_array_equal(from_dir[1], from_blob[1])


def test_unaligned_buffer_is_copied(blob_bytes):
    raw = np.frombuffer(b"\0" + blob_bytes, dtype=np.uint8)[1:]  # misaligned view
    engine = _core.Engine(raw)
    assert engine.info["tensor_count"] == 144


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.blob"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("cut", [1, 8, 64, 127, 128, 129, 4096, 18_000_000, -1, -64])
def test_truncated_blob(tmp_path, blob_bytes, cut):
    data = blob_bytes[:cut] if cut > 0 else blob_bytes[:len(blob_bytes) + cut]
    with pytest.raises(BlobError, match="bad.blob"):
        ssdface.Detector(write(tmp_path, data))


def test_padded_blob(tmp_path, blob_bytes):
    with pytest.raises(BlobError, match="truncated or padded"):
        ssdface.Detector(write(tmp_path, blob_bytes + b"\0" * 64))


def test_empty_blob(tmp_path):
    with pytest.raises(BlobError, match="empty"):
        ssdface.Detector(write(tmp_path, b""))


@pytest.mark.parametrize("where", [64, 200, 5000, 100_000, 10_000_000, -1])
def test_flipped_byte_fails_checksum(tmp_path, blob_bytes, where):
    data = bytearray(blob_bytes)
    data[where] ^= 0x10
    with pytest.raises(BlobError, match="checksum"):
        ssdface.Detector(write(tmp_path, data))


def test_bad_magic_and_version(tmp_path, blob_bytes):
    data = bytearray(blob_bytes)
    data[0:8] = b"NOTABLOB"
    with pytest.raises(BlobError, match="magic"):
        ssdface.Detector(write(tmp_path, data))
    data = bytearray(blob_bytes)
    data[8:12] = struct.pack("<I", 99)
    with pytest.raises(BlobError, match="version 99"):
        ssdface.Detector(write(tmp_path, data))


NAME = "FeatureExtractor_MobilenetV2_Conv_1_weights"


@pytest.mark.parametrize(
    "field,value,message",
    [
        (96, 1279, "dimension 0"),               # shape
        (88, 2, "dtype"),                         # dtype code
        (90, 4 + 256, "layout kind"),             # kind (u16)
        (112, 2**40, "outside the payload"),      # offset far out
        (112, 8, "not aligned"),                  # misaligned offset
        (120, 2**62, "bytes, expected"),          # size
    ],
)
def test_tampered_table_entry(tmp_path, blob_bytes, field, value, message):
    data = bytearray(blob_bytes)
    off = entry_offset(blob_bytes, NAME) + field
    if field in (88, 90):
        struct.pack_into("<H", data, off, value & 0xFFFF)
    elif field == 96:
        struct.pack_into("<I", data, off, value)
    else:
        struct.pack_into("<Q", data, off, value)
    with pytest.raises(BlobError, match=message):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_offset_past_end_of_payload(tmp_path, blob_bytes):
    data = bytearray(blob_bytes)
    payload_size = struct.unpack_from("<Q", blob_bytes, 40)[0]
    off = entry_offset(blob_bytes, NAME)
    struct.pack_into("<Q", data, off + 112, (payload_size // 64) * 64)  # last aligned offset
    with pytest.raises(BlobError, match="outside the payload"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_missing_tensor_and_bad_counts(tmp_path, blob_bytes):
    data = bytearray(blob_bytes)
    off = entry_offset(blob_bytes, NAME)
    data[off:off + 4] = b"XXXX"
    with pytest.raises(BlobError, match="lacks tensor " + NAME):
        ssdface.Detector(write(tmp_path, rechecksum(data)))
    for count in (0, 10_000):
        data = bytearray(blob_bytes)
        struct.pack_into("<I", data, 16, count)
        with pytest.raises(BlobError, match="tensors"):
            ssdface.Detector(write(tmp_path, data))
    data = bytearray(blob_bytes)
    struct.pack_into("<Q", data, 32, 2**63)  # payload offset
    with pytest.raises(BlobError, match="payload bounds"):
        ssdface.Detector(write(tmp_path, data))


def test_random_garbage_never_crashes(tmp_path, blob_bytes):
    rng = np.random.default_rng(1)
    for _ in range(20):
        data = bytearray(blob_bytes[:HEADER + 4 * ENTRY])
        i = int(rng.integers(8, len(data)))
        data[i:i + 8] = rng.bytes(8)
        with pytest.raises(BlobError):
            _core.Engine(bytes(data))


# --- the .npy side -------------------------------------------------------


@pytest.fixture()
def npy_copy(tmp_path, weights_dir) -> Path:
    dst = tmp_path / "npy"
    shutil.copytree(weights_dir, dst)
    return dst


def test_missing_npy(npy_copy, tmp_path):
    (npy_copy / f"{NAME}.npy").unlink()
    with pytest.raises(FileNotFoundError, match=NAME):
        ssdface.pack_weights(npy_copy, tmp_path / "x.blob")
    assert not (tmp_path / "x.blob").exists()
    with pytest.raises(FileNotFoundError, match=NAME):
        ssdface.Detector(npy_copy)


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros((1280, 1, 1, 32), np.float32), "shape"),
        (np.zeros((1280, 320), np.float32), "shape"),
        (np.zeros((1280, 1, 1, 320), np.float64), "float32"),
        (np.zeros((1280, 1, 1, 320), np.int32), "float32"),
        (np.full((1280, 1, 1, 320), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_npy_contents(npy_copy, tmp_path, array, message):
    np.save(npy_copy / f"{NAME}.npy", array)
    with pytest.raises(ValueError, match=message) as info:
        ssdface.pack_weights(npy_copy, tmp_path / "x.blob")
    assert NAME in str(info.value)


def test_corrupt_npy_files(npy_copy, tmp_path):
    path = npy_copy / f"{NAME}.npy"
    path.write_bytes(b"this is not numpy")
    with pytest.raises(ValueError, match=NAME):
        ssdface.pack_weights(npy_copy, tmp_path / "x.blob")
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(ValueError, match=NAME):
        ssdface.pack_weights(npy_copy, tmp_path / "x.blob")
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=NAME):
        ssdface.pack_weights(npy_copy, tmp_path / "x.blob")
    good = np.load(npy_copy / "BoxPredictor_0_ClassPredictor_weights.npy")
    np.save(path, good)  # a valid .npy of the wrong tensor
    with pytest.raises(ValueError, match="shape"):
        ssdface.pack_weights(npy_copy, tmp_path / "x.blob")


def test_big_endian_npy_is_accepted(npy_copy, weights_dir, tmp_path, blob_bytes):
    arr = np.load(weights_dir / f"{NAME}.npy")
    np.save(npy_copy / f"{NAME}.npy", arr.astype(">f4"))
    out = ssdface.pack_weights(npy_copy, tmp_path / "be.blob")
    assert out.read_bytes() == blob_bytes


# --- where the weights come from ------------------------------------------


def test_weights_argument_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ssdface.Detector(tmp_path / "nowhere")


def test_env_var(monkeypatch, blob_file, tmp_path):
    monkeypatch.setenv("SSDFACE_WEIGHTS", str(blob_file))
    assert ssdface.Detector().weights_path == blob_file
    monkeypatch.setenv("SSDFACE_WEIGHTS", str(tmp_path / "missing.blob"))
    with pytest.raises(FileNotFoundError, match="SSDFACE_WEIGHTS"):
        ssdface.Detector()


def test_cache_folder_and_no_weights(monkeypatch, blob_file, tmp_path):
    monkeypatch.delenv("SSDFACE_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ssdface.weights, "embedded_blob_path", lambda: tmp_path / "none.blob")
    with pytest.raises(WeightsNotFoundError, match="SSDFACE_WEIGHTS"):
        ssdface.Detector()
    cached = tmp_path / "cache" / "ssdface" / "ssd_mobilenetv2_face.blob"
    cached.parent.mkdir(parents=True)
    shutil.copy(blob_file, cached)
    assert ssdface.Detector().weights_path == cached

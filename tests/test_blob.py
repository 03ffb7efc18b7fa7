"""The weights blob: round trip, corruption, truncation, tampered tables and
the checks past the checksum. Every failure must be a Python exception that
names the problem, never a crash. (The .npy checks of the packer, finding,
writing and replacing a blob: test_weights_files.py.)"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ssdface
from ssdface import _core, _testing
from ssdface.weights import BlobError

HEADER = 128
# Table entries of the reference blob: the float32 tensors, then the int8
# section's (one per layer and the layer records).
ENTRIES = len(_core.tensor_specs()) + len(_core.layers()) + 1
ENTRY = 128


def rechecksum(data: bytearray) -> bytearray:
    """Recompute the header checksum so structural checks are reached."""
    data[56:64] = struct.pack("<Q", _testing.xxh64(bytes(data[64:])))
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
    assert (version, header, count, entry) == (_core.BLOB_VERSION, 128, ENTRIES, 128)
    table, payload, payload_size, file_size, checksum = struct.unpack_from("<QQQQQ", blob_bytes, 24)
    assert table == 128 and payload % 64 == 0
    assert file_size == len(blob_bytes) and payload + payload_size == file_size
    assert checksum == _testing.xxh64(blob_bytes[64:])
    assert blob_bytes[64:96].rstrip(b"\0") == b"ssd_mobilenetv2_face"
    for i in range(count):  # every tensor 64-byte aligned and inside the payload
        off, size = struct.unpack_from("<QQ", blob_bytes, HEADER + i * ENTRY + 112)
        assert off % 64 == 0 and off + size <= payload_size


def test_xxh64_known_values():
    assert _testing.xxh64(b"") == 0xEF46DB3751D8E999
    assert _testing.xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert _testing.xxh64(b"abc") == 0x44BC2CF5AD770999


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
    assert engine.info["tensor_count"] == ENTRIES


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
        (88, 7, "dtype"),                         # dtype code
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


# --- validation past the checksum -------------------------------------------


def payload_floats(data: bytearray, name: str) -> np.ndarray:
    """A writable float32 view of one tensor's packed data in `data`."""
    payload = struct.unpack_from("<Q", data, 32)[0]
    off, size = struct.unpack_from("<QQ", data, entry_offset(bytes(data), name) + 112)
    return np.frombuffer(data, dtype=np.float32, count=size // 4, offset=payload + off)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, blob_bytes, value):
    data = bytearray(blob_bytes)
    payload_floats(data, NAME)[100] = value
    with pytest.raises(BlobError, match=f"{NAME} holds NaN or infinite"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_aliased_tensors_are_refused(tmp_path, blob_bytes):
    """Two table entries pointing at the same bytes (same size and kind)."""
    other = "FeatureExtractor_MobilenetV2_expanded_conv_3_project_Conv2D_bias"
    same = "FeatureExtractor_MobilenetV2_expanded_conv_4_project_Conv2D_bias"
    data = bytearray(blob_bytes)
    src = entry_offset(blob_bytes, other)
    dst = entry_offset(blob_bytes, same)
    data[dst + 112:dst + 120] = data[src + 112:src + 120]
    with pytest.raises(BlobError, match="overlap"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_overlapping_tensors_are_refused(tmp_path, blob_bytes):
    data = bytearray(blob_bytes)
    off = entry_offset(blob_bytes, NAME)
    start = struct.unpack_from("<Q", data, off + 112)[0]
    struct.pack_into("<Q", data, off + 112, start + 64)  # into the next tensor
    with pytest.raises(BlobError, match="overlap|outside"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_duplicate_and_unknown_entries_are_refused(tmp_path, blob_bytes):
    data = bytearray(blob_bytes)
    first, second = HEADER, HEADER + ENTRY
    data[second:second + ENTRY] = data[first:first + ENTRY]  # one tensor twice, one missing
    with pytest.raises(BlobError, match="Conv_weights is listed twice"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_bias_disagreeing_with_packed_panels_is_refused(tmp_path, blob_bytes):
    """The kernels read the bias folded into the weight panels, the exporter
    the standalone bias tensor: a blob where they differ is inconsistent."""
    bias = "FeatureExtractor_MobilenetV2_Conv_1_Conv2D_bias"
    data = bytearray(blob_bytes)
    payload_floats(data, bias)[3] += 1.0
    with pytest.raises(BlobError, match=f"{bias}: its bias differs"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))
    data = bytearray(blob_bytes)
    payload_floats(data, NAME)[3] += 1.0  # panel 0, bias row, channel 3
    with pytest.raises(BlobError, match="bias differs"):
        ssdface.Detector(write(tmp_path, rechecksum(data)))


def test_header_size_is_checked_before_reading(tmp_path, blob_bytes, monkeypatch):
    """A sparse 64 GiB file with a header claiming that size is refused from
    its header: nothing reads or hashes the rest."""
    huge = 64 << 30
    data = bytearray(blob_bytes[:HEADER])
    struct.pack_into("<Q", data, 48, huge)  # file size
    struct.pack_into("<Q", data, 40, huge - struct.unpack_from("<Q", data, 32)[0])
    path = tmp_path / "sparse.blob"
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(huge)
    allocated = []
    monkeypatch.setattr(_core, "_aligned_empty", lambda n: allocated.append(n))
    with pytest.raises(BlobError, match="a blob of ssd_mobilenetv2_face is"):
        ssdface.Detector(path)
    assert not allocated  # refused before a buffer for the file was even allocated


def test_only_regular_files(tmp_path):
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    with pytest.raises(BlobError, match="not a regular file"):
        ssdface.Detector(fifo)  # used to block forever waiting for a writer
    with pytest.raises(BlobError, match="not a regular file"):
        ssdface.Detector("/dev/zero")


def test_fifo_does_not_hang_in_a_subprocess(tmp_path):
    """The same, guarded by a timeout: before the fix this blocked forever."""
    fifo = tmp_path / "w.fifo"
    os.mkfifo(fifo)
    code = (f"import ssdface\ntry:\n    ssdface.Detector({str(fifo)!r})\n"
            "except ValueError:\n    pass")
    subprocess.run([sys.executable, "-c", code], timeout=60, check=True)

"""Weights files around the blob format: the .npy checks of the packer, where
a detector finds its weights, writing a blob, and a blob that changes under a
live detector. Every failure must be a Python exception that names the
problem, never a crash. (The blob format itself: test_blob.py.)"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ssdface
from ssdface.weights import WeightsNotFoundError

NAME = "FeatureExtractor_MobilenetV2_Conv_1_weights"


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


# --- writing a blob, and a blob that changes under a live detector -----------


def test_pack_is_atomic_and_readable_by_others(tmp_path, weights_dir):
    dst = tmp_path / "out" / "model.blob"
    ssdface.pack_weights(weights_dir, dst)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o644
    assert sorted(p.name for p in dst.parent.iterdir()) == ["model.blob"]


def test_failed_pack_leaves_no_temporary(tmp_path, weights_dir, monkeypatch):
    dst = tmp_path / "model.blob"

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        ssdface.pack_weights(weights_dir, dst)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_packs_give_one_valid_blob(tmp_path, weights_dir):
    dst = tmp_path / "model.blob"
    code = ("import sys, ssdface; ssdface.pack_weights(sys.argv[1], sys.argv[2])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(weights_dir), str(dst)])
             for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.blob"]
    assert ssdface.Detector(dst).weights_info["file_size"] == dst.stat().st_size


def _forward(detector):
    x = np.random.default_rng(5).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    return detector.forward(x)


def test_repacking_a_live_blob_leaves_the_detector_unchanged(tmp_path, weights_dir, npy_copy):
    path = tmp_path / "live.blob"
    ssdface.pack_weights(weights_dir, path)
    detector = ssdface.Detector(path)
    before = _forward(detector)
    scaled = np.load(npy_copy / f"{NAME}.npy") * 0.5  # other weights
    np.save(npy_copy / f"{NAME}.npy", scaled)
    ssdface.pack_weights(npy_copy, path)
    assert not np.array_equal(_forward(ssdface.Detector(path))[0], before[0])
    after = _forward(detector)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_blob_overwritten_in_place_or_truncated_under_a_live_detector(tmp_path, weights_dir):
    """`cp other.blob live.blob` rewrites the file in place; a crash or a
    truncation can cut it. Neither may change or crash a running detector (a
    subprocess: before the fix the truncation killed it with SIGBUS)."""
    path = tmp_path / "live.blob"
    ssdface.pack_weights(weights_dir, path)
    code = f"""
import numpy as np, ssdface
path = {str(path)!r}
d = ssdface.Detector(path)
x = np.random.default_rng(5).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
before = d.forward(x)
size = len(open(path, "rb").read())
with open(path, "r+b") as f:
    f.seek(size // 2)
    f.write(b"\\x7f" * (size // 4))  # in place, same inode
after = d.forward(x)
assert all(np.array_equal(a, b) for a, b in zip(before, after)), "outputs changed"
with open(path, "r+b") as f:
    f.truncate(4096)
after = d.forward(x)
assert all(np.array_equal(a, b) for a, b in zip(before, after)), "outputs changed"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]

"""``ssdface verify`` and ``ssdface info``, run in a subprocess: good,
corrupted, truncated and missing weights, a package built without weights,
and the CPU features read from /proc/cpuinfo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import run

import ssdface
from ssdface import _core

# Table entries of the reference blob: the float32 tensors and the int8 section.
ENTRIES = len(_core.tensor_specs()) + len(_core.layers()) + 1


def _one_error_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The run failed with exit 1 and one stderr line holding ``parts``, no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _fields(stdout: str) -> dict[str, str]:
    """``key: value`` lines as a dict (the first ``: `` splits)."""
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_expected_checksum_is_the_reference_blobs(blob):
    """EXPECTED_CHECKSUM is the XXH64 (seed 0, bytes 64 on) of the blob packed
    from the shared reference weights, as its header and a detector say."""
    from ssdface import _testing
    from ssdface.weights import EXPECTED_CHECKSUM

    data = blob.read_bytes()
    assert _testing.xxh64(data[64:]) == EXPECTED_CHECKSUM
    assert int.from_bytes(data[56:64], "little") == EXPECTED_CHECKSUM
    with ssdface.Detector(blob) as det:
        assert det.weights_info["checksum"] == EXPECTED_CHECKSUM


def test_verify_a_good_blob(tmp_path, blob):
    from ssdface import _core
    from ssdface.weights import EXPECTED_CHECKSUM

    for args in (["verify", blob], ["verify"]):  # given, or the one Detector() finds
        proc = run(args, cwd=tmp_path, blob=blob)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        fields = _fields(proc.stdout)
        assert fields["weights"] == str(blob)
        assert fields["version"] == str(_core.BLOB_VERSION)
        assert fields["tensor_count"] == str(ENTRIES)
        assert fields["file_size"] == str(blob.stat().st_size)
        assert fields["checksum"] == f"{EXPECTED_CHECKSUM:#018x}" == "0x23282f8894d83376"
        assert fields["expected_checksum"].startswith("0x23282f8894d83376 (matches")
        assert proc.stdout.splitlines()[-1] == "ok"


def test_verify_a_folder_of_npy_files(tmp_path, blob, weights_dir):
    """How a user checks a download: the folder is packed in memory."""
    proc = run(["verify", weights_dir], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    fields = _fields(proc.stdout)
    assert fields["weights"] == str(weights_dir)
    assert "packed in memory" in fields["source"]
    assert fields["checksum"] == "0x23282f8894d83376"
    assert fields["file_size"] == str(blob.stat().st_size)
    assert "(matches" in fields["expected_checksum"]
    assert proc.stdout.splitlines()[-1] == "ok"
    assert not list(tmp_path.iterdir())  # nothing written


def test_verify_other_weights_are_valid_but_not_the_expected(tmp_path, blob, weights_dir):
    folder = tmp_path / "tuned"
    folder.mkdir()
    for src in weights_dir.glob("*.npy"):
        (folder / src.name).symlink_to(src)
    name = "BoxPredictor_0_BoxEncodingPredictor_Conv2D_bias.npy"
    (folder / name).unlink()
    np.save(folder / name, np.load(weights_dir / name) + np.float32(0.5))
    proc = run(["verify", folder], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    fields = _fields(proc.stdout)
    assert fields["checksum"] != "0x23282f8894d83376"
    assert "(differs: not the reference weights" in fields["expected_checksum"]


def test_verify_a_corrupted_blob(tmp_path, blob):
    bad = tmp_path / "bad.blob"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the payload
    bad.write_bytes(bytes(data))
    proc = run(["verify", bad], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(bad), "invalid weights blob", "checksum mismatch")
    assert proc.stdout == ""
    # The same as the weights a detector would use.
    proc = run(["verify"], cwd=tmp_path, blob=bad)
    _one_error_line(proc, str(bad), "checksum mismatch")


def test_verify_a_truncated_blob(tmp_path, blob):
    short = tmp_path / "short.blob"
    short.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    proc = run(["verify", short], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(short), "invalid weights blob", "truncated")
    empty = tmp_path / "empty.blob"
    empty.write_bytes(b"")
    _one_error_line(run(["verify", empty], cwd=tmp_path, blob=blob), str(empty), "empty")


def test_verify_a_missing_path_and_a_bad_folder(tmp_path, blob):
    missing = tmp_path / "nothing.blob"
    proc = run(["verify", missing], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(missing), "cannot read", "no such file")
    folder = tmp_path / "npy"
    folder.mkdir()
    proc = run(["verify", folder], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(folder), "invalid weights folder", "missing weight file")


def test_info_lists_versions_kernels_threads_and_weights(tmp_path, blob):
    from ssdface import isa

    proc = run(["info"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    fields = _fields(proc.stdout)
    assert fields["ssdface"].startswith(ssdface.__version__ + " ")
    assert fields["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert fields["numpy"] == np.__version__
    assert fields["kernels"] == isa.default_isa()
    assert fields["kernels_available"].split() == isa.available_isas()
    assert fields["kernels_compiled"].split() == isa.compiled_isas()
    assert fields["precision_default"].startswith("f32 ")
    assert fields["kernels_int8"] == isa.best_isa("int8")
    assert fields["kernels_int8_available"].split() == isa.available_isas("int8")
    assert fields["int8"] == "yes"
    features = isa.cpu_features()
    if features is None:
        assert fields["cpu_features"].startswith("unknown")
    else:
        for name, present in features.items():
            assert (name in fields["cpu_features"].split(" (lacks")[0].split()) == present
    assert fields["num_threads_default"].startswith("1 ")
    assert fields["cpu_count"].startswith(f"{os.cpu_count()} ")
    assert fields["detect_jobs_default"].split()[0].isdigit()
    assert fields["detect_threads_default"] == "1"
    assert fields["build"]
    assert fields["weights"] == str(blob)
    assert fields["checksum"] == "0x23282f8894d83376"
    assert fields["tensor_count"] == str(ENTRIES)
    assert "(matches" in fields["expected_checksum"]


def test_info_names_a_bad_blob(tmp_path, blob):
    bad = tmp_path / "bad.blob"
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    proc = run(["info"], cwd=tmp_path, blob=bad)
    _one_error_line(proc, str(bad), "checksum mismatch")
    assert f"weights: {bad}" in proc.stdout.splitlines()


@pytest.fixture
def weightless_package(tmp_path) -> Path:
    """A copy of the package whose build embedded no weights: the folder to
    put on PYTHONPATH."""
    root = tmp_path / "site"
    shutil.copytree(Path(ssdface.__file__).resolve().parent, root / "ssdface",
                    ignore=shutil.ignore_patterns("data", "__pycache__", "*.c", "*.pyx"))
    (root / "ssdface" / "data").mkdir()
    (root / "ssdface" / "data" / "build_info.json").write_text(
        json.dumps({"weights_embedded": False, "reason": "$SSDFACE_WEIGHTS is not set"}))
    return root


def run_weightless(args, root: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """ssdface from the weightless copy, with an empty cache and no $SSDFACE_WEIGHTS."""
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "SSDFACE_WEIGHTS"}
    full_env.update(PYTHONPATH=str(root), XDG_CACHE_HOME=str(cache), **env)
    return subprocess.run([sys.executable, "-m", "ssdface", *map(str, args)], cwd=tmp_path,
                          capture_output=True, text=True, env=full_env, timeout=120)


def test_info_and_verify_without_weights(tmp_path, weightless_package):
    cached = tmp_path / "cache" / "ssdface" / "ssd_mobilenetv2_face.blob"
    for env in ({}, {"SSDFACE_WEIGHTS": ""}):  # unset, or set to nothing
        proc = run_weightless(["info"], weightless_package, tmp_path, **env)
        line = _one_error_line(proc, "no model weights found", "embeds none", str(cached),
                               "SSDFACE_WEIGHTS", "ssdface pack", "ssdface verify",
                               "webmachinelearning/test-data")
        assert line.startswith("ssdface: error: ")
        # Everything else is printed first.
        fields = _fields(proc.stdout)
        assert fields["ssdface"].startswith(f"{ssdface.__version__} ({weightless_package}")
        for key in ("python", "numpy", "cpu_features", "kernels", "kernels_available",
                    "num_threads_default", "cpu_count", "detect_jobs_default"):
            assert key in fields
        assert fields["build"] == "no weights embedded"
        assert proc.stdout.splitlines()[-1] == "weights: none found"
    proc = run_weightless(["verify"], weightless_package, tmp_path)
    _one_error_line(proc, "no model weights found", str(cached))
    assert proc.stdout == ""


def test_info_with_weights_env_pointing_nowhere(tmp_path, weightless_package):
    nowhere = tmp_path / "no" / "such.blob"
    proc = run_weightless(["info"], weightless_package, tmp_path, SSDFACE_WEIGHTS=str(nowhere))
    _one_error_line(proc, "$SSDFACE_WEIGHTS", str(nowhere), "does not exist")
    assert proc.stdout.splitlines()[-1] == "weights: none found"


def test_cpu_features_from_cpuinfo(tmp_path):
    from ssdface.isa import CPU_FEATURES, cpu_features

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f amx_tile\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx2 fma avx512f amx_tile\n")
    if not sys.platform.startswith("linux"):
        assert cpu_features(str(info)) is None
        return
    assert cpu_features(str(info)) == {name: name in ("avx2", "fma", "avx512f", "amx")
                                       for name in CPU_FEATURES}
    assert cpu_features(str(tmp_path / "missing")) is None
    (tmp_path / "blank").write_text("processor\t: 0\n")
    assert cpu_features(str(tmp_path / "blank")) is None

"""What a build records about its weights, and what a weightless build says."""

from __future__ import annotations

import hashlib
import json

import pytest

import ssdface
import ssdface.weights
from ssdface.weights import WeightsNotFoundError, build_info


@pytest.fixture
def package_data(monkeypatch, tmp_path):
    """A stand-in for the package's data folder, with nothing else to find."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(ssdface.weights, "embedded_blob_path",
                        lambda: data / ssdface.weights.BLOB_NAME)
    monkeypatch.delenv("SSDFACE_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return data


def test_weightless_build_says_so(package_data):
    (package_data / "build_info.json").write_text(
        json.dumps({"weights_embedded": False, "reason": "$SSDFACE_WEIGHTS is not set"}))
    info = build_info()
    assert info["weights_embedded"] is False and info["blob_present"] is False
    with pytest.raises(WeightsNotFoundError) as exc:
        ssdface.Detector()
    message = str(exc.value)
    assert "embeds none" in message
    # Where the weights come from and what to do, on one line (the CLI prints one).
    for part in ("webmachinelearning/test-data", "models/ssd_mobilenetv2_face_nhwc/weights/",
                 "ssdface pack", "SSDFACE_WEIGHTS", "--no-cache-dir",
                 "ssd_mobilenetv2_face.blob"):
        assert part in message
    assert "\n" not in message


def test_info_of_a_weightless_build(package_data, capsys):
    from ssdface.cli import main

    (package_data / "build_info.json").write_text(json.dumps({"weights_embedded": False}))
    assert main(["info"]) == 1
    out, err = capsys.readouterr()
    # The rest of the facts first, then where the weights are not.
    assert out.endswith("build: no weights embedded\nweights: none found\n")
    assert f"kernels: {ssdface.default_isa()}\n" in out
    assert err.startswith("ssdface: error: no model weights found: this build of ssdface embeds")
    assert err.count("\n") == 1


def test_embedded_blob_removed(package_data):
    (package_data / "build_info.json").write_text(json.dumps({"weights_embedded": True}))
    with pytest.raises(WeightsNotFoundError, match="has been removed"):
        ssdface.Detector()


def test_no_build_record(package_data):
    assert build_info() == {"weights_embedded": None, "blob_present": False}
    (package_data / "build_info.json").write_text("not json")
    assert build_info()["weights_embedded"] is None
    with pytest.raises(WeightsNotFoundError, match="no blob at"):
        ssdface.Detector()


def test_this_build_is_consistent():
    """The installed (or in-place) build: its record matches its data folder."""
    info = build_info()
    blob = ssdface.weights.embedded_blob_path()
    if info["weights_embedded"]:
        assert info["blob_present"]
        assert info["blob_size"] == blob.stat().st_size
        assert info["blob_sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()
        assert blob.stat().st_mode & 0o777 == 0o644
    elif info["weights_embedded"] is False:
        assert not info["blob_present"]

"""Fixtures for the pytest-benchmark files: the shared weights and photo, the
models exported from the same weights, a packed blob, the preset input.

Run: python -m pytest benchmarks (not part of the test suite, which only
collects tests/). Engines that are not installed are skipped here; compare.py
shows them as n/a rows instead.
"""

from __future__ import annotations

from pathlib import Path

import engines
import numpy as np
import pytest

import ssdface


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    path = engines.default_weights_dir()
    if not path.is_dir():
        pytest.fail(f"weights folder not found at {path} (set SSDFACE_SHARED)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """group_selfie.jpg as a 1500x1000 uint8 RGB array."""
    return engines.load_photo(engines.default_photo_path())


@pytest.fixture(scope="session")
def net_input() -> np.ndarray:
    """A fixed, preset input in the network's range."""
    return engines.preset_input()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> dict[str, Path]:
    """``{"tflite": path, "onnx": path, "tflite-int8": path, "onnx-qdq": path}`` exported
    from the shared weights (``engines.export_models``)."""
    return engines.export_models(weights_dir, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def blob(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Path:
    return ssdface.pack_weights(weights_dir, tmp_path_factory.mktemp("blob") / "ssdface.blob")


@pytest.fixture(scope="session")
def anchors(blob: Path) -> np.ndarray:
    return ssdface.Detector(blob).anchors()

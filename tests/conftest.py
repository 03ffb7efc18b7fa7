"""Shared fixtures: the read-only inputs in ../shared, the weights packed into a blob,
reference weights and caches.

The shared folder (weights, photos) is looked up at ``<repo>/../shared`` or at
``$SSDFACE_SHARED``.  When it is missing the tests fail loudly: they must never
skip silently in CI.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    # Make ``import reference`` work whatever pytest's import mode is.
    sys.path.insert(0, str(TESTS_DIR))

import reference  # noqa: E402

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # Started as a background job of a shell without job control (`cmd &`
    # in a script: .ci/sanitize.sh runs its variants so), this process
    # inherits SIGINT ignored, and Python then leaves it ignored, in the
    # subprocesses too. The Ctrl-C tests (test_signals, test_batch) need
    # Python's usual KeyboardInterrupt: restore it here; a handler set here
    # is reset to the default on exec, so the tests' subprocesses get it too.
    signal.signal(signal.SIGINT, signal.default_int_handler)

WEIGHTS_SUBDIR = Path("weights") / "ssd_mobilenetv2_face_nhwc"
PHOTO_FILES = {
    "group_selfie": "group_selfie.jpg",
    "portrait_padded": "portrait_padded.jpg",
    "foliage_no_face": "foliage_no_face.jpg",
}


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.fail(
            f"{what} not found at {path}; the tests need the read-only shared inputs "
            "(set SSDFACE_SHARED to the shared folder)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared inputs folder: ``$SSDFACE_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("SSDFACE_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return _require_dir(path.resolve(), "shared folder")


@pytest.fixture(scope="session")
def weights_dir(shared_dir: Path) -> Path:
    """Folder of the model's ``.npy`` files."""
    path = _require_dir(shared_dir / WEIGHTS_SUBDIR, "weights folder")
    if not any(path.glob("*.npy")):
        pytest.fail(f"no .npy weights in {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def images_dir(shared_dir: Path) -> Path:
    """Folder of the test photos."""
    return _require_dir(shared_dir / "images", "images folder")


@pytest.fixture(scope="session")
def photo_paths(images_dir: Path) -> dict[str, Path]:
    """Photo name (file stem) -> path."""
    paths = {name: images_dir / fname for name, fname in PHOTO_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.fail(f"missing test photos: {missing}", pytrace=False)
    return paths


@pytest.fixture(scope="session")
def photos(photo_paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Photo name (file stem, e.g. ``"group_selfie"``) -> HxWx3 uint8 RGB array."""
    from PIL import Image

    out = {}
    for name, path in photo_paths.items():
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        arr.setflags(write=False)
        out[name] = arr
    return out


@pytest.fixture(scope="session")
def blob_bytes(weights_dir: Path) -> bytes:
    """The shared weights packed into a blob, in memory."""
    import ssdface

    return ssdface.weights.pack_bytes(weights_dir).tobytes()


@pytest.fixture(scope="session")
def blob_file(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Path:
    """The same blob as a file: what an installed package reads (a detector
    builds from it in milliseconds). Tests must not change it."""
    import ssdface

    path = tmp_path_factory.mktemp("blob") / "model.blob"
    ssdface.pack_weights(weights_dir, path)
    return path


@pytest.fixture(scope="session")
def blob(blob_file: Path) -> Path:
    """``blob_file`` under the name the command line tests (test_cli_*.py)
    give it: the weights their ``ssdface`` runs read (each worker builds a
    detector from it)."""
    return blob_file


@pytest.fixture(scope="session")
def ref_weights(weights_dir: Path) -> dict[str, np.ndarray]:
    """Reference float64 weights."""
    return reference.load_weights(weights_dir)


@pytest.fixture(scope="session")
def detector(weights_dir: Path):
    """``ssdface.Detector`` on the shared weights folder, default parameters."""
    import ssdface

    return ssdface.Detector(weights=weights_dir)


@pytest.fixture(scope="session")
def single_pass(weights_dir: Path):
    """The plain pipeline, one whole-image pass (``padded_pass=False``), at
    the reference's score threshold 0.5: what ``reference.detect_reference``
    computes in float64."""
    import ssdface

    return ssdface.Detector(weights=weights_dir, padded_pass=False, score_threshold=0.5)


class ReferenceCache:
    """Caches reference network outputs so each input is run once per session."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self._weights = weights
        self._forward: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def forward(
        self, key: str, make_input: Callable[[], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``forward_reference(make_input())``, cached under ``key``."""
        if key not in self._forward:
            self._forward[key] = reference.forward_reference(make_input(), self._weights)
        return self._forward[key]

    def detect(
        self,
        key: str,
        image: np.ndarray,
        score_threshold: float = 0.5,
        iou_threshold: float = 0.6,
        max_faces: int = 100,
    ) -> list[reference.Face]:
        """``detect_reference(image, ...)``; the network part is cached under ``key``.

        Equivalent to :func:`reference.detect_reference`, which is this
        preprocess + forward + postprocess chain.
        """
        image = np.asarray(image)
        box_enc, logits = self.forward(
            "detect:" + key, lambda: reference.preprocess_reference(image)
        )
        height, width = image.shape[:2]
        return reference.postprocess_reference(
            box_enc[0], logits[0], height, width, score_threshold, iou_threshold, max_faces
        )


@pytest.fixture(scope="session")
def ref_cache(ref_weights: dict[str, np.ndarray]) -> ReferenceCache:
    """Session-wide cache of reference outputs."""
    return ReferenceCache(ref_weights)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CI=true``) a skipped test is a failure: nothing may skip there."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""The calibration's input list (``calibration_inputs.txt``): photos under
``../shared`` by relative path, whole or as seeded crops, and how each
becomes a network input exactly as the detector's one-pass decode and
resize make it (on the portable kernels, so the same on any CPU). Used by
:mod:`ssdface.quant.calibrate`; no image is ever stored in the repository.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _core
from ..image import decode

INPUTS_FILE = Path(__file__).resolve().with_name("calibration_inputs.txt")
RESIZE_IMPL = "scalar"  # portable kernel set: the same inputs on any CPU
PHOTO_GLOBS = ("images/*.jpg", "eval/faces/images/wider/*.jpg")
DEFAULT_SEED = 0
DEFAULT_CROPS = 64
CROP_SIDE = (0.25, 0.75)  # crop side, as a fraction of the image's short side


@dataclass(frozen=True)
class CalibrationInput:
    """One calibration input: an image path relative to the shared folder,
    optionally a crop ``(x0, y0, x1, y1)`` in pixels of the stored image."""

    path: str
    crop: tuple[int, int, int, int] | None = None

    def line(self) -> str:
        if self.crop is None:
            return self.path
        return f"{self.path} crop {' '.join(str(v) for v in self.crop)}"


def default_shared_dir() -> Path:
    """``$SSDFACE_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("SSDFACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


def parse_inputs(text: str) -> list[CalibrationInput]:
    """The inputs of a list file's text (see the module docstring)."""
    items = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) == 1:
            items.append(CalibrationInput(parts[0]))
        elif len(parts) == 6 and parts[1] == "crop":
            x0, y0, x1, y1 = (int(v) for v in parts[2:])
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise ValueError(f"line {n}: empty or negative crop {parts[2:]}")
            items.append(CalibrationInput(parts[0], (x0, y0, x1, y1)))
        else:
            raise ValueError(f"line {n}: expected PATH or PATH crop X0 Y0 X1 Y1, got {raw!r}")
        if Path(items[-1].path).is_absolute() or ".." in Path(items[-1].path).parts:
            raise ValueError(f"line {n}: paths must be relative to the shared folder")
    return items


def read_inputs(path: Path = INPUTS_FILE) -> tuple[list[CalibrationInput], str]:
    """The inputs of a list file and the SHA-256 of its bytes."""
    data = Path(path).read_bytes()
    return parse_inputs(data.decode("utf-8")), hashlib.sha256(data).hexdigest()


def make_inputs(shared: Path, seed: int = DEFAULT_SEED,
                crops: int = DEFAULT_CROPS) -> list[CalibrationInput]:
    """Every photo of :data:`PHOTO_GLOBS` (sorted), then ``crops`` random
    square crops of them (``numpy.random.default_rng(seed)``)."""
    paths = [p.relative_to(shared).as_posix()
             for pattern in PHOTO_GLOBS for p in sorted(shared.glob(pattern))]
    if not paths:
        raise FileNotFoundError(f"no photos under {shared} ({', '.join(PHOTO_GLOBS)})")
    items = [CalibrationInput(p) for p in paths]
    rng = np.random.default_rng(seed)
    for _ in range(crops):
        rel = paths[int(rng.integers(len(paths)))]
        # the oriented size (EXIF applied), as load_input decodes it; draft decode
        width, height = decode(shared / rel, need=lambda w, h: (1, 1)).size
        side = max(1, int(rng.uniform(*CROP_SIDE) * min(width, height)))
        x0 = int(rng.integers(width - side + 1))
        y0 = int(rng.integers(height - side + 1))
        items.append(CalibrationInput(rel, (x0, y0, x0 + side, y0 + side)))
    return items


def format_inputs(items: Sequence[CalibrationInput], seed: int, crops: int) -> str:
    """The text of a list file."""
    head = [
        "# Calibration inputs of the int8 model (ssdface.quant.calibrate): paths",
        "# relative to the shared folder, optionally `crop X0 Y0 X1 Y1` in stored pixels.",
        f"# Written by `python -m ssdface.quant.calibrate --write-inputs --seed {seed} "
        f"--crops {crops}`.",
    ]
    return "\n".join(head + [it.line() for it in items]) + "\n"


def load_input(shared: Path, item: CalibrationInput) -> np.ndarray:
    """The float32 ``[300, 300, 3]`` network input of one calibration input."""
    path = shared / item.path
    if item.crop is None:
        pixels = decode(path).pixels  # as Detector.detect decodes one view
    else:
        full = decode(path, need=lambda w, h: (w, h)).pixels
        x0, y0, x1, y1 = item.crop
        if x1 > full.shape[1] or y1 > full.shape[0]:
            raise ValueError(f"{item.line()}: crop outside the {full.shape[1]}x"
                             f"{full.shape[0]} image")
        pixels = np.ascontiguousarray(full[y0:y1, x0:x1])
    return _core.resize_normalize(pixels, impl=RESIZE_IMPL)

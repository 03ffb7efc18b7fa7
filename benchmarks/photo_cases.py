"""The photo and the cases of ``photo_to_faces.py``: the 4000x3000 JPEG made
from the shared photo, the detectors, and the call each case times.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTO_SIZE = (4000, 3000)
WARM_SIZE = (640, 480)
JPEG_QUALITY = 92
SOURCE = Path("images") / "group_selfie.jpg"

DECODE = "decode"
PATH = "detect(path)"
PATH_1 = "detect(path) 1 pass"
ARRAY = "detect(array)"


def mfs_case(mfs: float) -> str:
    return f"detect(path) mfs={mfs:g}"


def default_shared() -> Path:
    """``$SSDFACE_SHARED``, else ``<repo>/../shared``."""
    env = os.environ.get("SSDFACE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def make_photos(shared: Path, folder: Path) -> tuple[Path, Path, Path, Path]:
    """The 4000x3000 JPEG and its ``.npy`` RGB array, then the same for the 640x480 warm-up copy."""
    from PIL import Image

    with Image.open(shared / SOURCE) as src:
        rgb = src.convert("RGB")
    paths = []
    for name, size in (("photo", PHOTO_SIZE), ("warm", WARM_SIZE)):
        jpg = folder / f"{name}.jpg"
        rgb.resize(size, Image.BICUBIC).save(jpg, quality=JPEG_QUALITY)
        npy = folder / f"{name}.npy"
        np.save(npy, full_decode(jpg))
        paths += [jpg, npy]
    return paths[0], paths[1], paths[2], paths[3]


def full_decode(path: Path) -> np.ndarray:
    """The baseline: what a user does to get the pixels of a photo with Pillow."""
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def build_detector(weights: str | None, threads: int, **kwargs: Any) -> Any:
    import ssdface

    if weights is not None:
        return ssdface.Detector(weights, num_threads=threads, **kwargs)
    try:
        return ssdface.Detector(num_threads=threads, **kwargs)
    except ssdface.WeightsNotFoundError:
        fallback = default_shared() / "weights" / "ssd_mobilenetv2_face_nhwc"
        return ssdface.Detector(fallback, num_threads=threads, **kwargs)


# --- what each case runs ------------------------------------------------------


def case_call(case: str, detector: Any, one_pass: Any, photo: Path, array: np.ndarray | None,
              mfs: float | None) -> Callable[[], Any]:
    """The call a case times (``array`` only for ``detect(array)``)."""
    p = str(photo)
    if case == DECODE:
        return lambda: full_decode(photo)
    if case == PATH:
        return lambda: detector.detect(p)
    if case == PATH_1:
        return lambda: one_pass.detect(p)
    if case == ARRAY:
        assert array is not None
        return lambda: detector.detect(array)
    if mfs is not None and case == mfs_case(mfs):
        return lambda: detector.detect(p, min_face_size=mfs)
    raise ValueError(f"unknown case {case!r}")


def cases_for(mfs: float | None) -> list[str]:
    return [DECODE, PATH, PATH_1, ARRAY] + ([mfs_case(mfs)] if mfs is not None else [])


"""What the fuzz targets share about ssdface itself (the harness machinery -
paths, input decoding, the finding policy, running - is in ``_fuzzlib.py``):
the weights blob's layout, a blob packed once per process, the image
targets' detector settings and size caps, and the sanity checks of faces and
of network input that the targets' contracts use.

ssdface is imported only when a function here is called (from a target's
``setup()``, which atheris runs with its imports instrumented).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import _fuzzlib as fl

# The image targets (array, imagefile): their detectors' settings, and the
# caps that keep one input well under a second (huge and extreme-aspect
# images are slow in resize; tests/test_resize.py covers them).
SCORE_THRESHOLD = 0.2
MAX_FACES = 8
MAX_SIDE = 8192
MAX_PIXELS = 4_000_000

# The blob's header and each table entry, in bytes (csrc/blob.h).
BLOB_HEADER = 128
BLOB_ENTRY = 128


def import_ssdface() -> Any:
    """The ssdface package, with ``ssdface.weights``."""
    import ssdface._testing  # noqa: F401 - lib._testing.xxh64: the blob checksum

    import ssdface
    import ssdface.weights  # noqa: F401 - loaded for the targets' lib.weights

    return ssdface


def blob_table(blob: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """A packed blob's tensor count, payload offset, and the ``(offset, size)``
    of each tensor in the payload, in table order."""
    count = struct.unpack_from("<I", blob, 16)[0]
    payload_off = struct.unpack_from("<Q", blob, 32)[0]
    entries = [struct.unpack_from("<QQ", blob, BLOB_HEADER + i * BLOB_ENTRY + 112)
               for i in range(count)]
    return count, payload_off, entries


def packed_blob() -> Path:
    """The shared weights packed into a blob in this process' scratch folder,
    once."""
    blob = fl.workdir() / "weights.blob"
    if not blob.exists():
        import_ssdface().pack_weights(fl.weights_dir(), blob)
    return blob


def detector(**kwargs: Any) -> Any:
    """A ``Detector`` on :func:`packed_blob` at the image targets' settings."""
    return import_ssdface().Detector(packed_blob(), score_threshold=SCORE_THRESHOLD,
                                     max_faces=MAX_FACES, **kwargs)


def face_problems(faces: Any, height: float, width: float, min_score: float = 0.0,
                  max_faces: int = MAX_FACES) -> list[str]:
    """What is wrong with ``detect``'s result for an image of ``height`` rows
    of ``width`` pixels: not a list of at most ``max_faces`` faces, a face with a
    non-finite (or non-float) value, outside the image or scoring outside
    [``min_score``, 1], or faces not sorted by score. Empty when sane."""
    if not isinstance(faces, list) or len(faces) > max_faces:
        return [f"returned {type(faces).__name__} {faces!r:.200}"]
    out = []
    for f in faces:
        values = (*f.box, f.score)
        if not all(isinstance(v, float) and math.isfinite(v) for v in values):
            out.append(f"non-finite face {f}")
            continue
        x0, y0, x1, y1 = f.box
        if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
                and min_score <= f.score <= 1):
            out.append(f"face {f} outside the {width}x{height} image or its score out of "
                       f"[{min_score}, 1]")
    scores = [f.score for f in faces]
    if scores != sorted(scores, reverse=True):
        out.append("faces not sorted by score")
    return out


def check_faces(faces: Any, height: float, width: float, what: str) -> None:
    """:func:`face_problems` at the image targets' settings: the first one
    is a finding."""
    problems = face_problems(faces, height, width, SCORE_THRESHOLD, MAX_FACES)
    if problems:
        raise fl.Finding(f"{what}: {problems[0]}")


def check_network_input(x: Any, what: str) -> None:
    """A preprocessed image: float32 ``[1, 300, 300, 3]``, finite, in [-1, 1]."""
    import numpy as np

    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (1, 300, 300, 3)):
        raise fl.Finding(f"{what}: returned {type(x).__name__} {getattr(x, 'shape', '')}")
    if not np.isfinite(x).all() or np.abs(x).max() > 1 + 1e-5:
        raise fl.Finding(f"{what}: values outside [-1, 1] or non-finite")

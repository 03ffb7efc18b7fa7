"""Argument checks of the public API: each returns the value normalised or
raises ``TypeError`` (wrong type) or ``ValueError`` (out of range), naming
the argument."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core

# min_face_size below this is refused: faces under ~16 px are found at
# 0-7% at any magnification (tiling.py), and the number of tiles grows as
# 1 / min_face_size^2.
MIN_FACE_SIZE_FLOOR = 8.0

_MAX_SIDE = float(2**31)


def check_image_size(image_size: Any) -> tuple[float, float]:
    """(width, height): two finite, positive numbers."""
    if isinstance(image_size, (str, bytes)) or not isinstance(image_size, Sequence) or len(
        image_size
    ) != 2:
        raise TypeError(f"image_size must be a (width, height) pair, got {image_size!r}")
    for v in image_size:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"image_size must hold two numbers, got {image_size!r}")
    width, height = float(image_size[0]), float(image_size[1])
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):  # also rejects NaN, inf
        raise ValueError(f"image_size must be positive and at most 2**31 (width, height), got "
                         f"{image_size!r}")
    return width, height


def check_threshold(name: str, value: float) -> float:
    """A number in [0, 1], as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_max_faces(value: int) -> int:
    """A positive integer, capped at the anchor count (no more boxes exist)."""
    return min(check_positive_int("max_faces", value), _core.NUM_ANCHORS)


def check_min_face_size(value: Any) -> float | None:
    """None, or a finite number of pixels of at least :data:`MIN_FACE_SIZE_FLOOR`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"min_face_size must be a number of pixels or None, got "
                        f"{type(value).__name__}")
    if not (value >= MIN_FACE_SIZE_FLOOR and value < float("inf")):
        raise ValueError(f"min_face_size must be >= {MIN_FACE_SIZE_FLOOR:g} pixels (smaller "
                         f"faces are not found by this model) and finite, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    """An integer (Python or numpy, not bool) >= 1, as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_bool(name: str, value: bool) -> bool:
    """True or False (Python or numpy), as a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def check_head_output(name: str, a: Any, cols: int) -> np.ndarray:
    """One image's raw head output as contiguous float32 ``[NUM_ANCHORS, cols]``
    (a leading batch axis of 1 is dropped)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must hold floats, got {a.dtype}")
    n = _core.NUM_ANCHORS
    if a.shape == (1, n, cols):
        a = a[0]
    if a.shape != (n, cols):
        raise ValueError(f"{name} must have shape [{n}, {cols}], got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=np.float32)

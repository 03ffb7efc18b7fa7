"""Turning what users pass as an image into a uint8 array the engine reads."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _pil_to_array(img: Any) -> np.ndarray:
    # Gray stays gray (the engine replicates it); every other mode (palette,
    # CMYK, 16-bit, LA, RGBA...) becomes RGB. Alpha is dropped, not composited.
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    return np.asarray(img)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 RGB (or gray), applying its EXIF orientation."""
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading image files needs Pillow: pip install 'ssdface[image]'"
        ) from exc
    path = os.fspath(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return _pil_to_array(img)
    except FileNotFoundError:
        raise
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise OSError(f"cannot read image {path}: {exc}") from exc


def as_image_array(image: Any) -> np.ndarray:
    """Validate and convert an image argument.

    Accepts an ``HxWx3`` RGB, ``HxW`` or ``HxWx1`` gray or ``HxWx4`` RGBA
    uint8 array, a path (str or PathLike), or a PIL image. Returns a
    C-contiguous uint8 array of shape ``HxW``, ``HxWx3`` or ``HxWx4``.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    elif not isinstance(image, np.ndarray):
        if type(image).__module__.startswith("PIL."):
            image = _pil_to_array(image)
        else:
            raise TypeError(
                "image must be a uint8 numpy array (HxW, HxWx3 or HxWx4), a path or a PIL "
                f"image, not {type(image).__name__}"
            )
    if image.dtype != np.uint8:
        raise TypeError(
            f"image must have dtype uint8 (0-255 pixel values), got {image.dtype}; "
            "convert it with np.clip(x, 0, 255).astype(np.uint8) if it holds pixel values"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(
            f"image must have 1, 3 (RGB) or 4 (RGBA) channels, got {image.shape[2]}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    return np.ascontiguousarray(image)

"""Turning what users pass as an image into the uint8 pixels the engine reads.

Accepted: uint8 arrays (``HxW`` gray, ``HxWx3`` RGB or, with ``bgr=True``,
BGR, ``HxWx4`` RGBA/BGRA), uint16 arrays (16-bit, scaled to 8 bits), PIL
images, paths, ``bytes``/``bytearray``/``memoryview`` holding an encoded
image, and binary file objects (``BytesIO``, an open file).

Encoded images are decoded with Pillow. A JPEG is decoded at the smallest
DCT scale (1/1, 1/2, 1/4, 1/8: Pillow's draft mode, libjpeg's scaled IDCT)
that still gives at least the pixels the caller needs, so the full-resolution
pixels of a 12-megapixel photo are never held when the network samples 300 of
them per side. EXIF orientation is applied to files and PIL images alike, and
every :class:`Decoded` remembers the size of the original, oriented image so
that boxes are reported in its pixels.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# The network's input side: what a single pass samples per axis.
DEFAULT_NEED = (300, 300)

# (original width, original height) -> (width, height) of pixels needed.
NeedFn = Callable[[int, int], "tuple[int, int]"]

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


@dataclass(frozen=True)
class Decoded:
    """Pixels ready for the engine, and the image they stand for.

    ``pixels`` is a C-contiguous uint8 ``HxW``, ``HxWx3`` (RGB) or ``HxWx4``
    (RGBA) array; ``size`` is ``(width, height)`` of the original, oriented
    image, which is larger than ``pixels`` when a JPEG was decoded at a
    reduced scale.
    """

    pixels: np.ndarray
    size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per decoded pixel, along x and y."""
        return (self.size[0] / self.pixels.shape[1], self.size[1] / self.pixels.shape[0])


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading image files and PIL images needs Pillow: pip install 'ssdface[image]'"
        ) from exc
    _register_heif()
    return Image


_heif_checked = False


def _register_heif() -> None:
    """Let Pillow open HEIC/HEIF when pillow-heif is installed (``ssdface[heif]``)."""
    global _heif_checked
    if _heif_checked:
        return
    _heif_checked = True
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """uint16 (or 16-bit values in a wider integer) to uint8, 65535 -> 255."""
    wide = np.clip(arr, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _pil_pixels(img: Any) -> np.ndarray:
    """A PIL image's pixels as uint8 gray, RGB or RGBA."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA"):
        return np.asarray(img)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit gray (PNG, TIFF); "I" is how some decoders hand it over.
        return _to_8bit(np.asarray(img))
    if mode == "F":
        raise TypeError(
            "a 32-bit float PIL image (mode 'F') has no fixed pixel range; convert it "
            "yourself, e.g. Image.fromarray(np.clip(np.asarray(img) * 255, 0, 255)"
            ".astype(np.uint8)) for values in [0, 1]"
        )
    # Palette, CMYK, YCbCr, LA, 1-bit...: RGB. Alpha is dropped, not composited.
    return np.asarray(img.convert("RGB"))


def _orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1


def _decode(source: Any, name: str, need: NeedFn) -> Decoded:
    """Decode an encoded image (a path or a binary stream) with Pillow."""
    Image = _pillow()
    from PIL import ImageOps

    try:
        with Image.open(source) as img:
            stored_w, stored_h = img.size
            swap = _orientation(img) in _SWAPS_AXES
            orig_w, orig_h = (stored_h, stored_w) if swap else (stored_w, stored_h)
            if img.format == "JPEG" and img.mode in ("L", "RGB"):
                need_w, need_h = need(orig_w, orig_h)
                if swap:
                    need_w, need_h = need_h, need_w
                # Draft picks the largest DCT reduction whose result is still
                # at least this size along both axes.
                img.draft(img.mode, (max(1, need_w), max(1, need_h)))
            img.load()
            if _orientation(img) != 1:
                img = ImageOps.exif_transpose(img)
            return Decoded(np.ascontiguousarray(_pil_pixels(img)), (orig_w, orig_h))
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"cannot read image {name}: {exc} (raise PIL.Image.MAX_IMAGE_PIXELS to allow it)"
        ) from exc
    except TypeError as exc:
        if "F" in str(exc) and "float PIL image" in str(exc):  # ours: say it as is
            raise
        raise OSError(f"cannot read image {name}: {exc}") from exc
    except Exception as exc:
        # Corrupt data surfaces from Pillow's decoders as many types (OSError,
        # SyntaxError, EOFError, ValueError, struct.error...): all of them
        # mean this file cannot be read.
        raise OSError(f"cannot read image {name}: {type(exc).__name__}: {exc}") from exc


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file at full resolution as uint8 RGB (or gray or RGBA),
    EXIF orientation applied."""
    return _decode(os.fspath(path), os.fspath(path), lambda w, h: (w, h)).pixels


def _check_array(image: np.ndarray, bgr: bool) -> np.ndarray:
    if image.dtype == np.uint16:
        image = _to_8bit(image)
    if image.dtype != np.uint8:
        raise TypeError(_dtype_message(image))
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
    if bgr and image.ndim == 3:
        order = [2, 1, 0] if image.shape[2] == 3 else [2, 1, 0, 3]
        image = image[:, :, order]
    return np.ascontiguousarray(image)


def _dtype_message(image: np.ndarray) -> str:
    msg = f"image must have dtype uint8 (0-255) or uint16, got {image.dtype}"
    if image.dtype.kind == "f":
        finite = image[np.isfinite(image)] if image.size else image
        if finite.size:
            msg += f" with values in [{finite.min():g}, {finite.max():g}]"
        msg += (
            "; for values in [0, 1] pass (np.clip(x, 0, 1) * 255).round().astype(np.uint8), "
            "for values in [0, 255] pass np.clip(x, 0, 255).round().astype(np.uint8)"
        )
    elif image.dtype.kind in "iub":
        msg += "; for pixel values in [0, 255] pass np.clip(x, 0, 255).astype(np.uint8)"
    return msg


def decode(image: Any, *, bgr: bool = False, need: NeedFn | None = None) -> Decoded:
    """Validate and convert any accepted image argument (see the module doc).

    ``need(width, height)`` gives the pixels the caller needs of an image of
    that (oriented) size; a JPEG is decoded at the smallest scale that still
    gives at least that many. Default: the network's 300x300 input.
    ``bgr=True`` says a numpy array's channels are in OpenCV's BGR(A) order.
    """
    need = need or (lambda w, h: DEFAULT_NEED)
    if isinstance(image, Decoded):
        return image
    if isinstance(image, np.ndarray):
        pixels = _check_array(image, bgr)
        return Decoded(pixels, (pixels.shape[1], pixels.shape[0]))
    if bgr:
        raise ValueError("bgr=True applies to numpy arrays (OpenCV images); files, bytes "
                         "and PIL images are decoded as RGB")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        # A FIFO or device would block or never end: read regular files only.
        if os.path.exists(path) and not os.path.isdir(path) and not stat.S_ISREG(
                os.stat(path).st_mode):
            raise OSError(f"cannot read image {path}: not a regular file")
        return _decode(path, path, need)
    if isinstance(image, (bytes, bytearray, memoryview)):
        if not len(image):
            raise ValueError("image bytes are empty")
        return _decode(io.BytesIO(image), "from bytes", need)
    if hasattr(image, "read") and hasattr(image, "seek"):
        return _decode(image, getattr(image, "name", "from a file object"), need)
    if type(image).__module__.startswith("PIL."):
        from PIL import ImageOps

        _pillow()
        if _orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        pixels = _check_array(_pil_pixels(image), False)
        return Decoded(pixels, (pixels.shape[1], pixels.shape[0]))
    raise TypeError(
        "image must be a uint8 numpy array (HxW, HxWx3 or HxWx4), a path, bytes, a binary "
        f"file object or a PIL image, not {type(image).__name__}"
    )


def as_image_array(image: Any, *, bgr: bool = False) -> np.ndarray:
    """The uint8 pixels of ``image`` at full resolution (see :func:`decode`)."""
    return decode(image, bgr=bgr, need=lambda w, h: (w, h)).pixels

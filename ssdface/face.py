"""A detected face: its box, its score, and what callers do with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Face:
    """One detected face.

    ``box`` is ``(xmin, ymin, xmax, ymax)`` in pixels of the image given to
    :meth:`Detector.detect` (of the original, oriented image for files),
    clipped to it; ``score`` is the face probability.
    """

    box: tuple[float, float, float, float]
    score: float

    @property
    def xywh(self) -> tuple[float, float, float, float]:
        """``(x, y, width, height)`` of the box (top-left corner and size)."""
        x0, y0, x1, y1 = self.box
        return (x0, y0, x1 - x0, y1 - y0)

    @property
    def center(self) -> tuple[float, float]:
        """``(x, y)`` of the box centre."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        _, _, w, h = self.xywh
        return max(w, 0.0) * max(h, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """``{"box": [xmin, ymin, xmax, ymax], "score": s}``, JSON-ready."""
        return {"box": [float(v) for v in self.box], "score": float(self.score)}

    def crop_box(self, width: int, height: int, margin: float = 0.0) -> tuple[int, int, int, int]:
        """Integer ``(left, top, right, bottom)`` of the box grown by ``margin``
        times its size on every side, clipped to a ``width x height`` image."""
        if not margin >= 0.0:  # also rejects NaN
            raise ValueError(f"margin must be >= 0, got {margin}")
        x0, y0, w, h = self.xywh
        left = max(0, int(round(x0 - margin * w)))
        top = max(0, int(round(y0 - margin * h)))
        right = min(width, int(round(x0 + w + margin * w)))
        bottom = min(height, int(round(y0 + h + margin * h)))
        return left, top, max(left, right), max(top, bottom)

    def crop(self, image: Any, margin: float = 0.0) -> Any:
        """The face cut out of ``image`` (an ``HxW[xC]`` array: a view of it;
        or a PIL image: a new image), grown by ``margin`` times the box size
        on every side (0.2 adds a fifth of the width left and right) and
        clipped to the image. ``image`` must be the one the boxes refer to."""
        if hasattr(image, "crop") and hasattr(image, "size"):  # a PIL image
            return image.crop(self.crop_box(image.size[0], image.size[1], margin))
        shape = getattr(image, "shape", None)
        if shape is None or len(shape) not in (2, 3):
            raise TypeError("crop takes an HxW or HxWxC array or a PIL image, got "
                            f"{type(image).__name__}")
        left, top, right, bottom = self.crop_box(shape[1], shape[0], margin)
        return image[top:bottom, left:right]

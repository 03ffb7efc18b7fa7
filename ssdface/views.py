"""Running the views of :mod:`ssdface.tiling` on the engine and merging their faces.

:class:`ssdface.Detector` decides which views an image gets (its
``min_face_size`` and ``padded_pass``); this module plans them on the decoded
pixels, runs every view of every image in one engine call and maps the faces
back to original pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core, tiling
from .face import Face
from .image import Decoded, decode

# Views of a multi-view call keep their boxes from this score on: the
# merge scores a face by how every view saw it, misses and weak looks too.
VIEW_SCORE_THRESHOLD = 0.01


def faces(rows: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)) -> list[Face]:
    """:class:`Face` objects from the engine's rows ``(xmin, ymin, xmax, ymax, score, ...)``,
    boxes scaled by ``scale`` (original pixels per decoded pixel)."""
    sx, sy = scale
    return [
        Face(box=(float(r[0]) * sx, float(r[1]) * sy, float(r[2]) * sx, float(r[3]) * sy),
            score=float(r[4]))
        for r in rows
    ]


def need(mfs: float | None, padded: bool) -> Callable[[int, int], tuple[int, int]]:
    """The decoder's ``need``: pixels of the original every view of the
    plan still gets at full detail (the JPEG draft scale follows)."""

    def need(width: int, height: int) -> tuple[int, int]:
        return tiling.need(tiling.plan(width, height, mfs, padded), width, height)

    return need


def decode_all(images: list[Any], bgr: bool,
               need: Callable[[int, int], tuple[int, int]]) -> list[Decoded]:
    """:func:`ssdface.image.decode` of each image, with the views' ``need``."""
    return [decode(im, bgr=bgr, need=need) for im in images]


def plan(decoded: Decoded, mfs: float | None, padded: bool,
         max_passes: int) -> list[tiling.View]:
    """The views of one image; ``ValueError`` when they are over ``max_passes``."""
    width, height = decoded.size
    if mfs is not None:
        # Count before building: tiles of an extreme plan would take
        # time and memory just to be refused.
        passes = 1 + padded + tiling.count(width, height, mfs)
        if passes > max_passes:
            raise ValueError(
                f"min_face_size={mfs:g} on a {width}x{height} image takes {passes} "
                f"forward passes, over max_passes={max_passes}: raise min_face_size "
                f"(the passes grow as 1/min_face_size^2) or max_passes"
            )
    return tiling.plan(width, height, mfs, padded)


def crop(decoded: Decoded, view: tiling.View) -> tuple[np.ndarray, tiling.View]:
    """The decoded pixels a view reads (its source rectangle on the decoded
    pixel grid, at least one pixel), and the view with its source moved to
    exactly that rectangle, in original pixels, for mapping boxes back."""
    sx, sy = decoded.scale  # original pixels per decoded pixel
    height, width = decoded.pixels.shape[:2]
    x0 = min(max(int(round(view.src[0] / sx)), 0), width - 1)
    y0 = min(max(int(round(view.src[1] / sy)), 0), height - 1)
    x1 = min(max(int(round(view.src[2] / sx)), x0 + 1), width)
    y1 = min(max(int(round(view.src[3] / sy)), y0 + 1), height)
    snapped = tiling.View((x0 * sx, y0 * sy, x1 * sx, y1 * sy), view.dst, view.inner, view.flip)
    return decoded.pixels[y0:y1, x0:x1], snapped


def detect(engine: Any, decoded: list[Decoded], mfs: float | None, *, padded: bool,
           max_passes: int, score_threshold: float, iou_threshold: float,
           max_faces: int) -> tuple[list[list[Face]], int]:
    """Faces of decoded images, every view of every image in one engine
    call (a thread per view on 2 threads or more), and the passes run."""
    if mfs is None and not padded:
        # One whole view each: boxes in the pixels' frame, thresholded
        # by the engine, then scaled to the original as detect does.
        whole = (0, 0, _core.INPUT_SIZE, _core.INPUT_SIZE)
        rows = engine.detect_views(
            [(d.pixels, whole) for d in decoded], score_threshold, iou_threshold, max_faces,
            box_sizes=[(d.pixels.shape[1], d.pixels.shape[0]) for d in decoded],
        )
        return [faces(r, d.scale) for r, d in zip(rows, decoded)], len(decoded)
    items: list[tuple[np.ndarray, tuple[int, int, int, int], bool]] = []
    views: list[list[tiling.View]] = []
    for d in decoded:
        views.append([])
        for view in plan(d, mfs, padded, max_passes):
            pixels, snapped = crop(d, view)
            items.append((pixels, view.dst, view.flip))
            views[-1].append(snapped)
    rows = engine.detect_views(items, min(VIEW_SCORE_THRESHOLD, score_threshold),
                               iou_threshold, _core.NUM_ANCHORS)
    out, k = [], 0
    for image_views in views:
        per_view = [(v, r[:, :5]) for v, r in zip(image_views, rows[k:k + len(image_views)])]
        k += len(image_views)
        merged = tiling.merge(per_view, iou_threshold, _core.NUM_ANCHORS)
        merged = merged[merged[:, 4] >= score_threshold][:max_faces]
        out.append(faces(merged))
    return out, len(items)

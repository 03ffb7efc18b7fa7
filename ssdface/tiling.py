"""Which views of an image the network sees, and merging what they find.

The network sees 300x300 pixels. In one pass a whole photo is stretched to
that size, so a face must be tens of pixels *after* that shrink to be found,
and a face filling most of the frame is missed too (the model scores faces
well between about RANGE_NET px; see RESULTS.md, "Accuracy"). So
:func:`plan` returns views, each a rectangle of the original image and where
it lands in the network input:

- the whole image, stretched to 300x300 (the one pass of a plain call);
- the whole image shrunk into the centre half of the input, grey around it,
  for faces that fill the frame (as if the photo lay on a canvas twice its
  size);
- with ``min_face_size``: square tiles of the image, each magnified so that
  a face of that many pixels lands on the anchors the model scores well,
  overlapping so that every face the tiles are for lies whole in one of them,
  in levels no more than LEVEL_RATIO apart in scale.

:func:`merge` maps every view's boxes back to original pixels, drops a box
cut by an inner tile border when another view holds that face whole, and
suppresses duplicates across views (greedy NMS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NET = 300  # network input side

# Face sizes (long side, network pixels) the model scores well: the smallest
# anchors are 30 px, and with the stand-in weights of the coarse feature maps
# (README, "The stand-in tensor") faces past about 120 px are found only in
# the padded view. Measured on the development set (RESULTS.md).
TARGET_NET = 40.0  # a min_face_size face is magnified to this many net pixels
LEVEL_RATIO = 3.0  # scale ratio between tile levels (and to the whole view)
MAX_NET = 110.0  # the largest face a tile level is responsible for, net px
PAD_FRACTION = 0.5  # the padded view's side, as a fraction of the input
CUT_MARGIN = 2.0  # net px: a box this close to an inner tile border is cut


@dataclass(frozen=True)
class View:
    """One network pass: original-image rectangle ``src`` = (x0, y0, x1, y1)
    (pixels, floats) resized into ``dst`` = (x0, y0, x1, y1) of the 300x300
    input (integers), mid-grey elsewhere. ``inner`` flags which sides of
    ``src`` (left, top, right, bottom) cut through the image, so that a box
    touching them may be a partial face."""

    src: tuple[float, float, float, float]
    dst: tuple[int, int, int, int]
    inner: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def scale(self) -> tuple[float, float]:
        """Network pixels per original pixel, along x and y."""
        return ((self.dst[2] - self.dst[0]) / (self.src[2] - self.src[0]),
                (self.dst[3] - self.dst[1]) / (self.src[3] - self.src[1]))


def whole(width: int, height: int) -> View:
    """The plain pass: the whole image stretched to the input."""
    return View((0.0, 0.0, float(width), float(height)), (0, 0, NET, NET))


def padded(width: int, height: int) -> View:
    """The whole image in the centre PAD_FRACTION of the input."""
    side = round(NET * PAD_FRACTION)
    lo = (NET - side) // 2
    return View((0.0, 0.0, float(width), float(height)), (lo, lo, lo + side, lo + side))


def _starts(length: float, side: float, overlap: float) -> list[float]:
    """Evenly spaced tile starts covering [0, length) with at least `overlap`."""
    if side >= length:
        return [0.0]
    n = math.ceil((length - overlap) / (side - overlap))
    return [i * (length - side) / (n - 1) for i in range(n)] if n > 1 else [0.0]


def tile_levels(width: int, height: int, min_face_size: float) -> list[float]:
    """Scales (network px per original px) of the tile levels needed for
    faces down to ``min_face_size`` px, finest first; [] when the whole view
    already magnifies such a face enough."""
    coarse = min(NET / width, NET / height)
    finest = TARGET_NET / min_face_size
    levels = []
    scale = finest
    while scale > coarse * LEVEL_RATIO ** 0.5:
        levels.append(scale)
        scale /= LEVEL_RATIO
    return levels


def tiles(width: int, height: int, scale: float) -> list[View]:
    """Square tiles magnifying the image by `scale`, overlapping by the
    largest face this level is responsible for."""
    side = NET / scale
    overlap = min(MAX_NET / scale, side / 2)
    out = []
    for y in _starts(height, side, overlap):
        for x in _starts(width, side, overlap):
            x1, y1 = min(x + side, width), min(y + side, height)
            dst = (0, 0, max(1, round((x1 - x) * scale)), max(1, round((y1 - y) * scale)))
            inner = (x > 0, y > 0, x1 < width, y1 < height)
            out.append(View((x, y, x1, y1), dst, inner))
    return out


def plan(width: int, height: int, min_face_size: float | None, pad: bool) -> list[View]:
    """Every view one detect call runs, the plain whole-image view first."""
    views = [whole(width, height)]
    if pad:
        views.append(padded(width, height))
    if min_face_size is not None:
        for scale in tile_levels(width, height, min_face_size):
            views.extend(tiles(width, height, scale))
    return views


def need(views: list[View], width: int, height: int) -> tuple[int, int]:
    """Pixels of the original a decoder must keep (per axis) so that no view
    is enlarged from a reduced decode more than from the original."""
    sx = max(v.scale[0] for v in views)
    sy = max(v.scale[1] for v in views)
    return (min(width, math.ceil(width * sx)), min(height, math.ceil(height * sy)))


def to_original(view: View, boxes: np.ndarray) -> np.ndarray:
    """Boxes (n x 4, xmin ymin xmax ymax in network-input pixels) of one view
    in original pixels, clipped to the view's source rectangle."""
    sx, sy = view.scale
    out = np.empty_like(boxes, dtype=np.float64)
    out[:, 0::2] = (boxes[:, 0::2] - view.dst[0]) / sx + view.src[0]
    out[:, 1::2] = (boxes[:, 1::2] - view.dst[1]) / sy + view.src[1]
    np.clip(out[:, 0::2], view.src[0], view.src[2], out=out[:, 0::2])
    np.clip(out[:, 1::2], view.src[1], view.src[3], out=out[:, 1::2])
    return out


def is_cut(view: View, box_net: np.ndarray) -> bool:
    """Whether a box (network pixels) touches an inner border of its tile."""
    left, top, right, bottom = view.inner
    x0, y0, x1, y1 = view.dst
    return bool((left and box_net[0] <= x0 + CUT_MARGIN) or (top and box_net[1] <= y0 + CUT_MARGIN)
                or (right and box_net[2] >= x1 - CUT_MARGIN)
                or (bottom and box_net[3] >= y1 - CUT_MARGIN))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _covered(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of `box` inside each of `boxes`."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return ix * iy / area


def merge(per_view: list[tuple[View, np.ndarray]], iou_threshold: float,
          max_faces: int) -> np.ndarray:
    """Faces of every view in original pixels, one per face.

    ``per_view``: (view, rows) with rows n x 5 (xmin, ymin, xmax, ymax in
    network pixels, score). Returns m x 5 in original pixels, best first.
    """
    boxes, scores, cut = [], [], []
    for view, rows in per_view:
        if not len(rows):
            continue
        boxes.append(to_original(view, rows[:, :4]))
        scores.append(rows[:, 4])
        cut.extend(is_cut(view, r) for r in rows)
    if not boxes:
        return np.zeros((0, 5))
    boxes_all = np.concatenate(boxes)
    scores_all = np.concatenate(scores)
    cut_all = np.array(cut)
    # A cut box goes when a whole one (from any view) mostly contains it or
    # overlaps it: that tile's neighbour, or a coarser view, saw the face.
    keep = np.ones(len(boxes_all), bool)
    whole_idx = np.flatnonzero(~cut_all)
    for i in np.flatnonzero(cut_all):
        if len(whole_idx) and np.any((_covered(boxes_all[i], boxes_all[whole_idx]) > 0.5)
                                     | (_iou(boxes_all[i], boxes_all[whole_idx]) > 0.3)):
            keep[i] = False
    order = [i for i in np.argsort(-scores_all, kind="stable") if keep[i]]
    kept: list[int] = []
    for i in order:
        if len(kept) >= max_faces:
            break
        if kept and np.any(_iou(boxes_all[i], boxes_all[kept]) > iou_threshold):
            continue
        kept.append(i)
    return np.column_stack([boxes_all[kept], scores_all[kept]]) if kept else np.zeros((0, 5))

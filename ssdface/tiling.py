"""Which views of an image the network sees, and merging what they find.

The network sees 300x300 pixels. In one pass a whole photo is stretched to
that size, so a face must be tens of pixels *after* that shrink to be found,
and a face filling most of the frame is missed too. :func:`plan` returns the
views of one detect call, each a rectangle of the original image (``src``)
resized into a rectangle of the network input (``dst``), possibly mirrored:

- the whole image stretched to 300x300 (the one pass of a plain call);
- with ``pad``: the whole image shrunk into the centre PAD_FRACTION of the
  input, grey around it, mirrored: it finds faces that fill the frame (the
  model finds a face up to about 65% of the input side) and, being a second
  look at a similar scale, works as flip test-time augmentation;
- with ``min_face_size``: levels of tiles. Level n cuts the image into a grid
  with n tiles along its short side (more along the long side, so that no
  tile is stretched more than STRETCH), neighbours sharing MAX_NET network
  pixels; every tile is stretched to the whole input, as the whole image is
  in the plain pass. The finest level is the first one that magnifies a
  ``min_face_size`` face to TARGET_NET network pixels; coarser levels follow,
  each at most LEVEL_RATIO finer in scale than the next, down to the whole
  view. Levels alternate mirrored and not (counting from the whole view), so
  that two neighbouring levels, which see the same faces, are also a flip
  pair.

:func:`merge` maps every view's boxes back to original pixels, drops a box
cut by an inner tile border when another view holds that face whole, groups
the boxes of one face (greedy, best score first: boxes of one view at the
caller's NMS IoU, boxes of different views at CROSS_VIEW_IOU), averages each
group's box (score-weighted) and scores it by agreement between levels: the
mean, over the levels that hold the face at a size the model scores reliably
(RELIABLE_NET) and the level of the best box, of each level's best score for
that face (0 when a level missed it). A fused score never exceeds the best
score of its group, so boxes no view scores above a threshold stay below it.

Figures behind the constants: ``benchmarks/proto/views_prototype.py`` on the
101 development photos (shared/eval/faces, 416 px wide but one); "ge32" =
scored faces of 32 px and more (121 faces), the secondary report of the
evaluation protocol. The figures move by a face or two (0.01-0.02 of recall
or AP) between neighbouring settings: that is the noise of 121 faces.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NET = 300  # network input side

# The padded view's side, as a fraction of the input. A face is found up to
# about 65% of the input side (crops of portrait_padded.jpg with the face
# filling 50-100% of the frame, measured), so 0.75 finds faces filling up to
# ~87% of the frame. With the whole view (2 passes), ge32 recall at 0.28
# over fractions 0.6-0.9: 0.43-0.48, best at 0.75 mirrored (0.463, P 0.982)
# and 0.85 mirrored; the draft's 0.5 cost precision (0.930 at 0.27).
PAD_FRACTION = 0.75
# Mirrored, the padded view is also flip test-time augmentation for the
# faces both views can see: better than unmirrored at 0.67, 0.7, 0.75, 0.85.
PAD_FLIP = True

# Tiles. Found-rate of a face against its size in the view (half-overlapping
# square tiles at 0.35-4x): a face of given original size is found more
# often magnified to 60-170 network px than at 30-50 px (40-px faces: 60% at
# 1x, 100% at 2x); faces under ~30 original px are rarely found at any
# magnification (16-32 px: 0-7%). Hence:
TARGET_NET = 55.0  # a min_face_size face on the finest level, net px (geometric
# mean of the axes): 416x312 photos get 3x3 tiles for 32 px faces
# (1.66 x 2.21 net px per px), then 2x2 (~1.2 x 1.6).
MAX_NET = 100.0  # net px shared by neighbouring tiles (>= after rounding): any
# face up to this lies whole in a tile. 80-120 tried: 100 best, 120 costs 22
# passes on 416x312 photos for nothing.
STRETCH = 1.8  # longest tile side / shortest (original px); the whole view
# stretches 16:9 photos as much. 1.34 gave 4x3 tiles (20 passes) to 3:2 photos.
LEVEL_RATIO = 1.3  # each tile level is at least this much finer in scale than the next coarser
CUT_MARGIN = 4.0  # net px: a box this close to an inner tile border is cut (2 let
# a clipped half face through on the group photo; 4-6 best, 9+ loses faces)

# Merging.
CROSS_VIEW_IOU = 0.3  # boxes of different views this much overlapping are one
# face (a face's boxes differ more between views than within one; 0.25-0.35
# and 0.3-0.6 for boxes of one view gave the same thresholded figures)
RELIABLE_NET = (70.0, 160.0)  # face sizes (long side, net px) a level is expected
# to find, so whose silence counts against a face (60-160 and 70-180 worse)
CUT_COVER = 0.5  # a cut box this much inside a whole box (any view) is that face
CUT_IOU = 0.3  # ... or overlapping it this much


@dataclass(frozen=True)
class View:
    """One network pass: the original-image rectangle ``src`` = (x0, y0, x1,
    y1) (pixels, floats) resized into ``dst`` = (x0, y0, x1, y1) of the
    300x300 input (integers), mid-grey elsewhere, then mirrored left-right
    if ``flip``. ``inner`` flags which sides of ``src`` (left, top, right,
    bottom) cut through the image, so that a box touching them may be a
    partial face. Boxes found in a flipped view are in the coordinates of
    the mirrored input; :func:`to_original` undoes the mirror."""

    src: tuple[float, float, float, float]
    dst: tuple[int, int, int, int]
    inner: tuple[bool, bool, bool, bool] = (False, False, False, False)
    flip: bool = False

    @property
    def scale(self) -> tuple[float, float]:
        """Network pixels per original pixel, along x and y."""
        return ((self.dst[2] - self.dst[0]) / (self.src[2] - self.src[0]),
                (self.dst[3] - self.dst[1]) / (self.src[3] - self.src[1]))


def whole(width: int, height: int, flip: bool = False) -> View:
    """The plain pass: the whole image stretched to the input."""
    return View((0.0, 0.0, float(width), float(height)), (0, 0, NET, NET), flip=flip)


def padded(width: int, height: int, flip: bool | None = None,
           fraction: float | None = None) -> View:
    """The whole image stretched into the centre ``fraction`` (default
    PAD_FRACTION) of the input, grey around it, mirrored if ``flip``
    (default PAD_FLIP)."""
    side = round(NET * (PAD_FRACTION if fraction is None else fraction))
    lo = (NET - side) // 2
    return View((0.0, 0.0, float(width), float(height)), (lo, lo, lo + side, lo + side),
                flip=PAD_FLIP if flip is None else flip)


def _side(length: int, n: int) -> int:
    """Side (original px) of n equal tiles covering `length` whose neighbours
    share at least MAX_NET network px once each tile is stretched to NET (2 px
    more than the exact side make up for rounding the starts to whole pixels)."""
    if n <= 1:
        return length
    return min(length, math.ceil(length * NET / (n * NET - (n - 1) * MAX_NET)) + 2)


def _spans(length: int, n: int) -> list[tuple[int, int]]:
    """n tiles (start, end) covering [0, length), evenly spaced."""
    side = _side(length, n)
    if n <= 1:
        return [(0, length)]
    starts = [round(i * (length - side) / (n - 1)) for i in range(n)]
    return [(s, s + side) for s in starts]


def grid_shape(width: int, height: int, n: int) -> tuple[int, int]:
    """Tiles across and down of level n: n along the short side, and along
    the long side the fewest (>= n) that stretch no tile more than STRETCH
    (longer side / shorter side, original px)."""
    short, long_ = min(width, height), max(width, height)
    m = n
    while _side(long_, m) > STRETCH * _side(short, n):
        m += 1
    return (m, n) if width >= height else (n, m)


def level_scale(width: int, height: int, n: int) -> float:
    """Network px per original px of level n (geometric mean of x and y,
    before the tiles' rounding to whole pixels); level 1 is the whole view."""
    if n <= 1:
        return math.sqrt(NET / width * NET / height)
    nx, ny = grid_shape(width, height, n)
    sx = (nx * NET - (nx - 1) * MAX_NET) / width
    sy = (ny * NET - (ny - 1) * MAX_NET) / height
    return math.sqrt(sx * sy)


def tile_levels(width: int, height: int, min_face_size: float) -> list[int]:
    """Tile levels (tiles along the short side), finest first; [] when the
    whole view already magnifies a ``min_face_size`` face to TARGET_NET."""
    if not min_face_size > 0:
        raise ValueError(f"min_face_size must be positive, got {min_face_size!r}")
    n = 1
    while level_scale(width, height, n) * min_face_size < TARGET_NET:
        n += 1
    levels = []
    while n > 1:
        levels.append(n)
        coarser = level_scale(width, height, n) / LEVEL_RATIO
        n -= 1
        while n > 1 and level_scale(width, height, n) > coarser:
            n -= 1
    return levels


def count(width: int, height: int, min_face_size: float) -> int:
    """How many tile views :func:`plan` adds for ``min_face_size``, without
    building them (a caller refuses an extreme plan before it costs)."""
    return sum(math.prod(grid_shape(width, height, n))
               for n in tile_levels(width, height, min_face_size))


def tiles(width: int, height: int, n: int, flip: bool = False) -> list[View]:
    """The views of tile level n, row by row."""
    nx, ny = grid_shape(width, height, n)
    out = []
    for y0, y1 in _spans(height, ny):
        for x0, x1 in _spans(width, nx):
            out.append(View((float(x0), float(y0), float(x1), float(y1)), (0, 0, NET, NET),
                            (x0 > 0, y0 > 0, x1 < width, y1 < height), flip))
    return out


def plan(width: int, height: int, min_face_size: float | None, pad: bool) -> list[View]:
    """Every view one detect call runs, the plain whole-image view first,
    then the padded view (with ``pad``), then the tile levels, finest first."""
    views = [whole(width, height)]
    if pad:
        views.append(padded(width, height))
    if min_face_size is not None:
        levels = tile_levels(width, height, min_face_size)
        for i, n in enumerate(levels):
            # counted from the whole view (not mirrored): mirrored, not, ...
            views.extend(tiles(width, height, n, flip=(len(levels) - 1 - i) % 2 == 0))
    return views


def need(views: Sequence[View], width: int, height: int) -> tuple[int, int]:
    """Pixels of the original a decoder must keep (per axis) so that no view
    is enlarged from a reduced decode more than from the original."""
    sx = max(v.scale[0] for v in views)
    sy = max(v.scale[1] for v in views)
    return (min(width, math.ceil(width * sx)), min(height, math.ceil(height * sy)))


def unflip(view: View, boxes_net: np.ndarray) -> np.ndarray:
    """Boxes (n x 4, network px) of a view's input in the unmirrored input."""
    out = np.array(boxes_net, dtype=np.float64).reshape(-1, 4)
    if view.flip:
        out[:, [0, 2]] = NET - out[:, [2, 0]]
    return out


def to_original(view: View, boxes_net: np.ndarray) -> np.ndarray:
    """Boxes (n x 4, xmin ymin xmax ymax in network-input px, as found in the
    view's possibly mirrored input) in original pixels, clipped to ``src``."""
    sx, sy = view.scale
    b = unflip(view, boxes_net)
    out = np.empty_like(b)
    out[:, 0::2] = (b[:, 0::2] - view.dst[0]) / sx + view.src[0]
    out[:, 1::2] = (b[:, 1::2] - view.dst[1]) / sy + view.src[1]
    np.clip(out[:, 0::2], view.src[0], view.src[2], out=out[:, 0::2])
    np.clip(out[:, 1::2], view.src[1], view.src[3], out=out[:, 1::2])
    return out


def cut_mask(view: View, boxes_net: np.ndarray) -> np.ndarray:
    """Which boxes (network px, as found) touch an inner border of the view."""
    b = unflip(view, boxes_net)
    left, top, right, bottom = view.inner
    x0, y0, x1, y1 = view.dst
    return ((left & (b[:, 0] <= x0 + CUT_MARGIN)) | (top & (b[:, 1] <= y0 + CUT_MARGIN))
            | (right & (b[:, 2] >= x1 - CUT_MARGIN)) | (bottom & (b[:, 3] >= y1 - CUT_MARGIN)))


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[len(a) x len(b)] IoU, and the fraction of each box of a inside each of b."""
    a, b = a[:, None, :], b[None, :, :]
    ix = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ix * iy
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    cover = np.where(area_a > 0, inter / np.where(area_a > 0, area_a, 1), 0.0)
    return iou, cover


def levels_of(views: Sequence[View]) -> np.ndarray:
    """A level id per view: views with the same scale and mirroring (the
    tiles of one grid) share one."""
    ids: dict[tuple[float, float, bool], int] = {}
    return np.array([ids.setdefault((round(v.scale[0], 6), round(v.scale[1], 6), v.flip), len(ids))
                     for v in views], dtype=np.int64)


def _view_arrays(views: Sequence[View]) -> tuple[np.ndarray, ...]:
    src = np.array([v.src for v in views], dtype=np.float64).reshape(-1, 4)
    dst = np.array([v.dst for v in views], dtype=np.float64).reshape(-1, 4)
    inner = np.array([v.inner for v in views], dtype=bool).reshape(-1, 4)
    sx = (dst[:, 2] - dst[:, 0]) / (src[:, 2] - src[:, 0])
    sy = (dst[:, 3] - dst[:, 1]) / (src[:, 3] - src[:, 1])
    return src, dst, inner, sx, sy


def reliable(views: Sequence[View], boxes: np.ndarray, _arrays=None) -> np.ndarray:
    """[boxes x views] (or [views] for one box): whether the view holds the
    box (original px) whole - its centre inside ``src``, clear of inner
    borders - at a size (long side, net px) within RELIABLE_NET."""
    src, dst, inner, sx, sy = _view_arrays(views) if _arrays is None else _arrays
    b = np.asarray(boxes, dtype=np.float64)
    one = b.ndim == 1
    b = b.reshape(-1, 1, 4)
    x0 = (b[..., 0] - src[:, 0]) * sx + dst[:, 0]
    y0 = (b[..., 1] - src[:, 1]) * sy + dst[:, 1]
    x1 = (b[..., 2] - src[:, 0]) * sx + dst[:, 0]
    y1 = (b[..., 3] - src[:, 1]) * sy + dst[:, 1]
    m = CUT_MARGIN
    ok = ((~inner[:, 0] | (x0 > dst[:, 0] + m)) & (~inner[:, 1] | (y0 > dst[:, 1] + m))
          & (~inner[:, 2] | (x1 < dst[:, 2] - m)) & (~inner[:, 3] | (y1 < dst[:, 3] - m)))
    cx, cy = (b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2
    ok &= (cx >= src[:, 0]) & (cx <= src[:, 2]) & (cy >= src[:, 1]) & (cy <= src[:, 3])
    size = np.maximum(x1 - x0, y1 - y0)
    ok &= (size >= RELIABLE_NET[0]) & (size <= RELIABLE_NET[1])
    return ok[0] if one else ok


def merge(per_view: Sequence[tuple[View, np.ndarray]], iou_threshold: float,
          max_faces: int) -> np.ndarray:
    """Faces of every view in original pixels, one row per face.

    ``per_view``: (view, rows) with rows n x 5 (xmin, ymin, xmax, ymax in
    network pixels of the view's input as the network saw it, i.e. mirrored
    for a flipped view; score), e.g. one view's postprocessed detections.
    ``iou_threshold``: NMS IoU for two boxes of one view (boxes of different
    views are one face from min(iou_threshold, CROSS_VIEW_IOU)). Returns
    m x 5 (xmin, ymin, xmax, ymax in original pixels, fused score), best
    first, at most ``max_faces`` rows.
    """
    views = [v for v, _ in per_view]
    boxes, scores, cut, vid = [], [], [], []
    if max_faces <= 0:
        return np.zeros((0, 5))
    for k, (view, rows) in enumerate(per_view):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        if not len(rows):
            continue
        boxes.append(to_original(view, rows[:, :4]))
        scores.append(rows[:, 4])
        cut.append(cut_mask(view, rows[:, :4]))
        vid.append(np.full(len(rows), k))
    if not boxes:
        return np.zeros((0, 5))
    box = np.concatenate(boxes)
    score = np.concatenate(scores)
    is_cut = np.concatenate(cut)
    view_of = np.concatenate(vid)

    # A cut box goes when a whole box (any view) mostly contains or overlaps
    # it: that tile's neighbour, or a coarser view, saw the face whole.
    # (Overlaps are computed in slices: a plan of hundreds of tiles has tens
    # of thousands of low-threshold boxes.)
    alive = np.ones(len(box), dtype=bool)
    cut_idx, whole_idx = np.flatnonzero(is_cut), np.flatnonzero(~is_cut)
    if len(whole_idx):
        for s in range(0, len(cut_idx), 256):
            c = cut_idx[s:s + 256]
            iou, cover = _overlaps(box[c], box[whole_idx])
            alive[c[((cover > CUT_COVER) | (iou > CUT_IOU)).any(axis=1)]] = False

    # Greedy grouping, best box first: a group is its leader and the alive
    # boxes overlapping it (same view: iou_threshold; other views:
    # CROSS_VIEW_IOU). Groups are formed until max_faces of them score at
    # least as much as any leader still to come (a group scores at most its
    # leader), so that fusion cannot change the top max_faces.
    level = levels_of(views)
    level_of = level[view_of]
    arrays = _view_arrays(views)
    cross_iou = min(iou_threshold, CROSS_VIEW_IOU)
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    leaders: list[int] = []
    members: list[np.ndarray] = []
    fused: list[float] = []
    top: list[float] = []  # min-heap of the best max_faces fused scores so far
    batch = 64  # fusion scored for this many groups at a time
    order = np.flatnonzero(alive)[np.argsort(-score[alive], kind="stable")]
    k = 0
    while k < len(order):
        new: list[int] = []
        while k < len(order) and len(new) < batch:
            i = order[k]
            k += 1
            if not alive[i]:
                continue
            cand = np.flatnonzero(alive)
            b, lead_box = box[cand], box[i]
            ix = np.minimum(b[:, 2], lead_box[2]) - np.maximum(b[:, 0], lead_box[0])
            iy = np.minimum(b[:, 3], lead_box[3]) - np.maximum(b[:, 1], lead_box[1])
            inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
            union = area[cand] + area[i] - inter
            same = view_of[cand] == view_of[i]
            take = inter > np.where(same, iou_threshold, cross_iou) * union
            take[np.searchsorted(cand, i)] = True
            group = cand[take]
            alive[group] = False
            leaders.append(i)
            members.append(group)
            new.append(len(leaders) - 1)
        if not new:
            break
        # fused score: mean over the voting levels of each level's best score
        lead = np.array([leaders[g] for g in new], dtype=np.int64)
        votes = np.zeros((len(new), int(level.max()) + 1), dtype=bool)
        rel = reliable(views, box[lead], arrays)
        rows_, cols = np.nonzero(rel)
        votes[rows_, level[cols]] = True
        votes[np.arange(len(new)), level_of[lead]] = True
        best = np.zeros_like(votes, dtype=np.float64)
        gid = np.concatenate([np.full(len(members[g]), j) for j, g in enumerate(new)])
        mem = np.concatenate([members[g] for g in new])
        np.maximum.at(best, (gid, level_of[mem]), score[mem])
        for f in ((best * votes).sum(axis=1) / votes.sum(axis=1)).tolist():
            fused.append(f)
            if len(top) < max_faces:
                heapq.heappush(top, f)
            elif f > top[0]:
                heapq.heapreplace(top, f)
        # anything still to come scores at most the next leader's box
        nxt = next((order[q] for q in range(k, len(order)) if alive[order[q]]), None)
        if nxt is None or (len(top) >= max_faces and top[0] >= score[nxt]):
            break
    out = []
    for i, group, f in zip(leaders, members, fused):
        w = score[group]
        merged = (box[group] * w[:, None]).sum(axis=0) / w.sum() if w.sum() > 0 else box[i]
        out.append((*merged, f))
    res = np.array(out, dtype=np.float64).reshape(-1, 5)
    return res[np.argsort(-res[:, 4], kind="stable")][:max_faces]

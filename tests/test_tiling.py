"""ssdface.tiling: the view planner and the merge, on synthetic inputs only."""

from __future__ import annotations

import numpy as np
import pytest

from ssdface import tiling as T
from ssdface.tiling import NET, View

SIZES = [(416, 312), (416, 277), (416, 627), (416, 150), (1024, 768), (1500, 1000),
         (300, 300), (640, 200), (100, 900)]


def rows(*boxes):
    """n x 5 rows (xmin, ymin, xmax, ymax, score)."""
    return np.array(boxes, dtype=np.float64).reshape(-1, 5)


def net_box(view: View, box, score):
    """The row a view's network would report for a face at `box` (original px)."""
    sx, sy = view.scale
    x0 = (box[0] - view.src[0]) * sx + view.dst[0]
    y0 = (box[1] - view.src[1]) * sy + view.dst[1]
    x1 = (box[2] - view.src[0]) * sx + view.dst[0]
    y1 = (box[3] - view.src[1]) * sy + view.dst[1]
    if view.flip:
        x0, x1 = NET - x1, NET - x0
    return [x0, y0, x1, y1, score]


# ---------------------------------------------------------------------------
# Planner
# ---------------------------------------------------------------------------

def test_defaults_are_whole_then_mirrored_padded():
    views = T.plan(416, 312, None, True)
    assert views == [T.whole(416, 312), T.padded(416, 312)]
    assert views[0].src == (0.0, 0.0, 416.0, 312.0)
    assert views[0].dst == (0, 0, NET, NET) and not views[0].flip
    pad = views[1]
    assert pad.flip is T.PAD_FLIP
    side = round(NET * T.PAD_FRACTION)
    assert pad.dst[2] - pad.dst[0] == side == pad.dst[3] - pad.dst[1]
    assert abs(pad.dst[0] + pad.dst[2] - NET) <= 1  # centred
    assert T.plan(416, 312, None, False) == [T.whole(416, 312)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mfs", [16, 32, 64])
def test_each_tile_level_covers_the_image(size, mfs):
    w, h = size
    for n in T.tile_levels(w, h, mfs):
        level = T.tiles(w, h, n)
        covered = np.zeros((h, w), bool)
        for v in level:
            x0, y0, x1, y1 = (int(c) for c in v.src)
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert v.dst == (0, 0, NET, NET)
            covered[y0:y1, x0:x1] = True
        assert covered.all()
        nx, ny = T.grid_shape(w, h, n)
        assert len(level) == nx * ny and min(nx, ny) == n


@pytest.mark.parametrize("size", SIZES)
def test_neighbouring_tiles_share_max_net_network_pixels(size):
    w, h = size
    for n in range(2, 7):
        nx, ny = T.grid_shape(w, h, n)
        level = T.tiles(w, h, n)
        sx, sy = level[0].scale
        for axis, count, scale, length in ((0, nx, sx, w), (1, ny, sy, h)):
            spans = sorted({(v.src[axis], v.src[axis + 2]) for v in level})
            assert len(spans) == count
            for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
                assert b0 > a0 and b1 > a1
                if a1 - a0 < length:  # tiles smaller than the image overlap as promised
                    assert (a1 - b0) * scale >= T.MAX_NET


@pytest.mark.parametrize("size", SIZES)
def test_tiles_of_a_level_have_one_scale_and_bounded_stretch(size):
    w, h = size
    for n in range(2, 7):
        level = T.tiles(w, h, n)
        assert len({v.scale for v in level}) == 1
        x0, y0, x1, y1 = level[0].src
        assert max((x1 - x0) / (y1 - y0), (y1 - y0) / (x1 - x0)) <= T.STRETCH + 1e-9


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mfs", [12, 16, 24, 32, 48, 64, 128])
def test_levels_magnify_the_smallest_face_enough_and_are_spaced(size, mfs):
    w, h = size
    levels = T.tile_levels(w, h, mfs)
    if not levels:
        assert T.level_scale(w, h, 1) * mfs >= T.TARGET_NET
        return
    finest = levels[0]
    assert T.level_scale(w, h, finest) * mfs >= T.TARGET_NET
    assert T.level_scale(w, h, finest - 1) * mfs < T.TARGET_NET  # no finer than needed
    assert levels == sorted(levels, reverse=True) and levels[-1] >= 2
    for fine, coarse in zip(levels, levels[1:]):
        assert T.level_scale(w, h, coarse) <= T.level_scale(w, h, fine) / T.LEVEL_RATIO + 1e-12


def test_level_counts_for_the_development_photo_size():
    # 416x312 (4:3): 3x3 then 2x2 tiles for 32 px faces: 2 + 9 + 4 = 15 passes
    assert T.tile_levels(416, 312, 32) == [3, 2]
    assert [T.grid_shape(416, 312, n) for n in (3, 2)] == [(3, 3), (2, 2)]
    assert len(T.plan(416, 312, 32, True)) == 15
    assert len(T.plan(416, 312, 64, True)) == 6
    assert len(T.plan(416, 312, 1000, True)) == 2


def test_plan_order_and_alternate_mirroring():
    views = T.plan(1024, 768, 32, True)
    assert views[0] == T.whole(1024, 768) and views[1] == T.padded(1024, 768)
    levels = T.tile_levels(1024, 768, 32)
    assert len(levels) >= 3
    at = 2
    flips = []
    for n in levels:
        level = views[at:at + len(T.tiles(1024, 768, n))]
        assert level == T.tiles(1024, 768, n, flip=level[0].flip)
        flips.append(level[0].flip)
        at += len(level)
    assert at == len(views)
    # counted from the whole view (not mirrored): the coarsest level is
    # mirrored, and neighbouring levels differ
    assert flips[-1] is True
    assert all(a != b for a, b in zip(flips, flips[1:]))


def test_min_face_size_must_be_positive():
    with pytest.raises(ValueError):
        T.plan(416, 312, 0, True)


def test_need():
    assert T.need(T.plan(1000, 800, None, True), 1000, 800) == (300, 300)
    views = T.plan(416, 312, 32, True)
    sx = max(v.scale[0] for v in views)
    sy = max(v.scale[1] for v in views)
    assert sx > 1 and sy > 1
    assert T.need(views, 416, 312) == (416, 312)
    assert T.need(T.plan(4000, 3000, 1000, False), 4000, 3000) == (300, 300)
    assert T.need(T.plan(4000, 3000, 500, False), 4000, 3000) == (500, 500)  # 2x2 tiles


# ---------------------------------------------------------------------------
# Mapping back
# ---------------------------------------------------------------------------

def test_flip_mapping():
    plain, mirror = T.whole(600, 300), T.whole(600, 300, flip=True)
    box = np.array([[10.0, 20.0, 50.0, 80.0]])
    np.testing.assert_allclose(T.to_original(plain, box), [[20, 20, 100, 80]])
    np.testing.assert_allclose(T.to_original(mirror, box), [[500, 20, 580, 80]])
    # the padded view: a box mirrored about the input's centre
    pad = T.padded(600, 300, flip=True, fraction=0.5)  # dst 75..225
    face = (300.0, 60.0, 420.0, 180.0)
    row = net_box(pad, face, 0.9)
    np.testing.assert_allclose(T.to_original(pad, np.array([row[:4]])), [face], atol=1e-9)
    # a tile, mirrored
    tile = View((100.0, 50.0, 250.0, 200.0), (0, 0, NET, NET), (True, True, True, True), True)
    face = (120.0, 60.0, 160.0, 110.0)
    np.testing.assert_allclose(T.to_original(tile, np.array([net_box(tile, face, 1)[:4]])), [face])


def test_cut_mask_sees_mirrored_borders():
    # tile with an inner border on its right only: a box at the mirrored
    # input's left edge touches that border
    tile = View((0.0, 0.0, 200.0, 200.0), (0, 0, NET, NET), (False, False, True, False), True)
    assert T.cut_mask(tile, np.array([[1.0, 100, 40, 150]])).tolist() == [True]
    assert T.cut_mask(tile, np.array([[260.0, 100, 299, 150]])).tolist() == [False]
    plain = View(tile.src, tile.dst, tile.inner, False)
    assert T.cut_mask(plain, np.array([[260.0, 100, 299, 150]])).tolist() == [True]


# ---------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------

def two_tiles():
    """Two side-by-side tiles of a 400x200 image sharing x = 150..250."""
    left = View((0.0, 0.0, 250.0, 200.0), (0, 0, NET, NET), (False, False, True, False))
    right = View((150.0, 0.0, 400.0, 200.0), (0, 0, NET, NET), (True, False, False, False))
    return left, right


def test_cut_face_dropped_when_a_neighbour_holds_it_whole():
    left, right = two_tiles()
    face = (220.0, 50.0, 270.0, 110.0)  # crosses the left tile's right border (x = 250)
    cut_part = (220.0, 50.0, 250.0, 110.0)  # what the left tile sees, clipped
    per_view = [(left, rows(net_box(left, cut_part, 0.95))),
                (right, rows(net_box(right, face, 0.9)))]
    assert T.cut_mask(left, per_view[0][1][:, :4]).tolist() == [True]
    out = T.merge(per_view, 0.6, 100)
    assert len(out) == 1
    np.testing.assert_allclose(out[0, :4], face, atol=1e-6)
    assert out[0, 4] == pytest.approx(0.9)


def test_cut_face_kept_when_no_view_holds_it_whole():
    left, right = two_tiles()
    cut_part = (220.0, 50.0, 250.0, 110.0)
    out = T.merge([(left, rows(net_box(left, cut_part, 0.8))), (right, rows())], 0.6, 100)
    assert len(out) == 1 and out[0, 4] == pytest.approx(0.8)


def test_a_face_in_the_overlap_seen_by_both_tiles_is_one_face():
    left, right = two_tiles()
    face = (180.0, 50.0, 220.0, 100.0)
    per_view = [(left, rows(net_box(left, face, 0.9))), (right, rows(net_box(right, face, 0.7)))]
    out = T.merge(per_view, 0.6, 100)
    assert len(out) == 1
    np.testing.assert_allclose(out[0, :4], face, atol=1e-6)
    assert out[0, 4] == pytest.approx(0.9)  # one level: its best score


def test_nms_across_views_groups_at_the_cross_view_iou():
    w, h = 600, 400
    a, b = T.whole(w, h), T.whole(w, h, flip=True)
    face = np.array([100.0, 100.0, 200.0, 220.0])
    shifted = face + [25, 25, 25, 25]
    iou = T._overlaps(face[None], shifted[None])[0][0, 0]
    assert T.CROSS_VIEW_IOU < iou < 0.6
    # different views: one face; the box is the score-weighted average
    out = T.merge([(a, rows(net_box(a, face, 0.9))), (b, rows(net_box(b, shifted, 0.3)))], 0.6, 100)
    assert len(out) == 1
    np.testing.assert_allclose(out[0, :4], (0.9 * face + 0.3 * shifted) / 1.2, atol=1e-6)
    # the same view: NMS at the caller's IoU keeps both
    out = T.merge([(a, rows(net_box(a, face, 0.9), net_box(a, shifted, 0.3)))], 0.6, 100)
    assert len(out) == 2
    # ... and at a lower caller IoU, one
    out = T.merge([(a, rows(net_box(a, face, 0.9), net_box(a, shifted, 0.3)))], 0.2, 100)
    assert len(out) == 1


def test_level_agreement_scores():
    w, h = 416, 312
    views = T.plan(w, h, 32, True)
    face = (200.0, 150.0, 240.0, 198.0)  # 48 px tall: reliable on both tile levels, not whole
    reliable = T.reliable(views, np.array(face))
    levels = T.levels_of(views)
    voting = sorted(set(levels[reliable].tolist()))
    assert len(voting) == 2 and levels[0] not in voting
    holders = [k for k in np.flatnonzero(reliable)]
    fine = holders[0]
    coarse = next(k for k in holders if levels[k] != levels[fine])
    seen_by_both = [(views[fine], rows(net_box(views[fine], face, 0.9))),
                    (views[coarse], rows(net_box(views[coarse], face, 0.7)))]
    out = T.merge(seen_by_both, 0.6, 100)
    assert len(out) == 1 and out[0, 4] == pytest.approx((0.9 + 0.7) / 2)
    seen_by_one = [(v, rows()) for v in views]
    seen_by_one[fine] = (views[fine], rows(net_box(views[fine], face, 0.9)))
    out = T.merge(seen_by_one, 0.6, 100)
    assert len(out) == 1 and out[0, 4] == pytest.approx(0.9 / 2)
    # a face no other view holds reliably keeps its score
    big = (10.0, 10.0, 300.0, 300.0)
    alone = [(views[0], rows(net_box(views[0], big, 0.8)))] + [(v, rows()) for v in views[1:]]
    out = T.merge(alone, 0.6, 100)
    assert out[0, 4] == pytest.approx(0.8)


def test_fused_scores_never_exceed_the_best_box():
    rng = np.random.default_rng(0)
    w, h = 416, 312
    views = T.plan(w, h, 32, True)
    per_view = []
    for v in views:
        n = 20
        xy = rng.uniform(0, 260, (n, 2))
        wh = rng.uniform(5, 120, (n, 2))
        scores = rng.uniform(0.01, 1, n)
        per_view.append((v, np.column_stack([xy, np.minimum(xy + wh, NET), scores])))
    best = max(r[:, 4].max() for _, r in per_view)
    out = T.merge(per_view, 0.6, 1917)
    assert len(out) and out[:, 4].max() <= best + 1e-12
    assert np.all(np.diff(out[:, 4]) <= 0)
    capped = T.merge(per_view, 0.6, 5)
    np.testing.assert_allclose(capped, out[:5])


def test_merge_of_nothing():
    v = T.whole(100, 100)
    assert T.merge([], 0.6, 10).shape == (0, 5)
    assert T.merge([(v, rows())], 0.6, 10).shape == (0, 5)
    out = T.merge([(v, rows([30, 30, 90, 90, 0.5]))], 0.6, 0)
    assert out.shape == (0, 5)


def test_merge_maps_every_view_to_original_pixels():
    w, h = 900, 600
    views = T.plan(w, h, None, True)
    face = (450.0, 100.0, 750.0, 500.0)
    out = T.merge([(v, rows(net_box(v, face, s))) for v, s in zip(views, (0.6, 0.8))], 0.6, 10)
    assert len(out) == 1
    np.testing.assert_allclose(out[0, :4], face, atol=1e-6)
    # 100x200 net px in the whole view (too big to vote), 75x150 in the padded
    # view: the padded view's box leads and is the only voter
    assert out[0, 4] == pytest.approx(0.8)

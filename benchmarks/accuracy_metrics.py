"""Detection accuracy, the pure part: the protocol's constants, matching of
detections to faces, precision/recall/F1, VOC average precision, size
buckets, the threshold sweep and the input-independent boxes.

``benchmarks/accuracy.py`` documents the protocol and runs it; no I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------
# The protocol's constants
# ---------------------------------------------------------------------------

MATCH_IOU = 0.5
LOW_THRESHOLD = 0.01
LOW_MAX_FACES = 1917
LARGE_FRACTION = 0.4
BUCKET_EDGES = (16.0, 32.0, 64.0, 96.0)
BUCKET_LABELS = ("< 16", "16-32", "32-64", "64-96", "> 96")
# 0.27 .. 0.95: above the 0.267 of the stand-in tensor's input-independent boxes.
SWEEP_THRESHOLDS = tuple(round(0.27 + 0.01 * i, 2) for i in range(69))
STAND_IN_SCORE = 0.267

# Outcome of one detection.
HIT = 1
FALSE_POSITIVE = 0
NOT_COUNTED = -1  # on an ignored face

# Long sides are rounded to this many decimals before bucketing, so that a
# difference of two stored coordinates that should be exactly 16 (say) is not
# put below the edge by a floating-point rounding error.
_LONG_SIDE_DECIMALS = 6


# ---------------------------------------------------------------------------
# Metrics: pure functions
# ---------------------------------------------------------------------------


def as_boxes(boxes: Any) -> np.ndarray:
    """``[N, 4]`` float64 ``(xmin, ymin, xmax, ymax)`` from anything array-like."""
    a = np.asarray(boxes, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 4))
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4], got {list(a.shape)}")
    return a


def box_iou(a: Any, b: Any) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``: ``[N, M]``.

    Continuous pixel coordinates (no +1); a pair whose union is empty has IoU 0.
    """
    a, b = as_boxes(a), as_boxes(b)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def long_sides(boxes: Any) -> np.ndarray:
    """The longer side of each box, in pixels (rounded to 1e-6)."""
    b = as_boxes(boxes)
    return np.round(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), _LONG_SIDE_DECIMALS)


def size_buckets(boxes: Any) -> np.ndarray:
    """Index into :data:`BUCKET_LABELS` of each box, by its long side.

    ``< 16``, ``16-32``, ``32-64``, ``64-96``, ``> 96``: a long side of exactly
    16, 32 or 64 px goes to the bucket above it, exactly 96 px to ``64-96``.
    """
    side = long_sides(boxes)
    lo, mid1, mid2, hi = BUCKET_EDGES
    # [0, 16) [16, 32) [32, 64) [64, 96] (96, inf)
    idx = np.searchsorted(np.array([lo, mid1, mid2]), side, side="right")
    idx[side > hi] = 4
    return idx.astype(np.int64)


def large_faces(boxes: Any, width: float, height: float,
                fraction: float = LARGE_FRACTION) -> np.ndarray:
    """Boxes wider than ``fraction`` of the image's width or taller than of its height."""
    b = as_boxes(boxes)
    return ((b[:, 2] - b[:, 0]) > fraction * width) | ((b[:, 3] - b[:, 1]) > fraction * height)


def view_ignore(boxes: Any, ignore: Any, min_long_side: float = 0.0) -> np.ndarray:
    """The ignore flags of a view: the annotation's, plus faces under ``min_long_side`` px."""
    flags = np.asarray(ignore, dtype=bool).reshape(-1)
    if min_long_side > 0:
        flags = flags | (long_sides(boxes) < min_long_side)
    return flags


@dataclass(frozen=True)
class ImageMatch:
    """The matching of one image's detections to its faces.

    ``scores``/``outcome``: one per detection, in the order given;
    ``outcome`` is :data:`HIT`, :data:`FALSE_POSITIVE` or :data:`NOT_COUNTED`.
    ``face_score``: one per face, the score of the detection that hit it, NaN
    for a face no detection hit (and for every ignored face).
    """

    scores: np.ndarray
    outcome: np.ndarray
    face_score: np.ndarray

    @property
    def hits(self) -> int:
        return int(np.sum(self.outcome == HIT))

    @property
    def false_positives(self) -> int:
        return int(np.sum(self.outcome == FALSE_POSITIVE))


def match_image(det_boxes: Any, det_scores: Any, gt_boxes: Any, gt_ignore: Any,
                iou_threshold: float = MATCH_IOU) -> ImageMatch:
    """Greedy matching by score of one image's detections to its faces.

    In decreasing score order (ties keep the given order), each detection takes
    the not yet matched scored face it overlaps most, if that IoU is at least
    ``iou_threshold`` (a hit); otherwise, if it overlaps an ignored face at IoU
    >= ``iou_threshold`` it is not counted (an ignored face may absorb any
    number of detections); otherwise it is a false positive.
    """
    det_boxes, gt_boxes = as_boxes(det_boxes), as_boxes(gt_boxes)
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    ignore = np.asarray(gt_ignore, dtype=bool).reshape(-1)
    if len(scores) != len(det_boxes):
        raise ValueError(f"{len(det_boxes)} detection boxes but {len(scores)} scores")
    if len(ignore) != len(gt_boxes):
        raise ValueError(f"{len(gt_boxes)} faces but {len(ignore)} ignore flags")
    iou = box_iou(det_boxes, gt_boxes)
    outcome = np.full(len(scores), FALSE_POSITIVE, dtype=np.int8)
    face_score = np.full(len(gt_boxes), np.nan)
    taken = ignore.copy()  # faces a detection can no longer take: ignored or matched
    for d in np.argsort(-scores, kind="stable"):
        row = iou[d]
        if len(row) == 0:
            continue
        candidates = np.where(taken, -1.0, row)
        g = int(np.argmax(candidates))
        if candidates[g] >= iou_threshold:
            taken[g] = True
            face_score[g] = scores[d]
            outcome[d] = HIT
        elif np.any(row[ignore] >= iou_threshold):
            outcome[d] = NOT_COUNTED
    return ImageMatch(scores, outcome, face_score)


def counts(outcome: Any, n_scored: int) -> dict[str, Any]:
    """Hits, false positives, not-counted detections, recall, precision and F1."""
    outcome = np.asarray(outcome)
    hits = int(np.sum(outcome == HIT))
    fp = int(np.sum(outcome == FALSE_POSITIVE))
    return {
        "detections": int(outcome.size),
        "hits": hits,
        "false_positives": fp,
        "not_counted": int(np.sum(outcome == NOT_COUNTED)),
        "recall": ratio(hits, n_scored),
        "precision": ratio(hits, hits + fp),
        "f1": f1_score(hits, fp, n_scored),
    }


def f1_score(hits: int, false_positives: int, n_scored: int) -> float:
    """``2 TP / (2 TP + FP + FN)``; 0 when nothing is hit, NaN with neither faces nor boxes."""
    return ratio(2 * hits, hits + false_positives + n_scored)


def pr_curve(scores: Any, outcome: Any, n_scored: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each counted detection, best score first.

    Detections pooled over any number of images; not-counted ones are dropped;
    equal scores keep the given order.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    outcome = np.asarray(outcome).reshape(-1)
    keep = outcome != NOT_COUNTED
    hit = (outcome[keep] == HIT)[np.argsort(-scores[keep], kind="stable")]
    tp = np.cumsum(hit)
    fp = np.cumsum(~hit)
    recall = tp / n_scored if n_scored > 0 else np.full(len(tp), np.nan)
    precision = tp / np.maximum(tp + fp, 1)
    return recall.astype(np.float64), precision.astype(np.float64)


def voc_ap(recall: Any, precision: Any) -> float:
    """VOC all-point average precision of a precision-recall curve.

    ``recall`` non-decreasing. Precision is made monotone (each point takes
    the best precision at any higher recall), then the area under the step
    curve is summed over the recall changes, starting from recall 0.
    """
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    if len(recall) != len(precision):
        raise ValueError("recall and precision must have the same length")
    if len(recall) and np.isnan(recall).any():
        return math.nan
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def average_precision(scores: Any, outcome: Any, n_scored: int) -> float:
    """VOC all-point AP of pooled detections (:func:`pr_curve` + :func:`voc_ap`)."""
    if n_scored <= 0:
        return math.nan
    return voc_ap(*pr_curve(scores, outcome, n_scored))


def threshold_sweep(scores: Any, outcome: Any, n_scored: int,
                    thresholds: Iterable[float] = SWEEP_THRESHOLDS) -> list[dict[str, Any]]:
    """Precision, recall and F1 keeping only the detections scoring >= each threshold.

    Scores and thresholds are compared in float32, as the detector compares them.
    """
    s32 = np.asarray(scores, dtype=np.float32).reshape(-1)
    outcome = np.asarray(outcome).reshape(-1)
    rows = []
    for t in thresholds:
        keep = s32 >= np.float32(t)
        row = counts(outcome[keep], n_scored)
        rows.append({"threshold": float(t), **row})
    return rows


def best_f1(sweep: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The sweep row with the highest F1 (the lowest threshold among equals)."""
    best = None
    for row in sweep:
        if not math.isnan(row["f1"]) and (best is None or row["f1"] > best["f1"]):
            best = row
    return best


def box_keys(boxes: Any, scores: Any, size: tuple[int, int], decimals: int = 4
             ) -> list[tuple[float, ...]]:
    """``(score, xmin / width, ymin / height, xmax / width, ymax / height)`` per box, rounded."""
    w, h = size
    rel = np.round(as_boxes(boxes) / np.array([w, h, w, h], dtype=np.float64), decimals)
    return [(float(s),) + tuple(r.tolist())
            for r, s in zip(rel, np.asarray(scores, dtype=np.float64).reshape(-1))]


def repeated_boxes(boxes: Sequence[Any], scores: Sequence[Any], sizes: Sequence[tuple[int, int]],
                   min_fraction: float = 0.5, decimals: int = 4) -> list[np.ndarray]:
    """Flags the detections that recur, input-independent, across images.

    A detection recurs when the same score and the same box relative to the
    image size (``xmin / width`` ..., rounded to ``decimals``) come out of at
    least ``min_fraction`` of the images (and of two at least): a network
    output that does not depend on the pixels, as the stand-in weight tensor
    makes some. ``sizes``: ``(width, height)`` of each image. One flag array
    per image.
    """
    keys = [box_keys(b, sc, size, decimals) for b, sc, size in zip(boxes, scores, sizes)]
    seen: dict[tuple[float, ...], int] = {}
    for k in keys:
        for key in set(k):
            seen[key] = seen.get(key, 0) + 1
    need = max(2, math.ceil(min_fraction * len(keys)))
    return [np.array([seen[key] >= need for key in k], dtype=bool) for k in keys]


def ratio(num: float, den: float) -> float:
    """``num / den``; NaN when ``den`` is 0 (a ratio with nothing to count)."""
    return num / den if den else math.nan

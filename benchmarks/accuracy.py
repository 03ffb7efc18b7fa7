#!/usr/bin/env python
"""Detection accuracy on the annotated photos of ``shared/eval/faces`` (WIDER FACE val).

Follows the evaluation protocol of ``shared/eval/faces/README.md``:

1. Each configuration's detector runs on every image as stored (decoded to RGB
   with Pillow), once at its own settings (the library defaults unless the
   configuration changes them: score threshold 0.28) and once at a low score
   threshold (0.01, ``max_faces`` 1917) with the same NMS IoU.
2. Per image, detections are matched to the scored faces at IoU >= 0.5,
   greedily by score: in decreasing score order each detection takes the not
   yet matched scored face it overlaps most if that IoU is >= 0.5 (a hit);
   otherwise, if it overlaps an ignored face at IoU >= 0.5 it is not counted;
   otherwise it is a false positive.
3. Pooled over the images: recall and precision at the configuration's
   threshold; VOC all-point average precision of the low-threshold run (every
   box of every image pooled and sorted by score, precision made monotone, area
   under the precision-recall curve) and the recall that run reaches; recall by
   size bucket of the face's long side (< 16, 16-32, 32-64, 64-96, > 96 px of
   the stored image: a face of exactly 16, 32 or 64 px goes to the bucket above,
   one of exactly 96 px to 64-96); recall on the scored faces spanning more than
   40% of the image's width or height; forward passes per image; images per
   second, timing only the ``detect`` calls on decoded arrays, and separately
   ``detect(path)`` (Pillow decoding included).
4. Two views, both always reported: ``all`` (every scored face; the main
   report) and ``ge32``, the README's secondary report, where scored faces under
   32 px long side are treated as ignored too (the network sees the image at
   300x300 and cannot resolve them).

``--sweep-thresholds`` prints, from the low-threshold run, precision, recall
and F1 at score thresholds 0.27 to 0.95 (step 0.01) and marks the best F1, in
both views: how the default score threshold is chosen. Thresholds stay above
0.267, the score of the input-independent boxes that the all-zero stand-in
weight tensor produces (README, "The stand-in tensor"). A threshold t keeps
the low-threshold run's boxes scoring >= t, which is exactly what a run at t
returns: greedy NMS keeps a box by looking only at boxes scoring higher, and
greedy matching handles detections in score order too (unless ``max_faces``
would have cut the run at t; the report checks the configuration's own
threshold against its real run).

Configurations (``--config``, repeatable; default: one, ``defaults``, the
library defaults)::

    --config NAME                          # library defaults, under another name
    --config NAME:key=value,key=value      # Detector(weights, key=value, ...)
    --config NAME:detect.key=value         # detector.detect(image, key=value)

Values are Python literals (``ast.literal_eval``: ``32``, ``0.4``, ``'avx2'``,
``(1, 2)``); a value that is not one is taken as a string (``isa=avx2``). The
low-threshold run of a configuration is the same ``Detector`` keywords with
``score_threshold`` and ``max_faces`` replaced. Example, once the library
takes it: ``--config defaults --config mfs32:min_face_size=32``.

Forward passes per image: after each ``detect`` call the runner reads
``getattr(detector, "last_passes", 1)``. That is the contract: a detector that
runs the network more than once per image (tiling for small faces) sets
``detector.last_passes`` to the number of forward passes of its latest
``detect`` call; without the attribute one pass is assumed.

The eval photos are WIDER FACE (research, non-commercial use only): they are
read from the shared folder and never copied anywhere.

    python benchmarks/accuracy.py                          # text report, defaults
    python benchmarks/accuracy.py --sweep-thresholds       # + the threshold sweep
    python benchmarks/accuracy.py --markdown               # tables for RESULTS.md
    python benchmarks/accuracy.py --json out.json          # every figure
    python benchmarks/accuracy.py --config a --config t40:score_threshold=0.4

Default paths: ``$SSDFACE_SHARED/eval/faces`` or ``../shared/eval/faces``
beside the repository, and the weights in the same shared folder.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # runinfo, beside this file
from runinfo import git_revision, loadavg, wait_for_quiet  # noqa: E402

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
        "recall": _ratio(hits, n_scored),
        "precision": _ratio(hits, hits + fp),
        "f1": f1_score(hits, fp, n_scored),
    }


def f1_score(hits: int, false_positives: int, n_scored: int) -> float:
    """``2 TP / (2 TP + FP + FN)``; 0 when nothing is hit, NaN with neither faces nor boxes."""
    return _ratio(2 * hits, hits + false_positives + n_scored)


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


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


# ---------------------------------------------------------------------------
# The eval set
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalImage:
    """One annotated photo: its file, size and faces (``boxes`` in stored pixels)."""

    key: str  # e.g. "wider/0_Parade_Parade_0_102.jpg", the path under images/
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # [G, 4] float64
    ignore: np.ndarray  # [G] bool


def default_eval_dir() -> Path:
    """``$SSDFACE_SHARED/eval/faces`` or ``<repo>/../shared/eval/faces``."""
    env = os.environ.get("SSDFACE_SHARED")
    shared = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return shared / "eval" / "faces"


def default_weights() -> Path | None:
    """The shared weights folder beside the eval set, or None (the library's own lookup)."""
    path = default_eval_dir().parents[1] / "weights" / "ssd_mobilenetv2_face_nhwc"
    return path if path.is_dir() else None


def load_eval_set(eval_dir: str | os.PathLike[str], keys: Iterable[str] | None = None
                  ) -> list[EvalImage]:
    """The images of ``eval_dir/annotations.json``, sorted by key.

    ``keys`` selects some: each is a key (``wider/NAME.jpg``) or a file name.
    """
    eval_dir = Path(eval_dir)
    with open(eval_dir / "annotations.json", encoding="utf-8") as f:
        annotations = json.load(f)
    selected = sorted(annotations)
    if keys is not None:
        by_name = {Path(k).name: k for k in annotations}
        wanted = []
        for k in keys:
            if k not in annotations and k not in by_name:
                raise KeyError(f"no image {k!r} in {eval_dir / 'annotations.json'}")
            wanted.append(k if k in annotations else by_name[k])
        selected = sorted(set(wanted))
    images = []
    for key in selected:
        entry = annotations[key]
        boxes = as_boxes(entry["boxes"])
        ignore = np.asarray(entry["ignore"], dtype=bool).reshape(-1)
        if len(ignore) != len(boxes):
            raise ValueError(f"{key}: {len(boxes)} boxes but {len(ignore)} ignore flags")
        images.append(EvalImage(key, eval_dir / "images" / key, int(entry["width"]),
                                int(entry["height"]), boxes, ignore))
    return images


def decode(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an ``HxWx3`` uint8 RGB array (Pillow)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


@dataclass(frozen=True)
class View:
    """Which faces are scored: the annotation's, minus those under ``min_long_side`` px."""

    name: str
    title: str
    min_long_side: float = 0.0


VIEWS = (
    View("all", "all scored faces"),
    View("ge32", "secondary: scored faces under 32 px ignored", 32.0),
)


def face_summary(images: Sequence[EvalImage], view: View) -> dict[str, Any]:
    """How many faces a view scores: in all, per size bucket, spanning > 40% of a side."""
    n_scored = n_ignored = n_large = 0
    per_bucket = np.zeros(len(BUCKET_LABELS), dtype=np.int64)
    for im in images:
        scored = ~view_ignore(im.boxes, im.ignore, view.min_long_side)
        n_scored += int(scored.sum())
        n_ignored += int((~scored).sum())
        per_bucket += np.bincount(size_buckets(im.boxes)[scored], minlength=len(BUCKET_LABELS))
        n_large += int((large_faces(im.boxes, im.width, im.height) & scored).sum())
    return {"scored_faces": n_scored, "ignored_faces": n_ignored,
            "buckets": dict(zip(BUCKET_LABELS, per_bucket.tolist())), "large_faces": n_large}


# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A name, ``Detector`` keyword arguments and ``detect`` keyword arguments."""

    name: str
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    detect_kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{k}={v!r}" for k, v in self.detector_kwargs.items()]
        parts += [f"detect.{k}={v!r}" for k, v in self.detect_kwargs.items()]
        return ", ".join(parts) if parts else "library defaults"


DEFAULT_CONFIG = Config("defaults")


class ConfigError(ValueError):
    """A configuration the detector does not accept."""

_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_KEY = re.compile(r"(detect\.)?[A-Za-z_]\w*")
# Split "a=1,b=(2, 3),c='x'" at the commas that start a new "key=".
_ITEM_SPLIT = re.compile(r",(?=\s*(?:detect\.)?[A-Za-z_]\w*\s*=)")


def parse_value(text: str) -> Any:
    """A Python literal, or the text itself when it is not one (``avx2``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_config(text: str) -> Config:
    """``NAME`` or ``NAME:key=value,detect.key=value,...`` (see the module docstring)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValueError(f"config {text!r}: the name must be letters, digits or _.+- "
                         "before the ':'")
    detector_kwargs: dict[str, Any] = {}
    detect_kwargs: dict[str, Any] = {}
    if rest.strip():
        for item in _ITEM_SPLIT.split(rest):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not _KEY.fullmatch(key) or not value.strip():
                raise ValueError(f"config {text!r}: expected key=value, got {item!r}")
            target = detector_kwargs
            if key.startswith("detect."):
                key, target = key[len("detect."):], detect_kwargs
            if key in target:
                raise ValueError(f"config {text!r}: {key} given twice")
            target[key] = parse_value(value.strip())
    return Config(name, detector_kwargs, detect_kwargs)


# ---------------------------------------------------------------------------
# Running a configuration
# ---------------------------------------------------------------------------


@dataclass
class Run:
    """One detector's pass over the images."""

    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    seconds: list[float]  # wall time of each detect call
    passes: list[float]  # getattr(detector, "last_passes", 1) after each call


def run_detector(detector: Any, inputs: Sequence[Any], detect_kwargs: dict[str, Any]) -> Run:
    """``detector.detect(x, **detect_kwargs)`` on each input, timed one by one."""
    run = Run([], [], [], [])
    clock = time.perf_counter
    for x in inputs:
        t0 = clock()
        faces = detector.detect(x, **detect_kwargs)
        t1 = clock()
        run.seconds.append(t1 - t0)
        run.passes.append(float(getattr(detector, "last_passes", 1)))
        run.boxes.append(as_boxes([f.box for f in faces]))
        run.scores.append(np.array([f.score for f in faces], dtype=np.float64))
    return run


def _bucket_recall(matches: Sequence[ImageMatch], images: Sequence[EvalImage],
                   scored: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per bucket: faces, hits; then faces and hits spanning > 40% of a side."""
    faces = np.zeros(len(BUCKET_LABELS), dtype=np.int64)
    hits = np.zeros(len(BUCKET_LABELS), dtype=np.int64)
    n_large = hit_large = 0
    for m, im, s in zip(matches, images, scored):
        bucket = size_buckets(im.boxes)
        hit = ~np.isnan(m.face_score)
        faces += np.bincount(bucket[s], minlength=len(BUCKET_LABELS))
        hits += np.bincount(bucket[s & hit], minlength=len(BUCKET_LABELS))
        large = large_faces(im.boxes, im.width, im.height) & s
        n_large += int(large.sum())
        hit_large += int((large & hit).sum())
    return faces, hits, n_large, hit_large


def evaluate_view(images: Sequence[EvalImage], default: Run, low: Run, view: View,
                  score_threshold: float | None, match_iou: float = MATCH_IOU,
                  thresholds: Iterable[float] = SWEEP_THRESHOLDS,
                  low_repeated: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Every figure of one view from a configuration's two runs.

    ``low_repeated``: :func:`repeated_boxes` of the low run, to count what
    those boxes hit.
    """
    scored = [~view_ignore(im.boxes, im.ignore, view.min_long_side) for im in images]
    n_scored = int(sum(s.sum() for s in scored))
    out: dict[str, Any] = {"title": view.title, "min_long_side": view.min_long_side,
                           "scored_faces": n_scored}
    per_run = {}
    for label, run in (("default", default), ("low", low)):
        matches = [match_image(b, sc, im.boxes, ~s, match_iou)
                   for b, sc, im, s in zip(run.boxes, run.scores, images, scored)]
        scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
        outcome = (np.concatenate([m.outcome for m in matches]) if matches
                   else np.zeros(0, dtype=np.int8))
        per_run[label] = (matches, scores, outcome)
        out[label] = counts(outcome, n_scored)
    out["low"]["ap"] = average_precision(per_run["low"][1], per_run["low"][2], n_scored)
    if low_repeated is not None:
        flags = np.concatenate(low_repeated) if low_repeated else np.zeros(0, dtype=bool)
        rep_counts = counts(per_run["low"][2][flags], n_scored)
        out["low"]["repeated_boxes"] = {k: rep_counts[k] for k in
                                        ("detections", "hits", "false_positives", "not_counted")}

    faces_d, hits_d, n_large, large_d = _bucket_recall(per_run["default"][0], images, scored)
    _, hits_l, _, large_l = _bucket_recall(per_run["low"][0], images, scored)
    out["buckets"] = [
        {"bucket": label, "faces": int(n), "hits": int(h), "recall": _ratio(h, n),
         "hits_low": int(hl), "recall_low": _ratio(hl, n)}
        for label, n, h, hl in zip(BUCKET_LABELS, faces_d, hits_d, hits_l)
    ]
    out["large_faces"] = {"faces": n_large, "hits": large_d, "recall": _ratio(large_d, n_large),
                          "hits_low": large_l, "recall_low": _ratio(large_l, n_large)}
    sweep = threshold_sweep(per_run["low"][1], per_run["low"][2], n_scored, thresholds)
    out["sweep"] = sweep
    out["best_f1"] = best_f1(sweep)
    # The low run cut at the configuration's own threshold should be its real run.
    if score_threshold is not None:
        cut = threshold_sweep(per_run["low"][1], per_run["low"][2], n_scored,
                              [score_threshold])[0]
        out["low_run_consistent"] = (cut["hits"] == out["default"]["hits"]
                                     and cut["false_positives"]
                                     == out["default"]["false_positives"])
    else:
        out["low_run_consistent"] = None
    return out


def _same_faces(a: Run, b: Run) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes)) and all(
        np.array_equal(x, y) for x, y in zip(a.scores, b.scores))


def _speed(run: Run) -> dict[str, Any]:
    total = float(sum(run.seconds))
    return {"seconds": total, "images_per_s": _ratio(len(run.seconds), total),
            "median_ms": float(np.median(run.seconds)) * 1e3 if run.seconds else math.nan,
            "passes_per_image": float(np.mean(run.passes)) if run.passes else math.nan}


def evaluate_config(config: Config, images: Sequence[EvalImage], arrays: Sequence[np.ndarray],
                    *, weights: str | os.PathLike[str] | None = None,
                    views: Sequence[View] = VIEWS, low_threshold: float = LOW_THRESHOLD,
                    low_max_faces: int = LOW_MAX_FACES, match_iou: float = MATCH_IOU,
                    thresholds: Iterable[float] = SWEEP_THRESHOLDS, time_paths: bool = True,
                    detector_factory: Callable[..., Any] | None = None) -> dict[str, Any]:
    """One configuration: build its detectors, run them, and every figure of every view.

    ``detector_factory(weights, **kwargs)`` builds a detector (default
    :class:`ssdface.Detector`). ``arrays`` are the decoded images. With
    ``time_paths`` the default detector also runs on the file paths (Pillow
    decoding inside ``detect``), timed separately.
    """
    if detector_factory is None:
        import ssdface

        detector_factory = ssdface.Detector
    thresholds = list(thresholds)
    low_kwargs = {**config.detector_kwargs, "score_threshold": low_threshold,
                  "max_faces": low_max_faces}
    try:
        detector = detector_factory(weights, **config.detector_kwargs)
        low_detector = detector_factory(weights, **low_kwargs)
    except (TypeError, ValueError) as exc:  # an unknown or invalid keyword
        raise ConfigError(f"config {config.name!r} ({config.describe()}): {exc}") from exc
    if arrays:  # warm up (first-call allocations), untimed
        detector.detect(arrays[0], **config.detect_kwargs)
        low_detector.detect(arrays[0], **config.detect_kwargs)
    default = run_detector(detector, arrays, config.detect_kwargs)
    from_path = run_detector(detector, [im.path for im in images],
                             config.detect_kwargs) if time_paths else None
    low = run_detector(low_detector, arrays, config.detect_kwargs)

    settings = {k: getattr(detector, k) for k in ("score_threshold", "iou_threshold",
                                                  "max_faces", "num_threads", "isa")
                if hasattr(detector, k)}
    score_threshold = settings.get("score_threshold")
    at_cap = sum(len(s) >= getattr(low_detector, "max_faces", low_max_faces)
                 for s in low.scores)
    low_scores = np.concatenate(low.scores) if low.scores else np.zeros(0)
    repeated = repeated_boxes(low.boxes, low.scores, [(im.width, im.height) for im in images])
    rep_scores = np.concatenate([s[f] for s, f in zip(low.scores, repeated)]) if images else []
    speed = {"detect": _speed(default), "low": _speed(low)}
    if from_path is not None:
        speed["from_path"] = _speed(from_path)
        speed["path_matches_array"] = _same_faces(default, from_path)
    return {
        "name": config.name,
        "description": config.describe(),
        "detector_kwargs": config.detector_kwargs,
        "detect_kwargs": config.detect_kwargs,
        "detector": repr(detector),
        "weights_path": str(getattr(detector, "weights_path", "") or "") or None,
        "settings": settings,
        "low_run": {
            "score_threshold": low_threshold, "max_faces": low_max_faces,
            "detections": int(low_scores.size),
            "detections_per_image": _ratio(low_scores.size, len(images)),
            "detections_at_most_stand_in_score": int(np.sum(low_scores <= STAND_IN_SCORE)),
            # the same relative box and score in at least half of the images
            "repeated_boxes": int(sum(f.sum() for f in repeated)),
            "repeated_distinct": len({key for b, s, f, im in zip(low.boxes, low.scores,
                                                                 repeated, images)
                                      for key in box_keys(b[f], s[f], (im.width, im.height))}),
            "repeated_max_score": float(np.max(rep_scores)) if len(rep_scores) else None,
            "images_at_max_faces": int(at_cap),
        },
        "speed": speed,
        "views": {v.name: evaluate_view(images, default, low, v, score_threshold, match_iou,
                                        thresholds, repeated) for v in views},
    }


def evaluate(images: Sequence[EvalImage], configs: Sequence[Config] = (DEFAULT_CONFIG,), *,
             weights: str | os.PathLike[str] | None = None, views: Sequence[View] = VIEWS,
             low_threshold: float = LOW_THRESHOLD, low_max_faces: int = LOW_MAX_FACES,
             match_iou: float = MATCH_IOU, thresholds: Iterable[float] = SWEEP_THRESHOLDS,
             time_paths: bool = True, detector_factory: Callable[..., Any] | None = None
             ) -> dict[str, Any]:
    """Decode the images once, then :func:`evaluate_config` each configuration.

    Returns the whole report (plain dicts, lists and numbers; NaN where a
    ratio has no denominator).
    """
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"config names must differ, got {names}")
    thresholds = list(thresholds)
    arrays, decode_s = [], []
    for im in images:
        t0 = time.perf_counter()
        arrays.append(decode(im.path))
        decode_s.append(time.perf_counter() - t0)
        if arrays[-1].shape[:2] != (im.height, im.width):
            raise ValueError(f"{im.key}: decoded {arrays[-1].shape[1]}x{arrays[-1].shape[0]}, "
                             f"annotated {im.width}x{im.height}")
    return {
        "protocol": {"match_iou": match_iou, "low_threshold": low_threshold,
                     "low_max_faces": low_max_faces, "large_fraction": LARGE_FRACTION,
                     "buckets": list(BUCKET_LABELS), "sweep_thresholds": thresholds},
        "eval_set": {
            "images": len(images),
            "decode_seconds": float(sum(decode_s)),
            "views": {v.name: {"title": v.title, **face_summary(images, v)} for v in views},
        },
        "configs": [evaluate_config(c, images, arrays, weights=weights, views=views,
                                    low_threshold=low_threshold, low_max_faces=low_max_faces,
                                    match_iou=match_iou, thresholds=thresholds,
                                    time_paths=time_paths, detector_factory=detector_factory)
                    for c in configs],
    }


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def _hits(h: int, n: int) -> str:
    return "-" if n == 0 else f"{_pct(h / n)} ({h}/{n})"


def _num(x: float, spec: str) -> str:
    return "n/a" if x is None or math.isnan(x) else format(x, spec)


def _table(header: list[str], body: list[list[str]], markdown: bool, left: int = 2) -> list[str]:
    """Rows of cells as Markdown or aligned text; the first ``left`` columns are text."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]


def _threshold(cfg: dict[str, Any]) -> str:
    t = cfg["settings"].get("score_threshold")
    return "?" if t is None else f"{t:g}"


def summary_table(report: dict[str, Any], markdown: bool) -> list[str]:
    low = report["protocol"]["low_threshold"]
    body = []
    for cfg in report["configs"]:
        for name, v in cfg["views"].items():
            d, lo = v["default"], v["low"]
            body.append([cfg["name"], name, str(v["scored_faces"]), _threshold(cfg),
                         _pct(d["recall"]), _pct(d["precision"]), _num(d["f1"], ".3f"),
                         f"{d['hits']}/{d['false_positives']}", _num(lo["ap"], ".3f"),
                         _pct(lo["recall"])])
    header = ["config", "view", "scored faces", "score >=", "recall", "precision", "F1",
              "hits/FP", f"AP (score >= {low:g})", f"recall (score >= {low:g})"]
    return _table(header, body, markdown)


def speed_table(report: dict[str, Any], markdown: bool) -> list[str]:
    body = []
    for cfg in report["configs"]:
        sp = cfg["speed"]
        path = sp.get("from_path")
        body.append([cfg["name"], cfg["description"],
                     _num(sp["detect"]["passes_per_image"], ".2f"),
                     _num(sp["detect"]["median_ms"], ".1f"),
                     _num(sp["detect"]["images_per_s"], ".1f"),
                     _num(path["images_per_s"], ".1f") if path else "-",
                     _num(sp["low"]["images_per_s"], ".1f")])
    header = ["config", "settings", "passes/image", "median ms/image", "images/s",
              "images/s from file", "images/s low run"]
    return _table(header, body, markdown)


def bucket_table(report: dict[str, Any], markdown: bool) -> list[str]:
    low = report["protocol"]["low_threshold"]
    body = []
    for cfg in report["configs"]:
        for name, v in cfg["views"].items():
            lg = v["large_faces"]
            for run, thr in (("", _threshold(cfg)), ("_low", f"{low:g}")):
                body.append([cfg["name"], name, f">= {thr}"]
                            + [_hits(b["hits" + run], b["faces"]) for b in v["buckets"]]
                            + [_hits(lg["hits" + run], lg["faces"])])
    header = ["config", "view", "score"] + [f"{b} px" for b in BUCKET_LABELS] + [
        f"> {100 * LARGE_FRACTION:.0f}% of a side"]
    return _table(header, body, markdown, left=3)


def sweep_table(cfg: dict[str, Any], markdown: bool) -> list[str]:
    views = list(cfg["views"].items())
    best = {name: (v["best_f1"] or {}).get("threshold") for name, v in views}
    body = []
    for i, t in enumerate(row["threshold"] for row in views[0][1]["sweep"]):
        cells = []
        marks = []
        for name, v in views:
            row = v["sweep"][i]
            f1 = _num(row["f1"], ".3f")
            if t == best[name]:
                marks.append(name)
                f1 = f"**{f1}**" if markdown else f1 + " *"
            cells += [_pct(row["precision"]), _pct(row["recall"]), f1]
        body.append([f"{t:.2f}", ("best F1: " + ", ".join(marks)) if marks else ""] + cells)
    header = ["score >=", "note"]
    for name, _ in views:
        header += [f"P {name}", f"R {name}", f"F1 {name}"]
    return _table(header, body, markdown)


def notes(report: dict[str, Any], sweep: bool = False) -> list[str]:
    """Remarks and warnings on the runs (with ``sweep``, on the threshold sweep too)."""
    out = []
    for cfg in report["configs"]:
        low = cfg["low_run"]
        n = max(report["eval_set"]["images"], 1)
        rep = [f"{v['low']['repeated_boxes']['hits']} in {name}"
               for name, v in cfg["views"].items() if "repeated_boxes" in v["low"]]
        top = low["repeated_max_score"]
        out.append(
            f"{cfg['name']}: the low-threshold run returns {low['detections']} boxes "
            f"({low['detections_per_image']:.1f} per image); {low['repeated_boxes']} of them "
            f"({low['repeated_boxes'] / n:.1f} per image, {low['repeated_distinct']} distinct, "
            f"top score {_num(top, '.3f')}) recur in at least half of the images with the same "
            "score and relative box: input-independent outputs (the stand-in weight tensor); "
            "faces they hit: " + ", ".join(rep))
        if low["images_at_max_faces"]:
            out.append(f"{cfg['name']}: WARNING {low['images_at_max_faces']} image(s) of the "
                       f"low-threshold run reached max_faces={low['max_faces']}: its AP and "
                       "recall are cut short")
        for name, v in cfg["views"].items():
            if v["low_run_consistent"] is False:
                out.append(f"{cfg['name']}/{name}: WARNING the low-threshold run cut at score >= "
                           f"{_threshold(cfg)} differs from the run at that threshold "
                           "(max_faces reached?): the threshold sweep is approximate")
            rows, best = v["sweep"], v["best_f1"]
            if sweep and best and best["threshold"] == rows[0]["threshold"]:
                out.append(f"{cfg['name']}/{name}: the best F1 of the sweep is at its lowest "
                           f"threshold, {rows[0]['threshold']:.2f}: F1 may rise further as the "
                           "threshold falls (below the range the stand-in boxes enter)")
        if cfg["speed"].get("path_matches_array") is False:
            out.append(f"{cfg['name']}: WARNING detect(path) and detect(Pillow RGB array) "
                       "disagree on some image (decoding differs)")
    return out


def format_report(report: dict[str, Any], *, markdown: bool = False, sweep: bool = False,
                  meta: Sequence[str] = (), heading: str = "") -> str:
    """The report as text (``markdown=False``) or Markdown tables for RESULTS.md."""
    es = report["eval_set"]
    views = es["views"]
    facts = list(meta)
    facts.append(f"{es['images']} images; views: " + "; ".join(
        f"`{name}` = {v['title']} ({v['scored_faces']} scored faces)" if markdown else
        f"{name} = {v['title']} ({v['scored_faces']} scored faces)" for name, v in views.items()))
    p = report["protocol"]
    facts.append(f"matching at IoU >= {p['match_iou']:g}, greedily by score; low-threshold run: "
                 f"score >= {p['low_threshold']:g}, max_faces {p['low_max_faces']}, same NMS; "
                 "AP: VOC all-point over the low-threshold run, pooled")
    facts.append("speed: wall time of the detect calls on decoded RGB arrays (images/s); "
                 "'from file': detect(path), Pillow decoding included; 1 detector thread "
                 "unless the config says otherwise")
    out: list[str] = []
    prefix = "- " if markdown else "# "
    if heading:
        out += ["### " + heading, ""] if markdown else ["# " + heading]
    out += [prefix + f for f in facts]
    sections = [("Recall, precision and AP", summary_table(report, markdown)),
                ("Speed", speed_table(report, markdown)),
                ("Recall by long side of the face (hits/faces)", bucket_table(report, markdown))]
    if sweep:
        for cfg in report["configs"]:
            best = "; ".join(
                f"{name}: score >= {b['threshold']:.2f} (F1 {b['f1']:.3f}, precision "
                f"{_pct(b['precision'])}, recall {_pct(b['recall'])})"
                for name, v in cfg["views"].items() if (b := v["best_f1"]))
            sections.append((f"Threshold sweep, config {cfg['name']} (from its low-threshold "
                             f"run); best F1 at {best}", sweep_table(cfg, markdown)))
    for title, lines in sections:
        out.append("")
        out.append(f"{title}:" if markdown else f"## {title}")
        if markdown:
            out.append("")
        out += lines
    extra = notes(report, sweep)
    if extra:
        out.append("")
        out += [prefix + n for n in extra]
    return "\n".join(out)


def to_json(obj: Any) -> Any:
    """The report with NaN as None and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=default_eval_dir(),
                    help="the eval set (default: $SSDFACE_SHARED/eval/faces or "
                         "../shared/eval/faces)")
    ap.add_argument("--weights", type=Path, default=default_weights(),
                    help="weights folder or blob (default: the shared weights folder, else "
                         "the library's own lookup)")
    ap.add_argument("--config", dest="configs", action="append", type=parse_config,
                    metavar="NAME[:key=value,...]",
                    help="a configuration to evaluate (repeatable; default: 'defaults')")
    ap.add_argument("--sweep-thresholds", action="store_true",
                    help="print precision/recall/F1 at score thresholds 0.27..0.95")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables for RESULTS.md")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write every figure to OUT")
    ap.add_argument("--only", action="append", metavar="IMAGE",
                    help="evaluate only this image (key or file name; repeatable)")
    ap.add_argument("--low-threshold", type=float, default=LOW_THRESHOLD,
                    help=f"score threshold of the low-threshold run (default {LOW_THRESHOLD})")
    ap.add_argument("--low-max-faces", type=int, default=LOW_MAX_FACES,
                    help=f"max_faces of the low-threshold run (default {LOW_MAX_FACES})")
    ap.add_argument("--no-file-timing", action="store_true",
                    help="skip the detect(path) pass (images/s including decoding)")
    ap.add_argument("--wait-load", type=float, metavar="L",
                    help="first wait until the 1-minute load average is below L")
    ap.add_argument("--wait-max", type=float, default=600.0, metavar="S",
                    help="wait at most S seconds for --wait-load (default 600)")
    args = ap.parse_args(argv)
    configs = args.configs or [DEFAULT_CONFIG]
    if len({c.name for c in configs}) != len(configs):
        ap.error("--config names must differ")
    if not (args.eval_dir / "annotations.json").is_file():
        ap.error(f"no annotations.json in {args.eval_dir} (set SSDFACE_SHARED or --eval-dir)")
    try:
        images = load_eval_set(args.eval_dir, args.only)
    except KeyError as exc:
        ap.error(str(exc.args[0]))

    import ssdface

    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)
    load0 = loadavg()
    t0 = time.perf_counter()
    try:
        report = evaluate(images, configs, weights=args.weights,
                          low_threshold=args.low_threshold, low_max_faces=args.low_max_faces,
                          time_paths=not args.no_file_timing)
    except (ConfigError, ssdface.WeightsNotFoundError, ssdface.BlobError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0

    from PIL import __version__ as pil_version

    now = datetime.datetime.now(datetime.timezone.utc)
    rev = git_revision()
    first = report["configs"][0]
    isa = first["settings"].get("isa", "?")
    report["meta"] = {
        "date": f"{now:%Y-%m-%d %H:%M} UTC", "command": " ".join(
            ["python benchmarks/accuracy.py", *(sys.argv[1:] if argv is None else argv)]),
        "eval_dir": str(args.eval_dir), "weights": str(args.weights) if args.weights else None,
        "ssdface": ssdface.__version__, "ssdface_path": str(Path(ssdface.__file__).parent),
        "git": rev, "python": platform.python_version(), "numpy": np.__version__,
        "pillow": pil_version, "cpu_count": os.cpu_count(), "load_start": load0,
        "load_end": loadavg(), "seconds": elapsed,
    }
    meta = report["meta"]
    facts = [
        f"`{meta['command']}`" if args.markdown else meta["command"],
        f"ssdface {meta['ssdface']}" + (f", git {rev}" if rev else "")
        + f"; Python {meta['python']}, numpy {meta['numpy']}, Pillow {meta['pillow']}",
        f"weights: {first['weights_path']}; ISA {isa}; detector settings: "
        + ", ".join(f"{k}={v!r}" for k, v in first["settings"].items() if k != "isa")
        + ("" if first["name"] == DEFAULT_CONFIG.name and not first["detector_kwargs"]
           else f" (config {first['name']})"),
        f"load average (1, 5, 15 min) at start: {load0}; at end: {meta['load_end']}; "
        f"whole run {elapsed:.1f} s",
    ]
    heading = f"Accuracy on eval/faces, {meta['date']}"
    print(format_report(report, markdown=args.markdown, sweep=args.sweep_thresholds,
                        meta=facts, heading=heading))
    if args.json:
        args.json.write_text(json.dumps(to_json(report), indent=1, allow_nan=False) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

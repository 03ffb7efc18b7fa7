"""Running ``benchmarks/accuracy.py``'s protocol: each configuration's
detectors on the decoded eval photos (timed), then every figure of every
view from the two runs (the configuration's own and the low-threshold one).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from accuracy_configs import DEFAULT_CONFIG, Config, ConfigError
from accuracy_data import VIEWS, EvalImage, View, decode, face_summary
from accuracy_metrics import (
    BUCKET_LABELS,
    LARGE_FRACTION,
    LOW_MAX_FACES,
    LOW_THRESHOLD,
    MATCH_IOU,
    STAND_IN_SCORE,
    SWEEP_THRESHOLDS,
    ImageMatch,
    as_boxes,
    average_precision,
    best_f1,
    box_keys,
    counts,
    large_faces,
    match_image,
    ratio,
    repeated_boxes,
    size_buckets,
    threshold_sweep,
    view_ignore,
)


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
        {"bucket": label, "faces": int(n), "hits": int(h), "recall": ratio(h, n),
         "hits_low": int(hl), "recall_low": ratio(hl, n)}
        for label, n, h, hl in zip(BUCKET_LABELS, faces_d, hits_d, hits_l)
    ]
    out["large_faces"] = {"faces": n_large, "hits": large_d, "recall": ratio(large_d, n_large),
                          "hits_low": large_l, "recall_low": ratio(large_l, n_large)}
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
    return {"seconds": total, "images_per_s": ratio(len(run.seconds), total),
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
            "detections_per_image": ratio(low_scores.size, len(images)),
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

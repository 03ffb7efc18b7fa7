"""``benchmarks/quant_accuracy.py``'s steps 1-2: the shared weights, the f32
faces and head outputs of the photos and the annotated photos (``Setup``),
and every figure of the int8 simulation's faces against them for one set of
ranges (``evaluate``).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
from accuracy import (
    VIEWS,
    Run,
    box_iou,
    evaluate_view,
    load_eval_set,
)
from accuracy import decode as decode_rgb

import ssdface
from ssdface import _core
from ssdface.detector import DEFAULT_SCORE_THRESHOLD
from ssdface.image import decode
from ssdface.quant import graph, network, scheme

IOU_NMS = 0.6
MAX_FACES = 100
LOW_THRESHOLD, LOW_MAX_FACES = 0.01, 1917
PHOTO_IOU, EVAL_IOU = 0.9, 0.8


def match_faces(ref: np.ndarray, got: np.ndarray, iou: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of ``ref`` rows (xmin, ymin, xmax, ymax,
    score), by decreasing score, each to the free ``got`` row it overlaps
    most if that IoU is >= ``iou``: the pairs ``(ref row, got row, IoU)``."""
    if not len(ref) or not len(got):
        return []
    ious = box_iou(ref[:, :4], got[:, :4])
    taken = np.zeros(len(got), dtype=bool)
    pairs = []
    for r in np.argsort(-ref[:, 4], kind="stable"):
        cand = np.where(taken, -1.0, ious[r])
        g = int(np.argmax(cand))
        if cand[g] >= iou and cand[g] > 0:
            taken[g] = True
            pairs.append((int(r), g, float(cand[g])))
    return pairs


def rows(boxes: np.ndarray, logits: np.ndarray, size: tuple[int, int], threshold: float,
         max_faces: int) -> np.ndarray:
    """``_core.postprocess`` rows (xmin, ymin, xmax, ymax, score, anchor) in pixels of ``size``."""
    return _core.postprocess(np.ascontiguousarray(boxes, dtype=np.float32),
                             np.ascontiguousarray(logits, dtype=np.float32), _core.anchors(),
                             threshold, IOU_NMS, max_faces, float(size[0]), float(size[1]))


def scaled(r: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    out = r[:, :5].copy()
    out[:, [0, 2]] *= scale[0]
    out[:, [1, 3]] *= scale[1]
    return out


class Setup:
    """The weights, the f32 engine and the inputs, shared by every statistic."""

    def __init__(self, weights: Path, eval_dir: Path, images_dir: Path, limit: int | None):
        self.weights = network.load_float_weights(weights)
        self.layers = network.network_layers()
        self.detector = ssdface.Detector(weights, padded_pass=False)
        isa = self.detector.isa
        self.photos = []
        for path in sorted(images_dir.glob("*.jpg")):
            d = decode(path)
            x = _core.resize_normalize(d.pixels, impl=isa)
            b, lg = self.detector.forward(x[None])
            r = rows(b[0], lg[0], (d.pixels.shape[1], d.pixels.shape[0]),
                     DEFAULT_SCORE_THRESHOLD, MAX_FACES)
            f32 = scaled(r, d.scale)
            lib = np.array([f.box + (f.score,) for f in self.detector.detect(path)]).reshape(-1, 5)
            if not np.allclose(lib, f32, rtol=0, atol=1e-3):
                raise AssertionError(f"{path.name}: this path's f32 faces differ from detect's")
            self.photos.append((path.name, d, x, f32))
        self.eval_images = load_eval_set(eval_dir)[:limit]
        self.eval_inputs, self.eval_f32 = [], []
        for im in self.eval_images:
            arr = decode_rgb(im.path)
            x = _core.resize_normalize(arr, impl=isa)
            b, lg = self.detector.forward(x[None])
            self.eval_inputs.append(x)
            self.eval_f32.append((b[0], lg[0]))
            got = rows(b[0], lg[0], (im.width, im.height), DEFAULT_SCORE_THRESHOLD, MAX_FACES)
            want = np.array([f.box + (f.score,) for f in self.detector.detect(arr)]).reshape(-1, 5)
            if not np.array_equal(scaled(got, (1.0, 1.0)), want):
                raise AssertionError(f"{im.key}: this path's f32 faces differ from detect's")


def runs(images: list[Any], heads: list[tuple[np.ndarray, np.ndarray]], threshold: float,
         max_faces: int) -> Run:
    out = Run([], [], [], [])
    for im, (b, lg) in zip(images, heads):
        r = rows(b, lg, (im.width, im.height), threshold, max_faces)
        out.boxes.append(r[:, :4].astype(np.float64))
        out.scores.append(r[:, 4].astype(np.float64))
        out.seconds.append(0.0)
        out.passes.append(1.0)
    return out


def evaluate(setup: Setup, ranges: dict[int, tuple[float, float]], name: str,
             cache_dir: Path | None, means: dict[int, np.ndarray] | None = None
             ) -> dict[str, Any]:
    """Every figure of one set of ranges (and input means: bias correction;
    None: none)."""
    model = scheme.quantize_model(setup.weights, ranges, setup.layers, means)
    out: dict[str, Any] = {"name": name, "photos": []}
    for fname, d, x, f32 in setup.photos:
        run = graph.run_int8(model, x, setup.layers)
        r = rows(run.boxes, run.logits, (d.pixels.shape[1], d.pixels.shape[0]),
                 DEFAULT_SCORE_THRESHOLD, MAX_FACES)
        q8 = scaled(r, d.scale)
        pairs = match_faces(f32, q8, 0.0)
        out["photos"].append({
            "file": fname, "f32": len(f32), "int8": len(q8),
            "matched": sum(p[2] >= PHOTO_IOU for p in pairs),
            "min_iou": min((p[2] for p in pairs), default=math.nan),
            "max_score_diff": max((abs(f32[r, 4] - q8[g, 4]) for r, g, _ in pairs),
                                  default=math.nan)})
    digest = hashlib.sha256(repr(sorted(ranges.items())).encode())
    for lq in model.layers:  # the quantized biases: the bias correction changes them
        digest.update(np.ascontiguousarray(lq.b_q).tobytes())
    key = digest.hexdigest()[:16]
    cached = cache_dir / f"int8-heads-{key}-{len(setup.eval_images)}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            heads = list(zip(z["boxes"], z["logits"]))
    else:
        heads = []
        for x in setup.eval_inputs:
            run = graph.run_int8(model, x, setup.layers)
            heads.append((run.boxes, run.logits))
        if cached is not None:
            np.savez(cached, boxes=np.stack([h[0] for h in heads]),
                     logits=np.stack([h[1] for h in heads]))
    images = setup.eval_images
    f32_default = runs(images, setup.eval_f32, DEFAULT_SCORE_THRESHOLD, MAX_FACES)
    q8_default = runs(images, heads, DEFAULT_SCORE_THRESHOLD, MAX_FACES)
    total = matched = 0
    pair_iou, pair_score = [], []
    for fb, fs, qb, qs in zip(f32_default.boxes, f32_default.scores, q8_default.boxes,
                              q8_default.scores):
        ref = np.column_stack([fb, fs]) if len(fs) else np.zeros((0, 5))
        got = np.column_stack([qb, qs]) if len(qs) else np.zeros((0, 5))
        total += len(ref)
        pairs = match_faces(ref, got, EVAL_IOU)
        matched += len(pairs)
        pair_iou += [p[2] for p in pairs]
        pair_score += [abs(ref[r, 4] - got[g, 4]) for r, g, _ in pairs]
    f_b = np.stack([h[0] for h in setup.eval_f32])
    f_l = np.stack([h[1] for h in setup.eval_f32])
    q_b = np.stack([h[0] for h in heads])
    q_l = np.stack([h[1] for h in heads])
    out["eval"] = {"f32_faces": total, "matched": matched,
                   "matched_pct": 100.0 * matched / total if total else math.nan,
                   "int8_faces": int(sum(len(s) for s in q8_default.scores)),
                   "mean_iou": float(np.mean(pair_iou)) if pair_iou else math.nan,
                   "mean_score_diff": float(np.mean(pair_score)) if pair_score else math.nan,
                   "rms_boxes": float(np.sqrt(np.mean((q_b - f_b) ** 2))),
                   "rms_logits": float(np.sqrt(np.mean((q_l - f_l) ** 2)))}
    f32_low = runs(images, setup.eval_f32, LOW_THRESHOLD, LOW_MAX_FACES)
    q8_low = runs(images, heads, LOW_THRESHOLD, LOW_MAX_FACES)
    for view in VIEWS:
        a = evaluate_view(images, f32_default, f32_low, view, DEFAULT_SCORE_THRESHOLD)
        b = evaluate_view(images, q8_default, q8_low, view, DEFAULT_SCORE_THRESHOLD)
        out["eval"][view.name] = {
            "ap_f32": a["low"]["ap"], "ap_int8": b["low"]["ap"],
            "recall_f32": a["default"]["recall"], "recall_int8": b["default"]["recall"],
            "precision_f32": a["default"]["precision"],
            "precision_int8": b["default"]["precision"]}
    return out

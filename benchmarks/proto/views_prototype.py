#!/usr/bin/env python
"""Prototype: the views of ``ssdface.tiling`` through the public API, scored
with ``benchmarks/accuracy.py``'s functions on the development photos.

Per image: ``tiling.plan`` gives the views; each view's input is its source
rectangle resized (``_core.resize_normalize``) into its destination in a grey
300x300 input, mirrored for a flipped view; ``Detector.forward`` runs the
stack; ``_core.postprocess`` keeps each view's boxes at the low threshold
(0.01, NMS IoU 0.6, the library's); ``tiling.merge`` maps, groups and scores
them (same NMS IoU). The eval photos are read from the shared folder, never
copied.

    python benchmarks/proto/views_prototype.py defaults           # plan(w, h, None, True)
    python benchmarks/proto/views_prototype.py whole              # plan(w, h, None, False)
    python benchmarks/proto/views_prototype.py mfs32 [mfs16 ...]  # plan(w, h, 32, True)
    python benchmarks/proto/views_prototype.py defaults --sweep   # + threshold sweep (ge32)
    python benchmarks/proto/views_prototype.py defaults --checks  # + close-up, group, foliage

Options: ``--threshold T`` (default 0.28) for recall/precision and buckets,
``--shared DIR`` (default $SSDFACE_SHARED or ../shared beside the repo).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import accuracy as A  # noqa: E402

import ssdface  # noqa: E402
from ssdface import _core, tiling  # noqa: E402

LOW = 0.01
NMS_IOU = 0.6
DEFAULT_THRESHOLD = 0.28


def view_input(arr: np.ndarray, view: tiling.View) -> np.ndarray:
    """The 300x300 network input of one view (normalised, grey = 0)."""
    x0, y0, x1, y1 = (int(round(c)) for c in view.src)
    crop = np.ascontiguousarray(arr[y0:y1, x0:x1])
    dx0, dy0, dx1, dy1 = view.dst
    inp = np.zeros((tiling.NET, tiling.NET, 3), np.float32)
    inp[dy0:dy1, dx0:dx1] = _core.resize_normalize(crop, dy1 - dy0, dx1 - dx0)
    return inp[:, ::-1].copy() if view.flip else inp


def detect(det: ssdface.Detector, arr: np.ndarray, views: list[tiling.View],
           low: float = LOW, iou: float = NMS_IOU) -> np.ndarray:
    """Merged faces (m x 5, original px, fused score) of one image."""
    per_view = []
    anchors = _core.anchors()
    for s in range(0, len(views), 16):  # batches of 16: bounded memory however many views
        enc, logits = det.forward(np.stack([view_input(arr, v) for v in views[s:s + 16]]))
        for k in range(enc.shape[0]):
            rows = _core.postprocess(enc[k], logits[k], anchors, low, iou, 1917, 300.0, 300.0)
            per_view.append((views[s + k], rows[:, :5]))
    return tiling.merge(per_view, iou, 1917)


def evaluate(images, results, threshold: float) -> dict:
    out = {}
    for name, min_side in (("all", 0.0), ("ge32", 32.0)):
        scores, outcome, n = [], [], 0
        for im, m in zip(images, results):
            ign = A.view_ignore(im.boxes, im.ignore, min_side)
            mt = A.match_image(m[:, :4], m[:, 4], im.boxes, ign)
            scores.append(mt.scores)
            outcome.append(mt.outcome)
            n += int((~ign).sum())
        s, o = np.concatenate(scores), np.concatenate(outcome)
        sweep = A.threshold_sweep(s, o, n)
        at = A.counts(o[s.astype(np.float32) >= np.float32(threshold)], n)
        out[name] = {"ap": A.average_precision(s, o, n), "sweep": sweep, "at": at, "n": n,
                     "reach": A.counts(o, n)["recall"]}
    faces = np.zeros(5, np.int64)
    hits = np.zeros(5, np.int64)
    for im, m in zip(images, results):
        keep = m[:, 4].astype(np.float32) >= np.float32(threshold)
        mt = A.match_image(m[keep, :4], m[keep, 4], im.boxes, im.ignore)
        bucket, scored = A.size_buckets(im.boxes), ~im.ignore
        faces += np.bincount(bucket[scored], minlength=5)
        hits += np.bincount(bucket[scored & ~np.isnan(mt.face_score)], minlength=5)
    out["buckets"] = (hits, faces)
    return out


def checks(det: ssdface.Detector, planner, shared: Path, threshold: float) -> list[str]:
    """Faces at `threshold` on the close-up (the portrait's own rectangle of
    portrait_padded.jpg), the group photo and the foliage."""
    lines = []
    portrait = A.decode(shared / "images" / "portrait_padded.jpg")
    grey = np.abs(portrait.astype(int) - portrait[0, 0].astype(int)).max(axis=2) > 20
    ys, xs = np.nonzero(grey)
    closeup = np.ascontiguousarray(portrait[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    photos = [(f"close-up {closeup.shape[1]}x{closeup.shape[0]}", closeup)]
    for name in ("portrait_padded", "group_selfie", "foliage_no_face"):
        photos.append((name, A.decode(shared / "images" / f"{name}.jpg")))
    for name, arr in photos:
        h, w = arr.shape[:2]
        views = planner(w, h)
        m = detect(det, arr, views)
        m = m[m[:, 4] >= threshold]
        boxes = " ".join("({:.0f},{:.0f},{:.0f},{:.0f}) {:.2f}".format(*r) for r in m)
        lines.append(f"  {name}: {len(m)} face(s), {len(views)} passes  {boxes}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="defaults | whole | mfsN")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--checks", action="store_true")
    default_shared = Path(os.environ.get("SSDFACE_SHARED", REPO.parent / "shared"))
    ap.add_argument("--shared", type=Path, default=default_shared)
    args = ap.parse_args(argv)

    images = A.load_eval_set(args.shared / "eval" / "faces")
    arrays = [A.decode(im.path) for im in images]
    det = ssdface.Detector(num_threads=2)
    for cfg in args.configs:
        if cfg == "defaults":
            planner = lambda w, h: tiling.plan(w, h, None, True)  # noqa: E731
        elif cfg == "whole":
            planner = lambda w, h: tiling.plan(w, h, None, False)  # noqa: E731
        elif cfg.startswith("mfs"):
            mfs = float(cfg[3:])
            planner = lambda w, h, mfs=mfs: tiling.plan(w, h, mfs, True)  # noqa: E731
        else:
            ap.error(f"unknown config {cfg!r}")
        results, passes, seconds = [], [], 0.0
        for arr in arrays:
            h, w = arr.shape[:2]
            views = planner(w, h)
            t0 = time.perf_counter()
            results.append(detect(det, arr, views))
            seconds += time.perf_counter() - t0
            passes.append(len(views))
        passes = np.array(passes)
        widths = np.array([im.width for im in images])
        rep = evaluate(images, results, args.threshold)
        by_shape: dict[str, list[int]] = {}
        for im, p in zip(images, passes):
            by_shape.setdefault(f"{im.width}x{im.height}", []).append(int(p))
        narrow = passes[widths == 416]
        print(f"== {cfg}: passes/image {passes.mean():.2f} (416-px-wide: mean {narrow.mean():.2f},"
              f" max {narrow.max()}; the 1024-px photo: {passes[widths != 416].max()})"
              f"  {len(images) / seconds:.2f} images/s"
              f" ({seconds / passes.sum() * 1000:.0f} ms/pass, load {os.getloadavg()[0]:.1f})")
        common = sorted(by_shape.items(), key=lambda kv: -len(kv[1]))[:4]
        print("  passes by size: " + ", ".join(f"{k}: {v[0]} ({len(v)} photos)" for k, v in common))
        for name in ("all", "ge32"):
            r = rep[name]
            at = r["at"]
            print(f"  {name:4s} AP {r['ap']:.3f} (low-threshold recall {r['reach']:.3f})"
                  f"  @{args.threshold}: R {at['recall']:.3f} P {at['precision']:.3f}"
                  f" F1 {at['f1']:.3f} ({at['hits']} hits, {at['false_positives']} FP"
                  f" of {r['n']})")
        hits, faces = rep["buckets"]
        print(f"  bucket recall @{args.threshold}: " + "  ".join(
            f"{lab} {h / max(f, 1):.2f} ({h}/{f})"
            for lab, h, f in zip(A.BUCKET_LABELS, hits, faces)))
        if args.sweep:
            print("  sweep (ge32): threshold R P F1 hits FP")
            for row in rep["ge32"]["sweep"]:
                if row["threshold"] <= 0.6 + 1e-9:
                    print(f"    {row['threshold']:.2f} {row['recall']:.3f} {row['precision']:.3f}"
                          f" {row['f1']:.3f} {row['hits']} {row['false_positives']}")
        if args.checks:
            print("\n".join(checks(det, planner, args.shared, args.threshold)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

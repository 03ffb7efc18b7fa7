#!/usr/bin/env python
"""The int8 simulation (``ssdface.quant``) against the float C engine, one pass.

For each statistic measured (the committed ranges file by default, or
``--statistics`` computed from a calibration statistics cache):

1. The shared photos (``shared/images``): each decoded and resized as
   ``Detector(padded_pass=False).detect(path)`` does it; the float32 faces
   are the C engine's (checked equal to ``detect``'s), the int8 faces those
   of the simulation's head outputs through the same post-processing
   (``_core.postprocess`` at the ``Detector`` defaults: score 0.28, NMS IoU
   0.6, 100 faces). Every f32 face must have an int8 face at IoU >= 0.9
   (greedy one-to-one matching, f32 faces by decreasing score).
2. The annotated photos (``shared/eval/faces``, protocol of its README, with
   ``benchmarks/accuracy.py``'s metrics): each decoded with Pillow and
   resized as ``Detector.detect(array)`` does it, one pass. Reported: the
   share of f32 faces (score >= 0.28) matched by an int8 face at IoU >= 0.8,
   and the AP (low-threshold run, 0.01, 1917 faces) of f32 and int8 on all
   scored faces and on faces >= 32 px.
3. ``--sqnr N``: per-layer SQNR of the int8 output (dequantized) against
   the float64 graph's on the photos and the first N annotated photos
   (errors accumulated through the network), worst layers first.
4. ``--sources STEP``: where the error comes from, on every STEP-th
   annotated photo: RMS error of the head outputs against the float64 graph
   when only some parts are quantized (fake quantization in float64: the
   input; the weights and biases, all or by kind; the activations, all or
   by kind), the int8 simulation without and with the *bias correction*
   (:mod:`ssdface.quant.scheme`: each float bias b[c] replaced by
   ``b[c] - sum_k mean(x_k) (w_deq[k, c] - w[k, c])``, the mean quantization
   error of the weights on the mean input, with the per-channel input means
   the calibration recorded).
5. ``--uncorrected``: steps 1-2 also without the bias correction.

The int8 model is quantized as the product does it: with the ranges and
the input means (bias correction) of the ranges file, or of the
statistics cache for ``--statistics``.

    python benchmarks/quant_accuracy.py                        # committed ranges
    python benchmarks/quant_accuracy.py --stats-cache /tmp/stats.npz \\
        --statistics minmax,p99.999,p99.99,p99.9,mean-minmax   # compare statistics
    python benchmarks/quant_accuracy.py --sqnr 10                 # + per-layer SQNR
    python benchmarks/quant_accuracy.py --sources 5 --uncorrected

The eval photos are read from the shared folder and never copied anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this file
from accuracy import VIEWS, default_eval_dir  # noqa: E402
from quant_eval import Setup, evaluate  # noqa: E402
from quant_measures import error_sources, sqnr_table  # noqa: E402
from runinfo import git_revision, loadavg  # noqa: E402

from ssdface.quant import calibrate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = default_eval_dir().parents[1]
    ap.add_argument("--weights", type=Path,
                    default=shared / "weights" / "ssd_mobilenetv2_face_nhwc")
    ap.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    ap.add_argument("--images-dir", type=Path, default=shared / "images")
    ap.add_argument("--ranges", type=Path, default=calibrate.RANGES_FILE,
                    help="a ranges file (used unless --statistics is given)")
    ap.add_argument("--stats-cache", type=Path, help="calibration statistics (.npz written "
                    "by python -m ssdface.quant.calibrate --stats-cache)")
    ap.add_argument("--statistics", default=None,
                    help="comma-separated statistics to compare, from --stats-cache")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep the int8 head outputs of the eval set here, by ranges")
    ap.add_argument("--limit", type=int, default=None, help="only the first N eval images")
    ap.add_argument("--sqnr", type=int, default=0, metavar="N",
                    help="per-layer SQNR on the photos and N eval images")
    ap.add_argument("--worst", type=int, default=12, help="layers listed in the SQNR table")
    ap.add_argument("--sources", type=int, default=0, metavar="STEP",
                    help="error sources on every STEP-th eval image")
    ap.add_argument("--uncorrected", action="store_true",
                    help="also evaluate the model without the bias correction")
    args = ap.parse_args(argv)

    candidates: list[tuple[str, dict[int, tuple[float, float]], Any]] = []
    if args.statistics:
        if args.stats_cache is None:
            ap.error("--statistics needs --stats-cache")
        _items, sha = calibrate.read_inputs()
        stats = calibrate.Stats.load(args.stats_cache, sha)
        for name in args.statistics.split(","):
            candidates.append((name, calibrate.ranges_from_stats(stats, name),
                               calibrate.means_from_stats(stats)))
    else:
        loaded = calibrate.load_ranges(args.ranges)
        candidates.append((f"{loaded.statistic} ({args.ranges.name})", loaded.ranges,
                           loaded.means))
    if args.cache_dir:
        args.cache_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    setup = Setup(args.weights, args.eval_dir, args.images_dir, args.limit)
    print(f"# revision {git_revision()}, load {loadavg()}, {len(setup.eval_images)} eval images, "
          f"f32 = C engine ({setup.detector.isa}), one pass", flush=True)
    results = []
    for name, ranges, means in candidates:
        res = evaluate(setup, ranges, name, args.cache_dir, means)
        results.append(res)
        report(res)
        print(f"# {time.time() - t0:.0f} s", flush=True)
    if args.uncorrected:
        for name, ranges, _means in candidates:
            res = evaluate(setup, ranges, f"{name}, no bias correction", args.cache_dir)
            results.append(res)
            report(res)
            print(f"# {time.time() - t0:.0f} s", flush=True)
    if len(results) > 1:
        summary(results)
    if args.sources:
        n = len(setup.eval_inputs[::args.sources])
        print(f"\n## Error sources ({candidates[0][0]}): RMS error against the float64 graph, "
              f"{n} eval images\n")
        print("| quantized | RMS box encodings | RMS logits |")
        print("|---|---:|---:|")
        for name, eb, el in error_sources(setup, candidates[0][1], candidates[0][2],
                                          args.sources):
            print(f"| {name} | {eb:.3f} | {el:.3f} |")
    if args.sqnr:
        table = sqnr_table(setup, candidates[0][1], args.sqnr, candidates[0][2])
        print(f"\n## Per-layer SQNR ({candidates[0][0]}), int8 vs float64, "
              f"{len(setup.photos)} photos + {min(args.sqnr, len(setup.eval_inputs))} eval "
              "images, worst first\n")
        print("| layer | op | out | relu6 | residual | scale | z | SQNR dB |")
        print("|---:|---|---|---|---|---:|---:|---:|")
        for row in sorted(table, key=lambda r: r["sqnr_db"])[:args.worst]:
            kind = "head" if row["head"] else ""
            print(f"| {row['layer']} | {row['op']} {kind} | {'x'.join(map(str, row['out_shape']))}"
                  f" | {'yes' if row['relu6'] else ''} | {'yes' if row['residual'] else ''}"
                  f" | {row['scale']:.4g} | {row['zero_point']} | {row['sqnr_db']:.1f} |")
        heads = [r["sqnr_db"] for r in table if r["head"]]
        body = [r["sqnr_db"] for r in table if not r["head"]]
        print(f"\nnon-head layers: median {np.median(body):.1f} dB, min {min(body):.1f}; "
              f"heads: median {np.median(heads):.1f} dB, min {min(heads):.1f}")
    return 0


def report(res: dict[str, Any]) -> None:
    print(f"\n## {res['name']}\n")
    print("| photo | f32 faces | int8 faces | matched at IoU >= 0.9 | min IoU | max score diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in res["photos"]:
        print(f"| {p['file']} | {p['f32']} | {p['int8']} | {p['matched']}/{p['f32']} "
              f"| {p['min_iou']:.3f} | {p['max_score_diff']:.3f} |")
    e = res["eval"]
    print(f"\neval set, one pass: {e['matched']}/{e['f32_faces']} f32 faces "
          f"({e['matched_pct']:.1f}%) matched by an int8 face at IoU >= 0.8 "
          f"({e['int8_faces']} int8 faces); matched pairs: mean IoU {e['mean_iou']:.3f}, "
          f"mean |score diff| {e['mean_score_diff']:.4f}; head outputs vs f32: RMS "
          f"{e['rms_boxes']:.3f} (box encodings), {e['rms_logits']:.3f} (logits)\n")
    print("| view | AP f32 | AP int8 | diff | recall f32 / int8 @0.28 "
          "| precision f32 / int8 @0.28 |")
    print("|---|---:|---:|---:|---|---|")
    for view in VIEWS:
        v = e[view.name]
        print(f"| {view.name} | {v['ap_f32']:.4f} | {v['ap_int8']:.4f} "
              f"| {v['ap_int8'] - v['ap_f32']:+.4f} "
              f"| {v['recall_f32']:.4f} / {v['recall_int8']:.4f} "
              f"| {v['precision_f32']:.4f} / {v['precision_int8']:.4f} |")


def summary(results: list[dict[str, Any]]) -> None:
    print("\n## Statistics compared\n")
    print("| statistic | matched IoU>=0.8 | mean IoU | mean score diff | RMS box / logit "
          "| AP all f32 / int8 | AP >=32px f32 / int8 | photos: matched IoU>=0.9 |")
    print("|---|---:|---:|---:|---|---|---|---|")
    for res in results:
        e = res["eval"]
        ph = sum(p["matched"] for p in res["photos"])
        n = sum(p["f32"] for p in res["photos"])
        print(f"| {res['name']} | {e['matched_pct']:.1f}% ({e['matched']}/{e['f32_faces']}) "
              f"| {e['mean_iou']:.3f} | {e['mean_score_diff']:.4f} "
              f"| {e['rms_boxes']:.3f} / {e['rms_logits']:.3f} "
              f"| {e['all']['ap_f32']:.4f} / {e['all']['ap_int8']:.4f} "
              f"| {e['ge32']['ap_f32']:.4f} / {e['ge32']['ap_int8']:.4f} | {ph}/{n} |")


if __name__ == "__main__":
    sys.exit(main())

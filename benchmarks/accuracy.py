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
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this file
# The protocol's parts live in accuracy_*.py (metrics, data, configs, eval,
# report); this script runs them, and every name is importable from here too.
from accuracy_configs import (
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    parse_config,
    parse_value,
)
from accuracy_data import (
    VIEWS,
    EvalImage,
    View,
    decode,
    default_eval_dir,
    default_weights,
    face_summary,
    load_eval_set,
)
from accuracy_eval import (
    Run,
    evaluate,
    evaluate_config,
    evaluate_view,
    run_detector,
)
from accuracy_metrics import (
    BUCKET_EDGES,
    BUCKET_LABELS,
    FALSE_POSITIVE,
    HIT,
    LARGE_FRACTION,
    LOW_MAX_FACES,
    LOW_THRESHOLD,
    MATCH_IOU,
    NOT_COUNTED,
    STAND_IN_SCORE,
    SWEEP_THRESHOLDS,
    ImageMatch,
    as_boxes,
    average_precision,
    best_f1,
    box_iou,
    box_keys,
    counts,
    f1_score,
    large_faces,
    long_sides,
    match_image,
    pr_curve,
    repeated_boxes,
    size_buckets,
    threshold_sweep,
    view_ignore,
    voc_ap,
)
from accuracy_report import (
    bucket_table,
    format_report,
    notes,
    speed_table,
    summary_table,
    sweep_table,
    to_json,
)
from runinfo import git_revision, loadavg, wait_for_quiet  # noqa: E402

__all__ = [
    # accuracy_metrics
    "BUCKET_EDGES", "BUCKET_LABELS", "FALSE_POSITIVE", "HIT", "LARGE_FRACTION", "LOW_MAX_FACES",
    "LOW_THRESHOLD", "MATCH_IOU", "NOT_COUNTED", "STAND_IN_SCORE", "SWEEP_THRESHOLDS",
    "ImageMatch", "as_boxes", "average_precision", "best_f1", "box_iou", "box_keys", "counts",
    "f1_score", "large_faces", "long_sides", "match_image", "pr_curve", "repeated_boxes",
    "size_buckets", "threshold_sweep", "view_ignore", "voc_ap",
    # accuracy_data
    "VIEWS", "EvalImage", "View", "decode", "default_eval_dir", "default_weights",
    "face_summary", "load_eval_set",
    # accuracy_configs
    "DEFAULT_CONFIG", "Config", "ConfigError", "parse_config", "parse_value",
    # accuracy_eval
    "Run", "evaluate", "evaluate_config", "evaluate_view", "run_detector",
    # accuracy_report
    "bucket_table", "format_report", "notes", "speed_table", "summary_table", "sweep_table",
    "to_json",
]

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

#!/usr/bin/env python
"""Wall time of the image resize alone and of a whole detect, on common photo
sizes and on extreme aspect ratios.

    SSDFACE_SHARED=/work/shared python benchmarks/resize_timing.py [--repeat 20]

Rows (random uint8 images, seed 0):

* ``resize``: ``ssdface._core.resize_normalize(img)`` (one thread, the best
  kernel variant), i.e. what ``ssdface.preprocess`` does;
* ``detect``: ``Detector(num_threads=2).detect(img)`` (resize on 2 threads,
  then the network and post-processing).

Common sizes are timed ``--repeat`` times, the extreme ones ``--extreme-repeat``
times (``--no-extreme`` skips them); each after one untimed run. Prints the
median and the minimum in ms. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import ssdface
from ssdface import _core

COMMON = [(1500, 1000, 3), (1000, 1500, 3), (4000, 3000, 3)]
EXTREME = [(1, 1_000_000, 3), (1_000_000, 1, 3), (1, 20_000_000), (20_000_000, 1)]


def weights_dir() -> Path:
    """``$SSDFACE_SHARED`` or ``<repo>/../shared``, as the tests look it up."""
    env = os.environ.get("SSDFACE_SHARED")
    shared = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return shared / "weights" / "ssd_mobilenetv2_face_nhwc"


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, min(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--extreme-repeat", type=int, default=3)
    ap.add_argument("--no-extreme", action="store_true")
    ap.add_argument("--no-detect", action="store_true")
    args = ap.parse_args()
    det = ssdface.Detector(weights_dir(), num_threads=2)
    print(f"ssdface from {Path(ssdface.__file__).parent}, isa {ssdface.best_isa()}")
    print(f"{'shape':>20} {'what':>7} {'median ms':>10} {'min ms':>10}")
    shapes = [(s, args.repeat) for s in COMMON]
    if not args.no_extreme:
        shapes += [(s, args.extreme_repeat) for s in EXTREME]
    for shape, repeat in shapes:
        img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        rows = [("resize", lambda img=img: _core.resize_normalize(img))]
        if not args.no_detect:
            rows.append(("detect", lambda img=img: det.detect(img)))
        for what, fn in rows:
            med, best = timed(fn, repeat)
            print(f"{'x'.join(map(str, shape)):>20} {what:>7} {med:10.2f} {best:10.2f}", flush=True)


if __name__ == "__main__":
    main()

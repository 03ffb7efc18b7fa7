#!/usr/bin/env python
"""Batch throughput: images per second of ``detect_batch`` and of ``forward``
on a batch, the per-image path against the batch path (one image per thread).

    SSDFACE_SHARED=/work/shared python benchmarks/batch_throughput.py [--rounds 7]

Rows (all in one process; every round runs each row once, in turn, and the
table gives the median over rounds, and the spread as min-max; a second
table gives the speed-ups, as the median over rounds of the ratio within a
round, and as the ratio of the medians):

* ``detect`` loop: ``[d.detect(i) for i in images]`` on a 2-thread detector,
  what ``detect_batch`` did before batches ran one image per thread (each
  image split between the 2 threads, a barrier per layer);
* ``detect_batch``: ``d.detect_batch(images)`` on the same detector;
* two 1-thread detectors, each in its own Python thread, each doing
  ``detect`` on half of the images (the reference for "one image per core");
* ``forward`` loop: ``d.forward(x[i:i+1])`` per image on the 2-thread
  detector (the old path of a batch), and ``forward(x)`` on the batch of 32.

The images are 32 copies of the shared ``group_selfie.jpg`` (1500x1000):
as uint8 arrays, then as JPEG paths (decoded each time, at the reduced scale
detect uses). ``--threads`` changes the detector's thread count (and the
number of 1-thread peers). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

import ssdface


def shared_dir() -> Path:
    """``$SSDFACE_SHARED`` or ``<repo>/../shared``, as the tests look it up."""
    env = os.environ.get("SSDFACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def in_threads(detectors, images) -> None:
    """Each detector runs detect on its share of the images, in its own thread."""
    k = len(detectors)
    errors = []

    def work(det, part):
        try:
            for im in part:
                det.detect(im)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d, images[i::k]))
               for i, d in enumerate(detectors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isa", default=None)
    ap.add_argument("--single-pass", action="store_true",
                    help="padded_pass=False: one pass per image, the work of a detect call "
                    "before the padded pass existed (default: the library's two passes)")
    args = ap.parse_args()

    shared = shared_dir()
    weights = shared / "weights" / "ssd_mobilenetv2_face_nhwc"
    path = str(shared / "images" / "group_selfie.jpg")
    T, n = args.threads, args.batch
    views = {"padded_pass": False} if args.single_pass else {}
    det = ssdface.Detector(weights, num_threads=T, isa=args.isa, **views)
    peers = [ssdface.Detector(weights, num_threads=1, isa=args.isa, **views) for _ in range(T)]
    print(f"# detector: num_threads={T}, passes per image: "
          f"{1 if args.single_pass else 2} (padded_pass={not args.single_pass})")
    photo = ssdface.image.as_image_array(path)
    arrays = [photo] * n
    paths = [path] * n
    x = np.concatenate([det.preprocess(photo)] * n)
    has_batch_path = hasattr(det._engine, "detect_views")

    # name -> (images in one run, function)
    rows = {
        f"detect loop, arrays, {T} threads": (n, lambda: [det.detect(i) for i in arrays]),
        f"detect_batch, arrays, {T} threads": (n, lambda: det.detect_batch(arrays)),
        f"{T} x 1-thread detectors, arrays": (n, lambda: in_threads(peers, arrays)),
        f"detect loop, JPEG paths, {T} threads": (n, lambda: [det.detect(p) for p in paths]),
        f"detect_batch, JPEG paths, {T} threads": (n, lambda: det.detect_batch(paths)),
        f"{T} x 1-thread detectors, JPEG paths": (n, lambda: in_threads(peers, paths)),
        f"forward loop (1 image a call), {T} threads":
            (n, lambda: [det.forward(x[i:i + 1]) for i in range(n)]),
        f"forward batch of {n}, {T} threads": (n, lambda: det.forward(x)),
    }
    for _, fn in rows.values():  # warm-up (and the lanes' first allocation)
        fn()
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (count, fn) in rows.items():
            t = time.perf_counter()
            fn()
            rates[name].append(count / (time.perf_counter() - t))

    print(f"ssdface {ssdface.__version__}, isa {det.isa}, {os.cpu_count()} CPUs, "
          f"batch path {'present' if has_batch_path else 'absent (detect_batch is the loop)'}, "
          f"{args.rounds} rounds, load average {os.getloadavg()[0]:.1f}\n")
    print("| what | images/s (median) | min - max |")
    print("| --- | ---: | ---: |")
    for name, r in rates.items():
        print(f"| {name} | {statistics.median(r):.1f} | {min(r):.1f} - {max(r):.1f} |")
    # Ratios of the rows run back to back in one round, then their median
    # over rounds: steadier than the ratio of medians on a busy machine.
    print()
    print("| batch path against | per-round ratio, median | ratio of the medians |")
    print("| --- | ---: | ---: |")
    pairs = [(f"detect_batch, {kind}, {T} threads", f"detect loop, {kind}, {T} threads")
             for kind in ("arrays", "JPEG paths")]
    pairs += [(f"detect_batch, {kind}, {T} threads", f"{T} x 1-thread detectors, {kind}")
              for kind in ("arrays", "JPEG paths")]
    pairs.append((f"forward batch of {n}, {T} threads",
                  f"forward loop (1 image a call), {T} threads"))
    for new, old in pairs:
        per_round = statistics.median(a / b for a, b in zip(rates[new], rates[old]))
        of_medians = statistics.median(rates[new]) / statistics.median(rates[old])
        print(f"| {new} / {old} | {per_round:.2f}x | {of_medians:.2f}x |")

if __name__ == "__main__":
    main()

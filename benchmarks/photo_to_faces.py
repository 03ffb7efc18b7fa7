#!/usr/bin/env python
"""A photo file on disk to faces: the user's real job, against issue 9's targets.

The photo is a 4000x3000 JPEG (quality 92) made at run time, in a temporary
folder, by resizing ``images/group_selfie.jpg`` of the shared folder (Pillow,
bicubic). Every case runs in one process with one detector
(``num_threads=1`` unless ``--threads``), at the library defaults:

* ``decode``: the full Pillow decode, ``np.asarray(Image.open(p).convert("RGB"))``,
  the baseline every other case is compared with;
* ``detect(path)``: ``detector.detect(p)`` at the defaults (2 passes: the whole
  image and the padded, mirrored view; the JPEG decoded at a reduced DCT scale);
* ``detect(path) 1 pass``: ``detect(p)`` with ``padded_pass=False``;
* ``detect(array)``: ``detect`` on the full-resolution RGB array (decoded once,
  beforehand: the decode is not timed);
* ``detect(path) mfs=M``: ``detect(p, min_face_size=M)``, only with ``--mfs M``.

Timing: one untimed run of each case, then ``--rounds`` rounds (default 15);
each round runs every case once, round-robin, starting one case later than the
round before, so that no case always follows the same one. Reported per case:
the median, the 10th-90th percentile spread, the ratio of its median to the
decode's median, and the median of the per-round ratios (case / decode of the
same round, which cancels slow phases of a shared machine). Issue 9's target:
``detect(path)`` <= 0.35x the full decode.

Faces: ``detect(path)`` and ``detect(array)`` must agree: the same number of
faces, each face of one matched (greedily, by IoU) to a face of the other at
IoU >= 0.9.

Peak memory growth per call: each case in a fresh process (this script with
``--mem-child``; ``--mem-repeats`` processes per case, default 3, median and
max reported, cases interleaved). That process forks once and measures in the
fork: a process started by ``subprocess`` or ``multiprocessing`` (spawn)
inherits this big parent's peak as its ru_maxrss, which its own peak would
never exceed. The child builds the detector, warms it up with one call of the
same kind on a 640x480 copy of the photo (so that the engine's buffers, thread
lanes and Pillow's decoder exist), reads ``getrusage(RUSAGE_SELF).ru_maxrss``,
runs the case once on the 4000x3000 photo, reads it again: the growth of the
peak resident set, in MiB. Cases: ``detect(path)`` (defaults),
``detect(path) 1 pass``, the full ``decode``, ``detect(array)`` (the array is
read from a ``.npy`` file, in one allocation, before the first reading, so it
is not counted), and ``detect(path) mfs=M`` with ``--mfs``. Target:
``detect(path)`` grows the peak by <= 32 MiB.

Run it from the checkout's root (so that it imports this tree's build)::

    PYTHONPATH=. python benchmarks/photo_to_faces.py               # plain text
    PYTHONPATH=. python benchmarks/photo_to_faces.py --markdown    # for RESULTS.md
    PYTHONPATH=. python benchmarks/photo_to_faces.py --wait-load 0.5 --rounds 30
    PYTHONPATH=. python benchmarks/photo_to_faces.py --mfs 64 --threads 2

Shared folder: ``--shared DIR``, else ``$SSDFACE_SHARED``, else ``../shared``
beside the repository. Weights: ``--weights``, else the library's own lookup
(``$SSDFACE_WEIGHTS``, the embedded blob, ...), else the shared ``.npy`` folder.
Nothing is asserted: the exit status is 0 whether the targets are met or not
(2 when the inputs are missing).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this file
# The parts: the photo and cases, timing and faces, memory, report.
from photo_cases import (
    ARRAY,
    DECODE,
    JPEG_QUALITY,
    PATH,
    PATH_1,
    PHOTO_SIZE,
    SOURCE,
    build_detector,
    case_call,
    cases_for,
    default_shared,
    make_photos,
)
from photo_memory import fork_and_measure, mem_child, mem_rows
from photo_report import code, cpu_model, report
from photo_timing import agreement, time_rounds, timing_rows
from runinfo import git_revision, loadavg, wait_for_quiet  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=default_shared(), metavar="DIR",
                    help="shared folder (default: $SSDFACE_SHARED or ../shared)")
    ap.add_argument("--weights", default=None,
                    help="weights blob or folder (default: the library's lookup, else the "
                         "shared .npy folder)")
    ap.add_argument("--threads", type=int, default=1, help="Detector num_threads (default 1)")
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    ap.add_argument("--mfs", type=float, default=None, metavar="PX",
                    help="add a detect(path, min_face_size=PX) case")
    ap.add_argument("--mem-repeats", type=int, default=3,
                    help="fresh processes per memory case (default 3)")
    ap.add_argument("--no-mem", action="store_true", help="skip the memory table")
    ap.add_argument("--precision", choices=("f32", "int8"), default="f32",
                    help="Detector(precision=...) of the timed cases (default f32; int8 runs "
                    "without the memory table: use with --no-mem)")
    ap.add_argument("--markdown", action="store_true", help="Markdown for RESULTS.md")
    ap.add_argument("--wait-load", type=float, metavar="L",
                    help="first wait until the 1-minute load average is below L")
    ap.add_argument("--wait-max", type=float, default=600.0, metavar="S",
                    help="wait at most S seconds for --wait-load (default 600)")
    ap.add_argument("--mem-child", help=argparse.SUPPRESS)
    ap.add_argument("--mem-folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.mem_repeats < 1 or args.threads < 1:
        ap.error("--rounds, --mem-repeats and --threads must be >= 1")
    if args.precision != "f32" and not args.no_mem:
        ap.error("the memory table measures f32 only: add --no-mem with --precision int8")

    if args.mem_child:
        return fork_and_measure(lambda: mem_child(args.mem_child, args.mem_folder, args.weights,
                                                  args.threads, args.mfs))

    if not (args.shared / SOURCE).is_file():
        print(f"error: no {SOURCE} in {args.shared} (set SSDFACE_SHARED or --shared)",
              file=sys.stderr)
        return 2

    from PIL import __version__ as pil_version

    import ssdface

    with tempfile.TemporaryDirectory(prefix="ssdface-photo-") as tmp:
        folder = Path(tmp)
        photo, photo_npy, _, _ = make_photos(args.shared, folder)
        detector = build_detector(args.weights, args.threads, precision=args.precision)
        one_pass = build_detector(args.weights, args.threads, padded_pass=False,
                                  precision=args.precision)
        array = np.load(photo_npy)
        cases = cases_for(args.mfs)

        decoded = detector.decode(str(photo))
        faces_path = detector.detect(str(photo))
        faces_array = detector.detect(array)
        agree = agreement(faces_path, faces_array)
        passes: dict[str, int | None] = {DECODE: None}
        for case in cases[1:]:
            d = one_pass if case == PATH_1 else detector
            case_call(case, detector, one_pass, photo, array, args.mfs)()
            passes[case] = d.last_passes

        if args.wait_load is not None:
            wait_for_quiet(args.wait_load, args.wait_max)
        load0 = loadavg()
        t0 = time.perf_counter()
        calls = {c: case_call(c, detector, one_pass, photo, array, args.mfs) for c in cases}
        times = time_rounds(calls, args.rounds)
        rows = timing_rows(times, passes)
        load_mid = loadavg()
        mem = [] if args.no_mem else mem_rows(
            [PATH, PATH_1, DECODE, ARRAY] + cases[4:], folder, args.weights, args.threads,
            args.mfs, args.mem_repeats)
        elapsed = time.perf_counter() - t0
        photo_bytes = photo.stat().st_size

    now = datetime.datetime.now(datetime.timezone.utc)
    rev = git_revision()
    command = " ".join(["python benchmarks/photo_to_faces.py",
                        *(sys.argv[1:] if argv is None else argv)])
    h, w = decoded.pixels.shape[:2]
    meta = [
        code(command, args.markdown),
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
        f"numpy {np.__version__}, Pillow {pil_version}",
        f"ssdface {ssdface.__version__}, ISA {detector.isa}" + (f", git {rev}" if rev else "")
        + f"; Detector(num_threads={args.threads}, precision={args.precision!r}), otherwise "
        "the defaults "
        f"(score_threshold {detector.score_threshold}, padded_pass {detector.padded_pass})",
        f"photo: {SOURCE.name} resized to {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, JPEG quality "
        f"{JPEG_QUALITY}, {photo_bytes / 1e6:.2f} MB; detect(path) decodes it at {w}x{h} "
        f"(1/{PHOTO_SIZE[0] // w if w else '?'} DCT scale)",
        f"load average (1, 5, 15 min) at start: {load0}; after timing: {load_mid}; "
        f"at end: {loadavg()}; timing + memory {elapsed:.1f} s",
    ]
    heading = f"Photo file to faces (issue 9), {now:%Y-%m-%d %H:%M} UTC"
    print(report(meta, rows, agree, mem, heading, args.markdown, args.rounds, args.mem_repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

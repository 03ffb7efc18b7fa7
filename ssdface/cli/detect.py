"""``ssdface detect``: the Detector from the options, and the run over the images."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from typing import Any

from .. import __version__
from ..detector import Detector
from .inputs import collect_inputs, make_tasks
from .options import UsageError, default_jobs
from .records import Progress, RecordWriter, plural
from .workers import Job, run_inline, run_parallel

# Options passed to Detector by name, once the library accepts them.
_PASSTHROUGH = {"min_face_size": "--min-face-size", "precision": "--precision"}


def _accepts(name: str) -> bool:
    params = inspect.signature(Detector).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def detector_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The Detector's keyword arguments, from the options. Options the
    library does not have yet are refused by name."""
    kwargs: dict[str, Any] = {
        "score_threshold": args.threshold, "iou_threshold": args.iou,
        "max_faces": args.max_faces, "num_threads": args.threads,
    }
    if getattr(args, "single_pass", False):
        kwargs["padded_pass"] = False
    for name, flag in _PASSTHROUGH.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if not _accepts(name):
            raise UsageError(f"this version of ssdface ({__version__}) does not support "
                             f"{flag}")
        kwargs[name] = value
    return kwargs


def run_detect(args: argparse.Namespace) -> int:
    """``ssdface detect``: one record per image, in input order; 1 when any failed."""
    start = time.perf_counter()
    # Built here even when workers do the work: bad weights or settings fail
    # once, before any worker starts; the workers rebuild it from its pickle.
    detector = Detector(args.weights, **detector_kwargs(args))
    images = faces = errors = 0
    progress = None
    try:
        outputs = [d for d in (args.draw, args.crop) if d]
        items = collect_inputs(args.paths, args.recursive,
                               (sys.stdin or ()) if "-" in args.paths else (), skip=outputs)
        tasks = make_tasks(items, args.draw, args.crop)
        inputs = frozenset(os.path.realpath(p) for p, e in items if e is None) if outputs \
            else frozenset()
        job = Job(detector, args.margin, inputs)
        # Explicit --jobs: that many processes (at most one per image). By
        # default, one per CPU but at least 16 images each: starting a worker
        # costs about 20-30 images' work, a few images run best here.
        jobs = min(args.jobs, len(tasks)) if args.jobs else min(default_jobs(),
                                                                  len(tasks) // 16)
        writer = RecordWriter(args.format, sys.stdout, sys.stderr)
        progress = Progress(len(tasks),
                             not args.quiet and (args.progress or sys.stderr.isatty()))
        records = (run_parallel(detector, job, tasks, jobs) if jobs > 1
                   else run_inline(job, tasks))
        try:
            for record in records:
                images += 1
                faces += len(record.get("faces", ()))
                errors += "error" in record
                with progress.writing(args.format == "text" and "error" in record):
                    writer.write(record)
                progress.update()
        finally:
            if hasattr(records, "close"):
                records.close()
        writer.close()
    finally:
        if progress is not None:
            progress.close()
        detector.close()
    if not args.quiet:
        elapsed = time.perf_counter() - start
        rate = images / elapsed if elapsed > 0 else 0.0
        print(f"ssdface: {plural(images, 'image')}, {plural(faces, 'face')}, "
              f"{plural(errors, 'error')} in {elapsed:.2f} s ({rate:.1f} images/s)",
              file=sys.stderr)
    return 1 if errors else 0

"""The ``ssdface`` command line tool.

    ssdface detect PATH... [-r] [--format text|json|jsonl|csv] [--jobs N] [--draw DIR]
                           [--crop DIR] ...
    ssdface pack SRC_DIR [DST]
    ssdface export --format tflite|onnx|tflite-int8|onnx-qdq OUT [--weights PATH]
    ssdface verify [BLOB]
    ssdface info [--weights PATH]

``detect`` reads files, folders and ``-`` (paths on standard input) and writes
one record per image, in input order. With ``--jobs N`` (default: one per
CPU, at least 16 images each) N processes share the images out in small
chunks, each with its own :class:`~ssdface.Detector`: N - 1 workers and this
process, which starts on the images at once while the workers start and does
its share after; the records are put back in input order. The workers are
started with ``forkserver`` where the platform has it (a clean,
single-threaded server process forks them, so they never inherit this
process's threads or locks; ssdface is imported once, in the server), else
with ``spawn``. With one job the next image is decoded on a background thread
while the current one is detected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .commands import run_export, run_info, run_pack, run_verify
from .detect import detector_kwargs, run_detect
from .inputs import IMAGE_EXTENSIONS, collect_inputs, mirror_base
from .options import DEFAULT_THREADS, FORMATS, UsageError, build_parser, default_jobs
from .records import CSV_FIELDS

__all__ = [
    "CSV_FIELDS",
    "DEFAULT_THREADS",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "UsageError",
    "collect_inputs",
    "default_jobs",
    "detector_kwargs",
    "main",
    "mirror_base",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ssdface`` command; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # detect's paths may come between options (`detect a -r b`): argparse
        # takes the first run of them, the others are left over, in order.
        if args.command == "detect" and not any(e.startswith("-") and e != "-" for e in extra):
            args.paths += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        commands = {"detect": run_detect, "pack": run_pack, "export": run_export,
                    "verify": run_verify, "info": run_info}
        return commands[args.command](args)
    except UsageError as exc:
        print(f"ssdface {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (ssdface detect ... | head): stop quietly, and
        # keep the interpreter from failing to flush stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except (OSError, ValueError, TypeError, ImportError, RuntimeError) as exc:
        print(f"ssdface: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: stop between images, no traceback
        print("ssdface: interrupted", file=sys.stderr)
        return 130

"""The ``ssdface`` command line tool.

    ssdface detect PATH... [-r] [--format text|json|jsonl|csv] [--jobs N] [--draw DIR]
                           [--crop DIR] ...
    ssdface pack SRC_DIR [DST]
    ssdface export --format tflite|onnx OUT [--weights PATH]
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

import argparse
import csv
import inspect
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Optional, TextIO

from . import __version__
from .detector import DEFAULT_SCORE_THRESHOLD, MIN_FACE_SIZE_FLOOR, Detector
from .face import Face
from .image import load_image
from .weights import (
    EXPECTED_CHECKSUM,
    build_info,
    cached_blob_path,
    find_weights,
    pack_weights,
    verify_weights,
)

# Files a folder contributes (compared case-insensitively). A file named on
# the command line or on standard input is read whatever its extension.
IMAGE_EXTENSIONS = frozenset((
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif",
    ".jfif", ".ppm", ".pgm",
))
# Extensions --draw and --crop keep; other images are written as PNG.
_WRITABLE = frozenset((".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"))

# Options passed to Detector by name, once the library accepts them.
_PASSTHROUGH = {"min_face_size": "--min-face-size", "precision": "--precision"}

FORMATS = ("text", "json", "jsonl", "csv")
DEFAULT_THREADS = 1  # detect --threads
CSV_FIELDS = ("image", "width", "height", "face", "score", "xmin", "ymin", "xmax", "ymax",
              "error")


class UsageError(Exception):
    """A bad combination of options (exit status 2)."""


def _min_face_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (MIN_FACE_SIZE_FLOOR <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be >= {MIN_FACE_SIZE_FLOOR:g} pixels, got {text}")
    return value


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0.0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def default_jobs() -> int:
    """CPUs this process may run on."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if count is not None:
        return count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


DETECT_EPILOG = """\
output formats (one record per image, in input order):
  text   one line per face: IMAGE<TAB>SCORE<TAB>XMIN<TAB>YMIN<TAB>XMAX<TAB>YMAX
         and IMAGE<TAB>no faces for an image without any; errors go to stderr
  jsonl  one JSON object per line: {"image", "width", "height", "faces": [{"box",
         "score"}]}, or {"image", "error"} for an image that could not be read
  json   the same records as one JSON list, written at the end
  csv    a header, then one row per face (image,width,height,face,score,xmin,ymin,
         xmax,ymax,error); one row with empty face columns for an image without
         faces or with an error
Boxes are in pixels of the original image (EXIF orientation applied).

--draw and --crop mirror the inputs' paths under DIR: relative to the current
folder when every input is inside it, else relative to the inputs' common
parent folder. Crops are named NAME_face0.EXT, NAME_face1.EXT, ... An input is
never overwritten.

exit status: 0 every image was read, 1 some could not be (the others were
processed), 2 usage error, 130 interrupted.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssdface", description="Fast CPU face detection (SSD MobileNetV2, WIDER FACE)."
    )
    parser.add_argument("--version", action="version", version=f"ssdface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = sub.add_parser(
        "detect",
        help="find faces in images",
        description="Find faces in images, folders of images and lists of paths.",
        epilog=DETECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("paths", nargs="+", metavar="PATH",
                        help="an image file (read whatever its extension), a folder (its "
                        "images, sorted by name), or - to read paths from standard input, "
                        "one per line")
    detect.add_argument("-r", "--recursive", action="store_true",
                        help="also read the images in the folders' subfolders")
    detect.add_argument("-f", "--format", choices=FORMATS, default="text",
                        help="output format (default: text)")
    detect.add_argument("--json", dest="format", action="store_const", const="json",
                        help=argparse.SUPPRESS)  # the old spelling of --format json
    detect.add_argument("-j", "--jobs", type=_positive_int, default=None, metavar="N",
                        help=f"processes detecting (default: one per CPU, here "
                        f"{default_jobs()}, with at least 16 images each)")
    detect.add_argument("--threads", type=_positive_int, default=DEFAULT_THREADS, metavar="N",
                        help=f"threads each worker's detector runs on (default "
                        f"{DEFAULT_THREADS})")
    detect.add_argument("--weights", metavar="PATH",
                        help="weights blob or folder of .npy files (default: $SSDFACE_WEIGHTS, "
                        "the embedded blob, then the cache)")
    detect.add_argument("--threshold", type=_threshold, default=DEFAULT_SCORE_THRESHOLD,
                        metavar="T", help=f"minimum face score, in [0, 1] (default "
                        f"{DEFAULT_SCORE_THRESHOLD})")
    detect.add_argument("--iou", type=_threshold, default=0.6, metavar="T",
                        help="NMS IoU threshold, in [0, 1] (default 0.6)")
    detect.add_argument("--max-faces", type=_positive_int, default=100, metavar="N",
                        help="at most N faces per image (default 100)")
    detect.add_argument("--min-face-size", type=_min_face_size, default=None, metavar="PX",
                        help=f"also find faces down to PX pixels (>= {MIN_FACE_SIZE_FLOOR:g}) "
                        "with magnified tiles: slower, the passes grow as 1/PX^2 (15 for a "
                        "416x312 photo at 32)")
    detect.add_argument("--single-pass", action="store_true",
                        help="one pass per image instead of two (no padded pass): about "
                        "twice as fast, misses faces that fill the frame")
    detect.add_argument("--precision", default=None, metavar="NAME",
                        help="network precision, e.g. int8 (needs a version of the library "
                        "with Detector(precision=...))")
    detect.add_argument("--draw", metavar="DIR",
                        help="write a copy of each image with its faces outlined under DIR")
    detect.add_argument("--crop", metavar="DIR",
                        help="write each face as an image of its own under DIR")
    detect.add_argument("--margin", type=_non_negative, default=0.0, metavar="M",
                        help="grow each --crop box by M times its size on every side "
                        "(default 0)")
    detect.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no summary on stderr")
    detect.add_argument("--progress", action="store_true",
                        help=argparse.SUPPRESS)  # the progress bar even when stderr is no tty

    pack = sub.add_parser(
        "pack",
        help="pack the model's .npy files into a weights blob",
        description="Check the model's .npy files and write them as one weights blob.",
    )
    pack.add_argument("src", metavar="SRC_DIR", help="folder with the model's 144 .npy files")
    pack.add_argument("dst", metavar="DST", nargs="?",
                      help=f"blob to write (default: {cached_blob_path()}, where Detector() "
                      "looks)")

    export = sub.add_parser(
        "export",
        help="write the network as a TFLite or ONNX model",
        description="Write the network, with the model's weights, as a float32 TFLite "
        "flatbuffer or an ONNX model (input normalized_input_image_tensor [1, 300, 300, 3]; "
        "outputs box encodings [1, 1917, 4] and class logits [1, 1917, 2]). Needs the "
        "export extra: pip install 'ssdface[export]'.",
    )
    export.add_argument("--format", required=True, choices=("tflite", "onnx"),
                        help="model format to write")
    export.add_argument("out", metavar="OUT", help="model file to write")
    export.add_argument("--weights", metavar="PATH",
                        help="weights blob or folder of .npy files (default: found as for "
                        "detect)")

    verify = sub.add_parser(
        "verify",
        help="check a weights blob or folder of .npy files",
        description="Check a weights blob as fully as loading it does (header, size, table, "
        "checksum, finite values) and say whether it holds the reference weights this "
        f"release expects (checksum {EXPECTED_CHECKSUM:#018x}). A folder of .npy files is "
        "checked and packed in memory, so the checksum of a download can be compared "
        "before packing it.",
        epilog="exit status: 0 valid (whatever its checksum), 1 invalid or unreadable, "
        "2 usage error.",
    )
    verify.add_argument("blob", metavar="BLOB", nargs="?",
                        help="a blob or a folder of .npy files (default: the weights "
                        "Detector() would use)")

    info = sub.add_parser(
        "info",
        help="versions, kernels, CPU features, threads, and where the weights come from",
        description="Print the versions, kernel variants, CPU features and thread defaults, "
        "and which weights a detector would use (exit status 1 when there are none or they "
        "are invalid).",
    )
    info.add_argument("--weights", metavar="PATH", help="weights blob or folder of .npy files")
    return parser


# --- Inputs -------------------------------------------------------------------------------

# One image to process: (path, error). The error is set when the path stands
# for a folder that could not be listed; the record then only reports it.
Item = tuple[str, Optional[str]]


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _folder_images(folder: str, recursive: bool, skip: set[str]) -> Iterator[Item]:
    """A folder's images, sorted by name; with ``recursive``, a folder's own
    images before those of its subfolders (in name order, depth first)."""
    if not recursive:
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it if _is_image_name(e.name) and e.is_file())
        except OSError as exc:
            yield folder, f"cannot list folder {folder}: {exc.strerror or exc}"
            return
        for name in names:
            yield os.path.join(folder, name), None
        return
    errors: list[OSError] = []
    for root, dirs, files in os.walk(folder, onerror=errors.append):
        while errors:
            exc = errors.pop()
            where = exc.filename or root
            yield where, f"cannot list folder {where}: {exc.strerror or exc}"
        # Output folders inside the tree are not inputs (a second run would
        # otherwise read the first run's drawings).
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) not in skip)
        for name in sorted(files):
            if _is_image_name(name):
                yield os.path.join(root, name), None
    while errors:  # the top folder itself could not be listed
        exc = errors.pop()
        where = exc.filename or folder
        yield where, f"cannot list folder {where}: {exc.strerror or exc}"


def collect_inputs(paths: Sequence[str], recursive: bool, stdin: Iterable[str],
                   skip: Iterable[str] = ()) -> list[Item]:
    """Expand the PATH arguments: files as given, folders to their images,
    ``-`` to the paths listed on ``stdin`` (each expanded the same way)."""
    skip_real = {os.path.realpath(p) for p in skip}
    items: list[Item] = []

    def add(path: str) -> None:
        if os.path.isdir(path):
            items.extend(_folder_images(path, recursive, skip_real))
        else:
            items.append((path, None))  # read whatever its extension; a missing file errs

    for arg in paths:
        if arg == "-":
            for line in stdin:
                line = line.rstrip("\r\n")
                if line:
                    add(line)
        else:
            add(arg)
    return items


def mirror_base(paths: Sequence[str]) -> str:
    """The folder --draw and --crop mirror the inputs from: the current
    folder when every input is inside it, else the inputs' common parent."""
    cwd = os.getcwd()
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if all(p == cwd or p.startswith(cwd.rstrip(os.sep) + os.sep) for p in parents):
        return cwd
    try:
        return os.path.commonpath(parents)
    except ValueError:  # Windows: inputs on several drives
        return ""


def _relative(path: str, base: str) -> str:
    absolute = os.path.abspath(path)
    if base:
        return os.path.relpath(absolute, base)
    drive, rest = os.path.splitdrive(absolute)  # several drives: C:\x -> C/x
    return os.path.join(drive.strip(":\\/") or "root", rest.lstrip("\\/"))


# --- Work done for one image, in a worker or in this process -------------------------------

# (path, listing error, --draw file, --crop file stem, --crop file extension); the
# last three are None without --draw / --crop. Crop i goes to STEM_faceI.EXT.
Task = tuple[str, Optional[str], Optional[str], Optional[str], Optional[str]]


def _read_error(path: str, exc: BaseException) -> str:
    message = str(exc)
    if message.startswith("cannot read image"):
        return message
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read image {path}: {exc.strerror}"
    if not isinstance(exc, (OSError, ValueError, TypeError)):  # a decoder's own error
        message = f"{type(exc).__name__}: {message}"
    return f"cannot read image {path}: {message}"


def _save(img: Any, out: str, inputs: frozenset[str]) -> None:
    if os.path.realpath(out) in inputs:
        raise OSError(f"refusing to overwrite the input {out}")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    img.save(out, quality=95)


def _draw(img: Any, faces: list[Face]) -> Any:
    from PIL import ImageDraw

    img = img.copy()
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    for face in faces:
        draw.rectangle(face.box, outline=(0, 255, 0), width=width)
        draw.text((face.box[0] + width, face.box[1] + width), f"{face.score:.2f}",
                  fill=(0, 255, 0))
    return img


class _Job:
    """What one process needs to turn tasks into records."""

    def __init__(self, detector: Detector, margin: float, inputs: frozenset[str]) -> None:
        self.detector = detector
        self.margin = margin
        self.inputs = inputs

    def read(self, task: Task) -> tuple[Task, Any, str | None]:
        """Decode the image (at the reduced scale the detector's views need)."""
        path, error = task[0], task[1]
        if error is not None:
            return task, None, error
        try:
            return task, self.detector.decode(path), None
        except ImportError:  # no Pillow: nothing can be read
            raise
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a run
            return task, None, _read_error(path, exc)

    def finish(self, task: Task, decoded: Any, error: str | None) -> dict[str, Any]:
        """Detect, write --draw and --crop files, and make the record."""
        path, _, draw_out, crop_stem, crop_ext = task
        if error is not None:
            return {"image": path, "error": error}
        faces = self.detector.detect(decoded)
        width, height = decoded.size
        record: dict[str, Any] = {
            "image": path, "width": width, "height": height,
            "faces": [{"box": [round(v, 2) for v in f.box], "score": round(f.score, 5)}
                      for f in faces],
        }
        if draw_out or (crop_stem and faces):
            try:
                self._write(path, faces, draw_out, crop_stem, crop_ext)
            except (OSError, ValueError, TypeError) as exc:
                record["error"] = f"cannot write the outputs of {path}: {exc}"
        return record

    def _write(self, path: str, faces: list[Face], draw_out: str | None,
               crop_stem: str | None, crop_ext: str | None) -> None:
        from PIL import Image

        img = Image.fromarray(load_image(path)).convert("RGB")  # full size, oriented
        if draw_out:
            _save(_draw(img, faces), draw_out, self.inputs)
        if crop_stem:
            for i, face in enumerate(faces):
                _save(face.crop(img, self.margin), f"{crop_stem}_face{i}{crop_ext}",
                      self.inputs)

    def __call__(self, task: Task) -> dict[str, Any]:
        return self.finish(*self.read(task))


_worker_job: _Job | None = None
_worker_error: BaseException | None = None


def _init_worker(pickled_detector: bytes, margin: float, inputs: frozenset[str]) -> None:
    """Pool initializer: each worker rebuilds the parent's detector. It never
    raises (a failing initializer makes a Pool start workers forever); the
    error is raised by the first task instead."""
    global _worker_job, _worker_error
    # Ctrl-C in a terminal reaches every process of the group: the parent
    # stops the workers, they must not print tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import pickle

        _worker_job = _Job(pickle.loads(pickled_detector), margin, inputs)
    except BaseException as exc:  # noqa: B036 - reported by _work
        _worker_error = exc


def _work(tasks: list[Task]) -> list[dict[str, Any]]:
    if _worker_job is None:
        raise RuntimeError(f"a worker could not build its detector: {_worker_error}")
    return [_worker_job(task) for task in tasks]


def _mp_context() -> Any:
    """forkserver where there is one (POSIX), else spawn (Windows): never a
    plain fork of this process, which may have threads (a progress bar's
    monitor, a detector's pool, a caller's) whose locks the child would
    inherit held."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # The server imports these once; each worker is a fork of it.
        ctx.set_forkserver_preload(["ssdface.cli", "PIL.Image", "PIL.JpegImagePlugin"])
        return ctx
    return multiprocessing.get_context("spawn")


def _chunksize(count: int, jobs: int) -> int:
    # Small chunks: an image is ~10-50 ms of work, a chunk's transfer well
    # under a millisecond; small chunks keep the processes evenly loaded to
    # the end and the records streaming.
    return max(1, min(4, count // (jobs * 8)))


def _run_parallel(detector: Detector, job: _Job, tasks: list[Task], jobs: int
                  ) -> Iterator[dict[str, Any]]:
    """``jobs`` processes at work: ``jobs - 1`` workers, and this process.

    The workers start on a background thread (a new interpreter importing
    numpy and ssdface takes about as long as 20-30 images), while this
    process already works through the chunks. Once they run, each worker has
    two chunks queued and this process takes the next chunk itself; when
    everything is handed out, it redoes the last chunks still queued rather
    than wait (results are the same whoever computes them, the first one in
    is kept). Records come out in input order."""
    import pickle
    import queue
    import threading

    size = _chunksize(len(tasks), jobs)
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    workers = jobs - 1
    started: dict[str, Any] = {}

    def start_pool() -> None:
        # The server and workers start with SIGINT blocked (the mask of the
        # thread that starts them): a terminal's Ctrl-C reaches the whole
        # process group, this process stops them, they print no traceback.
        try:
            if hasattr(signal, "pthread_sigmask"):
                from multiprocessing import resource_tracker

                # Started first: starting it unblocks SIGINT in this thread.
                resource_tracker.ensure_running()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            started["pool"] = _mp_context().Pool(
                workers, initializer=_init_worker,
                initargs=(pickle.dumps(detector), job.margin, job.inputs))
        except BaseException as exc:  # noqa: B036 - raised by the main thread
            started["error"] = exc

    starter = threading.Thread(target=start_pool, name="ssdface-pool-start", daemon=True)
    starter.start()
    finished: queue.SimpleQueue[tuple[int, Any, Any]] = queue.SimpleQueue()
    done: dict[int, list[dict[str, Any]]] = {}
    queued: set[int] = set()  # chunks in the pool, not back yet
    given = emitted = 0  # chunks handed out (to the pool or here), written

    def collect(block: bool) -> None:
        while True:
            try:
                index, records, error = finished.get(block=block, timeout=0.05 if block
                                                     else None)
            except queue.Empty:
                return
            if error is not None:
                raise error
            queued.discard(index)
            done.setdefault(index, records)
            block = False

    try:
        while emitted < len(chunks):
            if "error" in started:
                # No worker processes here (no semaphores, a sandbox...):
                # this process does the rest.
                print(f"ssdface: warning: cannot start worker processes "
                      f"({started.pop('error')}); going on in one process", file=sys.stderr)
            pool = started.get("pool")
            collect(block=False)
            while pool is not None and given < len(chunks) and len(queued) < 2 * workers:
                pool.apply_async(_work, (chunks[given],),
                                 callback=lambda r, i=given: finished.put((i, r, None)),
                                 error_callback=lambda e, i=given: finished.put((i, None, e)))
                queued.add(given)
                given += 1
            while emitted in done:
                yield from done.pop(emitted)
                emitted += 1
            if emitted >= len(chunks):
                break
            if given < len(chunks):  # work left to hand out: a chunk here
                done[given] = [job(task) for task in chunks[given]]
                given += 1
                continue
            todo = [i for i in queued if i not in done]
            if len(todo) > 1:
                # The workers have more than one chunk to go: this process
                # takes the last one.
                steal = max(todo)
                done[steal] = [job(task) for task in chunks[steal]]
            else:
                collect(block=True)
    finally:
        starter.join()
        pool = started.get("pool")
        if pool is not None:
            pool.terminate()  # all records are in (or we stop): drop redone chunks
            pool.join()


def _run_inline(job: _Job, tasks: list[Task], prefetch: int = 2) -> Iterator[dict[str, Any]]:
    """In this process, the next images decoded on a background thread while
    the current one is detected (Pillow and the engine both release the GIL)."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="ssdface-decode")
    try:
        todo = iter(tasks)
        pending: deque[Any] = deque(executor.submit(job.read, task)
                                    for task in islice(todo, prefetch))
        while pending:
            read = pending.popleft().result()
            task = next(todo, None)
            if task is not None:
                pending.append(executor.submit(job.read, task))
            yield job.finish(*read)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


# --- Output --------------------------------------------------------------------------------

class _Writer:
    """Writes the records in one of the formats; all but json as they come."""

    def __init__(self, fmt: str, out: TextIO, err: TextIO) -> None:
        self.fmt, self.out, self.err = fmt, out, err
        self.records: list[dict[str, Any]] = []
        self.csv: Any = None

    def write(self, record: dict[str, Any]) -> None:
        fmt, out = self.fmt, self.out
        if fmt == "json":
            self.records.append(record)
            return
        if fmt == "jsonl":
            out.write(json.dumps(record) + "\n")
        elif fmt == "csv":
            if self.csv is None:
                self.csv = csv.writer(out, lineterminator="\n")
                self.csv.writerow(CSV_FIELDS)
            head = [record["image"], record.get("width", ""), record.get("height", "")]
            faces = record.get("faces", [])
            for i, face in enumerate(faces):
                self.csv.writerow([*head, i, face["score"], *face["box"],
                                   record.get("error", "")])
            if not faces:
                self.csv.writerow([*head, "", "", "", "", "", "", record.get("error", "")])
        else:
            path = record["image"]
            for face in record.get("faces", []):
                x0, y0, x1, y1 = face["box"]
                out.write(f"{path}\t{face['score']:.3f}\t{x0:.1f}\t{y0:.1f}\t{x1:.1f}\t{y1:.1f}\n")
            if "faces" in record and not record["faces"]:
                out.write(f"{path}\tno faces\n")
            if "error" in record:
                out.flush()
                self.err.write(f"ssdface: error: {record['error']}\n")
                self.err.flush()
        out.flush()

    def close(self) -> None:
        if self.fmt == "json":
            json.dump(self.records, self.out, indent=2)
            self.out.write("\n")
        elif self.fmt == "csv" and self.csv is None:  # no image at all: the header still
            csv.writer(self.out, lineterminator="\n").writerow(CSV_FIELDS)
        self.out.flush()


class _Progress:
    """A tqdm bar on stderr, or nothing (no terminal, --quiet, no tqdm)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        self.stdout_is_terminal = sys.stdout.isatty()
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # the bar is a nicety: pip install 'ssdface[cli]'
                return
            self.bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
                            leave=False, smoothing=0.1)

    def writing(self, to_stderr: bool) -> Any:
        """Context for writing a record without garbling the bar: it is
        cleared when the record goes to the terminal (stdout is one, or an
        error line goes to stderr)."""
        if self.bar is None or not (self.stdout_is_terminal or to_stderr):
            import contextlib

            return contextlib.nullcontext()
        return self.bar.external_write_mode(file=sys.stdout)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- detect ---------------------------------------------------------------------------------

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


def _tasks(items: list[Item], draw: str | None, crop: str | None) -> list[Task]:
    if not (draw or crop):
        return [(path, error, None, None, None) for path, error in items]
    base = mirror_base([path for path, error in items if error is None] or ["."])
    if draw and os.path.realpath(draw) == os.path.realpath(base or os.sep):
        raise UsageError(f"--draw {draw} would write over the inputs (it is the folder "
                         "their paths are mirrored from): choose another folder")
    tasks: list[Task] = []
    for path, error in items:
        draw_out = crop_stem = crop_ext = None
        if error is None:
            rel = _relative(path, base)
            name = os.path.basename(rel)
            stem, ext = os.path.splitext(name)
            if ext.lower() not in _WRITABLE:  # e.g. x.heic -> x.heic.png
                stem, ext = name, ".png"
            if draw:
                draw_out = os.path.join(draw, os.path.dirname(rel), stem + ext)
            if crop:
                crop_stem, crop_ext = os.path.join(crop, os.path.dirname(rel), stem), ext
        tasks.append((path, error, draw_out, crop_stem, crop_ext))
    return tasks


def _detect(args: argparse.Namespace) -> int:
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
        tasks = _tasks(items, args.draw, args.crop)
        inputs = frozenset(os.path.realpath(p) for p, e in items if e is None) if outputs \
            else frozenset()
        job = _Job(detector, args.margin, inputs)
        # Explicit --jobs: that many processes (at most one per image). By
        # default, one per CPU but at least 16 images each: starting a worker
        # costs about 20-30 images' work, a few images run best here.
        jobs = min(args.jobs, len(tasks)) if args.jobs else min(default_jobs(),
                                                                  len(tasks) // 16)
        writer = _Writer(args.format, sys.stdout, sys.stderr)
        progress = _Progress(len(tasks),
                             not args.quiet and (args.progress or sys.stderr.isatty()))
        records = (_run_parallel(detector, job, tasks, jobs) if jobs > 1
                   else _run_inline(job, tasks))
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
        print(f"ssdface: {_plural(images, 'image')}, {_plural(faces, 'face')}, "
              f"{_plural(errors, 'error')} in {elapsed:.2f} s ({rate:.1f} images/s)",
              file=sys.stderr)
    return 1 if errors else 0


def _pack(args: argparse.Namespace) -> int:
    dst = Path(args.dst) if args.dst else cached_blob_path()
    pack_weights(args.src, dst)
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from . import export

    build = {"tflite": export.export_tflite, "onnx": export.export_onnx}[args.format]
    weights = export.load_weights(args.weights)
    dst = Path(args.out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the destination and rename, so that no half-written model is left.
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    try:
        try:
            build(weights, tmp)
        except ImportError as exc:
            raise ImportError(
                f"exporting to {args.format} needs the {exc.name or 'export'} package: "
                "pip install 'ssdface[export]'"
            ) from exc
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")
    return 0


def _build_line() -> str:
    build = build_info()
    if build.get("weights_embedded"):
        return (f"build: weights embedded from {build.get('weights_source')} "
                f"(sha256 {build.get('blob_sha256')})")
    if build.get("weights_embedded") is False:
        return "build: no weights embedded"
    return "build: no build record (a source tree that was never built?)"


def _weights_lines(info: dict[str, Any]) -> None:
    """The blob header facts and how the checksum compares, as info and verify print them."""
    for key in ("version", "tensor_count", "payload_size", "file_size", "checksum",
                "model_name"):
        value = info[key]
        print(f"{key}: {value:#018x}" if key == "checksum" else f"{key}: {value}")
    verdict = ("matches: the reference weights" if info["expected"]
               else "differs: not the reference weights this release expects")
    print(f"expected_checksum: {EXPECTED_CHECKSUM:#018x} ({verdict})")


def _verify(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"ssdface verify: error: {message}", file=sys.stderr)
        return 1

    if args.blob is not None and not os.path.exists(args.blob):
        return fail(f"{args.blob}: cannot read: no such file or folder")
    try:
        path = find_weights(args.blob)
    except FileNotFoundError as exc:  # also WeightsNotFoundError: it lists where it looked
        return fail(str(exc))
    kind = "weights folder" if path.is_dir() else "weights blob"
    try:
        info = verify_weights(path)
    except OSError as exc:
        if exc.strerror:
            return fail(f"{exc.filename or path}: cannot read: {exc.strerror}")
        return fail(f"{path}: invalid {kind}: {exc}")  # a folder lacking a .npy file
    except ValueError as exc:  # BlobError, or a bad .npy file (its message names it)
        reason = str(exc)
        if reason.startswith(f"{path}: "):
            reason = reason[len(f"{path}: "):]
        return fail(f"{path}: invalid {kind}: {reason}")
    print(f"weights: {path}")
    if info["packed"]:
        print("source: folder of .npy files, packed in memory (ssdface pack writes this blob)")
    _weights_lines(info)
    print("ok")
    return 0


def _cpu_line() -> str:
    from .isa import cpu_features

    features = cpu_features()
    if features is None:
        return "cpu_features: unknown (no /proc/cpuinfo flags on this system)"
    have = [name for name, on in features.items() if on]
    lack = [name for name, on in features.items() if not on]
    return (f"cpu_features: {' '.join(have) or 'none of interest'}"
            + (f" (lacks {' '.join(lack)})" if lack else ""))


def _info(args: argparse.Namespace) -> int:
    import platform

    import numpy

    from . import isa

    print(f"ssdface: {__version__} ({Path(__file__).resolve().parent})")
    print(f"python: {platform.python_version()} ({platform.python_implementation()}, "
          f"{sys.executable})")
    print(f"numpy: {numpy.__version__}")
    print(f"platform: {platform.system()} {platform.machine()}")
    print(_cpu_line())
    isa_error = None
    try:
        print(f"kernels: {isa.default_isa()}")  # what a new Detector() runs
    except ValueError as exc:  # a bad $SSDFACE_ISA: Detector() would refuse it too
        isa_error = f"${isa.ENV_VAR}: {exc}"
        print("kernels: none (see the error below)")
    print(f"kernels_available: {' '.join(isa.available_isas())}")
    print(f"kernels_compiled: {' '.join(isa.compiled_isas())}")
    detector_threads = inspect.signature(Detector).parameters["num_threads"].default
    print(f"num_threads_default: {detector_threads} (Detector(num_threads=...))")
    print(f"cpu_count: {os.cpu_count()} (usable by this process: {default_jobs()})")
    print(f"detect_jobs_default: {default_jobs()} (one process per usable CPU, at least "
          "16 images each)")
    print(f"detect_threads_default: {DEFAULT_THREADS}")
    print(_build_line())
    try:
        path = find_weights(args.weights)
    except FileNotFoundError:  # WeightsNotFoundError says where it looked
        print("weights: none found")
        raise
    print(f"weights: {path}")
    _weights_lines(verify_weights(path))  # an invalid blob: one error line, exit 1
    if isa_error is not None:
        raise ValueError(isa_error)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ssdface`` command; returns the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # detect's paths may come between options (`detect a -r b`): argparse
        # takes the first run of them, the others are left over, in order.
        if args.command == "detect" and not any(e.startswith("-") and e != "-" for e in extra):
            args.paths += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        commands = {"detect": _detect, "pack": _pack, "export": _export,
                    "verify": _verify, "info": _info}
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

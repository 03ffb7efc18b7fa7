"""The ``ssdface`` command's options: the argument parser, its value checks and defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..detector import DEFAULT_SCORE_THRESHOLD, MIN_FACE_SIZE_FLOOR
from ..isa import PRECISIONS
from ..weights import EXPECTED_CHECKSUM, cached_blob_path

FORMATS = ("text", "json", "jsonl", "csv")
DEFAULT_THREADS = 1  # detect --threads


class UsageError(Exception):
    """A bad combination of options (exit status 2)."""


def _value(text: str, ok: Callable[[float], bool], requirement: str,
           convert: Callable[[str], float] = float) -> Any:
    """``convert(text)`` when ``ok`` of it, else an ArgumentTypeError saying ``requirement``."""
    try:
        value = convert(text)
    except ValueError:
        noun = "an integer" if convert is int else "a number"
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if not ok(value):  # NaN fails every comparison: refused too
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
    return value


def _min_face_size(text: str) -> float:
    """--min-face-size: a finite size of at least the floor, in pixels."""
    return _value(text, lambda v: MIN_FACE_SIZE_FLOOR <= v < float("inf"),
                  f">= {MIN_FACE_SIZE_FLOOR:g} pixels")


def _threshold(text: str) -> float:
    """--threshold, --iou: a number in [0, 1]."""
    return _value(text, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")


def _positive_int(text: str) -> int:
    """--jobs, --threads, --max-faces: an integer >= 1."""
    return _value(text, lambda v: v >= 1, ">= 1", int)


def _non_negative(text: str) -> float:
    """--margin: a number >= 0."""
    return _value(text, lambda v: v >= 0.0, ">= 0")


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


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``ssdface`` command and its subcommands."""
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
    detect.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="what the network computes in: f32 (default) or int8, the "
                        "quantized network on the CPU's int8 dot products (faster where the "
                        "CPU has VNNI; faces agree with f32)")
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
        "outputs box encodings [1, 1917, 4] and class logits [1, 1917, 2]). tflite-int8 "
        "and onnx-qdq write the int8 network (precision='int8', the committed calibration) "
        "as a fully quantized TFLite model and a QDQ ONNX model, float32 input and "
        "outputs as above. Needs the export extra: pip install 'ssdface[export]'.",
    )
    export.add_argument("--format", required=True,
                        choices=("tflite", "onnx", "tflite-int8", "onnx-qdq"),
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

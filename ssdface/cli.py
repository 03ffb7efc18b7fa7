"""The ``ssdface`` command line tool.

    ssdface detect IMAGE... [--weights PATH] [--threshold T] [--json] [--draw OUT_DIR]
    ssdface pack SRC_DIR [DST]
    ssdface export --format tflite|onnx OUT [--weights PATH]
    ssdface info [--weights PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .detector import Detector, Face
from .image import decode
from .weights import (
    WeightsNotFoundError,
    build_info,
    cached_blob_path,
    find_weights,
    pack_weights,
)


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssdface", description="Fast CPU face detection (SSD MobileNetV2, WIDER FACE)."
    )
    parser.add_argument("--version", action="version", version=f"ssdface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = sub.add_parser(
        "detect",
        help="find faces in images",
        description="Find faces in images. Prints one line per face: the image, the score and "
        "the box (xmin ymin xmax ymax, pixels).",
    )
    detect.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    detect.add_argument("--weights", metavar="PATH",
                        help="weights blob or folder of .npy files (default: $SSDFACE_WEIGHTS, "
                        "the embedded blob, then the cache)")
    detect.add_argument("--threshold", type=_threshold, default=0.5, metavar="T",
                        help="minimum face score, in [0, 1] (default 0.5)")
    detect.add_argument("--iou", type=_threshold, default=0.6, metavar="T",
                        help="NMS IoU threshold, in [0, 1] (default 0.6)")
    detect.add_argument("--max-faces", type=_positive_int, default=100, metavar="N",
                        help="at most N faces per image (default 100)")
    detect.add_argument("--json", action="store_true", help="print one JSON document")
    detect.add_argument("--draw", metavar="OUT_DIR",
                        help="write a copy of each image with its faces outlined to OUT_DIR")

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

    info = sub.add_parser("info", help="say where the weights come from and what they are")
    info.add_argument("--weights", metavar="PATH", help="weights blob or folder of .npy files")
    return parser


def _draw(path: str, faces: list[Face], out_dir: Path) -> Path:
    from PIL import Image, ImageDraw

    with Image.open(path) as src:
        from PIL import ImageOps

        img = ImageOps.exif_transpose(src).convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    for face in faces:
        draw.rectangle(face.box, outline=(0, 255, 0), width=width)
        draw.text((face.box[0] + width, face.box[1] + width), f"{face.score:.2f}",
                  fill=(0, 255, 0))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / Path(path).name
    if out.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"):
        out = out.with_suffix(".png")
    img.save(out)
    return out


def _detect(args: argparse.Namespace) -> int:
    detector = Detector(args.weights, score_threshold=args.threshold,
                        iou_threshold=args.iou, max_faces=args.max_faces)
    results, failed = [], 0
    for path in args.images:
        try:
            image = decode(path)  # a JPEG at the reduced scale the network needs
            faces = detector.detect(image)
        except (OSError, ValueError, TypeError) as exc:
            print(f"ssdface: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        width, height = image.size
        results.append({
            "image": path, "width": width, "height": height,
            "faces": [{"box": [round(v, 2) for v in f.box], "score": round(f.score, 5)}
                      for f in faces],
        })
        if not args.json:
            for f in faces:
                x0, y0, x1, y1 = f.box
                print(f"{path}\t{f.score:.3f}\t{x0:.1f}\t{y0:.1f}\t{x1:.1f}\t{y1:.1f}")
        if args.draw:
            _draw(path, faces, Path(args.draw))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


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


def _info(args: argparse.Namespace) -> int:
    try:
        path = find_weights(args.weights)
    except WeightsNotFoundError:
        print(_build_line())  # then the error says where to get weights
        raise
    detector = Detector(path)
    print(f"weights: {path}")
    for key, value in detector.weights_info.items():
        print(f"{key}: {value:#018x}" if key == "checksum" else f"{key}: {value}")
    print(f"kernels: {detector._engine.kernels}")
    print(_build_line())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ssdface`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        commands = {"detect": _detect, "pack": _pack, "export": _export, "info": _info}
        return commands[args.command](args)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        print(f"ssdface: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: stop between images, no traceback
        print("ssdface: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``ssdface pack``, ``export``, ``verify`` and ``info``."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..detector import Detector
from ..weights import (
    EXPECTED_CHECKSUM,
    build_info,
    cached_blob_path,
    find_weights,
    pack_weights,
    verify_weights,
)
from .options import DEFAULT_THREADS, default_jobs


def run_pack(args: argparse.Namespace) -> int:
    """``ssdface pack``: check the .npy files and write them as one blob."""
    dst = Path(args.dst) if args.dst else cached_blob_path()
    pack_weights(args.src, dst)
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``ssdface export``: write the network as a TFLite or ONNX model, atomically
    (``tflite-int8``, ``onnx-qdq``: the int8 network of ``Detector(precision="int8")``)."""
    from .. import export

    build = {"tflite": export.export_tflite, "onnx": export.export_onnx,
             "tflite-int8": export.export_tflite_int8,
             "onnx-qdq": export.export_onnx_qdq}[args.format]
    if args.format in ("tflite-int8", "onnx-qdq"):
        weights = export.quantized_model(args.weights)  # the committed calibration
    else:
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
    print(f"int8: {'yes' if info.get('has_qu8') else 'no (float32 only: repack to run int8)'}")
    verdict = ("matches: the reference weights" if info["expected"]
               else "differs: not the reference weights this release expects")
    print(f"expected_checksum: {EXPECTED_CHECKSUM:#018x} ({verdict})")


def run_verify(args: argparse.Namespace) -> int:
    """``ssdface verify``: check a blob or .npy folder; 1 with one error line when invalid."""
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
    from ..isa import cpu_features

    features = cpu_features()
    if features is None:
        return "cpu_features: unknown (no /proc/cpuinfo flags on this system)"
    have = [name for name, on in features.items() if on]
    lack = [name for name, on in features.items() if not on]
    return (f"cpu_features: {' '.join(have) or 'none of interest'}"
            + (f" (lacks {' '.join(lack)})" if lack else ""))


def run_info(args: argparse.Namespace) -> int:
    """``ssdface info``: versions, kernels, CPU, defaults, build and weights."""
    import platform

    import numpy

    from .. import isa

    print(f"ssdface: {__version__} ({Path(__file__).resolve().parents[1]})")
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
    # The int8 mode (Detector(precision="int8"), detect --precision int8).
    precision = inspect.signature(Detector).parameters["precision"].default
    print(f"precision_default: {precision} (Detector(precision=...): {' '.join(isa.PRECISIONS)})")
    try:
        print(f"kernels_int8: {isa.default_isa('int8')}")
    except ValueError:
        print("kernels_int8: none (see the error below)")
    print(f"kernels_int8_available: {' '.join(isa.available_isas('int8'))}")
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

"""The engines the benchmarks compare, behind one small interface.

Shared by ``compare.py``, ``startup.py``, ``parity_tflite_runtime.py`` and the
pytest-benchmark files. Only numpy (and ssdface) are imported at module level:
each runtime is imported when an engine that needs it is built, so a missing
optional runtime shows up as :class:`Unavailable` with a reason.

Engines (``ENGINES``):

* ``ssdface`` -- :class:`ssdface.Detector`, its own C engine.
* ``ai-edge-litert`` -- the exported ``.tflite`` under LiteRT's ``Interpreter``
  (XNNPACK, applied by default to float models), ``num_threads=N``.
* ``tflite-runtime`` -- the same model under tflite-runtime (2.14 needs numpy < 2).
* ``onnxruntime`` -- the exported ``.onnx``, CPU provider, ``intra_op_num_threads=N``,
  ``inter_op_num_threads=1``, sequential execution.
* ``openvino`` -- the exported ``.onnx`` compiled for the CPU plugin with an f32
  inference precision hint, ``INFERENCE_NUM_THREADS=N``, latency hint.
* ``ai-edge-litert int8``, ``onnxruntime int8``, ``openvino int8`` -- the same
  runtimes, set up the same way, on the int8 exports of the model
  ``ssdface int8`` runs (:func:`ssdface.export.quantized_model`: the committed
  calibration): the fully quantized ``.tflite`` and the QDQ ``.onnx``
  (OpenVINO's f32 hint is for the float parts; its quantized convolutions run
  in int8).

Every forward function takes float32 ``[1, 300, 300, 3]`` and returns
``(box_encodings [1, 1917, 4], class_logits [1, 1917, 2])``. The end-to-end
pipeline of the other engines is :func:`pil_preprocess` + forward +
:func:`postprocess`, the same steps ``Detector.detect`` runs in C.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

INPUT_NAME = "normalized_input_image_tensor"
BOX_OUTPUT_NAME = "raw_outputs/box_encodings"
CLASS_OUTPUT_NAME = "raw_outputs/class_predictions"
INPUT_SHAPE = (1, 300, 300, 3)

SSDFACE = "ssdface"
SSDFACE_INT8 = "ssdface int8"  # Detector(precision="int8")
LITERT = "ai-edge-litert"
TFLITE_RUNTIME = "tflite-runtime"
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
LITERT_INT8 = "ai-edge-litert int8"  # the fully quantized .tflite (XNNPACK)
ONNXRUNTIME_INT8 = "onnxruntime int8"  # the QDQ .onnx
OPENVINO_INT8 = "openvino int8"  # the same QDQ .onnx
ENGINES = (SSDFACE, SSDFACE_INT8, LITERT, TFLITE_RUNTIME, ONNXRUNTIME, OPENVINO,
           LITERT_INT8, ONNXRUNTIME_INT8, OPENVINO_INT8)
# The peers: engines reading an exported float32 model file.
PEERS = (LITERT, TFLITE_RUNTIME, ONNXRUNTIME, OPENVINO)
# The peers reading the int8 exports.
INT8_PEERS = (LITERT_INT8, ONNXRUNTIME_INT8, OPENVINO_INT8)
# The file format each engine reads (ssdface reads its weights directly).
MODEL_FORMAT = {LITERT: "tflite", TFLITE_RUNTIME: "tflite", ONNXRUNTIME: "onnx",
                OPENVINO: "onnx", LITERT_INT8: "tflite-int8", ONNXRUNTIME_INT8: "onnx-qdq",
                OPENVINO_INT8: "onnx-qdq"}
# The distribution whose version is reported for each engine.
DISTRIBUTION = {SSDFACE: "ssdface", SSDFACE_INT8: "ssdface", LITERT: "ai-edge-litert",
                TFLITE_RUNTIME: "tflite-runtime", ONNXRUNTIME: "onnxruntime", OPENVINO: "openvino",
                LITERT_INT8: "ai-edge-litert", ONNXRUNTIME_INT8: "onnxruntime",
                OPENVINO_INT8: "openvino"}

Outputs = tuple[np.ndarray, np.ndarray]
Forward = Callable[[np.ndarray], Outputs]


class Unavailable(Exception):
    """An engine cannot run in this environment; the message says why."""


class Face(NamedTuple):
    """A face as ``Detector.detect`` returns it: pixel box ``(xmin, ymin, xmax, ymax)``."""

    box: tuple[float, float, float, float]
    score: float


# ---------------------------------------------------------------------------
# Shared inputs
# ---------------------------------------------------------------------------


def shared_dir() -> Path:
    """``$SSDFACE_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("SSDFACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def default_weights_dir() -> Path:
    return shared_dir() / "weights" / "ssd_mobilenetv2_face_nhwc"


def default_photo_path() -> Path:
    return shared_dir() / "images" / "group_selfie.jpg"


def preset_input(seed: int = 0) -> np.ndarray:
    """The fixed network input every forward benchmark feeds (uniform in [-1, 1])."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, INPUT_SHAPE).astype(np.float32)


def load_photo(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an ``HxWx3`` uint8 RGB array."""
    from PIL import Image

    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def export_models(weights_dir: str | os.PathLike[str], folder: str | os.PathLike[str]
                  ) -> dict[str, Path]:
    """Export the ``.npy`` weights to ``folder/ssdface.tflite`` and ``.onnx``, and
    their int8 model (the committed calibration) to ``ssdface-int8.tflite`` and
    ``ssdface-qdq.onnx``; format -> path. The int8 files are left out when the
    calibration is not of these weights.
    """
    from ssdface import export

    weights = export.load_npy_weights(weights_dir)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = {
        "tflite": export.export_tflite(weights, folder / "ssdface.tflite"),
        "onnx": export.export_onnx(weights, folder / "ssdface.onnx"),
    }
    try:
        qmodel = export.quantized_model(weights_dir)
    except ValueError:  # calibrated on other weights
        return models
    models["tflite-int8"] = export.export_tflite_int8(qmodel, folder / "ssdface-int8.tflite")
    models["onnx-qdq"] = export.export_onnx_qdq(qmodel, folder / "ssdface-qdq.onnx")
    return models


def version(engine: str) -> str:
    """The installed version of the engine's package, or ``"not installed"``."""
    try:
        return importlib.metadata.version(DISTRIBUTION[engine])
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------


def _import_problem(exc: ImportError, module: str) -> str:
    if exc.name == module:
        return "not installed"
    return f"not importable ({type(exc).__name__}: {exc})"


def interpreter_forward(interpreter_cls: type, model: Path, threads: int) -> Forward:
    it = interpreter_cls(model_path=str(model), num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    by_name = {d["name"]: d["index"] for d in it.get_output_details()}
    box_idx, cls_idx = by_name[BOX_OUTPUT_NAME], by_name[CLASS_OUTPUT_NAME]

    def run(x: np.ndarray) -> Outputs:
        it.set_tensor(inp, x)
        it.invoke()
        return it.get_tensor(box_idx), it.get_tensor(cls_idx)

    return run


def litert_forward(model: Path, threads: int) -> Forward:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise Unavailable(_import_problem(exc, "ai_edge_litert")) from None
    return interpreter_forward(Interpreter, model, threads)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 (C and Python stderr) to /dev/null for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def tflite_runtime_forward(model: Path, threads: int) -> Forward:
    """tflite-runtime's interpreter; :class:`Unavailable` when it cannot run here.

    tflite-runtime 2.14 is built against numpy 1.x: under numpy 2 it imports but
    creating an interpreter fails, so one is created (and run once) here.
    """
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError as exc:
        raise Unavailable(_import_problem(exc, "tflite_runtime")) from None
    try:
        # Under numpy 2, numpy prints a long warning to fd 2 before the error: hide it.
        with _stderr_silenced():
            run = interpreter_forward(Interpreter, model, threads)
            run(np.zeros(INPUT_SHAPE, dtype=np.float32))
    except Exception as exc:  # a numpy ABI mismatch surfaces as various errors
        while exc.__cause__ is not None or exc.__context__ is not None:  # the root cause
            exc = exc.__cause__ or exc.__context__
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Unavailable(
            f"tflite-runtime {version(TFLITE_RUNTIME)} fails under numpy {np.__version__} "
            f"({type(exc).__name__}: {first}); it needs numpy < 2"
        ) from None
    return run


def onnxruntime_forward(model: Path, threads: int) -> Forward:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise Unavailable(_import_problem(exc, "onnxruntime")) from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    names = [BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME]

    def run(x: np.ndarray) -> Outputs:
        box, cls = sess.run(names, {INPUT_NAME: x})
        return box, cls

    return run


def openvino_forward(model: Path, threads: int) -> Forward:
    try:
        import openvino as ov
    except ImportError as exc:
        raise Unavailable(_import_problem(exc, "openvino")) from None
    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    compiled = ov.Core().compile_model(str(model), "CPU", config)
    request = compiled.create_infer_request()
    box_out, cls_out = compiled.output(BOX_OUTPUT_NAME), compiled.output(CLASS_OUTPUT_NAME)

    def run(x: np.ndarray) -> Outputs:
        request.infer({0: x})
        return (request.get_tensor(box_out).data.copy(),
                request.get_tensor(cls_out).data.copy())

    return run


def ssdface_forward(weights: str | os.PathLike[str], threads: int,
                    precision: str = "f32") -> Forward:
    import ssdface

    try:
        return ssdface.Detector(weights, num_threads=threads, precision=precision).forward
    except ValueError as exc:  # int8 from a blob without the int8 section
        if precision == "f32":
            raise
        raise Unavailable(str(exc)) from None


def make_forward(engine: str, threads: int, models: dict[str, Path],
                 weights: str | os.PathLike[str]) -> Forward:
    """The forward function of ``engine`` at ``threads`` threads, or :class:`Unavailable`."""
    if engine in (SSDFACE, SSDFACE_INT8):
        return ssdface_forward(weights, threads, "int8" if engine == SSDFACE_INT8 else "f32")
    make = {LITERT: litert_forward, TFLITE_RUNTIME: tflite_runtime_forward,
            ONNXRUNTIME: onnxruntime_forward, OPENVINO: openvino_forward,
            LITERT_INT8: litert_forward, ONNXRUNTIME_INT8: onnxruntime_forward,
            OPENVINO_INT8: openvino_forward}[engine]
    if MODEL_FORMAT[engine] not in models:
        raise Unavailable("no int8 export (the committed calibration is of other weights)")
    return make(models[MODEL_FORMAT[engine]], threads)


# ---------------------------------------------------------------------------
# The end-to-end pipeline around another engine's forward pass
# ---------------------------------------------------------------------------


def pil_preprocess(image: np.ndarray) -> np.ndarray:
    """Pillow ``resize((300, 300), BILINEAR)``, then ``(v - 127.5) / 127.5``: ``[1, 300, 300, 3]``.

    The TFLite pipeline's preprocessing (Pillow rounds the resized pixels to uint8).
    """
    from PIL import Image

    resized = Image.fromarray(image).resize((300, 300), Image.Resampling.BILINEAR)
    x = np.asarray(resized, dtype=np.float32)
    x -= 127.5
    x /= 127.5
    return x[None]


def postprocess(
    box_encodings: np.ndarray,
    class_logits: np.ndarray,
    anchors: np.ndarray,
    height: int,
    width: int,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.6,
    max_faces: int = 100,
) -> list[Face]:
    """Scores, box decoding and greedy NMS of one image's head outputs, in NumPy.

    Same rules as ``Detector.detect``: score = sigmoid(face logit) >= threshold;
    Faster R-CNN decoding with scales (10, 10, 5, 5) against ``(yc, xc, h, w)``
    anchors; candidates by score, descending (ties: lower anchor first); a box is
    dropped when its IoU (normalised coordinates) with a kept one is
    > ``iou_threshold``; at most ``max_faces``; pixel boxes clipped to the image.
    """
    logits = np.asarray(class_logits, dtype=np.float32).reshape(-1, 2)
    scores = 1.0 / (1.0 + np.exp(-logits[:, 1].astype(np.float64)))
    cand = np.flatnonzero(scores >= score_threshold)
    if cand.size == 0:
        return []
    order = cand[np.argsort(-scores[cand], kind="stable")]
    t = np.asarray(box_encodings, dtype=np.float32).reshape(-1, 4)[order].astype(np.float64)
    a = np.asarray(anchors, dtype=np.float64)[order]
    yc = t[:, 0] / 10.0 * a[:, 2] + a[:, 0]
    xc = t[:, 1] / 10.0 * a[:, 3] + a[:, 1]
    half_h = 0.5 * np.exp(t[:, 2] / 5.0) * a[:, 2]
    half_w = 0.5 * np.exp(t[:, 3] / 5.0) * a[:, 3]
    boxes = np.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], axis=1)

    # IoU of every candidate pair at once, then one greedy pass over the kept ones.
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.maximum(hi - lo, 0.0), axis=2)
    union = area[:, None] + area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    overlaps = iou > iou_threshold
    alive = np.ones(order.size, dtype=bool)
    keep: list[int] = []
    for i in range(order.size):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) == max_faces:
            break
        alive &= ~overlaps[i]

    kept = boxes[keep]
    scale = np.array([height, width, height, width], dtype=np.float64)
    pix = np.clip(kept * scale, 0.0, scale)
    return [
        Face((float(p[1]), float(p[0]), float(p[3]), float(p[2])), float(scores[order[i]]))
        for p, i in zip(pix, keep)
    ]


def detect_pipeline(forward: Forward, anchors: np.ndarray, score_threshold: float = 0.5,
                    iou_threshold: float = 0.6, max_faces: int = 100
                    ) -> Callable[[np.ndarray], list[Face]]:
    """``image -> faces`` around another engine: Pillow resize, forward, NumPy postprocess."""

    def detect(image: np.ndarray) -> list[Face]:
        box, cls = forward(pil_preprocess(image))
        height, width = image.shape[:2]
        return postprocess(box[0], cls[0], anchors, height, width, score_threshold,
                           iou_threshold, max_faces)

    return detect

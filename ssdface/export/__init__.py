"""Export the SSD MobileNet V2 face network to TFLite and ONNX, without TensorFlow.

The network is not written down here: :mod:`ssdface.export.plan` reads it from
the C engine's layer table (:func:`ssdface._core.layers`, built in
``csrc/models/ssd_mobilenetv2_face.c``), and two emitters write it out:

* :func:`build_tflite` (:mod:`ssdface.export.tflite`) writes a float32 TFLite
  flatbuffer (schema version 3) using only the builtin ops ``CONV_2D``,
  ``DEPTHWISE_CONV_2D``, ``ADD``, ``RESHAPE`` and ``CONCATENATION``.
* :func:`build_onnx` (:mod:`ssdface.export.onnx`) writes the same network as an
  ONNX model (opset 17), running in NCHW inside.

The int8 network (the :class:`ssdface.quant.QuantizedModel` that
``Detector(precision="int8")`` runs, :func:`quantized_model`) is exported with
the same scales as a fully quantized TFLite model (:func:`build_tflite_int8`,
:mod:`ssdface.export.tflite_int8`) and a QDQ ONNX model (:func:`build_onnx_qdq`,
:mod:`ssdface.export.onnx_qdq`); :mod:`ssdface.export.int8` says where they
cannot follow the int8 engine's arithmetic exactly.

All these models take ``normalized_input_image_tensor`` ``[1, 300, 300, 3]`` float32
and produce box encodings ``[1, 1917, 4]`` and class logits ``[1, 1917, 2]``.

Only numpy is needed to import this package; ``flatbuffers``/``tflite`` and
``onnx`` are imported inside the functions that need them (the ``export`` extra).
"""

from __future__ import annotations

from os import PathLike

import numpy as np

from .int8 import quantized_model
from .onnx import build_onnx, export_onnx
from .onnx_qdq import build_onnx_qdq, export_onnx_qdq
from .plan import BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME, INPUT_NAME
from .tflite import build_tflite, export_tflite
from .tflite_int8 import build_tflite_int8, export_tflite_int8

__all__ = [
    "INPUT_NAME",
    "BOX_OUTPUT_NAME",
    "CLASS_OUTPUT_NAME",
    "load_npy_weights",
    "build_tflite",
    "export_tflite",
    "build_onnx",
    "export_onnx",
    "quantized_model",
    "build_tflite_int8",
    "export_tflite_int8",
    "build_onnx_qdq",
    "export_onnx_qdq",
]


def load_npy_weights(weights_dir: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read and check the model's 144 ``.npy`` files; return name -> float32 array.

    Keys are the file names without the ``.npy`` suffix.  Loading goes through
    :func:`ssdface.weights.read_npy_dir`, so every file the network reads must
    be there, hold float32 values of the expected shape and be finite; errors
    name the file.  Other ``.npy`` files in the folder are ignored.

    Raises:
        NotADirectoryError: if ``weights_dir`` is not a folder.
        FileNotFoundError: if a weight file is missing.
        ValueError: if a file is unreadable or has the wrong dtype or shape.
    """
    from ..weights import read_npy_dir, tensor_specs

    names = [name for name, _kind, _shape in tensor_specs()]
    return dict(zip(names, read_npy_dir(weights_dir)))


def load_weights(weights: str | PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The model's weights in their source layout, name -> float32 array, from
    a folder of ``.npy`` files or a blob (unpacked from the validated blob),
    found the way :class:`ssdface.Detector` finds them when ``weights`` is None.
    """
    from .._core import Engine
    from ..weights import find_weights, read_blob

    path = find_weights(weights)
    if path.is_dir():
        return load_npy_weights(path)
    return Engine(read_blob(path)).source_tensors()

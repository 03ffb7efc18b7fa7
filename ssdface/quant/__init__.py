"""The int8 mode of ssdface, on the Python side: the quantized graph, its
calibration and a NumPy simulation that the C int8 engine must match bit for
bit.

- :mod:`ssdface.quant.network`: the layer table (from ``_core.layers()``)
  and the float weights in source layout;
- :mod:`ssdface.quant.scheme`: the arithmetic contract (uint8 activations,
  int8 per-channel weights, int32 folded biases, float32 requantization) and
  :func:`quantize_model`;
- :mod:`ssdface.quant.graph`: float and int8 executors of the layer table;
- :mod:`ssdface.quant.calibrate`: activation ranges from the float model
  (``python -m ssdface.quant.calibrate``), stored in
  ``ssd_mobilenetv2_face.int8-ranges.json`` beside this file.

::

    from ssdface.quant import load_float_weights, quantize_model, run_int8
    from ssdface.quant.calibrate import load_ranges  # not imported by the package:
    model = quantize_model(load_float_weights(), load_ranges().ranges)  # it is a CLI too
    run = run_int8(model, ssdface.preprocess("photo.jpg")[0])
    run.boxes, run.logits  # [1917, 4], [1917, 2]: one row of Detector.forward
"""

from .graph import Run, run_float, run_int8
from .network import FloatWeights, Layer, load_float_weights, network_layers
from .scheme import LayerQuant, QuantizedModel, TensorQuant, quantize_model

__all__ = [
    "FloatWeights",
    "Layer",
    "LayerQuant",
    "QuantizedModel",
    "Run",
    "TensorQuant",
    "load_float_weights",
    "network_layers",
    "quantize_model",
    "run_float",
    "run_int8",
]

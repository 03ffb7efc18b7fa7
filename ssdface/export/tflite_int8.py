"""The int8 network as a fully quantized TFLite flatbuffer (the TFLite int8 spec).

From the same :class:`~ssdface.quant.QuantizedModel` the int8 engine runs
(:func:`ssdface.export.int8.int8_plan` gives every tensor's quantization):

* activations int8 with a zero point: ssdface's uint8 ``v`` with zero point
  ``z`` is the int8 ``v - 128`` with zero point ``z - 128``, same scale;
* weights int8, symmetric per output channel (zero point 0, quantized
  dimension 0 for ``CONV_2D``'s OHWI, 3 for ``DEPTHWISE_CONV_2D``'s
  ``[1, 3, 3, C]``), the bytes of ssdface's ``w_q``;
* biases int32, scale ``s_in * s_w[c]``, zero point 0, without the folded input
  zero point (``b_q + z_in * sum(w_q)``);
* ReLU6 as the fused activation; residuals as an int8 ``ADD``;
* ``QUANTIZE`` of the float32 input, ``DEQUANTIZE`` of the two outputs: the
  model's input and outputs are float32, named and shaped as in the float32
  export.

How the result differs from ssdface's int8 engine (TFLite requantizes with
fixed-point multipliers, rounds ties away from zero when quantizing the
input, and has the extra roundings of :mod:`ssdface.export.int8`): measured
in ``tests/test_export_int8.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import numpy as np

from ..quant.scheme import QuantizedModel, TensorQuant
from .int8 import Int8Plan, int8_plan
from .plan import BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME, Layer
from .tflite import Graph, Quant, Writer, add_layers, add_outputs

#: ssdface's uint8 activation ``v`` is TFLite's int8 ``v - INT8_SHIFT``.
INT8_SHIFT = 128
_INT8_SUFFIX = "/int8"


def tflite_quant(q: TensorQuant) -> Quant:
    """A uint8 activation quantization as TFLite's int8 one."""
    return (np.array([q.scale], dtype=np.float32),
            np.array([q.zero_point - INT8_SHIFT], dtype=np.int64), 0)


def _constants(ip: Int8Plan):
    """Adds a convolution's int8 weights and int32 bias (per-channel quantized)."""

    def add(g: Graph, layer: Layer) -> tuple[int, int]:
        tfl, c = g.tfl, ip.convs[layer.output]
        channels = c.weight_scale.size
        zeros = np.zeros(channels, dtype=np.int64)
        dim = 3 if layer.kind == "dw" else 0
        wi = g.tensor(layer.weight, c.weights.shape, c.weights, tfl.TensorType.INT8,
                      (c.weight_scale, zeros, dim))
        bi = g.tensor(layer.bias, c.bias.shape, c.bias, tfl.TensorType.INT32,
                      (c.bias_scale, zeros, 0))
        return wi, bi

    return add


def build_tflite_int8(model: QuantizedModel,
                      head_ranges: Mapping[str, tuple[float, float]] | None = None) -> bytes:
    """Build the quantized network as a fully quantized TFLite flatbuffer.

    Args:
        model: the quantized network, e.g. :func:`ssdface.export.quantized_model`
            ``()`` (the committed calibration on the default weights).
        head_ranges: ``{"boxes": (min, max), "classes": (min, max)}``, the
            real ranges the int8 heads cover (default
            :data:`ssdface.export.int8.HEAD_RANGES`).

    Returns:
        The serialized model (``TFL3``): input ``normalized_input_image_tensor``
        float32 ``[1, 300, 300, 3]``, outputs box encodings ``[1, 1917, 4]`` and
        class logits ``[1, 1917, 2]``, float32; int8 everywhere in between.

    Raises:
        TypeError: if ``model`` is not a :class:`~ssdface.quant.QuantizedModel`.
        ValueError: if it does not fit the network, or ``head_ranges`` is bad.
    """
    import tflite as tfl

    ip = int8_plan(model, head_ranges)
    p = ip.plan
    g = Graph(tfl, act_type=tfl.TensorType.INT8)
    op = tfl.BuiltinOperator
    # Op versions of the int8 kernels (per-channel conv and depthwise: 3).
    g.versions.update({op.CONV_2D: 3, op.DEPTHWISE_CONV_2D: 3, op.ADD: 2,
                       op.CONCATENATION: 2, op.QUANTIZE: 2, op.DEQUANTIZE: 2})
    float_in = g.tensor(p.input_name, p.input_shape, ttype=tfl.TensorType.FLOAT32)
    q_in = g.tensor(p.input_name + _INT8_SUFFIX, p.input_shape,
                    quant=tflite_quant(ip.acts[p.input_name]))
    g.op(op.QUANTIZE, [float_in], [q_in], "quantize")
    g.index[p.input_name] = q_in  # the layers read the int8 input
    add_layers(g, p, _constants(ip), lambda name: tflite_quant(ip.acts[name]))
    names = (BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME)
    q_outs = add_outputs(g, p, tuple(n + _INT8_SUFFIX for n in names))
    outputs = []
    for q_out, name in zip(q_outs, names):
        out = g.tensor(name, g.tensors[q_out][1], ttype=tfl.TensorType.FLOAT32)
        g.op(op.DEQUANTIZE, [q_out], [out], "dequantize")
        outputs.append(out)
    return Writer(tfl).model(g, [float_in], outputs)


def export_tflite_int8(model: QuantizedModel, out_path: str | PathLike[str],
                       head_ranges: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """Write :func:`build_tflite_int8` ``(model, head_ranges)`` to ``out_path``; return the path."""
    path = Path(out_path)
    path.write_bytes(build_tflite_int8(model, head_ranges))
    return path

"""The int8 network as a QDQ ONNX model (opset 17), with the scales of the int8 engine.

The float graph of :mod:`ssdface.export.onnx` (NCHW inside, ``Conv``,
``Clip(0, 6)``, ``Add``) with every activation passed through
``QuantizeLinear``/``DequantizeLinear`` (uint8, ssdface's scales and zero
points, from :func:`ssdface.export.int8.int8_plan`) and every constant stored
quantized behind a ``DequantizeLinear``:

* weights int8 OIHW, per output channel (``axis=0``), zero point 0: the
  bytes of ssdface's ``w_q``;
* biases int32, scale ``s_in * s_w[c]`` (``axis=0``), zero point 0, without
  the folded input zero point (``b_q + z_in * sum(w_q)``).

That is the pattern runtimes fuse into integer convolutions (onnxruntime's
``QLinearConv``, OpenVINO's low-precision transformations). The model's
input and outputs are the float32 ones of the float export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..quant.scheme import QuantizedModel, TensorQuant
from .int8 import Int8Plan, int8_plan
from .onnx import (
    GRAPH_NAME,
    conv_nodes,
    finish,
    input_nodes,
    oihw,
    output_nodes,
    relu6_initializers,
)
from .plan import BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME

if TYPE_CHECKING:
    import onnx

Nodes = list["onnx.NodeProto"]
Inits = list["onnx.TensorProto"]


def _qdq(src: str, out: str, q: TensorQuant) -> tuple[Nodes, Inits]:
    """``src`` (float) -> QuantizeLinear -> ``out_q`` (uint8) -> DequantizeLinear -> ``out``."""
    from onnx import helper, numpy_helper

    scale, zero = out + "_scale", out + "_zero"
    inits = [numpy_helper.from_array(np.array(q.scale, dtype=np.float32), scale),
             numpy_helper.from_array(np.array(q.zero_point, dtype=np.uint8), zero)]
    nodes = [helper.make_node("QuantizeLinear", [src, scale, zero], [out + "_q"],
                              name=out + "_quantize"),
             helper.make_node("DequantizeLinear", [out + "_q", scale, zero], [out],
                              name=out + "_dequantize")]
    return nodes, inits


def _constant(name: str, values: np.ndarray, scale: np.ndarray) -> tuple[Nodes, Inits]:
    """A per-channel (axis 0) quantized constant ``values`` dequantized into ``name``."""
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(np.ascontiguousarray(values), name + "_q"),
             numpy_helper.from_array(np.asarray(scale, dtype=np.float32), name + "_scale"),
             numpy_helper.from_array(np.zeros(scale.shape, dtype=values.dtype), name + "_zero")]
    node = helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zero"],
                            [name], name=name + "_dequantize", axis=0)
    return [node], inits


def _graph(ip: Int8Plan, names: tuple[str, str]) -> onnx.GraphProto:
    from onnx import TensorProto, helper

    p = ip.plan
    nodes, nchw = input_nodes(p)
    inits = relu6_initializers()
    q_nodes, q_inits = _qdq(nchw, nchw + "_dq", ip.acts[p.input_name])
    nodes += q_nodes
    inits += q_inits
    # ONNX-side (float, NCHW, dequantized) name of each activation of the plan.
    onnx_name = {p.input_name: nchw + "_dq"}
    for layer in p.layers:
        ins = [onnx_name[t] for t in layer.inputs]
        raw = layer.output + "_f"  # the float result before its quantization
        if layer.kind == "add":
            nodes.append(helper.make_node("Add", ins, [raw], name=layer.output))
        else:
            c = ip.convs[layer.output]
            w = oihw(c.weights, layer.kind)
            for name, values, scale in ((layer.weight, w, c.weight_scale),
                                        (layer.bias, c.bias, c.bias_scale)):
                c_nodes, c_inits = _constant(name, values, scale)
                nodes += c_nodes
                inits += c_inits
            nodes += conv_nodes(replace(layer, output=raw), ins[0], w, raw)
        q_nodes, q_inits = _qdq(raw, layer.output, ip.acts[layer.output])
        nodes += q_nodes
        inits += q_inits
        onnx_name[layer.output] = layer.output
    out_nodes, out_inits, outputs = output_nodes(p, onnx_name, names)
    inputs = [helper.make_tensor_value_info(p.input_name, TensorProto.FLOAT, list(p.input_shape))]
    return helper.make_graph(nodes + out_nodes, GRAPH_NAME + "_qdq", inputs, outputs,
                             initializer=inits + out_inits)


def build_onnx_qdq(model: QuantizedModel,
                   head_ranges: Mapping[str, tuple[float, float]] | None = None
                   ) -> onnx.ModelProto:
    """Build the quantized network as a QDQ ONNX model (opset 17), checked with
    ``onnx.checker``; input and outputs as in :func:`ssdface.export.build_onnx`.

    ``model`` and ``head_ranges`` as in :func:`ssdface.export.build_tflite_int8`:
    the two models hold the same scales.

    Raises:
        TypeError: if ``model`` is not a :class:`~ssdface.quant.QuantizedModel`.
        ValueError: if it does not fit the network, or ``head_ranges`` is bad.
    """
    ip = int8_plan(model, head_ranges)
    return finish(_graph(ip, (BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME)))


def export_onnx_qdq(model: QuantizedModel, out_path: str | PathLike[str],
                    head_ranges: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """Write :func:`build_onnx_qdq` ``(model, head_ranges)`` to ``out_path``; return the path."""
    import onnx

    path = Path(out_path)
    onnx.save_model(build_onnx_qdq(model, head_ranges), str(path))
    return path

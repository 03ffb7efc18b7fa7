"""The network as an ONNX model (opset 17).

The NHWC input is transposed to NCHW, convolutions get explicit TF ``SAME``
pads, ReLU6 is ``Clip(0, 6)`` and the head outputs are transposed back to
NHWC before being flattened.  ``onnx`` (the ``export`` extra) is imported
when a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .plan import BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME, Layer, Plan, plan

if TYPE_CHECKING:
    import onnx

_ONNX_OPSET = 17
_ONNX_IR_VERSION = 8
_GRAPH_NAME = "ssd_mobilenetv2_face"
_RELU6 = ("relu6_min", "relu6_max")


def _conv_nodes(layer: Layer, x: str, weights: Mapping[str, np.ndarray]
                ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The Conv (and Clip for ReLU6) nodes of one layer reading ``x``, and its initializers."""
    from onnx import helper, numpy_helper

    w = np.ascontiguousarray(weights[layer.weight], dtype=np.float32)
    if layer.kind == "dw":
        w_oihw = np.ascontiguousarray(w.transpose(3, 0, 1, 2))  # [1,kh,kw,C] -> [C,1,kh,kw]
        group = w.shape[3]
    else:
        w_oihw = np.ascontiguousarray(w.transpose(0, 3, 1, 2))  # OHWI -> OIHW
        group = 1
    bias = np.ascontiguousarray(weights[layer.bias], dtype=np.float32)
    inits = [numpy_helper.from_array(w_oihw, layer.weight),
             numpy_helper.from_array(bias, layer.bias)]
    out = layer.output
    conv_out = out + "_conv" if layer.relu6 else out
    top, left, bottom, right = layer.pads
    nodes = [
        helper.make_node(
            "Conv",
            [x, layer.weight, layer.bias],
            [conv_out],
            name=out,
            kernel_shape=list(w_oihw.shape[2:]),
            strides=[layer.stride, layer.stride],
            pads=[top, left, bottom, right],
            dilations=[1, 1],
            group=group,
        )
    ]
    if layer.relu6:
        nodes.append(helper.make_node("Clip", [conv_out, *_RELU6], [out], name=out + "_relu6"))
    return nodes, inits


def _graph(p: Plan, weights: Mapping[str, np.ndarray],
           names: tuple[str, str]) -> onnx.GraphProto:
    """The ONNX graph of the plan, with outputs named ``names`` (boxes, classes)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = [
        numpy_helper.from_array(np.array(v, dtype=np.float32), name)
        for v, name in zip((0.0, 6.0), _RELU6)
    ]
    nchw = "input_nchw"
    nodes.append(helper.make_node("Transpose", [p.input_name], [nchw], name="input_to_nchw",
                                  perm=[0, 3, 1, 2]))
    # ONNX-side name of each NHWC activation of the plan (which is NCHW in the graph).
    onnx_name = {p.input_name: nchw}
    for layer in p.layers:
        ins = [onnx_name[t] for t in layer.inputs]
        if layer.kind == "add":
            nodes.append(helper.make_node("Add", ins, [layer.output], name=layer.output))
        else:
            conv_nodes, conv_inits = _conv_nodes(layer, ins[0], weights)
            nodes += conv_nodes
            inits += conv_inits
        onnx_name[layer.output] = layer.output

    outputs = []
    for output, out_name in zip((p.boxes, p.classes), names):
        depth = output.depth
        shape_name = f"reshape_shape_{depth}"
        inits.append(numpy_helper.from_array(np.array([1, -1, depth], dtype=np.int64), shape_name))
        flat = []
        for head in output.heads:
            src = onnx_name[head]
            nhwc = src + "_nhwc"
            nodes.append(helper.make_node("Transpose", [src], [nhwc], name=nhwc, perm=[0, 2, 3, 1]))
            r = src + "_reshape"
            nodes.append(helper.make_node("Reshape", [nhwc, shape_name], [r], name=r))
            flat.append(r)
        nodes.append(helper.make_node("Concat", flat, [out_name], name=out_name, axis=1))
        outputs.append(
            helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, p.num_anchors, depth])
        )
    inputs = [helper.make_tensor_value_info(p.input_name, TensorProto.FLOAT, list(p.input_shape))]
    return helper.make_graph(nodes, _GRAPH_NAME, inputs, outputs, initializer=inits)


def build_onnx(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """Build the network as an ONNX model (opset 17), checked with ``onnx.checker``.

    The input is ``normalized_input_image_tensor`` NHWC ``[1, 300, 300, 3]``
    float32; the outputs are named and shaped like the TFLite ones.  Internally
    the graph runs in NCHW with ``Conv`` (``group=C`` for depthwise layers) and
    explicit, possibly asymmetric, TF ``SAME`` pads.

    Raises:
        KeyError: if a weight tensor is missing.
        ValueError: if a weight tensor has the wrong shape.
    """
    import onnx
    from onnx import helper

    p = plan(weights)
    model = helper.make_model(
        _graph(p, weights, (BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME)),
        opset_imports=[helper.make_opsetid("", _ONNX_OPSET)],
        ir_version=_ONNX_IR_VERSION,
        producer_name="ssdface",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(weights: Mapping[str, np.ndarray], out_path: str | PathLike[str]) -> Path:
    """Write :func:`build_onnx` ``(weights)`` to ``out_path``; return the path."""
    import onnx

    path = Path(out_path)
    onnx.save_model(build_onnx(weights), str(path))
    return path

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
GRAPH_NAME = "ssd_mobilenetv2_face"
RELU6 = ("relu6_min", "relu6_max")


def oihw(w: np.ndarray, kind: str) -> np.ndarray:
    """A source-layout weight tensor as ONNX's OIHW: OHWI -> OIHW, depthwise
    ``[1, kh, kw, C]`` -> ``[C, 1, kh, kw]``."""
    return np.ascontiguousarray(w.transpose((3, 0, 1, 2) if kind == "dw" else (0, 3, 1, 2)))


def conv_nodes(layer: Layer, x: str, w_oihw: np.ndarray, out: str) -> list[onnx.NodeProto]:
    """The Conv (and Clip for ReLU6) nodes of one layer reading ``x`` and the
    tensors named ``layer.weight`` (OIHW, shaped as ``w_oihw``) and ``layer.bias``,
    writing ``out``."""
    from onnx import helper

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
            group=w_oihw.shape[0] if layer.kind == "dw" else 1,
        )
    ]
    if layer.relu6:
        nodes.append(helper.make_node("Clip", [conv_out, *RELU6], [out], name=out + "_relu6"))
    return nodes


def relu6_initializers() -> list[onnx.TensorProto]:
    """The bounds ``Clip`` reads for ReLU6."""
    from onnx import numpy_helper

    return [numpy_helper.from_array(np.array(v, dtype=np.float32), name)
            for v, name in zip((0.0, 6.0), RELU6)]


def input_nodes(p: Plan) -> tuple[list[onnx.NodeProto], str]:
    """The NHWC -> NCHW transpose of the model input; the name of its output."""
    from onnx import helper

    nchw = "input_nchw"
    return [helper.make_node("Transpose", [p.input_name], [nchw], name="input_to_nchw",
                             perm=[0, 3, 1, 2])], nchw


def output_nodes(p: Plan, onnx_name: Mapping[str, str], names: tuple[str, str]) -> tuple[
        list[onnx.NodeProto], list[onnx.TensorProto], list[onnx.ValueInfoProto]]:
    """Transpose the heads (float NCHW ``onnx_name[head]``) back to NHWC, flatten and
    concatenate them into the outputs ``names`` (boxes, classes): nodes,
    initializers, output value infos."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, outputs = [], [], []
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
    return nodes, inits, outputs


def finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    """The model of ``graph`` at our opset, checked with ``onnx.checker`` (full check)."""
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _ONNX_OPSET)],
        ir_version=_ONNX_IR_VERSION,
        producer_name="ssdface",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _graph(p: Plan, weights: Mapping[str, np.ndarray],
           names: tuple[str, str]) -> onnx.GraphProto:
    """The ONNX graph of the plan, with outputs named ``names`` (boxes, classes)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, nchw = input_nodes(p)
    inits = relu6_initializers()
    # ONNX-side name of each NHWC activation of the plan (which is NCHW in the graph).
    onnx_name = {p.input_name: nchw}
    for layer in p.layers:
        ins = [onnx_name[t] for t in layer.inputs]
        if layer.kind == "add":
            nodes.append(helper.make_node("Add", ins, [layer.output], name=layer.output))
        else:
            w_oihw = oihw(np.asarray(weights[layer.weight], dtype=np.float32), layer.kind)
            bias = np.ascontiguousarray(weights[layer.bias], dtype=np.float32)
            inits += [numpy_helper.from_array(w_oihw, layer.weight),
                      numpy_helper.from_array(bias, layer.bias)]
            nodes += conv_nodes(layer, ins[0], w_oihw, layer.output)
        onnx_name[layer.output] = layer.output
    out_nodes, out_inits, outputs = output_nodes(p, onnx_name, names)
    inputs = [helper.make_tensor_value_info(p.input_name, TensorProto.FLOAT, list(p.input_shape))]
    return helper.make_graph(nodes + out_nodes, GRAPH_NAME, inputs, outputs,
                             initializer=inits + out_inits)


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
    return finish(_graph(plan(weights), weights, (BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME)))


def export_onnx(weights: Mapping[str, np.ndarray], out_path: str | PathLike[str]) -> Path:
    """Write :func:`build_onnx` ``(weights)`` to ``out_path``; return the path."""
    import onnx

    path = Path(out_path)
    onnx.save_model(build_onnx(weights), str(path))
    return path

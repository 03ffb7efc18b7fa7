"""Export the SSD MobileNet V2 face network to TFLite and ONNX, without TensorFlow.

The network (``shared/docs/MODEL.md``) is first laid out as a small list of
layers (:func:`_plan`), which two emitters then write out:

* :func:`build_tflite` writes a float32 TFLite flatbuffer (schema version 3)
  that uses only the builtin ops ``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``ADD``,
  ``RESHAPE`` and ``CONCATENATION``, all at op version 1.  Weights are stored
  exactly as in the ``.npy`` files (OHWI for convolutions, ``[1, kh, kw, C]``
  for depthwise convolutions).
* :func:`build_onnx` writes the same network as an ONNX model (opset 17): the
  NHWC input is transposed to NCHW, convolutions get explicit TF ``SAME`` pads,
  ReLU6 is ``Clip(0, 6)`` and the head outputs are transposed back to NHWC
  before being flattened.

Both models take ``normalized_input_image_tensor`` ``[1, 300, 300, 3]`` float32
and produce box encodings ``[1, 1917, 4]`` and class logits ``[1, 1917, 2]``.

Only numpy is imported at module level; ``flatbuffers``/``tflite`` and ``onnx``
are imported inside the functions that need them (the ``export`` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = [
    "INPUT_NAME",
    "BOX_OUTPUT_NAME",
    "CLASS_OUTPUT_NAME",
    "load_npy_weights",
    "build_tflite",
    "export_tflite",
    "build_onnx",
    "export_onnx",
]

INPUT_NAME = "normalized_input_image_tensor"
BOX_OUTPUT_NAME = "raw_outputs/box_encodings"
CLASS_OUTPUT_NAME = "raw_outputs/class_predictions"

_INPUT_SHAPE = (1, 300, 300, 3)
# A generated ``...StartXxxVector(builder, num_elems)`` function of the tflite package.
_StartVector = Callable[[Any, int], Any]
_NUM_ANCHORS = 1917
_ONNX_OPSET = 17
_ONNX_IR_VERSION = 8
_P = "FeatureExtractor_MobilenetV2_"

# Backbone blocks 0..16: (has expand conv, depthwise stride, residual).
_BLOCKS: tuple[tuple[bool, int, bool], ...] = (
    (False, 1, False),  # 0
    (True, 2, False),  # 1
    (True, 1, True),  # 2
    (True, 2, False),  # 3
    (True, 1, True),  # 4
    (True, 1, True),  # 5
    (True, 2, False),  # 6
    (True, 1, True),  # 7
    (True, 1, True),  # 8
    (True, 1, True),  # 9
    (True, 1, False),  # 10
    (True, 1, True),  # 11
    (True, 1, True),  # 12
    (True, 2, False),  # 13 (its expand output is feature map 0)
    (True, 1, True),  # 14
    (True, 1, True),  # 15
    (True, 1, False),  # 16
)

# Extra SSD layers k = 2..5: (channels of the 1x1 conv, channels of the 3x3 s2 conv).
_EXTRAS: tuple[tuple[int, int, int], ...] = (
    (2, 256, 512),
    (3, 128, 256),
    (4, 128, 256),
    (5, 64, 128),
)


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


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
    from .weights import read_npy_dir, tensor_specs

    names = [name for name, _kind, _shape in tensor_specs()]
    return dict(zip(names, read_npy_dir(weights_dir)))


def load_weights(weights: str | PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The model's weights in their source layout, name -> float32 array, from
    a folder of ``.npy`` files or a blob (unpacked from the validated blob),
    found the way :class:`ssdface.Detector` finds them when ``weights`` is None.
    """
    from ._core import Engine
    from .weights import find_weights, read_blob

    path = find_weights(weights)
    if path.is_dir():
        return load_npy_weights(path)
    return Engine(read_blob(path)).source_tensors()


# ---------------------------------------------------------------------------
# The network as a list of layers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One layer: a convolution (``conv``/``dw``, with bias) or a residual ``add``."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    weight: str = ""
    bias: str = ""
    stride: int = 1
    relu6: bool = False


@dataclass
class _Plan:
    """The whole network: layers in execution order and every activation's NHWC shape."""

    layers: list[_Layer]
    shapes: dict[str, tuple[int, int, int, int]]
    heads: list[tuple[str, str]]  # (box head output, class head output) per feature map


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """TF ``SAME`` padding on one axis: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


class _Planner:
    """Builds a :class:`_Plan`, checking weight shapes as it goes."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = weights
        self.layers: list[_Layer] = []
        self.shapes: dict[str, tuple[int, int, int, int]] = {INPUT_NAME: _INPUT_SHAPE}

    def _get(self, key: str) -> np.ndarray:
        try:
            return np.asarray(self.weights[key])
        except KeyError:
            raise KeyError(f"missing weight tensor {key!r}") from None

    def conv(self, x: str, name: str, stride: int, relu6: bool, depthwise: bool = False) -> str:
        """Append a conv whose files are ``name + '_weights'`` / bias; return its output name."""
        if depthwise:
            wkey, bkey = name + "_depthwise_weights", name + "_depthwise_bias"
        else:
            wkey, bkey = name + "_weights", name + "_Conv2D_bias"
        w, b = self._get(wkey), self._get(bkey)
        n, h, wd, c = self.shapes[x]
        if w.ndim != 4:
            raise ValueError(f"{wkey}: expected a 4-D tensor, got shape {w.shape}")
        cout = w.shape[3] if depthwise else w.shape[0]
        if (depthwise and (w.shape[0] != 1 or w.shape[3] != c)) or (
            not depthwise and w.shape[3] != c
        ):
            raise ValueError(f"{wkey}: shape {w.shape} does not fit an input with {c} channels")
        if b.shape != (cout,):
            raise ValueError(f"{bkey}: expected shape ({cout},), got {b.shape}")
        oh = _same_pads(h, w.shape[1], stride)[0]
        ow = _same_pads(wd, w.shape[2], stride)[0]
        out = name
        self.shapes[out] = (n, oh, ow, cout)
        kind = "dw" if depthwise else "conv"
        self.layers.append(_Layer(kind, (x,), out, wkey, bkey, stride, relu6))
        return out

    def add(self, a: str, b: str, name: str) -> str:
        """Append a residual add; return its output name."""
        if self.shapes[a] != self.shapes[b]:
            raise ValueError(
                f"residual {name}: shapes {self.shapes[a]} and {self.shapes[b]} differ"
            )
        self.shapes[name] = self.shapes[a]
        self.layers.append(_Layer("add", (a, b), name))
        return name


def _plan(weights: Mapping[str, np.ndarray]) -> _Plan:
    """Lay out the network of MODEL.md as layers, validating the weight shapes."""
    p = _Planner(weights)
    x = p.conv(INPUT_NAME, _P + "Conv", 2, True)
    features: list[str] = []
    for n, (has_expand, stride, residual) in enumerate(_BLOCKS):
        prefix = _P + ("expanded_conv" if n == 0 else f"expanded_conv_{n}")
        y = x
        if has_expand:
            y = p.conv(y, prefix + "_expand", 1, True)
            if n == 13:
                features.append(y)
        y = p.conv(y, prefix + "_depthwise", stride, True, depthwise=True)
        y = p.conv(y, prefix + "_project", 1, False)
        if residual:
            y = p.add(x, y, prefix + "_add")
        x = y
    x = p.conv(x, _P + "Conv_1", 1, True)
    features.append(x)
    for k, c1, c2 in _EXTRAS:
        x = p.conv(x, _P + f"layer_19_1_Conv2d_{k}_1x1_{c1}", 1, True)
        x = p.conv(x, _P + f"layer_19_2_Conv2d_{k}_3x3_s2_{c2}", 2, True)
        features.append(x)
    heads: list[tuple[str, str]] = []
    anchors = 0
    for i, f in enumerate(features):
        box = p.conv(f, f"BoxPredictor_{i}_BoxEncodingPredictor", 1, False)
        cls = p.conv(f, f"BoxPredictor_{i}_ClassPredictor", 1, False)
        _, h, w, cb = p.shapes[box]
        cc = p.shapes[cls][3]
        if cb % 4 or cc % 2 or cb // 4 != cc // 2:
            raise ValueError(f"head {i}: {cb} box and {cc} class channels do not match")
        anchors += h * w * (cb // 4)
        heads.append((box, cls))
    if anchors != _NUM_ANCHORS:
        raise ValueError(f"the heads produce {anchors} anchors, expected {_NUM_ANCHORS}")
    return _Plan(p.layers, p.shapes, heads)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# ---------------------------------------------------------------------------
# TFLite
# ---------------------------------------------------------------------------


def build_tflite(weights: Mapping[str, np.ndarray]) -> bytes:
    """Build the network as a float32 TFLite flatbuffer (schema version 3).

    Args:
        weights: weight name (``.npy`` file name without suffix) -> array, as
            returned by :func:`load_npy_weights`.

    Returns:
        The serialized model (file identifier ``TFL3``).  It has one input,
        ``normalized_input_image_tensor`` ``[1, 300, 300, 3]``, and two outputs,
        box encodings ``[1, 1917, 4]`` then class logits ``[1, 1917, 2]``.
    """
    import flatbuffers
    import tflite as tfl

    plan = _plan(weights)
    b = flatbuffers.Builder(1 << 20)

    # Tensors and their buffers.  Buffer 0 is the empty sentinel for activations.
    buffer_data: list[bytes | None] = [None]
    tensors: list[tuple[str, tuple[int, ...], int, int]] = []  # name, shape, type, buffer
    tensor_index: dict[str, int] = {}

    def tensor(
        name: str, shape: tuple[int, ...], ttype: int, data: np.ndarray | None = None
    ) -> int:
        buf = 0
        if data is not None:
            buffer_data.append(np.ascontiguousarray(data).tobytes())
            buf = len(buffer_data) - 1
        tensors.append((name, tuple(int(s) for s in shape), ttype, buf))
        tensor_index[name] = len(tensors) - 1
        return len(tensors) - 1

    f32, i32 = tfl.TensorType.FLOAT32, tfl.TensorType.INT32
    input_idx = tensor(INPUT_NAME, plan.shapes[INPUT_NAME], f32)

    # Operators: (opcode, inputs, outputs, options kind, options args).
    ops: list[tuple[int, list[int], list[int], str, tuple[int, ...]]] = []
    for layer in plan.layers:
        ins = [tensor_index[t] for t in layer.inputs]
        if layer.kind == "add":
            out = tensor(layer.output, plan.shapes[layer.output], f32)
            ops.append((tfl.BuiltinOperator.ADD, ins, [out], "add", ()))
            continue
        w = _f32(weights[layer.weight])
        bias = _f32(weights[layer.bias])
        wi = tensor(layer.weight, w.shape, f32, w)
        bi = tensor(layer.bias, bias.shape, f32, bias)
        out = tensor(layer.output, plan.shapes[layer.output], f32)
        act = tfl.ActivationFunctionType.RELU6 if layer.relu6 else tfl.ActivationFunctionType.NONE
        code = (
            tfl.BuiltinOperator.DEPTHWISE_CONV_2D
            if layer.kind == "dw"
            else tfl.BuiltinOperator.CONV_2D
        )
        ops.append((code, [*ins, wi, bi], [out], layer.kind, (layer.stride, act)))

    outputs = []
    for col, (depth, out_name) in enumerate(((4, BOX_OUTPUT_NAME), (2, CLASS_OUTPUT_NAME))):
        new_shape = np.array([1, -1, depth], dtype=np.int32)
        shape_idx = tensor(f"reshape_shape_{depth}", (3,), i32, new_shape)
        flat = []
        for head in plan.heads:
            src = head[col]
            _, h, w_, c = plan.shapes[src]
            r = tensor(src + "_reshape", (1, h * w_ * c // depth, depth), f32)
            ops.append(
                (
                    tfl.BuiltinOperator.RESHAPE,
                    [tensor_index[src], shape_idx],
                    [r],
                    "reshape",
                    (depth,),
                )
            )
            flat.append(r)
        # Concatenate as 3 + 3 then 2 inputs: XNNPACK delegates concatenations of
        # at most 4 or 5 inputs (depending on the runtime), not 6.
        parts = []
        for k, group in enumerate((flat[:3], flat[3:])):
            n = sum(tensors[t][1][1] for t in group)
            part = tensor(f"{out_name}_part{k}", (1, n, depth), f32)
            ops.append((tfl.BuiltinOperator.CONCATENATION, group, [part], "concat", (1,)))
            parts.append(part)
        out = tensor(out_name, (1, _NUM_ANCHORS, depth), f32)
        ops.append((tfl.BuiltinOperator.CONCATENATION, parts, [out], "concat", (1,)))
        outputs.append(out)

    # --- serialize (children before parents) -------------------------------
    def int_vector(start_fn: _StartVector, values: list[int]) -> int:
        start_fn(b, len(values))
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def offsets_vector(start_fn: _StartVector, offs: list[int]) -> int:
        start_fn(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    buffer_offs = []
    for data in buffer_data:
        data_off = None
        if data:
            # 16-byte aligned raw bytes, as the TFLite converter does.
            b.StartVector(1, len(data), 16)
            b.head -= len(data)
            b.Bytes[b.head : b.head + len(data)] = data
            data_off = b.EndVector()
        tfl.BufferStart(b)
        if data_off is not None:
            tfl.BufferAddData(b, data_off)
        buffer_offs.append(tfl.BufferEnd(b))

    tensor_offs = []
    for name, shape, ttype, buf in tensors:
        name_off = b.CreateString(name)
        shape_off = int_vector(tfl.TensorStartShapeVector, list(shape))
        tfl.TensorStart(b)
        tfl.TensorAddShape(b, shape_off)
        tfl.TensorAddType(b, ttype)
        tfl.TensorAddBuffer(b, buf)
        tfl.TensorAddName(b, name_off)
        tensor_offs.append(tfl.TensorEnd(b))

    opcodes: list[int] = []
    op_offs = []
    for code, ins, outs, kind, args in ops:
        if code not in opcodes:
            opcodes.append(code)
        opt_type, opt_off = _tflite_options(b, tfl, kind, args, int_vector)
        in_off = int_vector(tfl.OperatorStartInputsVector, ins)
        out_off = int_vector(tfl.OperatorStartOutputsVector, outs)
        tfl.OperatorStart(b)
        tfl.OperatorAddOpcodeIndex(b, opcodes.index(code))
        tfl.OperatorAddInputs(b, in_off)
        tfl.OperatorAddOutputs(b, out_off)
        tfl.OperatorAddBuiltinOptionsType(b, opt_type)
        tfl.OperatorAddBuiltinOptions(b, opt_off)
        op_offs.append(tfl.OperatorEnd(b))

    opcode_offs = []
    for code in opcodes:
        tfl.OperatorCodeStart(b)
        # All five ops have codes < 127, so both fields hold the real code.
        tfl.OperatorCodeAddDeprecatedBuiltinCode(b, code)
        tfl.OperatorCodeAddBuiltinCode(b, code)
        tfl.OperatorCodeAddVersion(b, 1)
        opcode_offs.append(tfl.OperatorCodeEnd(b))

    sg_tensors = offsets_vector(tfl.SubGraphStartTensorsVector, tensor_offs)
    sg_inputs = int_vector(tfl.SubGraphStartInputsVector, [input_idx])
    sg_outputs = int_vector(tfl.SubGraphStartOutputsVector, outputs)
    sg_ops = offsets_vector(tfl.SubGraphStartOperatorsVector, op_offs)
    sg_name = b.CreateString("main")
    tfl.SubGraphStart(b)
    tfl.SubGraphAddTensors(b, sg_tensors)
    tfl.SubGraphAddInputs(b, sg_inputs)
    tfl.SubGraphAddOutputs(b, sg_outputs)
    tfl.SubGraphAddOperators(b, sg_ops)
    tfl.SubGraphAddName(b, sg_name)
    subgraph = tfl.SubGraphEnd(b)

    opcodes_vec = offsets_vector(tfl.ModelStartOperatorCodesVector, opcode_offs)
    subgraphs_vec = offsets_vector(tfl.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = offsets_vector(tfl.ModelStartBuffersVector, buffer_offs)
    description = b.CreateString("ssdface SSD MobileNet V2 face (exported without TensorFlow)")
    tfl.ModelStart(b)
    tfl.ModelAddVersion(b, 3)
    tfl.ModelAddOperatorCodes(b, opcodes_vec)
    tfl.ModelAddSubgraphs(b, subgraphs_vec)
    tfl.ModelAddDescription(b, description)
    tfl.ModelAddBuffers(b, buffers_vec)
    model = tfl.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _tflite_options(
    b: Any,
    tfl: ModuleType,
    kind: str,
    args: tuple[int, ...],
    int_vector: Callable[[_StartVector, list[int]], int],
) -> tuple[int, int]:
    """Write the builtin options table of one operator; return (options type, offset)."""
    if kind == "conv":
        stride, act = args
        tfl.Conv2DOptionsStart(b)
        tfl.Conv2DOptionsAddPadding(b, tfl.Padding.SAME)
        tfl.Conv2DOptionsAddStrideW(b, stride)
        tfl.Conv2DOptionsAddStrideH(b, stride)
        tfl.Conv2DOptionsAddFusedActivationFunction(b, act)
        tfl.Conv2DOptionsAddDilationWFactor(b, 1)
        tfl.Conv2DOptionsAddDilationHFactor(b, 1)
        return tfl.BuiltinOptions.Conv2DOptions, tfl.Conv2DOptionsEnd(b)
    if kind == "dw":
        stride, act = args
        tfl.DepthwiseConv2DOptionsStart(b)
        tfl.DepthwiseConv2DOptionsAddPadding(b, tfl.Padding.SAME)
        tfl.DepthwiseConv2DOptionsAddStrideW(b, stride)
        tfl.DepthwiseConv2DOptionsAddStrideH(b, stride)
        tfl.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
        tfl.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
        tfl.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
        tfl.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
        return tfl.BuiltinOptions.DepthwiseConv2DOptions, tfl.DepthwiseConv2DOptionsEnd(b)
    if kind == "add":
        tfl.AddOptionsStart(b)
        tfl.AddOptionsAddFusedActivationFunction(b, tfl.ActivationFunctionType.NONE)
        return tfl.BuiltinOptions.AddOptions, tfl.AddOptionsEnd(b)
    if kind == "reshape":
        (depth,) = args
        shape_off = int_vector(tfl.ReshapeOptionsStartNewShapeVector, [1, -1, depth])
        tfl.ReshapeOptionsStart(b)
        tfl.ReshapeOptionsAddNewShape(b, shape_off)
        return tfl.BuiltinOptions.ReshapeOptions, tfl.ReshapeOptionsEnd(b)
    if kind == "concat":
        (axis,) = args
        tfl.ConcatenationOptionsStart(b)
        tfl.ConcatenationOptionsAddAxis(b, axis)
        tfl.ConcatenationOptionsAddFusedActivationFunction(b, tfl.ActivationFunctionType.NONE)
        return tfl.BuiltinOptions.ConcatenationOptions, tfl.ConcatenationOptionsEnd(b)
    raise ValueError(f"unknown operator kind {kind!r}")


def export_tflite(weights: Mapping[str, np.ndarray], out_path: str | PathLike[str]) -> Path:
    """Write :func:`build_tflite` ``(weights)`` to ``out_path``; return the path."""
    path = Path(out_path)
    path.write_bytes(build_tflite(weights))
    return path


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------


def build_onnx(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """Build the network as an ONNX model (opset 17), checked with ``onnx.checker``.

    The input is ``normalized_input_image_tensor`` NHWC ``[1, 300, 300, 3]``
    float32; the outputs are named and shaped like the TFLite ones.  Internally
    the graph runs in NCHW with ``Conv`` (``group=C`` for depthwise layers) and
    explicit, possibly asymmetric, TF ``SAME`` pads.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    plan = _plan(weights)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = [
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "relu6_min"),
        numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6_max"),
    ]
    nchw = "input_nchw"
    nodes.append(
        helper.make_node("Transpose", [INPUT_NAME], [nchw], name="input_to_nchw", perm=[0, 3, 1, 2])
    )
    # ONNX-side name of each NHWC activation of the plan (which is NCHW in the graph).
    names = {INPUT_NAME: nchw}

    for layer in plan.layers:
        ins = [names[t] for t in layer.inputs]
        out = layer.output
        if layer.kind == "add":
            nodes.append(helper.make_node("Add", ins, [out], name=out))
            names[out] = out
            continue
        w = _f32(weights[layer.weight])
        if layer.kind == "dw":
            w_oihw = np.ascontiguousarray(w.transpose(3, 0, 1, 2))  # [1,kh,kw,C] -> [C,1,kh,kw]
            group = w.shape[3]
        else:
            w_oihw = np.ascontiguousarray(w.transpose(0, 3, 1, 2))  # OHWI -> OIHW
            group = 1
        kh, kw = w_oihw.shape[2:]
        _, h, wd, _ = plan.shapes[layer.inputs[0]]
        _, top, bottom = _same_pads(h, kh, layer.stride)
        _, left, right = _same_pads(wd, kw, layer.stride)
        inits.append(numpy_helper.from_array(w_oihw, layer.weight))
        inits.append(numpy_helper.from_array(_f32(weights[layer.bias]), layer.bias))
        conv_out = out + "_conv" if layer.relu6 else out
        nodes.append(
            helper.make_node(
                "Conv",
                [ins[0], layer.weight, layer.bias],
                [conv_out],
                name=out,
                kernel_shape=[kh, kw],
                strides=[layer.stride, layer.stride],
                pads=[top, left, bottom, right],
                dilations=[1, 1],
                group=group,
            )
        )
        if layer.relu6:
            nodes.append(
                helper.make_node(
                    "Clip", [conv_out, "relu6_min", "relu6_max"], [out], name=out + "_relu6"
                )
            )
        names[out] = out

    outputs = []
    for col, (depth, out_name) in enumerate(((4, BOX_OUTPUT_NAME), (2, CLASS_OUTPUT_NAME))):
        shape_name = f"reshape_shape_{depth}"
        inits.append(numpy_helper.from_array(np.array([1, -1, depth], dtype=np.int64), shape_name))
        flat = []
        for head in plan.heads:
            src = names[head[col]]
            nhwc = src + "_nhwc"
            nodes.append(helper.make_node("Transpose", [src], [nhwc], name=nhwc, perm=[0, 2, 3, 1]))
            r = src + "_reshape"
            nodes.append(helper.make_node("Reshape", [nhwc, shape_name], [r], name=r))
            flat.append(r)
        nodes.append(helper.make_node("Concat", flat, [out_name], name=out_name, axis=1))
        outputs.append(
            helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, _NUM_ANCHORS, depth])
        )

    graph = helper.make_graph(
        nodes,
        "ssd_mobilenetv2_face",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(_INPUT_SHAPE))],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(
        graph,
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

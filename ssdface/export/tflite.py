"""The float32 TFLite flatbuffer (schema version 3) of the network.

Only the builtin ops ``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``ADD``, ``RESHAPE``
and ``CONCATENATION`` are used, all at op version 1.  Weights are stored
exactly as in the ``.npy`` files (OHWI for convolutions, ``[1, kh, kw, C]``
for depthwise convolutions). :class:`Graph`, :class:`Writer`,
:func:`add_layers` and :func:`add_outputs` also write the int8 model
(:mod:`ssdface.export.tflite_int8`): tensors with quantization parameters,
other op versions.  ``flatbuffers`` and ``tflite`` (the ``export``
extra) are imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .plan import BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME, Layer, Plan, plan

# A generated ``...StartXxxVector(builder, num_elems)`` function of the tflite package.
_StartVector = Callable[[Any, int], Any]
# A tensor's quantization: per-channel (or one) float32 scales, int64 zero points
# and the quantized dimension.
Quant = tuple[np.ndarray, np.ndarray, int]
# XNNPACK delegates concatenations of at most 4 or 5 inputs (depending on the
# runtime), so the heads are concatenated in groups of this many, then the groups.
_CONCAT_GROUP = 3
_DESCRIPTION = "ssdface SSD MobileNet V2 face (exported without TensorFlow)"


@dataclass
class Graph:
    """Tensors, their buffers and operators, in the order they are written."""

    tfl: ModuleType
    # Buffer 0 is the empty sentinel for activations.
    buffers: list[bytes | None] = field(default_factory=lambda: [None])
    tensors: list[tuple[str, tuple[int, ...], int, int]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    # (opcode, inputs, outputs, options kind, options args)
    ops: list[tuple[int, list[int], list[int], str, tuple[int, ...]]] = field(
        default_factory=list
    )
    # Tensor index -> (scales, zero points, quantized dimension), for quantized tensors.
    quants: dict[int, Quant] = field(default_factory=dict)
    # The type of the activations (None: float32), and op versions other than 1.
    act_type: int | None = None
    versions: dict[int, int] = field(default_factory=dict)

    def tensor(self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None,
               ttype: int | None = None, quant: Quant | None = None) -> int:
        """Add a tensor (an activation unless ``ttype``), with a buffer when it holds
        ``data`` and quantization parameters with ``quant``."""
        buf = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            buf = len(self.buffers) - 1
        if ttype is None:
            ttype = self.tfl.TensorType.FLOAT32 if self.act_type is None else self.act_type
        self.tensors.append((name, tuple(int(s) for s in shape), ttype, buf))
        self.index[name] = len(self.tensors) - 1
        if quant is not None:
            self.quants[len(self.tensors) - 1] = quant
        return len(self.tensors) - 1

    def op(self, code: int, ins: list[int], outs: list[int], kind: str,
           args: tuple[int, ...] = ()) -> None:
        """Add an operator."""
        self.ops.append((code, ins, outs, kind, args))


# Adds a convolution's weight and bias tensors to the graph: (weight, bias) indices.
Constants = Callable[[Graph, Layer], tuple[int, int]]


def float_constants(weights: Mapping[str, np.ndarray]) -> Constants:
    """The float32 weights and biases of the ``.npy`` files, as stored."""

    def add(g: Graph, layer: Layer) -> tuple[int, int]:
        w = np.ascontiguousarray(weights[layer.weight], dtype=np.float32)
        bias = np.ascontiguousarray(weights[layer.bias], dtype=np.float32)
        return g.tensor(layer.weight, w.shape, w), g.tensor(layer.bias, bias.shape, bias)

    return add


def add_layers(g: Graph, p: Plan, constants: Constants,
               act_quant: Callable[[str], Quant | None] = lambda name: None) -> None:
    """Add the plan's layers: convolutions with their ``constants``, residual adds;
    activation ``name`` quantized as ``act_quant(name)``."""
    tfl = g.tfl
    for layer in p.layers:
        ins = [g.index[t] for t in layer.inputs]
        consts = [] if layer.kind == "add" else list(constants(g, layer))
        out = g.tensor(layer.output, p.shapes[layer.output], quant=act_quant(layer.output))
        if layer.kind == "add":
            g.op(tfl.BuiltinOperator.ADD, ins, [out], "add")
            continue
        act = tfl.ActivationFunctionType.RELU6 if layer.relu6 else tfl.ActivationFunctionType.NONE
        code = (tfl.BuiltinOperator.DEPTHWISE_CONV_2D if layer.kind == "dw"
                else tfl.BuiltinOperator.CONV_2D)
        g.op(code, [*ins, *consts], [out], layer.kind, (layer.stride, act))


def add_outputs(g: Graph, p: Plan, names: tuple[str, str]) -> list[int]:
    """Flatten and concatenate the heads into the box and class outputs; their indices."""
    tfl = g.tfl
    outputs = []
    for output, out_name in zip((p.boxes, p.classes), names):
        depth = output.depth
        new_shape = np.array([1, -1, depth], dtype=np.int32)
        shape_idx = g.tensor(f"reshape_shape_{depth}", (3,), new_shape, tfl.TensorType.INT32)
        flat = []
        for src in output.heads:
            _, h, w, c = p.shapes[src]
            r = g.tensor(src + "_reshape", (1, h * w * c // depth, depth),
                         quant=g.quants.get(g.index[src]))
            g.op(tfl.BuiltinOperator.RESHAPE, [g.index[src], shape_idx], [r], "reshape", (depth,))
            flat.append(r)
        parts = []
        for k in range(0, len(flat), _CONCAT_GROUP):
            group = flat[k : k + _CONCAT_GROUP]
            n = sum(g.tensors[t][1][1] for t in group)
            part = g.tensor(f"{out_name}_part{k // _CONCAT_GROUP}", (1, n, depth),
                            quant=g.quants.get(group[0]))
            g.op(tfl.BuiltinOperator.CONCATENATION, group, [part], "concat", (1,))
            parts.append(part)
        out = g.tensor(out_name, (1, p.num_anchors, depth), quant=g.quants.get(parts[0]))
        g.op(tfl.BuiltinOperator.CONCATENATION, parts, [out], "concat", (1,))
        outputs.append(out)
    return outputs


class Writer:
    """Serializes a :class:`Graph` with a flatbuffers builder (children before parents)."""

    def __init__(self, tfl: ModuleType) -> None:
        import flatbuffers

        self.tfl = tfl
        self.b = flatbuffers.Builder(1 << 20)

    def ints(self, start_fn: _StartVector, values: list[int]) -> int:
        """An int32 vector."""
        start_fn(self.b, len(values))
        for v in reversed(values):
            self.b.PrependInt32(v)
        return self.b.EndVector()

    def offsets(self, start_fn: _StartVector, offs: list[int]) -> int:
        """A vector of table offsets."""
        start_fn(self.b, len(offs))
        for o in reversed(offs):
            self.b.PrependUOffsetTRelative(o)
        return self.b.EndVector()

    def buffers(self, g: Graph) -> list[int]:
        """The Buffer tables; data as 16-byte aligned raw bytes, as the TFLite converter does."""
        tfl, b = self.tfl, self.b
        offs = []
        for data in g.buffers:
            data_off = None
            if data:
                b.StartVector(1, len(data), 16)
                b.head -= len(data)
                b.Bytes[b.head : b.head + len(data)] = data
                data_off = b.EndVector()
            tfl.BufferStart(b)
            if data_off is not None:
                tfl.BufferAddData(b, data_off)
            offs.append(tfl.BufferEnd(b))
        return offs

    def quantization(self, quant: Quant) -> int:
        """A QuantizationParameters table."""
        tfl, b = self.tfl, self.b
        scales, zeros, dim = quant
        tfl.QuantizationParametersStartScaleVector(b, len(scales))
        for v in reversed(np.asarray(scales, dtype=np.float32).tolist()):
            b.PrependFloat32(v)
        scale_off = b.EndVector()
        tfl.QuantizationParametersStartZeroPointVector(b, len(zeros))
        for v in reversed(np.asarray(zeros, dtype=np.int64).tolist()):
            b.PrependInt64(v)
        zero_off = b.EndVector()
        tfl.QuantizationParametersStart(b)
        tfl.QuantizationParametersAddScale(b, scale_off)
        tfl.QuantizationParametersAddZeroPoint(b, zero_off)
        tfl.QuantizationParametersAddQuantizedDimension(b, dim)
        return tfl.QuantizationParametersEnd(b)

    def tensors(self, g: Graph) -> list[int]:
        """The Tensor tables."""
        tfl, b = self.tfl, self.b
        offs = []
        for i, (name, shape, ttype, buf) in enumerate(g.tensors):
            name_off = b.CreateString(name)
            shape_off = self.ints(tfl.TensorStartShapeVector, list(shape))
            quant_off = self.quantization(g.quants[i]) if i in g.quants else None
            tfl.TensorStart(b)
            if quant_off is not None:
                tfl.TensorAddQuantization(b, quant_off)
            tfl.TensorAddShape(b, shape_off)
            tfl.TensorAddType(b, ttype)
            tfl.TensorAddBuffer(b, buf)
            tfl.TensorAddName(b, name_off)
            offs.append(tfl.TensorEnd(b))
        return offs

    def operators(self, g: Graph) -> tuple[list[int], list[int]]:
        """The Operator tables and the OperatorCode tables they index."""
        tfl, b = self.tfl, self.b
        opcodes: list[int] = []
        op_offs = []
        for code, ins, outs, kind, args in g.ops:
            if code not in opcodes:
                opcodes.append(code)
            opt_type, opt_off = _options(self, kind, args)
            in_off = self.ints(tfl.OperatorStartInputsVector, ins)
            out_off = self.ints(tfl.OperatorStartOutputsVector, outs)
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
            # All the ops used have codes < 127, so both fields hold the real code.
            tfl.OperatorCodeAddDeprecatedBuiltinCode(b, code)
            tfl.OperatorCodeAddBuiltinCode(b, code)
            tfl.OperatorCodeAddVersion(b, g.versions.get(code, 1))
            opcode_offs.append(tfl.OperatorCodeEnd(b))
        return op_offs, opcode_offs

    def model(self, g: Graph, inputs: list[int], outputs: list[int]) -> bytes:
        """The whole Model, finished with the ``TFL3`` file identifier."""
        tfl, b = self.tfl, self.b
        buffer_offs = self.buffers(g)
        tensor_offs = self.tensors(g)
        op_offs, opcode_offs = self.operators(g)
        sg_tensors = self.offsets(tfl.SubGraphStartTensorsVector, tensor_offs)
        sg_inputs = self.ints(tfl.SubGraphStartInputsVector, inputs)
        sg_outputs = self.ints(tfl.SubGraphStartOutputsVector, outputs)
        sg_ops = self.offsets(tfl.SubGraphStartOperatorsVector, op_offs)
        sg_name = b.CreateString("main")
        tfl.SubGraphStart(b)
        tfl.SubGraphAddTensors(b, sg_tensors)
        tfl.SubGraphAddInputs(b, sg_inputs)
        tfl.SubGraphAddOutputs(b, sg_outputs)
        tfl.SubGraphAddOperators(b, sg_ops)
        tfl.SubGraphAddName(b, sg_name)
        subgraph = tfl.SubGraphEnd(b)
        opcodes_vec = self.offsets(tfl.ModelStartOperatorCodesVector, opcode_offs)
        subgraphs_vec = self.offsets(tfl.ModelStartSubgraphsVector, [subgraph])
        buffers_vec = self.offsets(tfl.ModelStartBuffersVector, buffer_offs)
        description = b.CreateString(_DESCRIPTION)
        tfl.ModelStart(b)
        tfl.ModelAddVersion(b, 3)
        tfl.ModelAddOperatorCodes(b, opcodes_vec)
        tfl.ModelAddSubgraphs(b, subgraphs_vec)
        tfl.ModelAddDescription(b, description)
        tfl.ModelAddBuffers(b, buffers_vec)
        b.Finish(tfl.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _options(w: Writer, kind: str, args: tuple[int, ...]) -> tuple[int, int]:
    """Write the builtin options table of one operator; return (options type, offset)."""
    tfl, b = w.tfl, w.b
    if kind in ("conv", "dw"):
        stride, act = args
        table = "Conv2DOptions" if kind == "conv" else "DepthwiseConv2DOptions"
        getattr(tfl, table + "Start")(b)
        getattr(tfl, table + "AddPadding")(b, tfl.Padding.SAME)
        getattr(tfl, table + "AddStrideW")(b, stride)
        getattr(tfl, table + "AddStrideH")(b, stride)
        if kind == "dw":
            tfl.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
        getattr(tfl, table + "AddFusedActivationFunction")(b, act)
        getattr(tfl, table + "AddDilationWFactor")(b, 1)
        getattr(tfl, table + "AddDilationHFactor")(b, 1)
        return getattr(tfl.BuiltinOptions, table), getattr(tfl, table + "End")(b)
    if kind == "add":
        tfl.AddOptionsStart(b)
        tfl.AddOptionsAddFusedActivationFunction(b, tfl.ActivationFunctionType.NONE)
        return tfl.BuiltinOptions.AddOptions, tfl.AddOptionsEnd(b)
    if kind == "reshape":
        (depth,) = args
        shape_off = w.ints(tfl.ReshapeOptionsStartNewShapeVector, [1, -1, depth])
        tfl.ReshapeOptionsStart(b)
        tfl.ReshapeOptionsAddNewShape(b, shape_off)
        return tfl.BuiltinOptions.ReshapeOptions, tfl.ReshapeOptionsEnd(b)
    if kind == "concat":
        (axis,) = args
        tfl.ConcatenationOptionsStart(b)
        tfl.ConcatenationOptionsAddAxis(b, axis)
        tfl.ConcatenationOptionsAddFusedActivationFunction(b, tfl.ActivationFunctionType.NONE)
        return tfl.BuiltinOptions.ConcatenationOptions, tfl.ConcatenationOptionsEnd(b)
    if kind == "quantize":
        tfl.QuantizeOptionsStart(b)
        return tfl.BuiltinOptions.QuantizeOptions, tfl.QuantizeOptionsEnd(b)
    if kind == "dequantize":
        tfl.DequantizeOptionsStart(b)
        return tfl.BuiltinOptions.DequantizeOptions, tfl.DequantizeOptionsEnd(b)
    raise ValueError(f"unknown operator kind {kind!r}")


def build_tflite(weights: Mapping[str, np.ndarray]) -> bytes:
    """Build the network as a float32 TFLite flatbuffer (schema version 3).

    Args:
        weights: weight name (``.npy`` file name without suffix) -> array, as
            returned by :func:`ssdface.export.load_npy_weights`.

    Returns:
        The serialized model (file identifier ``TFL3``).  It has one input,
        ``normalized_input_image_tensor`` ``[1, 300, 300, 3]``, and two outputs,
        box encodings ``[1, 1917, 4]`` then class logits ``[1, 1917, 2]``.

    Raises:
        KeyError: if a weight tensor is missing.
        ValueError: if a weight tensor has the wrong shape.
    """
    import tflite as tfl

    p = plan(weights)
    g = Graph(tfl)
    input_idx = g.tensor(p.input_name, p.input_shape)
    add_layers(g, p, float_constants(weights))
    outputs = add_outputs(g, p, (BOX_OUTPUT_NAME, CLASS_OUTPUT_NAME))
    return Writer(tfl).model(g, [input_idx], outputs)


def export_tflite(weights: Mapping[str, np.ndarray], out_path: str | PathLike[str]) -> Path:
    """Write :func:`build_tflite` ``(weights)`` to ``out_path``; return the path."""
    path = Path(out_path)
    path.write_bytes(build_tflite(weights))
    return path

"""NumPy executors of the layer table: float (for calibration) and int8
(the simulation the C int8 engine is tested against, bit for bit).

Both run the layers of ``_core.layers()`` in order on one image (``[300,
300, 3]`` float32 normalised input, as :func:`ssdface.preprocess` makes it
without its batch axis) and write each head's NHWC output at its
``dst_offset`` in the flat box or class output, giving ``(boxes [1917, 4],
logits [1917, 2])`` in the layout of one row of ``Detector.forward``.

Convolutions (TF SAME padding: ``pad`` top/left from the table, the
bottom/right taps past the input read padding too):

- conv1x1: one matrix product ``[H*W, I] @ [I, O]``;
- conv3x3: im2col (the 9 taps ``(dy, dx)`` row-major, each with its ``I``
  channels: the order of the OHWI weights) then one product;
- depthwise3x3: the sum over the 9 taps of the shifted input times the
  tap's per-channel weights.

Float mode (:func:`run_float`): ``float32`` or ``float64`` throughout,
padding reads 0; ``y = conv + b (+ residual)``, ReLU6 clamps to [0, 6].
Every layer's output is returned (calibration reads them).

Int8 mode (:func:`run_int8`): the arithmetic of :mod:`ssdface.quant.scheme`
exactly. Padding reads the byte ``z_in``. The integer sums are computed as
float64 matrix products of the integer values, which is exact: every
product and every partial sum is an integer of magnitude below
``255 * 127 * K + |b_q| < 2**31 < 2**53`` (the scheme checks that bound), so
no rounding happens in any summation order. The sums are then taken to
int64, ``b_q`` is added, and the result is checked to fit int32 before the
float32 output stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _core
from .network import (
    BOXES_BUFFER,
    CLASSES_BUFFER,
    NETWORK_INPUT,
    FloatWeights,
    Layer,
    network_layers,
    output_sizes,
    split_outputs,
)
from .scheme import INT32_MAX, LayerQuant, QuantizedModel, quantize_input


def _padded(x: np.ndarray, layer: Layer, value: float | int) -> np.ndarray:
    """``x`` [H, W, C] with the TF SAME border ``layer``'s taps read, filled with ``value``."""
    h, w, _c = x.shape
    oh, ow, _ = layer.out_shape
    k, s = layer.kernel, layer.stride
    top, left = layer.pad
    bottom = max((oh - 1) * s + k - h - top, 0)
    right = max((ow - 1) * s + k - w - left, 0)
    if top == left == bottom == right == 0:
        return x
    return np.pad(x, ((top, bottom), (left, right), (0, 0)), constant_values=value)


def _taps(xp: np.ndarray, layer: Layer) -> list[np.ndarray]:
    """The 9 (or 1) shifted views ``[oh, ow, C]`` of the padded input, row-major by (dy, dx)."""
    oh, ow, _ = layer.out_shape
    k, s = layer.kernel, layer.stride
    return [xp[dy:dy + (oh - 1) * s + 1:s, dx:dx + (ow - 1) * s + 1:s, :]
            for dy in range(k) for dx in range(k)]


def conv_sum(x: np.ndarray, w: np.ndarray, layer: Layer, pad_value: float | int,
             dtype: type = np.float64) -> np.ndarray:
    """``sum_k x[k] * w[k, c]`` of one layer, ``[oh, ow, O]`` in ``dtype``.

    ``x`` [H, W, I] (any numeric dtype, converted to ``dtype``), ``w`` in
    source layout. With ``dtype`` float64 and integer inputs the result is
    exact (see the module docstring).
    """
    oh, ow, oc = layer.out_shape
    xp = _padded(x, layer, pad_value)
    if layer.op == "depthwise3x3":
        wt = np.asarray(w, dtype=dtype).reshape(-1, oc)  # [9, C], taps row-major
        acc = np.zeros((oh, ow, oc), dtype=dtype)
        for t, view in enumerate(_taps(xp, layer)):
            acc += view.astype(dtype) * wt[t]
        return acc
    wm = np.asarray(w, dtype=dtype).reshape(oc, -1)  # [O, kh*kw*I]
    if layer.op == "conv1x1":
        cols = _taps(xp, layer)[0].astype(dtype).reshape(oh * ow, -1)
    else:
        cols = np.stack(_taps(xp, layer), axis=2).astype(dtype).reshape(oh * ow, -1)
    return (cols @ wm.T).reshape(oh, ow, oc)


def _check_input(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.shape != tuple(_core.INPUT_SHAPE) or x.dtype != np.float32:
        raise ValueError(f"x must be float32 {list(_core.INPUT_SHAPE)} (or with a batch axis "
                         f"of 1), got {x.dtype} {list(x.shape)}")
    return x


@dataclass
class Run:
    """One image through the network: ``outputs[i]`` is layer i's output
    (float for a float run; uint8, or float32 for a head, for an int8 run),
    ``input`` the network input as the run saw it; ``boxes`` ``[1917, 4]``
    and ``logits`` ``[1917, classes]`` float32."""

    input: np.ndarray
    outputs: list[np.ndarray]
    boxes: np.ndarray
    logits: np.ndarray


def assemble(layers: Sequence[Layer], outputs: Sequence[np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(boxes, logits) from every layer's output: each head's output, flattened
    in NHWC order, at its ``dst_offset`` of the flat box or class output."""
    sizes = output_sizes(list(layers))
    flat = {buf: np.empty(n, dtype=np.float32) for buf, n in sizes.items()}
    for layer, y in zip(layers, outputs):
        if layer.head:
            v = np.asarray(y, dtype=np.float32).reshape(-1)
            flat[layer.dst][layer.dst_offset:layer.dst_offset + v.size] = v
    return split_outputs(flat)


def float_layer(layer: Layer, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                residual: np.ndarray | None = None, dtype: type = np.float32) -> np.ndarray:
    """One layer in float: ``conv(x, w) + b (+ residual)``, ReLU6 if the layer has it."""
    y = conv_sum(x, w, layer, 0.0, dtype)
    y += np.asarray(b, dtype=dtype)
    if residual is not None:
        y += residual
    if layer.relu6:
        np.clip(y, 0.0, 6.0, out=y)
    return y


def run_float(weights: FloatWeights | dict[str, np.ndarray], x: np.ndarray,
              dtype: type = np.float32, layers: Sequence[Layer] | None = None) -> Run:
    """The float network on one normalised input ``x`` (float32 ``[300, 300, 3]``),
    computed in ``dtype`` (float32 or float64)."""
    layers = network_layers() if layers is None else list(layers)
    x = _check_input(x).astype(dtype)
    outputs: list[np.ndarray] = []

    def value(i: int) -> np.ndarray:
        return x if i == NETWORK_INPUT else outputs[i]

    for layer in layers:
        res = value(layer.adds) if layer.residual else None
        outputs.append(float_layer(layer, value(layer.reads), weights[layer.weight],
                                   weights[layer.bias], res, dtype))
    boxes, logits = assemble(layers, outputs)
    return Run(x, outputs, boxes, logits)


def accumulate(lq: LayerQuant, layer: Layer, q_in: np.ndarray) -> np.ndarray:
    """The int32 accumulator ``b_q + sum_k q_in[k] * w_q[k, c]`` (padding reads ``z_in``)."""
    if q_in.dtype != np.uint8:
        raise TypeError(f"layer {layer.index}: input must be uint8, got {q_in.dtype}")
    sums = conv_sum(q_in, lq.w_q, layer, lq.z_in, np.float64)
    acc = sums.astype(np.int64) + lq.b_q.astype(np.int64)
    if np.abs(acc).max(initial=0) > INT32_MAX:
        raise OverflowError(f"layer {layer.index}: accumulator outside int32")
    return acc.astype(np.int32)


def requantize(lq: LayerQuant, acc: np.ndarray, residual: np.ndarray | None = None
               ) -> np.ndarray:
    """The float32 output stage of a non-head layer: int32 ``acc`` -> uint8."""
    f = acc.astype(np.float32) * lq.multiplier
    if lq.residual >= 0:
        if residual is None or residual.dtype != np.uint8:
            raise ValueError(f"layer {lq.index}: needs its uint8 residual input")
        r = (residual.astype(np.int32) - lq.z_r).astype(np.float32)
        f = f + r * lq.m_r
    f = np.minimum(np.maximum(f, np.float32(lq.lo - lq.z_out)), np.float32(lq.hi - lq.z_out))
    return (np.rint(f).astype(np.int32) + lq.z_out).astype(np.uint8)


def head_output(lq: LayerQuant, acc: np.ndarray) -> np.ndarray:
    """A head's float32 output ``f32(acc) * d``."""
    return acc.astype(np.float32) * lq.multiplier


def int8_layer(lq: LayerQuant, layer: Layer, q_in: np.ndarray,
               residual: np.ndarray | None = None) -> np.ndarray:
    """One quantized layer: uint8 output, or float32 for a head."""
    acc = accumulate(lq, layer, q_in)
    return head_output(lq, acc) if lq.head else requantize(lq, acc, residual)


def run_int8(model: QuantizedModel, x: np.ndarray,
             layers: Sequence[Layer] | None = None) -> Run:
    """The int8 simulation on one normalised input ``x`` (float32 ``[300, 300, 3]``):
    ``x`` is quantized by :func:`~ssdface.quant.scheme.quantize_input`, then
    every layer runs as :func:`int8_layer`."""
    layers = network_layers() if layers is None else list(layers)
    if len(layers) != len(model.layers):
        raise ValueError("the model and the layer table differ in length")
    q = quantize_input(_check_input(x))
    outputs: list[np.ndarray] = []

    def value(i: int) -> np.ndarray:
        return q if i == NETWORK_INPUT else outputs[i]

    for layer, lq in zip(layers, model.layers):
        res = value(layer.adds) if layer.residual else None
        outputs.append(int8_layer(lq, layer, value(layer.reads), res))
    boxes, logits = assemble(layers, outputs)
    return Run(q, outputs, boxes, logits)


def dequantized(model: QuantizedModel, run: Run, index: int) -> np.ndarray:
    """Layer ``index``'s output of an int8 run in real units (float64)."""
    y = run.outputs[index]
    if model.layers[index].head:
        return y.astype(np.float64)
    return model.activations[index].dequantize(y)


__all__ = [
    "BOXES_BUFFER",
    "CLASSES_BUFFER",
    "Run",
    "accumulate",
    "assemble",
    "conv_sum",
    "dequantized",
    "float_layer",
    "head_output",
    "int8_layer",
    "requantize",
    "run_float",
    "run_int8",
]

"""The int8 quantization scheme: the arithmetic contract the C int8 engine
must reproduce bit for bit.

Notation: ``rint`` is round half to even (``np.rint``); ``f32(v)`` is the
float32 nearest to ``v`` (round to nearest even); "in float32" means every
operation on float32 operands, each result rounded to float32 (no fused
multiply-add, no wider intermediate).

Activations
    Every layer output except the heads, and the network input, is a uint8
    tensor ``q`` with one scale ``s > 0`` and zero point ``z`` in [0, 255]
    for the whole tensor: ``real = s * (q - z)``. Scales are Python floats
    (float64); only the multipliers below are float32.

    - Network input: ``s = 1/127.5``, ``z = 128``;
      ``q = clamp(rint(f32(x * 127.5f)) + 128, 0, 255)`` with ``x`` the
      float32 normalised input (``pixel/127.5 - 1``) and the product taken
      in float32 (:func:`quantize_input`).
    - ReLU6 layer output: ``z = 0``, ``s = min(6, max) / 255`` with ``max``
      the calibrated maximum (float64 arithmetic).
    - Other (linear) layer output (project layers, with or without a
      residual): ``min = min(min, 0)``, ``max = max(max, 0)`` of the
      calibrated range, ``s = (max - min) / 255``,
      ``z = clamp(rint(-min / s), 0, 255)`` (float64 arithmetic).
    - Degenerate calibration (ReLU6 ``max <= 0``, linear ``max == min``):
      ``s = 1/255``, ``z = 0`` (the tensor is all zeros, any scale holds it).

Weights (int8, symmetric, per output channel ``c``)
    ``s_w[c] = max|w_c| / 127`` (``max|w_c|`` of the float32 weights, taken
    to float64, divided in float64); a channel that is all zero gets
    ``s_w[c] = 1`` (its ``w_q`` are then 0). ``w_q = clamp(rint(w / s_w[c]),
    -127, 127)`` (float64 division). ``w_q`` keeps the source layout: conv
    OHWI ``[O, kh, kw, I]`` (channel = axis 0), depthwise ``[1, 3, 3, C]``
    (channel = axis 3).

Bias (int32, zero point of the input folded in)
    ``b_q[c] = rint(b[c] / (s_in * s_w[c])) - z_in * sum_k w_q[k, c]``, the
    product ``s_in * s_w[c]`` and the division in float64, the rest in int64,
    then checked to fit int32. ``k`` runs over every tap and input channel of
    the output channel: 9 x in_c for conv3x3, in_c for conv1x1, 9 for a
    depthwise channel.

Accumulator (int32, exact)
    ``acc[c] = b_q[c] + sum_k q_in[k] * w_q[k, c]`` over the same ``k``,
    where a padding position (TF SAME) reads the byte ``z_in`` (real 0). The
    scheme guarantees ``max_c(|b_q[c]| + 255 * sum_k |w_q[k, c]|) < 2**31``
    (checked when a layer is quantized), so every partial sum, in any order,
    fits int32.

Output of a non-head layer (float32 arithmetic, in this order)
    ::

        f = f32(acc) * m[c]              m[c] = f32(s_in * s_w[c] / s_out)
        f = f + f32(r - z_r) * m_r       only with a residual r (uint8, s_r, z_r),
                                         m_r = f32(s_r / s_out)
        f = min(max(f, lo - z_out), hi - z_out)
        q = int(rint(f)) + z_out         (uint8)

    ``m`` and ``m_r`` are computed in float64 (product then quotient) and
    rounded once to float32. ``f32(acc)`` rounds to nearest even (exact up
    to 2**24). ``lo``/``hi``: 0 and 255 for a linear layer; for ReLU6
    ``lo = max(z_out, 0) = z_out`` and ``hi = min(255, z_out + rint(6 /
    s_out))`` (float64, then integer).

Output of a head (a layer writing the box or class output)
    ``out[c] = f32(acc) * d[c]`` in float32, ``d[c] = f32(s_in * s_w[c])``
    (float64 product, rounded once). Heads have no output quantization.

The 3x3 conv, the 1x1 conv and the 3x3 depthwise conv follow the same rules;
only the set of taps ``k`` differs.

Bias correction (part of the quantization, not of the arithmetic contract)
    Rounding the weights shifts each output channel's mean by
    ``sum_k mean(x_k) * (w_deq[k, c] - w[k, c])``, ``w_deq = w_q * s_w[c]``;
    on depthwise layers (9 taps a channel) that shift does not average out
    and cost the int8 network 0.025 AP on faces >= 32 px
    (``benchmarks/quant_accuracy.py``). When the calibration gives the
    per-input-channel means ``mu`` of a layer's float input
    (:func:`ssdface.quant.calibrate.load_ranges`), :func:`quantize_model`
    quantizes, instead of ``b``, the corrected float bias
    ``b'[c] = f32(b[c] - e[c])``, ``e[c] = sum_i mu[i] * sum_taps (w_deq -
    w)[.., i, c]`` (float64; for a depthwise channel ``i = c`` only;
    padding positions counted as if they read the mean):
    ``b_q[c] = rint(b'[c] / (s_in * s_w[c])) - z_in * sum_k w_q[k, c]`` as
    above. Only ``b_q`` changes; every rule above, and what the C engine
    computes, stays as is. Applied to every layer, heads included: one
    pass on the 101 annotated photos (``benchmarks/quant_accuracy.py``),
    the AP gap on faces >= 32 px is +0.0249 uncorrected, +0.0070 with the
    depthwise layers corrected only, +0.0029 with every layer (RMS error of
    the logits against f32: 0.304, 0.162, 0.146).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .network import NETWORK_INPUT, FloatWeights, Layer, network_layers

QMIN, QMAX = 0, 255  # uint8 activations
WMAX = 127  # int8 weights lie in [-WMAX, WMAX]
RELU6_CAP = 6.0
INPUT_SCALE = 1.0 / 127.5
INPUT_ZERO = 128
INT32_MAX = 2**31 - 1

ActivationRange = tuple[float, float]  # calibrated (min, max) of a layer output


@dataclass(frozen=True)
class TensorQuant:
    """Per-tensor uint8 quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        if not (self.scale > 0 and np.isfinite(self.scale)):
            raise ValueError(f"scale must be finite and > 0, got {self.scale}")
        if not QMIN <= self.zero_point <= QMAX:
            raise ValueError(f"zero point {self.zero_point} outside [{QMIN}, {QMAX}]")

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """``scale * (q - zero_point)`` in float64."""
        return self.scale * (np.asarray(q, dtype=np.float64) - self.zero_point)


INPUT_QUANT = TensorQuant(INPUT_SCALE, INPUT_ZERO)


def quantize_input(x: np.ndarray) -> np.ndarray:
    """The uint8 network input: ``clamp(rint(f32(x * 127.5f)) + 128, 0, 255)``.

    ``x`` is the float32 normalised input (any shape).
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    v = np.rint(x * np.float32(127.5))  # float32 product, then round half to even
    return np.clip(v + np.float32(INPUT_ZERO), QMIN, QMAX).astype(np.uint8)


def relu6_quant(max_value: float) -> TensorQuant:
    """Quantization of a ReLU6 output calibrated to ``[.., max_value]``."""
    top = min(RELU6_CAP, float(max_value))
    if not top > 0:
        return TensorQuant(1.0 / QMAX, 0)
    return TensorQuant(top / QMAX, 0)


def linear_quant(min_value: float, max_value: float) -> TensorQuant:
    """Asymmetric quantization of a linear output calibrated to ``[min, max]``."""
    lo, hi = min(float(min_value), 0.0), max(float(max_value), 0.0)
    if not hi > lo:
        return TensorQuant(1.0 / QMAX, 0)
    scale = (hi - lo) / QMAX
    zero = int(np.clip(np.rint(-lo / scale), QMIN, QMAX))
    return TensorQuant(scale, zero)


def activation_quant(layer: Layer, value_range: ActivationRange) -> TensorQuant:
    """The output quantization of a non-head layer from its calibrated range."""
    if layer.head:
        raise ValueError(f"layer {layer.index} is a head: its output is not quantized")
    lo, hi = value_range
    return relu6_quant(hi) if layer.relu6 else linear_quant(lo, hi)


def channel_axis(op: str) -> int:
    """Axis of the output channel in a source-layout weight tensor."""
    return 3 if op == "depthwise3x3" else 0


def quantize_weights(w: np.ndarray, op: str) -> tuple[np.ndarray, np.ndarray]:
    """``(w_q, s_w)``: int8 weights in the source layout and float64 per-channel scales."""
    w = np.asarray(w)
    if w.dtype != np.float32:
        raise TypeError(f"weights must be float32, got {w.dtype}")
    axis = channel_axis(op)
    moved = np.moveaxis(w, axis, 0).astype(np.float64)
    peak = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    s_w = np.where(peak > 0, peak / WMAX, 1.0)
    wq = np.clip(np.rint(moved / s_w.reshape((-1,) + (1,) * (moved.ndim - 1))), -WMAX, WMAX)
    return np.moveaxis(wq.astype(np.int8), 0, axis), s_w


def channel_weight_sums(w_q: np.ndarray, op: str) -> np.ndarray:
    """``sum_k w_q[k, c]`` per output channel, int64."""
    moved = np.moveaxis(np.asarray(w_q, dtype=np.int64), channel_axis(op), 0)
    return moved.reshape(moved.shape[0], -1).sum(axis=1)


def quantize_bias(b: np.ndarray, w_q: np.ndarray, s_w: np.ndarray, op: str,
                  in_quant: TensorQuant) -> np.ndarray:
    """``b_q = rint(b / (s_in * s_w)) - z_in * sum_k w_q``: int32, checked to fit."""
    b64 = np.asarray(b, dtype=np.float64)
    folded = (np.rint(b64 / (in_quant.scale * s_w)).astype(np.int64)
              - in_quant.zero_point * channel_weight_sums(w_q, op))
    if np.abs(folded).max(initial=0) > INT32_MAX:
        raise OverflowError(f"quantized bias does not fit int32 (max |b_q| = "
                            f"{int(np.abs(folded).max())})")
    return folded.astype(np.int32)


def corrected_bias(b: np.ndarray, w: np.ndarray, w_q: np.ndarray, s_w: np.ndarray, op: str,
                   input_mean: np.ndarray) -> np.ndarray:
    """``f32(b - e)``: the float bias minus the mean error the rounded weights
    make on an input of per-channel means ``input_mean`` (module docstring,
    "Bias correction"). float32, one value per output channel."""
    mu = np.asarray(input_mean, dtype=np.float64)
    axis = channel_axis(op)
    shape = [1] * w_q.ndim
    shape[axis] = -1
    dw = w_q.astype(np.float64) * s_w.reshape(shape) - np.asarray(w, dtype=np.float64)
    if mu.shape != (dw.shape[3],):  # in_c: axis 3 of OHWI and of [1, 3, 3, C]
        raise ValueError(f"input means: expected {dw.shape[3]} channels, got {mu.shape}")
    if op == "depthwise3x3":  # channel c reads input channel c only
        err = dw.reshape(-1, dw.shape[3]).sum(axis=0) * mu
    else:
        err = dw.sum(axis=(1, 2)) @ mu
    return (np.asarray(b, dtype=np.float64) - err).astype(np.float32)


@dataclass(frozen=True)
class LayerQuant:
    """Everything the int8 kernels need for one layer (see the module docstring).

    ``w_q`` int8 in source layout; ``w_scale`` the float64 ``s_w``; ``b_q``
    int32 with the input zero point folded in; ``multiplier`` float32 per
    output channel: ``m`` for a non-head layer, ``d`` for a head. ``output``
    is None for a head (then ``z_out``, ``lo``, ``hi`` are 0 and unused).
    ``residual`` is the index of the layer whose output is added (-1: none),
    with ``m_r`` (float32) and ``z_r``; without one ``m_r`` is 0 and ``z_r``
    0.
    """

    index: int
    op: str
    head: bool
    w_q: np.ndarray
    w_scale: np.ndarray
    b_q: np.ndarray
    multiplier: np.ndarray
    input: TensorQuant
    output: TensorQuant | None
    z_in: int
    z_out: int
    lo: int
    hi: int
    residual: int
    m_r: np.float32
    z_r: int


def _check_accumulator(w_q: np.ndarray, b_q: np.ndarray, op: str, index: int) -> None:
    moved = np.moveaxis(np.abs(w_q.astype(np.int64)), channel_axis(op), 0)
    bound = np.abs(b_q.astype(np.int64)) + QMAX * moved.reshape(moved.shape[0], -1).sum(axis=1)
    if bound.max(initial=0) > INT32_MAX:
        raise OverflowError(f"layer {index}: an int32 accumulator could overflow "
                            f"(bound {int(bound.max())})")


def quantize_layer(layer: Layer, w: np.ndarray, b: np.ndarray, in_quant: TensorQuant,
                   out_quant: TensorQuant | None,
                   res_quant: TensorQuant | None = None,
                   input_mean: np.ndarray | None = None) -> LayerQuant:
    """Quantize one layer from its float32 weights and its tensors' quantization.

    ``out_quant`` is None for a head; ``res_quant`` is the residual input's
    quantization (required exactly when the layer has a residual);
    ``input_mean``, the per-channel means of the layer's float input, turns
    on the bias correction (:func:`corrected_bias`).
    """
    if layer.head != (out_quant is None):
        raise ValueError(f"layer {layer.index}: out_quant must be None exactly for a head")
    if layer.residual != (res_quant is not None):
        raise ValueError(f"layer {layer.index}: res_quant must be given exactly with a residual")
    w_q, s_w = quantize_weights(w, layer.op)
    if input_mean is not None:
        b = corrected_bias(b, w, w_q, s_w, layer.op, input_mean)
    b_q = quantize_bias(b, w_q, s_w, layer.op, in_quant)
    _check_accumulator(w_q, b_q, layer.op, layer.index)
    z_in = in_quant.zero_point
    if out_quant is None:
        multiplier = (in_quant.scale * s_w).astype(np.float32)
        z_out = lo = hi = 0
    else:
        multiplier = (in_quant.scale * s_w / out_quant.scale).astype(np.float32)
        z_out = out_quant.zero_point
        if layer.relu6:
            lo = max(z_out, QMIN)
            hi = min(QMAX, z_out + int(np.rint(RELU6_CAP / out_quant.scale)))
        else:
            lo, hi = QMIN, QMAX
    if not np.isfinite(multiplier).all() or not (multiplier > 0).all():
        raise ValueError(f"layer {layer.index}: multiplier not finite and positive")
    if res_quant is not None and out_quant is not None:
        m_r, z_r = np.float32(res_quant.scale / out_quant.scale), res_quant.zero_point
    else:
        m_r, z_r = np.float32(0.0), 0
    return LayerQuant(index=layer.index, op=layer.op, head=layer.head, w_q=w_q, w_scale=s_w,
                      b_q=b_q, multiplier=multiplier, input=in_quant, output=out_quant,
                      z_in=z_in, z_out=z_out, lo=lo, hi=hi, residual=layer.adds, m_r=m_r,
                      z_r=z_r)


@dataclass(frozen=True)
class QuantizedModel:
    """The quantized network: one :class:`LayerQuant` per layer, in order, and
    the quantization of every activation tensor by producer (layer index, or
    :data:`~ssdface.quant.network.NETWORK_INPUT` for the input)."""

    layers: list[LayerQuant]
    activations: dict[int, TensorQuant]

    @property
    def input(self) -> TensorQuant:
        return self.activations[NETWORK_INPUT]


def activation_quants(layers: list[Layer],
                      ranges: Mapping[int, ActivationRange]) -> dict[int, TensorQuant]:
    """Quantization of the input and of every non-head layer's output."""
    out = {NETWORK_INPUT: INPUT_QUANT}
    for layer in layers:
        if layer.head:
            continue
        if layer.index not in ranges:
            raise KeyError(f"no calibrated range for layer {layer.index} ({layer.weight})")
        out[layer.index] = activation_quant(layer, ranges[layer.index])
    return out


def quantize_model(float_weights: FloatWeights | Mapping[str, np.ndarray],
                   ranges: Mapping[int, ActivationRange],
                   layers: list[Layer] | None = None,
                   means: Mapping[int, np.ndarray] | None = None) -> QuantizedModel:
    """Quantize the network of ``_core.layers()``.

    ``float_weights``: tensor name -> float32 array in source layout (or a
    :class:`~ssdface.quant.network.FloatWeights`); ``ranges``: layer index ->
    calibrated ``(min, max)`` of its output, for every non-head layer;
    ``means``: layer index -> per-channel means of its float input, for
    every layer, to correct the biases (module docstring, "Bias
    correction"); None quantizes the biases as they are (both from
    :func:`ssdface.quant.calibrate.load_ranges`).
    """
    if layers is None:
        layers = network_layers()
    acts = activation_quants(layers, ranges)
    if means is not None:
        missing = [layer.index for layer in layers if layer.index not in means]
        if missing:
            raise KeyError(f"no input means for layers {missing}")
    out = []
    for layer in layers:
        res = acts[layer.adds] if layer.residual else None
        out.append(quantize_layer(layer, float_weights[layer.weight], float_weights[layer.bias],
                                  acts[layer.reads], None if layer.head else acts[layer.index],
                                  res, None if means is None else means[layer.index]))
    return QuantizedModel(out, acts)

"""The int8 network as the int8 exporters see it: the export plan with the
quantization of every tensor, from a :class:`ssdface.quant.QuantizedModel`.

Both :mod:`ssdface.export.tflite_int8` and :mod:`ssdface.export.onnx_qdq`
write what :func:`int8_plan` gives, so the two files hold the same scales.
Activations are described here as ssdface stores them (uint8 ``q``, real =
``scale * (q - zero_point)``); the TFLite writer shifts them to int8 (``q -
128``, zero point ``z - 128``, same scale).

Where the exported graphs cannot follow :mod:`ssdface.quant.scheme` exactly:

* Residuals. ssdface adds the residual inside the convolution's output stage
  (one rounding); TFLite and QDQ ONNX have a quantized convolution output,
  then an ``ADD``/``Add`` with its own output scale. That intermediate
  tensor gets the range the calibrated ranges bound it to: ``[lo_sum -
  hi_res, hi_sum - lo_res]`` (the real ranges of the sum and of the residual
  input, as their uint8 quantizations cover them), quantized as a linear
  layer output (:func:`ssdface.quant.scheme.linear_quant`).
* Heads. ssdface's heads write float32 (``acc * s_in * s_w``); an int8
  graph quantizes them too: every head of an output shares one quantization,
  from :data:`HEAD_RANGES` (measured, see there), so the reshapes and
  concatenations after them only move bytes.
* Biases are stored without the folded input zero point (both formats add
  the zero point's share themselves): ``b = b_q + z_in * sum_k w_q[k, c]``,
  int32, scale ``f32(s_in * s_w[c])``, zero point 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike

import numpy as np

from ..quant.network import Layer as QLayer
from ..quant.network import network_layers
from ..quant.scheme import (
    INT32_MAX,
    QMAX,
    LayerQuant,
    QuantizedModel,
    TensorQuant,
    channel_weight_sums,
    linear_quant,
)
from .plan import Plan, plan

#: (min, max) of the box encodings and of the class logits the int8 heads
#: write: the extremes of ``Detector(precision="int8").forward`` over the 168
#: calibration inputs (``ssdface/quant/calibration_inputs.txt``), boxes
#: [-13.55, 6.99], logits [-21.08, 21.40], rounded outward to whole numbers.
#: One LSB is then 0.082 (boxes) and 0.173 (logits).
HEAD_RANGES: dict[str, tuple[float, float]] = {"boxes": (-14.0, 7.0), "classes": (-22.0, 22.0)}


@dataclass(frozen=True)
class ConvQuant:
    """One convolution's constants: ``weights`` int8 in source layout (OHWI,
    depthwise ``[1, 3, 3, C]``) with float32 per-channel ``weight_scale``;
    ``bias`` int32 without the folded input zero point, float32 per-channel
    ``bias_scale = f32(s_in * s_w)``."""

    weights: np.ndarray
    weight_scale: np.ndarray
    bias: np.ndarray
    bias_scale: np.ndarray


@dataclass
class Int8Plan:
    """The export plan, ``acts``: the uint8 quantization of every activation
    of the plan by name (network input, every convolution and add output),
    and ``convs``: the constants of every convolution by output name."""

    plan: Plan
    acts: dict[str, TensorQuant]
    convs: dict[str, ConvQuant]


def _real_range(q: TensorQuant) -> tuple[float, float]:
    """The real values a uint8 quantization covers."""
    return q.scale * (0 - q.zero_point), q.scale * (QMAX - q.zero_point)


def conv_quant(lq: LayerQuant) -> ConvQuant:
    """The exported constants of one quantized layer (bias unfolded)."""
    unfolded = lq.b_q.astype(np.int64) + lq.z_in * channel_weight_sums(lq.w_q, lq.op)
    if np.abs(unfolded).max(initial=0) > INT32_MAX:
        raise OverflowError(f"layer {lq.index}: the unfolded bias does not fit int32")
    return ConvQuant(np.ascontiguousarray(lq.w_q, dtype=np.int8),
                     np.asarray(lq.w_scale, dtype=np.float32),
                     unfolded.astype(np.int32),
                     (lq.input.scale * np.asarray(lq.w_scale, np.float64)).astype(np.float32))


def _head_quant(head_ranges: Mapping[str, tuple[float, float]], key: str) -> TensorQuant:
    try:
        lo, hi = (float(v) for v in head_ranges[key])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"head_ranges must map {key!r} to (min, max), got "
                         f"{head_ranges!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < 0 < hi):
        raise ValueError(f"head range of {key}: need finite min < 0 < max, got ({lo}, {hi})")
    return linear_quant(lo, hi)


def int8_plan(model: QuantizedModel,
              head_ranges: Mapping[str, tuple[float, float]] | None = None) -> Int8Plan:
    """The plan of the network with the quantization of every tensor from ``model``.

    Raises:
        TypeError: if ``model`` is not a :class:`~ssdface.quant.QuantizedModel`.
        ValueError: if it does not fit the engine's layer table, or a head
            range is not ``min < 0 < max``.
    """
    if not isinstance(model, QuantizedModel):
        raise TypeError(f"model must be a ssdface.quant.QuantizedModel (see "
                        f"ssdface.export.quantized_model), got {type(model).__name__}")
    layers: list[QLayer] = network_layers()
    if len(model.layers) != len(layers) or any(
            (lq.index, lq.op) != (lay.index, lay.op) for lq, lay in zip(model.layers, layers)):
        raise ValueError("the quantized model does not fit the engine's layer table")
    ranges = dict(HEAD_RANGES if head_ranges is None else head_ranges)
    tensors = {}
    for lq, lay in zip(model.layers, layers):
        tensors[lay.weight] = lq.w_q
        tensors[lay.bias] = lq.b_q
    p = plan(tensors)
    by_weight = {lay.weight: (lay, lq) for lay, lq in zip(layers, model.layers)}
    acts: dict[str, TensorQuant] = {p.input_name: model.input}
    heads = {name: _head_quant(ranges, "boxes") for name in p.boxes.heads}
    heads.update({name: _head_quant(ranges, "classes") for name in p.classes.heads})
    convs: dict[str, ConvQuant] = {}
    pending: dict[str, TensorQuant] = {}  # residual conv -> the quantization of its add
    for layer in p.layers:
        if layer.kind == "add":
            acts[layer.output] = pending.pop(layer.inputs[1])
            continue
        lay, lq = by_weight[layer.weight]
        convs[layer.output] = conv_quant(lq)
        if lq.head:
            acts[layer.output] = heads[layer.output]
        elif lay.residual:
            lo, hi = _real_range(model.activations[lay.index])
            r_lo, r_hi = _real_range(model.activations[lay.adds])
            acts[layer.output] = linear_quant(lo - r_hi, hi - r_lo)
            pending[layer.output] = model.activations[lay.index]
        else:
            acts[layer.output] = model.activations[lay.index]
    return Int8Plan(p, acts, convs)


def quantized_model(weights: str | PathLike[str] | None = None,
                    ranges: str | PathLike[str] | None = None) -> QuantizedModel:
    """The model ``Detector(weights, precision="int8")`` runs: the float weights
    (found as :func:`ssdface.quant.load_float_weights` finds them) quantized
    with a ranges file (default: the committed calibration), bias correction
    included.

    Raises:
        ValueError: if the ranges were calibrated on other weights (their
            scales would quantize these badly, and silently), or the file is
            not a ranges file of this model.
    """
    from ..quant.calibrate import RANGES_FILE, load_ranges
    from ..quant.network import load_float_weights
    from ..quant.scheme import quantize_model

    path = RANGES_FILE if ranges is None else ranges
    calibration = load_ranges(path)
    floats = load_float_weights(weights)
    if calibration.weights_checksum != floats.checksum:
        raise ValueError(f"{path}: calibrated on weights {calibration.weights_checksum:016x}, "
                         f"these are {floats.checksum:016x}: calibrate them first "
                         f"(python -m ssdface.quant.calibrate)")
    return quantize_model(floats, calibration.ranges, means=calibration.means)

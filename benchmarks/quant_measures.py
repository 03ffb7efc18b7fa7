"""``benchmarks/quant_accuracy.py``'s steps 3-5: per-layer SQNR of the int8
simulation against the float64 graph, the RMS error of the head outputs by
what is quantized (fake quantization in float64), with and without the
bias correction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from quant_eval import Setup

from ssdface.quant import graph, network, scheme


def sqnr_table(setup: Setup, ranges: dict[int, tuple[float, float]], n_eval: int,
               means: dict[int, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Per layer, pooled over the photos and the first ``n_eval`` annotated
    photos: SQNR (dB) of the int8 output against the float64 graph's."""
    model = scheme.quantize_model(setup.weights, ranges, setup.layers, means)
    sig = np.zeros(len(setup.layers))
    err = np.zeros(len(setup.layers))
    inputs = [p[2] for p in setup.photos] + setup.eval_inputs[:n_eval]
    for x in inputs:
        f = graph.run_float(setup.weights, x, np.float64, setup.layers)
        q = graph.run_int8(model, x, setup.layers)
        for layer in setup.layers:
            a = f.outputs[layer.index]
            e = graph.dequantized(model, q, layer.index) - a
            sig[layer.index] += float(np.sum(a * a))
            err[layer.index] += float(np.sum(e * e))
    table = []
    for layer in setup.layers:
        quant = model.activations.get(layer.index)
        table.append({
            "layer": layer.index, "op": layer.op, "relu6": layer.relu6,
            "residual": layer.residual, "head": layer.head, "weight": layer.weight,
            "out_shape": layer.out_shape,
            "scale": quant.scale if quant else math.nan,
            "zero_point": quant.zero_point if quant else -1,
            "sqnr_db": 10 * math.log10(sig[layer.index] / err[layer.index])
            if err[layer.index] > 0 else math.inf})
    return table


def fake_quant(y: np.ndarray, t: scheme.TensorQuant) -> np.ndarray:
    """``y`` through uint8 quantization and back (float64)."""
    return t.scale * (np.clip(np.rint(y / t.scale) + t.zero_point, 0, 255) - t.zero_point)


def dequantized_weights(setup: Setup, model: scheme.QuantizedModel,
                        pick: Any = lambda layer: True, weights: bool = True,
                        biases: bool = True) -> dict[str, np.ndarray]:
    """The float weights with those of the layers ``pick`` selects replaced by
    what the int8 model computes with: ``w_q * s_w`` and ``rint(b / (s_in s_w)) * s_in s_w``."""
    out = dict(setup.weights.tensors)
    for layer, lq in zip(setup.layers, model.layers):
        if not pick(layer):
            continue
        shape = [1, 1, 1, 1]
        shape[scheme.channel_axis(layer.op)] = -1
        unit = lq.input.scale * lq.w_scale
        if weights:
            out[layer.weight] = lq.w_q.astype(np.float64) * lq.w_scale.reshape(shape)
        if biases:
            out[layer.bias] = np.rint(setup.weights[layer.bias] / unit) * unit
    return out


def run_fake(setup: Setup, model: scheme.QuantizedModel, weights: dict[str, np.ndarray],
             x: np.ndarray, quant_input: bool, act_pick: Any = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """The float64 graph with fake-quantized input and activations (of the
    layers ``act_pick`` selects)."""
    x = x.astype(np.float64)
    if quant_input:
        x = fake_quant(x, model.input)
    outs: list[np.ndarray] = []
    for layer in setup.layers:
        src = x if layer.reads == network.NETWORK_INPUT else outs[layer.reads]
        res = outs[layer.adds] if layer.residual else None
        y = graph.float_layer(layer, src, weights[layer.weight], weights[layer.bias], res,
                              np.float64)
        if act_pick is not None and not layer.head and act_pick(layer):
            y = fake_quant(y, model.activations[layer.index])
        outs.append(y)
    return graph.assemble(setup.layers, outs)


def error_sources(setup: Setup, ranges: dict[int, tuple[float, float]],
                  means: dict[int, np.ndarray] | None, step: int
                  ) -> list[tuple[str, float, float]]:
    """RMS error of (box encodings, logits) against the float64 graph, by what
    is quantized (the fake-quantized parts without bias correction)."""
    model = scheme.quantize_model(setup.weights, ranges, setup.layers)
    corrected = (scheme.quantize_model(setup.weights, ranges, setup.layers, means)
                 if means is not None else None)
    w = setup.weights.tensors
    is_dw = lambda layer: layer.op == "depthwise3x3"  # noqa: E731
    configs: list[tuple[str, Any]] = [
        ("input only", lambda x: run_fake(setup, model, w, x, True)),
        ("weights + biases only", lambda x: run_fake(
            setup, model, dequantized_weights(setup, model), x, False)),
        ("depthwise weights only", lambda x: run_fake(
            setup, model, dequantized_weights(setup, model, is_dw, biases=False), x, False)),
        ("other weights only", lambda x: run_fake(setup, model, dequantized_weights(
            setup, model, lambda layer: not is_dw(layer), biases=False), x, False)),
        ("biases only", lambda x: run_fake(
            setup, model, dequantized_weights(setup, model, weights=False), x, False)),
        ("activations only", lambda x: run_fake(setup, model, w, x, False, lambda _: True)),
        ("activations only, linear (project) layers", lambda x: run_fake(
            setup, model, w, x, False, lambda layer: not layer.relu6)),
        ("activations only, ReLU6 layers", lambda x: run_fake(
            setup, model, w, x, False, lambda layer: layer.relu6)),
        ("int8 simulation, no bias correction",
         lambda x: astuple(graph.run_int8(model, x, setup.layers))),
    ]
    if corrected is not None:
        configs.append(("int8 simulation, bias-corrected (the product)",
                        lambda x: astuple(graph.run_int8(corrected, x, setup.layers))))
    inputs = setup.eval_inputs[::step]
    refs = [astuple(graph.run_float(setup.weights, x, np.float64, setup.layers))
            for x in inputs]
    out = []
    for name, fn in configs:
        eb = el = 0.0
        for x, (rb, rl) in zip(inputs, refs):
            qb, ql = fn(x)
            eb += float(np.mean((qb - rb) ** 2))
            el += float(np.mean((ql - rl) ** 2))
        out.append((name, math.sqrt(eb / len(inputs)), math.sqrt(el / len(inputs))))
    return out


def astuple(run: graph.Run) -> tuple[np.ndarray, np.ndarray]:
    return run.boxes, run.logits

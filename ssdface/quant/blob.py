"""The quantized model as the blob's qu8 section (csrc/blob.h, qu8_model.h):
what :func:`ssdface._core.pack_blob` takes to write it. The C engine runs
exactly the arithmetic of :mod:`ssdface.quant.scheme`; this only renames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _core
from .scheme import INPUT_QUANT, QuantizedModel, quantize_model

# The network input's quantization as the engine applies it:
# q = clamp(rint(x * 127.5f) + 128, 0, 255). 1 / (1/127.5) is 127.5 exactly.
INPUT_INV_SCALE = 127.5
assert np.float32(1.0 / INPUT_QUANT.scale) == np.float32(INPUT_INV_SCALE)


def qu8_section(model: QuantizedModel) -> dict[str, Any]:
    """The mapping ``_core.pack_blob(..., qu8=...)`` reads: per layer the
    int8 weights (source layout), folded int32 biases, float32 per-channel
    multipliers, and the output stage with its clamps relative to the output
    zero point (``lo - z_out``, ``hi - z_out``)."""
    layers = []
    for lq in model.layers:
        layers.append(dict(
            weights=np.ascontiguousarray(lq.w_q, dtype=np.int8),
            bias=np.ascontiguousarray(lq.b_q, dtype=np.int32),
            scale=np.ascontiguousarray(lq.multiplier, dtype=np.float32),
            in_zero=lq.z_in, out_zero=lq.z_out,
            out_lo=float(lq.lo - lq.z_out), out_hi=float(lq.hi - lq.z_out),
            res_zero=lq.z_r, res_scale=float(lq.m_r), f32_out=lq.head))
    return dict(input_inv_scale=INPUT_INV_SCALE, input_zero=INPUT_QUANT.zero_point,
                layers=layers)


def int8_section(arrays: Sequence[np.ndarray], checksum: int) -> dict[str, Any] | None:
    """The qu8 section for the model's float tensors ``arrays`` (blob order)
    whose float32-only blob has XXH64 ``checksum``: quantized with the
    committed calibration (ranges, and input means for the bias correction)
    when it was made on these weights, else None
    (ranges calibrated on other weights would quantize these badly, and
    silently)."""
    from .calibrate import RANGES_FILE, load_ranges

    ranges = load_ranges(RANGES_FILE)
    if ranges.weights_checksum != checksum:
        return None
    names = [name for name, _kind, _shape in _core.tensor_specs()]
    return qu8_section(quantize_model(dict(zip(names, arrays)), ranges.ranges,
                                      means=ranges.means))

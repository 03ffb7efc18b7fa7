"""The layer table and float weights the int8 mode is built from.

Everything about the network comes from the engine's own description
(``ssdface._core.layers()`` and ``_core.tensor_specs()``); nothing here
names a layer, a shape or a tensor. This module turns the table into typed
:class:`Layer` records, says which layers are heads and where their outputs
go, and loads the float weights in their source layouts (conv OHWI
``[O, kh, kw, I]``, depthwise ``[1, 3, 3, C]``, bias ``[O]``) through
:mod:`ssdface.weights`, the way a :class:`ssdface.Detector` finds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from .. import _core
from ..weights import BytesLike, float_checksum, open_engine

PathLike = Union[str, "os.PathLike[str]"]

# Values of the layer table's fields (engine ABI, csrc/model.h and fuse.h):
NETWORK_INPUT = -2  # ``reads`` of a layer whose input is the network input
NO_RESIDUAL = -1  # ``adds`` of a layer without a residual
BOXES_BUFFER = 17  # ``dst`` of a box head (fuse.h SSDF_BUF_BOXES)
CLASSES_BUFFER = 18  # ``dst`` of a class head (fuse.h SSDF_BUF_CLASSES)

OPS = ("conv3x3", "depthwise3x3", "conv1x1")


@dataclass(frozen=True)
class Layer:
    """One row of ``_core.layers()``: ``conv + bias (+ residual) (+ ReLU6)``.

    ``reads``: index of the layer whose output is the input
    (:data:`NETWORK_INPUT` for the network input); ``adds``: index of the
    residual layer (:data:`NO_RESIDUAL`: none); ``pad``: (top, left) TF SAME
    padding (bottom/right take whatever the taps need past the input);
    ``dst``/``dst_offset``: the engine buffer written and, for a head, the
    offset in floats of this layer's NHWC output in the flat box or class
    output.
    """

    index: int
    op: str
    stride: int
    relu6: bool
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    pad: tuple[int, int]
    reads: int
    adds: int
    weight: str
    bias: str
    dst: int
    dst_offset: int

    @property
    def head(self) -> bool:
        """Whether the layer writes a model output (box or class head)."""
        return self.dst in (BOXES_BUFFER, CLASSES_BUFFER)

    @property
    def kernel(self) -> int:
        """Spatial kernel size: 3 for conv3x3 and depthwise3x3, 1 for conv1x1."""
        return 1 if self.op == "conv1x1" else 3

    @property
    def residual(self) -> bool:
        """Whether the layer adds a residual input."""
        return self.adds != NO_RESIDUAL

    @classmethod
    def from_table(cls, index: int, row: dict[str, Any]) -> Layer:
        """A :class:`Layer` from one dict of ``_core.layers()``."""
        if row["op"] not in OPS:
            raise ValueError(f"layer {index}: unknown op {row['op']!r}")
        return cls(index=index, op=row["op"], stride=int(row["stride"]),
                   relu6=bool(row["relu6"]), in_shape=tuple(row["in_shape"]),
                   out_shape=tuple(row["out_shape"]), pad=tuple(row["pad"]),
                   reads=int(row["reads"]), adds=int(row["adds"]), weight=row["weight"],
                   bias=row["bias"], dst=int(row["dst"]), dst_offset=int(row["dst_offset"]))


def network_layers() -> list[Layer]:
    """The network's layers in execution order, from ``_core.layers()``."""
    return [Layer.from_table(i, row) for i, row in enumerate(_core.layers())]


def output_sizes(layers: list[Layer]) -> dict[int, int]:
    """Floats of each model output (``{BOXES_BUFFER: n, CLASSES_BUFFER: m}``).

    Checks that the heads of each output tile it exactly (no gap, no
    overlap) and that it holds a whole number of values per anchor.
    """
    sizes = {}
    for buf in (BOXES_BUFFER, CLASSES_BUFFER):
        spans = sorted((lay.dst_offset, lay.dst_offset + int(np.prod(lay.out_shape)))
                       for lay in layers if lay.dst == buf)
        end = 0
        for start, stop in spans:
            if start != end:
                raise ValueError(f"output buffer {buf}: heads leave a gap or overlap at {start}")
            end = stop
        if end == 0 or end % _core.NUM_ANCHORS:
            raise ValueError(f"output buffer {buf}: {end} floats, not a multiple of "
                             f"{_core.NUM_ANCHORS} anchors")
        sizes[buf] = end
    return sizes


def split_outputs(flat: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes ``[NUM_ANCHORS, 4]``, logits ``[NUM_ANCHORS, classes]``) from the flat
    output buffers, the layout of ``Detector.forward``'s rows."""
    return (flat[BOXES_BUFFER].reshape(_core.NUM_ANCHORS, -1),
            flat[CLASSES_BUFFER].reshape(_core.NUM_ANCHORS, -1))


@dataclass(frozen=True)
class FloatWeights:
    """The model's float32 tensors in source layout, by tensor name, and the
    XXH64 checksum of the float32-only blob they pack to
    (:func:`ssdface.weights.float_checksum`: the identity a calibration
    records)."""

    tensors: dict[str, np.ndarray]
    checksum: int

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]


def load_float_weights(weights: PathLike | BytesLike | None = None) -> FloatWeights:
    """The float weights a ``Detector(weights)`` would run, in source layout.

    ``weights``: a folder of ``.npy`` files, a blob, the bytes of one, or
    None for the detector's own search (``$SSDFACE_WEIGHTS``, the embedded
    blob, the cache). The tensors are unpacked from the validated blob
    (packing only reorders floats, so they are the ``.npy`` files' bits).
    """
    engine, _path = open_engine(weights, 1)
    try:
        tensors = dict(engine.source_tensors())
    finally:
        engine.close()
    names = [name for name, _kind, _shape in _core.tensor_specs()]
    return FloatWeights(tensors, float_checksum([tensors[n] for n in names]))

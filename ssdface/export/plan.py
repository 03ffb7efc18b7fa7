"""The network as the exporters see it, read from the C engine's layer table.

:func:`plan` turns :func:`ssdface._core.layers` (the one definition of the
network, ``csrc/models/ssd_mobilenetv2_face.c``) into a list of :class:`Layer` in the order the
exporters write them, with every activation's NHWC shape and the model
outputs.  Nothing about the network's shape is written here: blocks,
channels, strides, paddings, residuals, feature maps and heads all come from
the table, and the weights are checked against :func:`ssdface._core.tensor_specs`.

How the table is read:

* ``src``, ``dst`` and ``residual`` are buffer ids.  Walking the table in
  order and remembering which activation each buffer holds gives every
  layer's input and its residual input (a residual id no layer has written,
  such as the "none" id, means no residual).
* The buffers that layers write but no layer reads are the model outputs;
  the layers writing them are the heads, ordered by ``dst_offset``.  Each
  output's depth is its size over the anchor count; the one whose depth is
  the anchors' box code size (``_core.anchors().shape[1]``) is the box output.
* A layer with a residual becomes a convolution followed by an ``add``.
* Heads are emitted after the other layers (their relative order kept), as a
  converted TF model lists them.

Activation names follow the source model's TF naming, as the weight file
names do (``/`` written as ``_``): a layer's activation is named after the
TF scope the table gives it (``scope``), a residual sum after the enclosing
block's scope plus ``/add``.  See :func:`_name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core

# The model's input and output tensor names, as in the TF Object Detection
# API's TFLite export of SSD models (what other tools look for).
INPUT_NAME = "normalized_input_image_tensor"
BOX_OUTPUT_NAME = "raw_outputs/box_encodings"
CLASS_OUTPUT_NAME = "raw_outputs/class_predictions"

#: The export's batch size: the exported models take one image.
BATCH = 1

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class Layer:
    """One exported layer: a convolution (``conv``/``dw``, with bias) or a residual ``add``."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    weight: str = ""
    bias: str = ""
    stride: int = 1
    relu6: bool = False
    # TF SAME padding (top, left, bottom, right); convolutions only.
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True)
class Output:
    """One model output: the head activations it concatenates, flattened to ``depth``."""

    depth: int
    heads: tuple[str, ...]


@dataclass
class Plan:
    """The whole network: layers in emission order and every activation's NHWC shape."""

    input_name: str
    layers: list[Layer]
    shapes: dict[str, Shape]
    boxes: Output
    classes: Output
    num_anchors: int = _core.NUM_ANCHORS

    @property
    def input_shape(self) -> Shape:
        """The NHWC shape of the model input."""
        return self.shapes[self.input_name]


def _name(scope: str) -> str:
    """An activation's name from a TF scope: ``/`` written as ``_``, as in the
    weight file names."""
    return scope.replace("/", "_")


def _pads(entry: Mapping[str, Any], kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): the table's pads before, and the rest of TF SAME after."""
    top, left = entry["pad"]
    after = []
    for axis, before in enumerate((top, left)):
        size, out = entry["in_shape"][axis], entry["out_shape"][axis]
        total = (out - 1) * entry["stride"] + kernel[axis] - size
        after.append(max(total - before, 0))
    return top, left, after[0], after[1]


def check_weights(weights: Mapping[str, np.ndarray]) -> None:
    """Check that every tensor the network reads is in ``weights`` with its shape.

    Raises:
        KeyError: naming the first missing tensor.
        ValueError: naming the first tensor of the wrong shape.
    """
    for name, _kind, shape in _core.tensor_specs():
        try:
            got = np.shape(weights[name])
        except KeyError:
            raise KeyError(f"missing weight tensor {name!r}") from None
        if tuple(got) != tuple(shape):
            raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(got)}")


def plan(weights: Mapping[str, np.ndarray], input_name: str = INPUT_NAME) -> Plan:
    """Lay out the C layer table for export, after checking ``weights`` against it."""
    check_weights(weights)
    table = _core.layers()
    shapes: dict[str, Shape] = {input_name: (BATCH, *table[0]["in_shape"])}
    held: dict[int, str] = {table[0]["src"]: input_name}  # buffer id -> activation in it
    read = {e["src"] for e in table} | {e["residual"] for e in table}
    body: list[Layer] = []
    heads: dict[int, list[tuple[int, str]]] = {}  # output buffer -> (offset, activation)
    head_layers: list[Layer] = []
    for entry in table:
        name = _name(entry["scope"])
        kind = "dw" if entry["op"] == "depthwise3x3" else "conv"
        kernel = tuple(np.shape(weights[entry["weight"]])[1:3])
        conv = Layer(kind, (held[entry["src"]],), name, entry["weight"], entry["bias"],
                     entry["stride"], entry["relu6"], _pads(entry, kernel))
        shapes[name] = (BATCH, *entry["out_shape"])
        out = name
        if entry["dst"] not in read:
            heads.setdefault(entry["dst"], []).append((entry["dst_offset"], name))
            head_layers.append(conv)
            continue
        body.append(conv)
        if entry["residual"] in held:
            if entry["relu6"]:  # the conv's fused ReLU6 would come before the add
                raise ValueError(f"{name}: a residual layer with ReLU6 cannot be exported")
            out = _name(entry["scope"].rsplit("/", 1)[0] + "/add")
            body.append(Layer("add", (held[entry["residual"]], name), out))
            shapes[out] = shapes[name]
        held[entry["dst"]] = out
    box_depth = _core.anchors().shape[1]
    outputs = [_output(shapes, sorted(h)) for _buf, h in sorted(heads.items())]
    boxes = [o for o in outputs if o.depth == box_depth]
    classes = [o for o in outputs if o.depth != box_depth]
    if len(boxes) != 1 or len(classes) != 1:
        raise ValueError(f"expected one box and one class output, got depths "
                         f"{[o.depth for o in outputs]}")
    return Plan(input_name, body + head_layers, shapes, boxes[0], classes[0])


def _output(shapes: Mapping[str, Shape], heads: list[tuple[int, str]]) -> Output:
    """The output the heads (offset, activation) write, its depth from the anchor count."""
    size = sum(int(np.prod(shapes[name])) for _offset, name in heads)
    depth, rest = divmod(size, _core.NUM_ANCHORS)
    if rest:
        raise ValueError(f"an output of {size} values does not divide into "
                         f"{_core.NUM_ANCHORS} anchors")
    return Output(depth, tuple(name for _offset, name in heads))

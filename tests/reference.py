"""Independent float64 NumPy reference of the SSD MobileNet V2 face detector.

This module never imports ``ssdface`` (but for ``ssdface.tiling.merge`` in
:func:`detect_views_reference`): it is written straight from
``shared/docs/MODEL.md`` so that the package can be checked against it.  It
favours readability over speed, but convolutions are expressed as matrix
products over shifted views (never Python loops over pixels), so one 300x300
forward pass takes on the order of a second.

It is the one module the tests import (``import reference``); the parts live
beside it and are re-exported here:

* ``reference_kernels.py``: the convolutions and the antialiased resize (what
  the C kernels and resize compute);
* ``reference_network.py``: the architecture, the weights, the forward pass;
* ``reference_postprocess.py``: anchors, box decoding, scores, NMS, head
  outputs to faces;
* this file: the pipeline from an image (preprocessing, detect) and the
  views (the padded pass, tiles), and the tests' numerical helpers.

Conventions (all from MODEL.md):

* activations are NHWC; a single image is handled as ``[H, W, C]``;
* regular conv weights are OHWI ``[out, kh, kw, in]``, depthwise weights are
  ``[1, kh, kw, channels]``;
* padding is TensorFlow ``SAME`` with the smaller half of the total pad on
  top/left;
* boxes are ``(ymin, xmin, ymax, xmax)`` normalised to ``[0, 1]``, anchors are
  ``(yc, xc, h, w)``.
"""

from __future__ import annotations

import numpy as np
from reference_kernels import (
    INPUT_SIZE,
    conv2d_same,
    depthwise_conv2d_same,
    resize_reference,
    resize_taps,
)
from reference_network import NUM_ANCHORS, forward_reference, load_weights
from reference_postprocess import (
    Face,
    anchors_reference,
    decode_reference,
    nms_reference,
    postprocess_reference,
    sigmoid_reference,
)

__all__ = [
    "NUM_ANCHORS",
    "INPUT_SIZE",
    "Face",
    "rel_l2",
    "random_input",
    "load_weights",
    "conv2d_same",
    "depthwise_conv2d_same",
    "forward_reference",
    "anchors_reference",
    "decode_reference",
    "nms_reference",
    "resize_taps",
    "resize_reference",
    "preprocess_reference",
    "sigmoid_reference",
    "postprocess_reference",
    "detect_reference",
    "view_input_reference",
    "detect_views_reference",
]


# ---------------------------------------------------------------------------
# Numerical helpers of the tests
# ---------------------------------------------------------------------------


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error ||actual - expected|| / ||expected||, in float64 (the
    metric every numerical test uses)."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))


def random_input(seed: int) -> np.ndarray:
    """A float32 network input [1, 300, 300, 3], uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(1, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32)


# ---------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """HxW gray -> HxWx3; HxWx4 RGBA -> HxWx3 (alpha dropped); HxWx3 unchanged."""
    img = np.asarray(image)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 4:
        return img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(f"unsupported image shape {img.shape}")


def preprocess_reference(image_uint8: np.ndarray) -> np.ndarray:
    """Resize to 300x300 and normalise to ``(v - 127.5) / 127.5``.

    Args:
        image_uint8: RGB ``[H, W, 3]``, gray ``[H, W]`` or RGBA ``[H, W, 4]``
            uint8 array.

    Returns:
        float64 ``[1, 300, 300, 3]``.
    """
    rgb = _to_rgb(image_uint8)
    resized = resize_reference(rgb, INPUT_SIZE)
    return ((resized - 127.5) / 127.5)[None]


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


def detect_reference(
    image_uint8: np.ndarray,
    weights: dict[str, np.ndarray],
    score_threshold: float = 0.5,
    iou_threshold: float = 0.6,
    max_faces: int = 100,
) -> list[Face]:
    """Detect faces: preprocess, forward, sigmoid, decode, NMS.

    Args:
        image_uint8: RGB ``[H, W, 3]``, gray ``[H, W]`` or RGBA ``[H, W, 4]``
            uint8 array.
        weights: as returned by :func:`load_weights`.
        score_threshold, iou_threshold, max_faces: NMS parameters.

    Returns:
        ``[((xmin, ymin, xmax, ymax), score), ...]`` in pixels of the original
        image, clipped to it, highest score first.
    """
    img = np.asarray(image_uint8)
    height, width = img.shape[:2]
    box_encodings, class_logits = forward_reference(preprocess_reference(img), weights)
    return postprocess_reference(
        box_encodings[0], class_logits[0], height, width, score_threshold, iou_threshold, max_faces
    )


# ---------------------------------------------------------------------------
# Views (the padded pass, tiles): inputs built in float64; the merge is
# ssdface.tiling.merge, plain NumPy shared with the library.
# ---------------------------------------------------------------------------


def view_input_reference(image_uint8: np.ndarray, view) -> np.ndarray:
    """The network input of one ``ssdface.tiling.View`` of an image whose
    pixels are the original's (no reduced decode): the source rectangle
    (whole pixels) resized into the destination, 0.0 (mid-grey) around it,
    mirrored left-right for a flipped view. float64 [1, 300, 300, 3]."""
    rgb = _to_rgb(image_uint8)
    x0, y0, x1, y1 = (int(round(c)) for c in view.src)
    dx0, dy0, dx1, dy1 = view.dst
    inp = np.zeros((INPUT_SIZE, INPUT_SIZE, 3))
    inp[dy0:dy1, dx0:dx1] = (resize_reference(rgb[y0:y1, x0:x1], dy1 - dy0, dx1 - dx0)
                             - 127.5) / 127.5
    return (inp[:, ::-1] if view.flip else inp)[None]


def detect_views_reference(
    image_uint8: np.ndarray,
    views,
    weights: dict[str, np.ndarray],
    score_threshold: float,
    iou_threshold: float = 0.6,
    max_faces: int = 100,
    view_threshold: float = 0.01,
    forward=None,
) -> list[Face]:
    """Faces of a multi-view detect: every view's input, forward, post-
    processed in network pixels at ``view_threshold``, merged by
    ``ssdface.tiling.merge``, kept from ``score_threshold``. ``forward(i,
    x)`` may stand in for :func:`forward_reference` (a cache)."""
    from ssdface import tiling

    per_view = []
    for i, view in enumerate(views):
        x = view_input_reference(image_uint8, view)
        boxes, logits = forward(i, x) if forward else forward_reference(x, weights)
        faces = postprocess_reference(boxes[0], logits[0], INPUT_SIZE, INPUT_SIZE,
                                      view_threshold, iou_threshold, 1917)
        rows = np.array([[*box, score] for box, score in faces]).reshape(-1, 5)
        per_view.append((view, rows))
    merged = tiling.merge(per_view, iou_threshold, 1917)
    merged = merged[merged[:, 4] >= score_threshold][:max_faces]
    return [((float(r[0]), float(r[1]), float(r[2]), float(r[3])), float(r[4])) for r in merged]

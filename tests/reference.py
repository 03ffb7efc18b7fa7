"""Independent float64 NumPy reference of the SSD MobileNet V2 face detector.

This module never imports ``ssdface``: it is written straight from
``shared/docs/MODEL.md`` so that the package can be checked against it.  It
favours readability over speed, but convolutions are expressed as matrix
products over shifted views (never Python loops over pixels), so one 300x300
forward pass takes on the order of a second.

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

import math
from os import PathLike
from pathlib import Path

import numpy as np

__all__ = [
    "NUM_ANCHORS",
    "INPUT_SIZE",
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
]

INPUT_SIZE = 300
NUM_ANCHORS = 1917

_P = "FeatureExtractor_MobilenetV2_"

# (block index, expansion channels or None, depthwise stride, residual)
# for blocks 0..16 of the MobileNet V2 backbone, from the table in MODEL.md.
_BLOCKS: list[tuple[int, int | None, int, bool]] = [
    (0, None, 1, False),
    (1, 96, 2, False),
    (2, 144, 1, True),
    (3, 144, 2, False),
    (4, 192, 1, True),
    (5, 192, 1, True),
    (6, 192, 2, False),
    (7, 384, 1, True),
    (8, 384, 1, True),
    (9, 384, 1, True),
    (10, 384, 1, False),
    (11, 576, 1, True),
    (12, 576, 1, True),
    (13, 576, 2, False),
    (14, 960, 1, True),
    (15, 960, 1, True),
    (16, 960, 1, False),
]

# Extra SSD layers: (k, channels of the 1x1 conv, channels of the 3x3 s2 conv).
_EXTRAS: list[tuple[int, int, int]] = [(2, 256, 512), (3, 128, 256), (4, 128, 256), (5, 64, 128)]

_GRIDS = (19, 10, 5, 3, 2, 1)
_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)


# ---------------------------------------------------------------------------
# Weights
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


def load_weights(weights_dir: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Load every ``*.npy`` file of ``weights_dir`` as float64.

    Keys are the file names without the ``.npy`` suffix.
    """
    weights_dir = Path(weights_dir)
    files = sorted(weights_dir.glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no .npy files in {weights_dir}")
    return {f.stem: np.load(f).astype(np.float64) for f in files}


# ---------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """Return (output size, pad before, pad after) of TF SAME padding on one axis."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    before = total // 2
    return out, before, total - before


def _pad_same(x: np.ndarray, kh: int, kw: int, stride: int) -> tuple[np.ndarray, int, int]:
    """Zero-pad ``x`` [H, W, C] for a SAME conv; return (padded, out_h, out_w)."""
    h, w, _ = x.shape
    oh, top, bottom = _same_padding(h, kh, stride)
    ow, left, right = _same_padding(w, kw, stride)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    return xp, oh, ow


def _tap(xp: np.ndarray, dy: int, dx: int, oh: int, ow: int, stride: int) -> np.ndarray:
    """The input pixels that kernel tap (dy, dx) sees for every output pixel: [oh, ow, C]."""
    return xp[dy : dy + stride * (oh - 1) + 1 : stride, dx : dx + stride * (ow - 1) + 1 : stride, :]


def _finish(y: np.ndarray, b: np.ndarray, relu6: bool) -> np.ndarray:
    y = y + b
    if relu6:
        y = np.clip(y, 0.0, 6.0)
    return y


def conv2d_same(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, relu6: bool
) -> np.ndarray:
    """Regular 2-D convolution with TF SAME padding, bias and optional ReLU6.

    Args:
        x: input ``[H, W, Cin]``.
        w: weights OHWI ``[Cout, KH, KW, Cin]``.
        b: bias ``[Cout]``.
        stride: the same stride on both axes.
        relu6: clamp the result to ``[0, 6]``.

    Returns:
        float64 ``[ceil(H/stride), ceil(W/stride), Cout]``.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    cout, kh, kw, cin = w.shape
    assert x.ndim == 3 and x.shape[2] == cin, (x.shape, w.shape)
    xp, oh, ow = _pad_same(x, kh, kw, stride)
    y = np.zeros((oh, ow, cout), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            y += _tap(xp, dy, dx, oh, ow, stride) @ w[:, dy, dx, :].T
    return _finish(y, np.asarray(b, dtype=np.float64), relu6)


def depthwise_conv2d_same(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, relu6: bool
) -> np.ndarray:
    """Depthwise 2-D convolution (depth multiplier 1) with TF SAME padding.

    Args:
        x: input ``[H, W, C]``.
        w: weights ``[1, KH, KW, C]``.
        b: bias ``[C]``.
        stride: the same stride on both axes.
        relu6: clamp the result to ``[0, 6]``.

    Returns:
        float64 ``[ceil(H/stride), ceil(W/stride), C]``.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    one, kh, kw, c = w.shape
    assert one == 1 and x.ndim == 3 and x.shape[2] == c, (x.shape, w.shape)
    xp, oh, ow = _pad_same(x, kh, kw, stride)
    y = np.zeros((oh, ow, c), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            y += _tap(xp, dy, dx, oh, ow, stride) * w[0, dy, dx, :]
    return _finish(y, np.asarray(b, dtype=np.float64), relu6)


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------


def _conv(
    x: np.ndarray, weights: dict[str, np.ndarray], name: str, stride: int, relu6: bool
) -> np.ndarray:
    """Regular conv whose weights are ``name + '_weights'`` and bias ``name + '_Conv2D_bias'``."""
    return conv2d_same(x, weights[name + "_weights"], weights[name + "_Conv2D_bias"], stride, relu6)


def _block_prefix(n: int) -> str:
    return _P + ("expanded_conv" if n == 0 else f"expanded_conv_{n}")


def _features_single(x: np.ndarray, weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Backbone + extra layers for one image [300, 300, 3]; returns the 6 feature maps."""
    feature_maps: list[np.ndarray] = []
    y = _conv(x, weights, _P + "Conv", stride=2, relu6=True)
    for n, expand, stride, residual in _BLOCKS:
        prefix = _block_prefix(n)
        inp = y
        if expand is not None:
            y = _conv(y, weights, prefix + "_expand", stride=1, relu6=True)
            assert y.shape[2] == expand
            if n == 13:
                feature_maps.append(y)  # feature map 0: block 13 expand output
        y = depthwise_conv2d_same(
            y,
            weights[prefix + "_depthwise_depthwise_weights"],
            weights[prefix + "_depthwise_depthwise_bias"],
            stride,
            relu6=True,
        )
        y = _conv(y, weights, prefix + "_project", stride=1, relu6=False)
        if residual:
            y = y + inp
    y = _conv(y, weights, _P + "Conv_1", stride=1, relu6=True)
    feature_maps.append(y)  # feature map 1
    for k, c1, c2 in _EXTRAS:
        y = _conv(y, weights, _P + f"layer_19_1_Conv2d_{k}_1x1_{c1}", stride=1, relu6=True)
        y = _conv(y, weights, _P + f"layer_19_2_Conv2d_{k}_3x3_s2_{c2}", stride=2, relu6=True)
        feature_maps.append(y)  # feature maps 2..5
    return feature_maps


def _heads_single(x: np.ndarray, weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Box encodings [1917, 4] and class logits [1917, 2] of one image [300, 300, 3]."""
    boxes, logits = [], []
    for i, fmap in enumerate(_features_single(x, weights)):
        assert fmap.shape[0] == fmap.shape[1] == _GRIDS[i], (i, fmap.shape)
        box = _conv(fmap, weights, f"BoxPredictor_{i}_BoxEncodingPredictor", stride=1, relu6=False)
        cls = _conv(fmap, weights, f"BoxPredictor_{i}_ClassPredictor", stride=1, relu6=False)
        # NHWC memory order -> (row, column, anchor), anchor fastest.
        boxes.append(box.reshape(-1, 4))
        logits.append(cls.reshape(-1, 2))
    return np.concatenate(boxes), np.concatenate(logits)


def forward_reference(
    x: np.ndarray, weights: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Run the whole network in float64.

    Args:
        x: normalised input ``[N, 300, 300, 3]`` (any float dtype).
        weights: as returned by :func:`load_weights`.

    Returns:
        ``(box_encodings [N, 1917, 4], class_logits [N, 1917, 2])``, float64,
        heads concatenated in anchor order (feature map 0..5, then row,
        column, anchor).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected [N, 300, 300, 3], got {x.shape}")
    outs = [_heads_single(img, weights) for img in x]
    box_encodings = np.stack([o[0] for o in outs]).reshape(x.shape[0], NUM_ANCHORS, 4)
    class_logits = np.stack([o[1] for o in outs]).reshape(x.shape[0], NUM_ANCHORS, 2)
    return box_encodings, class_logits


# ---------------------------------------------------------------------------
# Anchors, box decoding, scores, NMS
# ---------------------------------------------------------------------------


def _grid_anchor_shapes(i: int) -> list[tuple[float, float]]:
    """(scale, aspect ratio) of each anchor of one cell of grid i, in anchor order."""
    scales = [0.2 + (0.95 - 0.2) * k / 5 for k in range(6)] + [1.0]
    if i == 0:
        return [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
    shapes = [(scales[i], r) for r in _ASPECT_RATIOS]
    shapes.append((math.sqrt(scales[i] * scales[i + 1]), 1.0))
    return shapes


def anchors_reference() -> np.ndarray:
    """The 1917 anchors as float64 ``(yc, xc, h, w)``, in head output order."""
    rows: list[tuple[float, float, float, float]] = []
    for i, g in enumerate(_GRIDS):
        shapes = _grid_anchor_shapes(i)
        for h in range(g):
            for w in range(g):
                yc = (h + 0.5) / g
                xc = (w + 0.5) / g
                for s, r in shapes:
                    rows.append((yc, xc, s / math.sqrt(r), s * math.sqrt(r)))
    anchors = np.array(rows, dtype=np.float64)
    assert anchors.shape == (NUM_ANCHORS, 4)
    return anchors


def decode_reference(box_encodings: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Faster R-CNN box decoding with scales (10, 10, 5, 5).

    Args:
        box_encodings: ``[1917, 4]`` rows ``(ty, tx, th, tw)``.
        anchors: ``[1917, 4]`` rows ``(yc, xc, h, w)``.

    Returns:
        float64 ``[1917, 4]`` rows ``(ymin, xmin, ymax, xmax)``, normalised,
        not clipped.
    """
    t = np.asarray(box_encodings, dtype=np.float64)
    a = np.asarray(anchors, dtype=np.float64)
    ya, xa, ha, wa = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    yc = t[:, 0] / 10.0 * ha + ya
    xc = t[:, 1] / 10.0 * wa + xa
    h = np.exp(t[:, 2] / 5.0) * ha
    w = np.exp(t[:, 3] / 5.0) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def sigmoid_reference(x: np.ndarray) -> np.ndarray:
    """Logistic function in float64, without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of ``box`` [4] with each row of ``others`` [K, 4]; boxes are (ymin, xmin, ymax, xmax)."""

    def area(b: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, b[..., 2] - b[..., 0]) * np.maximum(0.0, b[..., 3] - b[..., 1])

    ih = np.maximum(0.0, np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]))
    iw = np.maximum(0.0, np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]))
    inter = ih * iw
    union = area(box) + area(others) - inter
    iou = np.zeros_like(union)
    pos = union > 0
    iou[pos] = inter[pos] / union[pos]
    return iou


def nms_reference(
    boxes: np.ndarray,
    scores: np.ndarray,
    score_threshold: float,
    iou_threshold: float,
    max_out: int,
) -> np.ndarray:
    """Greedy non-maximum suppression.

    Candidates are the indices with ``score >= score_threshold``, sorted by
    score descending with ties broken by the lower index.  The best remaining
    candidate is kept and every later candidate whose IoU with it is strictly
    greater than ``iou_threshold`` is dropped, until ``max_out`` are kept.

    Args:
        boxes: ``[K, 4]`` normalised ``(ymin, xmin, ymax, xmax)``.
        scores: ``[K]``.
        score_threshold: minimum score of a candidate (inclusive).
        iou_threshold: suppression threshold (strict ``>``).
        max_out: maximum number of kept boxes.

    Returns:
        int64 array of kept indices into ``boxes``, in the order kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    cand = np.flatnonzero(scores >= score_threshold)
    order = cand[np.argsort(-scores[cand], kind="stable")]
    keep: list[int] = []
    alive = np.ones(order.size, dtype=bool)
    for pos in range(order.size):
        if len(keep) >= max_out:
            break
        if not alive[pos]:
            continue
        idx = int(order[pos])
        keep.append(idx)
        rest = order[pos + 1 :]
        alive[pos + 1 :] &= ~(_iou_one_to_many(boxes[idx], boxes[rest]) > iou_threshold)
    return np.array(keep, dtype=np.int64)


# ---------------------------------------------------------------------------
# Resize and preprocessing
# ---------------------------------------------------------------------------


def resize_taps(n: int, m: int) -> list[tuple[int, np.ndarray]]:
    """The antialiased triangle filter taking length n to length m, per output
    index: ``(xmin, weights)``, output i being ``weights @ x[xmin:xmin + len(weights)]``."""
    scale = n / m
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    taps = []
    for i in range(m):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n)
        j = np.arange(xmin, xmax)
        wts = np.maximum(0.0, 1.0 - np.abs((j - center + 0.5) / filterscale))
        total = wts.sum()
        taps.append((xmin, wts / total if total != 0.0 else np.zeros_like(wts)))
    return taps


def _resize_matrix(n: int, m: int) -> np.ndarray:
    """[m, n] matrix of the antialiased triangle filter taking length n to length m."""
    mat = np.zeros((m, n), dtype=np.float64)
    for i, (xmin, wts) in enumerate(resize_taps(n, m)):
        mat[i, xmin : xmin + wts.size] = wts
    return mat


def resize_reference(image: np.ndarray, size: int = INPUT_SIZE,
                     width: int | None = None) -> np.ndarray:
    """Antialiased bilinear (triangle filter) resize to ``size x size`` (or
    ``size`` rows of ``width``), in float64.

    The Pillow ``Image.resize(BILINEAR)`` formulation without intermediate
    rounding: separable, horizontal pass then vertical pass, on the uint8
    values as floats.

    Args:
        image: ``[H, W, C]`` (or ``[H, W]``) array.
        size: output side.

    Returns:
        float64 ``[size, size, C]`` (``[size, size]`` for a 2-D input).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        return resize_reference(img[:, :, None], size, width)[:, :, 0]
    h, w = img.shape[:2]
    wx = _resize_matrix(w, size if width is None else width)  # [width, w]
    wy = _resize_matrix(h, size)  # [size, h]
    planes = np.moveaxis(img, 2, 0)  # [C, H, W]
    horizontal = planes @ wx.T  # [C, H, size]
    vertical = wy @ horizontal  # [C, size, size]
    return np.moveaxis(vertical, 0, 2)


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

Face = tuple[tuple[float, float, float, float], float]


def postprocess_reference(
    box_encodings: np.ndarray,
    class_logits: np.ndarray,
    height: int,
    width: int,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.6,
    max_faces: int = 100,
) -> list[Face]:
    """Turn the head outputs of one image into faces.

    Args:
        box_encodings: ``[1917, 4]``.
        class_logits: ``[1917, 2]``.
        height, width: size of the original image in pixels.
        score_threshold, iou_threshold, max_faces: NMS parameters.

    Returns:
        ``[((xmin, ymin, xmax, ymax), score), ...]`` in pixels of the original
        image, clipped to it, highest score first.
    """
    scores = sigmoid_reference(np.asarray(class_logits)[:, 1])
    boxes = decode_reference(box_encodings, anchors_reference())
    keep = nms_reference(boxes, scores, score_threshold, iou_threshold, max_faces)
    faces: list[Face] = []
    for idx in keep:
        ymin, xmin, ymax, xmax = boxes[idx]
        box = (
            float(np.clip(xmin * width, 0.0, width)),
            float(np.clip(ymin * height, 0.0, height)),
            float(np.clip(xmax * width, 0.0, width)),
            float(np.clip(ymax * height, 0.0, height)),
        )
        faces.append((box, float(scores[idx])))
    return faces


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

"""Float64 NumPy reference of the post-processing: the anchors, box decoding,
scores, non-maximum suppression, and head outputs to faces.

Part of the reference of ``reference.py`` (import that module; it re-exports
these). Never imports ``ssdface``: written straight from
``shared/docs/MODEL.md``. Boxes are ``(ymin, xmin, ymax, xmax)`` normalised to
``[0, 1]``, anchors ``(yc, xc, h, w)``.
"""

from __future__ import annotations

import math

import numpy as np
from reference_network import GRIDS, NUM_ANCHORS

_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)

Face = tuple[tuple[float, float, float, float], float]


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
    for i, g in enumerate(GRIDS):
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


"""The detector's stages as functions of their own: the network input an
image becomes, the anchors, and raw network outputs to faces (for users who
run the network elsewhere, or look inside)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._checks import check_head_output, check_image_size, check_max_faces, check_threshold
from .face import Face
from .image import decode
from .isa import default_isa
from .views import faces as _faces

# The default score threshold: the best F1 on the development photos
# (shared/eval/faces, faces >= 32 px) among thresholds whose precision is
# >= 0.95, at the default two passes; it must stay above 0.267, the score
# of the input-independent boxes the all-zero stand-in weight tensor makes.
# benchmarks/accuracy.py --sweep-thresholds measures it.
DEFAULT_SCORE_THRESHOLD = 0.28

def preprocess(image: Any, *, bgr: bool = False) -> np.ndarray:
    """The exact network input :meth:`Detector.detect` computes for ``image``.

    The image is resized to 300x300 (aspect ratio not kept, as the model was
    trained) with an antialiased triangle filter: bilinear interpolation when
    enlarging, a weighted average over each output pixel's footprint when
    shrinking (Pillow's BILINEAR filter, computed in float). Then
    ``x = (v - 127.5) / 127.5``. Gray is replicated to RGB; alpha is dropped.

    Computed with the kernel variant a new detector uses (``$SSDFACE_ISA`` or
    the best); :meth:`Detector.preprocess` uses the detector's own, so that
    it is bit-exact whatever ``isa`` the detector was given. ``image`` takes
    every form :meth:`Detector.detect` takes (a JPEG file is decoded at the
    reduced scale detect uses), ``bgr`` too.

    Returns float32 ``[1, 300, 300, 3]``.
    """
    return _core.resize_normalize(decode(image, bgr=bgr).pixels, impl=default_isa())[None]


def anchors() -> np.ndarray:
    """The 1917 anchors as ``(yc, xc, h, w)``, normalised, float32 (constants
    of the model; no weights needed)."""
    return _core.anchors()


def postprocess(
    box_encodings: np.ndarray,
    class_logits: np.ndarray,
    image_size: tuple[int, int],
    *,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    iou_threshold: float = 0.6,
    max_faces: int = 100,
) -> list[Face]:
    """Faces from one image's raw network outputs, as :meth:`Detector.detect`
    computes them: sigmoid scores, box decoding, greedy NMS.

    ``box_encodings`` ``[1917, 4]`` and ``class_logits`` ``[1917, 2]`` (or
    with a leading batch axis of 1), e.g. one row of :meth:`Detector.forward`
    (or another engine's outputs for the same model); ``image_size`` is
    ``(width, height)`` of the image, for pixel boxes.
    """
    score_threshold = check_threshold("score_threshold", score_threshold)
    iou_threshold = check_threshold("iou_threshold", iou_threshold)
    max_faces = check_max_faces(max_faces)
    width, height = check_image_size(image_size)
    arrays = [check_head_output("box_encodings", box_encodings, 4),
              check_head_output("class_logits", class_logits, 2)]
    rows = _core.postprocess(arrays[0], arrays[1], _core.anchors(), score_threshold,
                             iou_threshold, max_faces, width, height)
    return _faces(rows)

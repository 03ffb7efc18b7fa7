"""ssdface: a small, fast CPU face detector.

>>> import ssdface
>>> detector = ssdface.Detector()
>>> faces = detector.detect("photo.jpg")   # [Face(box=(xmin, ymin, xmax, ymax), score=...)]
"""

from .detector import Detector, anchors, postprocess, preprocess
from .face import Face
from .isa import available_isas, best_isa, default_isa
from .weights import BlobError, WeightsNotFoundError, pack_weights

__version__ = "0.1.0"

__all__ = [
    "BlobError",
    "Detector",
    "Face",
    "WeightsNotFoundError",
    "__version__",
    "anchors",
    "available_isas",
    "best_isa",
    "default_isa",
    "pack_weights",
    "postprocess",
    "preprocess",
]

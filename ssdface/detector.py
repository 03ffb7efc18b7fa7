"""The public face detection API."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import _core, views
from ._checks import MIN_FACE_SIZE_FLOOR as MIN_FACE_SIZE_FLOOR  # public, also here
from ._checks import (
    check_bool,
    check_max_faces,
    check_min_face_size,
    check_positive_int,
    check_threshold,
)
from .face import Face
from .image import Decoded, decode
from .isa import check_precision, resolve_isa
from .stages import DEFAULT_SCORE_THRESHOLD as DEFAULT_SCORE_THRESHOLD  # public, also here
from .stages import anchors as anchors
from .stages import postprocess as postprocess
from .stages import preprocess as preprocess
from .views import VIEW_SCORE_THRESHOLD as VIEW_SCORE_THRESHOLD  # public, also here
from .views import faces as _faces
from .weights import BytesLike, open_engine

PathLike = Union[str, "os.PathLike[str]"]

INPUT_SIZE = _core.INPUT_SIZE
NUM_ANCHORS = _core.NUM_ANCHORS

# At most this many forward passes per image (a 4000x3000 photo at
# min_face_size=32 takes 1923); a larger plan is refused, not run for minutes.
DEFAULT_MAX_PASSES = 2048

_UNSET: Any = object()  # "not given" for per-call overrides (None is a value)


class Detector:
    """SSD MobileNetV2 face detector running on ssdface's C engine.

    ``weights`` is a blob written by :func:`ssdface.pack_weights` (read once
    into memory), a folder of the model's ``.npy`` files (packed in memory),
    or the bytes of a blob. Without it the detector looks at
    ``$SSDFACE_WEIGHTS``, then at the blob embedded at build time, then at
    the user cache folder.

    A detector pickles (for ``multiprocessing``, ``concurrent.futures``,
    joblib, Dask, Ray): the copy is a new detector with the same settings,
    reading its weights from the same place (or from the same bytes). Use it
    as a context manager, or call :meth:`close`, to stop its threads early.

    ``num_threads`` is exactly the number of threads one inference runs on
    (the calling thread plus a persistent pool of ``num_threads - 1``). One
    image is split between them; a batch (:meth:`detect_batch`, or
    :meth:`forward` on several images) runs one image per thread, each
    thread with its own buffers (allocated by the first batch). Both give
    the same bits.
    ``isa`` forces a kernel variant (see :mod:`ssdface.isa`); by default
    ``$SSDFACE_ISA`` or the best one this CPU runs.

    ``precision="int8"`` runs the quantized network (uint8 activations, int8
    weights per channel, calibrated on photos: :mod:`ssdface.quant`), whose
    kernels use the CPU's int8 dot products (VNNI) where it has them; the
    default "f32" runs float32. Both take and return the same things.

    Which views of an image the network sees (:mod:`ssdface.tiling`):

    - by default two passes: the whole image stretched to the 300x300 input,
      and the whole image shrunk into the centre of the input and mirrored
      (``padded_pass``). The second finds faces that fill the frame, which
      the model misses at full size, and, as a second look, lifts the recall
      of mid-size faces. ``padded_pass=False`` runs one pass (half the time).
    - ``min_face_size``: the smallest face, in pixels of the original image,
      the caller wants found (as in MTCNN). The image is also cut into
      overlapping tiles, magnified so that such a face lands on anchors the
      model scores well, at a few scales; the tiles run as a batch on every
      thread. The cost grows with the image's area over ``min_face_size``
      squared: 15 passes for a 416x312 photo at 32 px, 1923 for 4000x3000. A
      plan over ``max_passes`` is refused with ``ValueError``.

    The faces of all views are mapped to original pixels and merged: boxes
    cut by an inner tile border are dropped when another view holds the face
    whole; boxes of one face are averaged and scored by how the views agree.
    ``last_passes`` is the number of forward passes of the latest call.

    The default ``score_threshold`` 0.28 is the best F1 on annotated photos
    (WIDER FACE val, faces >= 32 px) with precision >= 0.95; see
    ``benchmarks/RESULTS.md`` for recall, precision and cost by setting.

    One detector may be shared between threads: calls are serialised on it
    (each call runs without the GIL, so other Python threads keep running).
    Use one detector per thread to run inferences in parallel.
    """

    def __init__(
        self,
        weights: PathLike | BytesLike | None = None,
        *,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float = 0.6,
        max_faces: int = 100,
        num_threads: int = 1,
        isa: str | None = None,
        min_face_size: float | None = None,
        padded_pass: bool = True,
        max_passes: int = DEFAULT_MAX_PASSES,
        precision: str = "f32",
    ) -> None:
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_faces = max_faces
        self.min_face_size = min_face_size
        self.padded_pass = padded_pass
        self.max_passes = max_passes
        self.last_passes = 0
        num_threads = check_positive_int("num_threads", num_threads)
        precision = check_precision(precision)
        resolved_isa = resolve_isa(isa, precision)
        self._engine, self._weights_path = open_engine(weights, num_threads, precision)
        self._engine.kernels = resolved_isa
        # What a pickled copy rebuilds from: the weights as they were named
        # (None searches again in the new process, which may have another
        # install or cache), and the isa as asked (None: that CPU's best).
        # Built from bytes (weights_path None), a copy ships the blob itself.
        self._spec = {"weights": None if weights is None or self._weights_path is None
                      else os.fspath(self._weights_path), "isa": isa,
                      "num_threads": num_threads, "precision": precision}
        self._from_bytes = weights is not None and self._weights_path is None

    def __reduce__(self) -> tuple[Any, ...]:
        weights = self._engine.blob_bytes() if self._from_bytes else self._spec["weights"]
        kwargs = dict(self._spec, weights=weights, score_threshold=self.score_threshold,
                      iou_threshold=self.iou_threshold, max_faces=self.max_faces,
                      min_face_size=self.min_face_size, padded_pass=self.padded_pass,
                      max_passes=self.max_passes)
        return (_rebuild, (kwargs,))

    def close(self) -> None:
        """Stop the detector's threads and free its memory now, rather than
        when it is garbage collected. Idempotent; later calls raise
        ``ValueError``. ``with Detector() as d:`` closes on exit."""
        self._engine.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._engine.closed

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Settings a caller may change between calls are validated properties;
    # those that shape the engine (threads, weights, kernels) are read-only.

    @property
    def score_threshold(self) -> float:
        """Faces scoring below this are dropped; in [0, 1]."""
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = check_threshold("score_threshold", value)

    @property
    def iou_threshold(self) -> float:
        """NMS drops a box overlapping a better one by more than this; in [0, 1]."""
        return self._iou_threshold

    @iou_threshold.setter
    def iou_threshold(self, value: float) -> None:
        self._iou_threshold = check_threshold("iou_threshold", value)

    @property
    def max_faces(self) -> int:
        """At most this many faces per image (capped at the 1917 anchors)."""
        return self._max_faces

    @max_faces.setter
    def max_faces(self, value: int) -> None:
        self._max_faces = check_max_faces(value)

    @property
    def min_face_size(self) -> float | None:
        """Smallest face (original pixels) tiles are added for; None: no tiles."""
        return self._min_face_size

    @min_face_size.setter
    def min_face_size(self, value: float | None) -> None:
        self._min_face_size = check_min_face_size(value)

    @property
    def padded_pass(self) -> bool:
        """Whether a call adds the padded, mirrored whole-image pass."""
        return self._padded_pass

    @padded_pass.setter
    def padded_pass(self, value: bool) -> None:
        self._padded_pass = check_bool("padded_pass", value)

    @property
    def max_passes(self) -> int:
        """Most forward passes one image may take; a larger plan is refused."""
        return self._max_passes

    @max_passes.setter
    def max_passes(self, value: int) -> None:
        self._max_passes = check_positive_int("max_passes", value)

    @property
    def num_threads(self) -> int:
        """Threads one inference runs on (fixed: build a new detector to change it)."""
        return self._engine.num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        raise AttributeError("num_threads is fixed when a detector is built (its thread pool "
                             "starts then): create a new Detector(num_threads=...)")

    def __repr__(self) -> str:
        if self.closed:
            return f"<closed Detector, weights={str(self.weights_path)!r}>"
        weights = "<bytes>" if self.weights_path is None else str(self.weights_path)
        return (
            f"Detector(weights={weights!r}, score_threshold="
            f"{self.score_threshold}, iou_threshold={self.iou_threshold}, "
            f"max_faces={self.max_faces}, num_threads={self.num_threads}, isa={self.isa!r}, "
            f"min_face_size={self.min_face_size}, padded_pass={self.padded_pass}, "
            f"precision={self.precision!r})"
        )

    @property
    def weights_path(self) -> Path | None:
        """Where this detector's weights came from (a blob or a folder; None
        when it was built from bytes)."""
        return self._weights_path

    @property
    def isa(self) -> str:
        """The kernel variant this detector runs."""
        return self._engine.kernels

    @property
    def precision(self) -> str:
        """What the network computes in: "f32" or "int8"."""
        return "int8" if self._engine.precision == "qu8" else "f32"

    @property
    def weights_info(self) -> dict[str, Any]:
        """Facts from the weights blob header (version, sizes, checksum)."""
        return self._engine.info

    def detect(self, image: Any, *, bgr: bool = False,
               min_face_size: float | None = _UNSET) -> list[Face]:
        """Find the faces in ``image``, highest score first.

        ``image``: a uint8 array (``HxWx3`` RGB, ``HxW`` gray, ``HxWx4``
        RGBA; uint16 is scaled to 8 bits), a path (str or PathLike),
        ``bytes`` or a binary file object holding an encoded image (JPEG,
        PNG, ...; HEIC with ``ssdface[heif]``), or a PIL image. EXIF
        orientation is applied to files and PIL images. ``bgr=True`` for
        arrays in OpenCV's BGR(A) channel order. A JPEG is decoded at the
        smallest scale that still gives every view its pixels. Boxes are in
        pixels of the original (oriented) image.

        ``min_face_size`` overrides the detector's for this call (None: no
        tiles).
        """
        mfs = self.min_face_size if min_face_size is _UNSET else check_min_face_size(min_face_size)
        if mfs is None and not self.padded_pass:  # one view: the engine's own path
            decoded = decode(image, bgr=bgr)
            rows = self._engine.detect(
                decoded.pixels, self.score_threshold, self.iou_threshold, self.max_faces
            )
            self.last_passes = 1
            return _faces(rows, decoded.scale)
        return self._detect_decoded([self.decode(image, bgr=bgr, min_face_size=mfs)], mfs)[0]

    def decode(self, image: Any, *, bgr: bool = False,
               min_face_size: float | None = _UNSET) -> Decoded:
        """``image`` decoded as :meth:`detect` decodes it (a JPEG at the
        smallest scale this detector's views need), for pipelines that
        decode in one thread and detect in another: ``detect`` takes the
        result as it is (keep ``min_face_size`` the same in both calls)."""
        mfs = self.min_face_size if min_face_size is _UNSET else check_min_face_size(min_face_size)
        return decode(image, bgr=bgr, need=views.need(mfs, self.padded_pass))

    def preprocess(self, image: Any, *, bgr: bool = False) -> np.ndarray:
        """:func:`ssdface.preprocess` with this detector's kernels: bit for bit
        the input of the whole-image pass of :meth:`detect`. float32
        [1, 300, 300, 3]."""
        return _core.resize_normalize(decode(image, bgr=bgr).pixels,
                                      impl=self._engine.resize_kernels)[None]

    def detect_batch(self, images: Sequence[Any], *, bgr: bool = False,
                     min_face_size: float | None = _UNSET) -> list[list[Face]]:
        """:meth:`detect` on each image, in order: the same faces, bit for bit.

        With 2 threads or more, each thread runs whole views (no
        synchronisation between threads within a view), which gets more
        images per second than splitting every view between the threads.
        Images are decoded (files, bytes, PIL images) in a background thread,
        a chunk of a few images per thread ahead of the detection. ``images``
        is a list (or other sequence) of images; a single array is refused,
        since iterating it would take each row for a gray image.
        ``last_passes`` is the total of the batch.
        """
        if isinstance(images, (np.ndarray, str, bytes, os.PathLike)) or not isinstance(
            images, Sequence
        ):
            raise TypeError(
                "detect_batch takes a list of images, got "
                f"{type(images).__name__}; for one image use detect(image), or pass [image]"
                + (" (or list(array) for an NxHxWxC stack)"
                   if isinstance(images, np.ndarray) else "")
            )
        mfs = self.min_face_size if min_face_size is _UNSET else check_min_face_size(min_face_size)
        images = list(images)
        if not images:
            self.last_passes = 0
            return []
        need = views.need(mfs, self.padded_pass)
        size = 4 * self.num_threads
        chunks = [images[i:i + size] for i in range(0, len(images), size)]
        passes = 0
        if len(chunks) == 1:
            out = self._detect_decoded([decode(im, bgr=bgr, need=need) for im in chunks[0]], mfs)
            return out
        out: list[list[Face]] = []
        # Decoding (Pillow releases the GIL) of chunk k + 1 overlaps the
        # detection of chunk k (the engine releases it too).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssdface-decode") as pool:
            pending = pool.submit(views.decode_all, chunks[0], bgr, need)
            try:
                for k in range(len(chunks)):
                    decoded = pending.result()
                    if k + 1 < len(chunks):
                        pending = pool.submit(views.decode_all, chunks[k + 1], bgr, need)
                    out.extend(self._detect_decoded(decoded, mfs))
                    passes += self.last_passes
            except BaseException:
                pending.cancel()
                raise
        self.last_passes = passes
        return out

    def _detect_decoded(self, decoded: list[Decoded], mfs: float | None) -> list[list[Face]]:
        """Faces of decoded images (:func:`ssdface.views.detect`); sets ``last_passes``."""
        out, self.last_passes = views.detect(
            self._engine, decoded, mfs, padded=self.padded_pass, max_passes=self.max_passes,
            score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
            max_faces=self.max_faces)
        return out

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on normalised input.

        ``x``: float32 ``[N, 300, 300, 3]`` (see :func:`preprocess`). Returns
        the raw box encodings ``[N, 1917, 4]`` and class logits ``[N, 1917, 2]``
        (background, face), concatenated in anchor order. With N >= 2 and 2
        threads or more, each thread runs whole images (the same values as
        one image at a time). A non-finite value anywhere fails the call.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise TypeError(f"x must have dtype float32, got {x.dtype}")
        if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            hint = " (add a batch axis: x[None])" if x.shape == (INPUT_SIZE, INPUT_SIZE, 3) else ""
            raise ValueError(
                f"x must have shape [N, {INPUT_SIZE}, {INPUT_SIZE}, 3], got {list(x.shape)}{hint}"
            )
        if x.shape[0] == 0:
            raise ValueError("x is empty (batch size 0)")
        return self._engine.forward(x)

    def anchors(self) -> np.ndarray:
        """The 1917 anchors as ``(yc, xc, h, w)``, normalised, float32."""
        return self._engine.anchors()


def _rebuild(kwargs: dict[str, Any]) -> Detector:
    """Unpickle a :class:`Detector`: build a new one with the same settings."""
    return Detector(**kwargs)


def default_weights() -> Path:
    """Where a ``Detector()`` without arguments would read its weights."""
    from .weights import find_weights

    return find_weights(None)

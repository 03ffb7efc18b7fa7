"""Face detection over a Ray Data dataset: one detector per actor (``ssdface[ray]``).

>>> import ray
>>> from ssdface.ray import detect_dataset
>>> ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
>>> detect_dataset(ds).drop_columns(["bytes"]).write_parquet("s3://bucket/faces/")

:func:`detect_dataset` adds a ``faces`` column to a dataset whose rows hold
an image: each row gets a list of ``{"box": [xmin, ymin, xmax, ymax],
"score": s}``, as :meth:`ssdface.Face.to_dict` gives, with a fixed Arrow
type (:data:`FACES_TYPE`) so that every block, even one without a face,
writes the same Parquet schema. :class:`FaceDetector` is the callable class
behind it, for your own ``Dataset.map_batches`` call.

Where the image comes from, by the first column present:

- ``image``: decoded pixels, uint8 ``HxWx3`` (or ``HxW``, ``HxWx4``), as
  ``ray.data.read_images`` gives them (use ``mode="RGB"``). Boxes are in the
  pixels of that array; ``read_images`` does not apply EXIF orientation.
- ``bytes``: an encoded image (JPEG, PNG, ...), as
  ``ray.data.read_binary_files`` gives it.
- ``path``: a path each worker can open (local or on a shared file system),
  or a ``scheme://`` URI that ``pyarrow.fs`` opens (``s3://``, ``gs://``,
  ``file://``, ...).

Encoded images (``bytes``, ``path``) are decoded by ssdface as
:meth:`ssdface.Detector.detect` decodes a file: a JPEG at the reduced DCT
scale the network needs, EXIF orientation applied, boxes in pixels of the
original photo. That is faster than ``read_images``, which decodes every
pixel and ships the arrays through the object store, so prefer
``read_binary_files`` (or a dataset of paths) for JPEG photos.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

try:
    import pyarrow as pa
    import ray
    import ray.data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ssdface.ray needs Ray Data: pip install 'ssdface[ray]'"
    ) from exc

from .detector import Detector

__all__ = ["FACES_TYPE", "INPUT_COLUMNS", "FaceDetector", "detect_dataset"]

#: Columns an image is read from, in order of preference.
INPUT_COLUMNS = ("image", "bytes", "path")

#: Arrow type of the ``faces`` column: per row, a list of faces, each a
#: ``box`` (xmin, ymin, xmax, ymax in pixels) and a ``score``.
FACES_TYPE = pa.list_(
    pa.struct([("box", pa.list_(pa.float64(), 4)), ("score", pa.float64())])
)

Concurrency = Union[int, "tuple[int, int]", None]


def _input_column(names: Any, column: str | None) -> str:
    """The column to read images from, or a ValueError naming those found."""
    names = list(names)
    if column is not None:
        if column in names:
            return column
        raise ValueError(f"ssdface: the dataset has no column {column!r}; its columns: "
                         f"{names}")
    for name in INPUT_COLUMNS:
        if name in names:
            return name
    raise ValueError(
        "ssdface: the dataset has none of the columns 'image' (pixels, e.g. from "
        "ray.data.read_images), 'bytes' (encoded images, e.g. from "
        "ray.data.read_binary_files) or 'path' (image paths); its columns: "
        f"{names}. Rename one, or pass column=... to name the one holding images"
    )


def _read_uri(uri: str) -> bytes:
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_file(path) as f:
        return f.read()


class FaceDetector:
    """A callable class for ``Dataset.map_batches``: one :class:`ssdface.Detector`
    per actor, built in ``__init__``; each batch comes back with a ``faces``
    column added (type :data:`FACES_TYPE`).

    ``column`` names the column holding the images (pixels, encoded bytes or
    paths); by default the first of ``image``, ``bytes``, ``path``. The other
    keyword arguments go to :class:`ssdface.Detector` untouched.

    Takes ``batch_format="numpy"`` (the default, and the cheaper: images of
    one size arrive as one ``NxHxWxC`` array, ragged ones as an object array
    of per-row views of the Arrow buffer, with no DataFrame built around
    them) or ``"pandas"``; the images are only read, never copied here::

        ds.map_batches(FaceDetector, fn_constructor_kwargs={"score_threshold": 0.7},
                       compute=ray.data.ActorPoolStrategy(size=4), batch_size=16)
    """

    def __init__(self, *, column: str | None = None, **detector_kwargs: Any) -> None:
        self.column = column
        self.detector = Detector(**detector_kwargs)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        if isinstance(batch, pd.DataFrame):
            name = _input_column(batch.columns, self.column)
            paths = batch["path"].to_numpy() if "path" in batch.columns else None
            faces = self._faces(batch[name].to_numpy(), name, paths)
            out = batch.copy(deep=False)
            arrow_array = getattr(pd.arrays, "ArrowExtensionArray", None)
            out["faces"] = (arrow_array(faces) if arrow_array is not None
                            else pd.Series(faces.to_pylist(), index=batch.index, dtype=object))
            return out
        if isinstance(batch, Mapping):
            name = _input_column(batch.keys(), self.column)
            out = dict(batch)
            out["faces"] = self._faces(batch[name], name, batch.get("path"))
            return out
        raise TypeError(
            f"ssdface.ray.FaceDetector takes batch_format='numpy' or 'pandas' batches, got "
            f"{type(batch).__name__}"
        )

    def _faces(self, values: Any, name: str, paths: Any) -> pa.Array:
        rows = []
        for i, value in enumerate(values):
            try:
                rows.append([face.to_dict() for face in self.detector.detect(self._image(value))])
            except Exception as exc:
                if hasattr(exc, "add_note"):  # Python 3.11+
                    where = f" (path {paths[i]!r})" if paths is not None and name != "path" else ""
                    exc.add_note(f"ssdface: in the {name!r} column of a batch, row {i}{where}")
                raise
        return pa.array(rows, type=FACES_TYPE)

    @staticmethod
    def _image(value: Any) -> Any:
        if isinstance(value, str) and "://" in value:
            return _read_uri(value)
        return value


def _ray_version() -> tuple[int, int]:
    try:
        major, minor = ray.__version__.split(".")[:2]
        return int(major), int(minor)
    except ValueError:  # pragma: no cover - an unusual version string
        return (99, 0)


def _pool(concurrency: Concurrency, num_threads: int) -> dict[str, Any]:
    """``map_batches`` keywords for the actor pool ``concurrency`` asks for."""
    if concurrency is None:
        low, high = 1, None
    elif isinstance(concurrency, tuple) and len(concurrency) == 2:
        low, high = (_count("concurrency", v) for v in concurrency)
    else:
        low = high = _count("concurrency", concurrency)
        cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else 0
        if cpus and low * num_threads >= cpus:
            warnings.warn(
                f"ssdface: concurrency={low} actors x num_threads={num_threads} hold all "
                f"{cpus:g} CPUs of the cluster, leaving none for the tasks that read the "
                f"dataset: Ray Data then waits forever unless the cluster grows. Use "
                f"concurrency=(1, {low}) (an autoscaling pool) or fewer actors",
                stacklevel=3,
            )
    if _ray_version() >= (2, 51):  # `concurrency` is deprecated there, `compute` before
        if low == high:
            return {"compute": ray.data.ActorPoolStrategy(size=low)}
        return {"compute": ray.data.ActorPoolStrategy(min_size=low, max_size=high)}
    return {"concurrency": low if low == high else (low, high or 2**31 - 1)}


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or a (min, max) pair of them, "
                         f"got {value!r}")
    return int(value)


def detect_dataset(
    ds: ray.data.Dataset,
    *,
    concurrency: Concurrency = None,
    batch_size: int = 16,
    num_threads: int = 1,
    column: str | None = None,
    batch_format: str = "numpy",
    **detector_kwargs: Any,
) -> ray.data.Dataset:
    """``ds`` with a ``faces`` column: per row, a list of
    ``{"box": [xmin, ymin, xmax, ymax], "score": s}`` (:data:`FACES_TYPE`).

    Lazy, like every Ray Data transform: nothing runs until the dataset is
    consumed (``write_parquet``, ``take``, ``iter_rows``, ``materialize``...).

    Scaling: the work runs on a pool of actors, each holding one detector
    whose inferences run on ``num_threads`` threads, and Ray reserves
    ``num_threads`` CPUs per actor, so ``actors x num_threads`` CPUs are
    busy. ``concurrency`` is the number of actors: an int for a fixed pool, a
    ``(min, max)`` pair for a pool Ray grows as work queues up; by default
    ``(1, unbounded)``, bounded by the cluster's CPUs. Many single-threaded
    actors (the default ``num_threads=1``) give the most images per second
    on a batch job; more threads per actor cut the time of each image. A
    fixed pool that holds every CPU of the cluster leaves none for the tasks
    that read the data (``read_images``, ``read_binary_files``...) and the
    job stalls: keep ``concurrency x num_threads`` below the CPU count, or
    use a ``(min, max)`` pool (a warning says so when Ray is already
    running).

    ``batch_size`` images go to an actor at a time. ``column`` names the
    column holding the images (by default the first of ``image``,
    ``bytes``, ``path``; see :mod:`ssdface.ray`). ``batch_format`` is
    ``"numpy"`` or ``"pandas"`` (the output is the same). Other keyword
    arguments (``weights``, ``score_threshold``, ``iou_threshold``,
    ``max_faces``, ``isa``, ...) go to each actor's
    :class:`ssdface.Detector`; the weights must be readable where the actors
    run (a path on every node, or the blob's bytes).
    """
    try:
        inspect.signature(Detector).bind(num_threads=num_threads, **detector_kwargs)
    except TypeError as exc:
        raise TypeError(f"ssdface.ray.detect_dataset: {exc} (detector keyword arguments: "
                        f"{list(inspect.signature(Detector).parameters)})") from exc
    if batch_format not in ("numpy", "pandas"):
        raise ValueError(f"batch_format must be 'numpy' or 'pandas', got {batch_format!r}")
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None and getattr(schema, "names", None) is not None:
        _input_column(schema.names, column)  # fail now rather than in a worker
    return ds.map_batches(
        FaceDetector,
        fn_constructor_kwargs=dict(column=column, num_threads=num_threads, **detector_kwargs),
        **_pool(concurrency, num_threads),
        batch_size=batch_size,
        batch_format=batch_format,
        num_cpus=num_threads,
        zero_copy_batch=True,
    )

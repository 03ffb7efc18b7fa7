"""ssdface.ray: face detection over Ray Data datasets.

The tests that run a pipeline share one local Ray instance (2 CPUs, no
dashboard, its temp folder removed afterwards) whose workers import the
ssdface this test run imports: the folder holding the package goes on their
PYTHONPATH, so a source checkout, an editable install or a build in place all
work. The callable class is also called directly, without Ray, for the batch
forms a pipeline rarely produces with three photos.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

import ssdface

# Ray starts its own native processes (GCS, raylet, workers): under the
# sanitizer job's LD_PRELOAD of the ASan runtime they are not ours to check and
# are too slow to start; the detector code they call runs in the other tests.
pytestmark = pytest.mark.no_asan(
    reason="Ray's own native processes inherit the preloaded ASan runtime")

import pandas as pd  # noqa: E402  (a Ray Data dependency)
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402
import ray.data  # noqa: E402

from ssdface.ray import FACES_TYPE, FaceDetector, detect_dataset  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module. Its workers get this ssdface on
    PYTHONPATH and the environment of this process (so $SSDFACE_ISA holds there
    too); ``address="local"`` never joins a cluster started by someone else."""
    package_root = str(Path(ssdface.__file__).resolve().parent.parent)
    temp_dir = tempfile.mkdtemp(prefix="ssdface-ray-")  # short: Ray's socket paths have a limit
    env = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp_dir,
                 object_store_memory=256 * 2**20, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        yield
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def paths(photo_paths):
    return sorted(str(p) for p in photo_paths.values())


@pytest.fixture(scope="module")
def loop_faces(weights_dir, paths):
    """What a plain loop finds: ``Detector().detect(path)`` per photo."""
    with ssdface.Detector(weights_dir) as det:
        return {p: [f.to_dict() for f in det.detect(p)] for p in paths}


def _by_path(rows):
    return {row["path"]: _plain(row["faces"]) for row in rows}


def _plain(faces):
    """Faces as read back from Ray or Parquet, as plain lists and floats."""
    return [{"box": [float(v) for v in f["box"]], "score": float(f["score"])} for f in faces]


def _assert_close(got, want, tol=1e-3):
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["box"], w["box"], atol=tol, rtol=0)
        assert abs(g["score"] - w["score"]) < 1e-5


@pytest.mark.parametrize("batch_format", ["numpy", "pandas"])
def test_read_images_same_faces_as_the_arrays(ray_session, weights_dir, paths, photos,
                                              photo_paths, batch_format):
    ds = ray.data.read_images(paths, include_paths=True, mode="RGB")
    rows = detect_dataset(ds, weights=str(weights_dir), batch_format=batch_format).take_all()
    got = _by_path(rows)
    assert sorted(got) == paths
    counts = {}
    with ssdface.Detector(weights_dir) as det:
        for name, path in photo_paths.items():
            want = [f.to_dict() for f in det.detect(photos[name])]  # the same full-res pixels
            _assert_close(got[str(path)], want)
            counts[name] = len(want)
    assert counts == {"group_selfie": 4, "portrait_padded": 1, "foliage_no_face": 0}


def test_dataset_of_paths_same_as_a_loop(ray_session, weights_dir, paths, loop_faces):
    ds = ray.data.from_items([{"path": p, "id": i} for i, p in enumerate(paths)])
    rows = detect_dataset(ds, weights=str(weights_dir), batch_size=2, concurrency=1).take_all()
    assert [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == [0, 1, 2]
    assert _by_path(rows) == loop_faces  # the same decoding: identical


def test_int8_dataset_same_as_an_int8_loop(ray_session, weights_dir, paths):
    """precision="int8" reaches the actors' detectors: the same faces as an
    int8 loop here (the int8 engine's bytes do not depend on the process)."""
    with ssdface.Detector(weights_dir, precision="int8") as det:
        want = {p: [f.to_dict() for f in det.detect(p)] for p in paths}
    ds = ray.data.from_items([{"path": p} for p in paths])
    rows = detect_dataset(ds, weights=str(weights_dir), precision="int8", concurrency=1)
    assert _by_path(rows.take_all()) == want


def test_binary_files_same_as_a_loop(ray_session, weights_dir, paths, loop_faces):
    ds = ray.data.read_binary_files(paths, include_paths=True)
    out = detect_dataset(ds, weights=str(weights_dir), concurrency=1)
    assert _by_path(out.take_all()) == loop_faces


def test_parquet_round_trip(ray_session, weights_dir, paths, loop_faces, tmp_path):
    # One image per batch: the photo without a face makes a block of its own,
    # which must still write the faces column's full type.
    ds = ray.data.read_binary_files(paths, include_paths=True)
    out = detect_dataset(ds, weights=str(weights_dir), batch_size=1, concurrency=1)
    out = out.drop_columns(["bytes"])
    out.write_parquet(str(tmp_path / "faces"))
    files = sorted((tmp_path / "faces").glob("*.parquet"))
    assert files
    for f in files:
        assert pq.read_schema(f).field("faces").type.equals(FACES_TYPE)
    table = pq.read_table(tmp_path / "faces")
    assert table.schema.field("faces").type.equals(FACES_TYPE)
    assert _by_path(table.to_pylist()) == loop_faces
    # pandas too. (ray.data.read_parquet reads it as well, but Ray 2.60 starts
    # 32 footer-reader actors for it: seconds on a 2-CPU machine.)
    frame = pd.read_parquet(tmp_path / "faces")
    assert _by_path(frame.to_dict("records")) == loop_faces


def test_detector_kwargs_pass_through(ray_session, weights_dir, paths):
    ds = ray.data.from_items([{"path": p} for p in paths])
    got = _by_path(detect_dataset(ds, weights=str(weights_dir), score_threshold=0.9,
                                  max_faces=2, concurrency=1).take_all())
    with ssdface.Detector(weights_dir, score_threshold=0.9, max_faces=2) as det:
        want = {p: [f.to_dict() for f in det.detect(p)] for p in paths}
    assert got == want
    assert sum(map(len, got.values())) < 5  # 4 + 1 faces at the default threshold


def test_no_image_column_is_a_clear_error(ray_session, weights_dir):
    ds = ray.data.from_items([{"name": "a", "size": 1}])
    with pytest.raises(ValueError, match=r"none of the columns 'image'.*'name', 'size'"):
        detect_dataset(ds, weights=str(weights_dir))  # the schema is known: fails at once
    with pytest.raises(ValueError, match=r"no column 'photo'"):
        detect_dataset(ds, weights=str(weights_dir), column="photo")
    # Where the schema is only known once it runs, the actor says the same.
    lazy = ds.map(lambda row: {"name": row["name"]})
    with pytest.raises(Exception, match=r"none of the columns 'image'.*'name'"):
        detect_dataset(lazy, weights=str(weights_dir), concurrency=1).materialize()


def test_a_fixed_pool_holding_every_cpu_warns(ray_session, weights_dir, paths):
    ds = ray.data.from_items([{"path": p} for p in paths])
    with pytest.warns(UserWarning, match=r"concurrency=\(1, 2\)"):
        detect_dataset(ds, concurrency=2, weights=str(weights_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detect_dataset(ds, concurrency=(1, 2), weights=str(weights_dir))
        detect_dataset(ds, concurrency=1, weights=str(weights_dir))


def test_bad_arguments_fail_before_anything_runs(ray_session):
    ds = ray.data.from_items([{"path": "x.jpg"}])  # not run
    with pytest.raises(TypeError, match="score_treshold"):
        detect_dataset(ds, score_treshold=0.9)
    with pytest.raises(ValueError, match="batch_format"):
        detect_dataset(ds, batch_format="pyarrow")
    for bad in (0, -1, 1.5, True, (0, 2), "2"):
        with pytest.raises(ValueError, match="concurrency"):
            detect_dataset(ds, concurrency=bad)


# The callable class itself, without Ray.

@pytest.fixture(scope="module")
def face_detector(weights_dir):
    return FaceDetector(weights=str(weights_dir))


def test_callable_class_on_numpy_batches(face_detector, detector, photos, paths, loop_faces):
    group = photos["group_selfie"]
    want = [f.to_dict() for f in detector.detect(group)]
    # Images of one size come as one NxHxWxC array, read-only views of Ray's buffers.
    stack = np.stack([group, group])
    stack.setflags(write=False)
    out = face_detector({"image": stack, "n": np.arange(2)})
    assert list(out) == ["image", "n", "faces"] and out["image"] is stack
    assert out["faces"].type.equals(FACES_TYPE)
    assert out["faces"].to_pylist() == [want, want]
    # Ragged ones as an object array; "image" wins over "bytes" and "path".
    ragged = np.empty(2, dtype=object)
    ragged[:] = [photos["foliage_no_face"], group]
    junk = np.array([b"not an image", b"nor this"], dtype=object)
    out = face_detector({"image": ragged, "bytes": junk, "path": np.array(["a", "b"])})
    assert out["faces"].to_pylist() == [[], want]
    # "bytes" wins over "path".
    encoded = np.array([Path(p).read_bytes() for p in paths], dtype=object)
    out = face_detector({"path": np.array(["x", "y", "z"]), "bytes": encoded})
    assert out["faces"].to_pylist() == [loop_faces[p] for p in paths]
    # A batch without faces still has the full type (no list<null>).
    out = face_detector({"image": np.zeros((2, 50, 50, 3), np.uint8)})
    assert out["faces"].type.equals(FACES_TYPE) and out["faces"].to_pylist() == [[], []]


def test_callable_class_on_pandas_batches(face_detector, paths, loop_faces):
    df = pd.DataFrame({"path": paths, "k": range(3)}, index=[10, 11, 12])
    out = face_detector(df)
    assert list(out.columns) == ["path", "k", "faces"] and list(out.index) == [10, 11, 12]
    assert "faces" not in df.columns  # the input batch is left alone
    assert pa.Table.from_pandas(out).schema.field("faces").type.equals(FACES_TYPE)
    assert [_plain(f) for f in out["faces"]] == [loop_faces[p] for p in paths]


def test_callable_class_column_and_uris(weights_dir, paths, loop_faces):
    det = FaceDetector(column="src", weights=str(weights_dir))
    uris = np.array([Path(p).as_uri() for p in paths])  # file:// through pyarrow.fs
    out = det({"src": uris, "image": np.zeros((3, 2, 2, 3), np.uint8)})
    assert out["faces"].to_pylist() == [loop_faces[p] for p in paths]


def test_callable_class_errors_name_the_row(face_detector, paths):
    with pytest.raises(ValueError, match=r"none of the columns.*\['a', 'b'\]"):
        face_detector({"a": np.zeros(1), "b": np.zeros(1)})
    with pytest.raises(TypeError, match="batch_format"):
        face_detector(pa.table({"path": paths}))
    batch = {"bytes": np.array([Path(paths[0]).read_bytes(), b"garbage"], dtype=object),
             "path": np.array(["ok.jpg", "broken.jpg"])}
    with pytest.raises(OSError, match="cannot read image") as info:
        face_detector(batch)
    notes = getattr(info.value, "__notes__", None)
    if notes is not None:  # Python 3.11+
        assert "row 1" in notes[0] and "broken.jpg" in notes[0]
    frame = pd.DataFrame({k: list(v) for k, v in batch.items()}, index=[7, 3])
    with pytest.raises(OSError, match="cannot read image") as info:
        face_detector(frame)
    notes = getattr(info.value, "__notes__", None)
    if notes is not None:
        assert "row 1" in notes[0] and "broken.jpg" in notes[0]


def test_pool_keywords_follow_the_ray_version(monkeypatch):
    """`compute=ActorPoolStrategy` from Ray 2.51 (where `concurrency` is
    deprecated), `concurrency=` before (where `compute` is)."""
    from ssdface import ray as ssdface_ray

    monkeypatch.setattr(ray, "__version__", "2.44.1")
    assert ssdface_ray._pool(3, 1) == {"concurrency": 3}
    assert ssdface_ray._pool((1, 4), 1) == {"concurrency": (1, 4)}
    assert ssdface_ray._pool(None, 1) == {"concurrency": (1, 2**31 - 1)}
    monkeypatch.setattr(ray, "__version__", "2.60.0")
    for concurrency, want in ((3, (3, 3)), ((1, 4), (1, 4)), (None, (1, None))):
        (key, strategy), = ssdface_ray._pool(concurrency, 1).items()
        assert key == "compute" and isinstance(strategy, ray.data.ActorPoolStrategy)
        assert (strategy.min_size, strategy.max_size) == (want[0], want[1] or strategy.max_size)

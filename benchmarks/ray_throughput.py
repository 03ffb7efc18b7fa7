"""Images per second of ssdface.ray.detect_dataset against a plain loop.

    python benchmarks/ray_throughput.py [--copies 100] [--cpus 2] [--weights PATH]
                                        [--precision f32|int8]

Copies the shared photos (``../shared/images`` or ``$SSDFACE_SHARED``) into a
temporary folder until there are ``--copies`` files, then times, over all of
them: a plain single-process ``Detector().detect(path)`` loop (1 and 2
threads), and ``detect_dataset`` on a local Ray instance of ``--cpus`` CPUs
fed by a dataset of paths, ``read_binary_files`` and ``read_images``. The
Ray times are end to end for one pass (actor start-up included, Ray's own
start-up not), as a batch job pays them. Prints times, never checks them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import ssdface


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--precision", default="f32", choices=["f32", "int8"],
                        help="the detectors' precision (default f32)")
    args = parser.parse_args()

    shared = Path(os.environ.get("SSDFACE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    photos = sorted((shared / "images").glob("*.jpg"))
    weights = args.weights or os.environ.get("SSDFACE_WEIGHTS")
    if weights is None and (shared / "weights" / "ssd_mobilenetv2_face_nhwc").is_dir():
        weights = str(shared / "weights" / "ssd_mobilenetv2_face_nhwc")
    kwargs = {"weights": weights} if weights else {}
    kwargs["precision"] = args.precision
    print(f"precision {args.precision}")

    work = Path(tempfile.mkdtemp(prefix="ssdface-bench-"))
    try:
        paths = []
        for i in range(args.copies):
            src = photos[i % len(photos)]
            dst = work / "photos" / f"{i:05d}_{src.name}"
            dst.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dst)
            paths.append(str(dst))
        n = len(paths)

        def report(name: str, seconds: float) -> None:
            print(f"{name:<52} {seconds:7.2f} s {n / seconds:8.1f} images/s", flush=True)

        for threads in (1, 2):
            with ssdface.Detector(num_threads=threads, **kwargs) as det:
                det.detect(paths[0])
                t0 = time.perf_counter()
                for p in paths:
                    det.detect(p)
                report(f"plain loop, detect(path), num_threads={threads}", time.perf_counter() - t0)

        import ray
        import ray.data

        from ssdface.ray import detect_dataset

        root = str(Path(ssdface.__file__).resolve().parent.parent)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                 _temp_dir=str(work / "ray"), log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": root}})
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            cases = [
                ("paths (from_items)", lambda: ray.data.from_items([{"path": p} for p in paths]),
                 [args.cpus, (1, args.cpus)]),
                ("read_binary_files", lambda: ray.data.read_binary_files(
                    str(work / "photos"), include_paths=True), [(1, args.cpus), args.cpus - 1]),
                ("read_images", lambda: ray.data.read_images(
                    str(work / "photos"), include_paths=True, mode="RGB"),
                 [(1, args.cpus), args.cpus - 1]),
            ]
            for name, make, concurrencies in cases:
                for concurrency in concurrencies:
                    if concurrency == 0:
                        continue
                    t0 = time.perf_counter()
                    count = detect_dataset(make(), concurrency=concurrency,
                                           **kwargs).materialize().count()
                    assert count == n
                    report(f"detect_dataset, {name}, concurrency={concurrency}",
                           time.perf_counter() - t0)
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

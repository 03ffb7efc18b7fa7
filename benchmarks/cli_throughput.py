"""Throughput of ``ssdface detect`` on a folder of photos, by number of jobs.

Makes a folder of JPEGs (default 200) in a temporary directory from the three
shared photos, resized to assorted sizes (longest side 640-2000 px, seed 0,
quality 90), then times the whole command, ``python -m ssdface detect DIR
--jobs N -q --format jsonl > /dev/null``, start to exit, as a user would see
it (interpreter start, worker start and detector builds included). Runs of
the job counts are interleaved and each is repeated (median of 3).

    python benchmarks/cli_throughput.py [--images 200] [--jobs 1 2] [--runs 3] [--profile]
                                        [--precision f32 int8] [--wait-load L]

``--precision`` runs the command with each value given (interleaved with
the job counts). Prints a markdown table: precision, jobs, images, seconds,
images/s, ratio to the first job count of that precision, and the CPU
seconds all the command's processes used (Linux; a busy machine inflates
seconds, hardly CPU seconds). ``--profile`` adds where
the time goes: interpreter start and import, detector build, decode and
detect per image (CPU time, in-process), start of the workers, and record
transfer between processes.

Weights: ``--weights``, else ``$SSDFACE_WEIGHTS``, else the shared ``.npy``
folder. A folder is packed into a temporary blob first (an installed package
reads its embedded blob, which is what each worker then loads).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shared_dir() -> Path:
    env = os.environ.get("SSDFACE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def make_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    sources = []
    for path in sorted((shared_dir() / "images").glob("*.jpg")):
        with Image.open(path) as img:
            sources.append(img.convert("RGB"))
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        src = sources[i % len(sources)]
        side = rng.randint(640, 2000)
        scale = side / max(src.size)
        img = src.resize((max(1, round(src.width * scale)), max(1, round(src.height * scale))),
                         Image.BILINEAR)
        path = folder / f"photo_{i:04d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def weights_blob(arg: str | None, tmp: Path) -> Path:
    from ssdface import pack_weights

    path = Path(arg or os.environ.get("SSDFACE_WEIGHTS")
                or shared_dir() / "weights" / "ssd_mobilenetv2_face_nhwc")
    if path.is_dir():
        return pack_weights(path, tmp / "weights.blob")
    return path


def env_for(blob: Path) -> dict[str, str]:
    env = dict(os.environ, SSDFACE_WEIGHTS=str(blob))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _become_subreaper() -> bool:
    """Linux: adopt the command's orphans (forkserver workers outlive their
    server by a moment), so that their CPU time is counted when reaped."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _cpu_of_children() -> float:
    import resource

    while True:  # reap adopted orphans
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(folder: Path, jobs: int, env: dict[str, str], precision: str = "f32"
            ) -> tuple[float, float]:
    """Wall-clock seconds of the command, and the CPU seconds of all its
    processes (NaN where they cannot be counted)."""
    cpu_before = _cpu_of_children()
    cmd = [sys.executable, "-m", "ssdface", "detect", str(folder), "--jobs", str(jobs), "-q",
           "--format", "jsonl", "--precision", precision]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    cpu = _cpu_of_children() - cpu_before if SUBREAPER else float("nan")
    return elapsed, cpu


def profile(paths: list[Path], blob: Path, env: dict[str, str], jobs: int) -> list[tuple]:
    """Where the time goes, part by part."""
    import ssdface
    from ssdface.cli import workers as cli_workers
    from ssdface.image import decode

    rows = []
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ssdface.cli"], env=env, check=True)
        starts.append(time.perf_counter() - t0)
    rows.append(("interpreter start + import ssdface.cli (one process)",
                 f"{statistics.median(starts) * 1e3:.0f} ms"))
    builds = []
    for _ in range(5):
        t0 = time.perf_counter()
        ssdface.Detector(blob).close()
        builds.append(time.perf_counter() - t0)
    rows.append(("Detector build from the blob", f"{statistics.median(builds) * 1e3:.0f} ms"))

    detector = ssdface.Detector(blob)
    job = cli_workers.Job(detector, 0.0, frozenset())
    dec = det = 0.0
    records = []
    for path in paths:
        t0 = time.thread_time()
        decoded = decode(path)
        t1 = time.thread_time()
        records.append(job.finish((str(path), None, None, None, None), decoded, None))
        t2 = time.thread_time()
        dec += t1 - t0
        det += t2 - t1
    n = len(paths)
    rows.append(("decode per image (CPU, reduced-scale JPEG)", f"{dec / n * 1e3:.1f} ms"))
    rows.append(("detect per image (CPU, 1 thread)", f"{det / n * 1e3:.1f} ms"))
    rows.append(("bound on the jobs 2 / jobs 1 ratio on 2 cores, jobs 1 overlapping decode "
                 "with detect: 2 max(d, t) / (d + t)", f"{2 * max(dec, det) / (dec + det):.2f}"))
    t0 = time.perf_counter()
    for record in records:
        pickle.loads(pickle.dumps(record))
    rows.append(("record transfer (pickle round trip, per image)",
                 f"{(time.perf_counter() - t0) / n * 1e6:.0f} us"))

    # The workers as detect starts them with --jobs N (N - 1 workers; this
    # process is the N-th): forkserver (or spawn), each worker rebuilding the
    # detector; timed to the first task done by each.
    workers = max(1, jobs - 1)
    ctx = cli_workers._mp_context()
    t0 = time.perf_counter()
    pool = ctx.Pool(workers, initializer=cli_workers._init_worker,
                    initargs=(pickle.dumps(detector), 0.0, frozenset()))
    pool.map(_ping, range(workers), chunksize=1)
    rows.append((f"worker start, {workers} worker(s), {ctx.get_start_method()} (to the first "
                 "task done by each; the parent works meanwhile)",
                 f"{(time.perf_counter() - t0) * 1e3:.0f} ms"))
    pool.close()
    pool.join()
    detector.close()
    return rows


def _ping(i: int) -> int:
    time.sleep(0.05)  # make every worker take one
    return i


SUBREAPER = False


def wait_for_quiet(limit: float, max_seconds: float) -> None:
    """Sleep until the 1-minute load average is below ``limit`` (at most ``max_seconds``)."""
    start = time.monotonic()
    while os.getloadavg()[0] >= limit:
        if time.monotonic() - start >= max_seconds:
            print(f"# load average still {os.getloadavg()[0]:.2f} after {max_seconds:g} s; "
                  "measuring anyway", file=sys.stderr)
            return
        time.sleep(5.0)


def main() -> None:
    global SUBREAPER
    SUBREAPER = _become_subreaper()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--weights")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--precision", nargs="+", default=["f32"], choices=["f32", "int8"],
                        help="the detect command's --precision values to time (default f32)")
    parser.add_argument("--wait-load", type=float, metavar="L",
                        help="first wait until the 1-minute load average is below L")
    parser.add_argument("--wait-max", type=float, default=600.0, metavar="S",
                        help="wait at most S seconds for --wait-load (default 600)")
    args = parser.parse_args()
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)

    with tempfile.TemporaryDirectory(prefix="ssdface-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        folder.mkdir()
        paths = make_photos(folder, args.images)
        blob = weights_blob(args.weights, tmp)
        env = env_for(blob)
        run_cli(folder, args.jobs[0], env)  # warm the page cache
        cases = [(p, j) for p in args.precision for j in args.jobs]
        times: dict[tuple[str, int], list[tuple[float, float]]] = {c: [] for c in cases}
        for _ in range(args.runs):
            for precision, jobs in cases:
                times[precision, jobs].append(run_cli(folder, jobs, env, precision))
        print(f"`ssdface detect` on {args.images} JPEGs (640-2000 px), {os.cpu_count()} CPUs, "
              f"median of {args.runs} runs, whole command timed; load average before: "
              f"{os.getloadavg()[0]:.1f}\n")
        print("| precision | jobs | images | seconds | images/s | ratio | "
              "CPU seconds, all processes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        base: dict[str, float] = {}
        for precision, jobs in cases:
            seconds = statistics.median(t for t, _ in times[precision, jobs])
            cpu = statistics.median(c for _, c in times[precision, jobs])
            rate = args.images / seconds
            base.setdefault(precision, rate)
            print(f"| {precision} | {jobs} | {args.images} | {seconds:.2f} | {rate:.1f} | "
                  f"{rate / base[precision]:.2f} | {cpu:.2f} |")
        if args.profile:
            print("\n| part | time |\n| --- | ---: |")
            for name, value in profile(paths, blob, env, max(args.jobs)):
                print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()

"""Peak memory growth of one call of each ``photo_to_faces.py`` case, each in a
fresh process (the script run with ``--mem-child``) that forks once and
measures in the fork (see the script's docstring).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from photo_cases import ARRAY, DECODE, PATH_1, build_detector, case_call, full_decode, mfs_case

# The script a memory child runs (with --mem-child).
SCRIPT = Path(__file__).resolve().with_name("photo_to_faces.py")


def maxrss_mib() -> float:
    """Peak resident set of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mem_child(case: str, folder: Path, weights: str | None, threads: int,
              mfs: float | None) -> dict[str, float]:
    """In a fresh process: build, warm up on the small copy, read the peak,
    run the case once on the photo, read the peak again."""
    photo, photo_npy = folder / "photo.jpg", folder / "photo.npy"
    warm, warm_npy = folder / "warm.jpg", folder / "warm.npy"
    array = np.load(photo_npy) if case == ARRAY else None
    detector = build_detector(weights, threads, padded_pass=case != PATH_1)
    if case == DECODE:
        full_decode(warm)
    elif case == ARRAY:
        detector.detect(np.load(warm_npy))
    elif mfs is not None and case == mfs_case(mfs):
        detector.detect(str(warm), min_face_size=mfs)
    else:
        detector.detect(str(warm))
    call = case_call(case, detector, detector, photo, array, mfs)
    before = maxrss_mib()
    result = call()
    after = maxrss_mib()
    del result
    return {"before": before, "after": after, "growth": after - before}


def fork_and_measure(measure: Callable[[], dict[str, float]]) -> int:
    """Run ``measure`` in a forked child and print its JSON; the exit status.

    A process started by ``subprocess`` (or ``multiprocessing`` spawn) does
    not start with a clean ru_maxrss: Python starts it with vfork, so at exec
    the kernel records the *parent's* peak resident set as the new program's
    ru_maxrss, and a small child never rises above it. A fork gets a new
    record (its peak starts at its current resident set, this small
    interpreter's), so the measurement runs in one."""
    sys.stdout.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the measuring child
        os.close(read_end)
        status = 0
        try:
            os.write(write_end, json.dumps(measure()).encode())
        except BaseException:
            import traceback

            traceback.print_exc()
            status = 1
        finally:
            os.close(write_end)
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) != 0:
        return 1
    print(b"".join(chunks).decode())
    return 0


def run_mem_case(case: str, folder: Path, weights: str | None, threads: int,
                 mfs: float | None) -> dict[str, float]:
    cmd = [sys.executable, str(SCRIPT), "--mem-child", case,
           "--mem-folder", str(folder), "--threads", str(threads)]
    if weights is not None:
        cmd += ["--weights", weights]
    if mfs is not None:
        cmd += ["--mfs", repr(mfs)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory child for {case!r} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class MemRow:
    case: str
    baseline_mib: float
    median_mib: float
    max_mib: float


def mem_rows(cases: Sequence[str], folder: Path, weights: str | None, threads: int,
             mfs: float | None, repeats: int) -> list[MemRow]:
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in cases}
    for _ in range(repeats):  # interleaved too
        for case in cases:
            runs[case].append(run_mem_case(case, folder, weights, threads, mfs))
    return [MemRow(c, statistics.median(r["before"] for r in rs),
                   statistics.median(r["growth"] for r in rs), max(r["growth"] for r in rs))
            for c, rs in runs.items()]


"""Ready time of a detector from a blob file: the private copy ssdface uses
(read the file once into aligned memory) against a shared memory map (what
earlier versions did), each in a fresh process, interleaved.

    python benchmarks/blob_load.py [--runs 15] [--blob PATH]

Prints a markdown table: median and p90 ms from opening the file to a ready
engine (the file in the page cache, as after the first start), and RSS
growth. Never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, mmap, os, sys, time
from ssdface import _core
from ssdface.weights import read_blob
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
path, how = sys.argv[1], sys.argv[2]
before = rss()
t0 = time.perf_counter()
if how == "copy":
    engine = _core.Engine(read_blob(path), 1)
else:
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    engine = _core.Engine(buf, 1)
t1 = time.perf_counter()
print(json.dumps({"ms": (t1 - t0) * 1e3, "rss": rss() - before}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--blob", help="blob file (default: the one a Detector() finds)")
    args = parser.parse_args()
    if args.blob is None:
        from ssdface.weights import find_weights

        args.blob = str(find_weights(None))
    results: dict[str, list[dict]] = {"copy": [], "mmap": []}
    for _ in range(args.runs):
        for how in results:
            out = subprocess.run([sys.executable, "-c", CHILD, args.blob, how],
                                 capture_output=True, text=True, check=True).stdout
            results[how].append(json.loads(out))
    print("| load | median ms | p90 ms | RSS growth MB |")
    print("|---|---:|---:|---:|")
    for how, rows in results.items():
        ms = sorted(r["ms"] for r in rows)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        rss = statistics.median(r["rss"] for r in rows) / 1e6
        name = "private copy (ssdface)" if how == "copy" else "shared mmap (before)"
        print(f"| {name} | {statistics.median(ms):.2f} | {p90:.2f} | {rss:.1f} |")


if __name__ == "__main__":
    main()

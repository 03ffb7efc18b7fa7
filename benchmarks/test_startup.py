"""pytest-benchmark: start-up of each engine in a fresh process (startup.py).

The benchmarked time is the whole child process (Python start-up included);
extra_info holds what startup.py measured inside it: import, load and first run
times (ms) and VmRSS growth (kB). For ssdface, from a blob and from the .npy folder.

Run: python -m pytest benchmarks/test_startup.py -q (not part of the test suite).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import engines
import pytest

HERE = Path(__file__).resolve().parent
CASES = [
    (engines.SSDFACE, "blob"),
    (engines.SSDFACE, "npy"),
    (engines.LITERT, "tflite"),
    (engines.TFLITE_RUNTIME, "tflite"),
    (engines.ONNXRUNTIME, "onnx"),
    (engines.OPENVINO, "onnx"),
]


@pytest.mark.parametrize(("engine", "source"), CASES, ids=[f"{e}-{s}" for e, s in CASES])
def test_startup(benchmark, engine, source, models, blob, weights_dir):
    if engine != engines.SSDFACE:
        try:  # skip engines that cannot run here (tflite-runtime under numpy 2, ...)
            engines.make_forward(engine, 1, models, blob)
        except engines.Unavailable as exc:
            pytest.skip(f"{engine}: {exc}")
    weights = {"blob": blob, "npy": weights_dir}.get(source)
    argv = [sys.executable, str(HERE / "startup.py"), engine]
    argv += ["--weights", str(weights)] if weights else ["--model", str(models[source])]
    runs = []

    def run() -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    benchmark.group = "start-up (fresh process)"
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    last = runs[-1]
    benchmark.extra_info.update(
        {key: sorted(r[key] for r in runs)[len(runs) // 2]
         for key in ("import_ms", "load_ms", "first_run_ms", "total_ms")},
        rss_import_kb=last["rss_import"] - last["rss_start"],
        rss_loaded_kb=last["rss_load"] - last["rss_import"],
        rss_first_run_kb=last["rss_first"] - last["rss_import"],
    )

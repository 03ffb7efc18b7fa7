#!/usr/bin/env python
"""Start-up of one engine, from nothing to the first result, in this fresh process.

Run by ``compare.py`` (and ``test_startup.py``) once per measurement, as

    python benchmarks/startup.py ENGINE --weights PATH --model PATH [--threads N]

Nothing but the standard library is imported before the clock starts. Then, timed
with ``time.perf_counter()`` and with VmRSS read from ``/proc/self/status`` at each
step:

1. import: numpy, then the engine's Python package;
2. load: build the detector / interpreter / session from the weights or model
   file (for ssdface: ``Detector(blob)`` memory-maps a blob, ``Detector(npy_dir)``
   reads, checks and packs the 144 ``.npy`` files);
3. first run: one forward pass on a preset input, made before the load's RSS
   baseline (and, for the TFLite interpreters, nothing is cached across
   processes).

Prints one JSON object: the times in ms and the RSS in kB after each step
(``rss_start``, ``rss_import``, ``rss_load``, ``rss_first``).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_kb() -> int:
    """This process's resident set size (VmRSS) in kB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main() -> None:
    rss_start = rss_kb()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("engine", help="ssdface, ai-edge-litert, tflite-runtime, onnxruntime, openvino")
    ap.add_argument("--weights", help="ssdface: blob file or folder of .npy files")
    ap.add_argument("--model", help="the other engines: .tflite or .onnx file")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    # engines.py only imports numpy at module level; it sits beside this script.
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    t = time.perf_counter()
    import engines
    import numpy as np

    if args.engine == engines.SSDFACE:
        import ssdface
    elif args.engine == engines.LITERT:
        from ai_edge_litert.interpreter import Interpreter
    elif args.engine == engines.TFLITE_RUNTIME:
        from tflite_runtime.interpreter import Interpreter
    elif args.engine == engines.ONNXRUNTIME:
        import onnxruntime  # noqa: F401
    elif args.engine == engines.OPENVINO:
        import openvino  # noqa: F401
    else:
        raise SystemExit(f"startup.py: unknown engine {args.engine!r}")
    t_import = time.perf_counter()
    # The input is made outside every timed interval and before the load's
    # RSS baseline: the columns measure the engine, not the benchmark's array.
    x = engines.preset_input()
    rss_import = rss_kb()
    t_load_start = time.perf_counter()

    model = Path(args.model or "")
    if args.engine == engines.SSDFACE:
        forward = ssdface.Detector(args.weights, num_threads=args.threads).forward
    elif args.engine in (engines.LITERT, engines.TFLITE_RUNTIME):
        forward = engines.interpreter_forward(Interpreter, model, args.threads)
    elif args.engine == engines.ONNXRUNTIME:
        forward = engines.onnxruntime_forward(model, args.threads)
    else:
        forward = engines.openvino_forward(model, args.threads)
    t_load = time.perf_counter()
    rss_load = rss_kb()

    box, cls = forward(x)
    t_first = time.perf_counter()
    rss_first = rss_kb()
    assert box.shape == (1, 1917, 4) and cls.shape == (1, 1917, 2)

    print(json.dumps({
        "engine": args.engine,
        "before_import_ms": (t - T0) * 1e3,
        "import_ms": (t_import - t) * 1e3,
        "load_ms": (t_load - t_load_start) * 1e3,
        "first_run_ms": (t_first - t_load) * 1e3,
        "total_ms": (t_import - t + t_first - t_load_start) * 1e3,
        "rss_start": rss_start,
        "rss_import": rss_import,
        "rss_load": rss_load,
        "rss_first": rss_first,
        "checksum": float(np.abs(cls).sum()),
    }))


if __name__ == "__main__":
    main()

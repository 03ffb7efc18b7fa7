#!/usr/bin/env python
"""Forward latency of an exported model under TFLite (and optionally onnxruntime).

Standalone: needs numpy plus ``ai_edge_litert`` or ``tflite_runtime`` (whichever
imports, or the one chosen with ``--runtime``), and ``onnxruntime`` only when
``--onnx`` is given.  Every (engine, thread count) pair gets its own
interpreter/session, is warmed up, and then the runs are interleaved round-robin
in short blocks so that machine noise hits all configurations alike.  Each block
is a pause (``--settle-ms``: onnxruntime's thread pool keeps spinning for tens of
ms after a run and would otherwise steal a core from the next configuration),
one untimed run, then ``--block`` timed runs back to back.  One timed run is a whole
forward call: copy the input in, invoke, copy both outputs out.  Printed per
configuration: median and 90th percentile wall time, and the median process CPU
time of one run (all threads; less sensitive to other load on the machine).

Example::

    python benchmarks/tflite_latency.py --model /tmp/ssdface.tflite --threads 1 2 \\
        --iters 100 --onnx /tmp/ssdface.onnx
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

INPUT_SHAPE = (1, 300, 300, 3)


def _interpreter_class(runtime: str) -> tuple[str, type]:
    """Return (runtime label, Interpreter class) for ``auto``, ``litert`` or ``tflite_runtime``."""
    if runtime in ("auto", "litert"):
        try:
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter

            return f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}", Interpreter
        except ImportError:
            if runtime == "litert":
                raise
    import tflite_runtime
    from tflite_runtime.interpreter import Interpreter

    return f"tflite-runtime {getattr(tflite_runtime, '__version__', '?')}", Interpreter


def tflite_runner(interpreter_cls: type, model: str, threads: int) -> Callable[[np.ndarray], list]:
    """A function running one forward pass of ``model`` with ``threads`` threads."""
    it = interpreter_cls(model_path=model, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = [d["index"] for d in it.get_output_details()]

    def run(x: np.ndarray) -> list:
        it.set_tensor(inp, x)
        it.invoke()
        return [it.get_tensor(i) for i in outs]

    return run


def onnx_runner(model: str, threads: int) -> tuple[str, Callable[[np.ndarray], list]]:
    """(label, forward function) of an onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(x: np.ndarray) -> list:
        return sess.run(None, {name: x})

    return f"onnxruntime {ort.__version__}", run


def main() -> None:
    """Parse arguments, time the runs, print one line per configuration."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="path of the .tflite model")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="thread counts (interleaved)"
    )
    ap.add_argument("--iters", type=int, default=100, help="timed runs per configuration")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs per configuration first")
    ap.add_argument("--block", type=int, default=5, help="timed runs per configuration in a row")
    ap.add_argument("--settle-ms", type=float, default=60.0, help="pause before each block")
    ap.add_argument("--runtime", choices=["auto", "litert", "tflite_runtime"], default="auto")
    ap.add_argument("--onnx", default=None, help="also time this .onnx model with onnxruntime")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    label, interpreter_cls = _interpreter_class(args.runtime)
    runners: list[tuple[str, int, Callable[[np.ndarray], list]]] = []
    for n in args.threads:
        runners.append((label, n, tflite_runner(interpreter_cls, args.model, n)))
    if args.onnx:
        for n in args.threads:
            ort_label, fn = onnx_runner(args.onnx, n)
            runners.append((ort_label, n, fn))

    x = np.random.default_rng(args.seed).uniform(-1.0, 1.0, INPUT_SHAPE).astype(np.float32)
    for _, _, fn in runners:
        for _ in range(args.warmup):
            fn(x)
    times = np.zeros((len(runners), args.iters))
    cpu = np.zeros((len(runners), args.iters))
    block = max(1, args.block)
    for start in range(0, args.iters, block):
        for r, (_, _, fn) in enumerate(runners):
            time.sleep(args.settle_ms / 1e3)
            fn(x)
            for i in range(start, min(start + block, args.iters)):
                c0 = time.process_time()
                t0 = time.perf_counter()
                fn(x)
                times[r, i] = time.perf_counter() - t0
                cpu[r, i] = time.process_time() - c0

    print(
        f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
        f"{args.iters} runs after {args.warmup} warm-up, interleaved in blocks of {block}"
    )
    print(f"{'engine':<28} {'threads':>7} {'median ms':>10} {'p90 ms':>8} {'cpu ms':>8}")
    for (name, n, _), t, c in zip(runners, times, cpu):
        ms = t * 1e3
        print(
            f"{name:<28} {n:>7} {np.median(ms):>10.2f} {np.percentile(ms, 90):>8.2f}"
            f" {np.median(c) * 1e3:>8.2f}"
        )


if __name__ == "__main__":
    main()

"""pytest-benchmark: forward pass and end-to-end detection, ssdface against
TFLite (ai-edge-litert with XNNPACK, tflite-runtime), onnxruntime and OpenVINO on
the same weights, at 1 and 2 threads.

forward: a preset [1, 300, 300, 3] input -> raw outputs. detect: group_selfie.jpg
as a 1500x1000 uint8 array -> faces; ssdface runs Detector.detect, the others
Pillow resize + normalise + forward + NumPy postprocess (engines.detect_pipeline).

Each configuration is timed on its own (pytest-benchmark runs one after the
other); for interleaved timings use compare.py.

Run: python -m pytest benchmarks -q (not part of the test suite).
"""

from __future__ import annotations

from pathlib import Path

import engines
import numpy as np
import pytest

import ssdface

ROUNDS = dict(rounds=50, iterations=1, warmup_rounds=10)
THREADS = (1, 2)


def _forward(engine: str, threads: int, models: dict[str, Path], blob: Path) -> engines.Forward:
    try:
        return engines.make_forward(engine, threads, models, blob)
    except engines.Unavailable as exc:
        pytest.skip(f"{engine}: {exc}")


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_forward(benchmark, engine, threads, models, blob, net_input):
    forward = _forward(engine, threads, models, blob)
    benchmark.group = f"forward, {threads} thread(s)"
    benchmark.extra_info.update(engine=engine, threads=threads)
    box, cls = benchmark.pedantic(forward, args=(net_input,), **ROUNDS)
    assert box.shape == (1, 1917, 4) and cls.shape == (1, 1917, 2)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_detect(benchmark, engine, threads, models, blob, anchors, photo):
    if engine in (engines.SSDFACE, engines.SSDFACE_INT8):
        # one pass at 0.5, the peers' pipeline (the default adds a second pass)
        precision = "int8" if engine == engines.SSDFACE_INT8 else "f32"
        _forward(engine, threads, models, blob)  # skips int8 without the int8 section
        detect = ssdface.Detector(blob, num_threads=threads, padded_pass=False,
                                  score_threshold=0.5, precision=precision).detect
    else:
        detect = engines.detect_pipeline(_forward(engine, threads, models, blob), anchors)
    benchmark.group = f"detect {photo.shape[1]}x{photo.shape[0]}, {threads} thread(s)"
    benchmark.extra_info.update(engine=engine, threads=threads)
    faces = benchmark.pedantic(detect, args=(photo,), **ROUNDS)
    assert len(faces) == 4
    assert np.all([0.5 <= f.score <= 1.0 for f in faces])

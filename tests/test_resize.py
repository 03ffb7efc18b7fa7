"""The image resize (csrc/resize.c: ``ssdface.preprocess``, and the first step
of ``detect``): the extreme inputs that used to crash (row pointers on the
stack)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ssdface


def run_python(code: str, timeout: float) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that imports this ssdface."""
    root = str(Path(ssdface.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- regressions: extreme shapes ------------------------------------------------


@pytest.mark.parametrize("shape", [(12_000_000, 1, 3), (12_000_000, 1)], ids=["rgb", "gray"])
def test_tall_image_in_a_small_stack_thread(weights_dir, shape):
    """A 12,000,000-row image has 80,000 vertical taps per output row; their
    row pointers used to live on the stack (640 KB) and overflowed a thread's
    512 KiB stack: SIGSEGV."""
    proc = run_python(
        f"""
        import threading
        import numpy as np
        import ssdface

        det = ssdface.Detector({str(weights_dir)!r})
        img = np.random.default_rng(0).integers(0, 256, {shape!r}, dtype=np.uint8)
        out = {{}}

        def run():
            out["faces"] = det.detect(img)
            out["x"] = ssdface.preprocess(img)

        threading.stack_size(512 * 1024)
        t = threading.Thread(target=run)
        t.start()
        t.join()
        assert out["x"].shape == (1, 300, 300, 3), out
        print("ok")
        """,
        timeout=120,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, (
        f"exit code {proc.returncode}\n{proc.stderr[-2000:]}"
    )

#!/usr/bin/env python
"""Parity of tflite-runtime on the exported model against ssdface's engine.

The test suite checks ai-edge-litert and onnxruntime (tests/test_parity.py).
tflite-runtime 2.14 only works under numpy < 2, so it is checked by this script,
run in an environment that has it (see benchmarks/README.md):

    python benchmarks/parity_tflite_runtime.py [--model ssdface.tflite] [--weights NPY_DIR]

On the three shared photos (input ``ssdface.preprocess(photo)``) and two random
inputs it prints the relative L2 error of both outputs against
``Detector.forward``, and for the photos whether the NumPy decode + NMS
(``engines.postprocess``) on tflite-runtime's outputs finds the faces
``Detector.detect`` finds (count, largest box difference as a fraction of the
image side, largest score difference).

Without ``--model`` the model is exported first (needs the export extra:
flatbuffers, tflite). Exit status: 0 when every check passes (rel L2 <= 1e-4,
same faces, boxes within 0.5% of the side, scores within 1e-4), 1 when one
fails, 2 when tflite-runtime cannot run in this environment (the reason is
printed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import engines
import numpy as np

RTOL = 1e-4
BOX_TOL = 0.005
SCORE_TOL = 1e-4
PHOTOS = ("group_selfie", "portrait_padded", "foliage_no_face")
SEEDS = (7, 2024)


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, help="exported .tflite (default: export it now)")
    ap.add_argument("--weights", type=Path, default=engines.default_weights_dir(),
                    help="folder of the model's .npy files (default: shared/weights/...)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    try:
        import ssdface
    except ImportError as exc:
        print(f"ssdface is not importable here ({exc}): pip install it in this environment")
        return 2
    print(f"numpy {np.__version__}, tflite-runtime {engines.version(engines.TFLITE_RUNTIME)}, "
          f"ssdface {ssdface.__version__}")

    with tempfile.TemporaryDirectory(prefix="ssdface-parity-") as tmp:
        model = args.model
        if model is None:
            from ssdface import export

            try:
                weights = export.load_npy_weights(args.weights)
                model = export.export_tflite(weights, Path(tmp) / "ssdface.tflite")
            except ImportError as exc:
                print(f"exporting needs {exc.name} (pip install 'ssdface[export]'), "
                      "or pass --model from `ssdface export --format tflite`")
                return 2
        try:
            forward = engines.tflite_runtime_forward(model, args.threads)
        except engines.Unavailable as exc:
            print(f"tflite-runtime cannot run here: {exc}")
            return 2

        detector = ssdface.Detector(args.weights, num_threads=args.threads)
        anchors = detector.anchors()
        images = engines.shared_dir() / "images"
        cases: list[tuple[str, np.ndarray, np.ndarray | None]] = []
        for name in PHOTOS:
            image = engines.load_photo(images / f"{name}.jpg")
            cases.append((name, ssdface.preprocess(image), image))
        for seed in SEEDS:
            x = np.random.default_rng(seed).uniform(-1, 1, engines.INPUT_SHAPE)
            cases.append((f"random seed {seed}", x.astype(np.float32), None))

        ok = True
        print(f"{'input':<18} {'rel L2 boxes':>12} {'rel L2 logits':>13}  faces (tflite-runtime"
              " / ssdface), max box diff / side, max score diff")
        for name, x, image in cases:
            got = forward(x)
            want = detector.forward(x)
            errs = [rel_l2(g, w) for g, w in zip(got, want)]
            ok &= max(errs) <= RTOL
            line = f"{name:<18} {errs[0]:>12.2e} {errs[1]:>13.2e}"
            if image is not None:
                h, w = image.shape[:2]
                faces = engines.postprocess(got[0][0], got[1][0], anchors, h, w)
                expected = detector.detect(image)
                line += f"  {len(faces)} / {len(expected)}"
                if len(faces) != len(expected):
                    ok = False
                elif faces:
                    side = np.array([w, h, w, h], dtype=np.float64)
                    box_diff = max(float((np.abs(np.subtract(f.box, e.box)) / side).max())
                                   for f, e in zip(faces, expected))
                    score_diff = max(abs(f.score - e.score) for f, e in zip(faces, expected))
                    ok &= box_diff <= BOX_TOL and score_diff <= SCORE_TOL
                    line += f", {box_diff:.2e}, {score_diff:.2e}"
            print(line)
    print("parity: OK" if ok else
          f"parity: FAILED (limits: rel L2 {RTOL}, boxes {BOX_TOL} of the side, scores "
          f"{SCORE_TOL})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

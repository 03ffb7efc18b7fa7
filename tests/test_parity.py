"""Side by side with other runtimes: the exported TFLite model under ai-edge-litert
(XNNPACK) and the exported ONNX model under onnxruntime, against ssdface's own engine.

On the three shared photos (input ``ssdface.preprocess(photo)``) and on random
inputs, both raw outputs must match ``Detector.forward`` to a relative L2 error of
1e-4, and the same NumPy decode + NMS (``reference.postprocess_reference``) run on
the other runtime's outputs must give the faces ``Detector.detect`` gives: as many,
boxes within 0.5% of the image side, scores within 1e-4.

tflite-runtime (which needs numpy < 2) is checked by
``benchmarks/parity_tflite_runtime.py`` instead, run in a numpy < 2 environment:
here a test for it could only skip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import reference

import ssdface
from ssdface import export

RTOL = 1e-4
BOX_TOL = 0.005  # of the image side
SCORE_TOL = 1e-4
RANDOM_SEEDS = (7, 2024)
PHOTOS = ("group_selfie", "portrait_padded", "foliage_no_face")
EXPECTED_FACES = {"group_selfie": 4, "portrait_padded": 1, "foliage_no_face": 0}

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]




@pytest.fixture(scope="module")
def models(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    weights = export.load_npy_weights(weights_dir)
    folder = tmp_path_factory.mktemp("parity")
    return {
        "tflite": export.export_tflite(weights, folder / "ssdface.tflite"),
        "onnx": export.export_onnx(weights, folder / "ssdface.onnx"),
    }


def litert_forward(model: Path) -> Forward:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = [d["index"] for d in it.get_output_details()]

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it.set_tensor(inp, x)
        it.invoke()
        box, cls = (it.get_tensor(i).copy() for i in outs)
        return box, cls

    return run


def onnxruntime_forward(model: Path) -> Forward:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        box, cls = sess.run([export.BOX_OUTPUT_NAME, export.CLASS_OUTPUT_NAME],
                            {export.INPUT_NAME: x})
        return box, cls

    return run


RUNTIMES = {
    "ai-edge-litert": ("tflite", litert_forward),
    "onnxruntime": ("onnx", onnxruntime_forward),
}


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest, models: dict[str, Path]) -> Forward:
    fmt, make = RUNTIMES[request.param]
    return make(models[fmt])


def check_forward(
    outputs: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]
) -> None:
    for name, got, want in zip(("box encodings", "class logits"), outputs, expected):
        assert got.shape == want.shape and got.dtype == np.float32, (name, got.shape, got.dtype)
        err = reference.rel_l2(got, want)
        assert err <= RTOL, f"{name}: relative L2 error {err:.3g} > {RTOL}"


def check_faces(
    got: list[reference.Face], want: list[ssdface.Face], height: int, width: int
) -> None:
    assert len(got) == len(want), f"{len(got)} faces, ssdface found {len(want)}"
    side = np.array([width, height, width, height], dtype=np.float64)
    for (box, score), face in zip(got, want):
        diff = np.abs(np.array(box) - np.array(face.box)) / side
        assert diff.max() <= BOX_TOL, f"box {box} vs ssdface {face.box}"
        assert abs(score - face.score) <= SCORE_TOL, f"score {score} vs ssdface {face.score}"


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_forward_and_faces(runtime, single_pass, photos, name) -> None:
    image = photos[name]
    x = ssdface.preprocess(image)
    outputs = runtime(x)
    check_forward(outputs, single_pass.forward(x))
    height, width = image.shape[:2]
    faces = reference.postprocess_reference(outputs[0][0], outputs[1][0], height, width)
    expected = single_pass.detect(image)
    assert len(expected) == EXPECTED_FACES[name]
    check_faces(faces, expected, height, width)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_input_forward_and_faces(runtime, detector, seed) -> None:
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (1, 300, 300, 3)).astype(np.float32)
    outputs = runtime(x)
    expected = detector.forward(x)
    check_forward(outputs, expected)
    # Random inputs give no confident face; a low threshold makes NMS do some work.
    got, want = (
        reference.postprocess_reference(box[0], cls[0], 300, 300, score_threshold=0.02)
        for box, cls in (outputs, expected)
    )
    assert len(got) == len(want) and len(want) > 0
    for (box, score), (wbox, wscore) in zip(got, want):
        assert np.abs(np.subtract(box, wbox)).max() <= BOX_TOL * 300
        assert abs(score - wscore) <= SCORE_TOL

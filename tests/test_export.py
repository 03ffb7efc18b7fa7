"""ssdface.export: the TFLite and ONNX exports against each other and the float64 reference.

The exporters need the optional ``flatbuffers``/``tflite`` and ``onnx`` packages,
and running the exported models needs ``ai_edge_litert`` (or ``tflite_runtime``)
and ``onnxruntime``; each test skips when what it needs is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import reference

from ssdface import export

SEED = 4321
RTOL = 1e-4






def tflite_interpreter_class() -> type:
    """``Interpreter`` from ai_edge_litert, else tflite_runtime, else skip."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        tflite_runtime = pytest.importorskip("tflite_runtime.interpreter")
        Interpreter = tflite_runtime.Interpreter  # noqa: N806
    return Interpreter


@pytest.fixture(scope="module")
def npy_weights(weights_dir: Path) -> dict[str, np.ndarray]:
    return export.load_npy_weights(weights_dir)


@pytest.fixture(scope="module")
def tflite_path(
    npy_weights: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    pytest.importorskip("flatbuffers")
    pytest.importorskip("tflite")
    return export.export_tflite(npy_weights, tmp_path_factory.mktemp("export") / "ssdface.tflite")


@pytest.fixture(scope="module")
def onnx_path(npy_weights: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    return export.export_onnx(npy_weights, tmp_path_factory.mktemp("export") / "ssdface.onnx")


@pytest.fixture(scope="module")
def tflite_outputs(tflite_path: Path) -> tuple[np.ndarray, np.ndarray]:
    interpreter_cls = tflite_interpreter_class()
    it = interpreter_cls(model_path=str(tflite_path), num_threads=1)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    assert inp["name"] == export.INPUT_NAME
    assert list(inp["shape"]) == [1, 300, 300, 3] and inp["dtype"] == np.float32
    outs = it.get_output_details()
    assert [d["name"] for d in outs] == [export.BOX_OUTPUT_NAME, export.CLASS_OUTPUT_NAME]
    it.set_tensor(inp["index"], reference.random_input(SEED))
    it.invoke()
    box, cls = (it.get_tensor(d["index"]) for d in outs)
    return box, cls


@pytest.fixture(scope="module")
def onnx_outputs(onnx_path: Path) -> tuple[np.ndarray, np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [export.INPUT_NAME]
    assert [o.name for o in sess.get_outputs()] == [
        export.BOX_OUTPUT_NAME,
        export.CLASS_OUTPUT_NAME,
    ]
    box, cls = sess.run(None, {export.INPUT_NAME: reference.random_input(SEED)})
    return box, cls


def check_outputs(
    outputs: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]
) -> None:
    box, cls = outputs
    assert box.shape == (1, reference.NUM_ANCHORS, 4) and box.dtype == np.float32
    assert cls.shape == (1, reference.NUM_ANCHORS, 2) and cls.dtype == np.float32
    err_box = reference.rel_l2(box, expected[0])
    err_cls = reference.rel_l2(cls, expected[1])
    assert err_box <= RTOL, f"box encodings relative L2 error {err_box:.3g}"
    assert err_cls <= RTOL, f"class logits relative L2 error {err_cls:.3g}"


def test_load_npy_weights(npy_weights: dict[str, np.ndarray]) -> None:
    assert len(npy_weights) == 144
    assert all(a.dtype == np.float32 for a in npy_weights.values())
    assert npy_weights["FeatureExtractor_MobilenetV2_Conv_weights"].shape == (32, 3, 3, 3)


def test_tflite_matches_reference(tflite_outputs, ref_cache) -> None:
    expected = ref_cache.forward(f"export-random:{SEED}", lambda: reference.random_input(SEED))
    check_outputs(tflite_outputs, expected)


def test_onnx_matches_reference(onnx_outputs, ref_cache) -> None:
    expected = ref_cache.forward(f"export-random:{SEED}", lambda: reference.random_input(SEED))
    check_outputs(onnx_outputs, expected)


def test_tflite_matches_onnx(tflite_outputs, onnx_outputs) -> None:
    check_outputs(tflite_outputs, onnx_outputs)


def test_tflite_builtin_ops_only(tflite_path: Path) -> None:
    """Schema version 3, TFL3 identifier, only the five builtin ops at version 1."""
    tfl = pytest.importorskip("tflite")
    buf = tflite_path.read_bytes()
    assert buf[4:8] == b"TFL3"
    model = tfl.Model.GetRootAsModel(buf, 0)
    assert model.Version() == 3
    allowed = {
        tfl.BuiltinOperator.CONV_2D,
        tfl.BuiltinOperator.DEPTHWISE_CONV_2D,
        tfl.BuiltinOperator.ADD,
        tfl.BuiltinOperator.RESHAPE,
        tfl.BuiltinOperator.CONCATENATION,
    }
    codes = set()
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        assert oc.BuiltinCode() == oc.DeprecatedBuiltinCode()
        assert oc.Version() == 1
        codes.add(oc.BuiltinCode())
    assert codes == allowed


def test_tflite_fully_delegated_to_xnnpack(tflite_path: Path) -> None:
    check_fully_delegated(tflite_path)


def check_fully_delegated(tflite_path: Path) -> None:
    """One delegate node produces the graph outputs and is fed only by the input and constants."""
    interpreter_cls = tflite_interpreter_class()
    it = interpreter_cls(model_path=str(tflite_path), num_threads=1)
    it.allocate_tensors()
    if not hasattr(it, "_get_ops_details"):
        pytest.skip("interpreter does not expose _get_ops_details")
    ops = it._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    if not delegates:
        pytest.skip("XNNPACK delegate not applied by this runtime build")
    assert len(delegates) == 1
    produced = {t for o in ops if o["op_name"] != "DELEGATE" for t in o["outputs"].tolist()}
    graph_inputs = {d["index"] for d in it.get_input_details()}
    graph_outputs = {d["index"] for d in it.get_output_details()}
    (node,) = delegates
    assert set(node["outputs"].tolist()) == graph_outputs
    assert not (set(node["inputs"].tolist()) & produced) - graph_inputs


def test_onnx_model_structure(npy_weights: dict[str, np.ndarray]) -> None:
    onnx = pytest.importorskip("onnx")
    model = export.build_onnx(npy_weights)  # runs onnx.checker.check_model itself
    onnx.checker.check_model(model)
    graph = model.graph
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.output]
    assert [v.name for v in graph.input] == [export.INPUT_NAME]
    assert dims == [[1, reference.NUM_ANCHORS, 4], [1, reference.NUM_ANCHORS, 2]]
    ops = {n.op_type for n in graph.node}
    assert ops == {"Transpose", "Conv", "Clip", "Add", "Reshape", "Concat"}


def test_export_rejects_bad_weights(npy_weights: dict[str, np.ndarray]) -> None:
    pytest.importorskip("onnx")
    bad = dict(npy_weights)
    key = "FeatureExtractor_MobilenetV2_expanded_conv_3_project_weights"
    bad[key] = bad[key][:, :, :, :-1]
    with pytest.raises(ValueError, match=key):
        export.build_onnx(bad)
    del bad[key]
    with pytest.raises(KeyError, match=key):
        export.build_onnx(bad)

"""The ``ssdface`` command line tool in process (``ssdface.cli.main``):
detect, pack and export, usage errors, and --help of every command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from cli_support import PACKAGE_ROOT, SUMMARY

import ssdface
from ssdface import _core
from ssdface.cli import main


def test_detect_in_process(capsys, weights_dir, photo_paths):
    assert main(["detect", str(photo_paths["group_selfie"]), "--weights", str(weights_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    path, score, *box = lines[0].split("\t")
    assert path == str(photo_paths["group_selfie"]) and 0.5 <= float(score) <= 1
    assert len(box) == 4


def test_detect_precision_int8(capsys, weights_dir, photo_paths):
    """--precision int8 runs the quantized network: the same faces here."""
    paths = [str(photo_paths[k]) for k in ("group_selfie", "portrait_padded", "foliage_no_face")]
    assert main(["detect", *paths, "--weights", str(weights_dir), "--format", "json",
                 "--jobs", "1", "--precision", "int8"]) == 0
    assert [len(r["faces"]) for r in json.loads(capsys.readouterr().out)] == [4, 1, 0]
    with pytest.raises(SystemExit):
        main(["detect", paths[0], "--precision", "int4"])


def test_detect_json_and_threshold(capsys, weights_dir, photo_paths):
    paths = [str(photo_paths[k]) for k in ("group_selfie", "portrait_padded", "foliage_no_face")]
    assert main(["detect", *paths, "--weights", str(weights_dir), "--json", "--jobs", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [len(r["faces"]) for r in doc] == [4, 1, 0]
    assert doc[0]["width"] == 1500 and doc[0]["height"] == 1000
    assert main(["detect", paths[0], "--weights", str(weights_dir), "--format", "json",
                 "--threshold", "0.8"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["faces"]) == 3


def test_detect_draw_single_file(tmp_path, capsys, weights_dir, photo_paths):
    from PIL import Image

    out = tmp_path / "drawn"
    assert main(["detect", str(photo_paths["portrait_padded"]), "--weights", str(weights_dir),
                 "--draw", str(out)]) == 0
    with Image.open(out / "portrait_padded.jpg") as img:
        assert img.size == (900, 900)


def test_pack_then_detect(tmp_path, capsys, weights_dir, photo_paths):
    blob = tmp_path / "w.blob"
    assert main(["pack", str(weights_dir), str(blob)]) == 0
    assert blob.stat().st_size > 18_000_000
    capsys.readouterr()
    assert main(["detect", str(photo_paths["portrait_padded"]), "--weights", str(blob)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    assert main(["info", "--weights", str(blob)]) == 0
    out = capsys.readouterr().out
    assert f"tensor_count: {len(_core.tensor_specs()) + len(_core.layers()) + 1}" in out  # + int8
    assert f"kernels: {ssdface.default_isa()}" in out


def test_errors_are_one_line(tmp_path, capsys, weights_dir):
    assert main(["detect", str(tmp_path / "missing.jpg"), "--weights", str(weights_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("ssdface: error: cannot read image")
    assert SUMMARY.match(err[1])
    assert main(["detect", "x.jpg", "--weights", str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["pack", str(tmp_path), str(tmp_path / "o.blob")]) == 1
    assert "missing weight file" in capsys.readouterr().err


def test_export_tflite_loads(tmp_path, capsys, weights_dir):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "models" / "face.tflite"
    assert main(["export", "--format", "tflite", str(out), "--weights", str(weights_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} ({out.stat().st_size} bytes)"
    assert [p.name for p in out.parent.iterdir()] == ["face.tflite"]  # no temporary file left
    it = Interpreter(model_path=str(out), num_threads=1)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    assert inp["name"] == "normalized_input_image_tensor" and list(inp["shape"]) == [1, 300, 300, 3]
    assert [list(d["shape"]) for d in it.get_output_details()] == [[1, 1917, 4], [1, 1917, 2]]


def test_export_onnx_from_env_loads(tmp_path, capsys, monkeypatch, weights_dir):
    import onnx
    import onnxruntime as ort

    monkeypatch.setenv("SSDFACE_WEIGHTS", str(weights_dir))
    out = tmp_path / "face.onnx"
    assert main(["export", "--format", "onnx", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    onnx.checker.check_model(str(out))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 300, 300, 3), dtype=np.float32)
    box, cls = sess.run(None, {"normalized_input_image_tensor": x})
    assert box.shape == (1, 1917, 4) and cls.shape == (1, 1917, 2)


def test_export_int8_formats(tmp_path, capsys, weights_dir):
    """tflite-int8 and onnx-qdq write the int8 network (export.quantized_model),
    with the float32 input and outputs of the float exports."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    tfl, qdq = tmp_path / "int8.tflite", tmp_path / "qdq.onnx"
    for fmt, out in (("tflite-int8", tfl), ("onnx-qdq", qdq)):
        assert main(["export", "--format", fmt, str(out), "--weights", str(weights_dir)]) == 0
        assert capsys.readouterr().out.strip() == f"wrote {out} ({out.stat().st_size} bytes)"
    it = Interpreter(model_path=str(tfl), num_threads=1)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    assert inp["name"] == "normalized_input_image_tensor" and inp["dtype"] == np.float32
    assert [list(d["shape"]) for d in it.get_output_details()] == [[1, 1917, 4], [1, 1917, 2]]
    sess = ort.InferenceSession(str(qdq), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 300, 300, 3), dtype=np.float32)
    box, cls = sess.run(None, {"normalized_input_image_tensor": x})
    assert box.shape == (1, 1917, 4) and cls.shape == (1, 1917, 2)


def test_export_from_blob(tmp_path, capsys, monkeypatch, weights_dir):
    """A blob (given, or found like Detector() finds it) exports the same
    model as the .npy folder: the blob unpacks to the exact source tensors."""
    from ssdface import export

    blob = tmp_path / "w.blob"
    assert main(["pack", str(weights_dir), str(blob)]) == 0
    from_npy, from_blob = tmp_path / "npy.tflite", tmp_path / "blob.tflite"
    assert main(["export", "--format", "tflite", str(from_npy), "--weights", str(weights_dir)]) == 0
    monkeypatch.setenv("SSDFACE_WEIGHTS", str(blob))
    assert main(["export", "--format", "tflite", str(from_blob)]) == 0
    assert from_blob.read_bytes() == from_npy.read_bytes()
    unpacked, source = export.load_weights(blob), export.load_npy_weights(weights_dir)
    assert unpacked.keys() == source.keys()
    for name, value in source.items():
        np.testing.assert_array_equal(unpacked[name], value, err_msg=name)
    # A folder without the model's files names the missing one; nothing is written.
    capsys.readouterr()
    out = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", str(out), "--weights", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing weight file" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("args", [["export", "m.onnx"], ["export", "--format", "pb", "m.pb"]])
def test_usage_errors_in_process(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


@pytest.mark.parametrize("args", [["--help"], ["detect", "--help"], ["pack", "--help"],
                                  ["export", "--help"], ["verify", "--help"], ["info", "--help"],
                                  ["--version"]])
def test_help(args):
    proc = subprocess.run([sys.executable, "-m", "ssdface", *args], capture_output=True,
                          text=True, timeout=60, cwd=PACKAGE_ROOT)
    assert proc.returncode == 0 and proc.stdout


"""The ``ssdface`` command line tool."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ssdface.cli import main


def test_detect_lines(capsys, weights_dir, photo_paths):
    assert main(["detect", str(photo_paths["group_selfie"]), "--weights", str(weights_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    path, score, *box = lines[0].split("\t")
    assert path == str(photo_paths["group_selfie"]) and 0.5 <= float(score) <= 1
    assert len(box) == 4


def test_detect_json_and_threshold(capsys, weights_dir, photo_paths):
    paths = [str(photo_paths[k]) for k in ("group_selfie", "portrait_padded", "foliage_no_face")]
    assert main(["detect", *paths, "--weights", str(weights_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [len(r["faces"]) for r in doc] == [4, 1, 0]
    assert doc[0]["width"] == 1500 and doc[0]["height"] == 1000
    assert main(["detect", paths[0], "--weights", str(weights_dir), "--json",
                 "--threshold", "0.8"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["faces"]) == 3


def test_detect_draw(tmp_path, capsys, weights_dir, photo_paths):
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
    assert "tensor_count: 144" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys, weights_dir):
    assert main(["detect", str(tmp_path / "missing.jpg"), "--weights", str(weights_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ssdface: error:")
    assert main(["detect", "x.jpg", "--weights", str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["pack", str(tmp_path), str(tmp_path / "o.blob")]) == 1
    assert "missing weight file" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["detect"], ["detect", "a.jpg", "--threshold", "2"],
                                  ["detect", "a.jpg", "--max-faces", "0"], ["bogus"], []])
def test_usage_errors(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


@pytest.mark.parametrize("args", [["--help"], ["detect", "--help"], ["pack", "--help"],
                                  ["--version"]])
def test_help(args):
    proc = subprocess.run([sys.executable, "-m", "ssdface", *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout

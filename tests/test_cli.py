"""The ``ssdface`` command line tool.

``detect`` is run as users run it, ``python -m ssdface detect ...`` in a
subprocess, on small copies of the shared photos laid out in tmp folders.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ssdface
from ssdface.cli import main

# The package under test, whatever folder a subprocess runs in.
PACKAGE_ROOT = Path(ssdface.__file__).resolve().parents[1]
SUMMARY = re.compile(r"^ssdface: (\d+) images?, (\d+) faces?, (\d+) errors? in [\d.]+ s "
                     r"\([\d.]+ images/s\)$")


@pytest.fixture(scope="session")
def blob(tmp_path_factory, weights_dir) -> Path:
    """The weights as a blob: what an installed package reads (a detector
    builds from it in milliseconds, each worker builds one)."""
    return ssdface.pack_weights(weights_dir, tmp_path_factory.mktemp("weights") / "w.blob")


@pytest.fixture(scope="session")
def small(tmp_path_factory, photo_paths) -> dict[str, Path]:
    """The shared photos, 400 px on their longest side: group (3 faces),
    portrait (1), foliage (0)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("small")
    out = {}
    for key, name in (("group_selfie", "group"), ("portrait_padded", "portrait"),
                      ("foliage_no_face", "foliage")):
        with Image.open(photo_paths[key]) as img:
            k = 400 / max(img.size)
            img = img.convert("RGB").resize((round(img.width * k), round(img.height * k)))
        out[name] = folder / f"{name}.jpg"
        img.save(out[name], quality=90)
    return out


@pytest.fixture(scope="session")
def expected(small, blob) -> dict[str, list[dict]]:
    """What the library finds in each small photo, as the CLI reports it."""
    with ssdface.Detector(blob) as det:
        return {name: [{"box": [round(v, 2) for v in f.box], "score": round(f.score, 5)}
                       for f in det.detect(path)] for name, path in small.items()}


def run(args, *, cwd, blob, stdin=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, SSDFACE_WEIGHTS=str(blob), **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "ssdface", *map(str, args)], cwd=cwd,
                          input=stdin, capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def jsonl(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def lay_out(root: Path, small: dict[str, Path], layout: dict[str, str]) -> Path:
    """Copy small photos to root/<relative path> (value: which photo, or
    "junk" for a file that is not an image)."""
    for rel, what in layout.items():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if what == "junk":
            dst.write_bytes(b"this is not an image\n")
        else:
            shutil.copyfile(small[what], dst)
    return root


# --- Inputs: files, folders, recursion, stdin, extensions, order -----------------------------

def test_folder_gives_its_direct_images_sorted_case_insensitively(tmp_path, small, blob,
                                                                  expected):
    lay_out(tmp_path, small, {
        "photos/b.JPG": "group", "photos/a.jpeg": "portrait", "photos/C.Png": "foliage",
        "photos/d.JFIF": "portrait", "photos/e.TiF": "junk", "photos/notes.txt": "junk",
        "photos/raw.dat": "portrait", "photos/sub/z.jpg": "group",
    })
    proc = run(["detect", "photos", "-f", "jsonl", "--jobs", "1"], cwd=tmp_path, blob=blob)
    records = jsonl(proc)
    # Sorted by name (upper case first), every image extension in any case;
    # .txt and .dat are not images; sub/ is not read without -r.
    assert [r["image"] for r in records] == [
        os.path.join("photos", n) for n in ("C.Png", "a.jpeg", "b.JPG", "d.JFIF", "e.TiF")]
    assert [r.get("faces") for r in records[:4]] == [
        expected["foliage"], expected["portrait"], expected["group"], expected["portrait"]]
    assert "cannot read image" in records[4]["error"]
    assert proc.returncode == 1


def test_named_files_are_read_whatever_their_extension(tmp_path, small, blob, expected):
    lay_out(tmp_path, small, {"raw.dat": "group", "noext": "portrait"})
    proc = run(["detect", "raw.dat", "noext", "-f", "jsonl"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    assert [(r["image"], r["faces"]) for r in jsonl(proc)] == [
        ("raw.dat", expected["group"]), ("noext", expected["portrait"])]


def test_paths_between_options(tmp_path, small, blob):
    lay_out(tmp_path, small, {"a/1.jpg": "portrait", "b/c/2.jpg": "group", "z.jpg": "foliage"})
    proc = run(["detect", "z.jpg", "-r", "b", "-f", "jsonl", "a", "--threshold", "0.5", "-",
                "--jobs", "1"], cwd=tmp_path, blob=blob, stdin="a/1.jpg\n")
    assert proc.returncode == 0, proc.stderr
    assert [r["image"] for r in jsonl(proc)] == ["z.jpg", "b/c/2.jpg", "a/1.jpg", "a/1.jpg"]


def test_recursive_descends_in_name_order(tmp_path, small, blob):
    lay_out(tmp_path, small, {
        "top/m.jpg": "portrait", "top/b/x.jpg": "group", "top/a/y.jpg": "foliage",
        "top/a/deeper/z.webp.jpg": "portrait", "top/a/readme.md": "junk",
    })
    proc = run(["detect", "-r", "top", "-f", "jsonl"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    # A folder's own images first, then its subfolders, by name, depth first.
    assert [r["image"] for r in jsonl(proc)] == [
        os.path.join("top", *p.split("/"))
        for p in ("m.jpg", "a/y.jpg", "a/deeper/z.webp.jpg", "b/x.jpg")]


def test_stdin_paths_and_arguments_keep_input_order(tmp_path, small, blob, expected):
    lay_out(tmp_path, small, {"d/one.jpg": "group", "d/two.jpg": "foliage", "x.jpg": "portrait",
                              "folder/f1.jpg": "portrait"})
    listing = f"d/two.jpg\n\n{tmp_path / 'folder'}\r\nd/one.jpg\n"
    proc = run(["detect", "x.jpg", "-", "d/two.jpg", "-f", "jsonl"], cwd=tmp_path, blob=blob,
               stdin=listing)
    assert proc.returncode == 0, proc.stderr
    records = jsonl(proc)
    assert [r["image"] for r in records] == [
        "x.jpg", "d/two.jpg", str(tmp_path / "folder" / "f1.jpg"), "d/one.jpg", "d/two.jpg"]
    assert [r["faces"] for r in records] == [
        expected["portrait"], [], expected["portrait"], expected["group"], []]


# --- Records: no faces, errors, exit status ---------------------------------------------------

def test_no_faces_and_unreadable_images_are_recorded(tmp_path, small, blob, expected):
    lay_out(tmp_path, small, {"in/1.jpg": "portrait", "in/2.jpg": "junk", "in/3.jpg": "foliage"})
    (tmp_path / "in" / "4.png").write_bytes(small["group"].read_bytes()[:2000])  # truncated
    args = ["detect", "in", "missing.jpg", "--jobs", "1"]

    proc = run([*args, "-f", "jsonl"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 1  # some images could not be read, the others were
    records = jsonl(proc)
    assert [r["image"] for r in records] == ["in/1.jpg", "in/2.jpg", "in/3.jpg", "in/4.png",
                                             "missing.jpg"]
    assert records[0]["faces"] == expected["portrait"]
    assert records[2] == {"image": "in/3.jpg", "width": 400, "height": 267, "faces": []}
    for r in (records[1], records[3], records[4]):
        assert set(r) == {"image", "error"}
        assert r["error"].startswith(f"cannot read image {r['image']}: ")
    assert records[4]["error"].endswith("No such file or directory")
    assert SUMMARY.match(proc.stderr.strip()).groups() == ("5", "1", "3")  # errors: records

    # Text: a line per face, IMAGE<TAB>no faces for none, errors on stderr.
    text = run(args, cwd=tmp_path, blob=blob)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0].startswith("in/1.jpg\t") and len(lines[0].split("\t")) == 6
    assert lines[1:] == ["in/3.jpg\tno faces"]
    err = text.stderr.splitlines()
    assert [e.split(":")[1].strip() for e in err[:3]] == ["error"] * 3
    assert "in/2.jpg" in err[0] and "in/4.png" in err[1] and "missing.jpg" in err[2]
    assert SUMMARY.match(err[3]).groups() == ("5", "1", "3")


def test_every_image_read_exits_0(tmp_path, small, blob):
    lay_out(tmp_path, small, {"ok/a.jpg": "foliage"})
    proc = run(["detect", "ok"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0 and proc.stdout == "ok/a.jpg\tno faces\n"


@pytest.mark.parametrize("args", [
    ["detect"], ["detect", "a.jpg", "--threshold", "2"], ["detect", "a.jpg", "--max-faces", "0"],
    ["detect", "a.jpg", "--format", "xml"], ["detect", "a.jpg", "--jobs", "0"],
    ["detect", "a.jpg", "--margin", "-1"], ["detect", "a.jpg", "--bogus"], ["bogus"], [],
    ["verify", "a.blob", "b.blob"], ["verify", "--bogus"], ["info", "extra"],
])
def test_usage_errors_exit_2(tmp_path, blob, args):
    proc = run(args, cwd=tmp_path, blob=blob)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_options_the_library_lacks_are_refused_by_name(tmp_path, small, blob):
    """--min-face-size and --precision reach Detector by name: refused with
    exit 2 until the library has the keyword, then passed through."""
    import inspect

    lay_out(tmp_path, small, {"a.jpg": "portrait"})
    params = inspect.signature(ssdface.Detector).parameters
    for option, value, keyword in (("--min-face-size", "20", "min_face_size"),
                                   ("--precision", "int8", "precision")):
        proc = run(["detect", "a.jpg", option, value], cwd=tmp_path, blob=blob)
        if keyword in params:
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == 2
            assert proc.stderr.strip() == (f"ssdface detect: error: this version of ssdface "
                                           f"({ssdface.__version__}) does not support {option}")


def test_view_options_give_the_library_s_faces(tmp_path, small, blob):
    """--min-face-size (tiles, decoded at the scale they need) and
    --single-pass give what the library gives with the same settings."""
    lay_out(tmp_path, small, {"g.jpg": "group", "p.jpg": "portrait"})
    for options, kwargs in ((["--min-face-size", "40"], {"min_face_size": 40}),
                            (["--single-pass"], {"padded_pass": False})):
        proc = run(["detect", "g.jpg", "p.jpg", "--format", "json", "--jobs", "1", *options],
                   cwd=tmp_path, blob=blob)
        assert proc.returncode == 0, proc.stderr
        with ssdface.Detector(blob, **kwargs) as det:
            want = [[{"box": [round(v, 2) for v in f.box], "score": round(f.score, 5)}
                     for f in det.detect(tmp_path / name)] for name in ("g.jpg", "p.jpg")]
        assert [r["faces"] for r in json.loads(proc.stdout)] == want
    proc = run(["detect", "g.jpg", "--min-face-size", "5"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 2 and "--min-face-size: must be >= 8 pixels" in proc.stderr


# --- Formats -----------------------------------------------------------------------------------

def test_formats_agree(tmp_path, small, blob, expected):
    lay_out(tmp_path, small, {"p/1.jpg": "group", "p/2.jpg": "foliage", "p/3.jpg": "junk",
                              "p/4.jpg": "portrait"})
    base = ["detect", "p", "--jobs", "1", "-q"]
    doc = json.loads(run([*base, "--format", "json"], cwd=tmp_path, blob=blob).stdout)
    lines = jsonl(run([*base, "--format", "jsonl"], cwd=tmp_path, blob=blob))
    assert doc == lines
    assert [r.get("faces") for r in doc] == [expected["group"], [], None, expected["portrait"]]
    assert doc[0]["width"] == 400 and doc[0]["height"] == 267
    assert doc[2]["error"].startswith("cannot read image p/3.jpg")

    proc = run([*base, "--format", "csv"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 1
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert list(rows[0]) == ["image", "width", "height", "face", "score", "xmin", "ymin",
                             "xmax", "ymax", "error"]
    faces = expected["group"]
    assert len(rows) == len(faces) + 3  # a row per face, one for each image without faces
    for i, face in enumerate(faces):
        row = rows[i]
        assert (row["image"], row["width"], row["height"], row["face"]) == \
            ("p/1.jpg", "400", "267", str(i))
        assert float(row["score"]) == face["score"]
        assert [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")] == face["box"]
    no_face, error, portrait = rows[len(faces):]
    assert no_face["image"] == "p/2.jpg" and no_face["face"] == "" and no_face["error"] == ""
    assert error["image"] == "p/3.jpg" and error["width"] == "" and "cannot read" in \
        error["error"]
    assert portrait["face"] == "0"

    text = run([*base, "--format", "text"], cwd=tmp_path, blob=blob).stdout.splitlines()
    assert len(text) == len(faces) + 2
    path, score, *box = text[0].split("\t")
    assert path == "p/1.jpg" and float(score) == pytest.approx(faces[0]["score"], abs=5e-4)
    assert [float(v) for v in box] == pytest.approx(faces[0]["box"], abs=0.051)
    assert text[len(faces)] == "p/2.jpg\tno faces"


def test_jsonl_and_csv_stream(tmp_path, small, blob):
    """jsonl and csv records come out as the images are done, not at the end."""
    lay_out(tmp_path, small, {f"p/{i:03d}.jpg": "group" for i in range(60)})
    full_env = dict(os.environ, SSDFACE_WEIGHTS=str(blob), PYTHONPATH=str(PACKAGE_ROOT))
    for fmt, first in (("jsonl", '{"image": "p/000.jpg"'), ("csv", "image,width,height")):
        proc = subprocess.Popen([sys.executable, "-m", "ssdface", "detect", "p", "-f", fmt,
                                 "--jobs", "1"], cwd=tmp_path, env=full_env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout.readline().startswith(first)
            assert proc.poll() is None  # still at work on the other 59 images
        finally:
            proc.kill()
            proc.communicate(timeout=60)


# --- Jobs ----------------------------------------------------------------------------------------

def test_jobs_2_gives_the_records_of_jobs_1(tmp_path, small, blob):
    names = ["group", "portrait", "foliage", "junk"] * 3
    lay_out(tmp_path, small, {f"many/{i:02d}.jpg": n for i, n in enumerate(names)})
    one = run(["detect", "many", "-f", "jsonl", "--jobs", "1"], cwd=tmp_path, blob=blob)
    two = run(["detect", "many", "-f", "jsonl", "--jobs", "2"], cwd=tmp_path, blob=blob)
    assert one.returncode == two.returncode == 1
    assert jsonl(one) == jsonl(two)
    assert [r["image"] for r in jsonl(two)] == [f"many/{i:02d}.jpg" for i in range(12)]
    assert SUMMARY.match(two.stderr.splitlines()[-1]).groups()[::2] == ("12", "3")


def test_jobs_2_with_threads_draw_and_crop(tmp_path, small, blob):
    lay_out(tmp_path, small, {"a/img.jpg": "group", "b/img.jpg": "portrait"})
    proc = run(["detect", "a", "b", "--jobs", "2", "--threads", "2", "--draw", "out",
                "--crop", "out"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*"))
    assert found == ["a/img.jpg", "a/img_face0.jpg", "a/img_face1.jpg", "a/img_face2.jpg",
                     "b/img.jpg", "b/img_face0.jpg"]


def test_no_worker_processes_goes_on_in_one(tmp_path, small, blob, expected, capsys,
                                           monkeypatch):
    """Where processes cannot be started, the work is done in this one."""
    from ssdface.cli import workers as cli

    def no_processes():
        raise OSError("no semaphores here")

    monkeypatch.setattr(cli, "_mp_context", no_processes)
    lay_out(tmp_path, small, {f"{i}.jpg": "portrait" for i in range(6)})
    monkeypatch.chdir(tmp_path)
    assert main(["detect", ".", "--jobs", "3", "-f", "jsonl", "--weights", str(blob)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["faces"] for line in out.splitlines()] == [expected["portrait"]] * 6
    assert err.startswith("ssdface: warning: cannot start worker processes (no semaphores here); "
                          "going on in one process\n")


# --- --draw and --crop ---------------------------------------------------------------------------

def test_draw_and_crop_mirror_relative_paths(tmp_path, small, blob, expected):
    from PIL import Image

    lay_out(tmp_path, small, {"a/img.jpg": "group", "b/img.jpg": "portrait",
                              "b/img.png": "portrait", "c/leaf.jpg": "foliage"})
    proc = run(["detect", "a/img.jpg", "b", "c", "--jobs", "1", "--draw", "drawn", "--crop",
                "faces", "--margin", "0.2"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    drawn = sorted(str(p.relative_to(tmp_path / "drawn")) for p in (tmp_path / "drawn").rglob(
        "*.*"))
    assert drawn == ["a/img.jpg", "b/img.jpg", "b/img.png", "c/leaf.jpg"]
    faces = sorted(str(p.relative_to(tmp_path / "faces")) for p in (tmp_path / "faces").rglob(
        "*.*"))
    assert faces == ["a/img_face0.jpg", "a/img_face1.jpg", "a/img_face2.jpg",
                     "b/img_face0.jpg", "b/img_face0.png"]
    with Image.open(tmp_path / "drawn" / "a" / "img.jpg") as img:
        assert img.size == (400, 267)
        # The box outline is green where the first face's left edge is
        # (Pillow puts a fractional edge on a whole pixel; JPEG blurs it).
        x0, y0, x1, y1 = expected["group"][0]["box"]
        y = round((y0 + y1) / 2)
        near = [img.getpixel((x, y)) for x in range(int(x0) - 2, int(x0) + 4)]
        assert any(g > 150 and r < 120 and b < 120 for r, g, b in near), near
    box = ssdface.Face(tuple(expected["portrait"][0]["box"]), 1.0).crop_box(400, 400, 0.2)
    with Image.open(tmp_path / "faces" / "b" / "img_face0.png") as crop:
        assert crop.size == (box[2] - box[0], box[3] - box[1])
    # The inputs are untouched.
    assert (tmp_path / "a" / "img.jpg").read_bytes() == small["group"].read_bytes()


def test_draw_outside_the_cwd_mirrors_from_the_common_parent(tmp_path, small, blob):
    inputs = lay_out(tmp_path / "inputs", small, {"x/p.jpg": "portrait", "y/p.jpg": "portrait",
                                                  "y/deep/p.jpg": "portrait"})
    work = tmp_path / "work"
    work.mkdir()
    proc = run(["detect", inputs / "x" / "p.jpg", inputs / "y", "-r", "--draw", "out"],
               cwd=work, blob=blob)
    assert proc.returncode == 0, proc.stderr
    found = sorted(str(p.relative_to(work / "out")) for p in (work / "out").rglob("*.jpg"))
    assert found == ["x/p.jpg", "y/deep/p.jpg", "y/p.jpg"]


def test_draw_never_overwrites_an_input(tmp_path, small, blob):
    lay_out(tmp_path, small, {"a/img.jpg": "group", "a/b/img.jpg": "group"})
    original = (tmp_path / "a" / "img.jpg").read_bytes()
    proc = run(["detect", "a/img.jpg", "--draw", "."], cwd=tmp_path, blob=blob)
    assert proc.returncode == 2 and "would write over the inputs" in proc.stderr
    # A crop that would land on an input (a/img_face0.jpg is one) is refused.
    shutil.copyfile(small["portrait"], tmp_path / "a" / "img_face0.jpg")
    proc = run(["detect", str(tmp_path / "a" / "img.jpg"), "img_face0.jpg", "--crop",
                tmp_path / "a", "-f", "jsonl"], cwd=tmp_path / "a", blob=blob)
    assert proc.returncode == 1
    first = jsonl(proc)[0]
    assert len(first["faces"]) == 3 and "refusing to overwrite the input" in first["error"]
    assert (tmp_path / "a" / "img.jpg").read_bytes() == original
    assert (tmp_path / "a" / "img_face0.jpg").read_bytes() == small["portrait"].read_bytes()


def test_recursive_run_skips_its_own_output_folder(tmp_path, small, blob):
    lay_out(tmp_path, small, {"pics/a.jpg": "portrait"})
    for _ in range(2):
        proc = run(["detect", "-r", "pics", "--draw", "pics/drawn", "-f", "jsonl"],
                   cwd=tmp_path, blob=blob)
        assert [r["image"] for r in jsonl(proc)] == ["pics/a.jpg"]
    assert (tmp_path / "pics" / "drawn" / "pics" / "a.jpg").is_file()


# --- Progress bar and summary --------------------------------------------------------------------

def test_progress_bar_forced_on_and_summary(tmp_path, small, blob):
    lay_out(tmp_path, small, {"p/1.jpg": "group", "p/2.jpg": "portrait", "p/3.jpg": "foliage"})
    proc = run(["detect", "p", "--progress", "--jobs", "1"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0
    assert "0/3" in proc.stderr and "img" in proc.stderr  # tqdm's bar, on stderr
    assert "img" not in proc.stdout
    last = proc.stderr.replace("\r", "\n").splitlines()[-1]
    assert SUMMARY.match(last).groups() == ("3", "4", "0")
    # Not a terminal: no bar; --quiet: no summary either.
    plain = run(["detect", "p", "--jobs", "1"], cwd=tmp_path, blob=blob)
    assert SUMMARY.match(plain.stderr.strip()) and "img/s" not in plain.stderr
    quiet = run(["detect", "p", "--jobs", "1", "-q", "--progress"], cwd=tmp_path, blob=blob)
    assert quiet.stderr == "" and quiet.stdout == plain.stdout


def test_broken_pipe_stops_quietly(tmp_path, small, blob):
    lay_out(tmp_path, small, {f"p/{i:03d}.jpg": "group" for i in range(40)})
    full_env = dict(os.environ, SSDFACE_WEIGHTS=str(blob), PYTHONPATH=str(PACKAGE_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "ssdface", "detect", "p", "--jobs", "1"],
                            cwd=tmp_path, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("p/000.jpg\t")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "Exception ignored" not in err


# --- In-process: the other commands ------------------------------------------------------------

def test_detect_in_process(capsys, weights_dir, photo_paths):
    assert main(["detect", str(photo_paths["group_selfie"]), "--weights", str(weights_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    path, score, *box = lines[0].split("\t")
    assert path == str(photo_paths["group_selfie"]) and 0.5 <= float(score) <= 1
    assert len(box) == 4


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
    assert "tensor_count: 144" in out
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


# --- verify and info ----------------------------------------------------------------------

def _one_error_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The run failed with exit 1 and one stderr line holding ``parts``, no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _fields(stdout: str) -> dict[str, str]:
    """``key: value`` lines as a dict (the first ``: `` splits)."""
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_expected_checksum_is_the_reference_blobs(blob):
    """EXPECTED_CHECKSUM is the XXH64 (seed 0, bytes 64 on) of the blob packed
    from the shared reference weights, as its header and a detector say."""
    from ssdface import _testing
    from ssdface.weights import EXPECTED_CHECKSUM

    data = blob.read_bytes()
    assert _testing.xxh64(data[64:]) == EXPECTED_CHECKSUM
    assert int.from_bytes(data[56:64], "little") == EXPECTED_CHECKSUM
    with ssdface.Detector(blob) as det:
        assert det.weights_info["checksum"] == EXPECTED_CHECKSUM


def test_verify_a_good_blob(tmp_path, blob):
    from ssdface import _core
    from ssdface.weights import EXPECTED_CHECKSUM

    for args in (["verify", blob], ["verify"]):  # given, or the one Detector() finds
        proc = run(args, cwd=tmp_path, blob=blob)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        fields = _fields(proc.stdout)
        assert fields["weights"] == str(blob)
        assert fields["version"] == str(_core.BLOB_VERSION)
        assert fields["tensor_count"] == "144"
        assert fields["file_size"] == str(blob.stat().st_size)
        assert fields["checksum"] == f"{EXPECTED_CHECKSUM:#018x}" == "0x4563e3c1d31fc199"
        assert fields["expected_checksum"].startswith("0x4563e3c1d31fc199 (matches")
        assert proc.stdout.splitlines()[-1] == "ok"


def test_verify_a_folder_of_npy_files(tmp_path, blob, weights_dir):
    """How a user checks a download: the folder is packed in memory."""
    proc = run(["verify", weights_dir], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    fields = _fields(proc.stdout)
    assert fields["weights"] == str(weights_dir)
    assert "packed in memory" in fields["source"]
    assert fields["checksum"] == "0x4563e3c1d31fc199"
    assert fields["file_size"] == str(blob.stat().st_size)
    assert "(matches" in fields["expected_checksum"]
    assert proc.stdout.splitlines()[-1] == "ok"
    assert not list(tmp_path.iterdir())  # nothing written


def test_verify_other_weights_are_valid_but_not_the_expected(tmp_path, blob, weights_dir):
    folder = tmp_path / "tuned"
    folder.mkdir()
    for src in weights_dir.glob("*.npy"):
        (folder / src.name).symlink_to(src)
    name = "BoxPredictor_0_BoxEncodingPredictor_Conv2D_bias.npy"
    (folder / name).unlink()
    np.save(folder / name, np.load(weights_dir / name) + np.float32(0.5))
    proc = run(["verify", folder], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    fields = _fields(proc.stdout)
    assert fields["checksum"] != "0x4563e3c1d31fc199"
    assert "(differs: not the reference weights" in fields["expected_checksum"]


def test_verify_a_corrupted_blob(tmp_path, blob):
    bad = tmp_path / "bad.blob"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the payload
    bad.write_bytes(bytes(data))
    proc = run(["verify", bad], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(bad), "invalid weights blob", "checksum mismatch")
    assert proc.stdout == ""
    # The same as the weights a detector would use.
    proc = run(["verify"], cwd=tmp_path, blob=bad)
    _one_error_line(proc, str(bad), "checksum mismatch")


def test_verify_a_truncated_blob(tmp_path, blob):
    short = tmp_path / "short.blob"
    short.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    proc = run(["verify", short], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(short), "invalid weights blob", "truncated")
    empty = tmp_path / "empty.blob"
    empty.write_bytes(b"")
    _one_error_line(run(["verify", empty], cwd=tmp_path, blob=blob), str(empty), "empty")


def test_verify_a_missing_path_and_a_bad_folder(tmp_path, blob):
    missing = tmp_path / "nothing.blob"
    proc = run(["verify", missing], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(missing), "cannot read", "no such file")
    folder = tmp_path / "npy"
    folder.mkdir()
    proc = run(["verify", folder], cwd=tmp_path, blob=blob)
    _one_error_line(proc, str(folder), "invalid weights folder", "missing weight file")


def test_info_lists_versions_kernels_threads_and_weights(tmp_path, blob):
    from ssdface import isa

    proc = run(["info"], cwd=tmp_path, blob=blob)
    assert proc.returncode == 0, proc.stderr
    fields = _fields(proc.stdout)
    assert fields["ssdface"].startswith(ssdface.__version__ + " ")
    assert fields["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert fields["numpy"] == np.__version__
    assert fields["kernels"] == isa.default_isa()
    assert fields["kernels_available"].split() == isa.available_isas()
    assert fields["kernels_compiled"].split() == isa.compiled_isas()
    features = isa.cpu_features()
    if features is None:
        assert fields["cpu_features"].startswith("unknown")
    else:
        for name, present in features.items():
            assert (name in fields["cpu_features"].split(" (lacks")[0].split()) == present
    assert fields["num_threads_default"].startswith("1 ")
    assert fields["cpu_count"].startswith(f"{os.cpu_count()} ")
    assert fields["detect_jobs_default"].split()[0].isdigit()
    assert fields["detect_threads_default"] == "1"
    assert fields["build"]
    assert fields["weights"] == str(blob)
    assert fields["checksum"] == "0x4563e3c1d31fc199"
    assert fields["tensor_count"] == "144"
    assert "(matches" in fields["expected_checksum"]


def test_info_names_a_bad_blob(tmp_path, blob):
    bad = tmp_path / "bad.blob"
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    proc = run(["info"], cwd=tmp_path, blob=bad)
    _one_error_line(proc, str(bad), "checksum mismatch")
    assert f"weights: {bad}" in proc.stdout.splitlines()


@pytest.fixture
def weightless_package(tmp_path) -> Path:
    """A copy of the package whose build embedded no weights: the folder to
    put on PYTHONPATH."""
    root = tmp_path / "site"
    shutil.copytree(Path(ssdface.__file__).resolve().parent, root / "ssdface",
                    ignore=shutil.ignore_patterns("data", "__pycache__", "*.c", "*.pyx"))
    (root / "ssdface" / "data").mkdir()
    (root / "ssdface" / "data" / "build_info.json").write_text(
        json.dumps({"weights_embedded": False, "reason": "$SSDFACE_WEIGHTS is not set"}))
    return root


def run_weightless(args, root: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """ssdface from the weightless copy, with an empty cache and no $SSDFACE_WEIGHTS."""
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "SSDFACE_WEIGHTS"}
    full_env.update(PYTHONPATH=str(root), XDG_CACHE_HOME=str(cache), **env)
    return subprocess.run([sys.executable, "-m", "ssdface", *map(str, args)], cwd=tmp_path,
                          capture_output=True, text=True, env=full_env, timeout=120)


def test_info_and_verify_without_weights(tmp_path, weightless_package):
    cached = tmp_path / "cache" / "ssdface" / "ssd_mobilenetv2_face.blob"
    for env in ({}, {"SSDFACE_WEIGHTS": ""}):  # unset, or set to nothing
        proc = run_weightless(["info"], weightless_package, tmp_path, **env)
        line = _one_error_line(proc, "no model weights found", "embeds none", str(cached),
                               "SSDFACE_WEIGHTS", "ssdface pack", "ssdface verify",
                               "webmachinelearning/test-data")
        assert line.startswith("ssdface: error: ")
        # Everything else is printed first.
        fields = _fields(proc.stdout)
        assert fields["ssdface"].startswith(f"{ssdface.__version__} ({weightless_package}")
        for key in ("python", "numpy", "cpu_features", "kernels", "kernels_available",
                    "num_threads_default", "cpu_count", "detect_jobs_default"):
            assert key in fields
        assert fields["build"] == "no weights embedded"
        assert proc.stdout.splitlines()[-1] == "weights: none found"
    proc = run_weightless(["verify"], weightless_package, tmp_path)
    _one_error_line(proc, "no model weights found", str(cached))
    assert proc.stdout == ""


def test_info_with_weights_env_pointing_nowhere(tmp_path, weightless_package):
    nowhere = tmp_path / "no" / "such.blob"
    proc = run_weightless(["info"], weightless_package, tmp_path, SSDFACE_WEIGHTS=str(nowhere))
    _one_error_line(proc, "$SSDFACE_WEIGHTS", str(nowhere), "does not exist")
    assert proc.stdout.splitlines()[-1] == "weights: none found"


def test_cpu_features_from_cpuinfo(tmp_path):
    from ssdface.isa import CPU_FEATURES, cpu_features

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f amx_tile\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx2 fma avx512f amx_tile\n")
    if not sys.platform.startswith("linux"):
        assert cpu_features(str(info)) is None
        return
    assert cpu_features(str(info)) == {name: name in ("avx2", "fma", "avx512f", "amx")
                                       for name in CPU_FEATURES}
    assert cpu_features(str(tmp_path / "missing")) is None
    (tmp_path / "blank").write_text("processor\t: 0\n")
    assert cpu_features(str(tmp_path / "blank")) is None

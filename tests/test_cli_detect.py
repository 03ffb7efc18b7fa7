"""``ssdface detect`` as users run it, ``python -m ssdface detect ...`` in a
subprocess, on small copies of the shared photos laid out in tmp folders:
inputs, records and exit status, formats, jobs, --draw and --crop, the
progress bar and summary. (The other commands: test_cli_commands.py and
test_cli_verify_info.py.)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import PACKAGE_ROOT, SUMMARY, jsonl, run

import ssdface
from ssdface.cli import main


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


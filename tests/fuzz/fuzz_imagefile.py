"""Fuzz image files given as a path: ``Detector.detect``,
``Detector.detect_batch``, ``ssdface.preprocess`` and ``Detector.preprocess``
on a temporary file holding the input's bytes (Pillow decodes it, then
ssdface applies the EXIF orientation and converts the mode).

Input layout: the file's bytes, then (read from the end) the entry point, the
file name suffix and the kind of path object. The seed corpus holds small
synthetic JPEG, PNG, GIF, BMP, TIFF, WebP, PPM and ICO files (make_corpus.py).

Contract: success or one of ``ALLOWED`` or Pillow's ``DecompressionBombError``
(no ``MemoryError``: images over ``MAX_PIXELS`` are not tried); on success,
faces finite, sorted and inside the image, and the network input finite, in
[-1, 1]. A non-OSError exception raised inside Pillow that ssdface lets
through (e.g. ``SyntaxError`` for a broken PNG chunk) is the known issue
``pillow-errors-escape`` (see _fuzzlib.KNOWN_ISSUES).

Files whose header declares more than ``MAX_PIXELS`` pixels or a side over
``MAX_SIDE`` are skipped (checked with Pillow first): huge and extreme-aspect
images are slow in resize (a known issue being fixed elsewhere) and Pillow's
own decompression-bomb limit is far higher.

    python tests/fuzz/fuzz_imagefile.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as cm
import _fuzzlib as fl
from _common import MAX_PIXELS, MAX_SIDE

ALLOWED: tuple[type, ...] = (TypeError, ValueError, OSError)  # + DecompressionBombError

ENTRIES = ["detect", "preprocess", "det_preprocess", "detect_batch"]
SUFFIXES = [".jpg", ".png", ".gif", ".bmp", ".tif", ".webp", ".ppm", ".ico", "", ".txt"]
PATH_TYPES = ["str", "Path", "PathLike"]

lib: Any = None
S: State | None = None


@dataclass
class State:
    det: Any
    allowed: tuple[type, ...]


class _PathLike:
    def __init__(self, path: str) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return self._path


def setup() -> None:
    global lib, S
    if S is not None:
        return
    import PIL.Image

    lib = cm.import_ssdface()
    PIL.Image.init()  # import every format plugin now (instrumented under atheris)
    S = State(cm.detector(), ALLOWED + (PIL.Image.DecompressionBombError,))


@dataclass
class Plan:
    entry: str
    suffix: str
    path_type: str
    content: bytes


def decode(fdp: Any) -> Plan:
    entry = ENTRIES[fdp.ConsumeIntInRange(0, len(ENTRIES) - 1)]
    suffix = SUFFIXES[fdp.ConsumeIntInRange(0, len(SUFFIXES) - 1)]
    path_type = PATH_TYPES[fdp.ConsumeIntInRange(0, len(PATH_TYPES) - 1)]
    return Plan(entry, suffix, path_type, fdp.ConsumeBytes(fdp.remaining_bytes()))


def encode(writer: fl.SeedWriter, content: bytes, entry: str = "detect", suffix: str = "",
           path_type: str = "str") -> bytes:
    """The input for ``content`` (used by make_corpus.py)."""
    writer.pick(ENTRIES, entry).pick(SUFFIXES, suffix).pick(PATH_TYPES, path_type)
    return writer.bytes(content).getvalue()


def _declared_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, if Pillow can identify it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # noqa: BLE001 - not an image Pillow knows: ssdface must refuse it
        return None


def _raised_in_pillow(exc: BaseException) -> bool:
    """Whether the innermost frame of the exception's traceback is Pillow's."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}PIL{os.sep}" in tb.tb_frame.f_code.co_filename


def _check(result: Any, entry: str, size: tuple[int, int] | None) -> None:
    if entry in ("preprocess", "det_preprocess"):
        cm.check_network_input(result, entry)
        return
    if entry == "detect_batch":
        if not isinstance(result, list) or len(result) != 1:
            raise fl.Finding(f"detect_batch of 1 returned {result!r:.200}")
        result = result[0]
    if size is None:
        raise fl.Finding("detect accepted a file Pillow cannot identify")
    side = max(size)  # EXIF orientation may swap width and height
    cm.check_faces(result, side, side, entry)


def test_one_input(data: bytes) -> None:
    setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd files
        _one_input(data)


def _one_input(data: bytes) -> None:
    plan = decode(fl.make_provider(data))
    path = fl.workdir() / f"image{plan.suffix}"
    path.write_bytes(plan.content)
    try:
        size = _declared_size(path)
        if size is not None and (max(size) > MAX_SIDE or size[0] * size[1] > MAX_PIXELS):
            fl.count("skip:too large")
            return
        arg: Any = {"str": str(path), "Path": path, "PathLike": _PathLike(str(path))}[
            plan.path_type]
        try:
            if plan.entry == "detect":
                result = S.det.detect(arg)
            elif plan.entry == "preprocess":
                result = lib.preprocess(arg)
            elif plan.entry == "det_preprocess":
                result = S.det.preprocess(arg)
            else:
                result = S.det.detect_batch([arg])
        except Exception as exc:
            if not isinstance(exc, S.allowed) and _raised_in_pillow(exc):
                fl.known_issue("pillow-errors-escape", f"{type(exc).__name__}: {exc}",
                               type(exc).__name__)
                return
            fl.check_exception(exc, S.allowed, f"{plan.entry}(image file)")
            return
        _check(result, plan.entry, size)
        fl.count(f"accepted:{plan.entry}")
    finally:
        if path.exists():
            os.unlink(path)


def main() -> None:
    fl.run(test_one_input, setup, instrument=("ssdface", "PIL"))


if __name__ == "__main__":
    main()

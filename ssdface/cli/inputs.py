"""The images ``ssdface detect`` reads, and where --draw and --crop write each one."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional

from .options import UsageError

# Files a folder contributes (compared case-insensitively). A file named on
# the command line or on standard input is read whatever its extension.
IMAGE_EXTENSIONS = frozenset((
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif",
    ".jfif", ".ppm", ".pgm",
))
# Extensions --draw and --crop keep; other images are written as PNG.
_WRITABLE = frozenset((".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"))

# One image to process: (path, error). The error is set when the path stands
# for a folder that could not be listed; the record then only reports it.
Item = tuple[str, Optional[str]]


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _folder_images(folder: str, recursive: bool, skip: set[str]) -> Iterator[Item]:
    """A folder's images, sorted by name; with ``recursive``, a folder's own
    images before those of its subfolders (in name order, depth first)."""
    if not recursive:
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it if _is_image_name(e.name) and e.is_file())
        except OSError as exc:
            yield folder, f"cannot list folder {folder}: {exc.strerror or exc}"
            return
        for name in names:
            yield os.path.join(folder, name), None
        return
    errors: list[OSError] = []
    for root, dirs, files in os.walk(folder, onerror=errors.append):
        while errors:
            exc = errors.pop()
            where = exc.filename or root
            yield where, f"cannot list folder {where}: {exc.strerror or exc}"
        # Output folders inside the tree are not inputs (a second run would
        # otherwise read the first run's drawings).
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) not in skip)
        for name in sorted(files):
            if _is_image_name(name):
                yield os.path.join(root, name), None
    while errors:  # the top folder itself could not be listed
        exc = errors.pop()
        where = exc.filename or folder
        yield where, f"cannot list folder {where}: {exc.strerror or exc}"


def collect_inputs(paths: Sequence[str], recursive: bool, stdin: Iterable[str],
                   skip: Iterable[str] = ()) -> list[Item]:
    """Expand the PATH arguments: files as given, folders to their images,
    ``-`` to the paths listed on ``stdin`` (each expanded the same way)."""
    skip_real = {os.path.realpath(p) for p in skip}
    items: list[Item] = []

    def add(path: str) -> None:
        if os.path.isdir(path):
            items.extend(_folder_images(path, recursive, skip_real))
        else:
            items.append((path, None))  # read whatever its extension; a missing file errs

    for arg in paths:
        if arg == "-":
            for line in stdin:
                line = line.rstrip("\r\n")
                if line:
                    add(line)
        else:
            add(arg)
    return items


def mirror_base(paths: Sequence[str]) -> str:
    """The folder --draw and --crop mirror the inputs from: the current
    folder when every input is inside it, else the inputs' common parent."""
    cwd = os.getcwd()
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if all(p == cwd or p.startswith(cwd.rstrip(os.sep) + os.sep) for p in parents):
        return cwd
    try:
        return os.path.commonpath(parents)
    except ValueError:  # Windows: inputs on several drives
        return ""


def _relative(path: str, base: str) -> str:
    absolute = os.path.abspath(path)
    if base:
        return os.path.relpath(absolute, base)
    drive, rest = os.path.splitdrive(absolute)  # several drives: C:\x -> C/x
    return os.path.join(drive.strip(":\\/") or "root", rest.lstrip("\\/"))


# (path, listing error, --draw file, --crop file stem, --crop file extension); the
# last three are None without --draw / --crop. Crop i goes to STEM_faceI.EXT.
Task = tuple[str, Optional[str], Optional[str], Optional[str], Optional[str]]


def make_tasks(items: list[Item], draw: str | None, crop: str | None) -> list[Task]:
    """The tasks of the items: where --draw and --crop write each image's files.

    Raises:
        UsageError: if --draw would write into the folder the inputs are mirrored from.
    """
    if not (draw or crop):
        return [(path, error, None, None, None) for path, error in items]
    base = mirror_base([path for path, error in items if error is None] or ["."])
    if draw and os.path.realpath(draw) == os.path.realpath(base or os.sep):
        raise UsageError(f"--draw {draw} would write over the inputs (it is the folder "
                         "their paths are mirrored from): choose another folder")
    tasks: list[Task] = []
    for path, error in items:
        draw_out = crop_stem = crop_ext = None
        if error is None:
            rel = _relative(path, base)
            name = os.path.basename(rel)
            stem, ext = os.path.splitext(name)
            if ext.lower() not in _WRITABLE:  # e.g. x.heic -> x.heic.png
                stem, ext = name, ".png"
            if draw:
                draw_out = os.path.join(draw, os.path.dirname(rel), stem + ext)
            if crop:
                crop_stem, crop_ext = os.path.join(crop, os.path.dirname(rel), stem), ext
        tasks.append((path, error, draw_out, crop_stem, crop_ext))
    return tasks

"""Write the seed corpus of the fuzz targets to ``tests/fuzz/corpus/<target>/``.

    python tests/fuzz/make_corpus.py          # rewrite every target's seeds
    python tests/fuzz/make_corpus.py --check  # fail if the committed seeds differ

Every seed is tiny and generated here: blob seeds describe mutations of the
blob the target packs at start-up (no weight bytes are stored), image files
are synthetic (gradients drawn with numpy and saved with Pillow; no photo is
ever copied). ``--check`` compares only the targets whose seeds do not depend
on Pillow's encoders (blob, npy, array).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import _fuzzlib as fl
import array_input
import blob_input
import fuzz_imagefile
import npy_input

# Seeds of these targets are reproducible byte for byte on any machine.
CHECKED = ("blob", "npy", "array")


def blob_seeds() -> dict[str, bytes]:
    b = blob_input
    P = b.Plan  # noqa: N806
    plans = {
        "pristine": P(),
        "pristine-open-engine": P(use_open_engine=True),
        "version-4": P(ops=[(b.OP_HEADER_FIELD, 0, ("small", 4))]),
        "version-2": P(ops=[(b.OP_HEADER_FIELD, 0, ("small", 2))]),
        "count-0": P(ops=[(b.OP_HEADER_FIELD, 2, ("special", 0))]),
        "flipped-byte-no-checksum": P(ops=[(b.OP_ANY_BYTES, 100000, b"\xff")], rechecksum=False),
        "payload-byte": P(ops=[(b.OP_ANY_BYTES, 1000000, b"\x01")]),
        "truncate-table-end": P(ops=[(b.OP_TRUNCATE, 2, 0, 0)]),
        "truncate-no-fix": P(ops=[(b.OP_TRUNCATE, 5, 0, -64)], fix_sizes=False),
        "append-64": P(ops=[(b.OP_APPEND, b"", 64)]),
        "append-odd": P(ops=[(b.OP_APPEND, b"tail", 3)]),
        "swap-entries": P(ops=[(b.OP_SWAP_ENTRIES, 0, 1)]),
        "copy-entry": P(ops=[(b.OP_COPY_ENTRY, 3, 1)]),
        "rename-duplicate": P(ops=[(b.OP_RENAME, 7, 8, 0)]),
        "rename-suffix": P(ops=[(b.OP_RENAME, 9, 9, 2)]),
        "entry-kind": P(ops=[(b.OP_ENTRY_FIELD, 4, 4, ("small", 2))]),
        "entry-shape": P(ops=[(b.OP_ENTRY_FIELD, 4, 6, ("small", 17))]),
        "entry-offset-unaligned": P(ops=[(b.OP_ENTRY_FIELD, 6, 10, ("rel", 6, 6, 4))]),
        "entry-offset-past-end": P(ops=[(b.OP_ENTRY_FIELD, 6, 10, ("rel", 4, 0, 0))]),
        "entry-size-huge": P(ops=[(b.OP_ENTRY_FIELD, 6, 11, ("special", 15))]),
        # Known issues (tolerated unless SSDFACE_FUZZ_STRICT=1):
        "overlap": P(ops=[(b.OP_ENTRY_FIELD, 1, 10, ("rel", 6, 3, 0))]),
        "nan-weight": P(ops=[(b.OP_TENSOR_VALUE, 0, 5, 0, 1)]),
        "huge-weights": P(ops=[(b.OP_TENSOR_VALUE, 0, 0, 3, 64)]),
        "payload-offset": P(ops=[(b.OP_HEADER_FIELD, 5, ("rel", 3, 0, 64))]),
        "raw-empty": P(raw=b""),
        "raw-magic": P(raw=b"SSDFBLOB"),
        "raw-header": P(raw=b"SSDFBLOB" + (2).to_bytes(4, "little") + (128).to_bytes(4, "little")
                        + (144).to_bytes(4, "little") + (128).to_bytes(4, "little")
                        + (128).to_bytes(8, "little") + bytes(96)),
    }
    return {name: b.encode(plan) for name, plan in plans.items()}


def npy_seeds() -> dict[str, bytes]:
    n = npy_input
    e = n.encode
    return {
        "big-endian": e("pack_bytes", 1, n.KIND_VARIANT, "big_endian"),
        "fortran": e("read_npy_dir", 0, n.KIND_VARIANT, "fortran"),
        "subarray-dtype": e("pack_bytes", 2, n.KIND_VARIANT, "subarray_dtype"),
        "v3-header": e("read_npy_dir", 3, n.KIND_VARIANT, "v3_header"),
        "nan": e("pack_bytes", 0, n.KIND_VARIANT, "nan"),
        "float64": e("read_npy_dir", 4, n.KIND_VARIANT, "float64"),
        "huge-finite": e("open_engine", 5, n.KIND_VARIANT, "huge_finite"),
        "truncated": e("read_npy_dir", 0, n.KIND_VARIANT, "truncated"),
        "object-pickle": e("pack_bytes", 1, n.KIND_VARIANT, "object_pickle"),
        "built-real": e("pack_bytes", 1, n.KIND_BUILT),
        "built-f8": e("read_npy_dir", 1, n.KIND_BUILT, descr="'<f8'"),
        "built-fortran-flag": e("read_npy_dir", 0, n.KIND_BUILT, fortran="True"),
        "built-header-len": e("read_npy_dir", 1, n.KIND_BUILT, header_len=3),
        "built-huge-shape": e("read_npy_dir", 1, n.KIND_BUILT, shape="huge", shape_args=(40,)),
        "built-input-data": e("pack_bytes", 5, n.KIND_BUILT, data="input",
                              data_bytes=b"\x00\x00\x80\x3f"),
        "built-short-data": e("read_npy_dir", 3, n.KIND_BUILT, delta=-3),
        "raw-junk": e("read_npy_dir", 1, n.KIND_RAW, b"\x93NUMPY\x01\x00v\x00{'descr'"),
        "raw-empty": e("read_npy_dir", 1, n.KIND_RAW, b""),
        "fs-folder": e("read_npy_dir", 2, n.KIND_FS, "folder"),
        "fs-dangling": e("pack_bytes", 3, n.KIND_FS, "dangling_symlink"),
        "fs-dir-missing": e("open_engine", 0, n.KIND_FS, "dir_missing"),
        "fs-dir-is-file": e("open_engine", 0, n.KIND_FS, "dir_is_file"),
        "fs-fifo": e("read_npy_dir", 1, n.KIND_FS, "fifo"),
    }


def array_seeds() -> dict[str, bytes]:
    a = array_input
    W = fl.SeedWriter  # noqa: N806

    def img(entry: str, *args, **kwargs) -> bytes:
        return a.encode_image(W().pick(a.ENTRIES, entry), *args, **kwargs).getvalue()

    def batch(*images: tuple) -> bytes:
        w = W().pick(a.ENTRIES, "detect_batch").int(0, 3, len(images))
        for args in images:
            a.encode_image(w, *args)
        return w.getvalue()

    return {
        "detect-rgb": img("detect", "uint8", (48, 64, 3)),
        "detect-gray-fortran": img("detect", "uint8", (40, 30), "ramp", "fortran"),
        "detect-rgba-flipped": img("detect", "uint8", (33, 17, 4), "ramp", "flipped", (3,)),
        "detect-strided": img("detect", "uint8", (20, 31, 3), "input", "strided", (2, 1),
                              b"\x01\x80\xff"),
        "detect-wide": img("detect", "uint8", (1, 2000, 3), "max"),
        "preprocess-1px": img("preprocess", "uint8", (1, 1, 3), "input", "c", (), b"\x07\x08\x09"),
        "preprocess-1ch-broadcast": img("preprocess", "uint8", (64, 48, 1), "ramp", "broadcast",
                                        (2,)),
        "preprocess-transposed": img("preprocess", "uint8", (9, 300, 3), "ramp", "transposed"),
        "preprocess-masked": img("det_preprocess", "uint8", (12, 12, 3), "ramp", "masked"),
        "preprocess-matrix": img("det_preprocess", "uint8", (12, 13), "ramp", "matrix"),
        "preprocess-readonly": img("det_preprocess", "uint8", (5, 7, 3), "ramp", "readonly"),
        "float32-nan": img("preprocess", "float32", (8, 8, 3), "nan"),
        "bool": img("detect", "bool", (8, 8, 3), "max"),
        "object": img("detect", "object", (4, 4, 3)),
        "structured": img("detect", "rgb_struct", (4, 4)),
        "int64-strided": img("preprocess", "int64", (4, 4, 3), "ramp", "strided", (3, 0)),
        "empty": img("detect", "uint8", (0, 5, 3)),
        "two-channels": img("detect", "uint8", (2, 2, 2)),
        "five-dims": img("preprocess", "uint8", (2, 2, 3, 2, 1)),
        "zero-dims": img("preprocess", "uint8", ()),
        "list": img("object", "uint8", (3, 3, 3), "ramp", "c", (), b"", "list"),
        "bytes": img("object", "uint8", (3, 3, 3), "ramp", "c", (), b"", "bytes"),
        "none": img("object", "uint8", (3, 3, 3), "ramp", "c", (), b"", "none"),
        "empty-str-path": img("object", "U1", (), "zeros", "c", (), b"", "list"),  # detect("")
        "zero-d-of-empty-void": img("object", "V3", (0, 3, 3), "ramp", "c", (), b"", "zero_d"),
        "batch-2": batch(("uint8", (16, 16, 3)), ("uint8", (5, 7))),
        "batch-bad": batch(("uint8", (16, 16, 3)), ("float64", (5, 7))),
        "forward-ok": a.encode_forward(W()).getvalue(),
        "forward-fortran": a.encode_forward(W(), layout="fortran").getvalue(),
        "forward-unaligned": a.encode_forward(W(), layout="unaligned").getvalue(),
        "forward-broadcast": a.encode_forward(W(), layout="broadcast", layout_args=(6,)).getvalue(),
        "forward-nan": a.encode_forward(W(), fill="nan_at", where=12345).getvalue(),
        "forward-huge": a.encode_forward(W(), fill="huge").getvalue(),
        "forward-big-endian": a.encode_forward(W(), dtype=">f4").getvalue(),
        "forward-float64": a.encode_forward(W(), dtype="float64").getvalue(),
        "forward-nchw": a.encode_forward(W(), shape="nchw").getvalue(),
        "forward-no-batch": a.encode_forward(W(), shape="no_batch").getvalue(),
        "forward-batch0": a.encode_forward(W(), shape="batch0").getvalue(),
        "pil-p": a.encode_pil(W(), "P", (20, 10), bytes(range(0, 256, 3))).getvalue(),
        "pil-la": a.encode_pil(W(), "La", (8, 8), b"\x10\x80").getvalue(),
        "pil-i16": a.encode_pil(W(), "I;16", (16, 9), b"\x00\x01\xff\xff").getvalue(),
        "pil-f": a.encode_pil(W(), "F", (7, 7), b"\x00\x00\xc0\x7f").getvalue(),
        "pil-empty": a.encode_pil(W(), "RGB", (0, 5), b"").getvalue(),
    }


def _gradient(width: int, height: int):
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     (xx + yy) * 127 // max(width + height - 2, 1)], axis=-1).astype(np.uint8)


def imagefile_seeds() -> dict[str, bytes]:
    from PIL import Image

    rgb = Image.fromarray(_gradient(24, 16), "RGB")

    def save(img: Image.Image, fmt: str, **params) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **params)
        return buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    frames = [rgb.convert("P"), rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("P")]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    files = {
        "jpeg": (save(rgb, "JPEG", quality=50), "detect", ".jpg"),
        "jpeg-exif-rotated": (save(rgb, "JPEG", quality=50, exif=exif), "preprocess", ".jpg"),
        "jpeg-progressive-gray": (save(rgb.convert("L"), "JPEG", progressive=True), "detect",
                                  ".jpg"),
        "jpeg-cmyk": (save(rgb.convert("CMYK"), "JPEG"), "det_preprocess", ""),
        "png-rgba": (save(rgb.convert("RGBA"), "PNG"), "detect", ".png"),
        "png-16bit": (save(rgb.convert("I;16"), "PNG"), "preprocess", ".png"),
        "png-palette-exif": (save(rgb.convert("P"), "PNG", exif=exif), "detect_batch", ".png"),
        "gif-2-frames": (gif.getvalue(), "detect", ".gif"),
        "bmp": (save(rgb, "BMP"), "preprocess", ".bmp"),
        "tiff-exif": (save(rgb, "TIFF", exif=exif), "detect", ".tif"),
        "tiff-1bit": (save(rgb.convert("1"), "TIFF"), "preprocess", ".tif"),
        "ppm": (save(rgb, "PPM"), "det_preprocess", ".ppm"),
        "ico": (save(rgb, "ICO", sizes=[(16, 16)]), "detect", ".ico"),
        "not-an-image": (b"this is not an image\n", "detect", ".jpg"),
        "empty": (b"", "preprocess", ".png"),
    }
    if "WEBP" in Image.SAVE:
        files["webp"] = (save(rgb, "WEBP", quality=50), "detect", ".webp")
    return {
        name: fuzz_imagefile.encode(fl.SeedWriter(), content, entry, suffix)
        for name, (content, entry, suffix) in files.items()
    }


def build() -> dict[str, dict[str, bytes]]:
    return {"blob": blob_seeds(), "npy": npy_seeds(), "array": array_seeds(),
            "imagefile": imagefile_seeds()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed seeds instead of writing them")
    parser.add_argument("--out", type=Path, default=fl.CORPUS_DIR)
    args = parser.parse_args(argv)
    corpus = build()
    if args.check:
        bad = []
        for target in CHECKED:
            folder = args.out / target
            have = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}
            if have != corpus[target]:
                bad.append(target)
        if bad:
            print(f"seed corpus out of date for {bad}: run python tests/fuzz/make_corpus.py",
                  file=sys.stderr)
            return 1
        return 0
    total = 0
    for target, seeds in corpus.items():
        folder = args.out / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
            total += len(data)
        print(f"{folder}: {len(seeds)} seeds")
    print(f"{total} bytes in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

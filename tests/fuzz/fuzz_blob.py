"""Fuzz the weights blob loader: ``Detector(weights=FILE)`` and
``ssdface.weights.open_engine(FILE)``.

The real blob (~18 MB, packed once at start-up from the shared ``.npy``
folder) is the base; the input is a list of structured mutations of it
(header fields, table entries, tensor values, truncation, appended bytes,
arbitrary bytes) plus whether to fix the size fields and recompute the
checksum afterwards, so that mutations reach the checks behind the checksum.
One input in 16 is instead a raw file (the input's own bytes).

Contract: the load succeeds or raises one of ``ALLOWED``. After a successful
load the blob must really be valid (an independent check of the format in
``csrc/blob.h``) and ``detect`` on a small image must return sane faces,
identical to the original blob's when the weights the engine reads are the
original ones.

The input's decoding and the mutations are in ``blob_input.py``.

    python tests/fuzz/fuzz_blob.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as cm
import _fuzzlib as fl
from blob_input import BlobImage, apply, decode

# The exceptions a rejected blob may raise (BlobError is a ValueError).
ALLOWED: tuple[type, ...] = (ValueError, OSError, MemoryError)

HEADER, ENTRY = cm.BLOB_HEADER, cm.BLOB_ENTRY
VERSIONS = (2, 3)  # 2 is 3 without the qu8 section
QU8_SECTION = 1  # header u32 at 96: the sections present (v3)
F32 = 1  # an entry's dtype code for a float32 tensor
MODEL_NAME = b"ssd_mobilenetv2_face"

lib: Any = None  # the ssdface module, imported by setup()
S: State | None = None


@dataclass
class State:
    pristine: bytes
    work: bytearray
    count: int
    payload_off: int
    names: list[bytes]  # entry names, blob order (a qu8 entry: its float tensor's)
    entries: list[tuple[int, int]]  # (offset, size) per tensor, pristine
    entry_meta: list[bytes]  # bytes [88:112) of each pristine entry
    image: Any
    expected: Any
    path: Path


def setup() -> None:
    global lib, S
    if S is not None:
        return
    import numpy as np

    lib = ssdface = cm.import_ssdface()
    blob = ssdface.weights.pack_bytes(fl.weights_dir()).tobytes()
    count, payload_off, entries = cm.blob_table(blob)
    names = [blob[HEADER + i * ENTRY:HEADER + i * ENTRY + 88].rstrip(b"\0") for i in range(count)]
    meta = [blob[HEADER + i * ENTRY + 88:HEADER + i * ENTRY + 112] for i in range(count)]
    path = fl.workdir() / "pristine.blob"
    path.write_bytes(blob)
    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    expected = ssdface.Detector(weights=path, score_threshold=0.0, max_faces=16).detect(image)
    S = State(blob, bytearray(blob), count, payload_off, names, entries, meta, image, expected,
              fl.workdir() / "fuzzed.blob")


# --- what an accepted blob must be ------------------------------------------------------


def _accepted_blob_problems(img: BlobImage) -> tuple[list[str], list[tuple[int, int]]]:
    """Independent check of the format: what is wrong with a blob the loader
    accepted, and the absolute byte range of each graph tensor."""
    size = len(img)
    problems = []
    if size < HEADER or img.read(0, 8) != b"SSDFBLOB":
        return [f"no blob header ({size} bytes)"], []
    count, payload_off, payload_size = img.u(16, 4), img.u(32, 8), img.u(40, 8)
    version, sections = img.u(8, 4), img.u(96, 4)
    if version not in VERSIONS:
        problems.append(f"version {version}")
    if sections & ~QU8_SECTION or (version < 3 and sections):
        problems.append(f"sections {sections:#x}")
    if (img.u(12, 4), img.u(20, 4), img.u(24, 8)) != (HEADER, ENTRY, HEADER):
        problems.append("header sizes")
    if img.u(48, 8) != size:
        problems.append(f"file size field {img.u(48, 8)} != {size}")
    if not 0 < count <= 256 or payload_off % 64 or payload_off < HEADER + count * ENTRY:
        problems.append(f"count {count} / payload offset {payload_off}")
    if payload_off > size or payload_size != size - payload_off:
        problems.append(f"payload [{payload_off}, +{payload_size}) in {size} bytes")
    if img.u(56, 8) != img.body_checksum():
        problems.append("checksum")
    if img.read(64, len(MODEL_NAME) + 1) != MODEL_NAME + b"\0":
        problems.append("model name")
    ranges = []
    table = [img.read(HEADER + j * ENTRY, ENTRY) for j in range(min(count, 256))]
    for i, name in enumerate(S.names):
        # a qu8 entry carries its float tensor's name: match the dtype too
        entry = next((e for e in table if e[:len(name) + 1] == name + b"\0"
                      and e[88:90] == S.entry_meta[i][:2]), None)
        if entry is None or len(entry) < ENTRY:
            problems.append(f"tensor {name.decode()} missing")
            continue
        ndim = struct.unpack_from("<I", S.entry_meta[i], 4)[0]  # the unused dims are free
        if entry[88:96 + 4 * ndim] != S.entry_meta[i][:8 + 4 * ndim]:
            problems.append(f"tensor {name.decode()}: dtype/kind/shape {entry[88:112].hex()}")
        off, nbytes = struct.unpack_from("<QQ", entry, 112)
        if nbytes != S.entries[i][1] or off % 64 or off + nbytes > payload_size:
            problems.append(f"tensor {name.decode()}: [{off}, +{nbytes}) in {payload_size}")
        ranges.append((payload_off + off, payload_off + off + nbytes))
    return problems, ranges


def check_accepted(img: BlobImage, det: Any) -> None:
    import numpy as np

    problems, ranges = _accepted_blob_problems(img)
    if problems:
        raise fl.Finding(f"the loader accepted an invalid blob: {problems[:5]}")
    overlap = any(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(ranges)
                  for b0, b1 in ranges[i + 1:])
    same = all(img.read(r0, r1 - r0) == S.pristine[S.payload_off + off:S.payload_off + off + size]
               for (r0, r1), (off, size) in zip(ranges, S.entries))
    finite = all(np.isfinite(np.frombuffer(img.read(r0, r1 - r0), np.float32)).all()
                 for (r0, r1), meta in zip(ranges, S.entry_meta)
                 if struct.unpack_from("<H", meta, 0)[0] == F32)  # qu8 bytes are not floats
    if overlap:
        fl.known_issue("blob-overlapping-tensors", "tensor byte ranges overlap")
    if not finite:
        fl.known_issue("blob-nonfinite-weights", "a tensor holds NaN or inf")
    if det is None:
        return
    faces = det.detect(S.image)
    height, width = S.image.shape[:2]
    if same and not overlap:
        count = "accepted:same-weights"
        if faces != S.expected:
            raise fl.Finding("a blob with the original weights gives other faces: "
                             f"{faces[:2]} != {S.expected[:2]}")
    else:
        count = "accepted:other-weights"
    problems = cm.face_problems(faces, height, width, 0.0, 16)
    if problems and (overlap or not finite):
        return  # counted as a known issue above
    if problems and any("non-finite" in p for p in problems) and not same:
        fl.known_issue("nonfinite-output", f"finite modified weights: {problems[0]}")
        return
    if problems:
        raise fl.Finding(f"detect after loading the blob: {problems[:3]}")
    fl.count(count)


def test_one_input(data: bytes) -> None:
    setup()
    plan = decode(fl.make_provider(data))
    img = BlobImage(S.work, lib._testing.xxh64)
    try:
        if plan.raw is not None:
            img.truncate(0)
            img.append(plan.raw)
        else:
            apply(plan, img, S)
        img.save(S.path)
        what = "open_engine(blob)" if plan.use_open_engine else "Detector(weights=blob)"
        det = engine = None
        try:
            if plan.use_open_engine:
                engine, _ = lib.weights.open_engine(S.path)
            else:
                det = lib.Detector(weights=S.path, score_threshold=0.0, max_faces=16)
        except Exception as exc:
            fl.check_exception(exc, ALLOWED, what)
            return
        if engine is not None:
            info = engine.info
            want = dict(version=img.u(8, 4), tensor_count=img.u(16, 4), file_size=len(img),
                        checksum=img.u(56, 8), model_name=MODEL_NAME.decode())
            got = {k: info.get(k) for k in want}
            if got != want:
                raise fl.Finding(f"open_engine info {got} != header {want}")
            fl.count("accepted:open_engine")
        check_accepted(img, det)
    finally:
        img.restore()


def main() -> None:
    fl.run(test_one_input, setup)


if __name__ == "__main__":
    main()

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

    python tests/fuzz/fuzz_blob.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _fuzzlib as fl

# The exceptions a rejected blob may raise (BlobError is a ValueError).
ALLOWED: tuple[type, ...] = (ValueError, OSError, MemoryError)

HEADER = 128
ENTRY = 128
VERSION = 2
MODEL_NAME = b"ssd_mobilenetv2_face"

# (offset, width) of the header's integer fields, blob.h order.
HEADER_FIELDS = [(8, 4), (12, 4), (16, 4), (20, 4), (24, 8), (32, 8), (40, 8), (48, 8), (56, 8)]
# (offset, width) inside a table entry: name bytes, dtype, kind, ndim, shape[4], offset, size.
ENTRY_FIELDS = [(0, 1), (19, 1), (87, 1), (88, 2), (90, 2), (92, 4), (96, 4), (100, 4),
                (104, 4), (108, 4), (112, 8), (120, 8)]
SPECIAL_INTS = [0, 1, 2, 63, 64, 65, 127, 128, 144, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 64]
FLOAT_VALUES = [math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e20, 1e-45, 0.0, -0.0, 1.0,
                -1.0, 1e6]

(OP_HEADER_BYTES, OP_HEADER_FIELD, OP_ENTRY_FIELD, OP_COPY_ENTRY, OP_SWAP_ENTRIES,
 OP_TENSOR_VALUE, OP_ANY_BYTES, OP_TRUNCATE, OP_APPEND, OP_RENAME) = range(10)
N_OPS = 10
MAX_OPS = 6
MAX_ENTRY = 159  # a few past the 144 real entries
# Reference points for relative values and truncation, filled in by setup().
REF_NAMES = ["zero", "header_end", "table_end", "payload_offset", "payload_size", "file_size",
             "tensor_offset", "tensor_end", "tensor_size"]

lib: Any = None  # the ssdface module, imported by setup()
S: State | None = None


@dataclass
class State:
    pristine: bytes
    work: bytearray
    count: int
    payload_off: int
    names: list[bytes]  # graph tensor names, blob order
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

    import ssdface
    import ssdface.weights
    from ssdface import _testing  # noqa: F401 (lib._testing.xxh64: the blob checksum)

    lib = ssdface
    blob = ssdface.weights.pack_bytes(fl.weights_dir()).tobytes()
    count = struct.unpack_from("<I", blob, 16)[0]
    payload_off = struct.unpack_from("<Q", blob, 32)[0]
    names, entries, meta = [], [], []
    for i in range(count):
        e = blob[HEADER + i * ENTRY:HEADER + (i + 1) * ENTRY]
        names.append(e[:88].rstrip(b"\0"))
        entries.append(struct.unpack_from("<QQ", e, 112))
        meta.append(e[88:112])
    path = fl.workdir() / "pristine.blob"
    path.write_bytes(blob)
    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    expected = ssdface.Detector(weights=path, score_threshold=0.0, max_faces=16).detect(image)
    S = State(blob, bytearray(blob), count, payload_off, names, entries, meta, image, expected,
              fl.workdir() / "fuzzed.blob")


# --- the mutable blob ------------------------------------------------------------


class BlobImage:
    """The pristine blob with patches, truncation and a tail, without copying
    18 MB per input: writes go to the shared buffer and are undone afterwards."""

    def __init__(self, work: bytearray) -> None:
        self.work = work
        self.n = len(work)
        self.tail = bytearray()
        self.undo: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return self.n + len(self.tail)

    def write(self, off: int, data: bytes) -> None:
        end = min(off + len(data), len(self))
        if off < 0 or off >= end:
            return
        data = data[:end - off]
        head = max(0, min(end, self.n) - off)
        if head:
            self.undo.append((off, bytes(self.work[off:off + head])))
            self.work[off:off + head] = data[:head]
        if head < len(data):
            t0 = off + head - self.n
            self.tail[t0:t0 + len(data) - head] = data[head:]

    def read(self, off: int, size: int) -> bytes:
        end = min(off + size, len(self))
        if off < 0 or off >= end:
            return b""
        out = bytes(self.work[off:min(end, self.n)]) if off < self.n else b""
        if end > self.n:
            out += bytes(self.tail[max(off - self.n, 0):end - self.n])
        return out

    def u(self, off: int, width: int) -> int:
        raw = self.read(off, width)
        return int.from_bytes(raw, "little") if len(raw) == width else 0

    def put(self, off: int, width: int, value: int) -> None:
        self.write(off, (value % (1 << (8 * width))).to_bytes(width, "little"))

    def truncate(self, size: int) -> None:
        size = max(0, size)
        if size <= self.n:
            self.n, self.tail = size, bytearray()
        else:
            del self.tail[size - self.n:]

    def append(self, data: bytes) -> None:
        self.tail += data

    def body_checksum(self) -> int:
        """XXH64 of bytes [64, end)."""
        if len(self) <= 64:
            return lib._testing.xxh64(b"")
        if not self.tail:
            return lib._testing.xxh64(memoryview(self.work)[64:self.n])
        return lib._testing.xxh64(bytes(memoryview(self.work)[64:self.n]) + bytes(self.tail))

    def save(self, path: Path) -> None:
        if path.exists() or path.is_symlink():
            path.unlink()  # never rewrite a file an old engine may still map
        with open(path, "wb") as f:
            f.write(memoryview(self.work)[:self.n])
            f.write(self.tail)

    def restore(self) -> None:
        for off, old in reversed(self.undo):
            self.work[off:off + len(old)] = old
        self.undo.clear()


# --- decoding the input --------------------------------------------------------------


@dataclass
class Plan:
    use_open_engine: bool = False
    raw: bytes | None = None
    ops: list[tuple] = field(default_factory=list)
    fix_sizes: bool = True
    rechecksum: bool = True


def _value(fdp: Any, width: int) -> tuple:
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:
        return ("special", fdp.ConsumeIntInRange(0, len(SPECIAL_INTS) - 1))
    if kind == 1:
        return ("small", fdp.ConsumeIntInRange(0, 300))
    if kind == 2:
        return ("raw", fdp.ConsumeIntInRange(0, (1 << (8 * width)) - 1))
    ref = fdp.ConsumeIntInRange(0, len(REF_NAMES) - 1)
    tensor = fdp.ConsumeIntInRange(0, 143)
    delta = fdp.ConsumeIntInRange(-256, 256)
    return ("rel", ref, tensor, delta)


def decode(fdp: Any) -> Plan:
    plan = Plan(use_open_engine=fdp.ConsumeIntInRange(0, 3) == 3)
    if fdp.ConsumeIntInRange(0, 15) == 15:
        plan.raw = fdp.ConsumeBytes(fdp.remaining_bytes())
        return plan
    for _ in range(fdp.ConsumeIntInRange(0, MAX_OPS)):
        op = fdp.ConsumeIntInRange(0, N_OPS - 1)
        if op == OP_HEADER_BYTES:
            off = fdp.ConsumeIntInRange(0, HEADER - 1)
            plan.ops.append((op, off, fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))))
        elif op == OP_HEADER_FIELD:
            f = fdp.ConsumeIntInRange(0, len(HEADER_FIELDS) - 1)
            plan.ops.append((op, f, _value(fdp, HEADER_FIELDS[f][1])))
        elif op == OP_ENTRY_FIELD:
            entry = fdp.ConsumeIntInRange(0, MAX_ENTRY)
            f = fdp.ConsumeIntInRange(0, len(ENTRY_FIELDS) - 1)
            plan.ops.append((op, entry, f, _value(fdp, ENTRY_FIELDS[f][1])))
        elif op in (OP_COPY_ENTRY, OP_SWAP_ENTRIES):
            plan.ops.append((op, fdp.ConsumeIntInRange(0, MAX_ENTRY),
                             fdp.ConsumeIntInRange(0, MAX_ENTRY)))
        elif op == OP_TENSOR_VALUE:
            plan.ops.append((op, fdp.ConsumeIntInRange(0, 143),
                             fdp.ConsumeIntInRange(0, (1 << 32) - 1),
                             fdp.ConsumeIntInRange(0, len(FLOAT_VALUES) - 1),
                             fdp.ConsumeIntInRange(1, 64)))
        elif op == OP_ANY_BYTES:
            off = fdp.ConsumeIntInRange(0, (1 << 32) - 1)
            plan.ops.append((op, off, fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))))
        elif op == OP_TRUNCATE:
            ref = fdp.ConsumeIntInRange(0, len(REF_NAMES) - 1)
            plan.ops.append((op, ref, fdp.ConsumeIntInRange(0, 143),
                             fdp.ConsumeIntInRange(-256, 256)))
        elif op == OP_APPEND:
            data = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
            plan.ops.append((op, data, fdp.ConsumeIntInRange(0, 4096)))
        elif op == OP_RENAME:
            plan.ops.append((op, fdp.ConsumeIntInRange(0, MAX_ENTRY),
                             fdp.ConsumeIntInRange(0, 144), fdp.ConsumeIntInRange(0, 3)))
    plan.fix_sizes = fdp.ConsumeIntInRange(0, 1) == 0
    plan.rechecksum = fdp.ConsumeIntInRange(0, 3) != 3
    return plan


def _encode_value(w: fl.SeedWriter, value: tuple, width: int) -> None:
    kind = ["special", "small", "raw", "rel"].index(value[0])
    w.int(0, 3, kind)
    if kind == 0:
        w.int(0, len(SPECIAL_INTS) - 1, value[1])
    elif kind == 1:
        w.int(0, 300, value[1])
    elif kind == 2:
        w.int(0, (1 << (8 * width)) - 1, value[1])
    else:
        w.int(0, len(REF_NAMES) - 1, value[1]).int(0, 143, value[2]).int(-256, 256, value[3])


def encode(plan: Plan) -> bytes:
    """The input that decodes to ``plan`` (the inverse of :func:`decode`)."""
    w = fl.SeedWriter()
    w.int(0, 3, 3 if plan.use_open_engine else 0)
    if plan.raw is not None:
        return w.int(0, 15, 15).bytes(plan.raw).getvalue()
    w.int(0, 15, 0).int(0, MAX_OPS, len(plan.ops))
    for op, *args in plan.ops:
        w.int(0, N_OPS - 1, op)
        if op in (OP_HEADER_BYTES, OP_ANY_BYTES):
            w.int(0, HEADER - 1 if op == OP_HEADER_BYTES else (1 << 32) - 1, args[0])
            w.int(1, 8 if op == OP_HEADER_BYTES else 16, len(args[1])).bytes(args[1])
        elif op == OP_HEADER_FIELD:
            w.int(0, len(HEADER_FIELDS) - 1, args[0])
            _encode_value(w, args[1], HEADER_FIELDS[args[0]][1])
        elif op == OP_ENTRY_FIELD:
            w.int(0, MAX_ENTRY, args[0]).int(0, len(ENTRY_FIELDS) - 1, args[1])
            _encode_value(w, args[2], ENTRY_FIELDS[args[1]][1])
        elif op in (OP_COPY_ENTRY, OP_SWAP_ENTRIES):
            w.int(0, MAX_ENTRY, args[0]).int(0, MAX_ENTRY, args[1])
        elif op == OP_TENSOR_VALUE:
            w.int(0, 143, args[0]).int(0, (1 << 32) - 1, args[1])
            w.int(0, len(FLOAT_VALUES) - 1, args[2]).int(1, 64, args[3])
        elif op == OP_TRUNCATE:
            w.int(0, len(REF_NAMES) - 1, args[0]).int(0, 143, args[1]).int(-256, 256, args[2])
        elif op == OP_APPEND:
            w.int(0, 64, len(args[0])).bytes(args[0]).int(0, 4096, args[1])
        elif op == OP_RENAME:
            w.int(0, MAX_ENTRY, args[0]).int(0, 144, args[1]).int(0, 3, args[2])
    w.int(0, 1, 0 if plan.fix_sizes else 1)
    return w.int(0, 3, 0 if plan.rechecksum else 3).getvalue()


# --- applying it ------------------------------------------------------------------------


def _ref(ref: int, tensor: int) -> int:
    off, size = S.entries[tensor % S.count]
    return {
        "zero": 0,
        "header_end": HEADER,
        "table_end": HEADER + S.count * ENTRY,
        "payload_offset": S.payload_off,
        "payload_size": len(S.pristine) - S.payload_off,
        "file_size": len(S.pristine),
        "tensor_offset": off,
        "tensor_end": off + size,
        "tensor_size": size,
    }[REF_NAMES[ref]]


def _resolve(value: tuple) -> int:
    if value[0] == "special":
        return SPECIAL_INTS[value[1]]
    if value[0] in ("small", "raw"):
        return value[1]
    return _ref(value[1], value[2]) + value[3]


def apply(plan: Plan, img: BlobImage) -> None:
    for op, *args in plan.ops:
        if op == OP_HEADER_BYTES:
            img.write(args[0], args[1])
        elif op == OP_HEADER_FIELD:
            off, width = HEADER_FIELDS[args[0]]
            img.put(off, width, _resolve(args[1]))
        elif op == OP_ENTRY_FIELD:
            off, width = ENTRY_FIELDS[args[1]]
            img.put(HEADER + args[0] * ENTRY + off, width, _resolve(args[2]))
        elif op in (OP_COPY_ENTRY, OP_SWAP_ENTRIES):
            a, b = (HEADER + i * ENTRY for i in args)
            ea, eb = img.read(a, ENTRY), img.read(b, ENTRY)
            img.write(a, eb)
            if op == OP_SWAP_ENTRIES:
                img.write(b, ea)
        elif op == OP_TENSOR_VALUE:
            off, size = S.entries[args[0] % S.count]
            first = args[1] % (size // 4)
            value = struct.pack("<f", FLOAT_VALUES[args[2]]) * args[3]
            img.write(S.payload_off + off + 4 * first, value[:size - 4 * first])
        elif op == OP_ANY_BYTES:
            if len(img):
                img.write(args[0] % len(img), args[1])
        elif op == OP_TRUNCATE:
            img.truncate(_ref(args[0], args[1]) + args[2])
        elif op == OP_APPEND:
            img.append(args[0] + bytes(args[1]))
        elif op == OP_RENAME:
            entry, name_index, style = args
            name = S.names[name_index] if name_index < S.count else b""
            if style == 1:
                name = name[:-1]  # a prefix of a real name
            elif style == 2:
                name = name + b"_"  # a real name with a suffix
            elif style == 3:
                name = name.upper()
            img.write(HEADER + entry * ENTRY, name.ljust(88, b"\0")[:88])
    if plan.fix_sizes and len(img) >= HEADER:
        img.put(48, 8, len(img))
        img.put(40, 8, len(img) - img.u(32, 8))
    if plan.rechecksum and len(img) >= 64:
        img.put(56, 8, img.body_checksum())


# --- what an accepted blob must be ------------------------------------------------------


def _accepted_blob_problems(img: BlobImage) -> tuple[list[str], list[tuple[int, int]]]:
    """Independent check of the format: what is wrong with a blob the loader
    accepted, and the absolute byte range of each graph tensor."""
    size = len(img)
    problems = []
    if size < HEADER or img.read(0, 8) != b"SSDFBLOB":
        return [f"no blob header ({size} bytes)"], []
    count, payload_off, payload_size = img.u(16, 4), img.u(32, 8), img.u(40, 8)
    if img.u(8, 4) != VERSION:
        problems.append(f"version {img.u(8, 4)}")
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
        entry = next((e for e in table if e[:len(name) + 1] == name + b"\0"), None)
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


def _faces_problems(faces: Any, width: int, height: int) -> list[str]:
    out = []
    if not isinstance(faces, list) or len(faces) > 16:
        return [f"detect returned {type(faces).__name__} of length {len(faces)}"]
    for f in faces:
        x0, y0, x1, y1 = f.box
        if not all(math.isfinite(v) for v in (*f.box, f.score)):
            out.append(f"non-finite face {f}")
        elif not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height and 0 <= f.score <= 1):
            out.append(f"face out of bounds {f}")
    scores = [f.score for f in faces]
    if scores != sorted(scores, reverse=True):
        out.append("faces not sorted by score")
    return out


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
                 for r0, r1 in ranges)
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
    problems = _faces_problems(faces, width, height)
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
    img = BlobImage(S.work)
    try:
        if plan.raw is not None:
            img.truncate(0)
            img.append(plan.raw)
        else:
            apply(plan, img)
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
            want = dict(version=VERSION, tensor_count=img.u(16, 4), file_size=len(img),
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

"""The ``blob`` target's input: a plan of structured mutations of the real
blob (header fields, table entries, tensor values, truncation, appended
bytes, arbitrary bytes; then size fields fixed and the checksum recomputed,
or not), or a raw file. :func:`decode` reads a plan from the fuzzer's input,
:func:`encode` writes the input of a plan (the seeds, ``make_corpus.py``),
:func:`apply` makes the mutated blob in a :class:`BlobImage`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import _fuzzlib as fl
from _common import BLOB_ENTRY, BLOB_HEADER

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
# Reference points for relative values and truncation (see _ref).
REF_NAMES = ["zero", "header_end", "table_end", "payload_offset", "payload_size", "file_size",
             "tensor_offset", "tensor_end", "tensor_size"]


class Pristine(Protocol):
    """What :func:`apply` reads of the unmutated blob (the target's state)."""

    pristine: bytes
    count: int
    payload_off: int
    names: list[bytes]  # graph tensor names, blob order
    entries: list[tuple[int, int]]  # (offset, size) per tensor, pristine


# --- the mutable blob ------------------------------------------------------------


class BlobImage:
    """The pristine blob with patches, truncation and a tail, without copying
    18 MB per input: writes go to the shared buffer and are undone afterwards."""

    def __init__(self, work: bytearray, xxh64: Callable[[Any], int]) -> None:
        self.work = work
        self.xxh64 = xxh64  # ssdface._testing.xxh64
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
            return self.xxh64(b"")
        if not self.tail:
            return self.xxh64(memoryview(self.work)[64:self.n])
        return self.xxh64(bytes(memoryview(self.work)[64:self.n]) + bytes(self.tail))

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
            off = fdp.ConsumeIntInRange(0, BLOB_HEADER - 1)
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
            w.int(0, BLOB_HEADER - 1 if op == OP_HEADER_BYTES else (1 << 32) - 1, args[0])
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


def _ref(ref: int, tensor: int, base: Pristine) -> int:
    off, size = base.entries[tensor % base.count]
    return {
        "zero": 0,
        "header_end": BLOB_HEADER,
        "table_end": BLOB_HEADER + base.count * BLOB_ENTRY,
        "payload_offset": base.payload_off,
        "payload_size": len(base.pristine) - base.payload_off,
        "file_size": len(base.pristine),
        "tensor_offset": off,
        "tensor_end": off + size,
        "tensor_size": size,
    }[REF_NAMES[ref]]


def _resolve(value: tuple, base: Pristine) -> int:
    if value[0] == "special":
        return SPECIAL_INTS[value[1]]
    if value[0] in ("small", "raw"):
        return value[1]
    return _ref(value[1], value[2], base) + value[3]


def apply(plan: Plan, img: BlobImage, base: Pristine) -> None:
    """Mutate ``img`` (the pristine blob) as ``plan`` says."""
    for op, *args in plan.ops:
        if op == OP_HEADER_BYTES:
            img.write(args[0], args[1])
        elif op == OP_HEADER_FIELD:
            off, width = HEADER_FIELDS[args[0]]
            img.put(off, width, _resolve(args[1], base))
        elif op == OP_ENTRY_FIELD:
            off, width = ENTRY_FIELDS[args[1]]
            img.put(BLOB_HEADER + args[0] * BLOB_ENTRY + off, width, _resolve(args[2], base))
        elif op in (OP_COPY_ENTRY, OP_SWAP_ENTRIES):
            a, b = (BLOB_HEADER + i * BLOB_ENTRY for i in args)
            ea, eb = img.read(a, BLOB_ENTRY), img.read(b, BLOB_ENTRY)
            img.write(a, eb)
            if op == OP_SWAP_ENTRIES:
                img.write(b, ea)
        elif op == OP_TENSOR_VALUE:
            off, size = base.entries[args[0] % base.count]
            first = args[1] % (size // 4)
            value = struct.pack("<f", FLOAT_VALUES[args[2]]) * args[3]
            img.write(base.payload_off + off + 4 * first, value[:size - 4 * first])
        elif op == OP_ANY_BYTES:
            if len(img):
                img.write(args[0] % len(img), args[1])
        elif op == OP_TRUNCATE:
            img.truncate(_ref(args[0], args[1], base) + args[2])
        elif op == OP_APPEND:
            img.append(args[0] + bytes(args[1]))
        elif op == OP_RENAME:
            entry, name_index, style = args
            name = base.names[name_index] if name_index < base.count else b""
            if style == 1:
                name = name[:-1]  # a prefix of a real name
            elif style == 2:
                name = name + b"_"  # a real name with a suffix
            elif style == 3:
                name = name.upper()
            img.write(BLOB_HEADER + entry * BLOB_ENTRY, name.ljust(88, b"\0")[:88])
    if plan.fix_sizes and len(img) >= BLOB_HEADER:
        img.put(48, 8, len(img))
        img.put(40, 8, len(img) - img.u(32, 8))
    if plan.rechecksum and len(img) >= 64:
        img.put(56, 8, img.body_checksum())

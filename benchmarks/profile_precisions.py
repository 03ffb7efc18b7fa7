"""Where a forward pass spends its time in float32 and in int8, step by step
(a fused block is one step), with the rate of each (G multiply-adds/s).

    python benchmarks/profile_precisions.py [--weights BLOB_OR_NPY_DIR] [--repeats N]
                                            [--threads T] [--per-layer]

Runs ``Engine.profile`` on a random input in one process, float32 then
int8, with each precision's best kernels; prints a Markdown table for
RESULTS.md. Layers outside fused blocks are summed by kind, or listed one
by one with ``--per-layer`` (a fused block is one step: its three layers
run interleaved, row band by row band).
"""

from __future__ import annotations

import argparse

import numpy as np

from ssdface import _core, _testing
from ssdface.weights import find_weights, pack_bytes, read_blob


def macs(layer: dict) -> float:
    out = float(np.prod(layer["out_shape"]))
    c = layer["in_shape"][2]
    if layer["op"] == "depthwise3x3":
        return out * 9
    return out * (9 * c if layer["op"] == "conv3x3" else c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="blob or .npy folder (default: as Detector)")
    ap.add_argument("--repeats", type=int, default=40, help="forwards per precision")
    ap.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    ap.add_argument("--per-layer", action="store_true",
                    help="one row per step (fused block or layer) instead of sums by kind")
    args = ap.parse_args()
    path = find_weights(args.weights)
    blob = pack_bytes(path) if path.is_dir() else read_blob(path)
    layers = _core.layers()
    m = np.array([macs(layer) for layer in layers])
    x = np.random.default_rng(0).uniform(-1, 1, (1, *_core.INPUT_SHAPE)).astype(np.float32)
    ms = {}
    for precision in ("f32", "qu8"):
        engine = _core.Engine(blob, args.threads, precision)
        engine.profile(x, 5)
        ms[precision] = np.array(engine.profile(x, args.repeats)) / args.repeats * 1e3
    f, q = ms["f32"], ms["qu8"]
    print(f"`Engine.profile`, {args.repeats} forwards, {args.threads} thread(s): "
          f"f32 {f.sum():.2f} ms, "
          f"int8 {q.sum():.2f} ms, {m.sum() / 1e9:.3f} G multiply-adds\n")
    print("| step (layers) | what | G MACs | f32 ms | f32 GMAC/s | int8 ms | int8 GMAC/s |")
    print("|---|---|---:|---:|---:|---:|---:|")

    def row(name: str, what: str, idx: list[int]) -> None:
        g, a, b = m[idx].sum() / 1e9, f[idx].sum(), q[idx].sum()
        print(f"| {name} | {what} | {g:.3f} | {a:.2f} | {g / a * 1e3:.0f} | {b:.2f} | "
              f"{g / b * 1e3:.0f} |")

    rest: dict[str, list[int]] = {}
    for first, count in _testing.plan()["steps"]:
        layer = layers[first]
        if count == 3:
            shape = "x".join(map(str, layer["in_shape"]))
            what = (f"fused block {shape} -> {layers[first + 1]['out_shape'][2]} -> "
                    f"{layers[first + 2]['out_shape'][2]}")
            row(f"{first}-{first + 2}", what, list(range(first, first + 3)))
        else:
            kind = "head" if layer["dst"] in (17, 18) else layer["op"]
            if args.per_layer:
                shape = "x".join(map(str, layer["in_shape"]))
                row(f"{first}", f"{kind} {shape} -> {layer['out_shape'][2]}", [first])
                continue
            rest.setdefault(kind, []).append(first)
    for kind, idx in rest.items():
        row(f"{len(idx)} layers", f"unfused {kind}", idx)


if __name__ == "__main__":
    main()

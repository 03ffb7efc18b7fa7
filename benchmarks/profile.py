"""Per-layer profile of the ssdface engine: where a forward pass spends its
time, and at what rate (G multiply-adds per second, GMAC/s; 1 MAC = 2 FLOP).

Fused blocks (producer -> depthwise -> project) run as one kernel; they are
reported as one row with the multiply-adds of all three layers.

    python benchmarks/profile.py [--threads N] [--isa NAME] [--repeats R] [--top K]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import ssdface
from ssdface import _core


def layer_macs(layer: dict) -> int:
    h, w, c = layer["in_shape"]
    oh, ow, oc = layer["out_shape"]
    if layer["op"] == "depthwise3x3":
        return oh * ow * oc * 9
    return oh * ow * oc * c * (9 if layer["op"] == "conv3x3" else 1)


def rows(times: np.ndarray) -> list[dict]:
    """Group the layer table into what the engine runs: fused blocks or layers."""
    layers, out, i = _core.layers(), [], 0
    while i < len(layers):
        group = [i]
        while layers[group[-1]]["fuse_next"]:
            group.append(group[-1] + 1)
        first, last = layers[group[0]], layers[group[-1]]
        name = last["weight"].replace("FeatureExtractor_MobilenetV2_", "")
        out.append({
            "what": "fused block" if len(group) > 1 else first["op"],
            "name": name.removesuffix("_weights").removesuffix("_project"),
            "shape": f"{first['in_shape']} -> {last['out_shape']}",
            "seconds": float(sum(times[j] for j in group)),
            "macs": sum(layer_macs(layers[j]) for j in group),
        })
        i = group[-1] + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--isa", default=None)
    parser.add_argument("--repeats", type=int, default=30, help="forwards per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurements; the minimum is kept")
    parser.add_argument("--top", type=int, default=0, help="only the K slowest rows")
    parser.add_argument("--weights", default=os.environ.get("SSDFACE_WEIGHTS") or str(
        Path(__file__).resolve().parents[2] / "shared/weights/ssd_mobilenetv2_face_nhwc"))
    args = parser.parse_args()

    det = ssdface.Detector(args.weights, num_threads=args.threads, isa=args.isa)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    for _ in range(5):
        det.forward(x)
    best = None
    for _ in range(args.rounds):  # per layer, the fastest round: the least disturbed
        t = det._engine.profile(x, args.repeats) / args.repeats
        best = t if best is None else np.minimum(best, t)
    table = rows(best)
    total = sum(r["seconds"] for r in table)
    macs = sum(r["macs"] for r in table)
    print(f"ssdface {det.isa}, {args.threads} thread(s): {total * 1e3:.2f} ms per forward "
          f"(sum of per-layer minima), {macs / 1e9:.3f} GMAC, {macs / total / 1e9:.1f} GMAC/s")
    kinds: dict[str, list[float]] = {}
    for r in table:
        k = kinds.setdefault(r["what"], [0.0, 0.0])
        k[0] += r["seconds"]
        k[1] += r["macs"]
    for what, (sec, m) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        print(f"  {what:13s} {sec * 1e3:6.2f} ms {100 * sec / total:5.1f}%  "
              f"{m / 1e6:6.1f} MMAC  {m / sec / 1e9:6.1f} GMAC/s")
    print(f"\n{'us':>7s} {'%':>5s} {'GMAC/s':>7s}  {'what':12s} {'layer':34s} shape")
    shown = sorted(table, key=lambda r: -r["seconds"])[: args.top] if args.top else table
    for r in shown:
        print(f"{r['seconds'] * 1e6:7.1f} {100 * r['seconds'] / total:5.1f} "
              f"{r['macs'] / r['seconds'] / 1e9:7.1f}  {r['what']:12s} {r['name'][:34]:34s} "
              f"{r['shape']}")


if __name__ == "__main__":
    main()

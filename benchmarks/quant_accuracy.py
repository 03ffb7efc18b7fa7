#!/usr/bin/env python
"""The int8 simulation (``ssdface.quant``) against the float C engine, one pass.

For each statistic measured (the committed ranges file by default, or
``--statistics`` computed from a calibration statistics cache):

1. The shared photos (``shared/images``): each decoded and resized as
   ``Detector(padded_pass=False).detect(path)`` does it; the float32 faces
   are the C engine's (checked equal to ``detect``'s), the int8 faces those
   of the simulation's head outputs through the same post-processing
   (``_core.postprocess`` at the ``Detector`` defaults: score 0.28, NMS IoU
   0.6, 100 faces). Every f32 face must have an int8 face at IoU >= 0.9
   (greedy one-to-one matching, f32 faces by decreasing score).
2. The annotated photos (``shared/eval/faces``, protocol of its README, with
   ``benchmarks/accuracy.py``'s metrics): each decoded with Pillow and
   resized as ``Detector.detect(array)`` does it, one pass. Reported: the
   share of f32 faces (score >= 0.28) matched by an int8 face at IoU >= 0.8,
   and the AP (low-threshold run, 0.01, 1917 faces) of f32 and int8 on all
   scored faces and on faces >= 32 px.
3. ``--sqnr N``: per-layer SQNR of the int8 output (dequantized) against
   the float64 graph's on the photos and the first N annotated photos
   (errors accumulated through the network), worst layers first.
4. ``--sources STEP``: where the error comes from, on every STEP-th
   annotated photo: RMS error of the head outputs against the float64 graph
   when only some parts are quantized (fake quantization in float64: the
   input; the weights and biases, all or by kind; the activations, all or
   by kind), the int8 simulation itself, and the simulation with *bias
   correction*, an experiment outside the scheme: each float bias b[c]
   replaced by ``b[c] - sum_k mean(x_k) (w_deq[k, c] - w[k, c])``, the mean
   quantization error of the weights on the mean input (per-channel input
   means over 20 calibration crops), before :func:`quantize_model`.
5. ``--bias-correction``: steps 1-2 also with the bias-corrected model.

    python benchmarks/quant_accuracy.py                        # committed ranges
    python benchmarks/quant_accuracy.py --stats-cache /tmp/stats.npz \\
        --statistics minmax,p99.999,p99.99,p99.9,mean-minmax   # compare statistics
    python benchmarks/quant_accuracy.py --sqnr 10                 # + per-layer SQNR
    python benchmarks/quant_accuracy.py --sources 5 --bias-correction

The eval photos are read from the shared folder and never copied anywhere.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy, runinfo, beside this file
from accuracy import (  # noqa: E402
    VIEWS,
    Run,
    box_iou,
    default_eval_dir,
    evaluate_view,
    load_eval_set,
)
from accuracy import decode as decode_rgb  # noqa: E402
from runinfo import git_revision, loadavg  # noqa: E402

import ssdface  # noqa: E402
from ssdface import _core  # noqa: E402
from ssdface.detector import DEFAULT_SCORE_THRESHOLD  # noqa: E402
from ssdface.image import decode  # noqa: E402
from ssdface.quant import calibrate, graph, network, scheme  # noqa: E402

IOU_NMS = 0.6
MAX_FACES = 100
LOW_THRESHOLD, LOW_MAX_FACES = 0.01, 1917
PHOTO_IOU, EVAL_IOU = 0.9, 0.8


def match_faces(ref: np.ndarray, got: np.ndarray, iou: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of ``ref`` rows (xmin, ymin, xmax, ymax,
    score), by decreasing score, each to the free ``got`` row it overlaps
    most if that IoU is >= ``iou``: the pairs ``(ref row, got row, IoU)``."""
    if not len(ref) or not len(got):
        return []
    ious = box_iou(ref[:, :4], got[:, :4])
    taken = np.zeros(len(got), dtype=bool)
    pairs = []
    for r in np.argsort(-ref[:, 4], kind="stable"):
        cand = np.where(taken, -1.0, ious[r])
        g = int(np.argmax(cand))
        if cand[g] >= iou and cand[g] > 0:
            taken[g] = True
            pairs.append((int(r), g, float(cand[g])))
    return pairs


def rows(boxes: np.ndarray, logits: np.ndarray, size: tuple[int, int], threshold: float,
         max_faces: int) -> np.ndarray:
    """``_core.postprocess`` rows (xmin, ymin, xmax, ymax, score, anchor) in pixels of ``size``."""
    return _core.postprocess(np.ascontiguousarray(boxes, dtype=np.float32),
                             np.ascontiguousarray(logits, dtype=np.float32), _core.anchors(),
                             threshold, IOU_NMS, max_faces, float(size[0]), float(size[1]))


def scaled(r: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    out = r[:, :5].copy()
    out[:, [0, 2]] *= scale[0]
    out[:, [1, 3]] *= scale[1]
    return out


class Setup:
    """The weights, the f32 engine and the inputs, shared by every statistic."""

    def __init__(self, weights: Path, eval_dir: Path, images_dir: Path, limit: int | None):
        self.weights = network.load_float_weights(weights)
        self.layers = network.network_layers()
        self.detector = ssdface.Detector(weights, padded_pass=False)
        isa = self.detector.isa
        self.photos = []
        for path in sorted(images_dir.glob("*.jpg")):
            d = decode(path)
            x = _core.resize_normalize(d.pixels, impl=isa)
            b, lg = self.detector.forward(x[None])
            r = rows(b[0], lg[0], (d.pixels.shape[1], d.pixels.shape[0]),
                     DEFAULT_SCORE_THRESHOLD, MAX_FACES)
            f32 = scaled(r, d.scale)
            lib = np.array([f.box + (f.score,) for f in self.detector.detect(path)]).reshape(-1, 5)
            if not np.allclose(lib, f32, rtol=0, atol=1e-3):
                raise AssertionError(f"{path.name}: this path's f32 faces differ from detect's")
            self.photos.append((path.name, d, x, f32))
        self.eval_images = load_eval_set(eval_dir)[:limit]
        self.eval_inputs, self.eval_f32 = [], []
        for im in self.eval_images:
            arr = decode_rgb(im.path)
            x = _core.resize_normalize(arr, impl=isa)
            b, lg = self.detector.forward(x[None])
            self.eval_inputs.append(x)
            self.eval_f32.append((b[0], lg[0]))
            got = rows(b[0], lg[0], (im.width, im.height), DEFAULT_SCORE_THRESHOLD, MAX_FACES)
            want = np.array([f.box + (f.score,) for f in self.detector.detect(arr)]).reshape(-1, 5)
            if not np.array_equal(scaled(got, (1.0, 1.0)), want):
                raise AssertionError(f"{im.key}: this path's f32 faces differ from detect's")


def runs(images: list[Any], heads: list[tuple[np.ndarray, np.ndarray]], threshold: float,
         max_faces: int) -> Run:
    out = Run([], [], [], [])
    for im, (b, lg) in zip(images, heads):
        r = rows(b, lg, (im.width, im.height), threshold, max_faces)
        out.boxes.append(r[:, :4].astype(np.float64))
        out.scores.append(r[:, 4].astype(np.float64))
        out.seconds.append(0.0)
        out.passes.append(1.0)
    return out


def evaluate(setup: Setup, ranges: dict[int, tuple[float, float]], name: str,
             cache_dir: Path | None) -> dict[str, Any]:
    """Every figure of one set of ranges."""
    model = scheme.quantize_model(setup.weights, ranges, setup.layers)
    out: dict[str, Any] = {"name": name, "photos": []}
    for fname, d, x, f32 in setup.photos:
        run = graph.run_int8(model, x, setup.layers)
        r = rows(run.boxes, run.logits, (d.pixels.shape[1], d.pixels.shape[0]),
                 DEFAULT_SCORE_THRESHOLD, MAX_FACES)
        q8 = scaled(r, d.scale)
        pairs = match_faces(f32, q8, 0.0)
        out["photos"].append({
            "file": fname, "f32": len(f32), "int8": len(q8),
            "matched": sum(p[2] >= PHOTO_IOU for p in pairs),
            "min_iou": min((p[2] for p in pairs), default=math.nan),
            "max_score_diff": max((abs(f32[r, 4] - q8[g, 4]) for r, g, _ in pairs),
                                  default=math.nan)})
    digest = hashlib.sha256(repr(sorted(ranges.items())).encode())
    for layer in setup.layers:  # the weights too: bias-corrected models differ there
        digest.update(np.ascontiguousarray(setup.weights[layer.bias]).tobytes())
    key = digest.hexdigest()[:16]
    cached = cache_dir / f"int8-heads-{key}-{len(setup.eval_images)}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            heads = list(zip(z["boxes"], z["logits"]))
    else:
        heads = []
        for x in setup.eval_inputs:
            run = graph.run_int8(model, x, setup.layers)
            heads.append((run.boxes, run.logits))
        if cached is not None:
            np.savez(cached, boxes=np.stack([h[0] for h in heads]),
                     logits=np.stack([h[1] for h in heads]))
    images = setup.eval_images
    f32_default = runs(images, setup.eval_f32, DEFAULT_SCORE_THRESHOLD, MAX_FACES)
    q8_default = runs(images, heads, DEFAULT_SCORE_THRESHOLD, MAX_FACES)
    total = matched = 0
    pair_iou, pair_score = [], []
    for fb, fs, qb, qs in zip(f32_default.boxes, f32_default.scores, q8_default.boxes,
                              q8_default.scores):
        ref = np.column_stack([fb, fs]) if len(fs) else np.zeros((0, 5))
        got = np.column_stack([qb, qs]) if len(qs) else np.zeros((0, 5))
        total += len(ref)
        pairs = match_faces(ref, got, EVAL_IOU)
        matched += len(pairs)
        pair_iou += [p[2] for p in pairs]
        pair_score += [abs(ref[r, 4] - got[g, 4]) for r, g, _ in pairs]
    f_b = np.stack([h[0] for h in setup.eval_f32])
    f_l = np.stack([h[1] for h in setup.eval_f32])
    q_b = np.stack([h[0] for h in heads])
    q_l = np.stack([h[1] for h in heads])
    out["eval"] = {"f32_faces": total, "matched": matched,
                   "matched_pct": 100.0 * matched / total if total else math.nan,
                   "int8_faces": int(sum(len(s) for s in q8_default.scores)),
                   "mean_iou": float(np.mean(pair_iou)) if pair_iou else math.nan,
                   "mean_score_diff": float(np.mean(pair_score)) if pair_score else math.nan,
                   "rms_boxes": float(np.sqrt(np.mean((q_b - f_b) ** 2))),
                   "rms_logits": float(np.sqrt(np.mean((q_l - f_l) ** 2)))}
    f32_low = runs(images, setup.eval_f32, LOW_THRESHOLD, LOW_MAX_FACES)
    q8_low = runs(images, heads, LOW_THRESHOLD, LOW_MAX_FACES)
    for view in VIEWS:
        a = evaluate_view(images, f32_default, f32_low, view, DEFAULT_SCORE_THRESHOLD)
        b = evaluate_view(images, q8_default, q8_low, view, DEFAULT_SCORE_THRESHOLD)
        out["eval"][view.name] = {
            "ap_f32": a["low"]["ap"], "ap_int8": b["low"]["ap"],
            "recall_f32": a["default"]["recall"], "recall_int8": b["default"]["recall"],
            "precision_f32": a["default"]["precision"],
            "precision_int8": b["default"]["precision"]}
    return out


def sqnr_table(setup: Setup, ranges: dict[int, tuple[float, float]], n_eval: int
               ) -> list[dict[str, Any]]:
    """Per layer, pooled over the photos and the first ``n_eval`` annotated
    photos: SQNR (dB) of the int8 output against the float64 graph's."""
    model = scheme.quantize_model(setup.weights, ranges, setup.layers)
    sig = np.zeros(len(setup.layers))
    err = np.zeros(len(setup.layers))
    inputs = [p[2] for p in setup.photos] + setup.eval_inputs[:n_eval]
    for x in inputs:
        f = graph.run_float(setup.weights, x, np.float64, setup.layers)
        q = graph.run_int8(model, x, setup.layers)
        for layer in setup.layers:
            a = f.outputs[layer.index]
            e = graph.dequantized(model, q, layer.index) - a
            sig[layer.index] += float(np.sum(a * a))
            err[layer.index] += float(np.sum(e * e))
    table = []
    for layer in setup.layers:
        quant = model.activations.get(layer.index)
        table.append({
            "layer": layer.index, "op": layer.op, "relu6": layer.relu6,
            "residual": layer.residual, "head": layer.head, "weight": layer.weight,
            "out_shape": layer.out_shape,
            "scale": quant.scale if quant else math.nan,
            "zero_point": quant.zero_point if quant else -1,
            "sqnr_db": 10 * math.log10(sig[layer.index] / err[layer.index])
            if err[layer.index] > 0 else math.inf})
    return table


def fake_quant(y: np.ndarray, t: scheme.TensorQuant) -> np.ndarray:
    """``y`` through uint8 quantization and back (float64)."""
    return t.scale * (np.clip(np.rint(y / t.scale) + t.zero_point, 0, 255) - t.zero_point)


def dequantized_weights(setup: Setup, model: scheme.QuantizedModel,
                        pick: Any = lambda layer: True, weights: bool = True,
                        biases: bool = True) -> dict[str, np.ndarray]:
    """The float weights with those of the layers ``pick`` selects replaced by
    what the int8 model computes with: ``w_q * s_w`` and ``rint(b / (s_in s_w)) * s_in s_w``."""
    out = dict(setup.weights.tensors)
    for layer, lq in zip(setup.layers, model.layers):
        if not pick(layer):
            continue
        shape = [1, 1, 1, 1]
        shape[scheme.channel_axis(layer.op)] = -1
        unit = lq.input.scale * lq.w_scale
        if weights:
            out[layer.weight] = lq.w_q.astype(np.float64) * lq.w_scale.reshape(shape)
        if biases:
            out[layer.bias] = np.rint(setup.weights[layer.bias] / unit) * unit
    return out


def run_fake(setup: Setup, model: scheme.QuantizedModel, weights: dict[str, np.ndarray],
             x: np.ndarray, quant_input: bool, act_pick: Any = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """The float64 graph with fake-quantized input and activations (of the
    layers ``act_pick`` selects)."""
    x = x.astype(np.float64)
    if quant_input:
        x = fake_quant(x, model.input)
    outs: list[np.ndarray] = []
    for layer in setup.layers:
        src = x if layer.reads == network.NETWORK_INPUT else outs[layer.reads]
        res = outs[layer.adds] if layer.residual else None
        y = graph.float_layer(layer, src, weights[layer.weight], weights[layer.bias], res,
                              np.float64)
        if act_pick is not None and not layer.head and act_pick(layer):
            y = fake_quant(y, model.activations[layer.index])
        outs.append(y)
    return graph.assemble(setup.layers, outs)


def bias_corrected(setup: Setup, model: scheme.QuantizedModel, crops: int = 20
                   ) -> network.FloatWeights:
    """Float weights whose biases absorb the mean error of the quantized
    weights (see the module docstring, step 4): per-channel input means from
    the first ``crops`` crops of the calibration list."""
    items, _ = calibrate.read_inputs()
    shared = calibrate.default_shared_dir()
    picked = [it for it in items if it.crop is not None][:crops]
    means: dict[int, np.ndarray] = {}
    for it in picked:
        run = graph.run_float(setup.weights, calibrate.load_input(shared, it), np.float64,
                              setup.layers)
        for layer in setup.layers:
            src = run.input if layer.reads == network.NETWORK_INPUT else run.outputs[layer.reads]
            mean = src.reshape(-1, src.shape[-1]).mean(axis=0) / len(picked)
            means[layer.index] = means.get(layer.index, 0) + mean
    deq = dequantized_weights(setup, model, biases=False)
    out = dict(setup.weights.tensors)
    for layer in setup.layers:
        dw = deq[layer.weight] - setup.weights[layer.weight].astype(np.float64)
        mu = means[layer.index]
        if layer.op == "depthwise3x3":
            err = mu * dw.reshape(-1, dw.shape[-1]).sum(axis=0)
        else:
            err = (dw.sum(axis=(1, 2)) * mu).sum(axis=1)
        out[layer.bias] = (setup.weights[layer.bias] - err).astype(np.float32)
    return network.FloatWeights(out, setup.weights.checksum)


def error_sources(setup: Setup, ranges: dict[int, tuple[float, float]], step: int
                  ) -> list[tuple[str, float, float]]:
    """RMS error of (box encodings, logits) against the float64 graph, by what is quantized."""
    model = scheme.quantize_model(setup.weights, ranges, setup.layers)
    corrected = scheme.quantize_model(bias_corrected(setup, model), ranges, setup.layers)
    w = setup.weights.tensors
    is_dw = lambda layer: layer.op == "depthwise3x3"  # noqa: E731
    configs: list[tuple[str, Any]] = [
        ("input only", lambda x: run_fake(setup, model, w, x, True)),
        ("weights + biases only", lambda x: run_fake(
            setup, model, dequantized_weights(setup, model), x, False)),
        ("depthwise weights only", lambda x: run_fake(
            setup, model, dequantized_weights(setup, model, is_dw, biases=False), x, False)),
        ("other weights only", lambda x: run_fake(setup, model, dequantized_weights(
            setup, model, lambda layer: not is_dw(layer), biases=False), x, False)),
        ("biases only", lambda x: run_fake(
            setup, model, dequantized_weights(setup, model, weights=False), x, False)),
        ("activations only", lambda x: run_fake(setup, model, w, x, False, lambda _: True)),
        ("activations only, linear (project) layers", lambda x: run_fake(
            setup, model, w, x, False, lambda layer: not layer.relu6)),
        ("activations only, ReLU6 layers", lambda x: run_fake(
            setup, model, w, x, False, lambda layer: layer.relu6)),
        ("int8 simulation", lambda x: astuple(graph.run_int8(model, x, setup.layers))),
        ("int8 simulation, bias-corrected (outside the scheme)",
         lambda x: astuple(graph.run_int8(corrected, x, setup.layers))),
    ]
    inputs = setup.eval_inputs[::step]
    refs = [astuple(graph.run_float(setup.weights, x, np.float64, setup.layers))
            for x in inputs]
    out = []
    for name, fn in configs:
        eb = el = 0.0
        for x, (rb, rl) in zip(inputs, refs):
            qb, ql = fn(x)
            eb += float(np.mean((qb - rb) ** 2))
            el += float(np.mean((ql - rl) ** 2))
        out.append((name, math.sqrt(eb / len(inputs)), math.sqrt(el / len(inputs))))
    return out


def astuple(run: graph.Run) -> tuple[np.ndarray, np.ndarray]:
    return run.boxes, run.logits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = default_eval_dir().parents[1]
    ap.add_argument("--weights", type=Path,
                    default=shared / "weights" / "ssd_mobilenetv2_face_nhwc")
    ap.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    ap.add_argument("--images-dir", type=Path, default=shared / "images")
    ap.add_argument("--ranges", type=Path, default=calibrate.RANGES_FILE,
                    help="a ranges file (used unless --statistics is given)")
    ap.add_argument("--stats-cache", type=Path, help="calibration statistics (.npz written "
                    "by python -m ssdface.quant.calibrate --stats-cache)")
    ap.add_argument("--statistics", default=None,
                    help="comma-separated statistics to compare, from --stats-cache")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep the int8 head outputs of the eval set here, by ranges")
    ap.add_argument("--limit", type=int, default=None, help="only the first N eval images")
    ap.add_argument("--sqnr", type=int, default=0, metavar="N",
                    help="per-layer SQNR on the photos and N eval images")
    ap.add_argument("--worst", type=int, default=12, help="layers listed in the SQNR table")
    ap.add_argument("--sources", type=int, default=0, metavar="STEP",
                    help="error sources on every STEP-th eval image")
    ap.add_argument("--bias-correction", action="store_true",
                    help="also evaluate the bias-corrected model (outside the scheme)")
    args = ap.parse_args(argv)

    candidates: list[tuple[str, dict[int, tuple[float, float]]]] = []
    if args.statistics:
        if args.stats_cache is None:
            ap.error("--statistics needs --stats-cache")
        _items, sha = calibrate.read_inputs()
        stats = calibrate.Stats.load(args.stats_cache, sha)
        for name in args.statistics.split(","):
            candidates.append((name, calibrate.ranges_from_stats(stats, name)))
    else:
        loaded = calibrate.load_ranges(args.ranges)
        candidates.append((f"{loaded.statistic} ({args.ranges.name})", loaded.ranges))
    if args.cache_dir:
        args.cache_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    setup = Setup(args.weights, args.eval_dir, args.images_dir, args.limit)
    print(f"# revision {git_revision()}, load {loadavg()}, {len(setup.eval_images)} eval images, "
          f"f32 = C engine ({setup.detector.isa}), one pass", flush=True)
    results = []
    for name, ranges in candidates:
        res = evaluate(setup, ranges, name, args.cache_dir)
        results.append(res)
        report(res)
        print(f"# {time.time() - t0:.0f} s", flush=True)
    if args.bias_correction:
        plain = setup.weights
        for name, ranges in list(candidates):
            model = scheme.quantize_model(plain, ranges, setup.layers)
            setup.weights = bias_corrected(setup, model)
            res = evaluate(setup, ranges, f"{name}, bias-corrected (outside the scheme)",
                           args.cache_dir)
            setup.weights = plain
            results.append(res)
            report(res)
            print(f"# {time.time() - t0:.0f} s", flush=True)
    if len(results) > 1:
        summary(results)
    if args.sources:
        n = len(setup.eval_inputs[::args.sources])
        print(f"\n## Error sources ({candidates[0][0]}): RMS error against the float64 graph, "
              f"{n} eval images\n")
        print("| quantized | RMS box encodings | RMS logits |")
        print("|---|---:|---:|")
        for name, eb, el in error_sources(setup, candidates[0][1], args.sources):
            print(f"| {name} | {eb:.3f} | {el:.3f} |")
    if args.sqnr:
        table = sqnr_table(setup, candidates[0][1], args.sqnr)
        print(f"\n## Per-layer SQNR ({candidates[0][0]}), int8 vs float64, "
              f"{len(setup.photos)} photos + {min(args.sqnr, len(setup.eval_inputs))} eval "
              "images, worst first\n")
        print("| layer | op | out | relu6 | residual | scale | z | SQNR dB |")
        print("|---:|---|---|---|---|---:|---:|---:|")
        for row in sorted(table, key=lambda r: r["sqnr_db"])[:args.worst]:
            kind = "head" if row["head"] else ""
            print(f"| {row['layer']} | {row['op']} {kind} | {'x'.join(map(str, row['out_shape']))}"
                  f" | {'yes' if row['relu6'] else ''} | {'yes' if row['residual'] else ''}"
                  f" | {row['scale']:.4g} | {row['zero_point']} | {row['sqnr_db']:.1f} |")
        heads = [r["sqnr_db"] for r in table if r["head"]]
        body = [r["sqnr_db"] for r in table if not r["head"]]
        print(f"\nnon-head layers: median {np.median(body):.1f} dB, min {min(body):.1f}; "
              f"heads: median {np.median(heads):.1f} dB, min {min(heads):.1f}")
    return 0


def report(res: dict[str, Any]) -> None:
    print(f"\n## {res['name']}\n")
    print("| photo | f32 faces | int8 faces | matched at IoU >= 0.9 | min IoU | max score diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in res["photos"]:
        print(f"| {p['file']} | {p['f32']} | {p['int8']} | {p['matched']}/{p['f32']} "
              f"| {p['min_iou']:.3f} | {p['max_score_diff']:.3f} |")
    e = res["eval"]
    print(f"\neval set, one pass: {e['matched']}/{e['f32_faces']} f32 faces "
          f"({e['matched_pct']:.1f}%) matched by an int8 face at IoU >= 0.8 "
          f"({e['int8_faces']} int8 faces); matched pairs: mean IoU {e['mean_iou']:.3f}, "
          f"mean |score diff| {e['mean_score_diff']:.4f}; head outputs vs f32: RMS "
          f"{e['rms_boxes']:.3f} (box encodings), {e['rms_logits']:.3f} (logits)\n")
    print("| view | AP f32 | AP int8 | diff | recall f32 / int8 @0.28 "
          "| precision f32 / int8 @0.28 |")
    print("|---|---:|---:|---:|---|---|")
    for view in VIEWS:
        v = e[view.name]
        print(f"| {view.name} | {v['ap_f32']:.4f} | {v['ap_int8']:.4f} "
              f"| {v['ap_int8'] - v['ap_f32']:+.4f} "
              f"| {v['recall_f32']:.4f} / {v['recall_int8']:.4f} "
              f"| {v['precision_f32']:.4f} / {v['precision_int8']:.4f} |")


def summary(results: list[dict[str, Any]]) -> None:
    print("\n## Statistics compared\n")
    print("| statistic | matched IoU>=0.8 | mean IoU | mean score diff | RMS box / logit "
          "| AP all f32 / int8 | AP >=32px f32 / int8 | photos: matched IoU>=0.9 |")
    print("|---|---:|---:|---:|---|---|---|---|")
    for res in results:
        e = res["eval"]
        ph = sum(p["matched"] for p in res["photos"])
        n = sum(p["f32"] for p in res["photos"])
        print(f"| {res['name']} | {e['matched_pct']:.1f}% ({e['matched']}/{e['f32_faces']}) "
              f"| {e['mean_iou']:.3f} | {e['mean_score_diff']:.4f} "
              f"| {e['rms_boxes']:.3f} / {e['rms_logits']:.3f} "
              f"| {e['all']['ap_f32']:.4f} / {e['all']['ap_int8']:.4f} "
              f"| {e['ge32']['ap_f32']:.4f} / {e['ge32']['ap_int8']:.4f} | {ph}/{n} |")


if __name__ == "__main__":
    sys.exit(main())

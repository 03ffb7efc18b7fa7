"""Calibration: the activation ranges of the int8 model, from the float model.

::

    python -m ssdface.quant.calibrate --weights DIR [--images LIST] [--shared DIR]
        [--statistic NAME] [--out FILE] [--stats-cache NPZ]
    python -m ssdface.quant.calibrate --write-inputs [--seed N] [--crops N]

Inputs
    The list (default :data:`INPUTS_FILE`, ``calibration_inputs.txt`` beside
    this module) holds one input a line: a path relative to the shared folder
    (``$SSDFACE_SHARED`` or ``<repo>/../shared``), optionally followed by
    ``crop X0 Y0 X1 Y1`` (a rectangle in pixels of the stored image).
    ``#`` starts a comment. The committed list is the shared photos
    (``images/*.jpg``), the annotated photos (``eval/faces/images/wider/*.jpg``)
    and 64 random crops of them drawn with seed 0 by ``--write-inputs``
    (written out with their coordinates, so the list does not depend on any
    random generator). Only paths are committed, never images.

    Each input is preprocessed as a detector's one pass: a whole image is
    decoded as :meth:`ssdface.Detector.detect` decodes it for one view
    (:func:`ssdface.image.decode`, JPEG at the reduced draft scale) and
    resized to 300x300 (:func:`ssdface._core.resize_normalize`); a crop is
    cut from the full-resolution decode and resized the same way. The resize
    runs the portable ``scalar`` kernel set (the variants differ only in
    float32 rounding, < 1e-5), so the result does not depend on the CPU.

Statistics
    The float network runs in float64 (:func:`ssdface.quant.graph.run_float`)
    and, for every non-head layer output, records per input its min, max and
    the percentiles of :data:`PERCENTILES` (NumPy's linear interpolation).
    A statistic combines them over the inputs into one ``(min, max)`` per
    layer, rounded to float32 (so float64 summation-order noise between BLAS
    builds almost never changes a byte of the result):

    - ``minmax``: the smallest min and the largest max over all inputs;
    - ``pP`` (``p99.99``, ``p99.9``...): per input, the ``(100 - P)``-th and
      ``P``-th percentiles; then the smallest low and the largest high;
    - ``mean-minmax``: the mean over the inputs of each input's min and max.

    For the bias correction (:mod:`ssdface.quant.scheme`), it also records,
    for every layer (heads included), the per-channel mean of the layer's
    float64 input over all its positions, per input; the file keeps the
    mean of those over the inputs (every input is 300x300, so this is the
    mean over all positions of all inputs), rounded to float32.

    Which statistic: measured with ``python benchmarks/quant_accuracy.py
    --stats-cache NPZ --statistics minmax,p99.999,p99.99,p99.9,mean-minmax``
    (one pass of the float C engine and of the int8 simulation on the 101
    annotated photos of ``shared/eval/faces``; faces at the default score
    threshold 0.28; "matched": f32 faces with an int8 face at IoU >= 0.8;
    mean IoU and mean score difference of those pairs; AP of the 0.01 run on
    all scored faces and on faces >= 32 px; "photos": f32 faces of the 3
    shared photos with an int8 face at IoU >= 0.9)::

        statistic    matched  mean IoU  score diff  AP all f32/int8  AP >=32px f32/int8  photos
        minmax       52/52    0.974     0.0323      0.0330/0.0349    0.5023/0.5309       5/5
        p99.999      52/52    0.976     0.0296      0.0330/0.0346    0.5023/0.5272       5/5
        p99.99       51/52    0.976     0.0313      0.0330/0.0352    0.5023/0.5349       5/5
        p99.9        51/52    0.972     0.0337      0.0330/0.0351    0.5023/0.5346       5/5
        mean-minmax  52/52    0.972     0.0305      0.0330/0.0348    0.5023/0.5285       5/5

    ``p99.999`` (the default) is closest on every column, but the
    differences are small: the statistic barely matters here. The int8
    error is dominated by the weights (depthwise weights above all), not by
    the activation ranges: on 21 of the photos the RMS error of the logits
    against float is 0.29 with everything quantized, 0.26 with only the
    weights and biases quantized, 0.12 with only the activations.

Output
    A JSON file (default :data:`RANGES_FILE`, committed beside this module):
    ``format``, ``model``, ``statistic``, ``weights_checksum`` (XXH64 of the
    packed weights, as ``Detector.weights_info["checksum"]``), ``inputs``
    (list file name, SHA-256 of its bytes, count) and ``ranges``: for each
    non-head layer, keyed by its index (as a string, in layer order), the
    layer's weight tensor name and its ``min`` and ``max``; ``input_means``:
    for every layer (heads included), keyed the same way, its weight tensor
    name and ``mean``, the per-input-channel means of its input (a list of
    ``in_c`` float32 values, each the shortest decimal that reads back as
    it). Rerunning with the same inputs and weights
    writes the same bytes. :func:`load_ranges` also reads the previous
    format, ``ssdface-int8-ranges/1`` (no means: no bias correction).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _core
from .graph import run_float
from .inputs import (  # noqa: F401 - the input list, also reached through this module
    CROP_SIDE,
    DEFAULT_CROPS,
    DEFAULT_SEED,
    INPUTS_FILE,
    PHOTO_GLOBS,
    RESIZE_IMPL,
    CalibrationInput,
    default_shared_dir,
    format_inputs,
    load_input,
    make_inputs,
    parse_inputs,
    read_inputs,
)
from .network import NETWORK_INPUT, FloatWeights, Layer, load_float_weights, network_layers
from .scheme import ActivationRange

FORMAT = "ssdface-int8-ranges/2"
FORMATS_READ = ("ssdface-int8-ranges/1", FORMAT)  # /1: ranges only, no input means
RANGES_FILE = Path(__file__).resolve().with_name(f"{_core.MODEL_NAME}.int8-ranges.json")
DEFAULT_STATISTIC = "p99.999"
# Percentiles recorded per input (low and high tails of each candidate pP).
PERCENTILES = (0.001, 0.01, 0.1, 99.9, 99.99, 99.999)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


@dataclass
class Stats:
    """Per input and quantized layer: ``mins``/``maxs`` ``[inputs, layers]``
    and ``percentiles`` ``[inputs, layers, len(PERCENTILES)]``; ``layers``
    the layer indices of the columns. ``means`` ``[inputs, sum of in_c]``:
    per input, the per-channel means of every layer's input (all layers, in
    order, each ``in_c`` columns; see :func:`mean_columns`)."""

    layers: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    percentiles: np.ndarray
    means: np.ndarray

    def save(self, path: Path, inputs_sha256: str) -> None:
        """Write an ``.npz``, tagged with the input list's SHA-256."""
        np.savez(path, layers=self.layers, mins=self.mins, maxs=self.maxs,
                 percentiles=self.percentiles, means=self.means,
                 percentile_points=np.array(PERCENTILES),
                 inputs_sha256=np.array(inputs_sha256))

    @classmethod
    def load(cls, path: Path, inputs_sha256: str) -> Stats:
        """Read an ``.npz`` written by :meth:`save` for the same input list."""
        with np.load(path) as z:
            if tuple(z["percentile_points"]) != PERCENTILES:
                raise ValueError(f"{path}: recorded other percentiles")
            if str(z["inputs_sha256"]) != inputs_sha256:
                raise ValueError(f"{path}: recorded for another input list")
            if "means" not in z:
                raise ValueError(f"{path}: recorded without input means (an older "
                                 "cache): delete it to recollect")
            return cls(z["layers"], z["mins"], z["maxs"], z["percentiles"], z["means"])


def quantized_layers(layers: Sequence[Layer] | None = None) -> list[Layer]:
    """The layers whose outputs are quantized (every non-head layer)."""
    layers = network_layers() if layers is None else layers
    return [layer for layer in layers if not layer.head]


def mean_columns(layers: Sequence[Layer]) -> dict[int, slice]:
    """Layer index -> its columns in :attr:`Stats.means` (all layers, in order)."""
    out, start = {}, 0
    for lay in layers:
        out[lay.index] = slice(start, start + lay.in_shape[2])
        start += lay.in_shape[2]
    return out


def input_stats(weights: FloatWeights, x: np.ndarray,
                layers: Sequence[Layer] | None = None) -> tuple[np.ndarray, ...]:
    """``(mins, maxs, percentiles, means)`` for one input: the first three of
    every quantized layer's output, the last the per-channel means of every
    layer's input (concatenated in layer order)."""
    layers = network_layers() if layers is None else list(layers)
    run = run_float(weights, x, np.float64, layers)
    keep = quantized_layers(layers)
    mins = np.array([run.outputs[lay.index].min() for lay in keep])
    maxs = np.array([run.outputs[lay.index].max() for lay in keep])
    pct = np.stack([np.percentile(run.outputs[lay.index], PERCENTILES) for lay in keep])
    means = []
    for lay in layers:
        src = run.input if lay.reads == NETWORK_INPUT else run.outputs[lay.reads]
        src = np.asarray(src, dtype=np.float64)
        means.append(src.reshape(-1, src.shape[-1]).mean(axis=0))
    return mins, maxs, pct, np.concatenate(means)


def collect_stats(weights: FloatWeights, items: Sequence[CalibrationInput], shared: Path,
                  progress: bool = False) -> Stats:
    """Run the float64 model on every input and record its statistics."""
    layers = network_layers()
    rows = []
    for n, item in enumerate(items, 1):
        rows.append(input_stats(weights, load_input(shared, item), layers))
        if progress:
            print(f"\r{n}/{len(items)} {item.line()[:70]:70s}", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    keep = np.array([lay.index for lay in quantized_layers(layers)])
    return Stats(keep, np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                 np.stack([r[2] for r in rows]), np.stack([r[3] for r in rows]))


def statistic_names() -> list[str]:
    """The statistics :func:`ranges_from_stats` knows."""
    highs = [p for p in PERCENTILES if p > 50]
    return ["minmax", "mean-minmax"] + [f"p{p:g}" for p in highs]


def ranges_from_stats(stats: Stats, statistic: str = DEFAULT_STATISTIC
                      ) -> dict[int, ActivationRange]:
    """Layer index -> ``(min, max)`` by a statistic (see the module docstring),
    each rounded to float32."""
    if statistic == "minmax":
        lo, hi = stats.mins.min(axis=0), stats.maxs.max(axis=0)
    elif statistic == "mean-minmax":
        lo, hi = stats.mins.mean(axis=0), stats.maxs.mean(axis=0)
    elif statistic.startswith("p") and statistic in statistic_names():
        p = float(statistic[1:])
        k_hi = PERCENTILES.index(p)
        k_lo = min(range(len(PERCENTILES)), key=lambda k: abs(PERCENTILES[k] - (100 - p)))
        lo = stats.percentiles[:, :, k_lo].min(axis=0)
        hi = stats.percentiles[:, :, k_hi].max(axis=0)
    else:
        raise ValueError(f"unknown statistic {statistic!r}; known: {statistic_names()}")
    return {int(i): (float(np.float32(a)), float(np.float32(b)))
            for i, a, b in zip(stats.layers, lo, hi)}


def means_from_stats(stats: Stats, layers: Sequence[Layer] | None = None
                     ) -> dict[int, np.ndarray]:
    """Layer index -> per-input-channel mean of its input over the inputs
    (float32), for every layer."""
    layers = network_layers() if layers is None else layers
    total = stats.means.mean(axis=0)
    return {i: total[cols].astype(np.float32) for i, cols in mean_columns(layers).items()}


# ---------------------------------------------------------------------------
# The ranges file
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranges:
    """A calibration result: per quantized layer index, ``(min, max)``; per
    layer index (every layer), the float32 per-channel means of its input
    (None: a format 1 file, without them)."""

    ranges: dict[int, ActivationRange]
    statistic: str
    weights_checksum: int
    inputs_sha256: str
    inputs_count: int
    means: dict[int, np.ndarray] | None = None


def ranges_json(ranges: Ranges, inputs_name: str,
                layers: Sequence[Layer] | None = None) -> str:
    """The text of a ranges file."""
    layers = network_layers() if layers is None else layers
    by_index = {lay.index: lay for lay in layers}
    doc = {
        "format": FORMAT,
        "model": _core.MODEL_NAME,
        "statistic": ranges.statistic,
        "weights_checksum": f"0x{ranges.weights_checksum:016x}",
        "inputs": {"file": inputs_name, "sha256": ranges.inputs_sha256,
                   "count": ranges.inputs_count},
    }
    head = json.dumps(doc, indent=1)[:-2]  # without the closing "\n}"
    entries = [f'  "{i}": ' + json.dumps({"weight": by_index[i].weight, "min": lo, "max": hi})
               for i, (lo, hi) in sorted(ranges.ranges.items())]
    text = head + ',\n "ranges": {\n' + ",\n".join(entries) + "\n }"  # a layer a line
    if ranges.means is None:
        raise ValueError("a ranges file records the input means: calibrate with them")
    means = [f'  "{i}": {{"weight": {json.dumps(by_index[i].weight)}, "mean": ['
             + ", ".join(_float32_text(v) for v in np.asarray(m, dtype=np.float32)) + "]}"
             for i, m in sorted(ranges.means.items())]
    return text + ',\n "input_means": {\n' + ",\n".join(means) + "\n }\n}\n"


def _float32_text(v: np.float32) -> str:
    """The shortest decimal that reads back as the float32 ``v`` (a JSON number)."""
    text = np.format_float_scientific(v, unique=True, trim="-")
    if float(np.float32(float(text))) != float(v) or not np.isfinite(v):
        raise ValueError(f"cannot write {v!r}")
    return text


def load_ranges(path: str | os.PathLike[str] = RANGES_FILE,
                layers: Sequence[Layer] | None = None) -> Ranges:
    """Read a ranges file and check it against the layer table (every
    quantized layer present, under its weight tensor's name)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("format") not in FORMATS_READ or doc.get("model") != _core.MODEL_NAME:
        raise ValueError(f"{path}: not a {FORMAT} file for {_core.MODEL_NAME}")
    layers = network_layers() if layers is None else layers
    out: dict[int, ActivationRange] = {}
    for lay in quantized_layers(layers):
        entry = doc["ranges"].get(str(lay.index))
        if entry is None or entry.get("weight") != lay.weight:
            raise ValueError(f"{path}: no range for layer {lay.index} ({lay.weight})")
        lo, hi = float(entry["min"]), float(entry["max"])
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"{path}: layer {lay.index}: bad range [{lo}, {hi}]")
        out[lay.index] = (lo, hi)
    extra = set(doc["ranges"]) - {str(i) for i in out}
    if extra:
        raise ValueError(f"{path}: ranges for layers that are not quantized: {sorted(extra)}")
    means = None
    if doc["format"] != FORMATS_READ[0]:
        means = {}
        for lay in layers:
            entry = doc["input_means"].get(str(lay.index))
            if entry is None or entry.get("weight") != lay.weight:
                raise ValueError(f"{path}: no input means for layer {lay.index} ({lay.weight})")
            m = np.array(entry["mean"], dtype=np.float64)
            if m.shape != (lay.in_shape[2],) or not np.isfinite(m).all():
                raise ValueError(f"{path}: layer {lay.index}: bad input means")
            means[lay.index] = m.astype(np.float32)
        if len(doc["input_means"]) != len(means):
            raise ValueError(f"{path}: input means for layers not in the network")
    return Ranges(out, doc["statistic"], int(doc["weights_checksum"], 16),
                  doc["inputs"]["sha256"], int(doc["inputs"]["count"]), means)


def calibrate(weights: FloatWeights, items: Sequence[CalibrationInput], inputs_sha256: str,
              shared: Path, statistic: str = DEFAULT_STATISTIC,
              stats: Stats | None = None, progress: bool = False) -> tuple[Ranges, Stats]:
    """Ranges of ``items`` (or of ``stats`` already collected from them)."""
    if stats is None:
        stats = collect_stats(weights, items, shared, progress)
    elif stats.mins.shape[0] != len(items):
        raise ValueError(f"the statistics hold {stats.mins.shape[0]} inputs, not {len(items)}")
    return Ranges(ranges_from_stats(stats, statistic), statistic, weights.checksum,
                  inputs_sha256, len(items), means_from_stats(stats)), stats


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ssdface.quant.calibrate",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", help="folder of .npy files or a blob (default: the "
                    "detector's own search)")
    ap.add_argument("--images", type=Path, default=INPUTS_FILE, help="the input list file")
    ap.add_argument("--shared", type=Path, default=None,
                    help="the shared folder the list's paths are relative to")
    ap.add_argument("--statistic", default=DEFAULT_STATISTIC, choices=statistic_names())
    ap.add_argument("--out", type=Path, default=RANGES_FILE, help="the JSON file to write")
    ap.add_argument("--stats-cache", type=Path, default=None,
                    help="an .npz of per-input statistics: read if it exists, else written")
    ap.add_argument("--write-inputs", action="store_true",
                    help="write the input list (--images) from the shared photos and exit")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--crops", type=int, default=DEFAULT_CROPS)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    shared = args.shared or default_shared_dir()
    if args.write_inputs:
        items = make_inputs(shared, args.seed, args.crops)
        args.images.write_text(format_inputs(items, args.seed, args.crops), encoding="utf-8")
        print(f"{args.images}: {len(items)} inputs")
        return 0
    items, sha = read_inputs(args.images)
    weights = load_float_weights(args.weights)
    stats = None
    if args.stats_cache is not None and args.stats_cache.is_file():
        stats = Stats.load(args.stats_cache, sha)
    ranges, stats = calibrate(weights, items, sha, shared, args.statistic, stats,
                              progress=not args.quiet)
    if args.stats_cache is not None and not args.stats_cache.is_file():
        stats.save(args.stats_cache, sha)
    args.out.write_text(ranges_json(ranges, args.images.name), encoding="utf-8")
    print(f"{args.out}: {len(ranges.ranges)} layer ranges, {len(ranges.means or ())} layer "
          f"input means ({args.statistic}, {len(items)} inputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

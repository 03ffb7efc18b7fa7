#!/usr/bin/env python
"""ssdface side by side with TFLite (ai-edge-litert, tflite-runtime), onnxruntime and OpenVINO.

Exports the shared ``.npy`` weights to ``.tflite`` and ``.onnx``, and the int8
model ``ssdface int8`` runs to a fully quantized ``.tflite`` and a QDQ ``.onnx``
(the "... int8" rows: ai-edge-litert, onnxruntime and OpenVINO on those), and
packs a blob, in a temporary folder; then measures, for every engine that runs
here and every thread count:

* forward: one network pass on a preset ``[1, 300, 300, 3]`` input (copy in,
  run, both outputs out);
* detect: ``group_selfie.jpg`` as a 1500x1000 uint8 array -> list of faces.
  ssdface runs ``Detector.detect`` with ``padded_pass=False`` (one pass, as the
  peers; the library default adds a second, padded pass); the other engines run the usual Python
  pipeline around their forward pass: Pillow ``resize((300, 300), BILINEAR)``,
  normalise, invoke, NumPy sigmoid + decode + NMS (``engines.postprocess``).

All of these run in this one process, warmed up, then round-robin in short blocks:
before each block a pause (``--settle-ms``: onnxruntime's thread pool keeps
spinning for tens of ms after a run and would steal a core from the next engine)
and one untimed run, then ``--block`` timed runs. Reported: median and 90th
percentile wall time, and "vs TFLite" = median / median of ai-edge-litert
(XNNPACK) at the same thread count (below 1: faster than TFLite).

Start-up is measured in fresh processes (``startup.py``): import, load, first
forward pass, and the growth of VmRSS; for ssdface both from a blob and from the
``.npy`` folder. Its load step alone, from a blob, is the "ready to run" time.

Engines that are not installed, or do not work here, get an "n/a" row with the
reason (tflite-runtime 2.14 needs numpy < 2; see README.md). Nothing is asserted
about times. Needs only what ``pip install -e ".[test]"`` installs.

    python benchmarks/compare.py                 # default: 100 timed runs per row
    python benchmarks/compare.py --quick         # a few runs (CI smoke test)
    python benchmarks/compare.py --markdown      # Markdown for RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engines
import numpy as np
from runinfo import cpu_flags, cpu_model, git_revision, loadavg, wait_for_quiet

import ssdface

HERE = Path(__file__).resolve().parent
BASELINE = engines.LITERT
PARITY_RTOL = 1e-4


@dataclass
class Row:
    """One timed configuration (or an n/a placeholder when ``fn`` is None)."""

    bench: str  # "forward" or "detect"
    engine: str
    threads: int | None
    fn: Callable[[], Any] | None = None
    reason: str = ""
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return float(np.median(self.times)) * 1e3

    @property
    def p90(self) -> float:
        return float(np.percentile(self.times, 90)) * 1e3


def _short(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------
# Building the configurations
# ---------------------------------------------------------------------------


def build_rows(args: argparse.Namespace, models: dict[str, Path], blob: Path,
               photo: np.ndarray, x: np.ndarray) -> tuple[list[Row], dict[str, str], list[str]]:
    """Every (bench, engine, threads) row; engine -> reason it is n/a; sanity notes."""
    rows: list[Row] = []
    unavailable: dict[str, str] = {}
    notes: list[str] = []
    anchors = ssdface.Detector(blob).anchors()
    expected: dict[int, tuple[Any, list]] = {}
    expected_int8: dict[int, tuple[Any, list]] = {}  # what the int8 peers should match
    for engine in engines.ENGINES:
        for threads in args.threads:
            if engine in unavailable:
                continue
            if engine == engines.SSDFACE:
                # ssdface must work: any error here is a real failure. The
                # peers' pipeline is one pass at score 0.5: time the same work
                # (the library's default adds a padded, mirrored second pass).
                det = ssdface.Detector(blob, num_threads=threads, padded_pass=False,
                                       score_threshold=0.5)
                forward: engines.Forward = det.forward
                detect: Callable[[np.ndarray], list] = det.detect
                expected[threads] = (det.forward(x), det.detect(photo))
            elif engine == engines.SSDFACE_INT8:
                try:
                    det = ssdface.Detector(blob, num_threads=threads, padded_pass=False,
                                           score_threshold=0.5, precision="int8")
                except ValueError as exc:  # a blob without the int8 section
                    unavailable[engine] = _short(exc)
                    continue
                forward, detect = det.forward, det.detect
                expected_int8[threads] = (forward(x), detect(photo))
                ref_out, ref_faces = expected[threads]
                errs = [np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b)
                        for a, b in zip(forward(x), ref_out)]
                notes.append(f"{engine} ({det.isa}, {threads} thr) vs float32: relative L2 "
                             f"{errs[0]:.2g} (boxes), {errs[1]:.2g} (logits)")
                if len(detect(photo)) != len(ref_faces):
                    notes.append(f"WARNING: {engine} finds {len(detect(photo))} faces, "
                                 f"float32 {len(ref_faces)}")
            else:
                try:
                    forward = engines.make_forward(engine, threads, models, blob)
                    forward(x)
                except engines.Unavailable as exc:
                    unavailable[engine] = str(exc)
                    continue
                except Exception as exc:  # an optional engine that fails to run here
                    unavailable[engine] = f"fails here ({_short(exc)})"
                    continue
                detect = engines.detect_pipeline(forward, anchors)
                int8 = engine in engines.INT8_PEERS
                ref = (expected_int8 if int8 else expected).get(threads)
                if ref is not None:
                    notes += peer_notes(engine, threads, forward(x), detect(photo), ref, int8)
            rows.append(Row("forward", engine, threads, lambda f=forward: f(x)))
            rows.append(Row("detect", engine, threads, lambda d=detect: d(photo)))
    for engine, reason in unavailable.items():
        for bench in ("forward", "detect"):
            rows.append(Row(bench, engine, None, reason=reason))
    rows.sort(key=lambda r: (r.bench != "forward", engines.ENGINES.index(r.engine),
                             r.threads or 0))
    return rows, unavailable, notes


def peer_notes(engine: str, threads: int, got: engines.Outputs, faces: list,
               ref: tuple[Any, list], int8: bool) -> list[str]:
    """A peer's outputs and faces against ssdface's (an int8 peer's against ssdface int8's:
    they differ by the roundings the int8 exports cannot avoid, tests/test_export_int8.py)."""
    ref_out, ref_faces = ref
    ours = "ssdface int8" if int8 else "ssdface"
    notes = []
    if int8:
        diffs = [float(np.abs(a - b).max()) for a, b in zip(got, ref_out)]
        notes.append(f"{engine} ({threads} thr) vs {ours}: max |diff| {diffs[0]:.2g} (boxes), "
                     f"{diffs[1]:.2g} (logits)")
    else:
        errs = [np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b)
                for a, b in zip(got, ref_out)]
        if max(errs) > PARITY_RTOL:
            notes.append(f"WARNING: {engine} forward differs from {ours}: relative L2 "
                         f"{errs[0]:.2g} (boxes), {errs[1]:.2g} (logits)")
    if len(faces) != len(ref_faces):
        notes.append(f"WARNING: {engine} pipeline finds {len(faces)} faces, {ours} "
                     f"{len(ref_faces)}")
    return notes


def time_rows(rows: list[Row], args: argparse.Namespace) -> None:
    """Warm up, then time every row round-robin in blocks (see the module docstring)."""
    live = [r for r in rows if r.fn is not None]
    for r in live:
        for _ in range(args.warmup):
            r.fn()
    block = max(1, args.block)
    for start in range(0, args.iters, block):
        n = min(block, args.iters - start)
        for r in live:
            time.sleep(args.settle_ms / 1e3)
            r.fn()
            for _ in range(n):
                t0 = time.perf_counter()
                r.fn()
                r.times.append(time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# Start-up in fresh processes
# ---------------------------------------------------------------------------


@dataclass
class Startup:
    engine: str
    source: str
    runs: list[dict[str, float]] = field(default_factory=list)
    reason: str = ""

    def ms(self, key: str) -> float:
        return float(np.median([r[key] for r in self.runs]))

    def mb(self, hi: str, lo: str) -> float:
        return float(np.median([(r[hi] - r[lo]) / 1024.0 for r in self.runs]))


def measure_startup(args: argparse.Namespace, models: dict[str, Path], blob: Path,
                    unavailable: dict[str, str]) -> list[Startup]:
    script = str(HERE / "startup.py")
    cases: list[tuple[Startup, list[str]]] = [
        (Startup(engines.SSDFACE, "blob"), [engines.SSDFACE, "--weights", str(blob)]),
        (Startup(engines.SSDFACE, ".npy folder"),
         [engines.SSDFACE, "--weights", str(args.weights)]),
    ]
    for engine in engines.PEERS:
        fmt = engines.MODEL_FORMAT[engine]
        st = Startup(engine, f".{fmt}", reason=unavailable.get(engine, ""))
        cases.append((st, [engine, "--model", str(models[fmt])]))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for _ in range(args.startup_repeats):
        for st, argv in cases:
            if st.reason:
                continue
            time.sleep(args.settle_ms / 1e3)
            proc = subprocess.run([sys.executable, script, *argv], capture_output=True,
                                  text=True, timeout=300, env=env)
            if proc.returncode != 0:
                lines = proc.stderr.strip().splitlines() or ["no output"]
                st.reason = f"start-up run failed ({lines[-1]})"
                if st.engine == engines.SSDFACE:
                    raise RuntimeError(f"startup.py {' '.join(argv)}: {proc.stderr.strip()}")
                continue
            st.runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return [st for st, _ in cases]


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _table(header: list[str], body: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]


def timing_table(rows: list[Row], markdown: bool) -> tuple[list[str], str]:
    base: dict[tuple[str, int], float] = {}
    baseline = BASELINE
    if not any(r.engine == BASELINE and r.times for r in rows):
        baseline = engines.TFLITE_RUNTIME  # without ai-edge-litert, compare with tflite-runtime
    for r in rows:
        if r.engine == baseline and r.times and r.threads is not None:
            base[(r.bench, r.threads)] = r.median
    body = []
    for r in rows:
        if not r.times:
            body.append([r.bench, r.engine, "-", "n/a", "n/a", "n/a"])
            continue
        ref = base.get((r.bench, r.threads or 0))
        ratio = f"{r.median / ref:.2f}" if ref else "n/a"
        body.append([r.bench, r.engine, str(r.threads), f"{r.median:.2f}", f"{r.p90:.2f}",
                     ratio])
    header = ["benchmark", "engine", "threads", "median ms", "p90 ms", "vs TFLite"]
    return _table(header, body, markdown), baseline


def startup_table(results: list[Startup], markdown: bool) -> list[str]:
    body = []
    for st in results:
        if not st.runs:
            body.append([st.engine, st.source] + ["n/a"] * 7)
            continue
        body.append([
            st.engine, st.source,
            f"{st.ms('import_ms'):.0f}", f"{st.ms('load_ms'):.1f}",
            f"{st.ms('first_run_ms'):.1f}", f"{st.ms('total_ms'):.0f}",
            f"{st.mb('rss_import', 'rss_start'):.1f}", f"{st.mb('rss_load', 'rss_import'):.1f}",
            f"{st.mb('rss_first', 'rss_import'):.1f}",
        ])
    header = ["engine", "from", "import ms", "load ms", "1st run ms", "first result ms",
              "RSS import MB", "RSS loaded MB", "RSS after 1st run MB"]
    return _table(header, body, markdown)


def report(args: argparse.Namespace, rows: list[Row], startup: list[Startup],
           unavailable: dict[str, str], notes: list[str], isa: str, load0: str) -> None:
    md = args.markdown
    flags = cpu_flags()
    now = datetime.datetime.now(datetime.timezone.utc)
    versions = ", ".join(
        f"{e} {engines.version(e)}" for e in engines.PEERS
    )
    rev = git_revision()
    facts = [
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; "
        f"avx2: {'yes' if 'avx2' in flags else 'no'}, "
        f"avx512f: {'yes' if 'avx512f' in flags else 'no'}",
        f"load average (1, 5, 15 min) at start: {load0}; at end: {loadavg()}",
        f"Python {platform.python_version()}, numpy {np.__version__}",
        f"ssdface {ssdface.__version__}, ISA {isa}" + (f", git {rev}" if rev else ""),
        f"engines: {versions}",
        f"forward/detect: {args.iters} timed runs per row after {args.warmup} warm-up, "
        f"round-robin in blocks of {args.block} with {args.settle_ms:g} ms settle pauses; "
        f"start-up: median of {args.startup_repeats} fresh process(es), 1 thread",
    ]
    for engine, reason in unavailable.items():
        facts.append(f"{engine}: n/a, {reason}")
    timing, baseline = timing_table(rows, md)
    if baseline != BASELINE:
        facts.append(f"vs TFLite: ratio to {baseline} (ai-edge-litert is not available)")
    st_lines = startup_table(startup, md)
    blob_row = next((s for s in startup if s.engine == engines.SSDFACE and s.source == "blob"
                     and s.runs), None)
    ready = ""
    if blob_row is not None:
        load_mb = blob_row.mb("rss_load", "rss_import")
        ready = (f"Ready to run: `Detector(blob)` alone (ssdface already imported) takes "
                 f"{blob_row.ms('load_ms'):.1f} ms and adds {load_mb:.1f} MB of RSS.")
    legend = ("Start-up, each in a fresh process (startup.py): import = numpy + the engine's "
              "package; load = detector / interpreter / session from the file; 1st run = the "
              "first forward pass; first result = the three together. RSS = growth of VmRSS "
              "during the import, then from after the import to after loading (loaded) and "
              "to after the first run.")
    ratio_note = (f"vs TFLite = median / {baseline} median at the same thread count "
                  "(below 1 is faster than TFLite).")

    out: list[str] = []
    if md:
        out.append(f"## {now:%Y-%m-%d %H:%M} UTC")
        out.append("")
        cmd = " ".join(["python benchmarks/compare.py", *sys.argv[1:]])
        out.append(f"`{cmd}`")
        out.append("")
        out += [f"- {f}" for f in facts]
        out.append("")
        out += timing
        out.append("")
        out.append(ratio_note)
        out.append("")
        out += st_lines
        out.append("")
        out.append(legend + (" " + ready if ready else ""))
        if notes:
            out.append("")
            out += [f"- {n}" for n in notes]
    else:
        out.append(f"# {now:%Y-%m-%d %H:%M} UTC")
        out += [f"# {f}" for f in facts]
        out.append("")
        out += timing
        out.append(f"# {ratio_note}")
        out.append("")
        out += st_lines
        out.append(f"# {legend}")
        if ready:
            out.append(f"# {ready}")
        out += notes
    print("\n".join(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--iters", type=int, default=100, help="timed runs per row (default 100)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs per row first")
    ap.add_argument("--block", type=int, default=5, help="timed runs per row in a row")
    ap.add_argument("--settle-ms", type=float, default=60.0, help="pause before each block")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts (default: 1 2)")
    ap.add_argument("--startup-repeats", type=int, default=5,
                    help="fresh processes per start-up row (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="a few runs only (smoke test): 10 timed runs, 2 warm-up, 1 start-up")
    ap.add_argument("--markdown", action="store_true", help="print Markdown for RESULTS.md")
    ap.add_argument("--wait-load", type=float, metavar="L",
                    help="first wait until the 1-minute load average is below L")
    ap.add_argument("--wait-max", type=float, default=600.0, metavar="S",
                    help="wait at most S seconds for --wait-load (default 600)")
    ap.add_argument("--weights", type=Path, default=engines.default_weights_dir(),
                    help="folder of the model's .npy files (default: shared/weights/...)")
    ap.add_argument("--photo", type=Path, default=engines.default_photo_path(),
                    help="image for the detect rows (default: shared/images/group_selfie.jpg)")
    args = ap.parse_args(argv)
    if args.quick:
        args.iters, args.warmup, args.startup_repeats = 10, 2, 1
    if min(args.threads) < 1 or args.iters < 1 or args.startup_repeats < 0:
        ap.error("--threads and --iters must be >= 1, --startup-repeats >= 0")
    if not args.weights.is_dir():
        ap.error(f"no weights folder at {args.weights} (set SSDFACE_SHARED or --weights)")

    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)
    load0 = loadavg()
    photo = engines.load_photo(args.photo)
    x = engines.preset_input()
    with tempfile.TemporaryDirectory(prefix="ssdface-compare-") as tmp:
        try:
            models = engines.export_models(args.weights, tmp)
        except ImportError as exc:
            ap.error(f"exporting the models needs {exc.name}: pip install -e '.[test]'")
        blob = ssdface.pack_weights(args.weights, Path(tmp) / "ssdface.blob")
        isa = ssdface.Detector(blob).isa
        rows, unavailable, notes = build_rows(args, models, blob, photo, x)
        time_rows(rows, args)
        startup = measure_startup(args, models, blob, unavailable)
    report(args, rows, startup, unavailable, notes, isa, load0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The report of ``benchmarks/accuracy.py``: its tables as aligned text or
Markdown (for RESULTS.md), remarks and warnings on the runs, and the report
as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from accuracy_metrics import BUCKET_LABELS, LARGE_FRACTION


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def _hits(h: int, n: int) -> str:
    return "-" if n == 0 else f"{_pct(h / n)} ({h}/{n})"


def _num(x: float, spec: str) -> str:
    return "n/a" if x is None or math.isnan(x) else format(x, spec)


def _table(header: list[str], body: list[list[str]], markdown: bool, left: int = 2) -> list[str]:
    """Rows of cells as Markdown or aligned text; the first ``left`` columns are text."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]


def _threshold(cfg: dict[str, Any]) -> str:
    t = cfg["settings"].get("score_threshold")
    return "?" if t is None else f"{t:g}"


def summary_table(report: dict[str, Any], markdown: bool) -> list[str]:
    low = report["protocol"]["low_threshold"]
    body = []
    for cfg in report["configs"]:
        for name, v in cfg["views"].items():
            d, lo = v["default"], v["low"]
            body.append([cfg["name"], name, str(v["scored_faces"]), _threshold(cfg),
                         _pct(d["recall"]), _pct(d["precision"]), _num(d["f1"], ".3f"),
                         f"{d['hits']}/{d['false_positives']}", _num(lo["ap"], ".3f"),
                         _pct(lo["recall"])])
    header = ["config", "view", "scored faces", "score >=", "recall", "precision", "F1",
              "hits/FP", f"AP (score >= {low:g})", f"recall (score >= {low:g})"]
    return _table(header, body, markdown)


def speed_table(report: dict[str, Any], markdown: bool) -> list[str]:
    body = []
    for cfg in report["configs"]:
        sp = cfg["speed"]
        path = sp.get("from_path")
        body.append([cfg["name"], cfg["description"],
                     _num(sp["detect"]["passes_per_image"], ".2f"),
                     _num(sp["detect"]["median_ms"], ".1f"),
                     _num(sp["detect"]["images_per_s"], ".1f"),
                     _num(path["images_per_s"], ".1f") if path else "-",
                     _num(sp["low"]["images_per_s"], ".1f")])
    header = ["config", "settings", "passes/image", "median ms/image", "images/s",
              "images/s from file", "images/s low run"]
    return _table(header, body, markdown)


def bucket_table(report: dict[str, Any], markdown: bool) -> list[str]:
    low = report["protocol"]["low_threshold"]
    body = []
    for cfg in report["configs"]:
        for name, v in cfg["views"].items():
            lg = v["large_faces"]
            for run, thr in (("", _threshold(cfg)), ("_low", f"{low:g}")):
                body.append([cfg["name"], name, f">= {thr}"]
                            + [_hits(b["hits" + run], b["faces"]) for b in v["buckets"]]
                            + [_hits(lg["hits" + run], lg["faces"])])
    header = ["config", "view", "score"] + [f"{b} px" for b in BUCKET_LABELS] + [
        f"> {100 * LARGE_FRACTION:.0f}% of a side"]
    return _table(header, body, markdown, left=3)


def sweep_table(cfg: dict[str, Any], markdown: bool) -> list[str]:
    views = list(cfg["views"].items())
    best = {name: (v["best_f1"] or {}).get("threshold") for name, v in views}
    body = []
    for i, t in enumerate(row["threshold"] for row in views[0][1]["sweep"]):
        cells = []
        marks = []
        for name, v in views:
            row = v["sweep"][i]
            f1 = _num(row["f1"], ".3f")
            if t == best[name]:
                marks.append(name)
                f1 = f"**{f1}**" if markdown else f1 + " *"
            cells += [_pct(row["precision"]), _pct(row["recall"]), f1]
        body.append([f"{t:.2f}", ("best F1: " + ", ".join(marks)) if marks else ""] + cells)
    header = ["score >=", "note"]
    for name, _ in views:
        header += [f"P {name}", f"R {name}", f"F1 {name}"]
    return _table(header, body, markdown)


def notes(report: dict[str, Any], sweep: bool = False) -> list[str]:
    """Remarks and warnings on the runs (with ``sweep``, on the threshold sweep too)."""
    out = []
    for cfg in report["configs"]:
        low = cfg["low_run"]
        n = max(report["eval_set"]["images"], 1)
        rep = [f"{v['low']['repeated_boxes']['hits']} in {name}"
               for name, v in cfg["views"].items() if "repeated_boxes" in v["low"]]
        top = low["repeated_max_score"]
        out.append(
            f"{cfg['name']}: the low-threshold run returns {low['detections']} boxes "
            f"({low['detections_per_image']:.1f} per image); {low['repeated_boxes']} of them "
            f"({low['repeated_boxes'] / n:.1f} per image, {low['repeated_distinct']} distinct, "
            f"top score {_num(top, '.3f')}) recur in at least half of the images with the same "
            "score and relative box: input-independent outputs (the stand-in weight tensor); "
            "faces they hit: " + ", ".join(rep))
        if low["images_at_max_faces"]:
            out.append(f"{cfg['name']}: WARNING {low['images_at_max_faces']} image(s) of the "
                       f"low-threshold run reached max_faces={low['max_faces']}: its AP and "
                       "recall are cut short")
        for name, v in cfg["views"].items():
            if v["low_run_consistent"] is False:
                out.append(f"{cfg['name']}/{name}: WARNING the low-threshold run cut at score >= "
                           f"{_threshold(cfg)} differs from the run at that threshold "
                           "(max_faces reached?): the threshold sweep is approximate")
            rows, best = v["sweep"], v["best_f1"]
            if sweep and best and best["threshold"] == rows[0]["threshold"]:
                out.append(f"{cfg['name']}/{name}: the best F1 of the sweep is at its lowest "
                           f"threshold, {rows[0]['threshold']:.2f}: F1 may rise further as the "
                           "threshold falls (below the range the stand-in boxes enter)")
        if cfg["speed"].get("path_matches_array") is False:
            out.append(f"{cfg['name']}: WARNING detect(path) and detect(Pillow RGB array) "
                       "disagree on some image (decoding differs)")
    return out


def format_report(report: dict[str, Any], *, markdown: bool = False, sweep: bool = False,
                  meta: Sequence[str] = (), heading: str = "") -> str:
    """The report as text (``markdown=False``) or Markdown tables for RESULTS.md."""
    es = report["eval_set"]
    views = es["views"]
    facts = list(meta)
    facts.append(f"{es['images']} images; views: " + "; ".join(
        f"`{name}` = {v['title']} ({v['scored_faces']} scored faces)" if markdown else
        f"{name} = {v['title']} ({v['scored_faces']} scored faces)" for name, v in views.items()))
    p = report["protocol"]
    facts.append(f"matching at IoU >= {p['match_iou']:g}, greedily by score; low-threshold run: "
                 f"score >= {p['low_threshold']:g}, max_faces {p['low_max_faces']}, same NMS; "
                 "AP: VOC all-point over the low-threshold run, pooled")
    facts.append("speed: wall time of the detect calls on decoded RGB arrays (images/s); "
                 "'from file': detect(path), Pillow decoding included; 1 detector thread "
                 "unless the config says otherwise")
    out: list[str] = []
    prefix = "- " if markdown else "# "
    if heading:
        out += ["### " + heading, ""] if markdown else ["# " + heading]
    out += [prefix + f for f in facts]
    sections = [("Recall, precision and AP", summary_table(report, markdown)),
                ("Speed", speed_table(report, markdown)),
                ("Recall by long side of the face (hits/faces)", bucket_table(report, markdown))]
    if sweep:
        for cfg in report["configs"]:
            best = "; ".join(
                f"{name}: score >= {b['threshold']:.2f} (F1 {b['f1']:.3f}, precision "
                f"{_pct(b['precision'])}, recall {_pct(b['recall'])})"
                for name, v in cfg["views"].items() if (b := v["best_f1"]))
            sections.append((f"Threshold sweep, config {cfg['name']} (from its low-threshold "
                             f"run); best F1 at {best}", sweep_table(cfg, markdown)))
    for title, lines in sections:
        out.append("")
        out.append(f"{title}:" if markdown else f"## {title}")
        if markdown:
            out.append("")
        out += lines
    extra = notes(report, sweep)
    if extra:
        out.append("")
        out += [prefix + n for n in extra]
    return "\n".join(out)


def to_json(obj: Any) -> Any:
    """The report with NaN as None and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj

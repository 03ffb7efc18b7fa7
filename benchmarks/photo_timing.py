"""What ``photo_to_faces.py`` measures in its own process: the interleaved
timing rounds of the cases, and whether ``detect(path)`` and
``detect(array)`` find the same faces.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from photo_cases import DECODE

MATCH_IOU = 0.9


# --- timing -------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def time_rounds(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call: one untimed run each, then ``rounds`` round-robin
    rounds, each starting one case later than the one before."""
    names = list(calls)
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            fn = calls[name]
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


@dataclass
class TimingRow:
    case: str
    passes: int | None
    median_ms: float
    p10_ms: float
    p90_ms: float
    ratio_of_medians: float
    median_round_ratio: float


def timing_rows(times: dict[str, list[float]], passes: dict[str, int | None]) -> list[TimingRow]:
    base = times[DECODE]
    base_med = statistics.median(base)
    rows = []
    for case, ts in times.items():
        rows.append(TimingRow(
            case=case, passes=passes.get(case),
            median_ms=statistics.median(ts) * 1e3,
            p10_ms=percentile(ts, 10) * 1e3, p90_ms=percentile(ts, 90) * 1e3,
            ratio_of_medians=statistics.median(ts) / base_med,
            median_round_ratio=statistics.median(t / b for t, b in zip(ts, base)),
        ))
    return rows


# --- faces agreement ------------------------------------------------------------

def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_faces(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by decreasing IoU: (index in a, index in b, IoU)."""
    pairs = sorted(((iou(fa.box, fb.box), i, j) for i, fa in enumerate(a)
                    for j, fb in enumerate(b)), reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for v, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j, v))
    return out


@dataclass
class Agreement:
    n_path: int
    n_array: int
    min_iou: float
    max_score_diff: float
    ok: bool


def agreement(from_path: Sequence[Any], from_array: Sequence[Any]) -> Agreement:
    matches = match_faces(from_path, from_array)
    ious = [v for _, _, v in matches]
    diffs = [abs(from_path[i].score - from_array[j].score) for i, j, _ in matches]
    same = len(from_path) == len(from_array)
    ok = same and len(matches) == len(from_path) and all(v >= MATCH_IOU for v in ious)
    return Agreement(len(from_path), len(from_array), min(ious) if ious else float("nan"),
                     max(diffs) if diffs else float("nan"), ok)


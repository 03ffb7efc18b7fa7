"""The report of ``photo_to_faces.py``: the timing table, the faces'
agreement and the memory table, as plain text or Markdown, against issue 9's
targets.
"""

from __future__ import annotations

import platform

from photo_cases import ARRAY, PATH
from photo_memory import MemRow
from photo_timing import Agreement, TimingRow

TARGET_RATIO = 0.35  # detect(path) / full decode, issue 9
TARGET_MIB = 32.0  # peak RSS growth of one detect(path), issue 9


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def table(header: list[str], body: list[list[str]], markdown: bool, left: int = 1) -> list[str]:
    """A Markdown table (first ``left`` columns left-aligned) or aligned plain text."""
    if markdown:
        align = ["---" if i < left else "---:" for i in range(len(header))]
        return ["| " + " | ".join(r) + " |" for r in [header, align, *body]]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return [fmt(header), *(fmt(r) for r in body)]


def code(text: str, markdown: bool) -> str:
    return f"`{text}`" if markdown else text


def report(meta: list[str], timing: list[TimingRow], agree: Agreement, mem: list[MemRow],
           heading: str, markdown: bool, rounds: int, mem_repeats: int) -> str:
    out = [f"### {heading}" if markdown else heading, ""]
    out += [f"- {m}" for m in meta] + [""]
    body = [[code(r.case, markdown), "-" if r.passes is None else str(r.passes),
             f"{r.median_ms:.1f}", f"{r.p10_ms:.1f}-{r.p90_ms:.1f}",
             f"{r.ratio_of_medians:.3f}", f"{r.median_round_ratio:.3f}"] for r in timing]
    out += table(["case", "passes", "median ms", "p10-p90 ms", "x decode (medians)",
                  "x decode (median per round)"], body, markdown)
    path_row = next(r for r in timing if r.case == PATH)
    verdict = "met" if path_row.ratio_of_medians <= TARGET_RATIO else "NOT met"
    out += ["", f"{rounds} interleaved rounds after one untimed run of each case. "
            f"x decode = time / full Pillow decode time. Target {code(PATH, markdown)} <= "
            f"{TARGET_RATIO}x decode: {verdict} ({path_row.ratio_of_medians:.3f}x by medians, "
            f"{path_row.median_round_ratio:.3f}x per round).", ""]
    out += [f"Faces, {code(PATH, markdown)} vs {code(ARRAY, markdown)}: "
            f"{agree.n_path} vs {agree.n_array} faces, lowest IoU of matched pairs "
            f"{agree.min_iou:.3f}, largest score difference {agree.max_score_diff:.4f}: "
            + ("agree (same count, every face matched at IoU >= 0.9)." if agree.ok
               else "DISAGREE (count differs or a face has no match at IoU >= 0.9)."), ""]
    if not mem:
        return "\n".join(out[:-1])
    body = [[code(r.case, markdown), f"{r.baseline_mib:.1f}", f"{r.median_mib:.1f}",
             f"{r.max_mib:.1f}"] for r in mem]
    out += table(["case", "peak RSS before MiB", "growth MiB (median)", "growth MiB (max)"],
                 body, markdown)
    path_mem = next(r for r in mem if r.case == PATH)
    verdict = "met" if path_mem.max_mib <= TARGET_MIB else "NOT met"
    out += ["", f"Growth of ru_maxrss over one call on the 4000x3000 photo, in a fresh process "
            f"per case ({mem_repeats} each), after building the detector and one warm-up call "
            f"of the same kind on a 640x480 copy; before = the peak after the warm-up (for "
            f"{code(ARRAY, markdown)} it includes the 34.3 MiB array, loaded first). Target "
            f"{code(PATH, markdown)} <= {TARGET_MIB:g} MiB: {verdict} "
            f"({path_mem.median_mib:.1f} MiB median, {path_mem.max_mib:.1f} max)."]
    return "\n".join(out)


"""What every benchmark script records about the run it makes: the git
revision, the CPU and the machine's load, and a wait for a quiet machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name (lscpu), else what :mod:`platform` knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty if unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages, as /proc/loadavg gives them."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def git_revision() -> str:
    """Short HEAD of the checkout, marked when tracked files have changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        return rev.stdout.strip() + (" + uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def wait_for_quiet(limit: float, max_seconds: float) -> None:
    """Sleep until the 1-minute load average is below ``limit`` (at most ``max_seconds``)."""
    start = time.monotonic()
    while True:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return
        if load < limit:
            return
        if time.monotonic() - start >= max_seconds:
            print(f"# load average still {load:.2f} after {max_seconds:g} s; measuring anyway",
                  file=sys.stderr)
            return
        time.sleep(5.0)

"""What the command line tests (``test_cli_*.py``) share: running
``python -m ssdface`` in a subprocess as users run it, and reading its output.
The packed weights they run with are conftest.py's ``blob`` fixture."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ssdface

# The package under test, whatever folder a subprocess runs in.
PACKAGE_ROOT = Path(ssdface.__file__).resolve().parents[1]
SUMMARY = re.compile(r"^ssdface: (\d+) images?, (\d+) faces?, (\d+) errors? in [\d.]+ s "
                     r"\([\d.]+ images/s\)$")


def run(args, *, cwd, blob, stdin=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m ssdface ARGS`` in ``cwd`` with ``$SSDFACE_WEIGHTS=blob``, this
    checkout's package first on the path."""
    full_env = dict(os.environ, SSDFACE_WEIGHTS=str(blob), **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "ssdface", *map(str, args)], cwd=cwd,
                          input=stdin, capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def jsonl(proc: subprocess.CompletedProcess) -> list[dict]:
    """The records of a ``--format jsonl`` run."""
    return [json.loads(line) for line in proc.stdout.splitlines()]

"""Which kernel variant (instruction set) the engine runs.

The extension contains every variant its architecture supports and picks the
best one the CPU can run. ``$SSDFACE_ISA`` (``scalar``, ``avx2``, ``avx512``,
or ``reference`` for the slow, plain reference kernels) forces a choice for
every new detector; ``Detector(isa=...)`` forces it for one.
"""

from __future__ import annotations

import os
import sys

from . import _core

ENV_VAR = "SSDFACE_ISA"


def available_isas() -> list[str]:
    """Kernel variants this CPU can run, slowest first (``reference`` first)."""
    return _core.kernel_sets()


def compiled_isas() -> list[str]:
    """Kernel variants this build contains, whether or not this CPU runs them."""
    return _core.kernel_sets(False)


def best_isa() -> str:
    """The fastest variant this CPU runs."""
    return _core.best_kernel_set()


def default_isa() -> str:
    """What a new detector uses: ``$SSDFACE_ISA`` if set, else :func:`best_isa`."""
    return resolve_isa(None)


def resolve_isa(isa: str | None) -> str:
    """Validate a requested variant (``None``: the environment, else the best)."""
    if isa is None:
        isa = os.environ.get(ENV_VAR) or best_isa()
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a kernel variant name (str), got {type(isa).__name__}; "
                        f"expected one of {compiled_isas()}")
    isa = isa.strip().lower()
    if isa not in available_isas():
        if isa in compiled_isas():
            raise ValueError(f"ISA {isa!r} needs instructions this CPU lacks; "
                             f"available here: {available_isas()}")
        raise ValueError(f"unknown ISA {isa!r}; expected one of {compiled_isas()}")
    return isa


# CPU features that matter to the kernels, present or coming: AVX2 and FMA
# (the avx2 variant), AVX-512 F/BW/VL (the avx512 variant), and the int8 dot
# product and matrix extensions (VNNI, AMX). Keys are Linux /proc/cpuinfo flag
# names; "amx" stands for any of amx_tile/amx_bf16/amx_int8.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                "amx")


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> dict[str, bool] | None:
    """Which of :data:`CPU_FEATURES` the CPU reports, from the flags of
    ``/proc/cpuinfo`` (Linux); None where that cannot be read (another OS,
    a sandbox, a CPU without such flags). These are what the kernel reports;
    which variants actually run here is :func:`available_isas`."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags: set[str] = set()
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
                    break  # every core lists the same flags
    except OSError:
        return None
    if not flags:
        return None
    present = {name: name in flags for name in CPU_FEATURES}
    present["amx"] = any(f.startswith("amx_") for f in flags)
    return present

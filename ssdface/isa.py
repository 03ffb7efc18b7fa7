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


#: What a detector computes in: "f32" (float32, the default) or "int8"
#: (uint8 activations and int8 weights: the quantized kernels, "qu8" in C).
PRECISIONS = ("f32", "int8")
_KERNEL_DTYPE = {"f32": "f32", "int8": "qu8"}


def check_precision(precision: str) -> str:
    """Validate a precision name."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def available_isas(precision: str = "f32") -> list[str]:
    """Kernel variants with kernels of ``precision`` this CPU can run,
    slowest first (``reference`` first)."""
    return _core.kernel_sets(True, _KERNEL_DTYPE[check_precision(precision)])


def compiled_isas(precision: str = "f32") -> list[str]:
    """Kernel variants with kernels of ``precision`` this build contains,
    whether or not this CPU runs them."""
    return _core.kernel_sets(False, _KERNEL_DTYPE[check_precision(precision)])


def best_isa(precision: str = "f32") -> str:
    """The fastest variant for ``precision`` this CPU runs."""
    return available_isas(precision)[-1]


def default_isa(precision: str = "f32") -> str:
    """What a new detector of ``precision`` uses: ``$SSDFACE_ISA`` if set
    (and it has kernels of that precision), else :func:`best_isa`."""
    return resolve_isa(None, precision)


def resolve_isa(isa: str | None, precision: str = "f32") -> str:
    """Validate a requested variant (``None``: the environment, else the
    best). An explicit ``isa`` must have kernels of ``precision``; the
    environment's applies where it has them (``$SSDFACE_ISA=avx512`` names
    float32 kernels: an int8 detector then runs the best int8 ones, which
    give the same bytes)."""
    check_precision(precision)
    if isa is None:
        isa = os.environ.get(ENV_VAR) or best_isa(precision)
        if isinstance(isa, str) and isa.strip().lower() in compiled_isas("f32") + compiled_isas(
                "int8") and isa.strip().lower() not in compiled_isas(precision):
            isa = best_isa(precision)
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a kernel variant name (str), got {type(isa).__name__}; "
                        f"expected one of {compiled_isas(precision)}")
    isa = isa.strip().lower()
    if isa not in available_isas(precision):
        if isa in compiled_isas(precision):
            raise ValueError(f"ISA {isa!r} needs instructions this CPU lacks; "
                             f"available here: {available_isas(precision)}")
        raise ValueError(f"unknown ISA {isa!r} for {precision}; expected one of "
                         f"{compiled_isas(precision)}")
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

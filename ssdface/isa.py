"""Which kernel variant (instruction set) the engine runs.

The extension contains every variant its architecture supports and picks the
best one the CPU can run. ``$SSDFACE_ISA`` (``scalar``, ``avx2``, ``avx512``,
or ``reference`` for the slow, plain reference kernels) forces a choice for
every new detector; ``Detector(isa=...)`` forces it for one.
"""

from __future__ import annotations

import os

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

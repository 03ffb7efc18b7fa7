"""The configurations ``benchmarks/accuracy.py`` evaluates: a name,
``Detector`` keyword arguments and ``detect`` keyword arguments, parsed from
``--config NAME[:key=value,detect.key=value,...]``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Config:
    """A name, ``Detector`` keyword arguments and ``detect`` keyword arguments."""

    name: str
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    detect_kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{k}={v!r}" for k, v in self.detector_kwargs.items()]
        parts += [f"detect.{k}={v!r}" for k, v in self.detect_kwargs.items()]
        return ", ".join(parts) if parts else "library defaults"


DEFAULT_CONFIG = Config("defaults")


class ConfigError(ValueError):
    """A configuration the detector does not accept."""

_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_KEY = re.compile(r"(detect\.)?[A-Za-z_]\w*")
# Split "a=1,b=(2, 3),c='x'" at the commas that start a new "key=".
_ITEM_SPLIT = re.compile(r",(?=\s*(?:detect\.)?[A-Za-z_]\w*\s*=)")


def parse_value(text: str) -> Any:
    """A Python literal, or the text itself when it is not one (``avx2``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_config(text: str) -> Config:
    """``NAME`` or ``NAME:key=value,detect.key=value,...`` (see the module docstring)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValueError(f"config {text!r}: the name must be letters, digits or _.+- "
                         "before the ':'")
    detector_kwargs: dict[str, Any] = {}
    detect_kwargs: dict[str, Any] = {}
    if rest.strip():
        for item in _ITEM_SPLIT.split(rest):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not _KEY.fullmatch(key) or not value.strip():
                raise ValueError(f"config {text!r}: expected key=value, got {item!r}")
            target = detector_kwargs
            if key.startswith("detect."):
                key, target = key[len("detect."):], detect_kwargs
            if key in target:
                raise ValueError(f"config {text!r}: {key} given twice")
            target[key] = parse_value(value.strip())
    return Config(name, detector_kwargs, detect_kwargs)

"""The eval set of ``benchmarks/accuracy.py``: the annotated photos of
``shared/eval/faces`` (``annotations.json``), their decoding, and the views
(which faces are scored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from accuracy_metrics import BUCKET_LABELS, as_boxes, large_faces, size_buckets, view_ignore


@dataclass(frozen=True)
class EvalImage:
    """One annotated photo: its file, size and faces (``boxes`` in stored pixels)."""

    key: str  # e.g. "wider/0_Parade_Parade_0_102.jpg", the path under images/
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # [G, 4] float64
    ignore: np.ndarray  # [G] bool


def default_eval_dir() -> Path:
    """``$SSDFACE_SHARED/eval/faces`` or ``<repo>/../shared/eval/faces``."""
    env = os.environ.get("SSDFACE_SHARED")
    shared = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return shared / "eval" / "faces"


def default_weights() -> Path | None:
    """The shared weights folder beside the eval set, or None (the library's own lookup)."""
    path = default_eval_dir().parents[1] / "weights" / "ssd_mobilenetv2_face_nhwc"
    return path if path.is_dir() else None


def load_eval_set(eval_dir: str | os.PathLike[str], keys: Iterable[str] | None = None
                  ) -> list[EvalImage]:
    """The images of ``eval_dir/annotations.json``, sorted by key.

    ``keys`` selects some: each is a key (``wider/NAME.jpg``) or a file name.
    """
    eval_dir = Path(eval_dir)
    with open(eval_dir / "annotations.json", encoding="utf-8") as f:
        annotations = json.load(f)
    selected = sorted(annotations)
    if keys is not None:
        by_name = {Path(k).name: k for k in annotations}
        wanted = []
        for k in keys:
            if k not in annotations and k not in by_name:
                raise KeyError(f"no image {k!r} in {eval_dir / 'annotations.json'}")
            wanted.append(k if k in annotations else by_name[k])
        selected = sorted(set(wanted))
    images = []
    for key in selected:
        entry = annotations[key]
        boxes = as_boxes(entry["boxes"])
        ignore = np.asarray(entry["ignore"], dtype=bool).reshape(-1)
        if len(ignore) != len(boxes):
            raise ValueError(f"{key}: {len(boxes)} boxes but {len(ignore)} ignore flags")
        images.append(EvalImage(key, eval_dir / "images" / key, int(entry["width"]),
                                int(entry["height"]), boxes, ignore))
    return images


def decode(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an ``HxWx3`` uint8 RGB array (Pillow)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


@dataclass(frozen=True)
class View:
    """Which faces are scored: the annotation's, minus those under ``min_long_side`` px."""

    name: str
    title: str
    min_long_side: float = 0.0


VIEWS = (
    View("all", "all scored faces"),
    View("ge32", "secondary: scored faces under 32 px ignored", 32.0),
)


def face_summary(images: Sequence[EvalImage], view: View) -> dict[str, Any]:
    """How many faces a view scores: in all, per size bucket, spanning > 40% of a side."""
    n_scored = n_ignored = n_large = 0
    per_bucket = np.zeros(len(BUCKET_LABELS), dtype=np.int64)
    for im in images:
        scored = ~view_ignore(im.boxes, im.ignore, view.min_long_side)
        n_scored += int(scored.sum())
        n_ignored += int((~scored).sum())
        per_bucket += np.bincount(size_buckets(im.boxes)[scored], minlength=len(BUCKET_LABELS))
        n_large += int((large_faces(im.boxes, im.width, im.height) & scored).sum())
    return {"scored_faces": n_scored, "ignored_faces": n_ignored,
            "buckets": dict(zip(BUCKET_LABELS, per_bucket.tolist())), "large_faces": n_large}

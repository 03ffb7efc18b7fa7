"""``benchmarks/accuracy.py`` on real photos: the eval set's counts, and the
command line on 3 eval images (read from the shared folder, never copied)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_accuracy_metrics import acc

import ssdface

# A crowd with ignored faces, a photo with a face over 40% of its height, and
# one with small and mid-sized faces.
SMOKE_IMAGES = (
    "2_Demonstration_Political_Rally_2_365.jpg",
    "3_Riot_Riot_3_604.jpg",
    "0_Parade_Parade_0_102.jpg",
)


@pytest.fixture(scope="module")
def eval_dir(shared_dir: Path) -> Path:
    path = shared_dir / "eval" / "faces"
    if not (path / "annotations.json").is_file():
        pytest.fail(f"no eval set at {path}", pytrace=False)
    return path


def test_eval_set_counts_match_its_readme(eval_dir):
    """The bucketing reproduces the counts table of shared/eval/faces/README.md."""
    images = acc.load_eval_set(eval_dir)
    assert len(images) == 101
    s = acc.face_summary(images, acc.VIEWS[0])
    assert (s["scored_faces"], s["ignored_faces"]) == (1887, 649)
    assert list(s["buckets"].values()) == [1501, 265, 86, 15, 20]
    assert s["large_faces"] == 9
    assert acc.face_summary(images, acc.VIEWS[1])["scored_faces"] == 121


def _expected_counts(images, min_long_side):
    """Scored faces per bucket and over 40% of a side, counted independently of acc."""
    per_bucket = [0] * 5
    large = 0
    for im in images:
        for (x0, y0, x1, y1), ignored in zip(im.boxes.tolist(), im.ignore.tolist()):
            side = max(x1 - x0, y1 - y0)
            if ignored or side < min_long_side:
                continue
            per_bucket[sum(side >= e for e in (16, 32, 64)) + (side > 96)] += 1
            large += (x1 - x0) > 0.4 * im.width or (y1 - y0) > 0.4 * im.height
    return per_bucket, large


def _unit(x):
    return x is not None and 0.0 <= x <= 1.0


def test_command_line_on_three_eval_images(eval_dir, weights_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    only = [a for name in SMOKE_IMAGES for a in ("--only", name)]
    rc = acc.main(["--eval-dir", str(eval_dir), "--weights", str(weights_dir), *only,
                   "--json", str(out), "--sweep-thresholds", "--markdown"])
    assert rc == 0
    md = capsys.readouterr().out
    assert "| config | view |" in md and "secondary: scored faces under 32 px ignored" in md
    assert "Threshold sweep, config defaults" in md

    report = json.loads(out.read_text())
    images = acc.load_eval_set(eval_dir, SMOKE_IMAGES)
    assert report["eval_set"]["images"] == 3
    assert [c["name"] for c in report["configs"]] == ["defaults"]
    cfg = report["configs"][0]
    assert cfg["settings"]["score_threshold"] == ssdface.detector.DEFAULT_SCORE_THRESHOLD
    assert cfg["settings"]["iou_threshold"] == 0.6
    assert cfg["speed"]["detect"]["passes_per_image"] == 2  # whole + padded view
    assert cfg["speed"]["path_matches_array"] is True
    for run in ("detect", "from_path", "low"):
        assert cfg["speed"][run]["images_per_s"] > 0
    assert cfg["low_run"]["images_at_max_faces"] == 0

    assert set(cfg["views"]) == {"all", "ge32"}
    for view, min_side in (("all", 0), ("ge32", 32)):
        v = cfg["views"][view]
        per_bucket, large = _expected_counts(images, min_side)
        assert [b["faces"] for b in v["buckets"]] == per_bucket
        assert v["scored_faces"] == sum(per_bucket)
        assert report["eval_set"]["views"][view]["scored_faces"] == sum(per_bucket)
        assert v["large_faces"]["faces"] == large >= 1
        d, lo = v["default"], v["low"]
        assert _unit(d["recall"]) and _unit(lo["recall"]) and _unit(lo["ap"])
        assert d["precision"] is None or _unit(d["precision"])
        assert lo["recall"] >= d["recall"]  # the low-threshold run keeps every default box
        assert lo["hits"] >= d["hits"] and lo["detections"] >= d["detections"]
        assert d["hits"] == sum(b["hits"] for b in v["buckets"])
        for b in v["buckets"]:
            assert b["hits"] <= b["hits_low"] <= b["faces"]
            assert (b["recall"] is None) == (b["faces"] == 0)
        assert v["low_run_consistent"] is True
        assert len(v["sweep"]) == 69 and v["sweep"][0]["threshold"] == 0.27
        recalls = [r["recall"] for r in v["sweep"]]
        assert recalls == sorted(recalls, reverse=True)
        assert v["best_f1"]["threshold"] in [r["threshold"] for r in v["sweep"]]
    # the default detector finds the big faces of these photos
    assert cfg["views"]["ge32"]["default"]["hits"] >= 1


def test_command_line_refuses_unknown_detector_option(eval_dir, weights_dir, capsys):
    rc = acc.main(["--eval-dir", str(eval_dir), "--weights", str(weights_dir),
                   "--only", SMOKE_IMAGES[1], "--config", "x:no_such_option=1"])
    assert rc == 2
    assert "config 'x'" in capsys.readouterr().err


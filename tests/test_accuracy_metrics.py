"""``benchmarks/accuracy.py``: matching, AP, size buckets, sweep and configs on
small cases built by hand, and its runner on synthetic images with a fake detector.

The runner on the real eval photos is in ``test_accuracy_smoke.py``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest


def _load_accuracy():
    """``benchmarks/accuracy.py`` as a module (benchmarks/ is not a package)."""
    name = "ssdface_bench_accuracy"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


acc = _load_accuracy()
HIT, FP, NC = acc.HIT, acc.FALSE_POSITIVE, acc.NOT_COUNTED


# ---------------------------------------------------------------------------
# IoU, buckets, views
# ---------------------------------------------------------------------------


def test_box_iou_known_values():
    a = [[0, 0, 2, 2]]
    b = [[0, 0, 2, 2], [1, 0, 3, 2], [2, 2, 4, 4], [0, 0, 2, 1], [5, 5, 5, 5]]
    iou = acc.box_iou(a, b)
    assert iou.shape == (1, 5)
    # identical; half overlap (2 / 6); touching corners; contained half; empty box
    np.testing.assert_allclose(iou[0], [1.0, 1 / 3, 0.0, 0.5, 0.0])
    assert acc.box_iou(np.zeros((0, 4)), b).shape == (0, 5)
    assert acc.box_iou(a, []).shape == (1, 0)


def test_size_bucket_edges():
    # long sides: just under and exactly at each edge; 96 belongs to 64-96
    sides = [15.99, 16, 31.99, 32, 63.99, 64, 96, 96.01, 0.5, 500]
    boxes = [[10, 20, 10 + s, 21] for s in sides]
    assert acc.size_buckets(boxes).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 0, 4]
    assert acc.BUCKET_LABELS[1] == "16-32"
    # the long side is the larger of width and height
    assert acc.size_buckets([[0, 0, 10, 40], [0, 0, 40, 10]]).tolist() == [2, 2]
    # a long side that should be 16 but is 16 - 1e-12 after subtracting floats
    assert acc.size_buckets([[0.1, 0, 0.1 + 16 - 1e-12, 3]]).tolist() == [1]


def test_large_faces_and_view_ignore():
    boxes = [[0, 0, 41, 10], [0, 0, 40, 10], [0, 0, 10, 21], [0, 0, 31, 19], [0, 0, 32, 5]]
    # image 100 x 50: wider than 40 px or taller than 20 px
    assert acc.large_faces(boxes, 100, 50).tolist() == [True, False, True, False, False]
    ignore = [False, True, False, False, False]
    assert acc.view_ignore(boxes, ignore).tolist() == ignore
    assert acc.view_ignore(boxes, ignore, 32).tolist() == [False, True, True, True, False]


# ---------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------


def test_perfect_detector_recall_1_ap_1():
    gt = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
    m = acc.match_image(gt, [0.9, 0.8, 0.7], gt, [False] * 3)
    assert m.outcome.tolist() == [HIT] * 3
    np.testing.assert_array_equal(m.face_score, [0.9, 0.8, 0.7])
    c = acc.counts(m.outcome, 3)
    assert (c["recall"], c["precision"], c["f1"]) == (1.0, 1.0, 1.0)
    assert acc.average_precision(m.scores, m.outcome, 3) == 1.0


def test_detection_on_ignored_face_counts_neither_way():
    gt = [[0, 0, 10, 10], [20, 0, 30, 10]]
    ignore = [False, True]
    # on the scored face, on the ignored face (twice: an ignored face absorbs any number)
    dets = [[0, 0, 10, 10], [20, 0, 30, 10], [20.5, 0, 30, 10]]
    m = acc.match_image(dets, [0.9, 0.95, 0.5], gt, ignore)
    assert m.outcome.tolist() == [HIT, NC, NC]
    assert m.face_score[0] == 0.9 and math.isnan(m.face_score[1])
    c = acc.counts(m.outcome, 1)  # the ignored face is not in the denominator
    assert (c["hits"], c["false_positives"], c["not_counted"]) == (1, 0, 2)
    assert (c["recall"], c["precision"]) == (1.0, 1.0)
    # the not-counted boxes leave the precision-recall curve untouched
    assert acc.average_precision(m.scores, m.outcome, 1) == 1.0


def test_scored_face_wins_over_ignored_face():
    # the box overlaps both a scored and an ignored face at IoU >= 0.5: a hit
    gt = [[0, 0, 10, 10], [0, 0, 10, 9]]
    m = acc.match_image([[0, 0, 10, 10]], [0.8], gt, [True, False])
    assert m.outcome.tolist() == [HIT] and m.face_score[1] == 0.8


def test_iou_threshold_is_inclusive():
    gt = [[0, 0, 2, 1]]
    m = acc.match_image([[0, 0, 1, 1]], [0.5], gt, [False])  # IoU exactly 0.5
    assert m.outcome.tolist() == [HIT]
    m = acc.match_image([[0, 0, 0.99, 1]], [0.5], gt, [False])
    assert m.outcome.tolist() == [FP]


def test_greedy_by_score_order_matters():
    face = [[0, 0, 10, 10]]
    good = [0, 0, 10, 10]  # IoU 1
    rough = [0, 0, 10, 16]  # IoU 100 / 160 = 0.625
    # the better-scored box takes the face even though the other overlaps it more;
    # the other is then a duplicate: a false positive
    m = acc.match_image([good, rough], [0.6, 0.9], face, [False])
    assert m.outcome.tolist() == [FP, HIT] and m.face_score[0] == 0.9
    m = acc.match_image([good, rough], [0.9, 0.6], face, [False])
    assert m.outcome.tolist() == [HIT, FP] and m.face_score[0] == 0.9
    # the input order does not matter, only the scores
    m = acc.match_image([rough, good], [0.9, 0.6], face, [False])
    assert m.outcome.tolist() == [HIT, FP]


def test_detection_takes_the_face_it_overlaps_most():
    a, b = [0, 0, 10, 10], [0, 2, 10, 12]  # two faces, IoU 80 / 120 with each other
    det = [0, 1.5, 10, 11.5]  # IoU 0.74 with a, 0.90 with b
    m = acc.match_image([det, a], [0.9, 0.8], [a, b], [False, False])
    assert m.outcome.tolist() == [HIT, HIT]
    np.testing.assert_array_equal(m.face_score, [0.8, 0.9])
    # with b already taken by a better box, det takes a and the exact box of a is a duplicate
    m = acc.match_image([b, det, a], [0.95, 0.9, 0.8], [a, b], [False, False])
    assert m.outcome.tolist() == [HIT, HIT, FP]
    np.testing.assert_array_equal(m.face_score, [0.9, 0.95])


def test_duplicate_on_matched_face_that_is_also_near_an_ignored_face():
    # second box: its scored face is taken, but it overlaps an ignored one: not counted
    gt = [[0, 0, 10, 10], [0, 0, 10, 11]]
    m = acc.match_image([[0, 0, 10, 10], [0, 0, 10, 10.5]], [0.9, 0.8], gt, [False, True])
    assert m.outcome.tolist() == [HIT, NC]


def test_no_detections_no_faces():
    m = acc.match_image([], [], [[0, 0, 5, 5]], [False])
    assert m.outcome.size == 0 and math.isnan(m.face_score[0])
    c = acc.counts(m.outcome, 1)
    assert c["recall"] == 0.0 and math.isnan(c["precision"]) and c["f1"] == 0.0
    assert acc.average_precision(m.scores, m.outcome, 1) == 0.0
    m = acc.match_image([[0, 0, 5, 5]], [0.7], np.zeros((0, 4)), [])
    assert m.outcome.tolist() == [FP]
    assert math.isnan(acc.counts(m.outcome, 0)["recall"])
    assert math.isnan(acc.average_precision(m.scores, m.outcome, 0))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        acc.match_image([[0, 0, 1, 1]], [0.5, 0.6], [], [])
    with pytest.raises(ValueError):
        acc.match_image([], [], [[0, 0, 1, 1]], [False, True])
    with pytest.raises(ValueError):
        acc.as_boxes([[0, 0, 1]])


# ---------------------------------------------------------------------------
# Precision-recall curve and AP
# ---------------------------------------------------------------------------


def test_voc_ap_on_a_known_pr_list():
    # precision 0.5 at recall 0.4 is lifted to 0.8 (the best at any higher recall)
    recall = [0.2, 0.4, 0.4, 0.6]
    precision = [1.0, 0.5, 0.8, 0.3]
    # 0.2 * 1.0 + 0.2 * 0.8 + 0.2 * 0.3 (recall 0.6 .. 1 adds nothing)
    assert acc.voc_ap(recall, precision) == pytest.approx(0.42, abs=1e-12)
    # a plain two-step curve: 0.5 * 1.0 + 0.5 * 0.5
    assert acc.voc_ap([0.5, 1.0], [1.0, 0.5]) == pytest.approx(0.75)
    assert acc.voc_ap([], []) == 0.0


def test_pr_curve_and_ap_pooled_by_score():
    # two images' detections pooled; not-counted boxes dropped before sorting
    scores = [0.3, 0.9, 0.95, 0.6, 0.1]
    outcome = [HIT, HIT, NC, FP, FP]
    recall, precision = acc.pr_curve(scores, outcome, 4)
    # order 0.9 H, 0.6 F, 0.3 H, 0.1 F
    np.testing.assert_allclose(recall, [0.25, 0.25, 0.5, 0.5])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3, 0.5])
    # 0.25 * 1 + 0.25 * 2/3 = 5/12
    assert acc.average_precision(scores, outcome, 4) == pytest.approx(5 / 12)


def test_ap_of_a_perfect_ranking_below_full_recall():
    # every box a hit but only 2 of 4 faces found: AP = recall reached = 0.5
    assert acc.average_precision([0.9, 0.8], [HIT, HIT], 4) == pytest.approx(0.5)
    # false positives ranked above the hits lower it
    assert acc.average_precision([0.9, 0.8, 0.7], [FP, HIT, HIT], 2) == pytest.approx(
        0.5 * (2 / 3) + 0.5 * (2 / 3))


# ---------------------------------------------------------------------------
# Threshold sweep
# ---------------------------------------------------------------------------


def test_threshold_sweep_and_best_f1():
    scores = [0.9, 0.8, 0.6, 0.4, 0.3]
    outcome = [HIT, FP, HIT, NC, HIT]
    rows = acc.threshold_sweep(scores, outcome, 4, [0.3, 0.5, 0.85, 0.95])
    got = [(r["threshold"], r["hits"], r["false_positives"], r["not_counted"]) for r in rows]
    assert got == [(0.3, 3, 1, 1), (0.5, 2, 1, 0), (0.85, 1, 0, 0), (0.95, 0, 0, 0)]
    assert rows[0]["recall"] == 0.75 and rows[0]["precision"] == 0.75
    assert rows[0]["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert math.isnan(rows[3]["precision"]) and rows[3]["f1"] == 0.0
    assert acc.best_f1(rows)["threshold"] == 0.3
    # a tie keeps the lowest threshold
    tie = [{"threshold": 0.3, "f1": 0.5}, {"threshold": 0.4, "f1": 0.5}]
    assert acc.best_f1(tie)["threshold"] == 0.3
    assert acc.best_f1([{"threshold": 0.3, "f1": math.nan}]) is None


def test_threshold_sweep_compares_in_float32_like_the_detector():
    s = float(np.float32(0.27))  # a float32 score equal to the float32 threshold is kept
    assert acc.threshold_sweep([s], [HIT], 1, [0.27])[0]["hits"] == 1
    below = float(np.nextafter(np.float32(0.27), np.float32(0)))
    assert acc.threshold_sweep([below], [HIT], 1, [0.27])[0]["hits"] == 0


def test_sweep_thresholds_range():
    t = acc.SWEEP_THRESHOLDS
    assert t[0] == 0.27 and t[-1] == 0.95 and len(t) == 69
    assert all(round(b - a, 2) == 0.01 for a, b in zip(t, t[1:]))
    assert t[0] > acc.STAND_IN_SCORE


def test_repeated_boxes_flags_input_independent_outputs():
    sizes = [(100, 50), (200, 100), (40, 40)]
    # the same relative box (10%..50% of each side) and score in every image, plus
    # one box per image that occurs once; the last image also has the same
    # relative box at another score (not the same output)
    boxes = [[[10, 5, 50, 25], [1, 1, 9, 9]],
             [[20, 10, 100, 50], [30, 30, 60, 60]],
             [[4, 4, 20, 20], [0, 0, 10, 10], [4, 4, 20, 20]]]
    scores = [[0.25, 0.9], [0.25, 0.8], [0.25, 0.7, 0.3]]
    flags = acc.repeated_boxes(boxes, scores, sizes)
    assert [f.tolist() for f in flags] == [[True, False], [True, False], [True, False, False]]
    # in 2 of 3 images: still at least half
    flags = acc.repeated_boxes(boxes[:2] + [[[0, 0, 1, 1]]], scores[:2] + [[0.5]], sizes)
    assert [f.tolist() for f in flags] == [[True, False], [True, False], [False]]
    # one image: nothing recurs
    assert acc.repeated_boxes(boxes[:1], scores[:1], sizes[:1])[0].tolist() == [False, False]


# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------


def test_parse_config():
    c = acc.parse_config("mfs32:min_face_size=32")
    assert (c.name, c.detector_kwargs, c.detect_kwargs) == ("mfs32", {"min_face_size": 32}, {})
    c = acc.parse_config("x:score_threshold=0.4, iou_threshold=.5,isa='avx2',tile=(1, 2)")
    assert c.detector_kwargs == {"score_threshold": 0.4, "iou_threshold": 0.5, "isa": "avx2",
                                 "tile": (1, 2)}
    c = acc.parse_config("y:isa=avx2,detect.upscale=True,flag=None")
    assert c.detector_kwargs == {"isa": "avx2", "flag": None}
    assert c.detect_kwargs == {"upscale": True}
    assert acc.parse_config("defaults") == acc.Config("defaults")
    assert acc.parse_config("d:") == acc.Config("d")
    assert acc.parse_config("t2:num_threads=2").describe() == "num_threads=2"
    assert acc.Config("d").describe() == "library defaults"
    for bad in ("", ":a=1", "x:=1", "x:a", "x:a=", "x:1a=2", "x:a=1,a=2", "bad name:a=1"):
        with pytest.raises(ValueError):
            acc.parse_config(bad)


# ---------------------------------------------------------------------------
# The runner, on synthetic images with a fake detector
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeFace:
    box: tuple[float, float, float, float]
    score: float


class FakeDetector:
    """Returns preset faces by image size; counts ``passes`` forward passes per call."""

    def __init__(self, weights=None, *, faces_by_size, score_threshold=0.5, iou_threshold=0.6,
                 max_faces=100, passes=1):
        self.faces_by_size = faces_by_size
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_faces = max_faces
        self.passes = passes

    def detect(self, image):
        if not isinstance(image, np.ndarray):
            image = acc.decode(image)
        h, w = image.shape[:2]
        faces = sorted(self.faces_by_size[(w, h)], key=lambda f: -f.score)
        self.last_passes = self.passes
        return [f for f in faces if f.score >= self.score_threshold][: self.max_faces]


@pytest.fixture
def synthetic(tmp_path):
    """Two generated images (no eval photo) with hand-made faces and detections."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images, faces_by_size = [], {}
    # image A, 100 x 80: a 40 px face (taller than 40% of 80 px), a 10 px face, an ignored face
    a_boxes = np.array([[10, 10, 50, 50], [70, 10, 80, 20], [85, 60, 91, 66]], float)
    a_ignore = np.array([False, False, True])
    faces_by_size[(100, 80)] = [
        FakeFace((10, 10, 50, 50), 0.9),  # hit, 32-64 bucket
        FakeFace((85, 60, 91, 66), 0.8),  # on the ignored face
        FakeFace((60, 50, 70, 60), 0.6),  # false positive
        FakeFace((70, 10, 80, 20), 0.3),  # hit only at the low threshold, < 16 bucket
    ]
    # image B, 120 x 90: one 20 px face, missed; one false positive at a low score
    b_boxes = np.array([[5, 5, 25, 25]], float)
    b_ignore = np.array([False])
    faces_by_size[(120, 90)] = [FakeFace((40, 20, 50, 30), 0.05)]
    for key, (w, h), boxes, ignore in (("a.png", (100, 80), a_boxes, a_ignore),
                                       ("b.png", (120, 90), b_boxes, b_ignore)):
        path = tmp_path / key
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        images.append(acc.EvalImage(key, path, w, h, boxes, ignore))
    return images, partial(FakeDetector, faces_by_size=faces_by_size)


def test_runner_on_synthetic_images(synthetic):
    images, factory = synthetic
    configs = [acc.Config("defaults"), acc.Config("p3", {"passes": 3})]
    report = acc.evaluate(images, configs, detector_factory=factory)
    assert report["eval_set"]["images"] == 2
    es = report["eval_set"]["views"]
    assert es["all"]["scored_faces"] == 3 and es["all"]["ignored_faces"] == 1
    assert es["all"]["buckets"] == {"< 16": 1, "16-32": 1, "32-64": 1, "64-96": 0, "> 96": 0}
    assert es["all"]["large_faces"] == 1
    assert es["ge32"]["scored_faces"] == 1

    cfg = report["configs"][0]
    assert cfg["settings"]["score_threshold"] == 0.5
    assert cfg["speed"]["detect"]["passes_per_image"] == 1
    assert report["configs"][1]["speed"]["detect"]["passes_per_image"] == 3
    assert report["configs"][1]["speed"]["low"]["passes_per_image"] == 3
    assert cfg["speed"]["path_matches_array"] is True
    assert cfg["speed"]["detect"]["images_per_s"] > 0
    assert cfg["speed"]["from_path"]["images_per_s"] > 0
    assert cfg["low_run"]["detections"] == 5 and cfg["low_run"]["images_at_max_faces"] == 0
    assert cfg["low_run"]["repeated_boxes"] == 0

    v = cfg["views"]["all"]
    d, lo = v["default"], v["low"]
    # default run: 0.9 hit, 0.8 not counted, 0.6 false positive
    assert (d["hits"], d["false_positives"], d["not_counted"]) == (1, 1, 1)
    assert d["recall"] == pytest.approx(1 / 3) and d["precision"] == 0.5
    # low run, counted boxes by score: 0.9 H, 0.6 F, 0.3 H, 0.05 F over 3 faces
    assert (lo["hits"], lo["false_positives"]) == (2, 2)
    assert lo["recall"] == pytest.approx(2 / 3)
    assert lo["ap"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    buckets = {b["bucket"]: (b["faces"], b["hits"], b["hits_low"]) for b in v["buckets"]}
    assert buckets["< 16"] == (1, 0, 1) and buckets["16-32"] == (1, 0, 0)
    assert buckets["32-64"] == (1, 1, 1)
    assert v["large_faces"] == {"faces": 1, "hits": 1, "recall": 1.0, "hits_low": 1,
                                "recall_low": 1.0}
    assert v["low_run_consistent"] is True

    # secondary view: the 10 and 20 px faces are ignored too, so the 0.3 box on
    # the 10 px face is not counted and the only false positives are 0.6 and 0.05
    g = cfg["views"]["ge32"]
    assert g["scored_faces"] == 1
    assert (g["default"]["hits"], g["default"]["false_positives"]) == (1, 1)
    assert (g["low"]["hits"], g["low"]["false_positives"], g["low"]["not_counted"]) == (1, 2, 2)
    assert g["low"]["ap"] == 1.0
    assert [b["faces"] for b in g["buckets"]] == [0, 0, 1, 0, 0]

    # the sweep: thresholds 0.27..0.95 keep 0.9, 0.8 (not counted), 0.6 and 0.3 below 0.31
    sweep = {round(r["threshold"], 2): r for r in v["sweep"]}
    assert (sweep[0.3]["hits"], sweep[0.3]["false_positives"]) == (2, 1)
    assert (sweep[0.31]["hits"], sweep[0.31]["false_positives"]) == (1, 1)
    assert (sweep[0.61]["hits"], sweep[0.61]["false_positives"]) == (1, 0)
    assert v["best_f1"]["threshold"] == 0.27  # F1 2*2/(2*2+1+1) = 0.667 from 0.27 to 0.30

    text = acc.format_report(report, sweep=True)
    md = acc.format_report(report, markdown=True, sweep=True)
    for out in (text, md):
        assert "secondary: scored faces under 32 px ignored" in out and "p3" in out
    assert "| config | view |" in md


def test_runner_reports_a_config_the_detector_refuses(synthetic):
    images, factory = synthetic
    with pytest.raises(acc.ConfigError, match="'bad'"):
        acc.evaluate(images, [acc.parse_config("bad:no_such_option=1")],
                     detector_factory=factory)
    with pytest.raises(ValueError, match="differ"):
        acc.evaluate(images, [acc.Config("a"), acc.Config("a")], detector_factory=factory)


def test_to_json_has_no_nan():
    import json

    doc = acc.to_json({"a": math.nan, "b": [np.float32(0.5), np.int64(3)], "c": Path("x")})
    assert json.dumps(doc, allow_nan=False) == '{"a": null, "b": [0.5, 3], "c": "x"}'

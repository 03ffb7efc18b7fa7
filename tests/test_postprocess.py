"""Anchors, box decoding and NMS in C against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import reference

from ssdface import _core


def test_layer_table_matches_model_doc():
    layers = _core.layers()
    assert len(layers) == 72  # 60 backbone/extra convs + 12 heads
    assert len(_core.tensor_specs()) == 144
    heads = [L for L in layers if L["dst"] in (17, 18)]
    assert sum(L["out_shape"][0] * L["out_shape"][1] * L["out_shape"][2] // 4
               for L in heads if L["dst"] == 17) == 1917
    # Spot checks against the MODEL.md table.
    shapes = {L["weight"]: L["out_shape"] for L in layers}
    p = "FeatureExtractor_MobilenetV2_"
    assert shapes[p + "Conv_weights"] == (150, 150, 32)
    assert shapes[p + "expanded_conv_3_project_weights"] == (38, 38, 32)
    assert shapes[p + "expanded_conv_13_expand_weights"] == (19, 19, 576)
    assert shapes[p + "Conv_1_weights"] == (10, 10, 1280)
    assert shapes[p + "layer_19_2_Conv2d_5_3x3_s2_128_weights"] == (1, 1, 128)
    residual = [L["weight"] for L in layers if L["residual"] >= 0]
    assert len(residual) == 10  # blocks 2, 4, 5, 7, 8, 9, 11, 12, 14, 15


def test_layer_scopes_name_the_weights():
    """Each layer's TF scope (what the exporters name its activation after)
    names its weight tensors as the converter wrote them: '/' as '_', then
    the variable."""
    layers = _core.layers()
    scopes = [L["scope"] for L in layers]
    assert len(set(scopes)) == len(scopes)
    assert scopes[0] == "FeatureExtractor/MobilenetV2/Conv"
    assert "FeatureExtractor/MobilenetV2/expanded_conv_13/expand" in scopes
    assert "BoxPredictor_5/ClassPredictor" in scopes
    for L in layers:
        prefix = L["scope"].replace("/", "_")
        if L["op"] == "depthwise3x3":
            assert (L["weight"], L["bias"]) == (prefix + "_depthwise_weights",
                                                prefix + "_depthwise_bias")
        else:
            assert (L["weight"], L["bias"]) == (prefix + "_weights", prefix + "_Conv2D_bias")


def test_anchors(detector):
    np.testing.assert_allclose(detector.anchors(), reference.anchors_reference(), atol=1e-6)


def _random_head_outputs(rng, n_faces=40):
    """Box encodings and logits with many overlapping high-score anchors."""
    boxes = rng.normal(0, 1.5, (1917, 4)).astype(np.float32)
    logits = rng.normal(-4, 2, (1917, 2)).astype(np.float32)
    hot = rng.choice(1917, n_faces, replace=False)
    logits[hot, 1] = rng.uniform(0, 6, n_faces)
    return boxes, logits


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("params", [(0.5, 0.6, 100), (0.1, 0.3, 100), (0.0, 0.6, 20),
                                    (0.5, 1.0, 100), (0.9, 0.0, 5)])
def test_postprocess_matches_reference(seed, params):
    score_thr, iou_thr, max_faces = params
    rng = np.random.default_rng(seed)
    boxes, logits = _random_head_outputs(rng)
    anchors = reference.anchors_reference().astype(np.float32)
    width, height = 640.0, 480.0
    got = _core.postprocess(boxes, logits, anchors, score_thr, iou_thr, max_faces, width, height)

    decoded = reference.decode_reference(boxes.astype(np.float64), anchors.astype(np.float64))
    scores = reference.sigmoid_reference(logits[:, 1].astype(np.float64))
    keep = reference.nms_reference(decoded, scores, score_thr, iou_thr, max_faces)
    assert got[:, 5].astype(int).tolist() == list(keep)
    np.testing.assert_allclose(got[:, 4], scores[keep], rtol=1e-5)
    expect = np.stack([decoded[keep, 1] * width, decoded[keep, 0] * height,
                       decoded[keep, 3] * width, decoded[keep, 2] * height], axis=1)
    expect = np.clip(expect, 0, [width, height, width, height])
    np.testing.assert_allclose(got[:, :4], expect, atol=1e-2)


def test_postprocess_checks_shapes():
    a = reference.anchors_reference().astype(np.float32)
    z4, z2 = np.zeros((1917, 4), np.float32), np.zeros((1917, 2), np.float32)
    with pytest.raises(ValueError, match="boxes"):
        _core.postprocess(z4[:10], z2, a, 0.5, 0.6, 10, 1, 1)
    with pytest.raises(ValueError, match="max_faces"):
        _core.postprocess(z4, z2, a, 0.5, 0.6, 0, 1, 1)
    # NaN logits never become faces.
    nan = np.full((1917, 2), np.nan, np.float32)
    assert len(_core.postprocess(z4, nan, a, 0.0, 0.6, 10, 1, 1)) == 0


def test_public_anchors_need_no_weights():
    import ssdface

    np.testing.assert_allclose(ssdface.anchors(), reference.anchors_reference(), atol=1e-6)


def test_public_postprocess_matches_detect(weights_dir, photos):
    """forward + ssdface.postprocess gives exactly what a one-pass detect gives."""
    import ssdface

    detector = ssdface.Detector(weights_dir, padded_pass=False)
    for name, img in photos.items():
        boxes, logits = detector.forward(ssdface.preprocess(img))
        faces = ssdface.postprocess(boxes, logits, (img.shape[1], img.shape[0]))
        assert faces == detector.detect(img), name
        np.testing.assert_array_equal(detector.preprocess(img), ssdface.preprocess(img))
        # float64 outputs (another engine's) and no batch axis are accepted
        again = ssdface.postprocess(boxes[0].astype(np.float64), logits[0],
                                    (img.shape[1], img.shape[0]))
        assert again == faces


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"boxes": np.zeros((10, 4))}, ValueError),
        ({"boxes": np.zeros((1917, 4), np.int32)}, TypeError),
        ({"size": (0, 10)}, ValueError),
        ({"score_threshold": 2.0}, ValueError),
        ({"max_faces": 0}, ValueError),
    ],
)
def test_public_postprocess_checks_arguments(kwargs, exc):
    import ssdface

    boxes = kwargs.pop("boxes", np.zeros((1917, 4), np.float32))
    size = kwargs.pop("size", (640, 480))
    with pytest.raises(exc):
        ssdface.postprocess(boxes, np.zeros((1917, 2), np.float32), size, **kwargs)


# --- bad raw outputs and sizes ------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e4])
def test_non_finite_box_encodings_give_no_box(bad):
    """An encoding that decodes to NaN or infinity (a NaN, an infinity, or a
    size whose exp overflows) is dropped, as if its anchor scored nothing;
    before, infinite boxes came back clipped to the whole image."""
    import ssdface

    rng = np.random.default_rng(2)
    boxes, logits = _random_head_outputs(rng)
    hot = np.argsort(-logits[:, 1])[:2]
    boxes[hot[0], 2] = bad  # height
    boxes[hot[1], 1] = bad if not np.isfinite(bad) else 0.0  # x centre
    faces = ssdface.postprocess(boxes, logits, (640, 480), score_threshold=0.0, max_faces=2000)
    dropped = logits.copy()
    dropped[hot[0], 1] = -np.inf
    if not np.isfinite(bad):
        dropped[hot[1], 1] = -np.inf
    assert faces == ssdface.postprocess(boxes, dropped, (640, 480), score_threshold=0.0,
                                        max_faces=2000)
    assert faces, "the finite boxes are still returned"
    for f in faces:
        assert np.all(np.isfinite(f.box)) and np.isfinite(f.score)
        assert 0 <= f.box[0] <= f.box[2] <= 640 and 0 <= f.box[1] <= f.box[3] <= 480


def test_nan_logits_give_no_face():
    import ssdface

    boxes, logits = _random_head_outputs(np.random.default_rng(3))
    logits[:, 1] = np.nan
    assert ssdface.postprocess(boxes, logits, (10, 10), score_threshold=0.0) == []


@pytest.mark.parametrize(
    "size,exc",
    [
        (("64", 64), TypeError),
        ((64, b"64"), TypeError),
        ((True, 64), TypeError),
        ("6464", TypeError),
        ((64,), TypeError),
        ((64, 64, 3), TypeError),
        (64, TypeError),
        ((float("inf"), 64), ValueError),
        ((64, float("nan")), ValueError),
        ((0, 64), ValueError),
        ((64, -1), ValueError),
        ((1e39, 64), ValueError),  # infinite once a float32
    ],
)
def test_bad_image_sizes(size, exc):
    import ssdface

    boxes, logits = _random_head_outputs(np.random.default_rng(4))
    with pytest.raises(exc, match="image_size"):
        ssdface.postprocess(boxes, logits, size)


def test_max_faces_is_capped_at_the_anchor_count():
    import ssdface

    boxes, logits = _random_head_outputs(np.random.default_rng(5))
    logits[:, 1] = 10.0
    for huge in (2**31 - 1, 2**40, 10**30):
        faces = ssdface.postprocess(boxes, logits, (100, 100), score_threshold=0.0,
                                    iou_threshold=1.0, max_faces=huge)
        assert len(faces) == 1917

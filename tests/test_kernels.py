"""Every kernel against the plain C reference kernels and the float64 NumPy
reference, on random shapes (odd sizes, both strides) and on real weights."""

from __future__ import annotations

import numpy as np
import pytest
import reference

from ssdface import _core, _testing

FAST = [name for name in _core.kernel_sets() if name != "reference"]  # every variant this CPU runs
TOL = 1e-5  # relative L2, float32 fast path vs reference




def random_case(rng, h, w, cin, cout, k):
    x = rng.uniform(-1, 1, (h, w, cin)).astype(np.float32)
    wt = (rng.standard_normal((cout, k, k, cin)) / np.sqrt(k * k * cin)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    return x, wt, b


# (h, w, cin, cout): odd and even sizes, channel counts that are not vector
# multiples, more outputs than one accumulator block (64), single pixels.
CONV_SHAPES = [(1, 1, 3, 5), (7, 5, 3, 32), (10, 9, 17, 70), (6, 6, 64, 130), (3, 2, 256, 33),
               (15, 16, 8, 8)]


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("relu6", [False, True])
@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv3x3(impl, stride, relu6, shape):
    rng = np.random.default_rng(hash((shape, stride, relu6)) % 2**32)
    x, w, b = random_case(rng, *shape, k=3)
    fast = _testing.conv2d(x, w, b, stride, relu6, impl=impl)
    ref = _testing.conv2d(x, w, b, stride, relu6, impl="reference")
    npref = reference.conv2d_same(x.astype(np.float64), w.astype(np.float64), b, stride, relu6)
    assert fast.shape == npref.shape
    assert reference.rel_l2(fast, ref) <= TOL
    assert reference.rel_l2(ref, npref) <= 1e-6


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("relu6", [False, True])
@pytest.mark.parametrize("hwc", [(1, 1, 1), (2, 2, 16), (5, 7, 13), (19, 19, 96), (10, 11, 160),
                                 (4, 3, 1000)])
def test_depthwise3x3(impl, stride, relu6, hwc):
    rng = np.random.default_rng(hash((hwc, stride, relu6)) % 2**32)
    h, w_, c = hwc
    x = rng.uniform(-3, 3, (h, w_, c)).astype(np.float32)
    w = rng.standard_normal((1, 3, 3, c)).astype(np.float32)
    b = rng.uniform(-1, 1, c).astype(np.float32)
    fast = _testing.depthwise_conv2d(x, w, b, stride, relu6, impl=impl)
    ref = _testing.depthwise_conv2d(x, w, b, stride, relu6, impl="reference")
    npref = reference.depthwise_conv2d_same(x.astype(np.float64), w.astype(np.float64), b,
                                            stride, relu6)
    assert fast.shape == npref.shape
    assert reference.rel_l2(fast, ref) <= TOL
    assert reference.rel_l2(ref, npref) <= 1e-6


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("relu6", [False, True])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 7, 9), (9, 9, 96, 24), (5, 4, 160, 960),
                                   (2, 3, 320, 1280), (19, 19, 16, 65)])
def test_conv1x1(impl, relu6, residual, shape):
    rng = np.random.default_rng(hash((shape, relu6, residual)) % 2**32)
    x, w, b = random_case(rng, *shape, k=1)
    res = None
    if residual:
        res = rng.uniform(-2, 2, (shape[0], shape[1], shape[3])).astype(np.float32)
    fast = _testing.conv2d(x, w, b, 1, relu6, residual=res, impl=impl)
    ref = _testing.conv2d(x, w, b, 1, relu6, residual=res, impl="reference")
    expect = reference.conv2d_same(x.astype(np.float64), w.astype(np.float64), b, 1, False)
    if residual:
        expect = expect + res
    if relu6:
        expect = np.clip(expect, 0, 6)
    assert reference.rel_l2(fast, ref) <= TOL
    assert reference.rel_l2(ref, expect) <= 1e-6


def _real(weights_dir, name):
    return np.load(weights_dir / f"{name}.npy")


P = "FeatureExtractor_MobilenetV2_"

# Real layers: (weights, bias, input shape, stride, relu6, kind)
REAL_LAYERS = [
    (P + "Conv_weights", P + "Conv_Conv2D_bias", (300, 300, 3), 2, True, "conv"),
    (P + "expanded_conv_1_expand_weights", P + "expanded_conv_1_expand_Conv2D_bias",
     (150, 150, 16), 1, True, "conv"),
    (P + "expanded_conv_3_depthwise_depthwise_weights",
     P + "expanded_conv_3_depthwise_depthwise_bias", (75, 75, 144), 2, True, "dw"),
    (P + "expanded_conv_13_depthwise_depthwise_weights",
     P + "expanded_conv_13_depthwise_depthwise_bias", (19, 19, 576), 2, True, "dw"),
    (P + "expanded_conv_15_project_weights", P + "expanded_conv_15_project_Conv2D_bias",
     (10, 10, 960), 1, False, "conv"),
    (P + "layer_19_2_Conv2d_3_3x3_s2_256_weights", P + "layer_19_2_Conv2d_3_3x3_s2_256_Conv2D_bias",
     (5, 5, 128), 2, True, "conv"),
    ("BoxPredictor_1_ClassPredictor_weights", "BoxPredictor_1_ClassPredictor_Conv2D_bias",
     (10, 10, 1280), 1, False, "conv"),
]


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("layer", REAL_LAYERS, ids=lambda layer: layer[0].replace(P, ""))
def test_real_weights(weights_dir, impl, layer):
    wname, bname, shape, stride, relu6, kind = layer
    w, b = _real(weights_dir, wname), _real(weights_dir, bname)
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 6 if shape[2] > 3 else 1, shape).astype(np.float32)
    if shape[2] == 3:
        x = x * 2 - 1
    run = _testing.depthwise_conv2d if kind == "dw" else _testing.conv2d
    fast = run(x, w, b, stride, relu6, impl=impl)
    ref = run(x, w, b, stride, relu6, impl="reference")
    assert reference.rel_l2(fast, ref) <= TOL


def test_kernel_arguments_are_checked():
    x = np.zeros((4, 4, 3), np.float32)
    w = np.zeros((8, 3, 3, 3), np.float32)
    b = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="weights"):
        _testing.conv2d(x, np.zeros((8, 3, 3, 4), np.float32), b)
    with pytest.raises(ValueError, match="bias"):
        _testing.conv2d(x, w, np.zeros(7, np.float32))
    with pytest.raises(TypeError, match="float32"):
        _testing.conv2d(x.astype(np.float64), w, b)
    with pytest.raises(ValueError, match="stride"):
        _testing.conv2d(x, w, b, stride=3)
    with pytest.raises(ValueError, match="stride 1"):
        _testing.conv2d(x, np.zeros((8, 1, 1, 3), np.float32), b, stride=2)
    with pytest.raises(ValueError, match="residual"):
        _testing.conv2d(x, np.zeros((8, 1, 1, 3), np.float32), b, residual=np.zeros((4, 4, 7),
                                                                                  np.float32))
    with pytest.raises(ValueError, match="unknown kernel set"):
        _testing.conv2d(x, w, b, impl="nope")
    with pytest.raises(ValueError, match="depthwise"):
        _testing.depthwise_conv2d(x, np.zeros((1, 3, 3, 4), np.float32), np.zeros(4, np.float32))

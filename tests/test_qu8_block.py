"""The fused qu8 block kernel (producer 1x1 or 3x3, depthwise 3x3, project
1x1, the intermediates kept in the thread's scratch) against the same three
layers run one by one by the C reference kernels, byte for byte, on random
shapes: channel counts on and off the 16-channel panels (the VNNI variants'
depthwise tap rows need whole panels), strides 1 and 2, residuals, the
depthwise rows split between calls as threads split them."""

from __future__ import annotations

import numpy as np
import pytest
from test_qu8_kernels import random_case

from ssdface import _core, _testing

QU8_BLOCK = [name for name in _core.kernel_sets(dtype="qu8") if name != "reference"]
STAGE = ("bias", "scale", "in_zero", "out_zero", "out_lo", "out_hi", "res_zero", "res_scale")


def block_case(rng: np.random.Generator) -> dict:
    """A random block whose layers chain: each layer's input zero point is
    the previous output's, ReLU6 clamps on the producer and depthwise."""
    producer_k = int(rng.choice([1, 1, 3]))
    c = int(rng.choice([4, 8, 16, 24])) if producer_k == 1 else int(rng.choice([3, 4, 5]))
    e = int(rng.choice([4, 8, 16, 20, 32, 36, 48, 96]))
    h, w = int(rng.integers(1, 14)), int(rng.integers(1, 14))
    pstride = int(rng.integers(1, 3)) if producer_k == 3 else 1
    dstride = int(rng.integers(1, 3))
    ph, pw = -(-h // pstride), -(-w // pstride)
    dh, dw = -(-ph // dstride), -(-pw // dstride)
    residual = producer_k == 1 and dstride == 1 and bool(rng.integers(0, 2))
    cout = c if residual else int(rng.choice([4, 16, 17, 24, 32]))
    prod = random_case(rng, "conv", producer_k, h, w, c, e, pstride, relu6=True)
    dwl = random_case(rng, "dw", 3, ph, pw, e, e, dstride, relu6=True)
    proj = random_case(rng, "conv", 1, dh, dw, e, cout, 1, residual=residual)
    dwl["in_zero"], proj["in_zero"] = prod["out_zero"], dwl["out_zero"]
    return dict(x=prod["x"], layers=[prod, dwl, proj], producer_k=producer_k,
                producer_stride=pstride, dw_stride=dstride,
                residual=proj.get("residual"))


def layer_by_layer(case: dict) -> np.ndarray:
    t = case["x"]
    for i, (op, L) in enumerate(zip(("conv", "dw", "conv"), case["layers"])):
        stride = (case["producer_stride"], case["dw_stride"], 1)[i]
        extra = {k: L[k] for k in STAGE if k in L}
        t = _testing.qu8_conv(op, t, L["w"], stride=stride, impl="reference",
                              residual=L.get("residual") if i == 2 else None, **extra)
    return t


def run_block(case: dict, isa: str, parts: int) -> np.ndarray:
    layers = [{k: L[k] for k in ("w", *STAGE) if k in L} for L in case["layers"]]
    return _testing.qu8_block(isa, case["x"], layers, producer_k=case["producer_k"],
                              producer_stride=case["producer_stride"],
                              dw_stride=case["dw_stride"], residual=case["residual"],
                              row_parts=parts)


@pytest.mark.parametrize("isa", QU8_BLOCK)
def test_block_is_its_layers(isa):
    rng = np.random.default_rng(11)
    for i in range(40):
        case = block_case(rng)
        want = layer_by_layer(case)
        for parts in (1, 3):
            got = run_block(case, isa, parts)
            assert got.tobytes() == want.tobytes(), (
                f"case {i} ({parts} parts): x {case['x'].shape}, "
                f"producer {case['layers'][0]['w'].shape} s{case['producer_stride']}, "
                f"dw s{case['dw_stride']}, project {case['layers'][2]['w'].shape}")


@pytest.mark.parametrize("isa", QU8_BLOCK)
def test_rgb_first_block_every_width(isa):
    """The first layer's shape (3x3 on 3 channels, k4 = 28): its im2col
    copies a row's inside windows in one loop (q_im2col_row); every width
    from 1 to 21, both strides, odd and even heights. The scales are 16x
    random_case's, which spreads the block's output over the byte range (at
    1x three layers leave a few values, and a wrong input byte rarely
    shows)."""
    rng = np.random.default_rng(5)
    for w in range(1, 22):
        for stride in (1, 2):
            h = int(rng.integers(1, 8))
            e = int(rng.choice([8, 16, 32]))
            prod = random_case(rng, "conv", 3, h, w, 3, e, stride)
            ph, pw = -(-h // stride), -(-w // stride)
            dstride = int(rng.integers(1, 3))
            dwl = random_case(rng, "dw", 3, ph, pw, e, e, dstride)
            dh, dw = -(-ph // dstride), -(-pw // dstride)
            proj = random_case(rng, "conv", 1, dh, dw, e, 16, 1)
            for layer in (prod, dwl, proj):
                layer["scale"] = layer["scale"] * 16
            dwl["in_zero"], proj["in_zero"] = prod["out_zero"], dwl["out_zero"]
            case = dict(x=prod["x"], layers=[prod, dwl, proj], producer_k=3,
                        producer_stride=stride, dw_stride=dstride, residual=None)
            want = layer_by_layer(case)
            for parts in (1, 2):
                assert run_block(case, isa, parts).tobytes() == want.tobytes(), (
                    f"{h}x{w} s{stride}, dw s{dstride}, {parts} parts")


def test_block_arguments_are_checked():
    rng = np.random.default_rng(0)
    case = block_case(rng)
    while case["producer_k"] != 1:
        case = block_case(rng)
    isa = QU8_BLOCK[0]
    with pytest.raises(ValueError, match="three layers"):
        _testing.qu8_block(isa, case["x"], case["layers"][:2])
    with pytest.raises(ValueError, match="producer_k"):
        run_block({**case, "producer_k": 3}, isa, 1)
    odd = dict(case)
    odd["layers"] = [dict(L) for L in case["layers"]]
    odd["layers"][0]["out_zero"] = 300
    with pytest.raises(ValueError, match="inside uint8"):
        run_block(odd, isa, 1)

"""Quantized (qu8) kernels: the C reference against the NumPy contract
(tests/qu8_reference.py), and every fast variant this CPU runs against the
C reference, byte for byte, on random shapes, splits, residuals, clamps and
float outputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from qu8_reference import qu8_conv as np_qu8_conv

from ssdface import _core, _testing

QU8_FAST = [name for name in _core.kernel_sets(dtype="qu8") if name != "reference"]


def random_case(rng: np.random.Generator, op: str, k: int, h: int, w: int, c: int, cout: int,
                stride: int, *, residual: bool = False, f32_out: bool = False,
                relu6: bool = False) -> dict:
    """Random bytes, int8 weights, biases and scales sized like a real layer's
    (the output stage lands mostly inside 0..255, some of it clamped)."""
    x = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    shape = (1, 3, 3, c) if op == "dw" else (cout, k, k, c)
    wq = rng.integers(-127, 128, size=shape, dtype=np.int8)
    n = c if op == "dw" else cout
    taps = 9 if op == "dw" else k * k * c
    in_zero = int(rng.integers(0, 256))
    bias = rng.integers(-(2**16), 2**16, size=n).astype(np.int32)
    scale = (rng.uniform(0.5, 2.0, size=n) / (taps ** 0.5 * 127 * 40)).astype(np.float32)
    out_zero = int(rng.integers(0, 256))
    case = dict(op=op, x=x, w=wq, bias=bias, scale=scale, stride=stride, in_zero=in_zero,
                out_zero=out_zero, out_lo=float(-out_zero), out_hi=float(255 - out_zero),
                f32_out=f32_out)
    if relu6:
        case["out_lo"] = 0.0
        case["out_hi"] = float(min(255 - out_zero, int(rng.integers(1, 256))))
    if residual:
        oh, ow = -(-h // stride), -(-w // stride)
        case["residual"] = rng.integers(0, 256, size=(oh, ow, cout), dtype=np.uint8)
        case["res_zero"] = int(rng.integers(0, 256))
        case["res_scale"] = float(rng.uniform(0.2, 1.5))
    return case


def run(case: dict, impl: str, split=(1, 1)) -> np.ndarray:
    return _testing.qu8_conv(**case, impl=impl, split=split)


def shapes(seed: int, count: int) -> list[dict]:
    """Random layers: channel counts off the 4-byte groups and the 16-channel
    panels, 1x1 with and without residual, 3x3 strides 1 and 2, depthwise,
    float outputs (the heads)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        kind = i % 6
        h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        c = int(rng.choice([1, 3, 4, 5, 8, 16, 17, 24, 33, 64]))
        cout = int(rng.choice([1, 6, 12, 16, 17, 24, 32, 40, 64]))
        if kind == 0:
            cases.append(random_case(rng, "conv", 1, h, w, c, cout, 1))
        elif kind == 1:
            cases.append(random_case(rng, "conv", 1, h, w, c, cout, 1, residual=True))
        elif kind == 2:
            cases.append(random_case(rng, "conv", 3, h, w, c, cout, int(rng.integers(1, 3)),
                                     relu6=True))
        elif kind == 3:
            cases.append(random_case(rng, "dw", 3, h, w, c, c, int(rng.integers(1, 3)),
                                     relu6=bool(rng.integers(0, 2))))
        elif kind == 4:
            cases.append(random_case(rng, "conv", 1, h, w, c, cout, 1, f32_out=True))
        else:
            cases.append(random_case(rng, "conv", 3, h, w, c, cout, 2, f32_out=True))
    return cases


def case_id(c: dict) -> str:
    return f"{c['op']}{c['w'].shape}x{c['x'].shape}"


@pytest.mark.parametrize("case", shapes(1, 30), ids=case_id)
def test_reference_is_the_contract(case):
    """The C reference kernels compute exactly what kernels_qu8.h writes down."""
    kwargs = {k: v for k, v in case.items() if k not in ("op", "x", "w", "bias", "scale")}
    want = np_qu8_conv(case["op"], case["x"], case["w"], case["bias"], case["scale"], **kwargs)
    got = run(case, "reference")
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("isa", QU8_FAST)
def test_output_stage_past_int32(isa):
    """Scales so large that acc * scale passes +-2^31 (where a float to
    int32 conversion gives INT_MIN): the variants' output stage must clamp
    before it converts, and give the byte range's ends as the reference's
    float clamp does; with a residual, and with a ReLU6 cap inside the
    range too. (Narrowing with unsigned saturation instead of the top clamp
    would be exact here too, and was measured 3% slower on Sapphire
    Rapids.)"""
    rng = np.random.default_rng(17)
    for op, k, residual, relu6 in [("conv", 1, False, False), ("conv", 1, True, False),
                                   ("conv", 3, False, False), ("dw", 3, False, False),
                                   ("conv", 1, False, True), ("dw", 3, False, True)]:
        cout = 24 if op == "conv" else 40
        case = random_case(rng, op, k, 7, 13, 40, cout, 1, residual=residual, relu6=relu6)
        case["scale"] = rng.uniform(1e5, 1e7, case["scale"].shape).astype(np.float32)
        want = run(case, "reference")
        z = case["out_zero"]  # both clamps reached
        assert want.min() == int(case["out_lo"]) + z and want.max() == int(case["out_hi"]) + z
        for split in [(1, 1), (2, 2)]:
            got = run(case, isa, split)
            assert got.tobytes() == want.tobytes(), f"{op} {k}x{k} residual={residual}"


@pytest.mark.parametrize("isa", QU8_FAST)
def test_variant_matches_reference(isa):
    """Byte for byte (float outputs bit for bit) on 60 random layers, whole
    and split between 'threads' by pixels and by channel panels."""
    for i, case in enumerate(shapes(2, 60)):
        want = run(case, "reference")
        split = [(1, 1), (3, 1), (2, 2), (1, 3)][i % 4]
        got = run(case, isa, split)
        assert got.tobytes() == want.tobytes(), f"case {i}: {case_id(case)}"


@pytest.mark.parametrize("isa", QU8_FAST)
def test_variant_on_network_sizes(isa):
    """The largest sums of the network: 1x1 with K = 1280 and a 3x3 with
    9 x 256 inputs, all bytes 255 and weights +-127 (the int32 range), a
    300x300 first layer (3 channels: the padded 4-byte groups), and
    depthwise layers of 960 channels and of 600 columns."""
    rng = np.random.default_rng(3)
    big = random_case(rng, "conv", 1, 3, 5, 1280, 48, 1)
    big["x"][:] = 255
    big["w"][:] = 127
    big["w"][::2] = -127
    wide = random_case(rng, "conv", 3, 5, 5, 256, 32, 2, relu6=True)
    first = random_case(rng, "conv", 3, 300, 300, 3, 32, 2, relu6=True)
    # depthwise: channels in several chunks of tap rows; a row too wide for
    # one panel's tap rows (the pixel-by-pixel path)
    deep = random_case(rng, "dw", 3, 10, 10, 960, 960, 1, relu6=True)
    long = random_case(rng, "dw", 3, 2, 600, 32, 32, 1)
    for case in (big, wide, first, deep, long):
        want = run(case, "reference")
        assert run(case, isa).tobytes() == want.tobytes()
        assert run(case, isa, (4, 2)).tobytes() == want.tobytes()


@pytest.mark.parametrize("isa", QU8_FAST)
def test_variant_on_tile_tails(isa):
    """The shapes a tiled GEMM (amx: 16-pixel tiles, fewer when a call has
    fewer pixels, K in equal chunks of at most 64 bytes) cuts with tails:
    reductions of 8, 40, 68 (17 groups: prime), 96, 144, 160 and 960 bytes
    and 9 x 32; 3, 15, 16, 17, 31, 32, 33 and 48 pixels; 16 .. 48 channels
    (odd panels, partial panels); residuals and float outputs; split by
    pixels and by panels. Sized so that amx takes its tiles (at least 64K
    multiply-adds) on all but the 8-byte one."""
    rng = np.random.default_rng(5)
    cases = []
    for i, (c, (h, w), cout) in enumerate([
            (96, (4, 4), 48), (144, (1, 17), 40), (160, (3, 11), 40), (40, (7, 7), 48),
            (7, (5, 3), 48), (68, (4, 8), 40), (96, (1, 31), 32), (144, (6, 8), 32),
            (160, (1, 15), 40), (64, (7, 7), 48), (960, (1, 3), 32)]):
        cases.append(random_case(rng, "conv", 1, h, w, c, cout, 1, residual=i % 3 == 1,
                                 f32_out=i % 3 == 2))
    cases.append(random_case(rng, "conv", 3, 6, 7, 32, 40, 1, relu6=True))
    cases.append(random_case(rng, "conv", 3, 9, 9, 16, 24, 2, f32_out=True))
    for i, case in enumerate(cases):
        want = run(case, "reference")
        for split in [(1, 1), (3, 1), (2, 2)]:
            got = run(case, isa, split)
            assert got.tobytes() == want.tobytes(), f"case {i} split {split}: {case_id(case)}"


def test_rounding_ties_go_to_even():
    """f = acc * 0.5 lands on .5 for odd sums and rounds half to even, as
    np.rint; every variant the same."""
    x = (np.arange(0, 16, dtype=np.uint8) * 2 + 1).reshape(1, 16, 1)
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    case = dict(op="conv", x=x, w=w, bias=np.array([-8], np.int32),
                scale=np.array([0.5], np.float32), stride=1, in_zero=0, out_zero=100,
                out_lo=-100.0, out_hi=155.0, f32_out=False)
    want = np_qu8_conv("conv", x, w, case["bias"], case["scale"], out_zero=100, out_lo=-100.0,
                       out_hi=155.0)
    # sums -7, -5, -3, -1, 1, 3: f = -3.5 -2.5 -1.5 -0.5 0.5 1.5 -> -4 -2 -2 0 0 2
    assert list(want.ravel()[:6]) == [96, 98, 98, 100, 100, 102]
    for isa in ["reference", *QU8_FAST]:
        np.testing.assert_array_equal(run(case, isa), want)


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(4)
    case = random_case(rng, "conv", 1, 2, 2, 4, 4, 1)
    with pytest.raises(TypeError):
        run({**case, "x": case["x"].astype(np.float32)}, "reference")
    with pytest.raises(ValueError):
        run({**case, "w": case["w"][:, :, :, :3]}, "reference")
    with pytest.raises(ValueError):
        run({**case, "scale": case["scale"][:2]}, "reference")
    with pytest.raises(ValueError, match="unknown kernel set"):
        run(case, "nonexistent")
    if "avx512" in _core.kernel_sets():
        with pytest.raises(ValueError, match="no qu8 kernels"):
            run(case, "avx512")


@pytest.mark.skipif(not sys.platform.startswith("linux") or "avx2" not in _core.kernel_sets(False),
                    reason="Linux on x86-64 only")
def test_amx_where_the_cpu_and_kernel_have_it():
    """The amx variant runs exactly where /proc/cpuinfo lists AMX-TILE and
    AMX-INT8 (the kernel lists them when it can hand out the tile state):
    the tests above then cover it; elsewhere it is compiled but refused."""
    flags = set()
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    has = {"amx_tile", "amx_int8", "avx512_vnni"} <= flags
    assert "amx" in _core.kernel_sets(False, "qu8")
    assert ("amx" in _core.kernel_sets(dtype="qu8")) == has
    if not has:
        with pytest.raises(ValueError, match="needs instructions this CPU lacks"):
            run(random_case(np.random.default_rng(6), "conv", 1, 2, 2, 4, 4, 1), "amx")

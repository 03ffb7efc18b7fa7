"""The quantized (qu8) convolution contract of csrc/kernels/kernels_qu8.h in
NumPy: exact integer sums (int64), then the float32 output stage with every
operation rounded on its own. The C reference kernels are held to this, and
every fast variant to them, byte for byte."""

from __future__ import annotations

import numpy as np


def same_geometry(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """TF SAME padding: output size, pad before, total pad."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total


def accumulate(op: str, x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int,
               in_zero: int) -> np.ndarray:
    """int64 sums: bias + sum of input bytes (in_zero at the padding) times
    int8 weights. ``op`` is "conv" (w OHWI, 1x1 or 3x3) or "dw" (w [1,3,3,C])."""
    h, wd, c = x.shape
    k = 3 if op == "dw" else w.shape[1]
    oh, top, th = same_geometry(h, k, stride)
    ow, left, tw = same_geometry(wd, k, stride)
    xp = np.full((h + th, wd + tw, c), in_zero, dtype=np.int64)
    xp[top:top + h, left:left + wd] = x
    cout = c if op == "dw" else w.shape[0]
    acc = np.broadcast_to(bias.astype(np.int64), (oh, ow, cout)).copy()
    for ky in range(k):
        for kx in range(k):
            win = xp[ky:ky + (oh - 1) * stride + 1:stride, kx:kx + (ow - 1) * stride + 1:stride]
            if op == "dw":
                acc += win * w[0, ky, kx].astype(np.int64)
            else:
                taps = w[:, ky, kx, :].astype(np.int64).T
                acc += win.reshape(-1, c).dot(taps).reshape(oh, ow, cout)
    return acc


def output_stage(acc: np.ndarray, scale: np.ndarray, *, out_zero: int, out_lo: float,
                 out_hi: float, residual: np.ndarray | None = None, res_zero: int = 0,
                 res_scale: float = 0.0, f32_out: bool = False) -> np.ndarray:
    """int32 sums to uint8 (or float32 for f32_out), as kernels_qu8.h defines."""
    assert acc.min() >= -(2**31) and acc.max() < 2**31, "sums must fit int32"
    f = acc.astype(np.int32).astype(np.float32) * scale.astype(np.float32)
    if f32_out:
        return f
    if residual is not None:
        r = (residual.astype(np.int32) - res_zero).astype(np.float32)
        f = f + r * np.float32(res_scale)
    f = np.minimum(np.maximum(f, np.float32(out_lo)), np.float32(out_hi))
    return (np.rint(f).astype(np.int32) + out_zero).astype(np.uint8)


def qu8_conv(op: str, x: np.ndarray, w: np.ndarray, bias: np.ndarray, scale: np.ndarray, *,
             stride: int = 1, in_zero: int = 0, out_zero: int = 0, out_lo: float = -255.0,
             out_hi: float = 255.0, residual: np.ndarray | None = None, res_zero: int = 0,
             res_scale: float = 0.0, f32_out: bool = False) -> np.ndarray:
    """One quantized convolution, the contract's way."""
    acc = accumulate(op, x, w, bias, stride, in_zero)
    return output_stage(acc, scale, out_zero=out_zero, out_lo=out_lo, out_hi=out_hi,
                        residual=residual, res_zero=res_zero, res_scale=res_scale,
                        f32_out=f32_out)

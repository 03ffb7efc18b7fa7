"""Float64 NumPy reference of the operations the C kernels implement: the
regular and depthwise convolutions with TensorFlow ``SAME`` padding, and the
antialiased (triangle filter) resize.

Part of the reference of ``reference.py`` (import that module; it re-exports
these). Never imports ``ssdface``: written straight from
``shared/docs/MODEL.md``. Convolutions are matrix products over shifted views
(never Python loops over pixels).

Conventions: activations ``[H, W, C]``; regular conv weights OHWI
``[out, kh, kw, in]``, depthwise weights ``[1, kh, kw, channels]``; padding
TensorFlow ``SAME`` with the smaller half of the total pad on top/left.
"""

from __future__ import annotations

import numpy as np

# The network's input side: the resize's default output size.
INPUT_SIZE = 300


# ---------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------

def _same_padding(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """Return (output size, pad before, pad after) of TF SAME padding on one axis."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    before = total // 2
    return out, before, total - before


def _pad_same(x: np.ndarray, kh: int, kw: int, stride: int) -> tuple[np.ndarray, int, int]:
    """Zero-pad ``x`` [H, W, C] for a SAME conv; return (padded, out_h, out_w)."""
    h, w, _ = x.shape
    oh, top, bottom = _same_padding(h, kh, stride)
    ow, left, right = _same_padding(w, kw, stride)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    return xp, oh, ow


def _tap(xp: np.ndarray, dy: int, dx: int, oh: int, ow: int, stride: int) -> np.ndarray:
    """The input pixels that kernel tap (dy, dx) sees for every output pixel: [oh, ow, C]."""
    return xp[dy : dy + stride * (oh - 1) + 1 : stride, dx : dx + stride * (ow - 1) + 1 : stride, :]


def _finish(y: np.ndarray, b: np.ndarray, relu6: bool) -> np.ndarray:
    y = y + b
    if relu6:
        y = np.clip(y, 0.0, 6.0)
    return y


def conv2d_same(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, relu6: bool
) -> np.ndarray:
    """Regular 2-D convolution with TF SAME padding, bias and optional ReLU6.

    Args:
        x: input ``[H, W, Cin]``.
        w: weights OHWI ``[Cout, KH, KW, Cin]``.
        b: bias ``[Cout]``.
        stride: the same stride on both axes.
        relu6: clamp the result to ``[0, 6]``.

    Returns:
        float64 ``[ceil(H/stride), ceil(W/stride), Cout]``.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    cout, kh, kw, cin = w.shape
    assert x.ndim == 3 and x.shape[2] == cin, (x.shape, w.shape)
    xp, oh, ow = _pad_same(x, kh, kw, stride)
    y = np.zeros((oh, ow, cout), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            y += _tap(xp, dy, dx, oh, ow, stride) @ w[:, dy, dx, :].T
    return _finish(y, np.asarray(b, dtype=np.float64), relu6)


def depthwise_conv2d_same(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, relu6: bool
) -> np.ndarray:
    """Depthwise 2-D convolution (depth multiplier 1) with TF SAME padding.

    Args:
        x: input ``[H, W, C]``.
        w: weights ``[1, KH, KW, C]``.
        b: bias ``[C]``.
        stride: the same stride on both axes.
        relu6: clamp the result to ``[0, 6]``.

    Returns:
        float64 ``[ceil(H/stride), ceil(W/stride), C]``.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    one, kh, kw, c = w.shape
    assert one == 1 and x.ndim == 3 and x.shape[2] == c, (x.shape, w.shape)
    xp, oh, ow = _pad_same(x, kh, kw, stride)
    y = np.zeros((oh, ow, c), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            y += _tap(xp, dy, dx, oh, ow, stride) * w[0, dy, dx, :]
    return _finish(y, np.asarray(b, dtype=np.float64), relu6)


# ---------------------------------------------------------------------------
# Resize
# ---------------------------------------------------------------------------


def resize_taps(n: int, m: int) -> list[tuple[int, np.ndarray]]:
    """The antialiased triangle filter taking length n to length m, per output
    index: ``(xmin, weights)``, output i being ``weights @ x[xmin:xmin + len(weights)]``."""
    scale = n / m
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    taps = []
    for i in range(m):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n)
        j = np.arange(xmin, xmax)
        wts = np.maximum(0.0, 1.0 - np.abs((j - center + 0.5) / filterscale))
        total = wts.sum()
        taps.append((xmin, wts / total if total != 0.0 else np.zeros_like(wts)))
    return taps


def _resize_matrix(n: int, m: int) -> np.ndarray:
    """[m, n] matrix of the antialiased triangle filter taking length n to length m."""
    mat = np.zeros((m, n), dtype=np.float64)
    for i, (xmin, wts) in enumerate(resize_taps(n, m)):
        mat[i, xmin : xmin + wts.size] = wts
    return mat


def resize_reference(image: np.ndarray, size: int = INPUT_SIZE,
                     width: int | None = None) -> np.ndarray:
    """Antialiased bilinear (triangle filter) resize to ``size x size`` (or
    ``size`` rows of ``width``), in float64.

    The Pillow ``Image.resize(BILINEAR)`` formulation without intermediate
    rounding: separable, horizontal pass then vertical pass, on the uint8
    values as floats.

    Args:
        image: ``[H, W, C]`` (or ``[H, W]``) array.
        size: output side.

    Returns:
        float64 ``[size, size, C]`` (``[size, size]`` for a 2-D input).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        return resize_reference(img[:, :, None], size, width)[:, :, 0]
    h, w = img.shape[:2]
    wx = _resize_matrix(w, size if width is None else width)  # [width, w]
    wy = _resize_matrix(h, size)  # [size, h]
    planes = np.moveaxis(img, 2, 0)  # [C, H, W]
    horizontal = planes @ wx.T  # [C, H, size]
    vertical = wy @ horizontal  # [C, size, size]
    return np.moveaxis(vertical, 0, 2)

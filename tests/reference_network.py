"""Float64 NumPy reference of the network: the SSD MobileNet V2 architecture
(backbone blocks, extra layers, box and class heads), its weights and the
whole forward pass.

Part of the reference of ``reference.py`` (import that module; it re-exports
these). Never imports ``ssdface``: written straight from
``shared/docs/MODEL.md``; one 300x300 forward pass takes on the order of a
second.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from reference_kernels import INPUT_SIZE, conv2d_same, depthwise_conv2d_same

NUM_ANCHORS = 1917

_P = "FeatureExtractor_MobilenetV2_"

# (block index, expansion channels or None, depthwise stride, residual)
# for blocks 0..16 of the MobileNet V2 backbone, from the table in MODEL.md.
_BLOCKS: list[tuple[int, int | None, int, bool]] = [
    (0, None, 1, False),
    (1, 96, 2, False),
    (2, 144, 1, True),
    (3, 144, 2, False),
    (4, 192, 1, True),
    (5, 192, 1, True),
    (6, 192, 2, False),
    (7, 384, 1, True),
    (8, 384, 1, True),
    (9, 384, 1, True),
    (10, 384, 1, False),
    (11, 576, 1, True),
    (12, 576, 1, True),
    (13, 576, 2, False),
    (14, 960, 1, True),
    (15, 960, 1, True),
    (16, 960, 1, False),
]

# Extra SSD layers: (k, channels of the 1x1 conv, channels of the 3x3 s2 conv).
_EXTRAS: list[tuple[int, int, int]] = [(2, 256, 512), (3, 128, 256), (4, 128, 256), (5, 64, 128)]

# The grid side of each of the 6 feature maps (heads and anchors, in order).
GRIDS = (19, 10, 5, 3, 2, 1)


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


def load_weights(weights_dir: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Load every ``*.npy`` file of ``weights_dir`` as float64.

    Keys are the file names without the ``.npy`` suffix.
    """
    weights_dir = Path(weights_dir)
    files = sorted(weights_dir.glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no .npy files in {weights_dir}")
    return {f.stem: np.load(f).astype(np.float64) for f in files}


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------



def _conv(
    x: np.ndarray, weights: dict[str, np.ndarray], name: str, stride: int, relu6: bool
) -> np.ndarray:
    """Regular conv whose weights are ``name + '_weights'`` and bias ``name + '_Conv2D_bias'``."""
    return conv2d_same(x, weights[name + "_weights"], weights[name + "_Conv2D_bias"], stride, relu6)


def _block_prefix(n: int) -> str:
    return _P + ("expanded_conv" if n == 0 else f"expanded_conv_{n}")


def _features_single(x: np.ndarray, weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Backbone + extra layers for one image [300, 300, 3]; returns the 6 feature maps."""
    feature_maps: list[np.ndarray] = []
    y = _conv(x, weights, _P + "Conv", stride=2, relu6=True)
    for n, expand, stride, residual in _BLOCKS:
        prefix = _block_prefix(n)
        inp = y
        if expand is not None:
            y = _conv(y, weights, prefix + "_expand", stride=1, relu6=True)
            assert y.shape[2] == expand
            if n == 13:
                feature_maps.append(y)  # feature map 0: block 13 expand output
        y = depthwise_conv2d_same(
            y,
            weights[prefix + "_depthwise_depthwise_weights"],
            weights[prefix + "_depthwise_depthwise_bias"],
            stride,
            relu6=True,
        )
        y = _conv(y, weights, prefix + "_project", stride=1, relu6=False)
        if residual:
            y = y + inp
    y = _conv(y, weights, _P + "Conv_1", stride=1, relu6=True)
    feature_maps.append(y)  # feature map 1
    for k, c1, c2 in _EXTRAS:
        y = _conv(y, weights, _P + f"layer_19_1_Conv2d_{k}_1x1_{c1}", stride=1, relu6=True)
        y = _conv(y, weights, _P + f"layer_19_2_Conv2d_{k}_3x3_s2_{c2}", stride=2, relu6=True)
        feature_maps.append(y)  # feature maps 2..5
    return feature_maps


def _heads_single(x: np.ndarray, weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Box encodings [1917, 4] and class logits [1917, 2] of one image [300, 300, 3]."""
    boxes, logits = [], []
    for i, fmap in enumerate(_features_single(x, weights)):
        assert fmap.shape[0] == fmap.shape[1] == GRIDS[i], (i, fmap.shape)
        box = _conv(fmap, weights, f"BoxPredictor_{i}_BoxEncodingPredictor", stride=1, relu6=False)
        cls = _conv(fmap, weights, f"BoxPredictor_{i}_ClassPredictor", stride=1, relu6=False)
        # NHWC memory order -> (row, column, anchor), anchor fastest.
        boxes.append(box.reshape(-1, 4))
        logits.append(cls.reshape(-1, 2))
    return np.concatenate(boxes), np.concatenate(logits)


def forward_reference(
    x: np.ndarray, weights: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Run the whole network in float64.

    Args:
        x: normalised input ``[N, 300, 300, 3]`` (any float dtype).
        weights: as returned by :func:`load_weights`.

    Returns:
        ``(box_encodings [N, 1917, 4], class_logits [N, 1917, 2])``, float64,
        heads concatenated in anchor order (feature map 0..5, then row,
        column, anchor).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected [N, 300, 300, 3], got {x.shape}")
    outs = [_heads_single(img, weights) for img in x]
    box_encodings = np.stack([o[0] for o in outs]).reshape(x.shape[0], NUM_ANCHORS, 4)
    class_logits = np.stack([o[1] for o in outs]).reshape(x.shape[0], NUM_ANCHORS, 2)
    return box_encodings, class_logits


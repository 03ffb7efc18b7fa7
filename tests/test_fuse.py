"""The fusion pass (csrc/fuse.c): which layers fuse is derived from the graph
(an output read only by the next layer may stay unmaterialised; one that
another layer reads must be kept), and a fused block computes what its
layers compute one by one."""

from __future__ import annotations

import numpy as np
import pytest

from ssdface import _core, _testing

BOXES, CLASSES, SPILL0, SPILL1 = 17, 18, 8, 9


@pytest.fixture(scope="module")
def layers():
    return _core.layers()


@pytest.fixture(scope="module")
def fused_steps():
    return [first for first, count in _testing.plan()["steps"] if count == 3]


def test_fused_blocks_are_producer_depthwise_project(layers, fused_steps):
    assert fused_steps  # the large early blocks fuse
    for first in fused_steps:
        ops = [layers[first + i]["op"] for i in range(3)]
        assert ops[1:] == ["depthwise3x3", "conv1x1"]
        assert ops[0] in ("conv1x1", "conv3x3")
        # Each intermediate is read by the next layer alone.
        for i in range(2):
            assert layers[first + i]["readers"] == 1
            assert layers[first + i + 1]["reads"] == first + i
        assert [layers[first + i]["dst"] for i in range(2)] == [SPILL0, SPILL1]
        assert layers[first]["fuse_next"] and layers[first + 1]["fuse_next"]
        assert not layers[first + 2]["fuse_next"]


def test_an_output_another_layer_reads_is_kept(layers, fused_steps):
    fused = {f + i for f in fused_steps for i in range(2)}
    shared = [i for i, L in enumerate(layers) if L["readers"] > 1]
    # The expansion the first heads read (feature map 0) is one of them.
    assert any(layers[i]["weight"].endswith("expanded_conv_13_expand_weights") for i in shared)
    for i in shared:
        assert i not in fused
        assert layers[i]["dst"] < SPILL0  # an arena slot, kept for every reader
    # Heads write the outputs and are never inside a block.
    for i, L in enumerate(layers):
        if L["dst"] in (BOXES, CLASSES):
            assert i not in fused and i - 2 not in fused_steps


def test_the_rule_is_the_graph_not_block_numbers(layers, fused_steps):
    """Every triple the pass fused satisfies the graph rule, and every
    layer not fused was left out for a reason the graph or the size gives."""
    for i in range(len(layers) - 2):
        P, D, J = layers[i:i + 3]
        chain = (D["op"] == "depthwise3x3" and J["op"] == "conv1x1" and D["reads"] == i
                 and J["reads"] == i + 1 and P["readers"] == 1 and D["readers"] == 1
                 and J["dst"] not in (BOXES, CLASSES))
        if i in fused_steps:
            assert chain
        elif chain and P["op"] == "conv1x1":
            h, w, c = P["out_shape"]
            assert h * w * c * 4 <= 1024 * 1024  # too small to pay: whole GEMMs


def test_unfused_plan_has_no_blocks_and_no_spill():
    p = _testing.plan(fuse=False)
    assert all(count == 1 for _, count in p["steps"])
    assert p["spill"] == [0, 0]
    assert len(p["steps"]) == len(_core.layers())


@pytest.mark.parametrize("isa", [i for i in _core.kernel_sets() if i != "reference"])
def test_fused_block_equals_its_layers(isa, fused_steps):
    for first in fused_steps:
        fused, unfused = _testing.fused_block(isa, first, seed=first)
        assert np.isfinite(fused).all()
        # Same kernels, same sums in the same order: the same bits.
        np.testing.assert_array_equal(fused, unfused, err_msg=f"{isa}: block at layer {first}")


def test_fused_block_needs_a_block_kernel(fused_steps):
    with pytest.raises(ValueError, match="no fused block kernel"):
        _testing.fused_block("reference", fused_steps[0])

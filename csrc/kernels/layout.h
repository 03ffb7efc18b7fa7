/* The packed weight layout the kernels read (and pack.c writes into the
 * blob): output channels in panels of SSDF_PANEL, each panel the panel's
 * biases followed by K rows of SSDF_PANEL weights, zero padded past the last
 * channel. K is in_c for a 1x1 conv, 9 * in_c for a 3x3 conv (row index
 * (ky * 3 + kx) * in_c + ci) and 9 for a depthwise conv (the taps). A panel
 * is a multiple of 64 bytes, so every panel is cache-line aligned. A change
 * here changes SSDF_BLOB_VERSION (blob.h). */
#ifndef SSDF_LAYOUT_H
#define SSDF_LAYOUT_H

#include <stddef.h>

#define SSDF_PANEL 16

/* Floats of one panel of a K-row weight matrix (biases included). */
static inline size_t ssdf_panel_floats(size_t k) { return SSDF_PANEL * (k + 1); }
/* Panels holding n output channels. */
static inline size_t ssdf_panel_count(size_t n) { return (n + SSDF_PANEL - 1) / SSDF_PANEL; }

/* The quantized (qu8) layout: uint8 activations, int8 weights per output
 * channel. A panel of SSDF_PANEL output channels is 16 int32 biases (the
 * input zero point folded in), 16 float32 output scales, then the weights:
 * for a GEMM (1x1 and 3x3 convs) K is rounded up to a multiple of
 * SSDF_QU8_KGROUP and each group of 4 reduction rows holds, per channel, its
 * 4 weights side by side (64 bytes: the operand of one vpdpbusd); for a
 * depthwise conv the 9 taps hold 16 weights each. Padding rows, channels and
 * the panel's tail (to a multiple of 64 bytes) are zero. */
#define SSDF_QU8_KGROUP 4
#define SSDF_QU8_HEADER_BYTES (2 * SSDF_PANEL * 4)

/* Reduction length of a GEMM panel: K rounded up to whole groups. */
static inline size_t ssdf_qu8_k4(size_t k) {
    return (k + SSDF_QU8_KGROUP - 1) / SSDF_QU8_KGROUP * SSDF_QU8_KGROUP;
}
/* Bytes of one panel whose weights take `weight_bytes` (16 * k4 for a GEMM,
 * 9 * 16 for a depthwise conv). */
static inline size_t ssdf_qu8_panel_bytes(size_t weight_bytes) {
    return SSDF_QU8_HEADER_BYTES + (weight_bytes + 63) / 64 * 64;
}
/* Byte offset of weight (k, channel j of the panel) in a GEMM panel. */
static inline size_t ssdf_qu8_gemm_at(size_t k, size_t j) {
    return SSDF_QU8_HEADER_BYTES + (k / SSDF_QU8_KGROUP) * (SSDF_PANEL * SSDF_QU8_KGROUP) +
           j * SSDF_QU8_KGROUP + k % SSDF_QU8_KGROUP;
}
/* Byte offset of tap t, channel j of the panel, in a depthwise panel. */
static inline size_t ssdf_qu8_dw_at(size_t t, size_t j) {
    return SSDF_QU8_HEADER_BYTES + t * SSDF_PANEL + j;
}

#endif

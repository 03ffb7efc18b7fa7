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

#endif

/* The quantized kernel interface (qu8: uint8 activations with a zero point,
 * int8 weights per output channel, int32 accumulation), included by
 * kernels.h. The arithmetic is a contract shared with the NumPy simulation
 * (ssdface/quant/): every variant gives the same bytes.
 *
 *   acc[c] = bias[c] + sum over taps and input channels of q_in * w[c]
 *            (int32, exact; padding reads in_zero, the real 0 of the input:
 *            the packer folded -in_zero * sum(w[c]) into bias[c])
 *   f      = (float)acc[c] * scale[c]                 (float32, rounded)
 *   f      = f + (float)(res - res_zero) * res_scale  (with a residual)
 *   f      = min(max(f, out_lo), out_hi)
 *   q      = round_half_even(f) + out_zero            (uint8)
 * or, for an f32 output (the heads): out = (float)acc[c] * scale[c].
 * Each float operation is rounded on its own (no fused multiply-add: the
 * build passes -ffp-contract=off and the vector code multiplies and adds
 * apart). */
#ifndef SSDF_KERNELS_QU8_H
#define SSDF_KERNELS_QU8_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

typedef struct {
    int in_zero;          /* the byte padding reads */
    int out_zero;         /* added after rounding */
    float out_lo, out_hi; /* clamp of the scaled accumulator (relative to out_zero):
                             ReLU6 and the uint8 range together */
    const uint8_t *res;   /* residual tensor (the output's shape, uint8) or NULL */
    int res_zero;
    float res_scale;
    int f32_out; /* 1: `out` is float32 (acc * scale), no clamp, no residual */
} ssdf_qu8_output;

/* The input's quantization, n floats: q = min(max(x * inv, lo), hi), rounded
 * half to even, + zero (lo = -zero and hi = 255 - zero keep it a byte),
 * each float operation rounded on its own. Returns nonzero when some x is
 * NaN or infinite (whose bytes are then unspecified): the engine checks the
 * input in the same pass. */
typedef int (*ssdf_qu8_quantize_fn)(const float *x, size_t n, float inv, float lo, float hi,
                                    int zero, uint8_t *q);

/* One kernel call computes output pixels [m0, m1) and channels [n0, n1) as
 * the f32 kernels do (n0 a multiple of SSDF_PANEL, n1 a multiple or out_c);
 * `w` is the packed qu8 tensor, `out` the whole output tensor (uint8, or
 * float32 with f32_out). `scratch` holds ssdf_qu8_conv_scratch_bytes()
 * bytes, private to the calling thread. */
typedef void (*ssdf_qu8_conv_fn)(const ssdf_conv_params *p, const ssdf_qu8_output *q,
                                 const uint8_t *in, const uint8_t *w, void *out, size_t m0,
                                 size_t m1, int n0, int n1, uint8_t *scratch);

/* im2col budget of the quantized 3x3 conv, and the scratch a call needs:
 * the im2col chunk (at least one tile of rows), a row of in_zero bytes for
 * the depthwise borders (then the depthwise's tap rows, VNNI variants),
 * and a padded copy of A rows when in_c is not a
 * multiple of SSDF_QU8_KGROUP. */
#define SSDF_QU8_IM2COL_BYTES (128 * 1024)
#define SSDF_QU8_MAX_TILE_M 16

static inline size_t ssdf_qu8_conv_scratch_bytes(int in_c) {
    const size_t k4 = ssdf_qu8_k4(9 * (size_t)in_c);
    size_t im2col = (size_t)SSDF_QU8_MAX_TILE_M * k4;
    if (im2col < SSDF_QU8_IM2COL_BYTES) im2col = SSDF_QU8_IM2COL_BYTES;
    return im2col + ((size_t)in_c + 64);
}

/* A fused block in qu8 (as ssdf_f32_block): producer (1x1 expand, or a 3x3
 * conv), depthwise 3x3, then 1x1 project (its output stage's res, the
 * residual, may be set). The producer's and depthwise's uint8 outputs never
 * leave the thread's scratch. Fusable when the GEMM rows are whole 4-byte
 * groups: the expanded channels, and a 1x1 producer's inputs, a multiple of
 * SSDF_QU8_KGROUP (ssdf_qu8_block_ok). */
typedef struct {
    int producer_k; /* 1 or 3 */
    ssdf_conv_params producer, dw, project;
    ssdf_qu8_output q_producer, q_dw, q_project;
    const uint8_t *in;
    const uint8_t *w_producer, *w_dw, *w_project;
    uint8_t *out;
} ssdf_qu8_block;

/* Depthwise output rows [y0, y1) of the block and the matching project
 * rows; `scratch` holds ssdf_qu8_block_scratch_bytes(), private to the
 * calling thread. */
typedef void (*ssdf_qu8_block_fn)(const ssdf_qu8_block *b, int y0, int y1, uint8_t *scratch);

static inline int ssdf_qu8_block_ok(const ssdf_qu8_block *b) {
    return b->producer.out_c % SSDF_QU8_KGROUP == 0 &&
           (b->producer_k == 3 || b->producer.in_c % SSDF_QU8_KGROUP == 0);
}

/* Pixels around a planar depthwise row (AVX-512 variants, qu8_driver.h):
 * one before, three after. */
#define SSDF_QU8_PLANAR_PAD 4

/* Ring of producer rows, depthwise band, zero row, the 3x3 producer's
 * im2col row (kernels.h: SSDF_RING_ROWS, ssdf_band_rows), and the ring's
 * depthwise tap rows (4 bytes per channel and output column; the VNNI
 * variants). */
static inline size_t ssdf_qu8_block_scratch_bytes(const ssdf_qu8_block *b, int ring_rows,
                                                  int band_rows) {
    const size_t wp = (size_t)b->producer.out_w, e = (size_t)b->producer.out_c;
    return (size_t)ring_rows * wp * e + (size_t)band_rows * b->dw.out_w * e + e + 64 +
           wp * ssdf_qu8_k4(9 * (size_t)b->producer.in_c) + 64 +
           (size_t)ring_rows * b->dw.out_w * e * 4 +
           (size_t)ring_rows * (wp + SSDF_QU8_PLANAR_PAD) * e;
}

/* The output stage of one channel, the definition every variant follows. */
static inline float ssdf_qu8_scaled(int32_t acc, float scale, const ssdf_qu8_output *q,
                                    int res) {
    float f = (float)acc * scale;
    if (q->res) {
        const float r = (float)(res - q->res_zero) * q->res_scale;
        f = f + r;
    }
    return f;
}

static inline uint8_t ssdf_qu8_requantize(float f, const ssdf_qu8_output *q) {
    if (f < q->out_lo) f = q->out_lo;
    if (f > q->out_hi) f = q->out_hi;
    return (uint8_t)((int)lrintf(f) + q->out_zero);
}

#endif

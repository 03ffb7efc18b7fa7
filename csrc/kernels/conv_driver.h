/* The fast convolution kernels, written once over a 16-lane vector type.
 *
 * An ISA file (scalar.c, avx2.c, avx512.c) defines the vector type and its
 * operations, the tile shape, then includes this file and names its table
 * with SSDF_DEFINE_KERNEL_TABLE. Required definitions:
 *
 *   VEC                    16 floats (one zmm, two ymm, or a plain array)
 *   vload(p)               16 floats from p
 *   vloadn(p, n)           the first n floats from p, the rest zero
 *   vbcast(x)              x in every lane
 *   vfma(a, b, c)          a * b + c
 *   vadd(a, b)             a + b
 *   vrelu6(v)              min(max(v, 0), 6)
 *   vstore(p, v)           16 floats to p
 *   vstoren(p, v, n)       the first n floats to p
 *   TILE_M                 output pixels per GEMM tile
 *   TILE_P                 16-channel panels per GEMM tile (1 or 2)
 *
 * GEMM view of a 1x1 conv: A = input [pixels][in_c], B = packed weights
 * (kernels.h), C = output [pixels][out_c]. A 3x3 conv is the same GEMM over
 * an im2col copy of a chunk of A rows. */

#include <string.h>

#include "kernels.h"

#define FORCE_INLINE static inline __attribute__((always_inline))

/* Keep the B panels a block of columns reads under this size, so that they
 * stay in L2 while every A tile of the range streams past them. */
#define B_BLOCK_BYTES (256 * 1024)

/* C[mr x 16*np] (cols valid columns) = A[mr x K] * B-panels (+ bias, + res,
 * ReLU6). mr and np are compile-time constants at every call site, so the
 * accumulators live in registers. */
FORCE_INLINE void gemm_tile(const int mr, const int np, size_t K, const float *a, size_t lda,
                            const float *w, size_t pstride, float *c, size_t ldc,
                            const float *res, int relu6, int cols) {
    VEC acc[TILE_M][TILE_P];
#pragma GCC unroll 16
    for (int j = 0; j < np; j++) {
        const VEC bias = vload(w + j * pstride);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) acc[r][j] = bias;
    }
    const float *b = w + SSDF_PANEL;
    for (size_t k = 0; k < K; k++, b += SSDF_PANEL) {
        VEC bk[TILE_P];
#pragma GCC unroll 16
        for (int j = 0; j < np; j++) bk[j] = vload(b + j * pstride);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            const VEC ar = vbcast(a[r * lda + k]);
#pragma GCC unroll 16
            for (int j = 0; j < np; j++) acc[r][j] = vfma(ar, bk[j], acc[r][j]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 16
        for (int j = 0; j < np; j++) {
            const int n = cols - SSDF_PANEL * j; /* >= 1 by construction */
            VEC v = acc[r][j];
            float *dst = c + r * ldc + SSDF_PANEL * j;
            if (n >= SSDF_PANEL) {
                if (res) v = vadd(v, vload(res + r * ldc + SSDF_PANEL * j));
                if (relu6) v = vrelu6(v);
                vstore(dst, v);
            } else {
                if (res) v = vadd(v, vloadn(res + r * ldc + SSDF_PANEL * j, n));
                if (relu6) v = vrelu6(v);
                vstoren(dst, v, n);
            }
        }
    }
}

/* Instantiate gemm_tile for the runtime mr (1..TILE_M) and panel count. */
#define TILE_CASE(MR)                                                                       \
    case MR:                                                                                \
        if (np == 1)                                                                        \
            gemm_tile(MR, 1, K, a, lda, w, pstride, c, ldc, res, relu6, cols);              \
        else                                                                                \
            gemm_tile(MR, TILE_P, K, a, lda, w, pstride, c, ldc, res, relu6, cols);         \
        break;

static void gemm_tile_any(int mr, int np, size_t K, const float *a, size_t lda, const float *w,
                          size_t pstride, float *c, size_t ldc, const float *res, int relu6,
                          int cols) {
    switch (mr) {
        TILE_CASE(1)
#if TILE_M >= 2
        TILE_CASE(2)
#endif
#if TILE_M >= 3
        TILE_CASE(3)
#endif
#if TILE_M >= 4
        TILE_CASE(4)
#endif
#if TILE_M >= 5
        TILE_CASE(5)
#endif
#if TILE_M >= 6
        TILE_CASE(6)
#endif
#if TILE_M >= 7
        TILE_CASE(7)
#endif
#if TILE_M >= 8
        TILE_CASE(8)
#endif
#if TILE_M >= 9
        TILE_CASE(9)
#endif
#if TILE_M >= 10
        TILE_CASE(10)
#endif
#if TILE_M >= 11
        TILE_CASE(11)
#endif
#if TILE_M >= 12
        TILE_CASE(12)
#endif
#if TILE_M > 12 || TILE_M > SSDF_MAX_TILE_M
#error "TILE_M above 12 needs more cases"
#endif
    default: break;
    }
}

/* Rows [0, M) of C (ldc = out_c) for output channels [n0, n1). Columns are
 * blocked so that a block's B panels stay in L2 across all row tiles. */
static void gemm(size_t M, size_t K, const float *a, size_t lda, const float *w, float *c,
                 size_t ldc, const float *res, int relu6, int n0, int n1) {
    const size_t pstride = ssdf_panel_floats(K);
    const int step = SSDF_PANEL * TILE_P;
    int block = (int)(B_BLOCK_BYTES / (pstride * sizeof(float))) / TILE_P * step;
    if (block < step) block = step;
    for (int nb = n0; nb < n1; nb += block) {
        const int nb1 = n1 - nb < block ? n1 : nb + block;
        for (size_t m = 0; m < M; m += TILE_M) {
            const int mr = M - m < TILE_M ? (int)(M - m) : TILE_M;
            for (int n = nb; n < nb1; n += step) {
                const int cols = nb1 - n < step ? nb1 - n : step;
                const int np = (cols + SSDF_PANEL - 1) / SSDF_PANEL;
                gemm_tile_any(mr, np, K, a + m * lda, lda, w + (size_t)(n / SSDF_PANEL) * pstride,
                              pstride, c + m * ldc + n, ldc, res ? res + m * ldc + n : NULL, relu6,
                              cols);
            }
        }
    }
}

static void conv1x1(const ssdf_conv_params *p, const float *in, const float *w,
                    const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                    float *scratch) {
    const size_t K = (size_t)p->in_c, N = (size_t)p->out_c;
    (void)scratch;
    gemm(m1 - m0, K, in + m0 * K, K, w, out + m0 * N, N, res ? res + m0 * N : NULL, p->relu6, n0,
         n1);
}

/* 3x3 conv: im2col a chunk of output pixels into scratch (zeros where the
 * window leaves the image), then the same GEMM. */
static void conv3x3(const ssdf_conv_params *p, const float *in, const float *w,
                    const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                    float *scratch) {
    const size_t C = (size_t)p->in_c, K = 9 * C, N = (size_t)p->out_c;
    size_t chunk = SSDF_IM2COL_FLOATS / K;
    (void)res;
    if (chunk < TILE_M) chunk = TILE_M;
    for (size_t m = m0; m < m1; m += chunk) {
        const size_t rows = m1 - m < chunk ? m1 - m : chunk;
        for (size_t r = 0; r < rows; r++) {
            const int oy = (int)((m + r) / p->out_w), ox = (int)((m + r) % p->out_w);
            float *dst = scratch + r * K;
            for (int ky = 0; ky < 3; ky++) {
                const int iy = oy * p->stride + ky - p->pad_top;
                for (int kx = 0; kx < 3; kx++, dst += C) {
                    const int ix = ox * p->stride + kx - p->pad_left;
                    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w)
                        memset(dst, 0, C * sizeof(float));
                    else
                        memcpy(dst, in + ((size_t)iy * p->in_w + ix) * C, C * sizeof(float));
                }
            }
        }
        gemm(rows, K, scratch, K, w, out + m * N, N, NULL, p->relu6, n0, n1);
    }
}

/* Depthwise 3x3 over output columns [ox0, ox1) of row oy, for the 16 (or
 * `cols` < 16 when !FULL) channels at channel offset g. The nine weight
 * vectors stay in registers across the row. */
FORCE_INLINE void dw_row(const int full, const ssdf_conv_params *p, const float *in,
                         const float *wp, float *out, int oy, int ox0, int ox1, int g, int cols) {
    const size_t C = (size_t)p->in_c;
    const int iy0 = oy * p->stride - p->pad_top;
    const float *rows[3];
    VEC wt[9];
    const VEC bias = vload(wp);
    for (int t = 0; t < 9; t++) wt[t] = vload(wp + SSDF_PANEL * (t + 1));
    for (int ky = 0; ky < 3; ky++) {
        const int iy = iy0 + ky;
        rows[ky] = (iy >= 0 && iy < p->in_h) ? in + (size_t)iy * p->in_w * C + g : NULL;
    }
#define DW_LOAD(ptr) (full ? vload(ptr) : vloadn(ptr, cols))
    for (int ox = ox0; ox < ox1; ox++) {
        const int ix0 = ox * p->stride - p->pad_left;
        VEC acc = bias;
        if (ix0 >= 0 && ix0 + 2 < p->in_w) { /* interior: no column checks */
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ky++) {
                if (!rows[ky]) continue;
                const float *s = rows[ky] + (size_t)ix0 * C;
                acc = vfma(DW_LOAD(s), wt[3 * ky], acc);
                acc = vfma(DW_LOAD(s + C), wt[3 * ky + 1], acc);
                acc = vfma(DW_LOAD(s + 2 * C), wt[3 * ky + 2], acc);
            }
        } else {
            for (int ky = 0; ky < 3; ky++) {
                if (!rows[ky]) continue;
                for (int kx = 0; kx < 3; kx++) {
                    const int ix = ix0 + kx;
                    if (ix < 0 || ix >= p->in_w) continue;
                    acc = vfma(DW_LOAD(rows[ky] + (size_t)ix * C), wt[3 * ky + kx], acc);
                }
            }
        }
        if (p->relu6) acc = vrelu6(acc);
        float *dst = out + ((size_t)oy * p->out_w + ox) * C + g;
        if (full)
            vstore(dst, acc);
        else
            vstoren(dst, acc, cols);
    }
#undef DW_LOAD
}

static void dw3x3(const ssdf_conv_params *p, const float *in, const float *w, const float *res,
                  float *out, size_t m0, size_t m1, int n0, int n1, float *scratch) {
    const size_t ps = ssdf_panel_floats(9);
    (void)res, (void)scratch;
    size_t m = m0;
    while (m < m1) { /* one row segment at a time */
        const int oy = (int)(m / p->out_w), ox0 = (int)(m % p->out_w);
        const int ox1 = (size_t)(p->out_w - ox0) < m1 - m ? p->out_w : ox0 + (int)(m1 - m);
        for (int g = n0; g < n1; g += SSDF_PANEL) {
            const float *wp = w + (size_t)(g / SSDF_PANEL) * ps;
            if (n1 - g >= SSDF_PANEL)
                dw_row(1, p, in, wp, out, oy, ox0, ox1, g, SSDF_PANEL);
            else
                dw_row(0, p, in, wp, out, oy, ox0, ox1, g, n1 - g);
        }
        m += (size_t)(ox1 - ox0);
    }
}

#define SSDF_DEFINE_KERNEL_TABLE(var, name) \
    const ssdf_kernel_table var = {name, TILE_M, conv3x3, dw3x3, conv1x1};

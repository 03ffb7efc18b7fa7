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
 *   vload_u8(p)            16 bytes from p as floats
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

/* A GEMM tile is built from three steps (always inlined with constant mr
 * and np, so that the accumulators live in registers):
 *   tile_init:       acc = bias of each panel
 *   tile_accumulate: acc += A[mr x K] * B[K x 16*np] (B: panel rows from b)
 *   tile_store:      (+ res) (ReLU6) and store the `cols` valid columns. */
FORCE_INLINE void tile_init(const int mr, const int np, VEC acc[TILE_M][TILE_P],
                            const float *w, size_t pstride) {
#pragma GCC unroll 16
    for (int j = 0; j < np; j++) {
        const VEC bias = vload(w + j * pstride);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) acc[r][j] = bias;
    }
}

FORCE_INLINE void tile_accumulate(const int mr, const int np, VEC acc[TILE_M][TILE_P], size_t K,
                                  const float *a, size_t lda, const float *b, size_t pstride) {
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
}

FORCE_INLINE void tile_store(const int mr, const int np, VEC acc[TILE_M][TILE_P], float *c,
                             size_t ldc, const float *res, int relu6, int cols) {
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

/* C[mr x 16*np] (cols valid columns) = A[mr x K] * B-panels (+ bias, + res,
 * ReLU6). */
FORCE_INLINE void gemm_tile(const int mr, const int np, size_t K, const float *a, size_t lda,
                            const float *w, size_t pstride, float *c, size_t ldc,
                            const float *res, int relu6, int cols) {
    VEC acc[TILE_M][TILE_P];
    tile_init(mr, np, acc, w, pstride);
    tile_accumulate(mr, np, acc, K, a, lda, w + SSDF_PANEL, pstride);
    tile_store(mr, np, acc, c, ldc, res, relu6, cols);
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

static void f32_conv1x1(const ssdf_conv_params *p, const float *in, const float *w,
                    const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                    float *scratch) {
    const size_t K = (size_t)p->in_c, N = (size_t)p->out_c;
    (void)scratch;
    gemm(m1 - m0, K, in + m0 * K, K, w, out + m0 * N, N, res ? res + m0 * N : NULL, p->relu6, n0,
         n1);
}

/* Copy the 3x3xC window of output pixel (oy, ox) into dst (9*C floats),
 * zeros where it leaves the image. Plain loops, not memcpy: C is 3 for the
 * first layer, where call overhead would dominate. */
static void im2col_pixel(const ssdf_conv_params *p, const float *in, int oy, int ox, float *dst) {
    const size_t C = (size_t)p->in_c;
    for (int ky = 0; ky < 3; ky++) {
        const int iy = oy * p->stride + ky - p->pad_top;
        for (int kx = 0; kx < 3; kx++, dst += C) {
            const int ix = ox * p->stride + kx - p->pad_left;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (size_t c = 0; c < C; c++) dst[c] = 0.0f;
            } else {
                const float *src = in + ((size_t)iy * p->in_w + ix) * C;
                for (size_t c = 0; c < C; c++) dst[c] = src[c];
            }
        }
    }
}

/* 3x3 conv, general path: im2col a chunk of output pixels into scratch, then
 * the same (column-blocked) GEMM as the 1x1 conv. Here and in
 * conv3x3_direct, `out` receives output pixel m0 (so a caller can direct
 * rows into a buffer of its own). */
static void conv3x3_im2col(const ssdf_conv_params *p, const float *in, const float *w,
                           float *out, size_t m0, size_t m1, int n0, int n1, float *scratch) {
    const size_t K = 9 * (size_t)p->in_c, N = (size_t)p->out_c;
    size_t chunk = SSDF_IM2COL_FLOATS / K;
    if (chunk < TILE_M) chunk = TILE_M;
    for (size_t m = m0; m < m1; m += chunk) {
        const size_t rows = m1 - m < chunk ? m1 - m : chunk;
        for (size_t r = 0; r < rows; r++)
            im2col_pixel(p, in, (int)((m + r) / p->out_w), (int)((m + r) % p->out_w),
                         scratch + r * K);
        gemm(rows, K, scratch, K, w, out + (m - m0) * N, N, NULL, p->relu6, n0, n1);
    }
}

/* A tile of output pixels along one row whose windows lie inside the image:
 * the GEMM reads A straight from the input, one 3*C-long segment per kernel
 * row (kx and c are contiguous in NHWC), pixels `lda` = stride*C apart. */
FORCE_INLINE void direct_tile(const int mr, const int np, size_t C, const float *a, size_t lda,
                              size_t row_stride, const float *w, size_t pstride, float *c,
                              size_t ldc, int relu6, int cols) {
    VEC acc[TILE_M][TILE_P];
    tile_init(mr, np, acc, w, pstride);
    for (int ky = 0; ky < 3; ky++) /* B rows (ky*3 + kx)*C + c: 3*C per kernel row */
        tile_accumulate(mr, np, acc, 3 * C, a + ky * row_stride, lda,
                        w + SSDF_PANEL * (1 + 3 * C * ky), pstride);
    tile_store(mr, np, acc, c, ldc, NULL, relu6, cols);
}

/* 3x3 conv with a short reduction (K = 9*C <= SSDF_DIRECT_MAX_K: the first layer):
 * interior pixels go through direct_tile, border pixels through im2col. */
static void conv3x3_direct(const ssdf_conv_params *p, const float *in, const float *w,
                           float *out, size_t m0, size_t m1, int n0, int n1, float *scratch) {
    const size_t C = (size_t)p->in_c, K = 9 * C, N = (size_t)p->out_c;
    const size_t pstride = ssdf_panel_floats(K), lda = (size_t)p->stride * C;
    const size_t row_stride = (size_t)p->in_w * C;
    const int step = SSDF_PANEL * TILE_P;
    const int lo = (p->pad_left + p->stride - 1) / p->stride;
    const int hi = (p->in_w - 3 + p->pad_left) / p->stride + 1;
    size_t m = m0;
    while (m < m1) {
        const int oy = (int)(m / p->out_w), ox0 = (int)(m % p->out_w);
        const int ox1 = (size_t)(p->out_w - ox0) < m1 - m ? p->out_w : ox0 + (int)(m1 - m);
        const int iy0 = oy * p->stride - p->pad_top;
        const int inside = iy0 >= 0 && iy0 + 2 < p->in_h;
        const int q0 = inside ? (ox0 > lo ? ox0 : lo) : ox1;
        const int q1 = inside ? (ox1 < hi ? ox1 : hi) : ox1;
        /* output pixel (oy, ox) goes to out[(oy * out_w + ox - m0) * N] */
        const size_t row_m = (size_t)oy * p->out_w;
        for (int ox = q0; ox < q1; ox += TILE_M) {
            const int mr = q1 - ox < TILE_M ? q1 - ox : TILE_M;
            const float *a = in + ((size_t)iy0 * p->in_w + (size_t)(ox * p->stride - p->pad_left)) * C;
            for (int n = n0; n < n1; n += step) {
                const int cols = n1 - n < step ? n1 - n : step;
                const int np = (cols + SSDF_PANEL - 1) / SSDF_PANEL;
                const float *wn = w + (size_t)(n / SSDF_PANEL) * pstride;
                float *c = out + (row_m + (size_t)ox - m0) * N + n;
#define DIRECT_CASE(MR)                                                                     \
    case MR:                                                                                \
        if (np == 1)                                                                        \
            direct_tile(MR, 1, C, a, lda, row_stride, wn, pstride, c, N, p->relu6, cols);   \
        else                                                                                \
            direct_tile(MR, TILE_P, C, a, lda, row_stride, wn, pstride, c, N, p->relu6, cols); \
        break;
                switch (mr) {
                    DIRECT_CASE(TILE_M)
                default:
                    for (int r = 0; r < mr; r++) /* a short tail: one pixel at a time */
                        direct_tile(1, TILE_P, C, a + r * lda, lda, row_stride, wn, pstride,
                                    c + r * N, N, p->relu6, cols);
                    break;
                }
#undef DIRECT_CASE
            }
        }
        /* Border pixels of the row (all of it when a window row is outside). */
        for (int ox = ox0; ox < ox1; ox++) {
            if (ox >= q0 && ox < q1) continue;
            im2col_pixel(p, in, oy, ox, scratch);
            gemm(1, K, scratch, K, w, out + (row_m + (size_t)ox - m0) * N, N, NULL, p->relu6, n0,
                 n1);
        }
        m += (size_t)(ox1 - ox0);
    }
}

static void f32_conv3x3(const ssdf_conv_params *p, const float *in, const float *w,
                    const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                    float *scratch) {
    (void)res;
    if (9 * p->in_c <= SSDF_DIRECT_MAX_K)
        conv3x3_direct(p, in, w, out + m0 * p->out_c, m0, m1, n0, n1, scratch);
    else
        conv3x3_im2col(p, in, w, out + m0 * p->out_c, m0, m1, n0, n1, scratch);
}

/* The depthwise kernel, the fused block and the resize rows, over the same
 * vector type, then SSDF_DEFINE_KERNEL_TABLE. */
#include "dw_block_driver.h"

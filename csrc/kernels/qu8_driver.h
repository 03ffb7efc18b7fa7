/* The quantized (qu8) kernels, written once over an ISA's integer vector
 * operations (kernels_qu8.h gives the arithmetic; layout.h the packed
 * weights). An ISA file defines, then includes this file:
 *
 *   QI                 16 int32 lanes (16 output channels)
 *   QF                 16 float32 lanes
 *   qi_load(p)         16 int32 from p
 *   qi_bcast(x)        x in every lane
 *   qi_add(a, b), qi_sub(a, b), qi_mul(a, b)   lane-wise, int32
 *   qi_u8(p, n)        the first n (1..16) bytes at p, zero-extended; the rest 0
 *   qi_s8(p)           16 int8 at p, sign-extended
 *   qi_store_u8(p, v, n)   the low bytes of the first n lanes (values in 0..255)
 *   qf_cvt(v)          int32 -> float32 (round to nearest even, like (float)x)
 *   qf_load(p), qf_bcast(x), qf_mul, qf_add, qf_max, qf_min
 *   qf_round(v)        float32 -> int32, round half to even (like lrintf)
 *   qf_store(p, v, n)  the first n floats to p
 *   QACC, QA, QB       a GEMM accumulator of 16 channels for one pixel, one
 *                      broadcast of 4 input bytes, one 64-byte weight group
 *   qacc_init(bias), qa_load(p), qb_load(p), qacc_dot(acc, a, b), qacc_sum(acc) -> QI
 *   QTILE_M, QTILE_P   pixels and 16-channel panels per GEMM tile
 *
 * and, optionally (QDW_TAPS3; the VNNI variants), the depthwise interior
 * through the dot-product instruction:
 *   QT, QTC            16 4-byte groups; the shuffle controls qt_taps3 needs
 *   qt_ctrl()          those controls (once per row)
 *   qt_taps3p(c, a, b, e)  group i = the bytes a[i], b[i], e[i], 0
 *   qt_dot(acc, a, w)  acc + the 4-byte dot products of a (uint8) and w (int8)
 *   qt_load(p), qt_store(p, t)   64 bytes
 *
 * and, optionally (QDW_PLANAR; AVX-512), the depthwise from
 * planar rows (one panel's 16 channels of every pixel in a run):
 *   QTG, qt_gctrl()    the controls qt_gather4 needs
 *   qt_gather4(g, p)   the 4 pixels' 16-byte slices at p as 16 groups:
 *                      group c = channel c of pixels 0..3
 *   qt_shift1(w)       each group's bytes one place up: (a, b, c, 0) -> (0, a, b, c)
 *
 * A GEMM row of A is read 4 bytes at a time, so its length must be a
 * multiple of SSDF_QU8_KGROUP: the 3x3 conv builds such rows (im2col) and
 * the 1x1 conv copies rows whose channel count is not. */

#include <string.h>

#ifndef FORCE_INLINE
#define FORCE_INLINE static inline __attribute__((always_inline))
#endif

/* Panel bytes of a packed qu8 tensor. */
static inline size_t q_gemm_panel(size_t k4) { return ssdf_qu8_panel_bytes(SSDF_PANEL * k4); }
static inline size_t q_dw_panel(void) { return ssdf_qu8_panel_bytes(9 * SSDF_PANEL); }

/* A panel's 16 requantization scales (layout.h). */
FORCE_INLINE QF q_scale(const uint8_t *panel) {
    return qf_load((const float *)(panel + SSDF_PANEL * 4));
}

/* The uint8 output stage's per-call constants, in registers: a loop that
 * stores bytes would otherwise reload them from *q (the stores may alias
 * it; a perf profile of the depthwise showed the reloads). */
typedef struct {
    QF lo, hi;
    QI zero;
    int f32;
} QOUT;
FORCE_INLINE QOUT q_out_consts(const ssdf_qu8_output *q) {
    QOUT k;
    k.lo = qf_bcast(q->out_lo), k.hi = qf_bcast(q->out_hi), k.zero = qi_bcast(q->out_zero);
    k.f32 = q->f32_out;
    return k;
}

/* Clamp, round, add the zero point, store n bytes: f is the scaled sum. */
FORCE_INLINE void q_store_u8(QF f, const QOUT *k, uint8_t *out, int n) {
    f = qf_min(qf_max(f, k->lo), k->hi);
    qi_store_u8(out, qi_add(qf_round(f), k->zero), n);
}

/* The output stage of one pixel's 16 (or n) channels: see kernels_qu8.h. */
FORCE_INLINE void q_out_k(QI acc, const uint8_t *panel, const ssdf_qu8_output *q,
                          const QOUT *k, const uint8_t *res, void *out, int n) {
    QF f = qf_mul(qf_cvt(acc), q_scale(panel));
    if (k->f32) {
        qf_store((float *)out, f, n);
        return;
    }
    if (res) {
        const QI r = qi_sub(qi_u8(res, n), qi_bcast(q->res_zero));
        f = qf_add(f, qf_mul(qf_cvt(r), qf_bcast(q->res_scale)));
    }
    q_store_u8(f, k, (uint8_t *)out, n);
}

FORCE_INLINE void q_out(QI acc, const uint8_t *panel, const ssdf_qu8_output *q,
                        const uint8_t *res, void *out, int n) {
    const QOUT k = q_out_consts(q);
    q_out_k(acc, panel, q, &k, res, out, n);
}

/* C[mr x 16*np] = A[mr x K4] * panels (cols valid columns). `c` and `res`
 * point at the tile's first element; ldc (the pixel stride) is in elements;
 * esize is 1 (uint8 out) or 4 (float out); cps is the bytes from one
 * 16-channel panel of a pixel to the next: 16 * esize in NHWC, more in
 * planar rows (then no residual: `res` is NHWC, ldc elements a pixel). */
FORCE_INLINE void qgemm_tile(const int mr, const int np, size_t k4, const uint8_t *a, size_t lda,
                             const uint8_t *w, size_t pstride, uint8_t *c, size_t ldc,
                             size_t esize, size_t cps, const uint8_t *res,
                             const ssdf_qu8_output *q, int cols) {
    QACC acc[QTILE_M][QTILE_P];
#pragma GCC unroll 16
    for (int j = 0; j < np; j++) {
        const QACC bias = qacc_init((const int32_t *)(w + j * pstride));
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) acc[r][j] = bias;
    }
    const uint8_t *b = w + SSDF_QU8_HEADER_BYTES;
    for (size_t k = 0; k < k4; k += SSDF_QU8_KGROUP, b += SSDF_PANEL * SSDF_QU8_KGROUP) {
        QB bk[QTILE_P];
#pragma GCC unroll 16
        for (int j = 0; j < np; j++) bk[j] = qb_load(b + j * pstride);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            const QA ar = qa_load(a + r * lda + k);
#pragma GCC unroll 16
            for (int j = 0; j < np; j++) acc[r][j] = qacc_dot(acc[r][j], ar, bk[j]);
        }
    }
    const QOUT k = q_out_consts(q);
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 16
        for (int j = 0; j < np; j++) {
            const int n = cols - SSDF_PANEL * j;
            const size_t at = r * ldc + SSDF_PANEL * j;
            q_out_k(qacc_sum(acc[r][j]), w + j * pstride, q, &k, res ? res + at : NULL,
                    c + r * ldc * esize + j * cps, n < SSDF_PANEL ? n : SSDF_PANEL);
        }
}

#define QTILE_CASE(MR)                                                                   \
    case MR:                                                                             \
        if (np == 1)                                                                     \
            qgemm_tile(MR, 1, k4, a, lda, w, pstride, c, ldc, esize, cps, res, q, cols); \
        else                                                                             \
            qgemm_tile(MR, QTILE_P, k4, a, lda, w, pstride, c, ldc, esize, cps, res, q,   \
                       cols);                                                            \
        break;

static void qgemm_tile_any(int mr, int np, size_t k4, const uint8_t *a, size_t lda,
                           const uint8_t *w, size_t pstride, uint8_t *c, size_t ldc, size_t esize,
                           size_t cps, const uint8_t *res, const ssdf_qu8_output *q, int cols) {
    switch (mr) {
        QTILE_CASE(1)
#if QTILE_M >= 2
        QTILE_CASE(2)
#endif
#if QTILE_M >= 3
        QTILE_CASE(3)
#endif
#if QTILE_M >= 4
        QTILE_CASE(4)
#endif
#if QTILE_M >= 5
        QTILE_CASE(5)
#endif
#if QTILE_M >= 6
        QTILE_CASE(6)
#endif
#if QTILE_M >= 7
        QTILE_CASE(7)
#endif
#if QTILE_M >= 8
        QTILE_CASE(8)
#endif
#if QTILE_M > 8 || QTILE_M > SSDF_QU8_MAX_TILE_M
#error "QTILE_M above 8 needs more cases"
#endif
    default: break;
    }
}

/* Rows [0, M) of the output (pixel m0 of the call at `c`), channels
 * [n0, n1), columns blocked so a block's panels stay in L2. ldc, esize and
 * cps as in qgemm_tile. */
static void qgemm(size_t M, size_t k4, const uint8_t *a, size_t lda, const uint8_t *w, uint8_t *c,
                  size_t ldc, size_t esize, size_t cps, const uint8_t *res,
                  const ssdf_qu8_output *q, int n0, int n1) {
    const size_t pstride = q_gemm_panel(k4);
    const int step = SSDF_PANEL * QTILE_P;
    int block = (int)((256 * 1024) / pstride) / QTILE_P * step;
    if (block < step) block = step;
    for (int nb = n0; nb < n1; nb += block) {
        const int nb1 = n1 - nb < block ? n1 : nb + block;
        for (size_t m = 0; m < M; m += QTILE_M) {
            const int mr = M - m < QTILE_M ? (int)(M - m) : QTILE_M;
            for (int n = nb; n < nb1; n += step) {
                const int cols = nb1 - n < step ? nb1 - n : step;
                const int np = (cols + SSDF_PANEL - 1) / SSDF_PANEL;
                const size_t at = m * ldc + (size_t)n;
                qgemm_tile_any(mr, np, k4, a + m * lda, lda,
                               w + (size_t)(n / SSDF_PANEL) * pstride, pstride,
                               c + m * ldc * esize + (size_t)(n / SSDF_PANEL) * cps, ldc, esize,
                               cps, res ? res + at : NULL, q, cols);
            }
        }
    }
}

/* The GEMM hook: a variant with a GEMM of its own (amx.c) declares it with
 * qgemm's signature and defines QU8_GEMM as its name before including this
 * file; from here on (the 1x1 and 3x3 convs and the fused block) qgemm means
 * that one. The variant #undefs qgemm after the include to call the one
 * above, its fallback. */
#ifdef QU8_GEMM
#define qgemm QU8_GEMM
#endif

static size_t q_esize(const ssdf_qu8_output *q) { return q->f32_out ? sizeof(float) : 1; }

static void qu8_conv1x1(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                        const uint8_t *w, void *out, size_t m0, size_t m1, int n0, int n1,
                        uint8_t *scratch) {
    const size_t K = (size_t)p->in_c, N = (size_t)p->out_c, k4 = ssdf_qu8_k4(K);
    const size_t es = q_esize(q);
    uint8_t *o = (uint8_t *)out + m0 * N * es;
    const uint8_t *res = q->res ? q->res + m0 * N : NULL;
    if (k4 == K) {
        qgemm(m1 - m0, k4, in + m0 * K, K, w, o, N, es, SSDF_PANEL * es, res, q, n0, n1);
        return;
    }
    /* Rows of in_c bytes are not whole groups: copy chunks padded with
     * zeros (their weights are zero too). */
    const size_t chunk = SSDF_QU8_IM2COL_BYTES / k4;
    for (size_t m = m0; m < m1; m += chunk) {
        const size_t rows = m1 - m < chunk ? m1 - m : chunk;
        for (size_t r = 0; r < rows; r++) {
            memcpy(scratch + r * k4, in + (m + r) * K, K);
            memset(scratch + r * k4 + K, 0, k4 - K);
        }
        qgemm(rows, k4, scratch, k4, w, o + (m - m0) * N * es, N, es, SSDF_PANEL * es,
              res ? res + (m - m0) * N : NULL, q, n0, n1);
    }
}

/* The 3x3 window of output pixel (oy, ox) as one GEMM row of k4 bytes:
 * in_zero where it leaves the image, zeros past 9 * C. A window row inside
 * the image is one copy of 3 * C contiguous bytes (NHWC). */
static inline void q_im2col_pixel(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                           int oy, int ox, size_t k4, uint8_t *dst) {
    const size_t C = (size_t)p->in_c;
    const int ix0 = ox * p->stride - p->pad_left;
    const int cols_inside = ix0 >= 0 && ix0 + 2 < p->in_w;
    uint8_t *d = dst;
    const int iy0 = oy * p->stride - p->pad_top;
    if (C == 3 && k4 == 28 && cols_inside && iy0 >= 0 && iy0 + 2 < p->in_h) {
        /* The first layer (RGB) inside the image: 3 x 9 bytes and a zero, by
         * fixed-size moves (the first two rows' 16-byte reads stay inside the
         * tensor: a row follows them; each overlaps the next copy). */
        const size_t rb = (size_t)p->in_w * 3;
        const uint8_t *r = in + (size_t)iy0 * rb + (size_t)ix0 * 3;
        memcpy(d, r, 16);
        memcpy(d + 9, r + rb, 16);
        memcpy(d + 18, r + 2 * rb, 8);
        d[26] = r[2 * rb + 8];
        d[27] = 0;
        return;
    }
    for (int ky = 0; ky < 3; ky++) {
        const int iy = oy * p->stride + ky - p->pad_top;
        const uint8_t *row = in + (size_t)iy * p->in_w * C;
        if (iy >= 0 && iy < p->in_h && cols_inside) {
            memcpy(d, row + (size_t)ix0 * C, 3 * C);
            d += 3 * C;
            continue;
        }
        for (int kx = 0; kx < 3; kx++, d += C) {
            const int ix = ix0 + kx;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w)
                memset(d, q->in_zero, C);
            else
                memcpy(d, row + (size_t)ix * C, C);
        }
    }
    memset(d, 0, k4 - 9 * C);
}

/* The GEMM rows of output pixels (oy, 0..W-1), k4 bytes each, at dst. The
 * RGB layer's windows inside the image go by fixed-size moves in one loop
 * (per pixel, q_im2col_pixel's checks were most of this step's time). */
static void q_im2col_row(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                         int oy, size_t W, size_t k4, uint8_t *dst) {
    const int iy0 = oy * p->stride - p->pad_top;
    size_t x = 0;
    if (p->in_c == 3 && k4 == 28 && iy0 >= 0 && iy0 + 2 < p->in_h) {
        /* columns whose window is inside: lo <= x < hi */
        const int lo = (p->pad_left + p->stride - 1) / p->stride;
        const int span = p->in_w - 3 + p->pad_left;
        const int hi = span < 0 ? 0 : span / p->stride + 1;
        const size_t x0 = lo < (int)W ? (size_t)lo : W;
        const size_t x1 = hi < (int)W ? (hi > (int)x0 ? (size_t)hi : x0) : W;
        for (; x < x0; x++) q_im2col_pixel(p, q, in, oy, (int)x, k4, dst + x * k4);
        const size_t rb = (size_t)p->in_w * 3, step = (size_t)p->stride * 3;
        const uint8_t *r = in + (size_t)iy0 * rb;
        if (x0 < x1) r += (x0 * (size_t)p->stride - (size_t)p->pad_left) * 3;
        for (uint8_t *d = dst + x0 * k4; x < x1; x++, r += step, d += k4) {
            /* as in q_im2col_pixel: the 16-byte reads stay inside the tensor */
            memcpy(d, r, 16);
            memcpy(d + 9, r + rb, 16);
            memcpy(d + 18, r + 2 * rb, 8);
            d[26] = r[2 * rb + 8];
            d[27] = 0;
        }
    }
    for (; x < W; x++) q_im2col_pixel(p, q, in, oy, (int)x, k4, dst + x * k4);
}

static void qu8_conv3x3(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                        const uint8_t *w, void *out, size_t m0, size_t m1, int n0, int n1,
                        uint8_t *scratch) {
    const size_t N = (size_t)p->out_c, k4 = ssdf_qu8_k4(9 * (size_t)p->in_c);
    const size_t es = q_esize(q);
    size_t chunk = SSDF_QU8_IM2COL_BYTES / k4;
    if (chunk < QTILE_M) chunk = QTILE_M;
    for (size_t m = m0; m < m1; m += chunk) {
        const size_t rows = m1 - m < chunk ? m1 - m : chunk;
        for (size_t r = 0; r < rows; r++)
            q_im2col_pixel(p, q, in, (int)((m + r) / p->out_w), (int)((m + r) % p->out_w), k4,
                           scratch + r * k4);
        qgemm(rows, k4, scratch, k4, w, (uint8_t *)out + m * N * es, N, es, SSDF_PANEL * es,
              q->res ? q->res + m * N : NULL, q, n0, n1);
    }
}

/* One depthwise output pixel with every bounds check (borders). */
FORCE_INLINE void q_dw_pixel(const ssdf_conv_params *p, const ssdf_qu8_output *q,
                             const uint8_t *const rows[3], const uint8_t *zero, const QI wt[9],
                             const QI bias, const uint8_t *panel, uint8_t *dst_row, int ox, int g,
                             int len) {
    const size_t C = (size_t)p->in_c, es = q_esize(q);
    const int ix0 = ox * p->stride - p->pad_left;
    QI acc = bias;
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++) {
            const int ix = ix0 + kx;
            const uint8_t *s =
                rows[ky] && ix >= 0 && ix < p->in_w ? rows[ky] + (size_t)ix * C + g : zero + g;
            acc = qi_add(acc, qi_mul(qi_u8(s, len), wt[3 * ky + kx]));
        }
    q_out(acc, panel, q, NULL, dst_row + ((size_t)ox * C + g) * es, len);
}

/* Depthwise 3x3 over output columns [ox0, ox1) of one row, channels
 * [g, g + n) (n <= 16). rows[ky] is an input row or NULL where the window
 * leaves the image; taps outside read `zero` (in_zero bytes). The nine
 * weight vectors stay in registers. */
FORCE_INLINE void q_dw_row(const int full, const ssdf_conv_params *p, const ssdf_qu8_output *q,
                           const uint8_t *const rows[3], const uint8_t *zero,
                           const uint8_t *panel, uint8_t *dst_row, int ox0, int ox1, int g,
                           int n) {
    const size_t C = (size_t)p->in_c, es = q_esize(q);
    const int len = full ? SSDF_PANEL : n;
    QI wt[9];
    for (int t = 0; t < 9; t++) wt[t] = qi_s8((const int8_t *)(panel + ssdf_qu8_dw_at(t, 0)));
    const QI bias = qi_load((const int32_t *)panel);
    int ox = ox0;
    if (full && rows[0] && rows[1] && rows[2]) {
        /* Columns whose whole window is inside: no checks, two pixels at a
         * time (independent sums). Border columns go the checked way below. */
        const int lo = (p->pad_left + p->stride - 1) / p->stride;
        const int hi = (p->in_w - 3 + p->pad_left) / p->stride + 1;
        const int q0 = ox0 > lo ? ox0 : lo, q1 = ox1 < hi ? ox1 : hi;
        const size_t step = (size_t)p->stride * C;
        for (; ox < q0; ox++) q_dw_pixel(p, q, rows, zero, wt, bias, panel, dst_row, ox, g, len);
        for (; ox + 2 <= q1; ox += 2) {
            QI a0 = bias, a1 = bias;
            const size_t at = (size_t)(ox * p->stride - p->pad_left) * C + (size_t)g;
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ky++) {
                const uint8_t *s0 = rows[ky] + at;
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; kx++) {
                    a0 = qi_add(a0, qi_mul(qi_u8(s0 + kx * C, SSDF_PANEL), wt[3 * ky + kx]));
                    a1 = qi_add(a1, qi_mul(qi_u8(s0 + step + kx * C, SSDF_PANEL), wt[3 * ky + kx]));
                }
            }
            q_out(a0, panel, q, NULL, dst_row + ((size_t)ox * C + g) * es, SSDF_PANEL);
            q_out(a1, panel, q, NULL, dst_row + ((size_t)(ox + 1) * C + g) * es, SSDF_PANEL);
        }
    }
    for (; ox < ox1; ox++) q_dw_pixel(p, q, rows, zero, wt, bias, panel, dst_row, ox, g, len);
}

#ifdef QDW_TAPS3
/* The tap row of one output pixel (columns ix..ix+2 of `row`, channels
 * g..g+15) as 4-byte groups; taps outside the image read `zero`. */
FORCE_INLINE QT q_dw_taps_checked(const QTC *ctrl, const uint8_t *row, const uint8_t *zero,
                                  int ix, int in_w, size_t C, int g) {
    const uint8_t *t[3];
    for (int k = 0; k < 3; k++)
        t[k] = row && ix + k >= 0 && ix + k < in_w ? row + (size_t)(ix + k) * C + g : zero + g;
    return qt_taps3p(ctrl, t[0], t[1], t[2]);
}

/* q_dw_row for a whole panel through the dot-product instruction: one tap
 * row (3 bytes per channel and a zero, against its 3 weights and a zero) per
 * instruction, 3 instead of 9 multiplies, exact int32 sums like the rest.
 * A row outside the image is a constant (in_zero) tap row; border columns
 * pick their taps one by one; interior columns go two pixels at a time. */
static void q_dw_row_taps3(const ssdf_conv_params *p, const ssdf_qu8_output *q,
                           const uint8_t *const rows[3], const uint8_t *zero,
                           const uint8_t *panel, uint8_t *dst_row, int ox0, int ox1, int g) {
    const size_t C = (size_t)p->in_c, es = q_esize(q);
    const QTC ctrl = qt_ctrl();
    const QT tz = qt_taps3p(&ctrl, zero + g, zero + g, zero + g);
    const QACC bias = qacc_init((const int32_t *)panel);
    QT wk[3];
    for (int ky = 0; ky < 3; ky++) {
        const uint8_t *w0 = panel + ssdf_qu8_dw_at(3 * (size_t)ky, 0);
        wk[ky] = qt_taps3p(&ctrl, w0, w0 + SSDF_PANEL, w0 + 2 * SSDF_PANEL);
    }
    const int lo = (p->pad_left + p->stride - 1) / p->stride;
    const int hi = (p->in_w - 3 + p->pad_left) / p->stride + 1;
    const int q0 = ox0 > lo ? ox0 : lo, q1 = ox1 < hi ? ox1 : hi;
    const size_t step = (size_t)p->stride * C;
    for (int ox = ox0; ox < ox1; ox++) {
        if (ox >= q0 && ox + 2 <= q1) { /* two interior pixels */
            QACC a0 = bias, a1 = bias;
            const size_t at = (size_t)(ox * p->stride - p->pad_left) * C + (size_t)g;
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ky++) {
                const uint8_t *s = rows[ky] + at;
                a0 = qt_dot(a0, rows[ky] ? qt_taps3p(&ctrl, s, s + C, s + 2 * C) : tz, wk[ky]);
                s += step;
                a1 = qt_dot(a1, rows[ky] ? qt_taps3p(&ctrl, s, s + C, s + 2 * C) : tz, wk[ky]);
            }
            q_out(qacc_sum(a0), panel, q, NULL, dst_row + ((size_t)ox * C + g) * es, SSDF_PANEL);
            q_out(qacc_sum(a1), panel, q, NULL, dst_row + ((size_t)(ox + 1) * C + g) * es,
                  SSDF_PANEL);
            ox++;
            continue;
        }
        QACC a = bias;
        const int ix = ox * p->stride - p->pad_left;
        for (int ky = 0; ky < 3; ky++)
            a = qt_dot(a, q_dw_taps_checked(&ctrl, rows[ky], zero, ix, p->in_w, C, g), wk[ky]);
        q_out(qacc_sum(a), panel, q, NULL, dst_row + ((size_t)ox * C + g) * es, SSDF_PANEL);
    }
}
#endif

#ifdef QDW_TAPS3
/* The depthwise reads each input row up to 3 times (stride 1): the tap rows
 * of an input row are built once, for every output column and the channels
 * [g0, g1) (whole panels), as 64-byte groups at [(ox * (g1 - g0) + g - g0) *
 * 4], and the output rows load them. */
static void q_tap_row(const ssdf_conv_params *pd, const uint8_t *row, const uint8_t *zero,
                      uint8_t *tri, size_t g0, size_t g1) {
    const size_t C = (size_t)pd->in_c, G = g1 - g0;
    const QTC ctrl = qt_ctrl();
    for (int ox = 0; ox < pd->out_w; ox++) {
        const int ix = ox * pd->stride - pd->pad_left;
        uint8_t *t = tri + (size_t)ox * G * 4 - g0 * 4;
        if (ix >= 0 && ix + 2 < pd->in_w) {
            const uint8_t *s = row + (size_t)ix * C;
            for (size_t g = g0; g < g1; g += SSDF_PANEL)
                qt_store(t + g * 4, qt_taps3p(&ctrl, s + g, s + C + g, s + 2 * C + g));
        } else {
            for (size_t g = g0; g < g1; g += SSDF_PANEL)
                qt_store(t + g * 4, q_dw_taps_checked(&ctrl, row, zero, ix, pd->in_w, C, (int)g));
        }
    }
}

/* A depthwise panel's kernel rows as 4-byte tap groups (w0, w1, w2, 0):
 * those of the input rows present go to wr (their rows, + at, to rp; the
 * count is returned), those of a row outside the image add the same sums
 * to every pixel, so they go into the bias once (*b0; int32 sums are exact
 * in any order). */
FORCE_INLINE int q_dw_panel_rows(const QTC *ctrl, QT tz, const uint8_t *panel,
                                 const uint8_t *const rows[3], size_t at, QACC *b0,
                                 const uint8_t *rp[3], QT wr[3]) {
    int n = 0;
    *b0 = qacc_init((const int32_t *)panel);
    for (int ky = 0; ky < 3; ky++) {
        const uint8_t *w0 = panel + ssdf_qu8_dw_at(3 * (size_t)ky, 0);
        const QT wk = qt_taps3p(ctrl, w0, w0 + SSDF_PANEL, w0 + 2 * SSDF_PANEL);
        if (rows[ky])
            rp[n] = rows[ky] + at, wr[n] = wk, n++;
        else
            *b0 = qt_dot(*b0, tz, wk);
    }
    return n;
}

/* Depthwise output columns [ox0, ox1), channels [g0, g1), of one row (uint8
 * out) from the tap rows of its 3 input rows (NULL: outside the image, the
 * constant in_zero tap row). */
static void q_dw_row_tri(const ssdf_conv_params *pd, const ssdf_qu8_output *q,
                         const uint8_t *const tri[3], const uint8_t *zero, const uint8_t *w,
                         uint8_t *dst_row, int ox0, int ox1, size_t g0, size_t g1) {
    const size_t C = (size_t)pd->in_c, G = g1 - g0;
    const QTC ctrl = qt_ctrl();
    const QT tz = qt_taps3p(&ctrl, zero, zero, zero);
    const QOUT k = q_out_consts(q);
    for (size_t g = g0; g < g1; g += SSDF_PANEL) {
        const uint8_t *panel = w + (g / SSDF_PANEL) * q_dw_panel();
        const QF scale = q_scale(panel);
        const uint8_t *rp[3];
        QT wr[3];
        QACC b0;
        const int n = q_dw_panel_rows(&ctrl, tz, panel, tri, 0, &b0, rp, wr);
        if (n == 3) {
            for (int ox = ox0; ox < ox1; ox++) {
                const size_t at = ((size_t)ox * G + g - g0) * 4;
                QACC a = qt_dot(b0, qt_load(rp[0] + at), wr[0]);
                a = qt_dot(a, qt_load(rp[1] + at), wr[1]);
                a = qt_dot(a, qt_load(rp[2] + at), wr[2]);
                q_store_u8(qf_mul(qf_cvt(qacc_sum(a)), scale), &k, dst_row + (size_t)ox * C + g,
                           SSDF_PANEL);
            }
            continue;
        }
        for (int ox = ox0; ox < ox1; ox++) {
            const size_t at = ((size_t)ox * G + g - g0) * 4;
            QACC a = b0;
            for (int r = 0; r < n; r++) a = qt_dot(a, qt_load(rp[r] + at), wr[r]);
            q_store_u8(qf_mul(qf_cvt(qacc_sum(a)), scale), &k, dst_row + (size_t)ox * C + g,
                       SSDF_PANEL);
        }
    }
}

#ifdef QDW_PLANAR
/* The depthwise from planar rows: an input row's panel p (of the channels
 * [g0, g1) a call covers) at row + p * ps, pixel x's 16 channels at + (x +
 * 1) * 16 (one pixel of in_zero before, three after: SSDF_QU8_PLANAR_PAD).
 * One 64-byte load covers the 4 pixels from an output column's left
 * column, one qt_gather4 makes the groups; at stride 1 they serve two
 * columns (weights (w0, w1, w2, 0) and (0, w0, w1, w2)), at stride 2 one.
 * In place of the tap rows (q_tap_row): the fused block's producer writes
 * planar rows itself, the unfused layer copies 16 bytes per pixel and
 * panel. (At stride 2 the tap rows were faster while the block copied its
 * rows too.) */
static void q_planar_row(const uint8_t *src, size_t W, size_t C, size_t g0, size_t g1,
                         uint8_t *dst, size_t ps) {
    for (size_t x = 0; x < W; x++)
        for (size_t g = g0; g < g1; g += SSDF_PANEL)
            memcpy(dst + (g - g0) / SSDF_PANEL * ps + (x + 1) * SSDF_PANEL, src + x * C + g,
                   SSDF_PANEL);
}

/* One output column whose 4-pixel window starts at + at in each row. */
FORCE_INLINE void q_dw_planar_col(const int n, const QTG *gc, const uint8_t *const rp[3],
                                  const QT wr[3], QACC b0, QF scale, const QOUT *k, ptrdiff_t at,
                                  uint8_t *out) {
    QACC a = b0;
    for (int r = 0; r < n; r++) a = qt_dot(a, qt_gather4(gc, rp[r] + at), wr[r]);
    q_store_u8(qf_mul(qf_cvt(qacc_sum(a)), scale), k, out, SSDF_PANEL);
}

FORCE_INLINE void q_dw_planar_cols(const int n, const QTG *gc, const uint8_t *const rp[3],
                                   const QT wr[3], const QT wr2[3], QACC b0, QF scale,
                                   const QOUT *k, int pad, int ox0, int ox1, uint8_t *out,
                                   size_t C) {
    int ox = ox0;
    for (; ox + 1 < ox1; ox += 2) {
        const ptrdiff_t at = (ptrdiff_t)(ox - pad + 1) * SSDF_PANEL;
        QACC a0 = b0, a1 = b0;
        for (int r = 0; r < n; r++) {
            const QT t = qt_gather4(gc, rp[r] + at);
            a0 = qt_dot(a0, t, wr[r]);
            a1 = qt_dot(a1, t, wr2[r]);
        }
        q_store_u8(qf_mul(qf_cvt(qacc_sum(a0)), scale), k, out + (size_t)ox * C, SSDF_PANEL);
        q_store_u8(qf_mul(qf_cvt(qacc_sum(a1)), scale), k, out + (size_t)(ox + 1) * C,
                   SSDF_PANEL);
    }
    if (ox < ox1)
        q_dw_planar_col(n, gc, rp, wr, b0, scale, k, (ptrdiff_t)(ox - pad + 1) * SSDF_PANEL,
                        out + (size_t)ox * C);
}

/* Stride 2: a gather per column (its 3 pixels and one more, weighted 0),
 * two columns at a time (independent sums). */
FORCE_INLINE void q_dw_planar_cols_s2(const int n, const QTG *gc, const uint8_t *const rp[3],
                                      const QT wr[3], QACC b0, QF scale, const QOUT *k, int pad,
                                      int ox0, int ox1, uint8_t *out, size_t C) {
    int ox = ox0;
    for (; ox + 1 < ox1; ox += 2) {
        const ptrdiff_t at = (ptrdiff_t)(2 * ox - pad + 1) * SSDF_PANEL;
        QACC a0 = b0, a1 = b0;
        for (int r = 0; r < n; r++) {
            a0 = qt_dot(a0, qt_gather4(gc, rp[r] + at), wr[r]);
            a1 = qt_dot(a1, qt_gather4(gc, rp[r] + at + 2 * SSDF_PANEL), wr[r]);
        }
        q_store_u8(qf_mul(qf_cvt(qacc_sum(a0)), scale), k, out + (size_t)ox * C, SSDF_PANEL);
        q_store_u8(qf_mul(qf_cvt(qacc_sum(a1)), scale), k, out + (size_t)(ox + 1) * C,
                   SSDF_PANEL);
    }
    if (ox < ox1)
        q_dw_planar_col(n, gc, rp, wr, b0, scale, k, (ptrdiff_t)(2 * ox - pad + 1) * SSDF_PANEL,
                        out + (size_t)ox * C);
}

/* Depthwise output columns [ox0, ox1) (stride 1 or 2), channels [g0, g1)
 * (whole panels), of one row (uint8 out, C channels a pixel) from the
 * planar rows of its 3 input rows (NULL: outside the image). */
static void q_dw_row_planar(const ssdf_conv_params *pd, const ssdf_qu8_output *q,
                            const uint8_t *const rows[3], const uint8_t *zero, const uint8_t *w,
                            uint8_t *dst_row, int ox0, int ox1, size_t g0, size_t g1,
                            size_t ps) {
    const size_t C = (size_t)pd->out_c;
    const QTC ctrl = qt_ctrl();
    const QTG gc = qt_gctrl();
    const QT tz = qt_taps3p(&ctrl, zero, zero, zero);
    const QOUT k = q_out_consts(q);
    for (size_t g = g0; g < g1; g += SSDF_PANEL) {
        const uint8_t *panel = w + (g / SSDF_PANEL) * q_dw_panel();
        const QF scale = q_scale(panel);
        const uint8_t *rp[3];
        QT wr[3], wr2[3];
        QACC b0;
        const int n = q_dw_panel_rows(&ctrl, tz, panel, rows, (g - g0) / SSDF_PANEL * ps, &b0,
                                      rp, wr);
        if (pd->stride == 2) {
            if (n == 3)
                q_dw_planar_cols_s2(3, &gc, rp, wr, b0, scale, &k, pd->pad_left, ox0, ox1,
                                    dst_row + g, C);
            else
                q_dw_planar_cols_s2(n, &gc, rp, wr, b0, scale, &k, pd->pad_left, ox0, ox1,
                                    dst_row + g, C);
            continue;
        }
        for (int r = 0; r < n; r++) wr2[r] = qt_shift1(wr[r]);
        if (n == 3)
            q_dw_planar_cols(3, &gc, rp, wr, wr2, b0, scale, &k, pd->pad_left, ox0, ox1,
                             dst_row + g, C);
        else
            q_dw_planar_cols(n, &gc, rp, wr, wr2, b0, scale, &k, pd->pad_left, ox0, ox1,
                             dst_row + g, C);
    }
}

#endif

/* qu8_dw3x3 through a ring of 4 prepared input rows per channel chunk
 * that fits `budget` bytes, each input row prepared once per chunk: tap
 * rows, or (planar; QDW_PLANAR, stride <= 2, pad_left <= 1) planar rows. 0
 * when a single panel's ring does not fit (a very wide image): the caller
 * goes pixel by pixel. */
FORCE_INLINE int q_dw_ring(const int planar, const ssdf_conv_params *p,
                           const ssdf_qu8_output *q, const uint8_t *in, const uint8_t *w,
                           uint8_t *out, size_t m0, size_t m1, int n0, int n1,
                           const uint8_t *zero, uint8_t *ring, size_t budget) {
    const size_t C = (size_t)p->in_c, row_bytes = (size_t)p->in_w * C;
    /* a prepared row's bytes per 16-channel panel */
    const size_t ps = planar ? ((size_t)p->in_w + SSDF_QU8_PLANAR_PAD) * SSDF_PANEL
                             : (size_t)p->out_w * SSDF_PANEL * 4;
    if (4 * ps > budget) return 0;
    const size_t chunk = budget / (4 * ps) * SSDF_PANEL;
    for (size_t g0 = (size_t)n0; g0 < (size_t)n1; g0 += chunk) {
        const size_t g1 = (size_t)n1 - g0 < chunk ? (size_t)n1 : g0 + chunk;
        const size_t slot_bytes = (g1 - g0) / SSDF_PANEL * ps;
        if (planar) memset(ring, q->in_zero, 4 * slot_bytes); /* the pads, for good */
        int tag[4] = {-1, -1, -1, -1};
        for (size_t m = m0; m < m1;) { /* one row segment at a time */
            const int oy = (int)(m / p->out_w), ox0 = (int)(m % p->out_w);
            const int ox1 =
                (size_t)(p->out_w - ox0) < m1 - m ? p->out_w : ox0 + (int)(m1 - m);
            const uint8_t *t[3];
            for (int ky = 0; ky < 3; ky++) {
                const int iy = oy * p->stride - p->pad_top + ky;
                t[ky] = NULL;
                if (iy < 0 || iy >= p->in_h) continue;
                uint8_t *slot = ring + (size_t)(iy % 4) * slot_bytes;
                if (tag[iy % 4] != iy) {
                    const uint8_t *row = in + (size_t)iy * row_bytes;
#ifdef QDW_PLANAR
                    if (planar)
                        q_planar_row(row, (size_t)p->in_w, C, g0, g1, slot, ps);
                    else
#endif
                        q_tap_row(p, row, zero, slot, g0, g1);
                    tag[iy % 4] = iy;
                }
                t[ky] = slot;
            }
            uint8_t *dst_row = out + (size_t)oy * p->out_w * C;
#ifdef QDW_PLANAR
            if (planar)
                q_dw_row_planar(p, q, t, zero, w, dst_row, ox0, ox1, g0, g1, ps);
            else
#endif
                q_dw_row_tri(p, q, t, zero, w, dst_row, ox0, ox1, g0, g1);
            m += (size_t)(ox1 - ox0);
        }
    }
    return 1;
}
#endif

/* Every channel group [n0, n1) of one depthwise output row. */
static void q_dw_row_all(const ssdf_conv_params *p, const ssdf_qu8_output *q,
                         const uint8_t *const rows[3], const uint8_t *zero, const uint8_t *w,
                         uint8_t *dst_row, int ox0, int ox1, int n0, int n1) {
    for (int g = n0; g < n1; g += SSDF_PANEL) {
        const uint8_t *panel = w + (size_t)(g / SSDF_PANEL) * q_dw_panel();
#ifdef QDW_TAPS3
        if (n1 - g >= SSDF_PANEL) {
            q_dw_row_taps3(p, q, rows, zero, panel, dst_row, ox0, ox1, g);
            continue;
        }
#endif
        if (n1 - g >= SSDF_PANEL)
            q_dw_row(1, p, q, rows, zero, panel, dst_row, ox0, ox1, g, SSDF_PANEL);
        else
            q_dw_row(0, p, q, rows, zero, panel, dst_row, ox0, ox1, g, n1 - g);
    }
}

static void qu8_dw3x3(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                      const uint8_t *w, void *out, size_t m0, size_t m1, int n0, int n1,
                      uint8_t *scratch) {
    const size_t C = (size_t)p->in_c, row_bytes = (size_t)p->in_w * C, es = q_esize(q);
    uint8_t *zero = scratch; /* C + 64 bytes of in_zero: the taps outside the image */
    memset(zero, q->in_zero, C + 64);
#ifdef QDW_TAPS3
    if (!q->f32_out && n0 % SSDF_PANEL == 0 && (n1 - n0) % SSDF_PANEL == 0) {
#ifdef QDW_PLANAR
        if (p->stride <= 2 && p->pad_left <= 1 &&
            q_dw_ring(1, p, q, in, w, (uint8_t *)out, m0, m1, n0, n1, zero, scratch + C + 64,
                      SSDF_QU8_IM2COL_BYTES))
            return;
#endif
        if (q_dw_ring(0, p, q, in, w, (uint8_t *)out, m0, m1, n0, n1, zero, scratch + C + 64,
                      SSDF_QU8_IM2COL_BYTES))
            return;
    }
#endif
    size_t m = m0;
    while (m < m1) { /* one row segment at a time */
        const int oy = (int)(m / p->out_w), ox0 = (int)(m % p->out_w);
        const int ox1 = (size_t)(p->out_w - ox0) < m1 - m ? p->out_w : ox0 + (int)(m1 - m);
        const uint8_t *rows[3];
        for (int ky = 0; ky < 3; ky++) {
            const int iy = oy * p->stride - p->pad_top + ky;
            rows[ky] = iy >= 0 && iy < p->in_h ? in + (size_t)iy * row_bytes : NULL;
        }
        q_dw_row_all(p, q, rows, zero, w, (uint8_t *)out + (size_t)oy * p->out_w * C * es, ox0,
                     ox1, n0, n1);
        m += (size_t)(ox1 - ox0);
    }
}


/* A whole block, fused, for depthwise output rows [y0, y1), as f32_block
 * (dw_block_driver.h) does it: producer rows into a ring, depthwise rows
 * into a band, the project GEMM (+ residual) once per band. The uint8
 * intermediates stay in the thread's scratch. Needs ssdf_qu8_block_ok. */
static void qu8_block(const ssdf_qu8_block *b, int y0, int y1, uint8_t *scratch) {
    const ssdf_conv_params *pp = &b->producer, *pd = &b->dw, *pj = &b->project;
    const size_t Wp = (size_t)pp->out_w, K = (size_t)pp->in_c, E = (size_t)pp->out_c;
    const size_t Wd = (size_t)pd->out_w, Cout = (size_t)pj->out_c;
    const size_t kp = b->producer_k == 1 ? K : ssdf_qu8_k4(9 * K);
    const int band = ssdf_band_rows(pd->out_w);
    uint8_t *ring = scratch;
    uint8_t *dband = ring + (size_t)SSDF_RING_ROWS * Wp * E;
    uint8_t *zero = dband + (size_t)band * Wd * E;
    uint8_t *cols = zero + E + 64; /* the 3x3 producer's im2col row */
    int done = -1, band0 = y0;
    memset(zero, b->q_dw.in_zero, E + 64);
#ifdef QDW_TAPS3
    const size_t tri_bytes = (size_t)pd->out_w * E * 4;
    /* tap rows, one per ring row; 64-byte aligned, so a 16-channel group
     * is one cache line (the scratch has the 64 spare bytes) */
    uint8_t *tri = (uint8_t *)(((uintptr_t)(cols + Wp * kp) + 63) & ~(uintptr_t)63);
    const int use_tri = E % SSDF_PANEL == 0;
#endif
#ifdef QDW_PLANAR
    const size_t ps = (Wp + SSDF_QU8_PLANAR_PAD) * SSDF_PANEL;
    uint8_t *planar = tri + (size_t)SSDF_RING_ROWS * tri_bytes;
    const int use_planar = use_tri && pd->stride <= 2 && pd->pad_left <= 1;
    /* the pads are in_zero for good: the rows write pixels 0..Wp-1 */
    if (use_planar) memset(planar, b->q_dw.in_zero, (size_t)SSDF_RING_ROWS * E / SSDF_PANEL * ps);
#define planar_at(r) (planar + (size_t)((r) % SSDF_RING_ROWS) * (E / SSDF_PANEL) * ps)
#endif
    for (int oy = y0; oy < y1; oy++) {
        int first, last;
        const int top = ssdf_ring_need(pd, oy, done, &first, &last);
        const uint8_t *rows[3];
        for (int r = first; r <= last; r++) {
            /* the producer row: NHWC into the ring, or straight into its
             * planar row (pixel x of panel p at + p * ps + (x + 1) * 16) */
            uint8_t *dst = ring + (size_t)(r % SSDF_RING_ROWS) * Wp * E;
            size_t ldc = E, cps = SSDF_PANEL;
#ifdef QDW_PLANAR
            if (use_planar) dst = planar_at(r) + SSDF_PANEL, ldc = SSDF_PANEL, cps = ps;
#endif
            if (b->producer_k == 1) {
                qgemm(Wp, K, b->in + (size_t)r * Wp * K, K, b->w_producer, dst, ldc, 1, cps, NULL,
                      &b->q_producer, 0, (int)E);
            } else {
                q_im2col_row(pp, &b->q_producer, b->in, r, Wp, kp, cols);
                qgemm(Wp, kp, cols, kp, b->w_producer, dst, ldc, 1, cps, NULL, &b->q_producer, 0,
                      (int)E);
            }
#ifdef QDW_PLANAR
            if (use_planar) continue;
#endif
#ifdef QDW_TAPS3
            if (use_tri)
                q_tap_row(pd, dst, zero, tri + (size_t)(r % SSDF_RING_ROWS) * tri_bytes, 0, E);
#endif
        }
        if (last > done) done = last;
        for (int ky = 0; ky < 3; ky++) {
            const int iy = top + ky;
            rows[ky] = iy >= 0 && iy < pd->in_h ? ring + (size_t)(iy % SSDF_RING_ROWS) * Wp * E
                                               : NULL;
        }
        uint8_t *drow = dband + (size_t)(oy - band0) * Wd * E;
#ifdef QDW_PLANAR
        if (use_planar) {
            const uint8_t *t[3];
            for (int ky = 0; ky < 3; ky++)
                t[ky] = rows[ky] ? planar_at(top + ky) : NULL;
            q_dw_row_planar(pd, &b->q_dw, t, zero, b->w_dw, drow, 0, pd->out_w, 0, E, ps);
        } else
#endif
#ifdef QDW_TAPS3
        if (use_tri) {
            const uint8_t *t[3];
            for (int ky = 0; ky < 3; ky++) {
                const int iy = top + ky;
                t[ky] = iy >= 0 && iy < pd->in_h
                            ? tri + (size_t)(iy % SSDF_RING_ROWS) * tri_bytes
                            : NULL;
            }
            q_dw_row_tri(pd, &b->q_dw, t, zero, b->w_dw, drow, 0, pd->out_w, 0, E);
        } else
#endif
            q_dw_row_all(pd, &b->q_dw, rows, zero, b->w_dw, drow, 0, pd->out_w, 0, (int)E);
        if (oy - band0 + 1 == band || oy == y1 - 1) {
            const size_t at = (size_t)band0 * Wd * Cout;
            qgemm((size_t)(oy - band0 + 1) * Wd, E, dband, E, b->w_project, b->out + at, Cout, 1,
                  SSDF_PANEL, b->q_project.res ? b->q_project.res + at : NULL, &b->q_project, 0,
                  (int)Cout);
            band0 = oy + 1;
        }
    }
}

#ifdef QDW_PLANAR
#undef planar_at
#endif

/* ssdf_qu8_quantize_fn. x * 0 is 0 for a finite x and NaN otherwise: their
 * running sum says whether the input holds a NaN or an infinity. */
static int qu8_quantize(const float *x, size_t n, float inv, float lo, float hi, int zero,
                        uint8_t *q) {
    const QF vinv = qf_bcast(inv), vlo = qf_bcast(lo), vhi = qf_bcast(hi), z = qf_bcast(0.0f);
    const QI vzero = qi_bcast(zero);
    QF nan = z;
    size_t i = 0;
    for (; i + SSDF_PANEL <= n; i += SSDF_PANEL) {
        const QF v = qf_load(x + i);
        nan = qf_add(nan, qf_mul(v, z));
        const QF f = qf_min(qf_max(qf_mul(v, vinv), vlo), vhi);
        qi_store_u8(q + i, qi_add(qf_round(f), vzero), SSDF_PANEL);
    }
    float lanes[SSDF_PANEL];
    qf_store(lanes, nan, SSDF_PANEL);
    int bad = 0;
    for (int j = 0; j < SSDF_PANEL; j++) bad |= lanes[j] != lanes[j];
    for (; i < n; i++) { /* the tail, as the engine's plain loop */
        float f = x[i] * inv;
        bad |= !isfinite(x[i]);
        f = f < lo ? lo : f;
        f = f > hi ? hi : f;
        q[i] = bad ? 0 : (uint8_t)((int)lrintf(f) + zero);
    }
    return bad;
}

/* The qu8 fields of a variant's table (see SSDF_DEFINE_KERNEL_TABLE). */
#define SSDF_QU8_TABLE_FIELDS                                                   \
    .qu8_tile_m = QTILE_M, .qu8_conv3x3 = qu8_conv3x3, .qu8_dw3x3 = qu8_dw3x3, \
    .qu8_conv1x1 = qu8_conv1x1, .qu8_block = qu8_block, .qu8_quantize = qu8_quantize

/* The second half of the fast kernels (included by conv_driver.h, never on
 * its own): the depthwise 3x3 conv, the fused block built on it and the 1x1
 * GEMM, the resize's vertical pass, and the f32 fields of a variant's table. */

/* One depthwise output pixel (16 channels, or `cols` when !FULL) with every
 * bounds check: used at the image borders. */
FORCE_INLINE void dw_pixel(const int full, const ssdf_conv_params *p, const float *const rows[3],
                           const VEC wt[9], const VEC bias, float *dst, int ox, int cols) {
    const size_t C = (size_t)p->in_c;
    const int ix0 = ox * p->stride - p->pad_left;
    VEC acc = bias;
    for (int ky = 0; ky < 3; ky++) {
        if (!rows[ky]) continue;
        for (int kx = 0; kx < 3; kx++) {
            const int ix = ix0 + kx;
            if (ix < 0 || ix >= p->in_w) continue;
            const float *s = rows[ky] + (size_t)ix * C;
            acc = vfma(full ? vload(s) : vloadn(s, cols), wt[3 * ky + kx], acc);
        }
    }
    if (p->relu6) acc = vrelu6(acc);
    if (full)
        vstore(dst, acc);
    else
        vstoren(dst, acc, cols);
}

/* Four interior output pixels at once (all taps inside the image): four
 * independent accumulator chains, and each loaded input column feeds every
 * pixel whose window covers it (6 loads a row for stride 1, 9 for 2, instead
 * of 12). */
FORCE_INLINE void dw_quad(const int stride, const size_t C, const float *const rows[3],
                          const VEC wt[9], const VEC bias, int relu6, float *dst, int ix0) {
    VEC a0 = bias, a1 = bias, a2 = bias, a3 = bias;
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        const float *s = rows[ky] + (size_t)ix0 * C;
        VEC x[9];
#pragma GCC unroll 9
        for (int j = 0; j < 3 * stride + 3; j++) x[j] = vload(s + j * C);
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++) {
            a0 = vfma(x[kx], wt[3 * ky + kx], a0);
            a1 = vfma(x[stride + kx], wt[3 * ky + kx], a1);
            a2 = vfma(x[2 * stride + kx], wt[3 * ky + kx], a2);
            a3 = vfma(x[3 * stride + kx], wt[3 * ky + kx], a3);
        }
    }
    if (relu6) a0 = vrelu6(a0), a1 = vrelu6(a1), a2 = vrelu6(a2), a3 = vrelu6(a3);
    vstore(dst, a0);
    vstore(dst + C, a1);
    vstore(dst + 2 * C, a2);
    vstore(dst + 3 * C, a3);
}

/* Depthwise 3x3 over output columns [ox0, ox1) of one output row, for the
 * 16 (or `cols` < 16 when !FULL) channels at channel offset g. `rows` are the
 * three input rows of the window (NULL where the window leaves the image),
 * `dst` the output row. The nine weight vectors stay in registers. */
FORCE_INLINE void dw_row(const int full, const ssdf_conv_params *p, const float *const in_rows[3],
                         const float *wp, float *dst_row, int ox0, int ox1, int g, int cols) {
    const size_t C = (size_t)p->in_c;
    const float *rows[3];
    VEC wt[9];
    const VEC bias = vload(wp);
    for (int t = 0; t < 9; t++) wt[t] = vload(wp + SSDF_PANEL * (t + 1));
    for (int ky = 0; ky < 3; ky++) rows[ky] = in_rows[ky] ? in_rows[ky] + g : NULL;
    float *dst = dst_row + g;
    int ox = ox0;
    if (full && rows[0] && rows[1] && rows[2]) {
        /* Output columns whose whole window is inside the image. */
        const int lo = (p->pad_left + p->stride - 1) / p->stride;
        const int hi = (p->in_w - 3 + p->pad_left) / p->stride + 1;
        const int q0 = ox0 > lo ? ox0 : lo, q1 = ox1 < hi ? ox1 : hi;
        for (; ox < q0; ox++) dw_pixel(1, p, rows, wt, bias, dst + (size_t)ox * C, ox, SSDF_PANEL);
        if (p->stride == 1)
            for (; ox + 4 <= q1; ox += 4)
                dw_quad(1, C, rows, wt, bias, p->relu6, dst + (size_t)ox * C, ox - p->pad_left);
        else
            for (; ox + 4 <= q1; ox += 4)
                dw_quad(2, C, rows, wt, bias, p->relu6, dst + (size_t)ox * C,
                        2 * ox - p->pad_left);
    }
    for (; ox < ox1; ox++) {
        if (full)
            dw_pixel(1, p, rows, wt, bias, dst + (size_t)ox * C, ox, SSDF_PANEL);
        else
            dw_pixel(0, p, rows, wt, bias, dst + (size_t)ox * C, ox, cols);
    }
}

/* All channel groups [n0, n1) of one output row. */
static void dw_row_all(const ssdf_conv_params *p, const float *const rows[3], const float *w,
                       float *dst_row, int ox0, int ox1, int n0, int n1) {
    const size_t ps = ssdf_panel_floats(9);
    for (int g = n0; g < n1; g += SSDF_PANEL) {
        const float *wp = w + (size_t)(g / SSDF_PANEL) * ps;
        if (n1 - g >= SSDF_PANEL)
            dw_row(1, p, rows, wp, dst_row, ox0, ox1, g, SSDF_PANEL);
        else
            dw_row(0, p, rows, wp, dst_row, ox0, ox1, g, n1 - g);
    }
}

static void f32_dw3x3(const ssdf_conv_params *p, const float *in, const float *w, const float *res,
                  float *out, size_t m0, size_t m1, int n0, int n1, float *scratch) {
    const size_t row_floats = (size_t)p->in_w * p->in_c;
    (void)res, (void)scratch;
    size_t m = m0;
    while (m < m1) { /* one row segment at a time */
        const int oy = (int)(m / p->out_w), ox0 = (int)(m % p->out_w);
        const int ox1 = (size_t)(p->out_w - ox0) < m1 - m ? p->out_w : ox0 + (int)(m1 - m);
        const float *rows[3];
        for (int ky = 0; ky < 3; ky++) {
            const int iy = oy * p->stride - p->pad_top + ky;
            rows[ky] = iy >= 0 && iy < p->in_h ? in + (size_t)iy * row_floats : NULL;
        }
        dw_row_all(p, rows, w, out + (size_t)oy * p->out_w * p->in_c, ox0, ox1, n0, n1);
        m += (size_t)(ox1 - ox0);
    }
}

/* A whole inverted residual block (or the stem: first conv, block 0's
 * depthwise and project), fused, for depthwise output rows [y0, y1):
 *  - the producer (1x1 expand, or the 3x3 first conv) computes one input row
 *    of the depthwise at a time into a ring of SSDF_RING_ROWS rows;
 *  - the depthwise writes its output rows into a band of ssdf_band_rows();
 *  - the project GEMM (+ residual) turns each full band into output rows.
 * Neither the expanded nor the depthwise tensor ever goes to memory: all of
 * it stays in the thread's scratch (see ssdf_f32_block_scratch_floats). */
static void f32_block(const ssdf_f32_block *b, int y0, int y1, float *scratch) {
    const ssdf_conv_params *pp = &b->producer, *pd = &b->dw, *pj = &b->project;
    const size_t Wp = (size_t)pp->out_w, K = (size_t)pp->in_c, E = (size_t)pp->out_c;
    const size_t Wd = (size_t)pd->out_w, Cout = (size_t)pj->out_c;
    const int band = ssdf_band_rows(pd->out_w);
    float *ring = scratch;
    float *dband = ring + ssdf_ring_floats(pp->out_w, pp->out_c);
    float *tmp = dband + (size_t)band * Wd * E; /* the 3x3 producer's border scratch */
    int done = -1, band0 = y0;
    for (int oy = y0; oy < y1; oy++) {
        int first, last;
        const int top = ssdf_ring_need(pd, oy, done, &first, &last);
        const float *rows[3];
        for (int r = first; r <= last; r++) {
            float *dst = ring + (size_t)(r % SSDF_RING_ROWS) * Wp * E;
            if (b->producer_k == 1)
                gemm(Wp, K, b->in + (size_t)r * Wp * K, K, b->w_producer, dst, E, NULL,
                     pp->relu6, 0, (int)E);
            else
                conv3x3_direct(pp, b->in, b->w_producer, dst, (size_t)r * Wp,
                               (size_t)(r + 1) * Wp, 0, (int)E, tmp);
        }
        if (last > done) done = last;
        for (int ky = 0; ky < 3; ky++) {
            const int iy = top + ky;
            rows[ky] = iy >= 0 && iy < pd->in_h ? ring + (size_t)(iy % SSDF_RING_ROWS) * Wp * E
                                               : NULL;
        }
        dw_row_all(pd, rows, b->w_dw, dband + (size_t)(oy - band0) * Wd * E, 0, pd->out_w, 0,
                   (int)E);
        if (oy - band0 + 1 == band || oy == y1 - 1) {
            const size_t at = (size_t)band0 * Wd * Cout;
            gemm((size_t)(oy - band0 + 1) * Wd, E, dband, E, b->w_project, b->out + at, Cout,
                 b->res ? b->res + at : NULL, pj->relu6, 0, (int)Cout);
            band0 = oy + 1;
        }
    }
}

/* The resize's vertical pass (see resize.h): taps in blocks, so that a
 * huge tap count does not pile up rounding error in one float sum. */
static void u8_f32_resize_rows(const unsigned char *first_row, ptrdiff_t stride, const float *w,
                        int taps, size_t n, float *out) {
    size_t x = 0;
    for (; x + 16 <= n; x += 16) {
        VEC acc = vbcast(0.0f);
        for (int t0 = 0; t0 < taps; t0 += SSDF_RESIZE_BLOCK) {
            const int t1 = taps - t0 > SSDF_RESIZE_BLOCK ? t0 + SSDF_RESIZE_BLOCK : taps;
            const unsigned char *p = first_row + (ptrdiff_t)t0 * stride + x;
            VEC part = vbcast(0.0f);
            for (int t = t0; t < t1; t++, p += stride) part = vfma(vbcast(w[t]), vload_u8(p), part);
            acc = vadd(acc, part);
        }
        vstore(out + x, acc);
    }
    for (; x < n; x++) {
        float acc = 0.0f;
        for (int t0 = 0; t0 < taps; t0 += SSDF_RESIZE_BLOCK) {
            const int t1 = taps - t0 > SSDF_RESIZE_BLOCK ? t0 + SSDF_RESIZE_BLOCK : taps;
            const unsigned char *p = first_row + (ptrdiff_t)t0 * stride + x;
            float part = 0.0f;
            for (int t = t0; t < t1; t++, p += stride) part += w[t] * *p;
            acc += part;
        }
        out[x] = acc;
    }
}

/* The f32 fields of a variant's table (see SSDF_DEFINE_KERNEL_TABLE). */
#define SSDF_F32_TABLE_FIELDS                                                    \
    .tile_m = TILE_M, .f32_conv3x3 = f32_conv3x3, .f32_dw3x3 = f32_dw3x3,        \
    .f32_conv1x1 = f32_conv1x1, .f32_block = f32_block,                          \
    .u8_f32_resize_rows = u8_f32_resize_rows

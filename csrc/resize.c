#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* *out = a * b, or nonzero when that overflows size_t. */
static int mul_size(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

/* *acc += a * b, rounded up to whole cache lines; nonzero on overflow. */
static int add_floats(size_t *acc, size_t a, size_t b) {
    size_t n;
    if (mul_size(a, b, &n) || n > SIZE_MAX / sizeof(float) - SSDF_ALIGN) return 1;
    n = ssdf_round_up(n * sizeof(float), SSDF_ALIGN) / sizeof(float);
    return __builtin_add_overflow(*acc, n, acc);
}

static inline double tent(double d) { return fabs(d) < 1.0 ? 1.0 - fabs(d) : 0.0; }

/* The taps of output index i into w[0 .. count), count <= a->max_taps; sets
 * *first and returns count. The one definition of the filter: the tables
 * are filled with it too, so table and on-demand weights are identical. */
static int axis_taps(const ssdf_axis_filter *a, int i, float *w, int *first) {
    const double centre = (i + 0.5) * a->scale, f = a->support, inv_f = a->inv_support;
    int lo = (int)(centre - f + 0.5), hi = (int)(centre + f + 0.5);
    if (lo < 0) lo = 0;
    if (hi > a->n) hi = a->n;
    if (hi - lo > a->max_taps) hi = lo + a->max_taps; /* cannot happen; keeps bounds obvious */
    if (hi < lo) hi = lo;
    /* tent values, summed in 4 chains (a long axis has many taps) */
    const int count = hi - lo;
    double part[4] = {0.0, 0.0, 0.0, 0.0};
    int t = 0;
    for (; t + 4 <= count; t += 4)
        for (int u = 0; u < 4; u++) {
            const double v = tent((lo + t + u + 0.5 - centre) * inv_f);
            w[t + u] = (float)v;
            part[u] += v;
        }
    for (; t < count; t++) {
        const double v = tent((lo + t + 0.5 - centre) * inv_f);
        w[t] = (float)v;
        part[0] += v;
    }
    const double total = (part[0] + part[1]) + (part[2] + part[3]);
    const float inv_total = total > 0.0 ? (float)(1.0 / total) : 0.0f;
    for (t = 0; t < count; t++) w[t] *= inv_total;
    *first = lo;
    return hi - lo;
}

/* Weights of output index i: from the table, or computed into `scratch`
 * (max_taps floats). */
static inline const float *axis_get(const ssdf_axis_filter *a, int i, float *scratch, int *first,
                                    int *count) {
    if (a->weights) {
        *first = a->first[i];
        *count = a->count[i];
        return a->weights + (size_t)i * a->max_taps;
    }
    *count = axis_taps(a, i, scratch, first);
    return scratch;
}

static void axis_free(ssdf_axis_filter *a) {
    free(a->first);
    free(a->count);
    free(a->weights);
    a->first = a->count = NULL;
    a->weights = NULL;
}

/* 0, SSDF_ERR_NOMEM. The table is kept when it has at most `limit` floats. */
static int axis_init(ssdf_axis_filter *a, int n, int m, size_t limit) {
    size_t table;
    a->n = n;
    a->m = m;
    a->scale = (double)n / m;
    a->support = a->scale > 1.0 ? a->scale : 1.0;
    a->inv_support = 1.0 / a->support;
    /* at most 2 f + 1 taps (+2 for rounding) and never more than n */
    const double taps = floor(2.0 * a->support) + 3.0;
    a->max_taps = taps < (double)n ? (int)taps : n;
    if (mul_size((size_t)m, (size_t)a->max_taps, &table) || table > limit)
        return SSDF_OK; /* weights on demand */
    a->first = malloc(sizeof(int) * (size_t)m);
    a->count = malloc(sizeof(int) * (size_t)m);
    a->weights = malloc(sizeof(float) * table);
    if (!a->first || !a->count || !a->weights) {
        axis_free(a);
        return SSDF_ERR_NOMEM;
    }
    for (int i = 0; i < m; i++)
        a->count[i] = axis_taps(a, i, a->weights + (size_t)i * a->max_taps, &a->first[i]);
    return SSDF_OK;
}

int ssdf_resize_plan_init(ssdf_resize_plan *plan, const unsigned char *src, int height, int width,
                          int channels, ptrdiff_t row_stride, int out_h, int out_w, int nthreads,
                          ssdf_error *err) {
    size_t image_floats, row = 0, wx, wy, bytes;
    memset(plan, 0, sizeof *plan);
    if (height <= 0 || width <= 0 || out_h <= 0 || out_w <= 0)
        return ssdf_fail(err, SSDF_ERR_VALUE, "image must not be empty");
    if (channels != 1 && channels != 3 && channels != 4)
        return ssdf_fail(err, SSDF_ERR_VALUE, "image has %d channels, expected 1, 3 or 4", channels);
    if (nthreads < 1) return ssdf_fail(err, SSDF_ERR_VALUE, "nthreads must be >= 1");
    plan->src = src;
    plan->height = height;
    plan->width = width;
    plan->channels = channels;
    plan->row_stride = row_stride;
    plan->out_h = out_h;
    plan->out_w = out_w;
    plan->horizontal_first = height < out_h;
    plan->mid_c = channels == 1 ? 1 : 3;
    plan->nthreads = nthreads;

    /* The horizontal weights are used again for every row: their table is
     * kept unless it would take more bytes than the image (1 x 20,000,000
     * gray: 160 MB of weights, used once). The vertical ones are used once
     * per output row: a table of them saves nothing. */
    if (mul_size((size_t)height * (size_t)width, (size_t)channels, &image_floats)) goto too_large;
    image_floats /= sizeof(float);
    if (axis_init(&plan->fx, width, out_w,
                  image_floats > SSDF_RESIZE_TABLE_FLOATS ? image_floats
                                                          : SSDF_RESIZE_TABLE_FLOATS) ||
        axis_init(&plan->fy, height, out_h, SSDF_RESIZE_TABLE_FLOATS))
        goto nomem;

    /* Per thread: the float row, then each axis's on-demand weights. */
    if (plan->horizontal_first ? add_floats(&row, (size_t)out_w, (size_t)plan->mid_c)
                               : add_floats(&row, (size_t)width, (size_t)channels))
        goto too_large;
    wx = row;
    if (!plan->fx.weights && add_floats(&wx, (size_t)plan->fx.max_taps, 1)) goto too_large;
    wy = wx;
    if (!plan->fy.weights && add_floats(&wy, (size_t)plan->fy.max_taps, 1)) goto too_large;
    plan->wx_at = row;
    plan->wy_at = wx;
    plan->scratch_floats = wy;
    if (mul_size(wy, (size_t)nthreads, &bytes) || mul_size(bytes, sizeof(float), &bytes))
        goto too_large;
    if (!(plan->scratch = ssdf_aligned_alloc(bytes))) goto nomem;

    if (plan->horizontal_first) { /* height < out_h: smaller than the output */
        if (mul_size((size_t)height * (size_t)out_w, (size_t)plan->mid_c, &bytes) ||
            mul_size(bytes, sizeof(float), &bytes))
            goto too_large;
        if (!(plan->mid = ssdf_aligned_alloc(bytes))) goto nomem;
    }
    return SSDF_OK;
nomem:
    ssdf_resize_plan_free(plan);
    return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory resizing a %dx%d image to %dx%d", width,
                     height, out_w, out_h);
too_large:
    ssdf_resize_plan_free(plan);
    return ssdf_fail(err, SSDF_ERR_VALUE, "image too large to resize (%dx%d to %dx%d)", width,
                     height, out_w, out_h);
}

void ssdf_resize_plan_free(ssdf_resize_plan *plan) {
    axis_free(&plan->fx);
    axis_free(&plan->fy);
    ssdf_aligned_free(plan->scratch);
    ssdf_aligned_free(plan->mid);
    plan->scratch = plan->mid = NULL;
}

static inline float *thread_scratch(const ssdf_resize_plan *plan, int thread) {
    return plan->scratch + (size_t)thread * plan->scratch_floats;
}

/* (v - 127.5) / 127.5 */
static inline float normalize(float v) { return v * (1.0f / 127.5f) - 1.0f; }

/* Filter sums over `count` taps of stride `step` (elements of type T), in
 * blocks of SSDF_RESIZE_BLOCK like the vertical kernel. */
#define BLOCKED_SUM3(T, r, step, w, count, acc)                                            \
    do {                                                                                   \
        acc[0] = acc[1] = acc[2] = 0.0f;                                                   \
        for (int t0 = 0; t0 < (count); t0 += SSDF_RESIZE_BLOCK) {                          \
            const int t1 = (count)-t0 > SSDF_RESIZE_BLOCK ? t0 + SSDF_RESIZE_BLOCK : (count); \
            float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f;                                         \
            for (int t = t0; t < t1; t++) {                                                \
                const T *px = (r) + (size_t)t * (step);                                    \
                p0 += (w)[t] * px[0];                                                      \
                p1 += (w)[t] * px[1];                                                      \
                p2 += (w)[t] * px[2];                                                      \
            }                                                                              \
            acc[0] += p0;                                                                  \
            acc[1] += p1;                                                                  \
            acc[2] += p2;                                                                  \
        }                                                                                  \
    } while (0)

/* One channel: sum of w[t] * r[t], 4 chains per block (one chain would wait
 * on each add). */
#define DEFINE_DOT1(name, T)                                                       \
    static inline float name(const float *w, const T *r, int count) {             \
        float acc = 0.0f;                                                          \
        for (int t0 = 0; t0 < count; t0 += SSDF_RESIZE_BLOCK) {                    \
            const int t1 = count - t0 > SSDF_RESIZE_BLOCK ? t0 + SSDF_RESIZE_BLOCK : count; \
            float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f, p3 = 0.0f;                      \
            int t = t0;                                                            \
            for (; t + 4 <= t1; t += 4) {                                          \
                p0 += w[t + 0] * r[t + 0];                                         \
                p1 += w[t + 1] * r[t + 1];                                         \
                p2 += w[t + 2] * r[t + 2];                                         \
                p3 += w[t + 3] * r[t + 3];                                         \
            }                                                                      \
            for (; t < t1; t++) p0 += w[t] * r[t];                                 \
            acc += (p0 + p1) + (p2 + p3);                                          \
        }                                                                          \
        return acc;                                                                \
    }

DEFINE_DOT1(dot1_u8, unsigned char)
DEFINE_DOT1(dot1_f32, float)

size_t ssdf_resize_prepass_items(const ssdf_resize_plan *plan) {
    return plan->horizontal_first ? (size_t)plan->height * (size_t)plan->out_w : 0;
}

/* Horizontal first: pixel (y, ox) of the intermediate image for items
 * [i0, i1), item y * out_w + ox, from the uint8 input. */
void ssdf_resize_prepass(const ssdf_resize_plan *plan, size_t i0, size_t i1, int thread) {
    const int C = plan->channels, out_w = plan->out_w;
    float *wscratch = thread_scratch(plan, thread) + plan->wx_at;
    size_t i = i0;
    while (i < i1) {
        const int y = (int)(i / (size_t)out_w);
        const int ox0 = (int)(i % (size_t)out_w);
        const size_t left = i1 - i;
        const int ox1 = (size_t)(out_w - ox0) < left ? out_w : ox0 + (int)left;
        const unsigned char *s = plan->src + (ptrdiff_t)y * plan->row_stride;
        float *m = plan->mid + i * (size_t)plan->mid_c;
        for (int ox = ox0; ox < ox1; ox++) {
            int first, count;
            const float *w = axis_get(&plan->fx, ox, wscratch, &first, &count);
            const unsigned char *r = s + (size_t)first * C;
            if (C == 1) {
                *m++ = dot1_u8(w, r, count);
            } else {
                float acc[3];
                BLOCKED_SUM3(unsigned char, r, C, w, count, acc);
                m[0] = acc[0];
                m[1] = acc[1];
                m[2] = acc[2];
                m += 3;
            }
        }
        i += (size_t)(ox1 - ox0);
    }
}

/* Vertical first: the horizontal filter of one float row (C channels per
 * pixel) into output row `out`, normalised. Inlined with C a constant. */
static inline void horizontal_row_c(const ssdf_resize_plan *plan, const float *row, const int C,
                                    float *wscratch, float *out) {
    for (int ox = 0; ox < plan->out_w; ox++) {
        int first, count;
        const float *w = axis_get(&plan->fx, ox, wscratch, &first, &count);
        const float *r = row + (size_t)first * C;
        if (C == 1) {
            const float v = normalize(dot1_f32(w, r, count));
            out[3 * ox + 0] = out[3 * ox + 1] = out[3 * ox + 2] = v;
        } else {
            float acc[3];
            BLOCKED_SUM3(float, r, C, w, count, acc);
            out[3 * ox + 0] = normalize(acc[0]);
            out[3 * ox + 1] = normalize(acc[1]);
            out[3 * ox + 2] = normalize(acc[2]);
        }
    }
}

static void horizontal_row(const ssdf_resize_plan *plan, const float *row, float *wscratch,
                           float *out) {
    switch (plan->channels) {
    case 1: horizontal_row_c(plan, row, 1, wscratch, out); break;
    case 3: horizontal_row_c(plan, row, 3, wscratch, out); break;
    default: horizontal_row_c(plan, row, 4, wscratch, out); break;
    }
}

/* Horizontal first: output row oy from the intermediate image. The plan is
 * horizontal first only when enlarging vertically, so there are at most a
 * few taps (max_taps <= 5): one plain sum, no blocks. */
static void vertical_mid_row(const ssdf_resize_plan *plan, int oy, float *row, float *wscratch,
                             float *out) {
    const size_t n = (size_t)plan->out_w * plan->mid_c;
    int first, count;
    const float *w = axis_get(&plan->fy, oy, wscratch, &first, &count);
    for (size_t x = 0; x < n; x++) row[x] = 0.0f;
    for (int t = 0; t < count; t++) {
        const float wt = w[t], *m = plan->mid + (size_t)(first + t) * n;
        for (size_t x = 0; x < n; x++) row[x] += wt * m[x];
    }
    if (plan->mid_c == 1)
        for (int ox = 0; ox < plan->out_w; ox++)
            out[3 * ox + 0] = out[3 * ox + 1] = out[3 * ox + 2] = normalize(row[ox]);
    else
        for (size_t x = 0; x < n; x++) out[x] = normalize(row[x]);
}

void ssdf_resize_rows(const ssdf_resize_plan *plan, const ssdf_kernel_table *k, int y0, int y1,
                      int thread, float *dst, size_t out_stride) {
    float *scratch = thread_scratch(plan, thread);
    float *row = scratch, *wx = scratch + plan->wx_at, *wy = scratch + plan->wy_at;
    for (int oy = y0; oy < y1; oy++) {
        float *out = dst + (size_t)oy * out_stride;
        if (plan->horizontal_first) {
            vertical_mid_row(plan, oy, row, wy, out);
        } else {
            int first, count;
            const float *w = axis_get(&plan->fy, oy, wy, &first, &count);
            k->u8_f32_resize_rows(plan->src + (ptrdiff_t)first * plan->row_stride, plan->row_stride, w,
                           count, (size_t)plan->channels * plan->width, row);
            horizontal_row(plan, row, wx, out);
        }
    }
}

int ssdf_resize_normalize(const unsigned char *src, int height, int width, int channels,
                          ptrdiff_t row_stride, int out_h, int out_w, float *dst,
                          const ssdf_kernel_table *k, ssdf_error *err) {
    ssdf_resize_plan plan;
    int rc = ssdf_resize_plan_init(&plan, src, height, width, channels, row_stride, out_h, out_w,
                                   1, err);
    if (rc) return rc;
    ssdf_resize_prepass(&plan, 0, ssdf_resize_prepass_items(&plan), 0);
    ssdf_resize_rows(&plan, k, 0, out_h, 0, dst, (size_t)out_w * 3);
    ssdf_resize_plan_free(&plan);
    return SSDF_OK;
}

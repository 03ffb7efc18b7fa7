#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double tent(double d) { return fabs(d) < 1.0 ? 1.0 - fabs(d) : 0.0; }

static void axis_free(ssdf_axis_filter *a) {
    free(a->first);
    free(a->count);
    free(a->weights);
}

static int axis_init(ssdf_axis_filter *a, int n, int m) {
    const double scale = (double)n / m;
    const double f = scale > 1.0 ? scale : 1.0;
    a->max_taps = (int)(2.0 * f) + 3;
    a->first = malloc(sizeof(int) * (size_t)m);
    a->count = malloc(sizeof(int) * (size_t)m);
    a->weights = malloc(sizeof(float) * (size_t)m * (size_t)a->max_taps);
    if (!a->first || !a->count || !a->weights) return SSDF_ERR_NOMEM;
    for (int i = 0; i < m; i++) {
        const double centre = (i + 0.5) * scale;
        int lo = (int)(centre - f + 0.5), hi = (int)(centre + f + 0.5);
        float *w = a->weights + (size_t)i * a->max_taps;
        double total = 0.0;
        if (lo < 0) lo = 0;
        if (hi > n) hi = n;
        if (hi - lo > a->max_taps) hi = lo + a->max_taps; /* cannot happen; keeps bounds obvious */
        for (int j = lo; j < hi; j++) total += tent((j + 0.5 - centre) / f);
        for (int j = lo; j < hi; j++)
            w[j - lo] = total > 0.0 ? (float)(tent((j + 0.5 - centre) / f) / total) : 0.0f;
        a->first[i] = lo;
        a->count[i] = hi - lo;
    }
    return SSDF_OK;
}

int ssdf_resize_plan_init(ssdf_resize_plan *plan, const unsigned char *src, int height, int width,
                          int channels, ptrdiff_t row_stride, int out_h, int out_w, int nthreads,
                          ssdf_error *err) {
    memset(plan, 0, sizeof *plan);
    if (height <= 0 || width <= 0 || out_h <= 0 || out_w <= 0)
        return ssdf_fail(err, SSDF_ERR_VALUE, "image must not be empty");
    if (channels != 1 && channels != 3 && channels != 4)
        return ssdf_fail(err, SSDF_ERR_VALUE, "image has %d channels, expected 1, 3 or 4", channels);
    *plan = (ssdf_resize_plan){src, height, width, channels, row_stride, out_h, out_w,
                               {0}, {0}, NULL, nthreads};
    if (axis_init(&plan->fx, width, out_w) || axis_init(&plan->fy, height, out_h) ||
        !(plan->rows = ssdf_aligned_alloc(sizeof(float) * 3 * (size_t)width * nthreads))) {
        ssdf_resize_plan_free(plan);
        return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory resizing a %dx%d image", width, height);
    }
    return SSDF_OK;
}

void ssdf_resize_plan_free(ssdf_resize_plan *plan) {
    axis_free(&plan->fx);
    axis_free(&plan->fy);
    ssdf_aligned_free(plan->rows);
    plan->rows = NULL;
}

void ssdf_resize_rows(const ssdf_resize_plan *plan, const ssdf_kernel_table *k, int y0, int y1,
                      int thread, float *dst) {
    const int width = plan->width, channels = plan->channels;
    float *row = plan->rows + (size_t)thread * 3 * width;
    for (int oy = y0; oy < y1; oy++) {
        const float *wy = plan->fy.weights + (size_t)oy * plan->fy.max_taps;
        const int taps = plan->fy.count[oy];
        if (channels == 3) { /* the common case: the ISA kernel, RGB as a flat row */
            k->resize_rows(plan->src + (ptrdiff_t)plan->fy.first[oy] * plan->row_stride,
                           plan->row_stride, wy, taps, 3 * (size_t)width, row);
        } else { /* gray or RGBA: expand to RGB while filtering */
            for (int x = 0; x < 3 * width; x++) row[x] = 0.0f;
            for (int t = 0; t < taps; t++) {
                const unsigned char *s =
                    plan->src + (ptrdiff_t)(plan->fy.first[oy] + t) * plan->row_stride;
                const float wt = wy[t];
                const int g = channels == 1;
                for (int x = 0; x < width; x++) {
                    const unsigned char *px = s + (size_t)x * channels;
                    row[3 * x + 0] += wt * px[0];
                    row[3 * x + 1] += wt * px[g ? 0 : 1];
                    row[3 * x + 2] += wt * px[g ? 0 : 2];
                }
            }
        }
        float *out = dst + (size_t)oy * plan->out_w * 3;
        for (int ox = 0; ox < plan->out_w; ox++) {
            const float *wx = plan->fx.weights + (size_t)ox * plan->fx.max_taps;
            const float *r = row + (size_t)plan->fx.first[ox] * 3;
            float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f;
            for (int t = 0; t < plan->fx.count[ox]; t++) {
                acc0 += wx[t] * r[3 * t + 0];
                acc1 += wx[t] * r[3 * t + 1];
                acc2 += wx[t] * r[3 * t + 2];
            }
            /* (v - 127.5) / 127.5 */
            out[3 * ox + 0] = acc0 * (1.0f / 127.5f) - 1.0f;
            out[3 * ox + 1] = acc1 * (1.0f / 127.5f) - 1.0f;
            out[3 * ox + 2] = acc2 * (1.0f / 127.5f) - 1.0f;
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
    ssdf_resize_rows(&plan, k, 0, out_h, 0, dst);
    ssdf_resize_plan_free(&plan);
    return SSDF_OK;
}

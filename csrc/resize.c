#include "resize.h"

#include <math.h>
#include <stdlib.h>

static double tent(double d) { return fabs(d) < 1.0 ? 1.0 - fabs(d) : 0.0; }

/* Filter taps of one axis: output i reads `count[i]` inputs from `first[i]`
 * with weights weights[i * max_taps ...]. */
typedef struct {
    int *first, *count;
    float *weights;
    int max_taps;
} axis_filter;

static void axis_free(axis_filter *a) {
    free(a->first);
    free(a->count);
    free(a->weights);
}

static int axis_init(axis_filter *a, int n, int m) {
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

int ssdf_resize_normalize(const unsigned char *src, int height, int width, int channels,
                          ptrdiff_t row_stride, int out_h, int out_w, float *dst, ssdf_error *err) {
    axis_filter fx = {0}, fy = {0};
    float *row = NULL;
    int rc = SSDF_OK;
    if (height <= 0 || width <= 0 || out_h <= 0 || out_w <= 0)
        return ssdf_fail(err, SSDF_ERR_VALUE, "image must not be empty");
    if (channels != 1 && channels != 3 && channels != 4)
        return ssdf_fail(err, SSDF_ERR_VALUE, "image has %d channels, expected 1, 3 or 4", channels);

    if (axis_init(&fx, width, out_w) || axis_init(&fy, height, out_h) ||
        !(row = malloc(sizeof(float) * 3 * (size_t)width))) {
        rc = ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory resizing a %dx%d image", width, height);
        goto done;
    }

    /* One output row at a time: vertical filter into a float row of the
     * input's width, then the horizontal filter from that row. */
    for (int oy = 0; oy < out_h; oy++) {
        const float *wy = fy.weights + (size_t)oy * fy.max_taps;
        for (int x = 0; x < 3 * width; x++) row[x] = 0.0f;
        for (int t = 0; t < fy.count[oy]; t++) {
            const unsigned char *s = src + (ptrdiff_t)(fy.first[oy] + t) * row_stride;
            const float wt = wy[t];
            if (channels == 3) {
                for (int x = 0; x < 3 * width; x++) row[x] += wt * s[x];
            } else {
                for (int x = 0; x < width; x++) {
                    const unsigned char *px = s + (size_t)x * channels;
                    const int g = channels == 1;
                    row[3 * x + 0] += wt * px[0];
                    row[3 * x + 1] += wt * px[g ? 0 : 1];
                    row[3 * x + 2] += wt * px[g ? 0 : 2];
                }
            }
        }
        float *out = dst + (size_t)oy * out_w * 3;
        for (int ox = 0; ox < out_w; ox++) {
            const float *wx = fx.weights + (size_t)ox * fx.max_taps;
            const float *r = row + (size_t)fx.first[ox] * 3;
            float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f;
            for (int t = 0; t < fx.count[ox]; t++) {
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
done:
    free(row);
    axis_free(&fx);
    axis_free(&fy);
    return rc;
}

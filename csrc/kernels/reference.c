/* Reference kernels: the definition of each operation, written for clarity
 * rather than speed, with double accumulation. Tests hold every fast variant
 * to these. */
#include <string.h>

#include "kernels.h"

/* Packed-panel accessors (see kernels.h). */
static double bias_at(const float *w, size_t K, int n) {
    return w[(size_t)(n / SSDF_PANEL) * ssdf_panel_floats(K) + n % SSDF_PANEL];
}
static double weight_at(const float *w, size_t K, size_t k, int n) {
    return w[(size_t)(n / SSDF_PANEL) * ssdf_panel_floats(K) + SSDF_PANEL * (k + 1) +
             n % SSDF_PANEL];
}

static float finish(double acc, int relu6) {
    if (relu6) {
        if (acc < 0.0) acc = 0.0;
        if (acc > 6.0) acc = 6.0;
    }
    return (float)acc;
}

/* Input value at (iy, ix, c), zero outside the image (the SAME padding). */
static double at(const ssdf_conv_params *p, const float *in, int iy, int ix, int c) {
    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) return 0.0;
    return in[((size_t)iy * p->in_w + ix) * p->in_c + c];
}

static void ref_f32_conv3x3(const ssdf_conv_params *p, const float *in, const float *w,
                        const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                        float *scratch) {
    const size_t K = 9 * (size_t)p->in_c;
    (void)res, (void)scratch;
    for (size_t m = m0; m < m1; m++) {
        const int oy = (int)(m / p->out_w), ox = (int)(m % p->out_w);
        for (int o = n0; o < n1; o++) {
            double acc = bias_at(w, K, o);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    for (int i = 0; i < p->in_c; i++)
                        acc += at(p, in, oy * p->stride + ky - p->pad_top,
                                  ox * p->stride + kx - p->pad_left, i) *
                               weight_at(w, K, (size_t)(ky * 3 + kx) * p->in_c + i, o);
            out[m * p->out_c + o] = finish(acc, p->relu6);
        }
    }
}

static void ref_f32_dw3x3(const ssdf_conv_params *p, const float *in, const float *w,
                      const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                      float *scratch) {
    (void)res, (void)scratch;
    for (size_t m = m0; m < m1; m++) {
        const int oy = (int)(m / p->out_w), ox = (int)(m % p->out_w);
        for (int c = n0; c < n1; c++) {
            double acc = bias_at(w, 9, c);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    acc += at(p, in, oy * p->stride + ky - p->pad_top,
                              ox * p->stride + kx - p->pad_left, c) *
                           weight_at(w, 9, (size_t)(ky * 3 + kx), c);
            out[m * p->out_c + c] = finish(acc, p->relu6);
        }
    }
}

static void ref_f32_conv1x1(const ssdf_conv_params *p, const float *in, const float *w,
                        const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                        float *scratch) {
    const size_t K = (size_t)p->in_c;
    (void)scratch;
    for (size_t m = m0; m < m1; m++)
        for (int o = n0; o < n1; o++) {
            double acc = bias_at(w, K, o);
            for (size_t k = 0; k < K; k++) acc += (double)in[m * K + k] * weight_at(w, K, k, o);
            if (res) acc += res[m * p->out_c + o];
            out[m * p->out_c + o] = finish(acc, p->relu6);
        }
}

static void ref_u8_f32_resize_rows(const unsigned char *first_row, ptrdiff_t stride, const float *w,
                            int taps, size_t n, float *out) {
    for (size_t x = 0; x < n; x++) {
        double acc = 0.0;
        for (int t = 0; t < taps; t++) acc += (double)w[t] * first_row[(ptrdiff_t)t * stride + x];
        out[x] = (float)acc;
    }
}

/* The quantized kernels (kernels_qu8.h): int64 sums of the packed int8
 * weights, then the shared output stage. */
static int32_t q_bias_at(const uint8_t *w, size_t panel_bytes, int n) {
    int32_t b;
    memcpy(&b, w + (size_t)(n / SSDF_PANEL) * panel_bytes + 4 * (size_t)(n % SSDF_PANEL), 4);
    return b;
}
static float q_scale_at(const uint8_t *w, size_t panel_bytes, int n) {
    float s;
    memcpy(&s, w + (size_t)(n / SSDF_PANEL) * panel_bytes + 4 * (SSDF_PANEL + (size_t)(n % SSDF_PANEL)),
           4);
    return s;
}
static int q_gemm_weight(const uint8_t *w, size_t panel_bytes, size_t k, int n) {
    return (int8_t)w[(size_t)(n / SSDF_PANEL) * panel_bytes + ssdf_qu8_gemm_at(k, (size_t)(n % SSDF_PANEL))];
}
static int q_dw_weight(const uint8_t *w, size_t panel_bytes, size_t t, int n) {
    return (int8_t)w[(size_t)(n / SSDF_PANEL) * panel_bytes + ssdf_qu8_dw_at(t, (size_t)(n % SSDF_PANEL))];
}

/* Input byte at (iy, ix, c), in_zero outside the image (the SAME padding). */
static int q_at(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in, int iy,
                int ix, int c) {
    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) return q->in_zero;
    return in[((size_t)iy * p->in_w + ix) * p->in_c + c];
}

/* Output stage of element (m, o) from its exact sum. */
static void q_store(const ssdf_conv_params *p, const ssdf_qu8_output *q, int64_t acc, float scale,
                    void *out, size_t m, int o) {
    const size_t at = m * p->out_c + o;
    if (q->f32_out) {
        ((float *)out)[at] = (float)(int32_t)acc * scale;
        return;
    }
    const float f = ssdf_qu8_scaled((int32_t)acc, scale, q, q->res ? q->res[at] : 0);
    ((uint8_t *)out)[at] = ssdf_qu8_requantize(f, q);
}

static void ref_qu8_conv3x3(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                            const uint8_t *w, void *out, size_t m0, size_t m1, int n0, int n1,
                            uint8_t *scratch) {
    const size_t pb = ssdf_qu8_panel_bytes(SSDF_PANEL * ssdf_qu8_k4(9 * (size_t)p->in_c));
    (void)scratch;
    for (size_t m = m0; m < m1; m++) {
        const int oy = (int)(m / p->out_w), ox = (int)(m % p->out_w);
        for (int o = n0; o < n1; o++) {
            int64_t acc = q_bias_at(w, pb, o);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    for (int i = 0; i < p->in_c; i++)
                        acc += (int64_t)q_at(p, q, in, oy * p->stride + ky - p->pad_top,
                                             ox * p->stride + kx - p->pad_left, i) *
                               q_gemm_weight(w, pb, (size_t)(ky * 3 + kx) * p->in_c + i, o);
            q_store(p, q, acc, q_scale_at(w, pb, o), out, m, o);
        }
    }
}

static void ref_qu8_dw3x3(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                          const uint8_t *w, void *out, size_t m0, size_t m1, int n0, int n1,
                          uint8_t *scratch) {
    const size_t pb = ssdf_qu8_panel_bytes(9 * SSDF_PANEL);
    (void)scratch;
    for (size_t m = m0; m < m1; m++) {
        const int oy = (int)(m / p->out_w), ox = (int)(m % p->out_w);
        for (int c = n0; c < n1; c++) {
            int64_t acc = q_bias_at(w, pb, c);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    acc += (int64_t)q_at(p, q, in, oy * p->stride + ky - p->pad_top,
                                         ox * p->stride + kx - p->pad_left, c) *
                           q_dw_weight(w, pb, (size_t)(ky * 3 + kx), c);
            q_store(p, q, acc, q_scale_at(w, pb, c), out, m, c);
        }
    }
}

static void ref_qu8_conv1x1(const ssdf_conv_params *p, const ssdf_qu8_output *q, const uint8_t *in,
                            const uint8_t *w, void *out, size_t m0, size_t m1, int n0, int n1,
                            uint8_t *scratch) {
    const size_t K = (size_t)p->in_c, pb = ssdf_qu8_panel_bytes(SSDF_PANEL * ssdf_qu8_k4(K));
    (void)scratch;
    for (size_t m = m0; m < m1; m++)
        for (int o = n0; o < n1; o++) {
            int64_t acc = q_bias_at(w, pb, o);
            for (size_t k = 0; k < K; k++) acc += (int64_t)in[m * K + k] * q_gemm_weight(w, pb, k, o);
            q_store(p, q, acc, q_scale_at(w, pb, o), out, m, o);
        }
}

/* No fused kernel: the engine runs fused blocks layer by layer. */
const ssdf_kernel_table ssdf_kernels_reference = {.name = "reference",
                                                  .tile_m = 1,
                                                  .f32_conv3x3 = ref_f32_conv3x3,
                                                  .f32_dw3x3 = ref_f32_dw3x3,
                                                  .f32_conv1x1 = ref_f32_conv1x1,
                                                  .f32_block = NULL,
                                                  .qu8_tile_m = 1,
                                                  .qu8_conv3x3 = ref_qu8_conv3x3,
                                                  .qu8_dw3x3 = ref_qu8_dw3x3,
                                                  .qu8_conv1x1 = ref_qu8_conv1x1,
                                                  .u8_f32_resize_rows = ref_u8_f32_resize_rows};

#include "pack.h"

#include <string.h>

#include "kernels/layout.h"

/* The GEMM view of a weight tensor: K rows (reduction) by N columns (output
 * channels), and the strides of B[k][n] in the source array. */
typedef struct {
    size_t K, N, stride_k, stride_n;
} gemm_view;

static gemm_view view_of(const ssdf_tensor_spec *t) {
    gemm_view v = {0, 0, 0, 0};
    switch (t->kind) {
    case SSDF_KIND_CONV1X1: /* OHWI [N,1,1,K] */
    case SSDF_KIND_CONV3X3: /* OHWI [N,3,3,C]: k = (ky*3+kx)*C + c */
        v.N = (size_t)t->shape[0];
        v.K = ssdf_source_floats(t) / v.N;
        v.stride_k = 1;
        v.stride_n = v.K;
        break;
    case SSDF_KIND_DW3X3: /* [1,3,3,N]: k = tap */
        v.N = (size_t)t->shape[3];
        v.K = 9;
        v.stride_k = v.N;
        v.stride_n = 1;
        break;
    default:
        break;
    }
    return v;
}

size_t ssdf_source_floats(const ssdf_tensor_spec *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

size_t ssdf_packed_floats(const ssdf_tensor_spec *t) {
    if (t->kind == SSDF_KIND_BIAS) return ssdf_source_floats(t);
    const gemm_view v = view_of(t);
    return ssdf_panel_count(v.N) * ssdf_panel_floats(v.K);
}

void ssdf_pack_tensor(const ssdf_tensor_spec *t, const float *src, const float *bias, float *dst) {
    if (t->kind == SSDF_KIND_BIAS) {
        memcpy(dst, src, ssdf_source_floats(t) * sizeof(float));
        return;
    }
    const gemm_view v = view_of(t);
    memset(dst, 0, ssdf_packed_floats(t) * sizeof(float));
    for (size_t p = 0; p < ssdf_panel_count(v.N); p++) {
        float *panel = dst + p * ssdf_panel_floats(v.K);
        for (size_t j = 0; j < SSDF_PANEL; j++) {
            const size_t n = p * SSDF_PANEL + j;
            if (n >= v.N) break; /* padding columns stay zero */
            panel[j] = bias[n];
            for (size_t k = 0; k < v.K; k++)
                panel[SSDF_PANEL * (k + 1) + j] = src[k * v.stride_k + n * v.stride_n];
        }
    }
}

void ssdf_unpack_tensor(const ssdf_tensor_spec *t, const float *packed, float *src) {
    if (t->kind == SSDF_KIND_BIAS) {
        memcpy(src, packed, ssdf_source_floats(t) * sizeof(float));
        return;
    }
    const gemm_view v = view_of(t);
    for (size_t n = 0; n < v.N; n++) {
        const float *panel = packed + (n / SSDF_PANEL) * ssdf_panel_floats(v.K);
        for (size_t k = 0; k < v.K; k++)
            src[k * v.stride_k + n * v.stride_n] = panel[SSDF_PANEL * (k + 1) + n % SSDF_PANEL];
    }
}

int ssdf_packed_bias_equals(const ssdf_tensor_spec *t, const float *packed, const float *bias) {
    const gemm_view v = view_of(t);
    for (size_t n = 0; n < v.N; n++)
        if (memcmp(&packed[(n / SSDF_PANEL) * ssdf_panel_floats(v.K) + n % SSDF_PANEL], &bias[n],
                   sizeof(float)) != 0)
            return 0;
    return 1;
}

size_t ssdf_qu8_gemm_bytes(size_t n, size_t k) {
    return ssdf_panel_count(n) * ssdf_qu8_panel_bytes(SSDF_PANEL * ssdf_qu8_k4(k));
}

size_t ssdf_qu8_dw_bytes(size_t n) {
    return ssdf_panel_count(n) * ssdf_qu8_panel_bytes(9 * SSDF_PANEL);
}

/* Bias and scale of channel n into its panel's header. */
static void qu8_header(uint8_t *panel, size_t j, int32_t bias, float scale) {
    memcpy(panel + 4 * j, &bias, 4);
    memcpy(panel + 4 * (SSDF_PANEL + j), &scale, 4);
}

void ssdf_pack_qu8_gemm(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                        size_t k, uint8_t *dst) {
    const size_t pb = ssdf_qu8_panel_bytes(SSDF_PANEL * ssdf_qu8_k4(k));
    memset(dst, 0, ssdf_qu8_gemm_bytes(n, k));
    for (size_t c = 0; c < n; c++) {
        uint8_t *panel = dst + (c / SSDF_PANEL) * pb;
        const size_t j = c % SSDF_PANEL;
        qu8_header(panel, j, bias[c], scale[c]);
        for (size_t i = 0; i < k; i++) panel[ssdf_qu8_gemm_at(i, j)] = (uint8_t)w[c * k + i];
    }
}

void ssdf_pack_qu8_dw(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                      uint8_t *dst) {
    const size_t pb = ssdf_qu8_panel_bytes(9 * SSDF_PANEL);
    memset(dst, 0, ssdf_qu8_dw_bytes(n));
    for (size_t c = 0; c < n; c++) {
        uint8_t *panel = dst + (c / SSDF_PANEL) * pb;
        const size_t j = c % SSDF_PANEL;
        qu8_header(panel, j, bias[c], scale[c]);
        for (size_t t = 0; t < 9; t++) panel[ssdf_qu8_dw_at(t, j)] = (uint8_t)w[t * n + c];
    }
}

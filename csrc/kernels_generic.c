/* Portable fast kernels: plain C shaped so that the compiler vectorises the
 * innermost loop over output channels (contiguous in NHWC and in the packed
 * weights), with the padding checks hoisted out of the channel loops. */
#include "kernels.h"

#define RESTRICT __restrict__

static inline float clamp6(float v) { return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v); }

/* Valid kernel tap range [lo, hi) along one axis for output index `o`. */
static inline void tap_range(int o, int stride, int pad, int in, int *lo, int *hi) {
    int start = o * stride - pad;
    *lo = start < 0 ? -start : 0;
    *hi = start + 3 > in ? in - start : 3;
}

/* Output channels are processed in blocks of OC_BLOCK so that the
 * accumulators stay in L1 and the loops have a fixed maximum trip count. */
#define OC_BLOCK 64
#define PX_BLOCK 4

static void generic_conv1x1(const ssdf_conv_params *p, const float *RESTRICT in,
                            const float *RESTRICT w, const float *RESTRICT bias,
                            const float *RESTRICT res, float *RESTRICT out) {
    const size_t pixels = (size_t)p->out_h * p->out_w;
    const int K = p->in_c, N = p->out_c;
    for (size_t p0 = 0; p0 < pixels; p0 += PX_BLOCK) {
        const int np = pixels - p0 < PX_BLOCK ? (int)(pixels - p0) : PX_BLOCK;
        for (int o0 = 0; o0 < N; o0 += OC_BLOCK) {
            const int no = N - o0 < OC_BLOCK ? N - o0 : OC_BLOCK;
            float acc[PX_BLOCK][OC_BLOCK] __attribute__((aligned(64)));
            for (int r = 0; r < np; r++)
                for (int o = 0; o < no; o++) acc[r][o] = bias[o0 + o];
            for (int k = 0; k < K; k++) {
                const float *RESTRICT wk = w + (size_t)k * N + o0;
                for (int r = 0; r < np; r++) {
                    const float a = in[(p0 + r) * K + k];
                    for (int o = 0; o < no; o++) acc[r][o] += a * wk[o];
                }
            }
            for (int r = 0; r < np; r++) {
                float *RESTRICT dst = out + (p0 + r) * N + o0;
                if (res) {
                    const float *RESTRICT rr = res + (p0 + r) * N + o0;
                    for (int o = 0; o < no; o++) acc[r][o] += rr[o];
                }
                if (p->relu6)
                    for (int o = 0; o < no; o++) dst[o] = clamp6(acc[r][o]);
                else
                    for (int o = 0; o < no; o++) dst[o] = acc[r][o];
            }
        }
    }
}

static void generic_dw3x3(const ssdf_conv_params *p, const float *RESTRICT in,
                          const float *RESTRICT w, const float *RESTRICT bias,
                          const float *RESTRICT res, float *RESTRICT out) {
    (void)res;
    const int C = p->in_c;
    for (int oy = 0; oy < p->out_h; oy++) {
        int ky0, ky1;
        tap_range(oy, p->stride, p->pad_top, p->in_h, &ky0, &ky1);
        const int iy0 = oy * p->stride - p->pad_top;
        for (int ox = 0; ox < p->out_w; ox++) {
            int kx0, kx1;
            tap_range(ox, p->stride, p->pad_left, p->in_w, &kx0, &kx1);
            const int ix0 = ox * p->stride - p->pad_left;
            float *RESTRICT dst = out + ((size_t)oy * p->out_w + ox) * C;
            for (int c = 0; c < C; c++) dst[c] = bias[c];
            for (int ky = ky0; ky < ky1; ky++)
                for (int kx = kx0; kx < kx1; kx++) {
                    const float *RESTRICT src = in + ((size_t)(iy0 + ky) * p->in_w + (ix0 + kx)) * C;
                    const float *RESTRICT wk = w + (size_t)(ky * 3 + kx) * C;
                    for (int c = 0; c < C; c++) dst[c] += src[c] * wk[c];
                }
            if (p->relu6)
                for (int c = 0; c < C; c++) dst[c] = clamp6(dst[c]);
        }
    }
}

static void generic_conv3x3(const ssdf_conv_params *p, const float *RESTRICT in,
                            const float *RESTRICT w, const float *RESTRICT bias,
                            const float *RESTRICT res, float *RESTRICT out) {
    (void)res;
    const int K = p->in_c, N = p->out_c;
    for (int oy = 0; oy < p->out_h; oy++) {
        int ky0, ky1;
        tap_range(oy, p->stride, p->pad_top, p->in_h, &ky0, &ky1);
        const int iy0 = oy * p->stride - p->pad_top;
        for (int ox = 0; ox < p->out_w; ox++) {
            int kx0, kx1;
            tap_range(ox, p->stride, p->pad_left, p->in_w, &kx0, &kx1);
            const int ix0 = ox * p->stride - p->pad_left;
            float *RESTRICT dst = out + ((size_t)oy * p->out_w + ox) * N;
            for (int o0 = 0; o0 < N; o0 += OC_BLOCK) {
                const int no = N - o0 < OC_BLOCK ? N - o0 : OC_BLOCK;
                float acc[OC_BLOCK] __attribute__((aligned(64)));
                for (int o = 0; o < no; o++) acc[o] = bias[o0 + o];
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        const float *RESTRICT src =
                            in + ((size_t)(iy0 + ky) * p->in_w + (ix0 + kx)) * K;
                        const float *RESTRICT wt = w + (size_t)(ky * 3 + kx) * K * N + o0;
                        for (int k = 0; k < K; k++) {
                            const float a = src[k];
                            const float *RESTRICT wk = wt + (size_t)k * N;
                            for (int o = 0; o < no; o++) acc[o] += a * wk[o];
                        }
                    }
                if (p->relu6)
                    for (int o = 0; o < no; o++) dst[o0 + o] = clamp6(acc[o]);
                else
                    for (int o = 0; o < no; o++) dst[o0 + o] = acc[o];
            }
        }
    }
}

const ssdf_kernel_table ssdf_kernels_generic = {"generic", generic_conv3x3, generic_dw3x3,
                                                generic_conv1x1};

/* Reference kernels: the definition of each operation, written for clarity.
 * Double accumulation so that they are a trustworthy yardstick. */
#include "kernels.h"

static float finish(double acc, int relu6) {
    if (relu6) {
        if (acc < 0.0) acc = 0.0;
        if (acc > 6.0) acc = 6.0;
    }
    return (float)acc;
}

static void ref_conv3x3(const ssdf_conv_params *p, const float *in, const float *w,
                        const float *bias, const float *res, float *out) {
    (void)res;
    for (int oy = 0; oy < p->out_h; oy++)
        for (int ox = 0; ox < p->out_w; ox++)
            for (int o = 0; o < p->out_c; o++) {
                double acc = bias[o];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = oy * p->stride + ky - p->pad_top;
                        int ix = ox * p->stride + kx - p->pad_left;
                        if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                        for (int i = 0; i < p->in_c; i++)
                            acc += (double)in[((size_t)iy * p->in_w + ix) * p->in_c + i] *
                                   w[((size_t)(ky * 3 + kx) * p->in_c + i) * p->out_c + o];
                    }
                out[((size_t)oy * p->out_w + ox) * p->out_c + o] = finish(acc, p->relu6);
            }
}

static void ref_dw3x3(const ssdf_conv_params *p, const float *in, const float *w,
                      const float *bias, const float *res, float *out) {
    (void)res;
    for (int oy = 0; oy < p->out_h; oy++)
        for (int ox = 0; ox < p->out_w; ox++)
            for (int c = 0; c < p->out_c; c++) {
                double acc = bias[c];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = oy * p->stride + ky - p->pad_top;
                        int ix = ox * p->stride + kx - p->pad_left;
                        if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                        acc += (double)in[((size_t)iy * p->in_w + ix) * p->in_c + c] *
                               w[(size_t)(ky * 3 + kx) * p->out_c + c];
                    }
                out[((size_t)oy * p->out_w + ox) * p->out_c + c] = finish(acc, p->relu6);
            }
}

static void ref_conv1x1(const ssdf_conv_params *p, const float *in, const float *w,
                        const float *bias, const float *res, float *out) {
    size_t pixels = (size_t)p->out_h * p->out_w;
    for (size_t px = 0; px < pixels; px++)
        for (int o = 0; o < p->out_c; o++) {
            double acc = bias[o];
            for (int i = 0; i < p->in_c; i++)
                acc += (double)in[px * p->in_c + i] * w[(size_t)i * p->out_c + o];
            if (res) acc += res[px * p->out_c + o];
            out[px * p->out_c + o] = finish(acc, p->relu6);
        }
}

const ssdf_kernel_table ssdf_kernels_reference = {"reference", ref_conv3x3, ref_dw3x3, ref_conv1x1};

/* Convolution kernels. Every kernel exists twice: a plain reference version
 * (kernels_ref.c, direct loops, double accumulation, obviously correct) and
 * the fast version the engine runs. Tests compare the two on random shapes.
 *
 * All tensors are NHWC with one image (HWC), float32, channels innermost.
 * Weights are in the packed layouts of pack.h. Each kernel fuses bias, an
 * optional residual add (1x1 only) and an optional ReLU6, in that order. */
#ifndef SSDF_KERNELS_H
#define SSDF_KERNELS_H

#include <stddef.h>

typedef struct {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int stride;
    int pad_top, pad_left;
    int relu6;
} ssdf_conv_params;

/* `res` may be NULL; it has the output's shape. `out` must not alias `in`
 * or `res`. */
typedef void (*ssdf_conv_fn)(const ssdf_conv_params *p, const float *in, const float *w,
                             const float *bias, const float *res, float *out);

typedef struct {
    const char *name;
    ssdf_conv_fn conv3x3; /* full 3x3 conv, any stride */
    ssdf_conv_fn dw3x3;   /* depthwise 3x3, any stride */
    ssdf_conv_fn conv1x1; /* pointwise, stride 1 */
} ssdf_kernel_table;

extern const ssdf_kernel_table ssdf_kernels_reference;
extern const ssdf_kernel_table ssdf_kernels_generic;

#endif

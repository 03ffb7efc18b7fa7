/* Image preprocessing: uint8 image (gray, RGB or RGBA, any size) to the
 * network input, resized with an antialiased triangle ("bilinear") filter and
 * normalised to (v - 127.5) / 127.5.
 *
 * Per axis, input length n to output length m: scale = n / m, filter width
 * f = max(scale, 1); output i is centred at (i + 0.5) * scale and takes the
 * input pixels j in [int(centre - f + 0.5), int(centre + f + 0.5)) clipped to
 * the image, weighted by max(0, 1 - |j + 0.5 - centre| / f), weights
 * normalised to sum 1. This is plain bilinear when enlarging and an area-like
 * average when shrinking (the same filter as Pillow's BILINEAR resize, in
 * float without intermediate rounding).
 *
 * Each output row is the vertical filter over the input rows into a float row
 * (the bulk of the work, done by the ISA's kernel), then the horizontal
 * filter. A plan holds the filter taps; rows can be computed by several
 * threads at once, each with its own row buffer. */
#ifndef SSDF_RESIZE_H
#define SSDF_RESIZE_H

#include <stddef.h>

#include "common.h"
#include "kernels/kernels.h"

typedef struct {
    int *first, *count; /* taps of each output index */
    float *weights;     /* max_taps per output index */
    int max_taps;
} ssdf_axis_filter;

typedef struct {
    const unsigned char *src;
    int height, width, channels;
    ptrdiff_t row_stride;
    int out_h, out_w;
    ssdf_axis_filter fx, fy;
    float *rows; /* nthreads row buffers of 3 * width floats */
    int nthreads;
} ssdf_resize_plan;

/* `src` has `height` rows of `width` pixels of `channels` (1, 3 or 4) bytes,
 * rows `row_stride` bytes apart. Gray is replicated to RGB, alpha dropped. */
int ssdf_resize_plan_init(ssdf_resize_plan *plan, const unsigned char *src, int height, int width,
                          int channels, ptrdiff_t row_stride, int out_h, int out_w, int nthreads,
                          ssdf_error *err);
void ssdf_resize_plan_free(ssdf_resize_plan *plan);

/* Output rows [y0, y1) into dst (out_h x out_w x 3 floats), using row buffer
 * `thread` of the plan. */
void ssdf_resize_rows(const ssdf_resize_plan *plan, const ssdf_kernel_table *k, int y0, int y1,
                      int thread, float *dst);

/* The whole image on the calling thread, with kernel table k. */
int ssdf_resize_normalize(const unsigned char *src, int height, int width, int channels,
                          ptrdiff_t row_stride, int out_h, int out_w, float *dst,
                          const ssdf_kernel_table *k, ssdf_error *err);

#endif

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
 * The filter is separable: a vertical and a horizontal pass, in float32.
 * Long sums are taken in blocks of SSDF_RESIZE_BLOCK taps (then the block
 * sums added up), so that an axis shrunk by a huge factor (tens of thousands
 * of taps per output) keeps its rounding error small.
 *
 * Pass order, picked so that the cost is O(input pixels + output pixels):
 * - Vertical first when height >= out_h (the common case: photos shrink).
 *   Each output row is the vertical filter over its input rows into a float
 *   row of channels x width (the bulk of the work, done by the ISA's kernel),
 *   then the horizontal filter of that row. The output rows read about
 *   2 x height + out_h <= 3 x height input rows in all.
 * - Horizontal first when height < out_h (enlarging vertically). Vertical
 *   first would build a whole input-width row for each of the out_h output
 *   rows: out_h x width work, more than the input has pixels (1 x 20,000,000
 *   took a minute). Instead the horizontal filter runs once over each input
 *   row, into a height x out_w float image (smaller than the output, as
 *   height < out_h), then each output row is the vertical filter over the
 *   rows of that image (at most 3 taps when enlarging).
 *
 * Memory besides the output, every size overflow-checked and nothing sized
 * by the input on the stack:
 * - per thread, one float row (vertical first: channels x width floats;
 *   horizontal first: out_w x 3), and the weights of one output index for
 *   an axis without a table (at most 2 n / m + 3 floats);
 * - horizontal first: the height x out_w x 3 float image;
 * - per axis, a table of the weights of every output index: m x max_taps
 *   floats, about 2 n + 3 m. The horizontal table is kept up to the image's
 *   size in bytes (its weights serve every row), the vertical one only up to
 *   SSDF_RESIZE_TABLE_FLOATS (each output row uses its weights once). Past
 *   that, as for a very long axis shrunk to a network input, each output index computes
 *   its weights when it needs them, into its thread's scratch: both give the
 *   same weights.
 *
 * A plan's work can be split between threads, each with its own scratch;
 * every output value is computed the same way whatever the split, so the
 * result does not depend on the thread count. */
#ifndef SSDF_RESIZE_H
#define SSDF_RESIZE_H

#include <stddef.h>

#include "common.h"
#include "kernels/kernels.h"

/* Weight tables up to this many floats (1 MiB) are always kept: any axis up
 * to about 130,000 pixels resized to a network input of a few hundred. */
#define SSDF_RESIZE_TABLE_FLOATS ((size_t)1 << 18)

typedef struct {
    int n, m;              /* input and output length */
    double scale, support; /* n / m and the filter's half width max(scale, 1) */
    double inv_support;
    int max_taps;          /* taps of any one output index, <= n */
    /* The table (NULL when the weights are computed on demand): taps of
     * output i are input first[i] ... first[i] + count[i] - 1, weighted by
     * weights[i * max_taps ...]. */
    int *first, *count;
    float *weights;
} ssdf_axis_filter;

typedef struct {
    const unsigned char *src;
    int height, width, channels;
    ptrdiff_t row_stride;
    int out_h, out_w;
    int horizontal_first; /* height < out_h: see above */
    int mid_c;            /* channels between the passes: 1 (gray) or 3 */
    ssdf_axis_filter fx, fy;
    float *mid;           /* horizontal first: height x out_w x mid_c floats */
    float *scratch;       /* nthreads x scratch_floats */
    size_t scratch_floats;
    size_t wx_at, wy_at;  /* a thread's row at 0, then its weights of fx, fy */
    int nthreads;
} ssdf_resize_plan;

/* `src` has `height` rows of `width` pixels of `channels` (1, 3 or 4) bytes,
 * rows `row_stride` bytes apart. Gray is replicated to RGB, alpha dropped.
 * Fails with SSDF_ERR_VALUE on bad arguments or sizes that overflow, and
 * SSDF_ERR_NOMEM when the scratch cannot be allocated. */
int ssdf_resize_plan_init(ssdf_resize_plan *plan, const unsigned char *src, int height, int width,
                          int channels, ptrdiff_t row_stride, int out_h, int out_w, int nthreads,
                          ssdf_error *err);
void ssdf_resize_plan_free(ssdf_resize_plan *plan);

/* A plan runs in two steps. First the horizontal pass: work items [i0, i1)
 * of ssdf_resize_prepass_items(plan) (0 when the plan is vertical first:
 * nothing to do), one item being one pixel of the intermediate image. Then,
 * once every item is done, the output rows. Items and rows may be split
 * between threads in any way, thread t using its own scratch. */
size_t ssdf_resize_prepass_items(const ssdf_resize_plan *plan);
void ssdf_resize_prepass(const ssdf_resize_plan *plan, size_t i0, size_t i1, int thread);

/* Output rows [y0, y1) into dst, with scratch `thread` of the plan: output
 * pixel (y, x) goes to dst[y * out_stride + 3 * x ...], out_stride >=
 * 3 * out_w floats (3 * out_w for a whole out_h x out_w x 3 image; more
 * for a rectangle inside a larger image, dst pointing at its corner). The
 * floats between one row's end and the next row are not touched. */
void ssdf_resize_rows(const ssdf_resize_plan *plan, const ssdf_kernel_table *k, int y0, int y1,
                      int thread, float *dst, size_t out_stride);

/* The whole image on the calling thread, with kernel table k. */
int ssdf_resize_normalize(const unsigned char *src, int height, int width, int channels,
                          ptrdiff_t row_stride, int out_h, int out_w, float *dst,
                          const ssdf_kernel_table *k, ssdf_error *err);

#endif

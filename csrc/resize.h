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
 * float without intermediate rounding). */
#ifndef SSDF_RESIZE_H
#define SSDF_RESIZE_H

#include <stddef.h>

#include "common.h"

/* `src` has `height` rows of `width` pixels of `channels` (1, 3 or 4) bytes,
 * rows `row_stride` bytes apart. Gray is replicated to RGB, alpha dropped.
 * `dst` receives out_h x out_w x 3 floats. */
int ssdf_resize_normalize(const unsigned char *src, int height, int width, int channels,
                          ptrdiff_t row_stride, int out_h, int out_w, float *dst, ssdf_error *err);

#endif

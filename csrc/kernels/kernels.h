/* Convolution kernels and their per-ISA variants.
 *
 * Every operation exists as a plain reference kernel (reference.c: direct
 * loops, double accumulation, obviously correct) and as fast variants built
 * from one driver (conv_driver.h) with a microkernel per instruction set:
 * scalar.c (portable C), avx2.c (AVX2+FMA), avx512.c (AVX-512F), listed once
 * in isa_list.h. Each variant is compiled with its own flags and picked at
 * run time (dispatch.c), so the extension runs on any CPU of its
 * architecture.
 *
 * Every kernel name carries its data types: f32 (float32 activations and
 * weights) today; a qs8 set would sit beside it with its own names.
 *
 * Tensors are one image, HWC, float32, channels innermost. Weights use the
 * packed "panel" layout of layout.h. Kernels fuse bias, an optional residual add
 * (1x1 only) and an optional ReLU6, in that order. */
#ifndef SSDF_KERNELS_H
#define SSDF_KERNELS_H

#include <stddef.h>

#include "layout.h"
#include "isa_list.h"

typedef struct {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int stride;
    int pad_top, pad_left;
    int relu6;
} ssdf_conv_params;

/* One kernel call computes output pixels [m0, m1) (raster order over
 * out_h x out_w) and output channels [n0, n1); n0 is a multiple of
 * SSDF_PANEL, n1 is one or out_c. `res` (1x1 only) may be NULL and has the
 * output's shape. `scratch` holds ssdf_f32_conv_scratch_floats() floats, private
 * to the calling thread. `out` must not alias `in` or `res`. */
typedef void (*ssdf_f32_conv_fn)(const ssdf_conv_params *p, const float *in, const float *w,
                             const float *res, float *out, size_t m0, size_t m1, int n0, int n1,
                             float *scratch);

/* A fused block: producer (1x1 expand, or a 3x3 conv with 9 * in_c <=
 * SSDF_DIRECT_MAX_K), depthwise 3x3, then 1x1 project with an optional
 * residual. */
typedef struct {
    int producer_k; /* 1 or 3 */
    ssdf_conv_params producer, dw, project;
    const float *in;  /* producer input */
    const float *w_producer, *w_dw, *w_project;
    const float *res; /* added to the project output, or NULL */
    float *out;       /* project output */
} ssdf_f32_block;

/* Compute depthwise output rows [y0, y1) of the block and the matching
 * project output rows; `scratch` holds ssdf_f32_block_scratch_floats() floats,
 * private to the calling thread. */
typedef void (*ssdf_f32_block_fn)(const ssdf_f32_block *b, int y0, int y1, float *scratch);

#define SSDF_RING_ROWS 4 /* producer rows kept: a 3-row window plus one for stride 2 */
#define SSDF_DIRECT_MAX_K 64

static inline size_t ssdf_ring_floats(int width, int channels) {
    return (size_t)SSDF_RING_ROWS * (size_t)width * (size_t)channels;
}

/* The producer rows depthwise output row oy (of a 3x3 window, `dw`'s stride
 * and padding) needs that the ring does not hold yet (it holds rows up to
 * `done`): [*first, *last], empty when *first > *last. Returns the window's
 * top input row (negative in the padding). Shared by the f32 and qu8 blocks. */
static inline int ssdf_ring_need(const ssdf_conv_params *dw, int oy, int done, int *first,
                                 int *last) {
    const int top = oy * dw->stride - dw->pad_top;
    *last = top + 2 < dw->in_h - 1 ? top + 2 : dw->in_h - 1;
    *first = done + 1 > top ? done + 1 : top;
    if (*first < 0) *first = 0;
    return top;
}

/* Depthwise rows per project GEMM: at least 32 pixels, so the GEMM tiles. */
static inline int ssdf_band_rows(int width) { return (32 + width - 1) / width; }

static inline size_t ssdf_f32_block_scratch_floats(const ssdf_f32_block *b) {
    return ssdf_ring_floats(b->producer.out_w, b->producer.out_c) +
           (size_t)ssdf_band_rows(b->dw.out_w) * b->dw.out_w * b->dw.out_c +
           9 * (size_t)b->producer.in_c;
}

#include "kernels_qu8.h"

typedef struct {
    const char *name;
    int tile_m; /* output pixels per microkernel tile: the unit of work splits */
    ssdf_f32_conv_fn f32_conv3x3; /* full 3x3 conv, any stride */
    ssdf_f32_conv_fn f32_dw3x3;   /* depthwise 3x3, any stride */
    ssdf_f32_conv_fn f32_conv1x1; /* pointwise, stride 1 */
    ssdf_f32_block_fn f32_block;  /* a fused block (fast variants only; NULL: run its layers) */
    /* The quantized kernels (kernels_qu8.h); NULL in a variant without them
     * (and the f32 ones NULL in a variant with only quantized kernels). */
    int qu8_tile_m; /* output pixels per quantized GEMM tile */
    ssdf_qu8_conv_fn qu8_conv3x3;
    ssdf_qu8_conv_fn qu8_dw3x3;
    ssdf_qu8_conv_fn qu8_conv1x1;
    ssdf_qu8_block_fn qu8_block; /* NULL: run the block's layers one by one */
    ssdf_qu8_quantize_fn qu8_quantize; /* NULL: the engine's plain loop */
    /* out[x] = sum over t < taps of w[t] * first_row[t * stride + x], x < n
     * (uint8 rows `stride` bytes apart): the vertical pass of the image
     * resize. The fast variants sum the taps in blocks of
     * SSDF_RESIZE_BLOCK, then the block sums in order; the reference one in
     * double. */
    void (*u8_f32_resize_rows)(const unsigned char *first_row, ptrdiff_t stride, const float *w,
                        int taps, size_t n, float *out);
} ssdf_kernel_table;

/* Taps per accumulation block of the resize (see resize.h). */
#define SSDF_RESIZE_BLOCK 256

/* Largest tile a variant may use, and the im2col chunk budget (floats) of
 * the 3x3 conv: together they bound the per-thread scratch. */
#define SSDF_MAX_TILE_M 16
#define SSDF_IM2COL_FLOATS (96 * 1024)

static inline size_t ssdf_f32_conv_scratch_floats(int in_c) {
    const size_t tile = (size_t)SSDF_MAX_TILE_M * 9 * (size_t)in_c;
    return tile > SSDF_IM2COL_FLOATS ? tile : SSDF_IM2COL_FLOATS;
}

/* A variant's table, from the field lists its drivers define
 * (SSDF_F32_TABLE_FIELDS, SSDF_QU8_TABLE_FIELDS):
 * SSDF_DEFINE_KERNEL_TABLE(avx2, SSDF_F32_TABLE_FIELDS, SSDF_QU8_TABLE_FIELDS) */
#define SSDF_DEFINE_KERNEL_TABLE(NAME, ...) \
    const ssdf_kernel_table ssdf_kernels_##NAME = {.name = #NAME, __VA_ARGS__};

/* One table per variant of isa_list.h: ssdf_kernels_<name>. */
#define SSDF_DECLARE_KERNEL_TABLE(name, features, flags) extern const ssdf_kernel_table ssdf_kernels_##name;
SSDF_ISA_LIST(SSDF_DECLARE_KERNEL_TABLE)
#undef SSDF_DECLARE_KERNEL_TABLE

/* Runtime dispatch (dispatch.c). Kernel sets by name: those of isa_list.h. */
typedef struct {
    const char *name;
    const ssdf_kernel_table *table;
    int supported; /* this CPU and OS can run it */
} ssdf_kernel_choice;

#define SSDF_MAX_KERNEL_SETS 16

/* The data types kernels run in. */
typedef enum { SSDF_DTYPE_F32 = 0, SSDF_DTYPE_QU8 = 1 } ssdf_dtype;

/* Every kernel set this build has, reference first, best last. */
int ssdf_kernel_choices(ssdf_kernel_choice *out, int max);

/* Whether a set has the kernels of this data type. */
int ssdf_kernels_have(const ssdf_kernel_table *t, ssdf_dtype dtype);

/* The fastest supported set with kernels of this data type, and with f32. */
const ssdf_kernel_table *ssdf_kernels_best_for(ssdf_dtype dtype);
const ssdf_kernel_table *ssdf_kernels_best(void);

/* The set with this name, or NULL when unknown or unsupported here. */
const ssdf_kernel_table *ssdf_kernels_by_name(const char *name);

#endif

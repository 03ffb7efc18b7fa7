/* The engine's insides, shared by engine.c (creation, buffers, the step
 * loop, forward) and views.c (views, batches, lanes). Not a public header. */
#ifndef SSDF_ENGINE_INTERNAL_H
#define SSDF_ENGINE_INTERNAL_H

#include <stddef.h>

#include "engine.h"
#include "fuse.h"
#include "threadpool.h"

#define MAX_THREADS 256
#define RESTART_FAILED                                                                        \
    "could not start the detector's worker threads in this process (after fork): the system " \
    "refused a new thread; nothing ran, the next call tries again"

/* The buffers one forward pass runs on: the engine's own set ("main"), for
 * a pass split between the threads, and one set per thread ("lanes"), for
 * batches that run a whole image on each thread. */
typedef struct {
    float *slots[SSDF_MAX_SLOTS];
    float *input, *boxes, *logits;
    void *post;      /* ssdf_postprocess scratch */
    float *spill[2]; /* fused blocks' intermediates, for unfused kernels only */
    uint8_t *qinput; /* the quantized network input, in the int8 mode only */
    void *mem;       /* a lane's own allocation (slots ... post); NULL in main */
} buffer_set;

/* Byte offsets of a buffer set's parts in its memory: slots, input, boxes,
 * logits, post-processing scratch. */
#define SET_PARTS (SSDF_MAX_SLOTS + 4)

struct ssdf_engine {
    const ssdf_model *model;
    ssdf_plan plan; /* the fused steps and every layer's buffers (fuse.h) */
    const ssdf_kernel_table *kernels;  /* f32 kernels (and the resize) */
    const ssdf_kernel_table *qkernels; /* qu8 kernels */
    ssdf_dtype precision;              /* what forward runs: f32, or qu8 (the int8 mode) */
    ssdf_pool *pool;
    int nthreads;
    uint8_t *blob_copy; /* owned copy when the caller's blob was misaligned */
    const float *tensors[SSDF_MAX_TENSORS];
    ssdf_qu8_model qu8; /* the blob's quantized model, when info.has_qu8 */
    ssdf_blob_info info;
    /* Arena: the main buffer set, then per-thread scratch. */
    float *arena;
    size_t arena_bytes;
    buffer_set main;
    buffer_set *lanes; /* nthreads sets once a batch has run on lanes, or NULL */
    float *scratch[MAX_THREADS];
    float *anchors; /* the model's anchors, num_anchors x 4 */
};

/* Arguments of one forward pass, shared by the threads running it. */
typedef struct {
    const ssdf_engine *e;
    const buffer_set *b; /* slots and spill buffers */
    const float *input;
    float *boxes, *logits;
    double *seconds; /* per-layer times, or NULL */
    int *nonfinite;  /* int8: set when the quantization meets a NaN or an
                        infinity, and the layers are skipped (the caller
                        checks the input itself then); NULL: checked before */
} forward_job;

/* Start of part t of T of [0, n). */
static inline size_t ssdf_split_at(size_t n, int t, int T) {
    const size_t q = n / (size_t)T, r = n % (size_t)T;
    return q * (size_t)t + ((size_t)t < r ? (size_t)t : r);
}

/* The int8 mode (engine_qu8.c): quantize job's input into the set's qinput
 * (rows of part `part` of `parts`), and run layer l with the qu8 kernels. */
int ssdf_engine_quantize_input(const forward_job *job, int part, int parts);
void ssdf_engine_run_layer_qu8(const forward_job *job, int l, int part, int parts,
                               float *scratch);
/* The fused block starting at layer `first` through the qu8 block kernel;
 * 0 (nothing run) when the kernels have none or the block's shape does not
 * suit it: the caller then runs its layers. */
int ssdf_engine_run_block_qu8(const forward_job *job, int first, int part, int parts,
                              float *scratch);
ssdf_qu8_block ssdf_engine_qu8_block_shape(const ssdf_model *m, int first);

/* Thread t's share of a layer (engine.c). */
void ssdf_engine_layer_share(const ssdf_layer *L, int tile_m, int t, int T, size_t *m0,
                             size_t *m1, int *n0, int *n1);

/* Where a plan buffer is on job's buffers (engine.c). */
float *ssdf_engine_resolve(int buf, const forward_job *job);

/* The step loop on job's buffers as part `part` of `parts` (engine.c). */
void ssdf_engine_run_layers(const forward_job *job, int part, int parts, float *scratch);

/* One image split between the threads, on the main buffer set's slots.
 * nonfinite: see forward_job (NULL when the input is known finite). */
int ssdf_engine_run_split(ssdf_engine *e, const float *input, float *boxes, float *logits,
                          double *seconds, int *nonfinite, ssdf_error *err);

/* ssdf_engine_run_split of image `image` of n, its input checked finite
 * (before it in f32, during its quantization in int8). */
int ssdf_engine_run_checked(ssdf_engine *e, const float *input, float *boxes, float *logits,
                            double *seconds, int image, int n, ssdf_error *err);

/* SSDF_ERR_VALUE when image `image` of n holds a non-finite value. */
int ssdf_engine_check_finite(const ssdf_model *m, const float *input, int image, int n,
                             ssdf_error *err);

/* One buffer set per thread, allocated by the first call that needs them. */
int ssdf_engine_ensure_lanes(ssdf_engine *e, ssdf_error *err);

#endif

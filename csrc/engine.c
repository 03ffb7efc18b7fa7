#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resize.h"
#include "threadpool.h"

#define MAX_THREADS 256
#define RESTART_FAILED                                                                        \
    "could not start the detector's worker threads in this process (after fork): the system " \
    "refused a new thread; nothing ran, the next call tries again"

struct ssdf_engine {
    const ssdf_graph *graph;
    const ssdf_kernel_table *kernels;
    ssdf_pool *pool;
    int nthreads;
    uint8_t *blob_copy; /* owned copy when the caller's blob was misaligned */
    const float *tensors[SSDF_MAX_TENSORS];
    ssdf_blob_info info;
    /* Arena: the slots, the detect path's buffers, then per-thread scratch. */
    float *arena;
    size_t arena_bytes;
    float *slots[SSDF_NUM_SLOTS];
    float *input, *boxes, *logits;
    float *scratch[MAX_THREADS];
    float *spill[2]; /* fused blocks' intermediates, for unfused kernels only */
    float anchors[SSDF_NUM_ANCHORS * 4];
};

/* Arguments of one forward pass, shared by the threads running it. */
typedef struct {
    ssdf_engine *e;
    const float *input;
    float *boxes, *logits;
    double *seconds; /* per-layer times, or NULL */
} forward_job;

static ssdf_conv_params params_of(const ssdf_layer *L) {
    const ssdf_conv_params p = {L->in_h,  L->in_w,   L->in_c,    L->out_h,    L->out_w,
                                L->out_c, L->stride, L->pad_top, L->pad_left, L->relu6};
    return p;
}

static float *resolve(const ssdf_engine *e, int buf, const forward_job *job) {
    switch (buf) {
    case SSDF_BUF_INPUT: return (float *)job->input;
    case SSDF_BUF_BOXES: return job->boxes;
    case SSDF_BUF_CLASSES: return job->logits;
    case SSDF_BUF_SPILL0: return e->spill[0];
    case SSDF_BUF_SPILL1: return e->spill[1];
    case SSDF_BUF_NONE: return NULL;
    default: return e->slots[buf - SSDF_BUF_SLOT0];
    }
}

/* The fused block made of layer P (producer), P+1 (depthwise) and P+2
 * (project). With job NULL only the shapes are filled in. */
static ssdf_block block_of(const ssdf_engine *e, const ssdf_layer *P, const forward_job *job) {
    const ssdf_layer *D = P + 1, *J = P + 2;
    ssdf_block b;
    b.producer_k = P->op == SSDF_OP_CONV3X3 ? 3 : 1;
    b.producer = params_of(P);
    b.dw = params_of(D);
    b.project = params_of(J);
    b.w_producer = e->tensors[P->weight];
    b.w_dw = e->tensors[D->weight];
    b.w_project = e->tensors[J->weight];
    b.in = job ? resolve(e, P->src, job) : NULL;
    b.res = job ? resolve(e, J->res, job) : NULL;
    b.out = job ? resolve(e, J->dst, job) : NULL;
    return b;
}

int ssdf_engine_create(ssdf_engine **out, const uint8_t *blob, size_t size, int num_threads,
                       ssdf_error *err) {
    ssdf_engine *e;
    size_t offsets[SSDF_NUM_SLOTS + 3], total = 0, scratch_floats = 0;
    int rc;
    *out = NULL;
    if (num_threads < 1 || num_threads > MAX_THREADS)
        return ssdf_fail(err, SSDF_ERR_VALUE, "num_threads must be in [1, %d], got %d",
                         MAX_THREADS, num_threads);
    if (!(e = calloc(1, sizeof *e))) return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory");
    e->graph = ssdf_graph_get();
    e->kernels = ssdf_kernels_best();
    e->nthreads = num_threads;

    if ((uintptr_t)blob % SSDF_ALIGN != 0) {
        if (!(e->blob_copy = ssdf_aligned_alloc(size))) {
            free(e);
            return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory copying the weights");
        }
        memcpy(e->blob_copy, blob, size);
        blob = e->blob_copy;
    }
    rc = ssdf_blob_open(blob, size, e->graph, e->tensors, &e->info, err);
    if (rc) {
        ssdf_engine_destroy(e);
        return rc;
    }

    /* One allocation for all activations, each buffer 64-byte aligned. */
    for (int s = 0; s < SSDF_NUM_SLOTS; s++) {
        offsets[s] = total;
        total += ssdf_round_up(e->graph->slot_floats[s] * sizeof(float), SSDF_ALIGN);
    }
    offsets[SSDF_NUM_SLOTS] = total;
    total += ssdf_round_up(sizeof(float) * SSDF_INPUT_SIZE * SSDF_INPUT_SIZE * 3, SSDF_ALIGN);
    offsets[SSDF_NUM_SLOTS + 1] = total;
    total += ssdf_round_up(sizeof(float) * SSDF_NUM_ANCHORS * 4, SSDF_ALIGN);
    offsets[SSDF_NUM_SLOTS + 2] = total;
    total += ssdf_round_up(sizeof(float) * SSDF_NUM_ANCHORS * 2, SSDF_ALIGN);
    for (int l = 0; l < e->graph->n_layers; l++) {
        const ssdf_layer *L = &e->graph->layers[l];
        if (L->op == SSDF_OP_CONV3X3 && ssdf_conv_scratch_floats(L->in_c) > scratch_floats)
            scratch_floats = ssdf_conv_scratch_floats(L->in_c);
        if (L->fuse_next && L[1].fuse_next) { /* a fused block starts here */
            const ssdf_block blk = block_of(e, L, NULL);
            if (ssdf_block_scratch_floats(&blk) > scratch_floats)
                scratch_floats = ssdf_block_scratch_floats(&blk);
        }
    }
    const size_t scratch_bytes = ssdf_round_up(scratch_floats * sizeof(float), SSDF_ALIGN);
    const size_t scratch_at = total;
    total += scratch_bytes * (size_t)num_threads;
    if (!(e->arena = ssdf_aligned_alloc(total))) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory for the %zu-byte arena", total);
    }
    e->arena_bytes = total;
    for (int s = 0; s < SSDF_NUM_SLOTS; s++) e->slots[s] = (float *)((char *)e->arena + offsets[s]);
    e->input = (float *)((char *)e->arena + offsets[SSDF_NUM_SLOTS]);
    e->boxes = (float *)((char *)e->arena + offsets[SSDF_NUM_SLOTS + 1]);
    e->logits = (float *)((char *)e->arena + offsets[SSDF_NUM_SLOTS + 2]);
    for (int t = 0; t < num_threads; t++)
        e->scratch[t] = (float *)((char *)e->arena + scratch_at + (size_t)t * scratch_bytes);

    if (!(e->pool = ssdf_pool_create(num_threads))) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_THREADS, "could not start %d threads", num_threads);
    }
    ssdf_anchors(e->graph, e->anchors);
    *out = e;
    return SSDF_OK;
}

void ssdf_engine_destroy(ssdf_engine *e) {
    if (!e) return;
    ssdf_pool_destroy(e->pool);
    ssdf_aligned_free(e->spill[0]);
    ssdf_aligned_free(e->spill[1]);
    ssdf_aligned_free(e->arena);
    ssdf_aligned_free(e->blob_copy);
    free(e);
}

const ssdf_blob_info *ssdf_engine_info(const ssdf_engine *e) { return &e->info; }
int ssdf_engine_threads(const ssdf_engine *e) { return e->nthreads; }
int ssdf_engine_set_kernels(ssdf_engine *e, const ssdf_kernel_table *k, ssdf_error *err) {
    /* Kernels that cannot run a block fused run its layers one by one, and
     * need the intermediates materialised. */
    for (int i = 0; i < 2 && !k->block; i++) {
        if (e->spill[i]) continue;
        e->spill[i] = ssdf_aligned_alloc(e->graph->spill_floats[i] * sizeof(float));
        if (!e->spill[i]) return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory");
        e->arena_bytes += e->graph->spill_floats[i] * sizeof(float);
    }
    e->kernels = k;
    return SSDF_OK;
}
const ssdf_kernel_table *ssdf_engine_kernels(const ssdf_engine *e) { return e->kernels; }
const float *ssdf_engine_anchors(const ssdf_engine *e) { return e->anchors; }
const float *ssdf_engine_tensor(const ssdf_engine *e, int i) { return e->tensors[i]; }
size_t ssdf_engine_arena_bytes(const ssdf_engine *e) { return e->arena_bytes; }

/* Thread t's share of a layer. Output pixels are split when the input (A)
 * outweighs the weights (B) and there are enough row tiles for every thread
 * to get several; otherwise output channels are split, so that each thread
 * streams only its part of B (the deep layers: 19x19, 10x10, 5x5 ...). */
static void layer_share(const ssdf_layer *L, int tile_m, int t, int T, size_t *m0, size_t *m1,
                        int *n0, int *n1) {
    const size_t M = (size_t)L->out_h * L->out_w;
    const size_t tiles = (M + tile_m - 1) / tile_m;
    const int panels = (L->out_c + SSDF_PANEL - 1) / SSDF_PANEL;
    const size_t a_floats = (size_t)L->in_h * L->in_w * L->in_c;
    const size_t b_floats = (size_t)L->in_c * L->out_c * (L->op == SSDF_OP_CONV3X3 ? 9 : 1);
    const int split_m = tiles >= 4 * (size_t)T && (a_floats >= b_floats || panels < 2 * T);
    *m0 = 0, *m1 = M, *n0 = 0, *n1 = L->out_c;
    if (T == 1) return;
    if (split_m || panels < T) {
        *m0 = tiles * t / T * tile_m;
        *m1 = tiles * (t + 1) / T * tile_m;
        if (*m1 > M) *m1 = M;
    } else { /* split panels in pairs so that wide tiles stay whole */
        const int pairs = (panels + 1) / 2;
        *n0 = pairs * t / T * 2 * SSDF_PANEL;
        *n1 = pairs * (t + 1) / T * 2 * SSDF_PANEL;
        if (*n1 > L->out_c) *n1 = L->out_c;
        if (*n0 > L->out_c) *n0 = L->out_c;
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void forward_region(void *ctx, int t, int T) {
    const forward_job *job = ctx;
    const ssdf_engine *e = job->e;
    const ssdf_kernel_table *k = e->kernels;
    for (int l = 0; l < e->graph->n_layers; l++) {
        const ssdf_layer *L = &e->graph->layers[l];
        const ssdf_conv_params p = params_of(L);
        if (L->fuse_next && k->block) {
            /* A fused block: each thread takes a band of depthwise output
             * rows (recomputing the producer rows its band shares). */
            const double start = job->seconds && t == 0 ? now_seconds() : 0.0;
            const ssdf_block blk = block_of(e, L, job);
            const int y0 = blk.dw.out_h * t / T, y1 = blk.dw.out_h * (t + 1) / T;
            if (y0 < y1) k->block(&blk, y0, y1, e->scratch[t]);
            ssdf_pool_barrier(e->pool);
            if (job->seconds && t == 0) job->seconds[l + 2] += now_seconds() - start;
            l += 2; /* its time is booked on the project layer */
            continue;
        }
        const float *src = resolve(e, L->src, job);
        const float *res = resolve(e, L->res, job);
        float *dst = resolve(e, L->dst, job) + L->dst_offset;
        const float *w = e->tensors[L->weight];
        const double start = job->seconds && t == 0 ? now_seconds() : 0.0;
        size_t m0, m1;
        int n0, n1;
        layer_share(L, k->tile_m, t, T, &m0, &m1, &n0, &n1);
        if (m0 < m1 && n0 < n1) {
            switch (L->op) {
            case SSDF_OP_CONV3X3: k->conv3x3(&p, src, w, res, dst, m0, m1, n0, n1, e->scratch[t]); break;
            case SSDF_OP_DW3X3: k->dw3x3(&p, src, w, res, dst, m0, m1, n0, n1, e->scratch[t]); break;
            default: k->conv1x1(&p, src, w, res, dst, m0, m1, n0, n1, e->scratch[t]); break;
            }
        }
        ssdf_pool_barrier(e->pool); /* the next layer reads what this one wrote */
        if (job->seconds && t == 0) job->seconds[l] += now_seconds() - start;
    }
}

static int run_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                       double *seconds, ssdf_error *err) {
    const size_t n_in = (size_t)SSDF_INPUT_SIZE * SSDF_INPUT_SIZE * 3;
    forward_job job = {e, input, boxes, logits, seconds};
    for (size_t i = 0; i < n_in; i++)
        if (!isfinite(input[i]))
            return ssdf_fail(err, SSDF_ERR_VALUE, "input holds a non-finite value (NaN or inf) at "
                             "flat index %zu", i);
    if (ssdf_pool_run(e->pool, forward_region, &job) != 0)
        return ssdf_fail(err, SSDF_ERR_THREADS, RESTART_FAILED);
    return SSDF_OK;
}

int ssdf_engine_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        ssdf_error *err) {
    return run_forward(e, input, boxes, logits, NULL, err);
}

int ssdf_engine_profile(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        double *seconds, ssdf_error *err) {
    return run_forward(e, input, boxes, logits, seconds, err);
}

typedef struct {
    const ssdf_resize_plan *plan;
    const ssdf_kernel_table *kernels;
    ssdf_pool *pool;
    float *dst;
} resize_job;

/* Start of part t of T of [0, n). */
static size_t split_at(size_t n, int t, int T) {
    const size_t q = n / (size_t)T, r = n % (size_t)T;
    return q * (size_t)t + ((size_t)t < r ? (size_t)t : r);
}

static void resize_region(void *ctx, int t, int T) {
    const resize_job *job = ctx;
    const size_t items = ssdf_resize_prepass_items(job->plan);
    if (items) { /* horizontal first: its pass, then the rows that read it */
        ssdf_resize_prepass(job->plan, split_at(items, t, T), split_at(items, t + 1, T), t);
        ssdf_pool_barrier(job->pool);
    }
    const int y0 = (int)split_at((size_t)job->plan->out_h, t, T);
    const int y1 = (int)split_at((size_t)job->plan->out_h, t + 1, T);
    if (y0 < y1) ssdf_resize_rows(job->plan, job->kernels, y0, y1, t, job->dst);
}

int ssdf_engine_detect(ssdf_engine *e, const unsigned char *image, int height, int width,
                       int channels, ptrdiff_t row_stride, float score_threshold,
                       float iou_threshold, int max_faces, ssdf_face *faces, int *n_faces,
                       ssdf_error *err) {
    ssdf_resize_plan plan;
    int rc = ssdf_resize_plan_init(&plan, image, height, width, channels, row_stride,
                                   SSDF_INPUT_SIZE, SSDF_INPUT_SIZE, e->nthreads, err);
    if (rc) return rc;
    resize_job job = {&plan, e->kernels, e->pool, e->input};
    rc = ssdf_pool_run(e->pool, resize_region, &job);
    ssdf_resize_plan_free(&plan);
    if (rc) return ssdf_fail(err, SSDF_ERR_THREADS, RESTART_FAILED);
    rc = ssdf_engine_forward(e, e->input, e->boxes, e->logits, err);
    if (rc) return rc;
    *n_faces = ssdf_postprocess(e->boxes, e->logits, e->anchors, score_threshold, iou_threshold,
                                max_faces, (float)width, (float)height, faces);
    return SSDF_OK;
}

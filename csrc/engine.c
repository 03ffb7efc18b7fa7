#include "engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anchors.h"
#include "resize.h"

float *ssdf_engine_resolve(int buf, const forward_job *job) {
    switch (buf) {
    case SSDF_BUF_INPUT: return (float *)job->input;
    case SSDF_BUF_BOXES: return job->boxes;
    case SSDF_BUF_CLASSES: return job->logits;
    case SSDF_BUF_SPILL0: return job->b->spill[0];
    case SSDF_BUF_SPILL1: return job->b->spill[1];
    case SSDF_BUF_NONE: return NULL;
    default: return job->b->slots[buf - SSDF_BUF_SLOT0];
    }
}

/* The fused block of the step starting at layer `first`, on job's buffers. */
static ssdf_f32_block block_of(const ssdf_engine *e, int first, const forward_job *job) {
    const ssdf_layer *P = &e->model->layers[first];
    ssdf_f32_block b = ssdf_block_shape(e->model, first);
    b.w_producer = e->tensors[P[0].weight];
    b.w_dw = e->tensors[P[1].weight];
    b.w_project = e->tensors[P[2].weight];
    b.in = ssdf_engine_resolve(e->plan.bind[first].src, job);
    b.res = ssdf_engine_resolve(e->plan.bind[first + 2].res, job);
    b.out = ssdf_engine_resolve(e->plan.bind[first + 2].dst, job);
    return b;
}

/* A buffer set's layout: offsets[] of its parts (SET_PARTS), each 64-byte
 * aligned; returns its size in bytes. */
static size_t set_layout(const ssdf_model *g, const ssdf_plan *plan, size_t offsets[SET_PARTS]) {
    size_t total = 0;
    for (int s = 0; s < SSDF_MAX_SLOTS; s++) {
        offsets[s] = total;
        total += ssdf_round_up(plan->slot_floats[s] * sizeof(float), SSDF_ALIGN);
    }
    offsets[SSDF_MAX_SLOTS] = total;
    total += ssdf_round_up(sizeof(float) * ssdf_model_input_floats(g), SSDF_ALIGN);
    offsets[SSDF_MAX_SLOTS + 1] = total;
    total += ssdf_round_up(sizeof(float) * ssdf_model_box_floats(g), SSDF_ALIGN);
    offsets[SSDF_MAX_SLOTS + 2] = total;
    total += ssdf_round_up(sizeof(float) * ssdf_model_logit_floats(g), SSDF_ALIGN);
    offsets[SSDF_MAX_SLOTS + 3] = total;
    total += ssdf_round_up(ssdf_postprocess_scratch_bytes(g), SSDF_ALIGN);
    return total;
}

static void set_place(buffer_set *b, void *base, const size_t offsets[SET_PARTS]) {
    char *p = base;
    for (int s = 0; s < SSDF_MAX_SLOTS; s++) b->slots[s] = (float *)(p + offsets[s]);
    b->input = (float *)(p + offsets[SSDF_MAX_SLOTS]);
    b->boxes = (float *)(p + offsets[SSDF_MAX_SLOTS + 1]);
    b->logits = (float *)(p + offsets[SSDF_MAX_SLOTS + 2]);
    b->post = p + offsets[SSDF_MAX_SLOTS + 3];
}

/* Whether the engine runs fused blocks layer by layer (kernels without a
 * block kernel, and the int8 mode, which has none yet): their intermediates
 * then go through the spill buffers. */
static int needs_spill(const ssdf_engine *e) {
    if (e->precision != SSDF_DTYPE_QU8) return !e->kernels->f32_block;
    if (!e->qkernels->qu8_block) return 1;
    for (int s = 0; s < e->plan.n_steps; s++) {
        if (e->plan.steps[s].count < 3) continue;
        const ssdf_qu8_block b = ssdf_engine_qu8_block_shape(e->model, e->plan.steps[s].first);
        if (!ssdf_qu8_block_ok(&b)) return 1;
    }
    return 0;
}

/* The buffers a set needs beyond its slots for the engine's kernels and
 * precision (spill buffers, the quantized input), unless it has them; their
 * bytes are added to *bytes. 0, or -1 when out of memory (what was
 * allocated is kept). */
static int set_extras(const ssdf_engine *e, buffer_set *b, size_t *bytes) {
    if (needs_spill(e))
        for (int i = 0; i < 2; i++) {
            if (b->spill[i] || !e->plan.spill_floats[i]) continue;
            if (!(b->spill[i] = ssdf_aligned_alloc(e->plan.spill_floats[i] * sizeof(float))))
                return -1;
            *bytes += e->plan.spill_floats[i] * sizeof(float);
        }
    if (e->precision == SSDF_DTYPE_QU8 && !b->qinput) {
        const size_t n = ssdf_round_up(ssdf_model_input_floats(e->model), SSDF_ALIGN);
        if (!(b->qinput = ssdf_aligned_alloc(n))) return -1;
        *bytes += n;
    }
    return 0;
}

static void set_free(buffer_set *b) {
    ssdf_aligned_free(b->spill[0]);
    ssdf_aligned_free(b->spill[1]);
    ssdf_aligned_free(b->qinput);
    ssdf_aligned_free(b->mem);
    b->spill[0] = b->spill[1] = NULL;
    b->qinput = NULL;
    b->mem = NULL;
}

/* set_extras on every buffer set. */
static int all_extras(ssdf_engine *e, ssdf_error *err) {
    int failed = set_extras(e, &e->main, &e->arena_bytes);
    for (int t = 0; e->lanes && t < e->nthreads && !failed; t++)
        failed = set_extras(e, &e->lanes[t], &e->arena_bytes);
    return failed ? ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory") : SSDF_OK;
}

static void lanes_free(ssdf_engine *e) {
    if (!e->lanes) return;
    for (int t = 0; t < e->nthreads; t++) set_free(&e->lanes[t]);
    free(e->lanes);
    e->lanes = NULL;
}

/* One buffer set per thread, allocated by the first call that needs them
 * (an engine that never runs a batch keeps its start-up memory). */
int ssdf_engine_ensure_lanes(ssdf_engine *e, ssdf_error *err) {
    size_t offsets[SET_PARTS], added = 0;
    const size_t bytes = set_layout(e->model, &e->plan, offsets);
    if (e->lanes) return SSDF_OK;
    if (!(e->lanes = calloc((size_t)e->nthreads, sizeof *e->lanes))) goto nomem;
    for (int t = 0; t < e->nthreads; t++) {
        buffer_set *b = &e->lanes[t];
        if (!(b->mem = ssdf_aligned_alloc(bytes))) goto nomem;
        set_place(b, b->mem, offsets);
        added += bytes;
        if (set_extras(e, b, &added)) goto nomem;
    }
    e->arena_bytes += added;
    return SSDF_OK;
nomem:
    lanes_free(e);
    return ssdf_fail(err, SSDF_ERR_NOMEM,
                     "out of memory for the %d per-thread buffer sets of a batch (%zu bytes "
                     "each)", e->nthreads, bytes);
}

int ssdf_engine_create(ssdf_engine **out, const ssdf_model *model, const uint8_t *blob, size_t size, int num_threads,
                       ssdf_error *err) {
    ssdf_engine *e;
    size_t offsets[SET_PARTS], total, scratch_floats = 0;
    int rc;
    *out = NULL;
    if (num_threads < 1 || num_threads > MAX_THREADS)
        return ssdf_fail(err, SSDF_ERR_VALUE, "num_threads must be in [1, %d], got %d",
                         MAX_THREADS, num_threads);
    if (!(e = calloc(1, sizeof *e))) return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory");
    e->model = model;
    e->kernels = ssdf_kernels_best();
    e->qkernels = ssdf_kernels_best_for(SSDF_DTYPE_QU8);
    e->precision = SSDF_DTYPE_F32;
    e->nthreads = num_threads;

    if ((uintptr_t)blob % SSDF_ALIGN != 0) {
        if (!(e->blob_copy = ssdf_aligned_alloc(size))) {
            free(e);
            return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory copying the weights");
        }
        memcpy(e->blob_copy, blob, size);
        blob = e->blob_copy;
    }
    if (ssdf_plan_build(model, 1, &e->plan) != 0) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_VALUE, "model %s needs more than %d activation buffers",
                         model->name, SSDF_MAX_SLOTS);
    }
    rc = ssdf_blob_open(blob, size, e->model, e->tensors, &e->qu8, &e->info, err);
    if (rc) {
        ssdf_engine_destroy(e);
        return rc;
    }

    /* One allocation for the main buffer set and the scratch, each buffer
     * 64-byte aligned. */
    total = set_layout(e->model, &e->plan, offsets);
    for (int l = 0; l < e->model->n_layers; l++) {
        const ssdf_layer *L = &e->model->layers[l];
        if (L->op == SSDF_OP_CONV3X3 && ssdf_f32_conv_scratch_floats(L->in_c) > scratch_floats)
            scratch_floats = ssdf_f32_conv_scratch_floats(L->in_c);
        /* the int8 mode's kernels, in bytes */
        const size_t q = (ssdf_qu8_conv_scratch_bytes(L->in_c) + sizeof(float) - 1) / sizeof(float);
        if (q > scratch_floats) scratch_floats = q;
    }
    for (int s = 0; s < e->plan.n_steps; s++) {
        if (e->plan.steps[s].count < 3) continue;
        const ssdf_f32_block blk = ssdf_block_shape(e->model, e->plan.steps[s].first);
        if (ssdf_f32_block_scratch_floats(&blk) > scratch_floats)
            scratch_floats = ssdf_f32_block_scratch_floats(&blk);
        const ssdf_qu8_block qb = ssdf_engine_qu8_block_shape(e->model, e->plan.steps[s].first);
        const size_t q = (ssdf_qu8_block_scratch_bytes(&qb, SSDF_RING_ROWS,
                                                       ssdf_band_rows(qb.dw.out_w)) +
                          sizeof(float) - 1) / sizeof(float);
        if (q > scratch_floats) scratch_floats = q;
    }
    const size_t scratch_bytes = ssdf_round_up(scratch_floats * sizeof(float), SSDF_ALIGN);
    const size_t scratch_at = total;
    total += scratch_bytes * (size_t)num_threads;
    if (!(e->arena = ssdf_aligned_alloc(total))) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory for the %zu-byte arena", total);
    }
    e->arena_bytes = total;
    set_place(&e->main, e->arena, offsets);
    for (int t = 0; t < num_threads; t++)
        e->scratch[t] = (float *)((char *)e->arena + scratch_at + (size_t)t * scratch_bytes);

    if (!(e->pool = ssdf_pool_create(num_threads))) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_THREADS, "could not start %d threads", num_threads);
    }
    if (!(e->anchors = malloc(sizeof(float) * 4 * (size_t)model->num_anchors))) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory for the anchors");
    }
    ssdf_anchors(e->model, e->anchors);
    *out = e;
    return SSDF_OK;
}

void ssdf_engine_destroy(ssdf_engine *e) {
    if (!e) return;
    ssdf_pool_destroy(e->pool);
    lanes_free(e);
    set_free(&e->main);
    ssdf_aligned_free(e->arena);
    ssdf_aligned_free(e->blob_copy);
    free(e->anchors);
    free(e);
}

const ssdf_blob_info *ssdf_engine_info(const ssdf_engine *e) { return &e->info; }
const ssdf_model *ssdf_engine_model(const ssdf_engine *e) { return e->model; }
int ssdf_engine_threads(const ssdf_engine *e) { return e->nthreads; }
int ssdf_engine_set_kernels(ssdf_engine *e, const ssdf_kernel_table *k, ssdf_error *err) {
    if (!ssdf_kernels_have(k, e->precision))
        return ssdf_fail(err, SSDF_ERR_VALUE, "kernel set %s has no %s kernels", k->name,
                         e->precision == SSDF_DTYPE_QU8 ? "qu8" : "f32");
    const ssdf_kernel_table *before = e->kernels;
    if (e->precision == SSDF_DTYPE_QU8) {
        const ssdf_kernel_table *qbefore = e->qkernels;
        e->qkernels = k;
        const int rc = all_extras(e, err);
        if (rc) e->qkernels = qbefore;
        return rc;
    }
    /* Kernels that cannot run a block fused run its layers one by one, and
     * need the intermediates materialised: in every buffer set. */
    e->kernels = k;
    const int rc = all_extras(e, err);
    if (rc) e->kernels = before;
    return rc;
}
const ssdf_kernel_table *ssdf_engine_kernels(const ssdf_engine *e) {
    return e->precision == SSDF_DTYPE_QU8 ? e->qkernels : e->kernels;
}

const ssdf_kernel_table *ssdf_engine_resize_kernels(const ssdf_engine *e) { return e->kernels; }

int ssdf_engine_set_precision(ssdf_engine *e, ssdf_dtype precision, ssdf_error *err) {
    if (precision == SSDF_DTYPE_QU8 && !e->info.has_qu8)
        return ssdf_fail(err, SSDF_ERR_VALUE,
                         "these weights have no int8 (qu8) section: repack them with this "
                         "version of ssdface (`ssdface pack`) to run precision=\"int8\"");
    if (precision != SSDF_DTYPE_QU8 && precision != SSDF_DTYPE_F32)
        return ssdf_fail(err, SSDF_ERR_VALUE, "unknown precision %d", (int)precision);
    const ssdf_dtype before = e->precision;
    e->precision = precision;
    const int rc = all_extras(e, err);
    if (rc) e->precision = before;
    return rc;
}
ssdf_dtype ssdf_engine_precision(const ssdf_engine *e) { return e->precision; }
const float *ssdf_engine_anchors(const ssdf_engine *e) { return e->anchors; }
const float *ssdf_engine_tensor(const ssdf_engine *e, int i) { return e->tensors[i]; }
size_t ssdf_engine_arena_bytes(const ssdf_engine *e) { return e->arena_bytes; }

/* Thread t's share of a layer. Output pixels are split when the input (A)
 * outweighs the weights (B) and there are enough row tiles for every thread
 * to get several; otherwise output channels are split, so that each thread
 * streams only its part of B (the deep layers: 19x19, 10x10, 5x5 ...). */
void ssdf_engine_layer_share(const ssdf_layer *L, int tile_m, int t, int T, size_t *m0,
                             size_t *m1, int *n0, int *n1) {
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

/* Layer l on job's buffers, as part `part` of `parts` (see run_layers). */
static void run_layer(const forward_job *job, int l, int part, int parts, float *scratch) {
    const ssdf_engine *e = job->e;
    const ssdf_kernel_table *k = e->kernels;
    const ssdf_layer *L = &e->model->layers[l];
    const ssdf_binding *B = &e->plan.bind[l];
    const ssdf_conv_params p = ssdf_layer_params(L);
    const float *src = ssdf_engine_resolve(B->src, job);
    const float *res = ssdf_engine_resolve(B->res, job);
    float *dst = ssdf_engine_resolve(B->dst, job) + B->dst_offset;
    const float *w = e->tensors[L->weight];
    const int timed = job->seconds && part == 0;
    const double start = timed ? now_seconds() : 0.0;
    size_t m0, m1;
    int n0, n1;
    ssdf_engine_layer_share(L, k->tile_m, part, parts, &m0, &m1, &n0, &n1);
    if (m0 < m1 && n0 < n1) {
        switch (L->op) {
        case SSDF_OP_CONV3X3: k->f32_conv3x3(&p, src, w, res, dst, m0, m1, n0, n1, scratch); break;
        case SSDF_OP_DW3X3: k->f32_dw3x3(&p, src, w, res, dst, m0, m1, n0, n1, scratch); break;
        default: k->f32_conv1x1(&p, src, w, res, dst, m0, m1, n0, n1, scratch); break;
        }
    }
    if (parts > 1) ssdf_pool_barrier(e->pool); /* the next layer reads what this one wrote */
    if (timed) job->seconds[l] += now_seconds() - start;
}

/* The step loop on job's buffers, as part `part` of `parts`: with parts > 1
 * each layer is split between the threads of a pool region, a barrier after
 * it; with parts == 1 one thread runs every layer whole, without barriers
 * (a lane). `scratch` is the calling thread's. The kernels write the same
 * values whatever the split, so both give the same bits. */
void ssdf_engine_run_layers(const forward_job *job, int part, int parts, float *scratch) {
    const ssdf_engine *e = job->e;
    const ssdf_kernel_table *k = e->kernels;
    const int timed = job->seconds && part == 0;
    const int qu8 = e->precision == SSDF_DTYPE_QU8;
    if (qu8) {
        /* The input is checked here, in the quantization's pass over it,
         * when the caller has not (nonfinite set): a bad value stops every
         * part after the barrier, and the caller reports it. */
        if (ssdf_engine_quantize_input(job, part, parts) && job->nonfinite)
            __atomic_store_n(job->nonfinite, 1, __ATOMIC_RELAXED);
        if (parts > 1) ssdf_pool_barrier(e->pool); /* the first layer reads every row */
        if (job->nonfinite && __atomic_load_n(job->nonfinite, __ATOMIC_RELAXED)) return;
    }
    for (int st = 0; st < e->plan.n_steps; st++) {
        const ssdf_step step = e->plan.steps[st];
        if (qu8) {
            if (step.count == 3 && ssdf_engine_run_block_qu8(job, step.first, part, parts, scratch))
                continue;
            for (int l = step.first; l < step.first + step.count; l++)
                ssdf_engine_run_layer_qu8(job, l, part, parts, scratch);
            continue;
        }
        if (step.count == 3 && k->f32_block) {
            /* A fused block: each thread takes a band of depthwise output
             * rows (recomputing the producer rows its band shares). Its
             * time is booked on the project layer. */
            const double start = timed ? now_seconds() : 0.0;
            const ssdf_f32_block blk = block_of(e, step.first, job);
            const int y0 = blk.dw.out_h * part / parts, y1 = blk.dw.out_h * (part + 1) / parts;
            if (y0 < y1) k->f32_block(&blk, y0, y1, scratch);
            if (parts > 1) ssdf_pool_barrier(e->pool);
            if (timed) job->seconds[step.first + 2] += now_seconds() - start;
            continue;
        }
        /* A layer, or a block's layers one by one through the spill buffers. */
        for (int l = step.first; l < step.first + step.count; l++)
            run_layer(job, l, part, parts, scratch);
    }
}

static void forward_region(void *ctx, int t, int T) {
    const forward_job *job = ctx;
    ssdf_engine_run_layers(job, t, T, job->e->scratch[t]);
}

int ssdf_engine_check_finite(const ssdf_model *m, const float *input, int image, int n,
                        ssdf_error *err) {
    const size_t floats = ssdf_model_input_floats(m);
    /* Blocks of exponent-bit tests the compiler vectorises (an early exit
     * per float would not: it was 3% of an int8 forward); the index of the
     * first bad value is looked for only in a block that has one. */
    size_t i = 0;
    for (size_t i0 = 0; i0 < floats; i0 += 4096) {
        const size_t i1 = floats - i0 < 4096 ? floats : i0 + 4096;
        unsigned bad = 0;
        for (size_t j = i0; j < i1; j++) {
            uint32_t bits;
            memcpy(&bits, input + j, sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) {
            i = i0;
            break;
        }
        i = i1;
    }
    for (; i < floats; i++) {
        if (isfinite(input[i])) continue;
        if (n == 1)
            return ssdf_fail(err, SSDF_ERR_VALUE, "input holds a non-finite value (NaN or inf) "
                             "at flat index %zu", i);
        return ssdf_fail(err, SSDF_ERR_VALUE, "input holds a non-finite value (NaN or inf) at "
                         "flat index %zu (image %d, flat index %zu in it)",
                         (size_t)image * floats + i, image, i);
    }
    return SSDF_OK;
}

/* One image split between the threads, on the main buffer set's slots. */
int ssdf_engine_run_split(ssdf_engine *e, const float *input, float *boxes, float *logits,
                     double *seconds, int *nonfinite, ssdf_error *err) {
    forward_job job = {e, &e->main, input, boxes, logits, seconds, nonfinite};
    if (ssdf_pool_run(e->pool, forward_region, &job) != 0)
        return ssdf_fail(err, SSDF_ERR_THREADS, RESTART_FAILED);
    return SSDF_OK;
}

/* In int8 the input is checked in the quantization's pass (a separate one
 * over the 1 MB of floats was 3% of an int8 forward); a bad value found
 * there is looked up again to name it. */
int ssdf_engine_run_checked(ssdf_engine *e, const float *input, float *boxes, float *logits,
                            double *seconds, int image, int n, ssdf_error *err) {
    int nonfinite = 0, rc;
    if (e->precision != SSDF_DTYPE_QU8) {
        rc = ssdf_engine_check_finite(e->model, input, image, n, err);
        if (rc) return rc;
    }
    rc = ssdf_engine_run_split(e, input, boxes, logits, seconds, &nonfinite, err);
    if (rc || !nonfinite) return rc;
    rc = ssdf_engine_check_finite(e->model, input, image, n, err);
    return rc ? rc : ssdf_fail(err, SSDF_ERR_VALUE, "input holds a non-finite value (NaN or inf)");
}

static int run_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                       double *seconds, ssdf_error *err) {
    return ssdf_engine_run_checked(e, input, boxes, logits, seconds, 0, 1, err);
}

int ssdf_engine_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        ssdf_error *err) {
    return run_forward(e, input, boxes, logits, NULL, err);
}

int ssdf_engine_profile(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        double *seconds, ssdf_error *err) {
    return run_forward(e, input, boxes, logits, seconds, err);
}

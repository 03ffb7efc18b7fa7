/* The int8 mode of the step loop (engine.c calls these when the engine's
 * precision is SSDF_DTYPE_QU8): the float input quantized to bytes, then
 * every layer through the qu8 kernels on uint8 activations, the heads
 * writing the float32 outputs. Fused blocks run layer by layer through the
 * spill buffers only with kernels that have no qu8 block kernel. */
#include <string.h>
#include <time.h>

#include "engine_internal.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* q = clamp(rint(x * inv_scale) + zero, 0, 255) (ssdf_qu8_quantize_fn), by
 * the variant's kernel or, without one, a plain loop rounding half to even
 * by the 1.5 * 2^23 trick (exact for |f| < 2^22, which the clamp ensures),
 * as lrintf does. Nonzero when the input holds a NaN or an infinity. */
int ssdf_engine_quantize_input(const forward_job *job, int part, int parts) {
    const ssdf_engine *e = job->e;
    const size_t n = ssdf_model_input_floats(e->model);
    const size_t i0 = ssdf_split_at(n, part, parts), i1 = ssdf_split_at(n, part + 1, parts);
    const float inv = e->qu8.input_inv_scale, lo = (float)-e->qu8.input_zero;
    const float hi = (float)(255 - e->qu8.input_zero), magic = 12582912.0f;
    const int zero = e->qu8.input_zero;
    const float *x = job->input;
    uint8_t *q = job->b->qinput;
    if (e->qkernels->qu8_quantize)
        return e->qkernels->qu8_quantize(x + i0, i1 - i0, inv, lo, hi, zero, q + i0);
    int bad = 0;
    for (size_t i = i0; i < i1; i++) {
        float f = x[i] * inv;
        bad |= !isfinite(x[i]);
        f = f < lo ? lo : f;
        f = f > hi ? hi : f;
        f = (f + magic) - magic;
        q[i] = bad ? 0 : (uint8_t)((int)f + zero);
    }
    return bad;
}

/* A plan buffer as bytes: the quantized input in place of the float one. */
static uint8_t *resolve_bytes(int buf, const forward_job *job) {
    if (buf == SSDF_BUF_INPUT) return job->b->qinput;
    return (uint8_t *)ssdf_engine_resolve(buf, job);
}

ssdf_qu8_block ssdf_engine_qu8_block_shape(const ssdf_model *m, int first) {
    const ssdf_f32_block f = ssdf_block_shape(m, first);
    ssdf_qu8_block b;
    memset(&b, 0, sizeof b);
    b.producer_k = f.producer_k;
    b.producer = f.producer, b.dw = f.dw, b.project = f.project;
    return b;
}

int ssdf_engine_run_block_qu8(const forward_job *job, int first, int part, int parts,
                              float *scratch) {
    const ssdf_engine *e = job->e;
    const ssdf_kernel_table *k = e->qkernels;
    ssdf_qu8_block b = ssdf_engine_qu8_block_shape(e->model, first);
    if (!k->qu8_block || !ssdf_qu8_block_ok(&b)) return 0;
    const int timed = job->seconds && part == 0;
    const double start = timed ? now_seconds() : 0.0;
    b.q_producer = e->qu8.out[first];
    b.q_dw = e->qu8.out[first + 1];
    b.q_project = e->qu8.out[first + 2];
    b.w_producer = e->qu8.weights[first];
    b.w_dw = e->qu8.weights[first + 1];
    b.w_project = e->qu8.weights[first + 2];
    b.in = resolve_bytes(e->plan.bind[first].src, job);
    const int res = e->plan.bind[first + 2].res;
    b.q_project.res = res == SSDF_BUF_NONE ? NULL : resolve_bytes(res, job);
    b.out = resolve_bytes(e->plan.bind[first + 2].dst, job);
    /* Each thread takes a band of depthwise output rows (recomputing the
     * producer rows it shares with the next); the time goes on the project. */
    const int y0 = b.dw.out_h * part / parts, y1 = b.dw.out_h * (part + 1) / parts;
    if (y0 < y1) k->qu8_block(&b, y0, y1, (uint8_t *)scratch);
    if (parts > 1) ssdf_pool_barrier(e->pool);
    if (timed) job->seconds[first + 2] += now_seconds() - start;
    return 1;
}

void ssdf_engine_run_layer_qu8(const forward_job *job, int l, int part, int parts,
                               float *scratch) {
    const ssdf_engine *e = job->e;
    const ssdf_kernel_table *k = e->qkernels;
    const ssdf_layer *L = &e->model->layers[l];
    const ssdf_binding *B = &e->plan.bind[l];
    const ssdf_conv_params p = ssdf_layer_params(L);
    ssdf_qu8_output q = e->qu8.out[l];
    const uint8_t *src = resolve_bytes(B->src, job);
    q.res = B->res == SSDF_BUF_NONE ? NULL : resolve_bytes(B->res, job);
    /* The heads write float32 into the outputs (dst_offset in floats); the
     * other layers bytes into a slot. */
    void *dst = q.f32_out ? (void *)(ssdf_engine_resolve(B->dst, job) + B->dst_offset)
                          : (void *)resolve_bytes(B->dst, job);
    const uint8_t *w = e->qu8.weights[l];
    const int timed = job->seconds && part == 0;
    const double start = timed ? now_seconds() : 0.0;
    size_t m0, m1;
    int n0, n1;
    ssdf_engine_layer_share(L, k->qu8_tile_m, part, parts, &m0, &m1, &n0, &n1);
    if (m0 < m1 && n0 < n1) {
        uint8_t *s = (uint8_t *)scratch;
        switch (L->op) {
        case SSDF_OP_CONV3X3: k->qu8_conv3x3(&p, &q, src, w, dst, m0, m1, n0, n1, s); break;
        case SSDF_OP_DW3X3: k->qu8_dw3x3(&p, &q, src, w, dst, m0, m1, n0, n1, s); break;
        default: k->qu8_conv1x1(&p, &q, src, w, dst, m0, m1, n0, n1, s); break;
        }
    }
    if (parts > 1) ssdf_pool_barrier(e->pool);
    if (timed) job->seconds[l] += now_seconds() - start;
}

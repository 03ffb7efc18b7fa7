#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resize.h"

struct ssdf_engine {
    const ssdf_graph *graph;
    const ssdf_kernel_table *kernels;
    uint8_t *blob_copy; /* owned copy when the caller's blob was misaligned */
    const float *tensors[SSDF_MAX_TENSORS];
    ssdf_blob_info info;
    /* Arena: the slots, then the detect path's input and output buffers. */
    float *arena;
    size_t arena_bytes;
    float *slots[SSDF_NUM_SLOTS];
    float *input, *boxes, *logits;
    float anchors[SSDF_NUM_ANCHORS * 4];
};

int ssdf_engine_create(ssdf_engine **out, const uint8_t *blob, size_t size, ssdf_error *err) {
    ssdf_engine *e = calloc(1, sizeof *e);
    size_t offsets[SSDF_NUM_SLOTS + 3], total = 0;
    int rc;
    *out = NULL;
    if (!e) return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory");
    e->graph = ssdf_graph_get();
    e->kernels = &ssdf_kernels_generic;

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
    if (!(e->arena = ssdf_aligned_alloc(total))) {
        ssdf_engine_destroy(e);
        return ssdf_fail(err, SSDF_ERR_NOMEM, "out of memory for the %zu-byte arena", total);
    }
    e->arena_bytes = total;
    for (int s = 0; s < SSDF_NUM_SLOTS; s++) e->slots[s] = (float *)((char *)e->arena + offsets[s]);
    e->input = (float *)((char *)e->arena + offsets[SSDF_NUM_SLOTS]);
    e->boxes = (float *)((char *)e->arena + offsets[SSDF_NUM_SLOTS + 1]);
    e->logits = (float *)((char *)e->arena + offsets[SSDF_NUM_SLOTS + 2]);
    ssdf_anchors(e->graph, e->anchors);
    *out = e;
    return SSDF_OK;
}

void ssdf_engine_destroy(ssdf_engine *e) {
    if (!e) return;
    ssdf_aligned_free(e->arena);
    ssdf_aligned_free(e->blob_copy);
    free(e);
}

const ssdf_blob_info *ssdf_engine_info(const ssdf_engine *e) { return &e->info; }
void ssdf_engine_set_kernels(ssdf_engine *e, const ssdf_kernel_table *k) { e->kernels = k; }
const ssdf_kernel_table *ssdf_engine_kernels(const ssdf_engine *e) { return e->kernels; }
const float *ssdf_engine_anchors(const ssdf_engine *e) { return e->anchors; }
size_t ssdf_engine_arena_bytes(const ssdf_engine *e) { return e->arena_bytes; }

static float *resolve(ssdf_engine *e, int buf, const float *input, float *boxes, float *logits) {
    switch (buf) {
    case SSDF_BUF_INPUT: return (float *)input;
    case SSDF_BUF_BOXES: return boxes;
    case SSDF_BUF_CLASSES: return logits;
    case SSDF_BUF_NONE: return NULL;
    default: return e->slots[buf - SSDF_BUF_SLOT0];
    }
}

int ssdf_engine_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        ssdf_error *err) {
    const size_t n_in = (size_t)SSDF_INPUT_SIZE * SSDF_INPUT_SIZE * 3;
    for (size_t i = 0; i < n_in; i++)
        if (!isfinite(input[i]))
            return ssdf_fail(err, SSDF_ERR_VALUE, "input holds a non-finite value (NaN or inf) at "
                             "flat index %zu", i);

    for (int l = 0; l < e->graph->n_layers; l++) {
        const ssdf_layer *L = &e->graph->layers[l];
        const ssdf_conv_params p = {L->in_h,  L->in_w,   L->in_c,    L->out_h, L->out_w,
                                    L->out_c, L->stride, L->pad_top, L->pad_left, L->relu6};
        const float *src = resolve(e, L->src, input, boxes, logits);
        const float *res = resolve(e, L->res, input, boxes, logits);
        float *dst = resolve(e, L->dst, input, boxes, logits) + L->dst_offset;
        const float *w = e->tensors[L->weight], *b = e->tensors[L->bias];
        switch (L->op) {
        case SSDF_OP_CONV3X3: e->kernels->conv3x3(&p, src, w, b, res, dst); break;
        case SSDF_OP_DW3X3: e->kernels->dw3x3(&p, src, w, b, res, dst); break;
        default: e->kernels->conv1x1(&p, src, w, b, res, dst); break;
        }
    }
    return SSDF_OK;
}

int ssdf_engine_detect(ssdf_engine *e, const unsigned char *image, int height, int width,
                       int channels, ptrdiff_t row_stride, float score_threshold,
                       float iou_threshold, int max_faces, ssdf_face *faces, int *n_faces,
                       ssdf_error *err) {
    int rc = ssdf_resize_normalize(image, height, width, channels, row_stride, SSDF_INPUT_SIZE,
                                   SSDF_INPUT_SIZE, e->input, err);
    if (rc) return rc;
    rc = ssdf_engine_forward(e, e->input, e->boxes, e->logits, err);
    if (rc) return rc;
    *n_faces = ssdf_postprocess(e->boxes, e->logits, e->anchors, score_threshold, iou_threshold,
                                max_faces, (float)width, (float)height, faces);
    return SSDF_OK;
}

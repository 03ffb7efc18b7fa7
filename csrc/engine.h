/* The detector engine: a validated blob, the activation arena, a thread pool
 * and the layer loop. One engine runs one inference at a time (the arena is
 * shared state); callers serialise calls on the same engine. */
#ifndef SSDF_ENGINE_H
#define SSDF_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "common.h"
#include "kernels/kernels.h"
#include "postprocess.h"

typedef struct ssdf_engine ssdf_engine;

/* Validate `blob` and build an engine on it that runs on exactly
 * `num_threads` threads (the caller's plus num_threads - 1 workers). The
 * blob memory must outlive the engine; it is used in place when 64-byte
 * aligned and copied otherwise. */
int ssdf_engine_create(ssdf_engine **out, const uint8_t *blob, size_t size, int num_threads,
                       ssdf_error *err);
void ssdf_engine_destroy(ssdf_engine *e);

const ssdf_blob_info *ssdf_engine_info(const ssdf_engine *e);
int ssdf_engine_threads(const ssdf_engine *e);

/* Choose the kernel table (the best supported one by default). */
int ssdf_engine_set_kernels(ssdf_engine *e, const ssdf_kernel_table *k, ssdf_error *err);
const ssdf_kernel_table *ssdf_engine_kernels(const ssdf_engine *e);

/* One image: input [300][300][3] -> boxes [1917][4], logits [1917][2].
 * Fails (SSDF_ERR_VALUE) on a non-finite input value. */
int ssdf_engine_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        ssdf_error *err);

/* Like forward, timing each layer: seconds[l] += its wall time. */
int ssdf_engine_profile(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        double *seconds, ssdf_error *err);

/* Image to faces: resize, forward and post-process using the engine's own
 * buffers. `faces` has room for `max_faces`; returns the count via *n_faces. */
int ssdf_engine_detect(ssdf_engine *e, const unsigned char *image, int height, int width,
                       int channels, ptrdiff_t row_stride, float score_threshold,
                       float iou_threshold, int max_faces, ssdf_face *faces, int *n_faces,
                       ssdf_error *err);

/* Packed data of graph tensor i, validated (i < the graph's tensor count). */
const float *ssdf_engine_tensor(const ssdf_engine *e, int i);

/* Anchors (yc, xc, h, w) x 1917. */
const float *ssdf_engine_anchors(const ssdf_engine *e);

/* Bytes of activation and scratch memory the engine allocated. */
size_t ssdf_engine_arena_bytes(const ssdf_engine *e);

#endif

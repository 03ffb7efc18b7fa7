/* The detector engine: a validated blob, the activation arena, a thread pool
 * and the layer loop. One engine runs one call at a time (the arena is
 * shared state); callers serialise calls on the same engine. A call runs one
 * image on all the threads (its layers split between them, a barrier after
 * each), or, for a batch, one image per thread, each thread in its own lane
 * of buffers. Both give the same bits. */
#ifndef SSDF_ENGINE_H
#define SSDF_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "common.h"
#include "kernels/kernels.h"
#include "postprocess.h"

typedef struct ssdf_engine ssdf_engine;

/* Validate `blob` as the weights of `model` (model.h; it must outlive the
 * engine) and build an engine on it that runs on exactly
 * `num_threads` threads (the caller's plus num_threads - 1 workers). The
 * blob memory must outlive the engine; it is used in place when 64-byte
 * aligned and copied otherwise. */
int ssdf_engine_create(ssdf_engine **out, const ssdf_model *model, const uint8_t *blob, size_t size, int num_threads,
                       ssdf_error *err);
void ssdf_engine_destroy(ssdf_engine *e);

const ssdf_blob_info *ssdf_engine_info(const ssdf_engine *e);
const ssdf_model *ssdf_engine_model(const ssdf_engine *e);
int ssdf_engine_threads(const ssdf_engine *e);

/* Choose the kernel table of the engine's precision (the best supported one
 * with kernels of that data type by default); ssdf_engine_kernels gives it. */
int ssdf_engine_set_kernels(ssdf_engine *e, const ssdf_kernel_table *k, ssdf_error *err);
const ssdf_kernel_table *ssdf_engine_kernels(const ssdf_engine *e);
/* The f32 table the engine resizes images with (and runs f32 with). */
const ssdf_kernel_table *ssdf_engine_resize_kernels(const ssdf_engine *e);

/* The precision forward runs in: SSDF_DTYPE_F32 (the default) or
 * SSDF_DTYPE_QU8, the int8 mode, which needs a blob with the qu8 section
 * (SSDF_ERR_VALUE otherwise). Inputs and outputs stay float32 either way. */
int ssdf_engine_set_precision(ssdf_engine *e, ssdf_dtype precision, ssdf_error *err);
ssdf_dtype ssdf_engine_precision(const ssdf_engine *e);

/* One image: input [H][W][C] -> boxes [A][4], logits [A][classes], with
 * the model's input size H x W x C and its A anchors.
 * Fails (SSDF_ERR_VALUE) on a non-finite input value. */
int ssdf_engine_forward(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        ssdf_error *err);

/* Like forward, timing each layer: seconds[l] += its wall time. */
int ssdf_engine_profile(ssdf_engine *e, const float *input, float *boxes, float *logits,
                        double *seconds, ssdf_error *err);

/* A batch of n images, inputs [n][H][W][C] -> boxes [n][A][4],
 * logits [n][A][classes], the same values as n calls of forward. With n >= 2
 * and 2 threads or more, each thread runs whole images in its own "lane"
 * (a set of activation buffers, allocated on the first such call and kept
 * until the engine is destroyed: see ssdf_engine_arena_bytes), taking the
 * next image from a shared counter; no barriers. Otherwise each image is
 * split between the threads as by forward. Every input is checked first: a
 * non-finite value fails the whole call (SSDF_ERR_VALUE) before any runs. */
int ssdf_engine_forward_batch(ssdf_engine *e, const float *inputs, int n, float *boxes,
                              float *logits, ssdf_error *err);

/* A view: source pixels resized into a rectangle of the network input.
 * `pixels` is the first byte of the source region: `height` rows of `width`
 * pixels of `channels` (1, 3 or 4) bytes, rows `row_stride` >= width x
 * channels bytes apart (a crop of a larger image is a pointer into it with
 * the larger image's stride). The source is resized with the detect resize
 * (resize.h, normalised) into columns [x0, x1) and rows [y0, y1) of the
 * W x H network input, 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H; the rest of
 * the input is 0.0 (mid-grey). Boxes come back in pixels of a box_width x
 * box_height frame laid over the whole network input and clipped to it:
 * 0 (or W and H) gives network-input pixels; the image's own size, for
 * a whole-image view, gives the boxes detect gives. With `flip` the built
 * input is mirrored left-right (the rectangle too: columns [W - x1,
 * W - x0)) and the boxes are those found in the mirrored input: a flipped
 * view is test-time augmentation, the caller unmirrors its boxes. */
typedef struct {
    const unsigned char *pixels;
    int height, width, channels;
    ptrdiff_t row_stride;
    int x0, y0, x1, y1;
    float box_width, box_height; /* 0: the network input's W and H */
    int flip;                    /* 0 or 1 */
} ssdf_view;

/* Views to faces: each view resized into an input, forward, post-processed
 * (ssdf_postprocess with the view's box frame). View i's faces go to
 * faces[i * max_faces ...], their count to counts[i]. Lanes as in
 * forward_batch when n >= 2 and there are 2 threads or more, else each view
 * split between the threads. Every view is checked before any runs
 * (SSDF_ERR_VALUE); an error while running (a resize that cannot allocate
 * its scratch: SSDF_ERR_NOMEM) fails the whole call, the first one recorded
 * being returned once every thread has finished. */
int ssdf_engine_detect_views(ssdf_engine *e, const ssdf_view *views, int n,
                             float score_threshold, float iou_threshold, int max_faces,
                             ssdf_face *faces, int *counts, ssdf_error *err);

/* Image to faces, boxes in pixels of the image: the one-view case of
 * detect_views (the whole image into the whole input, box frame width x
 * height), split between the threads. `faces` has room for `max_faces`;
 * returns the count via *n_faces. */
int ssdf_engine_detect(ssdf_engine *e, const unsigned char *image, int height, int width,
                       int channels, ptrdiff_t row_stride, float score_threshold,
                       float iou_threshold, int max_faces, ssdf_face *faces, int *n_faces,
                       ssdf_error *err);

/* Packed data of model tensor i, validated (i < the model's tensor count). */
const float *ssdf_engine_tensor(const ssdf_engine *e, int i);

/* The model's anchors (yc, xc, h, w) x num_anchors. */
const float *ssdf_engine_anchors(const ssdf_engine *e);

/* Bytes of activation and scratch memory the engine allocated (the lanes
 * included, once a batch has allocated them). */
size_t ssdf_engine_arena_bytes(const ssdf_engine *e);

#endif

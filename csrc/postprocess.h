/* SSD post-processing: Faster R-CNN box decoding, sigmoid scores and greedy
 * non-maximum suppression, sized and parametrised by the model description
 * (anchor count, box coder scales, score class). */
#ifndef SSDF_POSTPROCESS_H
#define SSDF_POSTPROCESS_H

#include <stddef.h>

#include "model.h"

typedef struct {
    float xmin, ymin, xmax, ymax; /* pixels of the original image, clipped to it */
    float score;
    int anchor;                   /* which anchor produced it */
} ssdf_face;

/* Decode one anchor's box encoding into (ymin, xmin, ymax, xmax), normalised,
 * with the box coder's scales. */
void ssdf_decode_box(const float scales[4], const float enc[4], const float anchor[4],
                     float box[4]);

/* The model's outputs for one image (boxes: num_anchors x 4, logits:
 * num_anchors x num_classes) to faces: decode, score, threshold (score >= score_threshold) and suppress (IoU on
 * the normalised boxes > iou_threshold drops the lower-scored box), keeping
 * at most `max_faces`, highest score first (ties: lower anchor index first).
 * Boxes are then scaled to pixels of a width x height image and clipped.
 * A box whose decoding is not finite (NaN or infinite encodings, or exp
 * overflowing) is dropped, never returned.
 * `scratch` holds ssdf_postprocess_scratch_bytes(m) bytes (a size fixed by
 * the model's anchor count), aligned for floats, private to the call.
 * Returns the number of faces written to `faces` (room for max_faces). */
int ssdf_postprocess(const ssdf_model *m, const float *boxes, const float *logits, const float *anchors,
                     float score_threshold, float iou_threshold, int max_faces, float width,
                     float height, ssdf_face *faces, void *scratch);

size_t ssdf_postprocess_scratch_bytes(const ssdf_model *m);

#endif

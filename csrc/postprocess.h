/* SSD post-processing: anchors, Faster R-CNN box decoding, sigmoid scores and
 * greedy non-maximum suppression (MODEL.md, "Anchors" to "Scores"). */
#ifndef SSDF_POSTPROCESS_H
#define SSDF_POSTPROCESS_H

#include <stddef.h>

#include "graph.h"

typedef struct {
    float xmin, ymin, xmax, ymax; /* pixels of the original image, clipped to it */
    float score;
    int anchor;                   /* which anchor produced it */
} ssdf_face;

/* Anchors as (yc, xc, h, w) in units of the network input, in head order. */
void ssdf_anchors(const ssdf_graph *g, float *anchors); /* 1917 x 4 floats */

/* Decode one anchor's box encoding into (ymin, xmin, ymax, xmax), normalised. */
void ssdf_decode_box(const float enc[4], const float anchor[4], float box[4]);

/* Decode, score, threshold (score >= score_threshold) and suppress (IoU on
 * the normalised boxes > iou_threshold drops the lower-scored box), keeping
 * at most `max_faces`, highest score first (ties: lower anchor index first).
 * Boxes are then scaled to pixels of a width x height image and clipped.
 * A box whose decoding is not finite (NaN or infinite encodings, or exp
 * overflowing) is dropped, never returned.
 * `scratch` holds ssdf_postprocess_scratch_bytes() bytes (a size fixed by
 * the model, about 46 KB), aligned for floats, private to the call.
 * Returns the number of faces written to `faces` (room for max_faces). */
int ssdf_postprocess(const float *boxes, const float *logits, const float *anchors,
                     float score_threshold, float iou_threshold, int max_faces, float width,
                     float height, ssdf_face *faces, void *scratch);

size_t ssdf_postprocess_scratch_bytes(void);

#endif

/* SSD anchors from a model's anchor specification (model.h). */
#ifndef SSDF_ANCHORS_H
#define SSDF_ANCHORS_H

#include "model.h"

/* Anchors as (yc, xc, h, w) in units of the network input, in head order:
 * m->num_anchors x 4 floats. */
void ssdf_anchors(const ssdf_model *m, float *anchors);

#endif

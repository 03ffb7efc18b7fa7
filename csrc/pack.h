/* Packing of source (TFLite-layout) weight tensors into the layout the
 * kernels read (kernels/kernels.h: 16-channel panels, bias first). The blob
 * stores packed tensors, so loading never repacks. */
#ifndef SSDF_PACK_H
#define SSDF_PACK_H

#include <stddef.h>

#include "model.h"

/* Number of source elements (product of the spec's shape). */
size_t ssdf_source_floats(const ssdf_tensor_spec *t);

/* Number of floats the packed tensor occupies. */
size_t ssdf_packed_floats(const ssdf_tensor_spec *t);

/* Pack one tensor. For a weight tensor `bias` is its layer's bias (source
 * layout), folded into the panels; for a bias tensor it is unused and the
 * bias is stored as is. `dst` holds ssdf_packed_floats(t) floats. */
void ssdf_pack_tensor(const ssdf_tensor_spec *t, const float *src, const float *bias, float *dst);

/* The inverse of ssdf_pack_tensor for the weights alone: write the source
 * layout (ssdf_source_floats(t) floats) back from a packed tensor. Used to
 * export a model from a blob. */
void ssdf_unpack_tensor(const ssdf_tensor_spec *t, const float *packed, float *src);

/* Whether the bias folded into a packed weight tensor holds exactly the bits
 * of `bias` (its layer's bias tensor, source layout). */
int ssdf_packed_bias_equals(const ssdf_tensor_spec *t, const float *packed, const float *bias);

#endif

/* Packing of source (TFLite-layout) weight tensors into the layout the kernels
 * read. The blob stores packed tensors, so loading never repacks. */
#ifndef SSDF_PACK_H
#define SSDF_PACK_H

#include <stddef.h>

#include "graph.h"

/* Number of source elements (product of the spec's shape). */
size_t ssdf_source_floats(const ssdf_tensor_spec *t);

/* Number of floats the packed tensor occupies. */
size_t ssdf_packed_floats(const ssdf_tensor_spec *t);

/* Packed layouts:
 *   BIAS     [O]          -> [O]
 *   CONV3X3  [O,3,3,I]    -> [3][3][I][O]   (output channels innermost)
 *   DW3X3    [1,3,3,C]    -> [3][3][C]
 *   CONV1X1  [O,1,1,I]    -> [I][O]         (a K x N GEMM operand)
 * `dst` must hold ssdf_packed_floats(t) floats. */
void ssdf_pack_tensor(const ssdf_tensor_spec *t, const float *src, float *dst);

#endif

/* Packing of source (TFLite-layout) weight tensors into the layout the
 * kernels read (kernels/kernels.h: 16-channel panels, bias first). The blob
 * stores packed tensors, so loading never repacks. */
#ifndef SSDF_PACK_H
#define SSDF_PACK_H

#include <stddef.h>
#include <stdint.h>

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

/* Quantized (qu8) packing, kernels/layout.h. A GEMM tensor (1x1 or 3x3
 * conv) from int8 weights [N][K] (OHWI flattened: k = (ky*3+kx)*C + c), a
 * depthwise one from [9][N]; with each channel's int32 bias (zero point
 * folded in) and float32 output scale. */
size_t ssdf_qu8_gemm_bytes(size_t n, size_t k);
size_t ssdf_qu8_dw_bytes(size_t n);
void ssdf_pack_qu8_gemm(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                        size_t k, uint8_t *dst);
void ssdf_pack_qu8_dw(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                      uint8_t *dst);

#endif

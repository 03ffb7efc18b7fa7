/* A model's quantized form (the int8 mode): per layer, its weights packed in
 * the qu8 layout (kernels/layout.h) and its output stage
 * (kernels/kernels_qu8.h), and how the network input is quantized. The
 * packer builds it from an ssdf_qu8_source (what ssdface.quant computed);
 * a blob carries it beside the float32 tensors (blob.h); the engine runs it.
 * Every layer reads uint8 activations and writes uint8, except the heads,
 * which write the float32 model outputs. */
#ifndef SSDF_QU8_MODEL_H
#define SSDF_QU8_MODEL_H

#include <stdint.h>

#include "common.h"
#include "kernels/kernels.h"
#include "model.h"
#include "pack.h"

/* The network input: q = clamp(rint(x * input_inv_scale) + input_zero, 0, 255). */
typedef struct {
    float input_inv_scale;
    int input_zero;
    ssdf_qu8_output out[SSDF_MAX_LAYERS]; /* res NULL: the engine points it at the residual */
    const uint8_t *weights[SSDF_MAX_LAYERS];
} ssdf_qu8_model;

/* What the packer quantizes from, per layer: int8 weights in the float
 * tensor's source order ([N][K] for a conv, OHWI flattened; [9][N] for a
 * depthwise conv), int32 biases with the input zero point folded in, float32
 * output scales per channel, and the output stage. */
typedef struct {
    float input_inv_scale;
    int input_zero;
    const int8_t *weights[SSDF_MAX_LAYERS];
    const int32_t *bias[SSDF_MAX_LAYERS];
    const float *scale[SSDF_MAX_LAYERS];
    ssdf_qu8_output out[SSDF_MAX_LAYERS];
} ssdf_qu8_source;

/* Bytes of a layer's packed qu8 weights. */
static inline size_t ssdf_qu8_layer_bytes(const ssdf_layer *L) {
    if (L->op == SSDF_OP_DW3X3) return ssdf_qu8_dw_bytes((size_t)L->out_c);
    const size_t k = (size_t)(L->op == SSDF_OP_CONV3X3 ? 9 : 1) * (size_t)L->in_c;
    return ssdf_qu8_gemm_bytes((size_t)L->out_c, k);
}

/* Check a layer table's quantization for consistency with the model: zero
 * points and clamps inside uint8, finite scales, each layer's in_zero the
 * out_zero of the layer it reads (res_zero of its residual), float output
 * exactly for the heads, biases small enough that no sum leaves int32.
 * `weights` may be NULL (the per-channel part is then not checked). */
int ssdf_qu8_model_check(const ssdf_model *g, const ssdf_qu8_model *q, ssdf_error *err);

/* Pack layer l's weights, biases and scales (ssdf_qu8_layer_bytes bytes). */
void ssdf_qu8_pack_layer(const ssdf_model *g, int l, const ssdf_qu8_source *src, uint8_t *dst);

#endif

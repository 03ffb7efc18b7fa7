#include "qu8_model.h"

#include <math.h>
#include <string.h>

/* Largest |bias| accepted: with the largest reduction the model may have
 * (SSDF_QU8_MAX_K taps of 255 x 127) the sums stay inside int32. */
#define SSDF_QU8_MAX_BIAS (1 << 30)
#define SSDF_QU8_MAX_K 33000 /* 33000 * 255 * 127 < 2^30 */

static int reduction(const ssdf_layer *L) {
    return L->op == SSDF_OP_DW3X3 ? 9 : (L->op == SSDF_OP_CONV3X3 ? 9 : 1) * L->in_c;
}

/* The zero point of the value layer l reads as `v` (a layer index or the input). */
static int zero_of(const ssdf_qu8_model *q, int v) {
    return v == SSDF_VALUE_INPUT ? q->input_zero : q->out[v].out_zero;
}

static int byte_ok(int z) { return z >= 0 && z <= 255; }

int ssdf_qu8_model_check(const ssdf_model *g, const ssdf_qu8_model *q, ssdf_error *err) {
    if (!(isfinite(q->input_inv_scale) && q->input_inv_scale > 0.0f) || !byte_ok(q->input_zero))
        return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8: bad input quantization (scale %g, zero %d)",
                         (double)q->input_inv_scale, q->input_zero);
    for (int l = 0; l < g->n_layers; l++) {
        const ssdf_layer *L = &g->layers[l];
        const ssdf_qu8_output *o = &q->out[l];
        if (reduction(L) > SSDF_QU8_MAX_K)
            return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8: layer %d sums %d products, too many for int32",
                             l, reduction(L));
        if (o->f32_out != (L->output != SSDF_OUTPUT_NONE))
            return ssdf_fail(err, SSDF_ERR_FORMAT,
                             "qu8: layer %d must write %s", l, L->output ? "float32" : "uint8");
        if (!byte_ok(o->in_zero) || o->in_zero != zero_of(q, L->src))
            return ssdf_fail(err, SSDF_ERR_FORMAT,
                             "qu8: layer %d reads zero point %d, its input has %d", l, o->in_zero,
                             zero_of(q, L->src));
        if (!o->f32_out) {
            if (!byte_ok(o->out_zero) || !isfinite(o->out_lo) || !isfinite(o->out_hi) ||
                o->out_lo < (float)-o->out_zero || o->out_hi > (float)(255 - o->out_zero) ||
                o->out_lo > o->out_hi)
                return ssdf_fail(err, SSDF_ERR_FORMAT,
                                 "qu8: layer %d clamps to [%g, %g] around zero point %d, outside uint8",
                                 l, (double)o->out_lo, (double)o->out_hi, o->out_zero);
        }
        if (L->res != SSDF_VALUE_NONE) {
            if (o->f32_out || !isfinite(o->res_scale) || o->res_zero != zero_of(q, L->res))
                return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8: layer %d: bad residual quantization", l);
        }
        if (!q->weights[l]) continue;
        const uint8_t *w = q->weights[l];
        const size_t panels = ssdf_panel_count((size_t)L->out_c);
        const size_t pb = ssdf_qu8_layer_bytes(L) / panels;
        for (size_t p = 0; p < panels; p++)
            for (size_t j = 0; j < SSDF_PANEL; j++) {
                int32_t b;
                float s;
                memcpy(&b, w + p * pb + 4 * j, 4);
                memcpy(&s, w + p * pb + 4 * (SSDF_PANEL + j), 4);
                if (!isfinite(s) || b > SSDF_QU8_MAX_BIAS || b < -SSDF_QU8_MAX_BIAS)
                    return ssdf_fail(err, SSDF_ERR_FORMAT,
                                     "qu8: layer %d channel %zu: bias %d or scale %g out of range",
                                     l, p * SSDF_PANEL + j, (int)b, (double)s);
            }
    }
    return SSDF_OK;
}

void ssdf_qu8_pack_layer(const ssdf_model *g, int l, const ssdf_qu8_source *src, uint8_t *dst) {
    const ssdf_layer *L = &g->layers[l];
    if (L->op == SSDF_OP_DW3X3)
        ssdf_pack_qu8_dw(src->weights[l], src->bias[l], src->scale[l], (size_t)L->out_c, dst);
    else
        ssdf_pack_qu8_gemm(src->weights[l], src->bias[l], src->scale[l], (size_t)L->out_c,
                           (size_t)reduction(L), dst);
}

#include "pack.h"

#include <string.h>

size_t ssdf_source_floats(const ssdf_tensor_spec *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

size_t ssdf_packed_floats(const ssdf_tensor_spec *t) { return ssdf_source_floats(t); }

/* OHWI [O][K][K][I] -> [K][K][I][O] */
static void pack_ohwi_to_hwio(const float *src, float *dst, int O, int K, int I) {
    for (int o = 0; o < O; o++)
        for (int k = 0; k < K * K; k++)
            for (int i = 0; i < I; i++)
                dst[((size_t)k * I + i) * O + o] = src[((size_t)o * K * K + k) * I + i];
}

void ssdf_pack_tensor(const ssdf_tensor_spec *t, const float *src, float *dst) {
    switch (t->kind) {
    case SSDF_KIND_CONV3X3:
        pack_ohwi_to_hwio(src, dst, t->shape[0], 3, t->shape[3]);
        break;
    case SSDF_KIND_CONV1X1:
        pack_ohwi_to_hwio(src, dst, t->shape[0], 1, t->shape[3]);
        break;
    default: /* BIAS and DW3X3 are already in kernel order */
        memcpy(dst, src, ssdf_source_floats(t) * sizeof(float));
        break;
    }
}

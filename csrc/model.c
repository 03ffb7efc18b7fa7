/* Model-independent helpers over a model description (model.h). */
#include "model.h"

#include <string.h>

int ssdf_same_out(int in, int stride) { return (in + stride - 1) / stride; }

int ssdf_same_pad_before(int in, int out, int k, int stride) {
    int total = (out - 1) * stride + k - in;
    return total > 0 ? total / 2 : 0;
}

int ssdf_model_find_tensor(const ssdf_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

int ssdf_model_bias_of(const ssdf_model *m, int weight) {
    for (int l = 0; l < m->n_layers; l++)
        if (m->layers[l].weight == weight) return m->layers[l].bias;
    return -1;
}

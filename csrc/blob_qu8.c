#include "blob_qu8.h"

#include <inttypes.h>
#include <string.h>

#include "blob_io.h"

/* The layers with weights, in order (every layer of the model has them). */
static int layer_of_weight(const ssdf_model *g, int tensor) {
    for (int l = 0; l < g->n_layers; l++)
        if (g->layers[l].weight == tensor) return l;
    return -1;
}

static size_t records_bytes(const ssdf_model *g) {
    return (size_t)(g->n_layers + 1) * SSDF_BLOB_QU8_RECORD;
}

int ssdf_blob_qu8_entries(const ssdf_model *g) { return g->n_layers + 1; }

size_t ssdf_blob_qu8_payload(const ssdf_model *g) {
    size_t n = ssdf_round_up(records_bytes(g), SSDF_ALIGN);
    for (int l = 0; l < g->n_layers; l++)
        n += ssdf_round_up(ssdf_qu8_layer_bytes(&g->layers[l]), SSDF_ALIGN);
    return n;
}

static void write_entry(uint8_t *e, const char *name, int dtype, int kind, int ndim,
                        const int *shape, size_t off, size_t bytes) {
    memcpy(e, name, strlen(name));
    ssdf_wr16(e + 88, (uint16_t)dtype);
    ssdf_wr16(e + 90, (uint16_t)kind);
    ssdf_wr32(e + 92, (uint32_t)ndim);
    for (int d = 0; d < 4; d++) ssdf_wr32(e + 96 + 4 * d, d < ndim ? (uint32_t)shape[d] : 0);
    ssdf_wr64(e + 112, off);
    ssdf_wr64(e + 120, bytes);
}

void ssdf_blob_qu8_write(const ssdf_model *g, const ssdf_qu8_source *q, uint8_t *table,
                         uint8_t *payload, size_t *off) {
    for (int l = 0; l < g->n_layers; l++, table += SSDF_BLOB_ENTRY_SIZE) {
        const ssdf_tensor_spec *t = &g->tensors[g->layers[l].weight];
        const size_t bytes = ssdf_qu8_layer_bytes(&g->layers[l]);
        write_entry(table, t->name, SSDF_BLOB_DTYPE_QU8, t->kind, t->ndim, t->shape, *off, bytes);
        ssdf_qu8_pack_layer(g, l, q, payload + *off);
        *off += ssdf_round_up(bytes, SSDF_ALIGN);
    }
    const int shape[1] = {g->n_layers + 1};
    write_entry(table, SSDF_BLOB_QU8_LAYERS_NAME, SSDF_BLOB_DTYPE_QU8_LAYERS, 0, 1, shape, *off,
                records_bytes(g));
    uint8_t *r = payload + *off;
    ssdf_wrf32(r, q->input_inv_scale);
    ssdf_wr32(r + 4, (uint32_t)q->input_zero);
    for (int l = 0; l < g->n_layers; l++) {
        uint8_t *p = r + (size_t)(l + 1) * SSDF_BLOB_QU8_RECORD;
        const ssdf_qu8_output *o = &q->out[l];
        ssdf_wr32(p, (uint32_t)o->in_zero);
        ssdf_wr32(p + 4, (uint32_t)o->out_zero);
        ssdf_wrf32(p + 8, o->out_lo);
        ssdf_wrf32(p + 12, o->out_hi);
        ssdf_wr32(p + 16, (uint32_t)o->res_zero);
        ssdf_wrf32(p + 20, o->res_scale);
        ssdf_wr32(p + 24, (uint32_t)o->f32_out);
    }
    *off += ssdf_round_up(records_bytes(g), SSDF_ALIGN);
}

int ssdf_blob_qu8_entry(const ssdf_model *g, const uint8_t *e, const uint8_t *payload,
                        uint64_t payload_size, ssdf_blob_qu8_reader *r, ssdf_error *err) {
    char name[SSDF_TENSOR_NAME_MAX + 1];
    memcpy(name, e, SSDF_TENSOR_NAME_MAX);
    name[SSDF_TENSOR_NAME_MAX] = '\0';
    const uint64_t off = ssdf_rd64(e + 112), bytes = ssdf_rd64(e + 120);
    uint64_t want;
    const uint8_t **slot;
    int ndim, kind;
    const int *shape;
    int layers_shape[1] = {g->n_layers + 1};
    if (ssdf_rd16(e + 88) == SSDF_BLOB_DTYPE_QU8_LAYERS) {
        if (strcmp(name, SSDF_BLOB_QU8_LAYERS_NAME) != 0)
            return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 record entry is named %s", name);
        slot = &r->records;
        want = records_bytes(g), ndim = 1, kind = 0, shape = layers_shape;
    } else {
        const int t = ssdf_model_find_tensor(g, name), l = t < 0 ? -1 : layer_of_weight(g, t);
        if (l < 0)
            return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 entry %s names no layer's weights", name);
        slot = &r->weights[l];
        want = ssdf_qu8_layer_bytes(&g->layers[l]);
        ndim = g->tensors[t].ndim, kind = g->tensors[t].kind, shape = g->tensors[t].shape;
    }
    if (*slot)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 entry %s is listed twice", name);
    if (ssdf_rd16(e + 90) != kind || ssdf_rd32(e + 92) != (uint32_t)ndim)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 entry %s: wrong layout kind or rank", name);
    for (int d = 0; d < 4; d++)
        if (ssdf_rd32(e + 96 + 4 * d) != (d < ndim ? (uint32_t)shape[d] : 0u))
            return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 entry %s: wrong shape", name);
    if (bytes != want)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 entry %s: %" PRIu64 " bytes, expected %" PRIu64,
                         name, bytes, want);
    if (off % SSDF_ALIGN != 0 || off > payload_size || bytes > payload_size - off)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 entry %s: data misaligned or outside the payload",
                         name);
    *slot = payload + off;
    return SSDF_OK;
}

int ssdf_blob_qu8_finish(const ssdf_model *g, const ssdf_blob_qu8_reader *r, ssdf_qu8_model *out,
                         ssdf_error *err) {
    ssdf_qu8_model q;
    memset(&q, 0, sizeof q);
    if (!r->records) return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 section lacks its layer records");
    for (int l = 0; l < g->n_layers; l++)
        if (!r->weights[l])
            return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 section lacks the weights of layer %d", l);
    q.input_inv_scale = ssdf_rdf32(r->records);
    q.input_zero = (int32_t)ssdf_rd32(r->records + 4);
    for (int l = 0; l < g->n_layers; l++) {
        const uint8_t *p = r->records + (size_t)(l + 1) * SSDF_BLOB_QU8_RECORD;
        ssdf_qu8_output *o = &q.out[l];
        o->in_zero = (int32_t)ssdf_rd32(p);
        o->out_zero = (int32_t)ssdf_rd32(p + 4);
        o->out_lo = ssdf_rdf32(p + 8);
        o->out_hi = ssdf_rdf32(p + 12);
        o->res_zero = (int32_t)ssdf_rd32(p + 16);
        o->res_scale = ssdf_rdf32(p + 20);
        o->f32_out = (int32_t)ssdf_rd32(p + 24);
        o->res = NULL;
        if (ssdf_rd32(p + 28) != 0 || (o->f32_out != 0 && o->f32_out != 1))
            return ssdf_fail(err, SSDF_ERR_FORMAT, "qu8 record of layer %d is malformed", l);
        q.weights[l] = r->weights[l];
    }
    const int rc = ssdf_qu8_model_check(g, &q, err);
    if (rc) return rc;
    if (out) *out = q;
    return SSDF_OK;
}

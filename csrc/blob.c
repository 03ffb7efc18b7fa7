#include "blob.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "checksum.h"
#include "pack.h"

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static size_t table_end(const ssdf_graph *g) {
    return SSDF_BLOB_HEADER_SIZE + (size_t)g->n_tensors * SSDF_BLOB_ENTRY_SIZE;
}

static size_t payload_start(const ssdf_graph *g) { return ssdf_round_up(table_end(g), SSDF_ALIGN); }

size_t ssdf_blob_size(const ssdf_graph *g) {
    size_t off = payload_start(g);
    for (int i = 0; i < g->n_tensors; i++)
        off += ssdf_round_up(ssdf_packed_floats(&g->tensors[i]) * sizeof(float), SSDF_ALIGN);
    return off;
}

void ssdf_blob_write(const ssdf_graph *g, const float *const *sources, uint8_t *out) {
    const size_t total = ssdf_blob_size(g), payload = payload_start(g);
    size_t off = 0;
    memset(out, 0, total);
    memcpy(out, SSDF_BLOB_MAGIC, 8);
    wr32(out + 8, SSDF_BLOB_VERSION);
    wr32(out + 12, SSDF_BLOB_HEADER_SIZE);
    wr32(out + 16, (uint32_t)g->n_tensors);
    wr32(out + 20, SSDF_BLOB_ENTRY_SIZE);
    wr64(out + 24, SSDF_BLOB_HEADER_SIZE);
    wr64(out + 32, payload);
    wr64(out + 40, total - payload);
    wr64(out + 48, total);
    memcpy(out + 64, SSDF_MODEL_NAME, strlen(SSDF_MODEL_NAME));
    for (int i = 0; i < g->n_tensors; i++) {
        const ssdf_tensor_spec *t = &g->tensors[i];
        uint8_t *e = out + SSDF_BLOB_HEADER_SIZE + (size_t)i * SSDF_BLOB_ENTRY_SIZE;
        size_t bytes = ssdf_packed_floats(t) * sizeof(float);
        memcpy(e, t->name, strlen(t->name));
        wr16(e + 88, SSDF_BLOB_DTYPE_F32);
        wr16(e + 90, (uint16_t)t->kind);
        wr32(e + 92, (uint32_t)t->ndim);
        for (int d = 0; d < 4; d++) wr32(e + 96 + 4 * d, d < t->ndim ? (uint32_t)t->shape[d] : 0);
        wr64(e + 112, off);
        wr64(e + 120, bytes);
        /* Packing writes native floats: the reader refuses big-endian hosts. */
        const int bias = ssdf_graph_bias_of(g, i);
        ssdf_pack_tensor(t, sources[i], bias >= 0 ? sources[bias] : NULL,
                         (float *)(out + payload + off));
        off += ssdf_round_up(bytes, SSDF_ALIGN);
    }
    wr64(out + 56, ssdf_xxh64(out + SSDF_BLOB_CHECKSUM_START, total - SSDF_BLOB_CHECKSUM_START, 0));
}

/* Check one table entry against the graph tensor it claims to be. */
static int check_entry(const uint8_t *e, const ssdf_tensor_spec *t, uint64_t payload_size,
                       ssdf_error *err) {
    uint64_t off = rd64(e + 112), bytes = rd64(e + 120);
    uint64_t want = (uint64_t)ssdf_packed_floats(t) * sizeof(float);
    if (rd16(e + 88) != SSDF_BLOB_DTYPE_F32)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: dtype code %u, expected float32", t->name,
                         rd16(e + 88));
    if (rd16(e + 90) != t->kind)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: layout kind %u, expected %d", t->name,
                         rd16(e + 90), t->kind);
    if (rd32(e + 92) != (uint32_t)t->ndim)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: %u dimensions, expected %d", t->name,
                         rd32(e + 92), t->ndim);
    for (int d = 0; d < t->ndim; d++)
        if (rd32(e + 96 + 4 * d) != (uint32_t)t->shape[d])
            return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: dimension %d is %u, expected %d",
                             t->name, d, rd32(e + 96 + 4 * d), t->shape[d]);
    if (bytes != want)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: %" PRIu64 " bytes, expected %" PRIu64,
                         t->name, bytes, want);
    if (off % SSDF_ALIGN != 0)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: offset %" PRIu64 " is not aligned",
                         t->name, off);
    if (off > payload_size || bytes > payload_size - off)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s: data [%" PRIu64 ", +%" PRIu64
                         ") lies outside the payload (%" PRIu64 " bytes)",
                         t->name, off, bytes, payload_size);
    return SSDF_OK;
}

int ssdf_blob_open(const uint8_t *data, size_t size, const ssdf_graph *g,
                   const float *tensors[SSDF_MAX_TENSORS], ssdf_blob_info *info, ssdf_error *err) {
    uint32_t version, count;
    uint64_t table_off, payload_off, payload_size, file_size, checksum;

    if (!host_is_little_endian())
        return ssdf_fail(err, SSDF_ERR_FORMAT, "weights blobs are little-endian; this host is not");
    if (size < SSDF_BLOB_HEADER_SIZE)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "file is %zu bytes, too short for a blob header",
                         size);
    if (memcmp(data, SSDF_BLOB_MAGIC, 8) != 0)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "not an ssdface weights blob (bad magic)");
    version = rd32(data + 8);
    if (version != SSDF_BLOB_VERSION)
        return ssdf_fail(err, SSDF_ERR_FORMAT,
                         "blob format version %u, this ssdface reads version %d: repack the "
                         "weights with `ssdface pack`",
                         version, SSDF_BLOB_VERSION);
    count = rd32(data + 16);
    table_off = rd64(data + 24);
    payload_off = rd64(data + 32);
    payload_size = rd64(data + 40);
    file_size = rd64(data + 48);
    checksum = rd64(data + 56);
    if (rd32(data + 12) != SSDF_BLOB_HEADER_SIZE || rd32(data + 20) != SSDF_BLOB_ENTRY_SIZE ||
        table_off != SSDF_BLOB_HEADER_SIZE)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob header has unexpected sizes");
    if (file_size != size)
        return ssdf_fail(err, SSDF_ERR_FORMAT,
                         "blob is %zu bytes but its header says %" PRIu64 " (truncated or padded?)",
                         size, file_size);
    if (count == 0 || count > SSDF_MAX_TENSORS)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob claims %u tensors", count);
    if (payload_off % SSDF_ALIGN != 0 ||
        payload_off < table_off + (uint64_t)count * SSDF_BLOB_ENTRY_SIZE || payload_off > size ||
        payload_size != size - payload_off)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob payload bounds are inconsistent");
    if (((uintptr_t)data % SSDF_ALIGN) != 0)
        return ssdf_fail(err, SSDF_ERR_VALUE, "blob memory is not %d-byte aligned", SSDF_ALIGN);
    if (ssdf_xxh64(data + SSDF_BLOB_CHECKSUM_START, size - SSDF_BLOB_CHECKSUM_START, 0) != checksum)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob checksum mismatch: the file is corrupt");
    if (memcmp(data + 64, SSDF_MODEL_NAME, strlen(SSDF_MODEL_NAME) + 1) != 0)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob holds a model other than %s", SSDF_MODEL_NAME);

    for (int i = 0; i < g->n_tensors; i++) {
        const ssdf_tensor_spec *t = &g->tensors[i];
        const uint8_t *found = NULL;
        for (uint32_t j = 0; j < count && !found; j++) {
            const uint8_t *e = data + table_off + (size_t)j * SSDF_BLOB_ENTRY_SIZE;
            if (strncmp((const char *)e, t->name, 88) == 0) found = e;
        }
        if (!found) return ssdf_fail(err, SSDF_ERR_FORMAT, "blob lacks tensor %s", t->name);
        int rc = check_entry(found, t, payload_size, err);
        if (rc) return rc;
        tensors[i] = (const float *)(data + payload_off + rd64(found + 112));
    }
    if (info) {
        info->version = version;
        info->tensor_count = count;
        info->payload_size = payload_size;
        info->file_size = file_size;
        info->checksum = checksum;
        memcpy(info->model_name, data + 64, 32);
        info->model_name[32] = '\0';
    }
    return SSDF_OK;
}

#include "blob.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob_io.h"
#include "blob_qu8.h"
#include "checksum.h"
#include "pack.h"

#define rd16 ssdf_rd16
#define rd32 ssdf_rd32
#define rd64 ssdf_rd64
#define wr16 ssdf_wr16
#define wr32 ssdf_wr32
#define wr64 ssdf_wr64

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Table entries of a blob: the float32 tensors, then the qu8 section's. */
static int entry_count(const ssdf_model *g, int with_qu8) {
    return g->n_tensors + (with_qu8 ? ssdf_blob_qu8_entries(g) : 0);
}

static size_t payload_start(const ssdf_model *g, int with_qu8) {
    return ssdf_round_up(SSDF_BLOB_HEADER_SIZE + (size_t)entry_count(g, with_qu8) * SSDF_BLOB_ENTRY_SIZE,
                         SSDF_ALIGN);
}

size_t ssdf_blob_size(const ssdf_model *g, int with_qu8) {
    size_t off = payload_start(g, with_qu8);
    for (int i = 0; i < g->n_tensors; i++)
        off += ssdf_round_up(ssdf_packed_floats(&g->tensors[i]) * sizeof(float), SSDF_ALIGN);
    return off + (with_qu8 ? ssdf_blob_qu8_payload(g) : 0);
}

void ssdf_blob_write(const ssdf_model *g, const float *const *sources,
                     const ssdf_qu8_source *qu8, uint8_t *out) {
    const int with_qu8 = qu8 != NULL;
    const size_t total = ssdf_blob_size(g, with_qu8), payload = payload_start(g, with_qu8);
    size_t off = 0;
    memset(out, 0, total);
    memcpy(out, SSDF_BLOB_MAGIC, 8);
    wr32(out + 8, SSDF_BLOB_VERSION);
    wr32(out + 12, SSDF_BLOB_HEADER_SIZE);
    wr32(out + 16, (uint32_t)entry_count(g, with_qu8));
    wr32(out + 20, SSDF_BLOB_ENTRY_SIZE);
    wr64(out + 24, SSDF_BLOB_HEADER_SIZE);
    wr64(out + 32, payload);
    wr64(out + 40, total - payload);
    wr64(out + 48, total);
    memcpy(out + 64, g->name, strlen(g->name));
    wr32(out + 96, with_qu8 ? SSDF_BLOB_SECTION_QU8 : 0u);
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
        const int bias = ssdf_model_bias_of(g, i);
        ssdf_pack_tensor(t, sources[i], bias >= 0 ? sources[bias] : NULL,
                         (float *)(out + payload + off));
        off += ssdf_round_up(bytes, SSDF_ALIGN);
    }
    if (with_qu8)
        ssdf_blob_qu8_write(g, qu8,
                            out + SSDF_BLOB_HEADER_SIZE + (size_t)g->n_tensors * SSDF_BLOB_ENTRY_SIZE,
                            out + payload, &off);
    wr64(out + 56, ssdf_xxh64(out + SSDF_BLOB_CHECKSUM_START, total - SSDF_BLOB_CHECKSUM_START, 0));
}

/* Check one table entry against the model tensor it claims to be. */
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

/* Whether every float of [p, p + n) is finite (the exponent bits are not all
 * ones): NaN or inf weights would make results depend on the kernel variant. */
static int all_finite(const float *p, size_t n) {
    const uint32_t *u = (const uint32_t *)p;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
    return !bad;
}

typedef struct {
    uint64_t off, end;
    const uint8_t *entry; /* its name starts the entry */
} extent;

static int by_offset(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int ssdf_blob_check_header(const uint8_t *data, size_t avail, uint64_t file_size,
                           const ssdf_model *g, ssdf_error *err) {
    uint32_t version, count, sections;
    uint64_t table_off, payload_off, payload_size, claimed_size;

    if (!host_is_little_endian())
        return ssdf_fail(err, SSDF_ERR_FORMAT, "weights blobs are little-endian; this host is not");
    if (file_size == 0)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "file is empty, not a weights blob");
    if (file_size < SSDF_BLOB_HEADER_SIZE || avail < SSDF_BLOB_HEADER_SIZE)
        return ssdf_fail(err, SSDF_ERR_FORMAT,
                         "file is %" PRIu64 " bytes, too short for a blob header", file_size);
    if (memcmp(data, SSDF_BLOB_MAGIC, 8) != 0)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "not an ssdface weights blob (bad magic)");
    version = rd32(data + 8);
    if (version < SSDF_BLOB_MIN_VERSION || version > SSDF_BLOB_VERSION)
        return ssdf_fail(err, SSDF_ERR_FORMAT,
                         "blob format version %u, this ssdface reads versions %d to %d: repack the "
                         "weights with `ssdface pack`",
                         version, SSDF_BLOB_MIN_VERSION, SSDF_BLOB_VERSION);
    sections = rd32(data + 96);
    if ((sections & ~SSDF_BLOB_SECTION_QU8) != 0 || (version < 3 && sections != 0))
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob header names unknown sections (0x%x)",
                         (unsigned)sections);
    const int with_qu8 = (sections & SSDF_BLOB_SECTION_QU8) != 0;
    count = rd32(data + 16);
    table_off = rd64(data + 24);
    payload_off = rd64(data + 32);
    payload_size = rd64(data + 40);
    claimed_size = rd64(data + 48);
    if (rd32(data + 12) != SSDF_BLOB_HEADER_SIZE || rd32(data + 20) != SSDF_BLOB_ENTRY_SIZE ||
        table_off != SSDF_BLOB_HEADER_SIZE)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob header has unexpected sizes");
    if (claimed_size != file_size)
        return ssdf_fail(err, SSDF_ERR_FORMAT,
                         "blob is %" PRIu64 " bytes but its header says %" PRIu64
                         " (truncated or padded?)",
                         file_size, claimed_size);
    if (count != (uint32_t)entry_count(g, with_qu8))
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob claims %u tensors, the model has %d%s", count,
                         entry_count(g, with_qu8), with_qu8 ? " with its qu8 section" : "");
    if (payload_off % SSDF_ALIGN != 0 ||
        payload_off < table_off + (uint64_t)count * SSDF_BLOB_ENTRY_SIZE ||
        payload_off > file_size || payload_size != file_size - payload_off)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob payload bounds are inconsistent");
    /* The model fixes every tensor's size, so it fixes the file's: a header
     * claiming more is refused before anything hashes gigabytes. */
    if (file_size != ssdf_blob_size(g, with_qu8))
        return ssdf_fail(err, SSDF_ERR_FORMAT,
                         "blob is %" PRIu64 " bytes; a blob of %s is %zu bytes%s", file_size,
                         g->name, ssdf_blob_size(g, with_qu8),
                         with_qu8 ? " (with its qu8 section)" : "");
    return SSDF_OK;
}

/* The first model tensor no float32 entry of the table names, or -1. */
static int missing_tensor(const ssdf_model *g, const uint8_t *table, uint32_t count) {
    for (int k = 0; k < g->n_tensors; k++) {
        int seen = 0;
        for (uint32_t j = 0; j < count && !seen; j++) {
            const uint8_t *e = table + (size_t)j * SSDF_BLOB_ENTRY_SIZE;
            seen = rd16(e + 88) == SSDF_BLOB_DTYPE_F32 &&
                   strncmp((const char *)e, g->tensors[k].name, SSDF_TENSOR_NAME_MAX) == 0;
        }
        if (!seen) return k;
    }
    return -1;
}

/* A float32 entry: the model tensor it names, listed once, as the model has
 * it. An unknown name means a tensor is missing: say which. */
static int open_f32_entry(const ssdf_model *g, const uint8_t *e, const uint8_t *table,
                          uint32_t count, uint64_t payload_size, const uint8_t *payload,
                          const float *tensors[SSDF_MAX_TENSORS], ssdf_error *err) {
    char name[SSDF_TENSOR_NAME_MAX + 1];
    memcpy(name, e, SSDF_TENSOR_NAME_MAX);
    name[SSDF_TENSOR_NAME_MAX] = '\0';
    const int i = ssdf_model_find_tensor(g, name);
    if (i < 0) {
        const int k = missing_tensor(g, table, count);
        if (k >= 0) return ssdf_fail(err, SSDF_ERR_FORMAT, "blob lacks tensor %s", g->tensors[k].name);
        return ssdf_fail(err, SSDF_ERR_FORMAT, "table entry %s names no tensor of the model", name);
    }
    if (tensors[i])
        return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s is listed twice", g->tensors[i].name);
    const int rc = check_entry(e, &g->tensors[i], payload_size, err);
    if (rc) return rc;
    tensors[i] = (const float *)(payload + rd64(e + 112));
    return SSDF_OK;
}

int ssdf_blob_open(const uint8_t *data, size_t size, const ssdf_model *g,
                   const float *tensors[SSDF_MAX_TENSORS], ssdf_qu8_model *qu8,
                   ssdf_blob_info *info, ssdf_error *err) {
    extent extents[SSDF_MAX_TENSORS + SSDF_MAX_LAYERS + 1];
    ssdf_blob_qu8_reader reader;
    int rc = ssdf_blob_check_header(data, size, size, g, err);
    if (rc) return rc;
    const uint32_t count = rd32(data + 16);
    const int with_qu8 = (rd32(data + 96) & SSDF_BLOB_SECTION_QU8) != 0;
    const uint64_t table_off = rd64(data + 24), payload_off = rd64(data + 32),
                   payload_size = rd64(data + 40), checksum = rd64(data + 56);
    if (((uintptr_t)data % SSDF_ALIGN) != 0)
        return ssdf_fail(err, SSDF_ERR_VALUE, "blob memory is not %d-byte aligned", SSDF_ALIGN);
    if (ssdf_xxh64(data + SSDF_BLOB_CHECKSUM_START, size - SSDF_BLOB_CHECKSUM_START, 0) != checksum)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob checksum mismatch: the file is corrupt");
    if (memcmp(data + 64, g->name, strlen(g->name) + 1) != 0)
        return ssdf_fail(err, SSDF_ERR_FORMAT, "blob holds a model other than %s", g->name);

    /* Every entry names a distinct tensor (float32) or qu8 part; with the
     * count fixed by the header check, all of them are then present. */
    memset(&reader, 0, sizeof reader);
    for (int i = 0; i < g->n_tensors; i++) tensors[i] = NULL;
    for (uint32_t j = 0; j < count; j++) {
        const uint8_t *e = data + table_off + (size_t)j * SSDF_BLOB_ENTRY_SIZE;
        const unsigned dtype = rd16(e + 88);
        if (dtype == SSDF_BLOB_DTYPE_F32)
            rc = open_f32_entry(g, e, data + table_off, count, payload_size, data + payload_off,
                                tensors, err);
        else if (with_qu8 && (dtype == SSDF_BLOB_DTYPE_QU8 || dtype == SSDF_BLOB_DTYPE_QU8_LAYERS))
            rc = ssdf_blob_qu8_entry(g, e, data + payload_off, payload_size, &reader, err);
        else
            rc = ssdf_fail(err, SSDF_ERR_FORMAT, "table entry %u: dtype code %u, expected float32%s",
                           j, dtype, with_qu8 ? " or qu8" : "");
        if (rc) return rc;
        extents[j] = (extent){rd64(e + 112), rd64(e + 112) + rd64(e + 120), e};
    }
    for (int i = 0; i < g->n_tensors; i++)
        if (!tensors[i]) return ssdf_fail(err, SSDF_ERR_FORMAT, "blob lacks tensor %s", g->tensors[i].name);
    /* No two entries may share bytes: an aliased tensor would be two facts
     * stored in one place. */
    qsort(extents, count, sizeof *extents, by_offset);
    for (uint32_t j = 1; j < count; j++)
        if (extents[j].off < extents[j - 1].end)
            return ssdf_fail(err, SSDF_ERR_FORMAT, "tensors %.88s and %.88s overlap in the payload",
                             (const char *)extents[j - 1].entry, (const char *)extents[j].entry);
    for (int i = 0; i < g->n_tensors; i++) {
        const ssdf_tensor_spec *t = &g->tensors[i];
        if (!all_finite(tensors[i], ssdf_packed_floats(t)))
            return ssdf_fail(err, SSDF_ERR_FORMAT, "tensor %s holds NaN or infinite values",
                             t->name);
        const int bias = ssdf_model_bias_of(g, i);
        /* The bias lives twice, in the panels the kernels read and in the
         * bias tensor the exporter reads: both must hold the same bits. */
        if (bias >= 0 && !ssdf_packed_bias_equals(t, tensors[i], tensors[bias]))
            return ssdf_fail(err, SSDF_ERR_FORMAT,
                             "tensor %s: its bias differs from the one packed with %s",
                             g->tensors[bias].name, t->name);
    }
    if (with_qu8 && (rc = ssdf_blob_qu8_finish(g, &reader, qu8, err))) return rc;
    if (info) {
        info->version = rd32(data + 8);
        info->has_qu8 = with_qu8;
        info->tensor_count = count;
        info->payload_size = payload_size;
        info->file_size = size;
        info->checksum = checksum;
        memcpy(info->model_name, data + 64, 32);
        info->model_name[32] = '\0';
    }
    return SSDF_OK;
}

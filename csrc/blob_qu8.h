/* The blob's qu8 section (format in blob.h): its size, writing it, and
 * reading its entries. Internal to blob.c. */
#ifndef SSDF_BLOB_QU8_H
#define SSDF_BLOB_QU8_H

#include "blob.h"

/* Table entries and payload bytes of the section. */
int ssdf_blob_qu8_entries(const ssdf_model *g);
size_t ssdf_blob_qu8_payload(const ssdf_model *g);

/* Write the section's table entries from `table` and their data from
 * `payload + *off`, advancing *off. */
void ssdf_blob_qu8_write(const ssdf_model *g, const ssdf_qu8_source *q, uint8_t *table,
                         uint8_t *payload, size_t *off);

/* Reading: call ssdf_blob_qu8_entry for each entry of a qu8 dtype, then
 * ssdf_blob_qu8_finish, which checks that every entry came once and the
 * records make sense, and fills `out`. */
typedef struct {
    const uint8_t *weights[SSDF_MAX_LAYERS];
    const uint8_t *records;
} ssdf_blob_qu8_reader;

int ssdf_blob_qu8_entry(const ssdf_model *g, const uint8_t *entry, const uint8_t *payload,
                        uint64_t payload_size, ssdf_blob_qu8_reader *r, ssdf_error *err);
int ssdf_blob_qu8_finish(const ssdf_model *g, const ssdf_blob_qu8_reader *r, ssdf_qu8_model *out,
                         ssdf_error *err);

#endif

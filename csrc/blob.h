/* The weights blob: one contiguous, versioned, checksummed file holding every
 * weight tensor already packed in the layout the kernels read.
 *
 * Layout (all integers little-endian):
 *   0    header, 128 bytes
 *          0  char[8] magic "SSDFBLOB"
 *          8  u32 format version (SSDF_BLOB_VERSION)
 *         12  u32 header size (128)
 *         16  u32 tensor count
 *         20  u32 table entry size (128)
 *         24  u64 table offset (128)
 *         32  u64 payload offset (multiple of 64)
 *         40  u64 payload size
 *         48  u64 file size
 *         56  u64 XXH64 (seed 0) of bytes [64, file size)
 *         64  char[32] model name, NUL padded
 *         96  u32 sections: bit 0 set when the qu8 section is present (v3)
 *        100  28 bytes reserved, zero
 *   128  tensor table, one 128-byte entry per tensor
 *          0  char[88] name, NUL padded
 *         88  u16 dtype (1 = float32)
 *         90  u16 kind (ssdf_tensor_kind: the packed layout)
 *         92  u32 ndim
 *         96  u32[4] source shape
 *        112  u64 offset from the payload start (multiple of 64)
 *        120  u64 size in bytes
 *   payload, 64-byte aligned tensors
 *
 * The qu8 section (the int8 mode, qu8_model.h): one dtype-2 entry per layer,
 * named after the layer's float32 weight tensor (kind and shape the same),
 * holding its packed qu8 weights, biases and scales; and one dtype-3 entry
 * named "qu8.layers", shape [n_layers + 1], of 32-byte records: record 0 the
 * input (f32 inverse scale, i32 zero point), record 1 + l layer l's output
 * stage (i32 in_zero, i32 out_zero, f32 out_lo, f32 out_hi, i32 res_zero,
 * f32 res_scale, i32 f32_out, u32 zero). A blob without it runs float32 only.
 *
 * The version changes whenever a packed layout changes, so an old blob is
 * refused instead of being misread. */
#ifndef SSDF_BLOB_H
#define SSDF_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model.h"
#include "qu8_model.h"

#define SSDF_BLOB_MAGIC "SSDFBLOB"
#define SSDF_BLOB_VERSION 3 /* 3: the optional qu8 section; 2: weights in 16-channel panels */
#define SSDF_BLOB_MIN_VERSION 2 /* version 2 is version 3 without the qu8 section */
#define SSDF_BLOB_HEADER_SIZE 128
#define SSDF_BLOB_ENTRY_SIZE 128
#define SSDF_BLOB_CHECKSUM_START 64
#define SSDF_BLOB_DTYPE_F32 1
#define SSDF_BLOB_DTYPE_QU8 2
#define SSDF_BLOB_DTYPE_QU8_LAYERS 3
#define SSDF_BLOB_SECTION_QU8 1u
#define SSDF_BLOB_QU8_LAYERS_NAME "qu8.layers"
#define SSDF_BLOB_QU8_RECORD 32

typedef struct {
    uint32_t version;
    uint32_t tensor_count;
    uint64_t payload_size;
    uint64_t file_size;
    uint64_t checksum;
    char model_name[33];
    int has_qu8; /* the qu8 section is present (and valid) */
} ssdf_blob_info;

/* Check a blob's header alone: `data` holds its first `avail` bytes (at least
 * the 128-byte header) of a file of `file_size` bytes. Magic, version, the
 * header's sizes against the file and against the size the model's tensors
 * take: a reader calls this before reading or hashing the rest. */
int ssdf_blob_check_header(const uint8_t *data, size_t avail, uint64_t file_size,
                           const ssdf_model *g, ssdf_error *err);

/* Validate a whole blob in memory and point `tensors[i]` at the packed data
 * of model tensor i. Checks: the header (above), the checksum, a table of
 * exactly the model's tensors, each once, with the right dtype, kind, shape
 * and size, aligned, inside the payload and overlapping no other; finite
 * values; each bias tensor equal to the bias packed with its weights; and
 * the qu8 section's entries and records (ssdf_qu8_model_check), which fill
 * `qu8` when it is not NULL. `data` must be 64-byte aligned. Nothing is
 * copied. */
int ssdf_blob_open(const uint8_t *data, size_t size, const ssdf_model *g,
                   const float *tensors[SSDF_MAX_TENSORS], ssdf_qu8_model *qu8,
                   ssdf_blob_info *info, ssdf_error *err);

/* Size in bytes of the blob holding the model's tensors, with or without
 * the qu8 section. */
size_t ssdf_blob_size(const ssdf_model *g, int with_qu8);

/* Write the blob for the model's tensors into `out` (ssdf_blob_size bytes).
 * `sources[i]` is model tensor i in its source layout (the .npy contents);
 * `qu8` the quantized model for the qu8 section, or NULL for none. */
void ssdf_blob_write(const ssdf_model *g, const float *const *sources,
                     const ssdf_qu8_source *qu8, uint8_t *out);

#endif

/* Little-endian reads and writes of the blob's integers (blob.c, blob_qu8.c). */
#ifndef SSDF_BLOB_IO_H
#define SSDF_BLOB_IO_H

#include <stdint.h>
#include <string.h>

static inline uint16_t ssdf_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ssdf_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ssdf_rd64(const uint8_t *p) {
    return (uint64_t)ssdf_rd32(p) | (uint64_t)ssdf_rd32(p + 4) << 32;
}
static inline float ssdf_rdf32(const uint8_t *p) {
    const uint32_t u = ssdf_rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline void ssdf_wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ssdf_wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ssdf_wr64(uint8_t *p, uint64_t v) {
    ssdf_wr32(p, (uint32_t)v);
    ssdf_wr32(p + 4, (uint32_t)(v >> 32));
}
static inline void ssdf_wrf32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    ssdf_wr32(p, u);
}

#endif

/* Portable variant: a 16-float GCC/Clang vector as the vector type. The
 * compiler lowers it to whatever the baseline ISA has (4 x SSE2 on x86-64,
 * 4 x NEON on arm64); the fallback on CPUs without AVX2. */
#include <string.h>

typedef float VEC __attribute__((vector_size(64)));
typedef int IVEC __attribute__((vector_size(64)));

static inline VEC vload(const float *p) {
    VEC r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline VEC vloadn(const float *p, int n) {
    VEC r = {0};
    memcpy(&r, p, sizeof(float) * (size_t)n);
    return r;
}
static inline VEC vload_u8(const unsigned char *p) {
    VEC r;
    for (int i = 0; i < 16; i++) r[i] = p[i];
    return r;
}
static inline VEC vbcast(float x) {
    const VEC zero = {0};
    return zero + x;
}
static inline VEC vfma(VEC a, VEC b, VEC c) { return a * b + c; }
static inline VEC vadd(VEC a, VEC b) { return a + b; }
static inline VEC vrelu6(VEC a) {
    const VEC zero = {0}, six = zero + 6.0f;
    const IVEC pos = a > zero, small = a < six;
    const IVEC r = ((IVEC)a & pos & small) | ((IVEC)six & ~small);
    return (VEC)r;
}
static inline void vstore(float *p, VEC a) { memcpy(p, &a, sizeof a); }
static inline void vstoren(float *p, VEC a, int n) { memcpy(p, &a, sizeof(float) * (size_t)n); }

#define TILE_M 4
#define TILE_P 1

#include "conv_driver.h"

SSDF_DEFINE_KERNEL_TABLE(scalar)

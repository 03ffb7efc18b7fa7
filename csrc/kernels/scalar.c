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

/* qu8 over GCC vectors of 16 int32 / float lanes; the GEMM multiplies each
 * channel's 4 weights of a group by the 4 bytes of A, lane by lane. */
#include <math.h>
#include <stdint.h>

typedef int32_t QI __attribute__((vector_size(64)));
typedef float QF __attribute__((vector_size(64)));
typedef QI QACC;
typedef struct {
    int32_t b[4];
} QA;
typedef const int8_t *QB;

static inline QI qi_load(const int32_t *p) {
    QI r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline QI qi_bcast(int x) {
    const QI zero = {0};
    return zero + x;
}
static inline QI qi_add(QI a, QI b) { return a + b; }
static inline QI qi_sub(QI a, QI b) { return a - b; }
static inline QI qi_mul(QI a, QI b) { return a * b; }
static inline QI qi_u8(const uint8_t *p, int n) {
    QI r = {0};
    for (int i = 0; i < n; i++) r[i] = p[i];
    return r;
}
static inline QI qi_s8(const int8_t *p) {
    QI r;
    for (int i = 0; i < 16; i++) r[i] = p[i];
    return r;
}
static inline void qi_store_u8(uint8_t *p, QI v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)v[i];
}
static inline QF qf_cvt(QI v) { return __builtin_convertvector(v, QF); }
static inline QF qf_load(const float *p) {
    QF r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline QF qf_bcast(float x) {
    const QF zero = {0};
    return zero + x;
}
static inline QF qf_mul(QF a, QF b) { return a * b; }
static inline QF qf_add(QF a, QF b) { return a + b; }
static inline QF qf_max(QF a, QF b) { /* a < b ? b : a, as the reference clamps */
    for (int i = 0; i < 16; i++) a[i] = a[i] < b[i] ? b[i] : a[i];
    return a;
}
static inline QF qf_min(QF a, QF b) {
    for (int i = 0; i < 16; i++) a[i] = a[i] > b[i] ? b[i] : a[i];
    return a;
}
static inline QI qf_round(QF v) {
    QI r;
    for (int i = 0; i < 16; i++) r[i] = (int32_t)lrintf(v[i]);
    return r;
}
static inline void qf_store(float *p, QF v, int n) { memcpy(p, &v, sizeof(float) * (size_t)n); }

static inline QACC qacc_init(const int32_t *bias) { return qi_load(bias); }
static inline QA qa_load(const uint8_t *p) { return (QA){{p[0], p[1], p[2], p[3]}}; }
static inline QB qb_load(const uint8_t *p) { return (const int8_t *)p; }
static inline QACC qacc_dot(QACC acc, QA a, QB b) {
    for (int c = 0; c < 16; c++)
        acc[c] += a.b[0] * b[4 * c] + a.b[1] * b[4 * c + 1] + a.b[2] * b[4 * c + 2] +
                  a.b[3] * b[4 * c + 3];
    return acc;
}
static inline QI qacc_sum(QACC a) { return a; }

#define QTILE_M 4
#define QTILE_P 1

#include "qu8_driver.h"

SSDF_DEFINE_KERNEL_TABLE(scalar, SSDF_F32_TABLE_FIELDS, SSDF_QU8_TABLE_FIELDS)

/* AVX-512 VNNI variant (compiled with -mavx512f -mavx512bw -mavx512vl
 * -mavx512vnni; Cascade Lake and later, Zen 4): the qu8 kernels only (the
 * f32 kernels are avx512's). vpdpbusd multiplies 4 bytes of A (one
 * broadcast) by the 4 weights of each of 16 channels and adds the sums to
 * 16 int32 lanes. An 8x32 tile keeps 16 accumulators. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

typedef __m512i QI;
typedef __m512 QF;

static inline __mmask16 q_mask(int n) { return (__mmask16)((1u << n) - 1u); }

static inline QI qi_load(const int32_t *p) { return _mm512_loadu_si512(p); }
static inline QI qi_bcast(int x) { return _mm512_set1_epi32(x); }
static inline QI qi_add(QI a, QI b) { return _mm512_add_epi32(a, b); }
static inline QI qi_sub(QI a, QI b) { return _mm512_sub_epi32(a, b); }
static inline QI qi_mul(QI a, QI b) { return _mm512_mullo_epi32(a, b); }
static inline QI qi_u8(const uint8_t *p, int n) {
    const __m128i b = n >= 16 ? _mm_loadu_si128((const __m128i *)p) : _mm_maskz_loadu_epi8(q_mask(n), p);
    return _mm512_cvtepu8_epi32(b);
}
static inline QI qi_s8(const int8_t *p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline void qi_store_u8(uint8_t *p, QI v, int n) {
    _mm512_mask_cvtepi32_storeu_epi8(p, q_mask(n), v);
}
static inline QF qf_cvt(QI v) { return _mm512_cvtepi32_ps(v); }
static inline QF qf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline QF qf_bcast(float x) { return _mm512_set1_ps(x); }
static inline QF qf_mul(QF a, QF b) { return _mm512_mul_ps(a, b); }
static inline QF qf_add(QF a, QF b) { return _mm512_add_ps(a, b); }
static inline QF qf_max(QF a, QF b) { return _mm512_max_ps(a, b); }
static inline QF qf_min(QF a, QF b) { return _mm512_min_ps(a, b); }
static inline QI qf_round(QF v) { return _mm512_cvtps_epi32(v); }
static inline void qf_store(float *p, QF v, int n) { _mm512_mask_storeu_ps(p, q_mask(n), v); }

typedef __m512i QACC;
typedef __m512i QA;
typedef __m512i QB;

static inline QACC qacc_init(const int32_t *bias) { return _mm512_loadu_si512(bias); }
static inline QA qa_load(const uint8_t *p) {
    int32_t x;
    memcpy(&x, p, 4);
    return _mm512_set1_epi32(x);
}
static inline QB qb_load(const uint8_t *p) { return _mm512_loadu_si512(p); }
/* vpdpbusd accumulates in place; written through the intrinsic, GCC 12 copies
 * the accumulators between registers around it in the tile loop (a perf
 * profile showed the vmovdqa32 copies as the hottest instructions). */
static inline QACC qacc_dot(QACC acc, QA a, QB b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}
static inline QI qacc_sum(QACC a) { return a; }

/* Depthwise tap rows: each 128-bit lane of a broadcast holds all 16
 * channels; vpshufb moves lane L's channels 4L..4L+3 into byte k of their
 * groups (0x80 zeroes the rest) and one vpternlogd merges the three taps. */
typedef __m512i QT;
typedef struct {
    __m512i k[3];
} QTC;
static inline QTC qt_ctrl(void) {
    const __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    QTC c;
    for (int k = 0; k < 3; k++)
        c.k[k] = _mm512_or_si512(_mm512_set1_epi32((int)(0x80808080u & ~(0xFFu << (8 * k)))),
                                 _mm512_slli_epi32(i, 8 * k));
    return c;
}
static inline QT qt_taps3p(const QTC *c, const uint8_t *pa, const uint8_t *pb, const uint8_t *pe) {
    const __m512i a = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)pa));
    const __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)pb));
    const __m512i e = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)pe));
    return _mm512_ternarylogic_epi32(_mm512_shuffle_epi8(a, c->k[0]), _mm512_shuffle_epi8(b, c->k[1]),
                                     _mm512_shuffle_epi8(e, c->k[2]), 0xFE);
}
static inline QT qt_load(const uint8_t *p) { return _mm512_loadu_si512(p); }
static inline void qt_store(uint8_t *p, QT t) { _mm512_storeu_si512(p, t); }
static inline QACC qt_dot(QACC acc, QT a, QT w) { return qacc_dot(acc, a, w); }
#define QDW_TAPS3 1

/* Planar depthwise rows (QDW_PLANAR): 64 bytes = 4 pixels' 16 channels;
 * vpermd puts dword i of the 4 pixels in lane i, vpshufb transposes each
 * lane's 4x4 bytes, so group c holds channel c of the 4 pixels. */
typedef struct {
    __m512i perm, shuf;
} QTG;
static inline QTG qt_gctrl(void) {
    QTG g;
    g.perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    g.shuf = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    return g;
}
static inline QT qt_gather4(const QTG *g, const uint8_t *p) {
    return _mm512_shuffle_epi8(_mm512_permutexvar_epi32(g->perm, _mm512_loadu_si512(p)), g->shuf);
}
static inline QT qt_shift1(QT w) { return _mm512_slli_epi32(w, 8); }
#define QDW_PLANAR 1

#define QTILE_M 8
#define QTILE_P 2

#include "qu8_driver.h"

SSDF_DEFINE_KERNEL_TABLE(avx512vnni, SSDF_QU8_TABLE_FIELDS)

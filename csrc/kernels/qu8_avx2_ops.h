/* The 16-lane integer and float operations of the qu8 driver (qu8_driver.h)
 * on AVX2: two ymm registers per vector. Shared by avx2.c (whose GEMM
 * multiplies through vpmaddwd) and avxvnni.c (vpdpbusd). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    __m256i lo, hi;
} QI;
typedef struct {
    __m256 lo, hi;
} QF;

static inline __m256i q_tail_mask(int n) { /* lanes [0, n) of 8 set */
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

static inline QI qi_load(const int32_t *p) {
    return (QI){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 8))};
}
static inline QI qi_bcast(int x) {
    const __m256i v = _mm256_set1_epi32(x);
    return (QI){v, v};
}
static inline QI qi_add(QI a, QI b) {
    return (QI){_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)};
}
static inline QI qi_sub(QI a, QI b) {
    return (QI){_mm256_sub_epi32(a.lo, b.lo), _mm256_sub_epi32(a.hi, b.hi)};
}
static inline QI qi_mul(QI a, QI b) {
    return (QI){_mm256_mullo_epi32(a.lo, b.lo), _mm256_mullo_epi32(a.hi, b.hi)};
}
static inline QI qi_u8(const uint8_t *p, int n) {
    __m128i b;
    if (n >= 16) {
        b = _mm_loadu_si128((const __m128i *)p);
    } else {
        uint8_t t[16] = {0};
        memcpy(t, p, (size_t)n);
        b = _mm_loadu_si128((const __m128i *)t);
    }
    return (QI){_mm256_cvtepu8_epi32(b), _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))};
}
static inline QI qi_s8(const int8_t *p) {
    const __m128i b = _mm_loadu_si128((const __m128i *)p);
    return (QI){_mm256_cvtepi8_epi32(b), _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8))};
}
static inline void qi_store_u8(uint8_t *p, QI v, int n) {
    /* 16 int32 in 0..255 -> 16 bytes in order (packus works per 128-bit lane). */
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(v.lo, v.hi), 0xD8);
    const __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    if (n >= 16) {
        _mm_storeu_si128((__m128i *)p, b);
    } else {
        uint8_t t[16];
        _mm_storeu_si128((__m128i *)t, b);
        memcpy(p, t, (size_t)n);
    }
}
static inline QF qf_cvt(QI v) { return (QF){_mm256_cvtepi32_ps(v.lo), _mm256_cvtepi32_ps(v.hi)}; }
static inline QF qf_load(const float *p) { return (QF){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static inline QF qf_bcast(float x) {
    const __m256 v = _mm256_set1_ps(x);
    return (QF){v, v};
}
static inline QF qf_mul(QF a, QF b) { return (QF){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
static inline QF qf_add(QF a, QF b) { return (QF){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
static inline QF qf_max(QF a, QF b) { return (QF){_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
static inline QF qf_min(QF a, QF b) { return (QF){_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
static inline QI qf_round(QF v) { return (QI){_mm256_cvtps_epi32(v.lo), _mm256_cvtps_epi32(v.hi)}; }
static inline void qf_store(float *p, QF v, int n) {
    if (n >= 16) {
        _mm256_storeu_ps(p, v.lo);
        _mm256_storeu_ps(p + 8, v.hi);
    } else {
        _mm256_maskstore_ps(p, q_tail_mask(n), v.lo);
        _mm256_maskstore_ps(p + 8, q_tail_mask(n - 8), v.hi);
    }
}

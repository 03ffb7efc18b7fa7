/* AVX2 + FMA variant (compiled with -mavx2 -mfma; run only where dispatch.c
 * found both). A vector is two ymm registers; a 6x16 tile keeps 12
 * accumulators, two B vectors and a broadcast in the 16 ymm registers. */
#include <immintrin.h>

typedef struct {
    __m256 lo, hi;
} VEC;

static inline __m256i tail_mask(int n) { /* lanes [0, n) of 8 set */
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

static inline VEC vload(const float *p) { return (VEC){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static inline VEC vloadn(const float *p, int n) {
    return (VEC){_mm256_maskload_ps(p, tail_mask(n)), _mm256_maskload_ps(p + 8, tail_mask(n - 8))};
}
static inline VEC vload_u8(const unsigned char *p) {
    const __m128i b = _mm_loadu_si128((const __m128i *)p);
    return (VEC){_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)),
                 _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)))};
}
static inline VEC vbcast(float x) {
    const __m256 v = _mm256_set1_ps(x);
    return (VEC){v, v};
}
static inline VEC vfma(VEC a, VEC b, VEC c) {
    return (VEC){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline VEC vadd(VEC a, VEC b) {
    return (VEC){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
static inline VEC vrelu6(VEC a) {
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
    return (VEC){_mm256_min_ps(_mm256_max_ps(a.lo, zero), six),
                 _mm256_min_ps(_mm256_max_ps(a.hi, zero), six)};
}
static inline void vstore(float *p, VEC a) {
    _mm256_storeu_ps(p, a.lo);
    _mm256_storeu_ps(p + 8, a.hi);
}
static inline void vstoren(float *p, VEC a, int n) {
    _mm256_maskstore_ps(p, tail_mask(n), a.lo);
    _mm256_maskstore_ps(p + 8, tail_mask(n - 8), a.hi);
}

#define TILE_M 6
#define TILE_P 1

#include "conv_driver.h"

/* qu8: without VNNI, the int8 products go through vpmaddwd on bytes widened
 * to int16 (exact; vpmaddubsw would saturate). A 4-byte group of A is
 * widened once and multiplies 4 ymm of weights (4 channels x 4 bytes each),
 * whose int32 lanes hold half sums (bytes 0-1 and 2-3 of a channel); the
 * halves are added when the tile is stored. */
#include "qu8_avx2_ops.h"

typedef struct {
    __m256i s[4];
} QACC;
typedef __m256i QA;
typedef struct {
    __m256i w[4];
} QB;

static inline QACC qacc_init(const int32_t *bias) {
    QACC a; /* bias in the first half-sum lane of each channel, 0 in the second */
    for (int i = 0; i < 4; i++)
        a.s[i] = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(bias + 4 * i)));
    return a;
}
static inline QA qa_load(const uint8_t *p) {
    int32_t x;
    memcpy(&x, p, 4);
    return _mm256_cvtepu8_epi16(_mm_set1_epi32(x));
}
static inline QB qb_load(const uint8_t *p) {
    QB b;
    for (int i = 0; i < 4; i++) b.w[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16 * i)));
    return b;
}
static inline QACC qacc_dot(QACC acc, QA a, QB b) {
    for (int i = 0; i < 4; i++) acc.s[i] = _mm256_add_epi32(acc.s[i], _mm256_madd_epi16(b.w[i], a));
    return acc;
}
static inline QI qacc_sum(QACC a) {
    return (QI){_mm256_permute4x64_epi64(_mm256_hadd_epi32(a.s[0], a.s[1]), 0xD8),
                _mm256_permute4x64_epi64(_mm256_hadd_epi32(a.s[2], a.s[3]), 0xD8)};
}

#define QTILE_M 2
#define QTILE_P 1

#include "qu8_driver.h"

SSDF_DEFINE_KERNEL_TABLE(avx2, SSDF_F32_TABLE_FIELDS, SSDF_QU8_TABLE_FIELDS)

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

SSDF_DEFINE_KERNEL_TABLE(avx2)

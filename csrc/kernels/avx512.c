/* AVX-512F variant (compiled with -mavx512f; run only where dispatch.c found
 * it and the OS saves zmm state). A vector is one zmm; an 8x32 tile keeps 16
 * accumulators, enough independent FMAs to cover two FMA pipes of latency
 * 4, with room to spare in the 32 registers. */
#include <immintrin.h>

typedef __m512 VEC;

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); }

static inline VEC vload(const float *p) { return _mm512_loadu_ps(p); }
static inline VEC vloadn(const float *p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
static inline VEC vload_u8(const unsigned char *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)));
}
static inline VEC vbcast(float x) { return _mm512_set1_ps(x); }
static inline VEC vfma(VEC a, VEC b, VEC c) { return _mm512_fmadd_ps(a, b, c); }
static inline VEC vadd(VEC a, VEC b) { return _mm512_add_ps(a, b); }
static inline VEC vrelu6(VEC a) {
    return _mm512_min_ps(_mm512_max_ps(a, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
}
static inline void vstore(float *p, VEC a) { _mm512_storeu_ps(p, a); }
static inline void vstoren(float *p, VEC a, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), a); }

#define TILE_M 8
#define TILE_P 2

#include "conv_driver.h"

/* No qu8 kernels: a CPU with AVX-512 but without VNNI runs them with avx2's
 * (avx512vnni.c has the AVX-512 ones). */
SSDF_DEFINE_KERNEL_TABLE(avx512, SSDF_F32_TABLE_FIELDS)

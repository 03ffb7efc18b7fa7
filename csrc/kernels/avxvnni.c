/* AVX-VNNI variant (compiled with -mavxvnni -mavx2 -mfma; Alder Lake and
 * later, Sapphire Rapids, Zen 5): the qu8 kernels only, whose GEMM
 * multiplies 4 bytes of A by 4 weights per int32 lane in one vpdpbusd
 * (VEX-encoded, 256 bits). The f32 kernels are avx2's. A 6x16 tile keeps 12
 * accumulators, two weight vectors and a broadcast in the 16 ymm. */
#include "qu8_avx2_ops.h"

typedef struct {
    __m256i lo, hi;
} QACC;
typedef __m256i QA;
typedef QACC QB;

static inline QACC qacc_init(const int32_t *bias) {
    const QI b = qi_load(bias);
    return (QACC){b.lo, b.hi};
}
static inline QA qa_load(const uint8_t *p) {
    int32_t x;
    memcpy(&x, p, 4);
    return _mm256_set1_epi32(x);
}
static inline QB qb_load(const uint8_t *p) {
    return (QB){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 32))};
}
static inline QACC qacc_dot(QACC acc, QA a, QB b) {
    return (QACC){_mm256_dpbusd_avx_epi32(acc.lo, a, b.lo), _mm256_dpbusd_avx_epi32(acc.hi, a, b.hi)};
}
static inline QI qacc_sum(QACC a) { return (QI){a.lo, a.hi}; }

#define QTILE_M 6
#define QTILE_P 1

#include "kernels.h"
#include "qu8_driver.h"

SSDF_DEFINE_KERNEL_TABLE(avxvnni, SSDF_QU8_TABLE_FIELDS)

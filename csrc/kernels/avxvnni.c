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
/* In-place vpdpbusd (see avx512vnni.c: the intrinsic makes GCC 12 copy
 * accumulators around it). */
static inline __m256i q_dpbusd(__m256i acc, __m256i a, __m256i b) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
}
static inline QACC qacc_dot(QACC acc, QA a, QB b) {
    return (QACC){q_dpbusd(acc.lo, a, b.lo), q_dpbusd(acc.hi, a, b.hi)};
}
static inline QI qacc_sum(QACC a) { return (QI){a.lo, a.hi}; }

/* Depthwise tap rows (qu8_driver.h, QDW_TAPS3): vbroadcasti128 puts the
 * 16 channels in both lanes; vpshufb moves 4 channels per lane into byte k
 * of their groups, two ORs merge the three taps. */
typedef QACC QT;
typedef struct {
    __m256i lo[3], hi[3];
} QTC;
static inline QTC qt_ctrl(void) {
    const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i eight = _mm256_set1_epi32(8);
    QTC c;
    for (int k = 0; k < 3; k++) {
        const __m256i z = _mm256_set1_epi32((int)(0x80808080u & ~(0xFFu << (8 * k))));
        c.lo[k] = _mm256_or_si256(z, _mm256_slli_epi32(i, 8 * k));
        c.hi[k] = _mm256_or_si256(z, _mm256_slli_epi32(_mm256_add_epi32(i, eight), 8 * k));
    }
    return c;
}
static inline QT qt_taps3p(const QTC *c, const uint8_t *pa, const uint8_t *pb, const uint8_t *pe) {
    const uint8_t *src[3] = {pa, pb, pe};
    QT t = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int k = 0; k < 3; k++) {
        const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)src[k]));
        t.lo = _mm256_or_si256(t.lo, _mm256_shuffle_epi8(v, c->lo[k]));
        t.hi = _mm256_or_si256(t.hi, _mm256_shuffle_epi8(v, c->hi[k]));
    }
    return t;
}
static inline QT qt_load(const uint8_t *p) {
    return (QT){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 32))};
}
static inline void qt_store(uint8_t *p, QT t) {
    _mm256_storeu_si256((__m256i *)p, t.lo);
    _mm256_storeu_si256((__m256i *)(p + 32), t.hi);
}
static inline QACC qt_dot(QACC acc, QT a, QT w) {
    return (QACC){q_dpbusd(acc.lo, a.lo, w.lo), q_dpbusd(acc.hi, a.hi, w.hi)};
}
#define QDW_TAPS3 1

#define QTILE_M 6
#define QTILE_P 1

#include "kernels.h"
#include "qu8_driver.h"

SSDF_DEFINE_KERNEL_TABLE(avxvnni, SSDF_QU8_TABLE_FIELDS)

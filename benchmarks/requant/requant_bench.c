/* The int8 output stage two ways, timed on AVX-512: the float32 one
 * ssdface's qu8 kernels use (kernels_qu8.h: f32(acc) * m[c], clamp, round
 * half to even, + zero point) against TFLite/gemmlowp's fixed-point one
 * (SaturatingRoundingDoublingHighMul by a Q31 multiplier, rounding right
 * shift, + zero point, clamp), both 16 channels per vector, per-channel
 * parameters, the same accumulators, stored as uint8.
 *
 *   gcc -O2 -mavx512f -mavx512bw -mavx512vl -ffp-contract=off \
 *       benchmarks/requant/requant_bench.c -o /tmp/requant_bench && /tmp/requant_bench
 *
 * Prints ns per 16 outputs for each, best of 15 runs over 4 M accumulators
 * (L2-resident chunks, as a GEMM tile's output stage sees them), and how
 * many outputs the two disagree on (they round differently: at most 1). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHUNK 4096 /* accumulators per pass (16 KiB: L1) */
#define PASSES 1024

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void out_float(const int32_t *acc, const float *scale, int zero, uint8_t *out, int n) {
    const __m512 lo = _mm512_set1_ps((float)-zero), hi = _mm512_set1_ps((float)(255 - zero));
    const __m512i z = _mm512_set1_epi32(zero);
    const __m512 s = _mm512_loadu_ps(scale);
    for (int i = 0; i < n; i += 16) {
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(acc + i)), s);
        f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), z)));
    }
}

/* gemmlowp: x * 2^-shift * M / 2^31 with M in [2^30, 2^31), shift >= 0 (the
 * network's multipliers are all below 1). */
static void out_fixed(const int32_t *acc, const int32_t *mult, const int32_t *shift, int zero,
                      uint8_t *out, int n) {
    const __m512i m = _mm512_loadu_si512(mult), sh = _mm512_loadu_si512(shift);
    const __m512i m_odd = _mm512_srli_epi64(m, 32);
    const __m512i round31 = _mm512_set1_epi64(1ll << 30);
    const __m512i one = _mm512_set1_epi32(1), z = _mm512_set1_epi32(zero);
    const __m512i rmask = _mm512_sub_epi32(_mm512_sllv_epi32(one, sh), one);
    const __m512i rthresh = _mm512_srai_epi32(rmask, 1);
    const __m512i lo = _mm512_set1_epi32(0), hi = _mm512_set1_epi32(255);
    for (int i = 0; i < n; i += 16) {
        const __m512i x = _mm512_loadu_si512(acc + i);
        /* doubling high mul, rounded: (x * M + 2^30) >> 31, even and odd lanes */
        const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), round31);
        const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m_odd),
                                            round31);
        const __m512i he = _mm512_srli_epi64(pe, 31);
        const __m512i ho = _mm512_slli_epi64(_mm512_srai_epi64(po, 31), 32);
        __m512i y = _mm512_mask_blend_epi32(0xAAAA, he, ho);
        /* rounding divide by 2^shift, ties away from zero (gemmlowp) */
        const __m512i rem = _mm512_and_si512(y, rmask);
        const __m512i th = _mm512_sub_epi32(rthresh, _mm512_srli_epi32(y, 31));
        y = _mm512_srav_epi32(y, sh);
        y = _mm512_mask_add_epi32(y, _mm512_cmpgt_epi32_mask(rem, th), y, one);
        y = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(y, z), lo), hi);
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(y));
    }
}

int main(void) {
    static int32_t acc[CHUNK];
    static uint8_t a[CHUNK], b[CHUNK];
    float scale[16];
    int32_t mult[16], shift[16];
    srand(1);
    for (int c = 0; c < 16; c++) {
        const double s = (0.5 + rand() / (double)RAND_MAX) * 1e-3; /* like the network's */
        scale[c] = (float)s;
        int e;
        const double fr = frexp(s, &e); /* s = fr * 2^e, fr in [0.5, 1) */
        mult[c] = (int32_t)lround(fr * 2147483648.0);
        shift[c] = -e;
        if (mult[c] == (1ll << 31)) mult[c] /= 2, shift[c]--;
    }
    for (int i = 0; i < CHUNK; i++) acc[i] = (rand() % 400001) - 200000;
    double best_f = 1e9, best_x = 1e9;
    for (int r = 0; r < 15; r++) {
        double t = now();
        for (int p = 0; p < PASSES; p++) out_float(acc, scale, 3, a, CHUNK);
        const double tf = now() - t;
        t = now();
        for (int p = 0; p < PASSES; p++) out_fixed(acc, mult, shift, 3, b, CHUNK);
        const double tx = now() - t;
        if (tf < best_f) best_f = tf;
        if (tx < best_x) best_x = tx;
    }
    int differ = 0, worst = 0;
    for (int i = 0; i < CHUNK; i++) {
        const int d = abs((int)a[i] - (int)b[i]);
        differ += d != 0;
        worst = d > worst ? d : worst;
    }
    const double vec = (double)CHUNK / 16 * PASSES;
    printf("float32 output stage:     %.3f ns per 16 outputs\n", best_f / vec * 1e9);
    printf("fixed-point (gemmlowp):   %.3f ns per 16 outputs (%.2fx)\n", best_x / vec * 1e9,
           best_x / best_f);
    printf("outputs that differ: %d of %d (largest difference %d)\n", differ, CHUNK, worst);
    return 0;
}

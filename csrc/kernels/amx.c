/* AMX variant (compiled with -mamx-tile -mamx-int8 and avx512vnni's flags;
 * Sapphire Rapids and later, on Linux once the process holds the tile-data
 * permission, see dispatch.c): the qu8 kernels of avx512vnni.c, whose code
 * is compiled again here (included), with the GEMM of the 1x1 convs, of the
 * 3x3 convs (after im2col) and of the fused blocks' producers and projects
 * routed through AMX tiles where they win (amx_qgemm; the driver's GEMM
 * hook, qu8_driver.h). The int32 sums are exact either way and the output
 * stage is the driver's q_out: the bytes are every other variant's.
 *
 * Tile scheme. The packed qu8 panel (layout.h) stores 4 reduction rows of
 * 16 channels in 64 bytes: KB/4 consecutive groups of a panel are exactly an
 * AMX B tile (KB/4 rows of 64 bytes, stride 64), read in place. A tile is
 * 16 pixels x KB bytes of A (stride lda), C 16 pixels x 16 int32. Eight
 * tiles: C0..C3 (tmm0-3), A0, A1 (tmm4-5: 32 pixels), B0, B1 (tmm6-7: 32
 * channels), so one step is 32 pixels x 32 channels, 4 tdpbusd per K chunk.
 * K (k4 bytes = k4/4 groups) is cut into equal chunks of the largest group
 * count <= 16 dividing k4/4 (so no tail: 96 = 2 x 48, 144 = 3 x 48, 160 =
 * 4 x 40, 28 = 1 x 28), one tile configuration per call. Pixel tails: the
 * last step's tiles end at pixel M (they may start on pixels already done,
 * whose sums are recomputed, not written again), so every tile is whole
 * and every read is inside A; a call of fewer than 16 pixels configures
 * tiles of that many rows. C goes to a 4 KiB buffer on the stack, then
 * bias + the output stage (the bias is added there: int32, exact), panel
 * by panel for uint8 out without a residual (amx_out_step). The
 * configuration is loaded per call (it is per thread, and calls run on the
 * engine's pool) and released at the end of it. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

static void amx_qgemm(size_t M, size_t k4, const uint8_t *a, size_t lda, const uint8_t *w,
                      uint8_t *c, size_t ldc, size_t esize, size_t cps, const uint8_t *res,
                      const ssdf_qu8_output *q, int n0, int n1);

/* avx512vnni.c's operations and kernels, its table left out. */
#define QU8_GEMM amx_qgemm
#pragma push_macro("SSDF_DEFINE_KERNEL_TABLE")
#undef SSDF_DEFINE_KERNEL_TABLE
#define SSDF_DEFINE_KERNEL_TABLE(...)
#include "avx512vnni.c"
#pragma pop_macro("SSDF_DEFINE_KERNEL_TABLE")
#undef qgemm /* the driver's (VNNI) GEMM again: amx_qgemm's fallback */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* ldtilecfg with the whole 64-byte configuration as its memory operand.
 * GCC 12's _tile_loadconfig names only its first 8 bytes, so the rows and
 * column widths stored before it are dead stores to the optimiser: moving
 * the call behind a branch (an experiment) had them dropped, and the first
 * tile instruction raised SIGILL. */
static inline void amx_loadconfig(const amx_config *cfg) {
    __asm__ volatile("ldtilecfg %0" ::"m"(*cfg));
}

/* C0..C3: rows x 16 int32; A0, A1: rows pixels x kbytes; B0, B1: kbytes / 4
 * groups x 64 bytes. rows is 16 but for a GEMM of fewer pixels. */
static void amx_configure(int kbytes, int rows) {
    amx_config cfg __attribute__((aligned(64)));
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 4; t++) cfg.rows[t] = (uint8_t)rows, cfg.colsb[t] = 64;
    for (int t = 4; t < 6; t++) cfg.rows[t] = (uint8_t)rows, cfg.colsb[t] = (uint16_t)kbytes;
    for (int t = 6; t < 8; t++) cfg.rows[t] = (uint8_t)(kbytes / 4), cfg.colsb[t] = 64;
    amx_loadconfig(&cfg);
}

/* The sums of A0 (and A1: pixels a1) against panel b (and the next), K in
 * `chunks` chunks of kbytes, into cbuf (32 x 32 int32: C0 C1 / C2 C3). b is
 * the panel's first weight group. */
FORCE_INLINE void amx_step(const int two_a, const int two_b, const uint8_t *a0,
                           const uint8_t *a1, size_t lda, const uint8_t *b, size_t pstride,
                           size_t chunks, size_t kbytes, int32_t *cbuf) {
    /* GCC 12's tileloadd asm names no memory it reads: a compiler barrier,
     * so every store to A and B before this step is made before the loads */
    __asm__ volatile("" ::: "memory");
    _tile_zero(0);
    if (two_b) _tile_zero(1);
    if (two_a) _tile_zero(2);
    if (two_a && two_b) _tile_zero(3);
    for (size_t i = 0; i < chunks; i++) {
        const uint8_t *bk = b + i * kbytes * SSDF_PANEL;
        _tile_loadd(4, a0 + i * kbytes, lda);
        _tile_loadd(6, bk, 64);
        _tile_dpbusd(0, 4, 6);
        if (two_b) {
            _tile_loadd(7, bk + pstride, 64);
            _tile_dpbusd(1, 4, 7);
        }
        if (two_a) {
            _tile_loadd(5, a1 + i * kbytes, lda);
            _tile_dpbusd(2, 5, 6);
            if (two_b) _tile_dpbusd(3, 5, 7);
        }
    }
    _tile_stored(0, cbuf, 128);
    if (two_b) _tile_stored(1, cbuf + 16, 128);
    if (two_a) _tile_stored(2, cbuf + 16 * 32, 128);
    if (two_a && two_b) _tile_stored(3, cbuf + 16 * 32 + 16, 128);
}

/* The uint8 output stage, no residual, of `rows` consecutive pixels of one
 * panel: sums at c (32 int32 a pixel: cbuf's rows), bytes at dst, ldc a
 * pixel; the panel's bias and scales in registers for the whole run. */
FORCE_INLINE void amx_out_rows(const int32_t *c, size_t rows, uint8_t *dst, size_t ldc, QI bias,
                               QF scale, const QOUT *k, int len) {
    for (size_t r = 0; r < rows; r++)
        q_store_u8(qf_mul(qf_cvt(qi_add(qi_load(c + r * 32), bias)), scale), k, dst + r * ldc,
                   len);
}

/* amx_out_rows for pixels [m, end) of a step, panel by panel (pixel after
 * pixel, with the panel's constants reloaded each time, was measured 3%
 * slower on the whole forward): pixels [m, t0 + 16) are C rows o - t0, the
 * rest (two A tiles) rows 16 + o - t1. */
FORCE_INLINE void amx_out_step(const int32_t *cbuf, size_t m, size_t end, size_t t0, size_t t1,
                               int np, int cols, const uint8_t *pw, size_t pstride, uint8_t *c,
                               size_t ldc, size_t cps, const QOUT *k) {
    const size_t e0 = end < t0 + 16 ? end : t0 + 16;
    for (int j = 0; j < np; j++) {
        const int left = cols - SSDF_PANEL * j;
        const int len = left < SSDF_PANEL ? left : SSDF_PANEL;
        const uint8_t *panel = pw + j * pstride;
        const QI bias = qi_load((const int32_t *)panel);
        const QF scale = q_scale(panel);
        uint8_t *cj = c + (size_t)j * cps;
        amx_out_rows(cbuf + (m - t0) * 32 + SSDF_PANEL * j, e0 - m, cj + m * ldc, ldc, bias,
                     scale, k, len);
        if (end > e0)
            amx_out_rows(cbuf + (16 + e0 - t1) * 32 + SSDF_PANEL * j, end - e0, cj + e0 * ldc,
                         ldc, bias, scale, k, len);
    }
}

/* Whether the tiles beat the VNNI GEMM on this call: at least 64K
 * multiply-adds (pixels x channels x k4) and k4 >= 24. A call costs the
 * tiles about 0.2-0.3 us of fixed work (ldtilecfg, tilerelease, the C
 * round trip through memory) and VNNI's time grows with the sums, so small
 * calls and short reductions stay on VNNI. Measured (conv1x1 of M pixels,
 * K inputs, N outputs, thread CPU time, best of 3 x 7 runs, the two
 * variants side by side in one process; ratio = VNNI time / AMX time):
 *
 *   K \ M,N     16,16  38,16  150,16  16,96  38,96  16,384  150,384
 *   16          0.40   0.42    0.92   0.51   0.81    0.82     1.01
 *   32          0.51   0.73    0.83   1.00   1.15    1.13     1.42
 *   64          0.73   1.19    1.79   1.09   1.74    1.34     1.24
 *   96          0.66   1.25    1.78   1.37   1.18    1.68     2.16
 *   160         0.83   1.21    1.70   1.79   1.21    1.83     2.38
 *   960         3.32   4.17    4.59   2.84   2.45    3.38     5.35
 *
 * Over the whole grid (M 1..150, K 4..960, N 16..384: 528 shapes) this rule
 * is within 2% of the best choice per shape on average (always VNNI: 43%
 * over, always AMX: 72% over); the thresholds on K and M barely matter,
 * the one on the work does. */
static int amx_wins(size_t M, size_t k4, int n0, int n1) {
    return k4 >= 24 && M * k4 * (size_t)(n1 - n0) >= 65536;
}

static void amx_qgemm(size_t M, size_t k4, const uint8_t *a, size_t lda, const uint8_t *w,
                      uint8_t *c, size_t ldc, size_t esize, size_t cps, const uint8_t *res,
                      const ssdf_qu8_output *q, int n0, int n1) {
    const size_t groups = k4 / SSDF_QU8_KGROUP;
    size_t cg = 16;
    while (groups % cg) cg--;
    if (!amx_wins(M, k4, n0, n1)) {
        qgemm(M, k4, a, lda, w, c, ldc, esize, cps, res, q, n0, n1);
        return;
    }
    const size_t kbytes = cg * SSDF_QU8_KGROUP, chunks = groups / cg;
    const size_t pstride = q_gemm_panel(k4);
    const int step = 2 * SSDF_PANEL;
    int block = (int)((256 * 1024) / pstride) / 2 * step;
    if (block < step) block = step;
    int32_t cbuf[32 * 32] __attribute__((aligned(64)));
    const int plain = !q->f32_out && !res; /* uint8 out, no residual */
    const QOUT k = q_out_consts(q);
    amx_configure((int)kbytes, M < 16 ? (int)M : 16);
    for (int nb = n0; nb < n1; nb += block) {
        const int nb1 = n1 - nb < block ? n1 : nb + block;
        for (size_t m = 0; m < M; m += 32) {
            const size_t end = M - m < 32 ? M : m + 32;
            /* Two A tiles: pixels m.. and t1.. (t1 <= m + 16, ending at M at
             * the latest); one: 16 pixels ending at M at the latest. */
            const int two_a = end - m > 16;
            const size_t t0 = two_a || M - m >= 16 || M < 16 ? m : M - 16;
            const size_t t1 = two_a ? (m + 16 < M - 16 ? m + 16 : M - 16) : t0;
            for (int n = nb; n < nb1; n += step) {
                const int cols = nb1 - n < step ? nb1 - n : step;
                const int np = cols > SSDF_PANEL ? 2 : 1;
                const uint8_t *pw = w + (size_t)(n / SSDF_PANEL) * pstride;
                const uint8_t *b = pw + SSDF_QU8_HEADER_BYTES;
                const uint8_t *a0 = a + t0 * lda, *a1 = a + t1 * lda;
                if (two_a && np == 2)
                    amx_step(1, 1, a0, a1, lda, b, pstride, chunks, kbytes, cbuf);
                else if (two_a)
                    amx_step(1, 0, a0, a1, lda, b, pstride, chunks, kbytes, cbuf);
                else if (np == 2)
                    amx_step(0, 1, a0, a1, lda, b, pstride, chunks, kbytes, cbuf);
                else
                    amx_step(0, 0, a0, a1, lda, b, pstride, chunks, kbytes, cbuf);
                if (plain) {
                    amx_out_step(cbuf, m, end, t0, t1, np, cols, pw, pstride,
                                 c + (size_t)(n / SSDF_PANEL) * cps, ldc, cps, &k);
                    continue;
                }
                /* a residual, or float out (panel by panel measured no faster) */
                for (size_t o = m; o < end; o++) {
                    const int32_t *crow = o < t0 + 16 ? cbuf + (o - t0) * 32
                                                      : cbuf + (16 + o - t1) * 32;
                    const size_t at = o * ldc + (size_t)n;
                    uint8_t *co = c + o * ldc * esize + (size_t)(n / SSDF_PANEL) * cps;
                    for (int j = 0; j < np; j++) {
                        const int left = cols - SSDF_PANEL * j;
                        const uint8_t *panel = pw + j * pstride;
                        const QI acc = qi_add(qi_load(crow + SSDF_PANEL * j),
                                              qi_load((const int32_t *)panel));
                        const int len = left < SSDF_PANEL ? left : SSDF_PANEL;
                        q_out_k(acc, panel, q, &k, res ? res + at + SSDF_PANEL * j : NULL,
                                co + j * cps, len);
                    }
                }
            }
        }
    }
    _tile_release();
}

SSDF_DEFINE_KERNEL_TABLE(amx, SSDF_QU8_TABLE_FIELDS)

/* Runtime choice of kernels by CPU feature, in the spirit of NumPy's and
 * XNNPACK's dispatch: the extension contains every variant, each compiled
 * with its own flags, and runs only those the CPU and OS support. */
#include <string.h>

#include "kernels.h"

#if defined(SSDF_X86_KERNELS)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* XCR0: which register states the OS saves on context switches. */
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* Linux hands out the AMX tile data state (8 KiB per thread) on request
 * only: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). The permission
 * is the process's (its threads share it, a forked child inherits it, exec
 * drops it) and asking again is harmless. Elsewhere: no AMX variant. */
static int amx_permitted(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                   18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return 0;
#endif
}

static int detect_features(void) {
    unsigned int a, b, c, d;
    int f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return 0;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (((b >> 5) & 1) && fma) f |= SSDF_CPU_AVX2_FMA;
    /* AVX-512F plus opmask, ZMM_Hi256 and Hi16_ZMM state */
    if (((b >> 16) & 1) && (xcr0 & 0xE0) == 0xE0 && (f & SSDF_CPU_AVX2_FMA)) f |= SSDF_CPU_AVX512F;
    /* AVX512BW (EBX 30), AVX512VL (EBX 31), AVX512_VNNI (ECX 11) */
    if ((f & SSDF_CPU_AVX512F) && ((b >> 30) & 1) && ((b >> 31) & 1) && ((c >> 11) & 1))
        f |= SSDF_CPU_AVX512VNNI;
    /* AMX-TILE (EDX 24), AMX-INT8 (EDX 25), XTILECFG and XTILEDATA state
     * (XCR0 bits 17 and 18) and the permission: tested last */
    if ((f & SSDF_CPU_AVX512VNNI) && ((d >> 24) & 1) && ((d >> 25) & 1) &&
        (xcr0 & 0x60000) == 0x60000 && amx_permitted())
        f |= SSDF_CPU_AMXINT8;
    /* AVX-VNNI: CPUID.(7,1):EAX bit 4 */
    if ((f & SSDF_CPU_AVX2_FMA) && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1))
        f |= SSDF_CPU_AVXVNNI;
    return f;
}

/* Detected once per process (threads racing here both find the same). */
static int cpu_features(void) {
    static int cached = -1;
    int f = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (f < 0) {
        f = detect_features();
        __atomic_store_n(&cached, f, __ATOMIC_RELEASE);
    }
    return f;
}
#else
static int cpu_features(void) { return 0; }
#endif

int ssdf_kernel_choices(ssdf_kernel_choice *out, int max) {
    const int f = cpu_features();
    int n = 0;
#define ADD(NAME, FEATURES, FLAGS)                                                          \
    if (n < max)                                                                            \
        out[n] = (ssdf_kernel_choice){.name = #NAME,                                        \
                                      .table = &ssdf_kernels_##NAME,                         \
                                      .supported = ((FEATURES) & f) == (FEATURES)};          \
    n++;
    SSDF_ISA_LIST(ADD)
#undef ADD
    return n;
}

int ssdf_kernels_have(const ssdf_kernel_table *t, ssdf_dtype dtype) {
    return dtype == SSDF_DTYPE_QU8 ? t->qu8_conv1x1 != NULL : t->f32_conv1x1 != NULL;
}

const ssdf_kernel_table *ssdf_kernels_best_for(ssdf_dtype dtype) {
    ssdf_kernel_choice c[SSDF_MAX_KERNEL_SETS];
    const ssdf_kernel_table *best = &ssdf_kernels_scalar;
    int n = ssdf_kernel_choices(c, SSDF_MAX_KERNEL_SETS);
    for (int i = 1; i < n && i < SSDF_MAX_KERNEL_SETS; i++)
        if (c[i].supported && ssdf_kernels_have(c[i].table, dtype)) best = c[i].table;
    return best;
}

const ssdf_kernel_table *ssdf_kernels_best(void) { return ssdf_kernels_best_for(SSDF_DTYPE_F32); }

const ssdf_kernel_table *ssdf_kernels_by_name(const char *name) {
    ssdf_kernel_choice c[SSDF_MAX_KERNEL_SETS];
    int n = ssdf_kernel_choices(c, SSDF_MAX_KERNEL_SETS);
    for (int i = 0; i < n && i < SSDF_MAX_KERNEL_SETS; i++)
        if (strcmp(c[i].name, name) == 0) return c[i].supported ? c[i].table : NULL;
    return NULL;
}

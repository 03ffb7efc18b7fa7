/* Every kernel variant, once: X(name, cpu features, compiler flags), slowest
 * first. A variant provides the f32 kernels, the qu8 ones or both (its
 * table's fields; NULL where it has none): each data type runs the best
 * variant that has it. From this list come the kernel table declarations (kernels.h), the
 * run-time dispatch (dispatch.c), the Python-visible list
 * (ssdface.available_isas, through _core.kernel_sets) and so the per-variant
 * tests, and the per-file compiler flags (setup.py reads the flags string of
 * each entry; the variant's source is csrc/kernels/<name>.c, which ends with
 * SSDF_DEFINE_KERNEL_TABLE(<name>, <field lists>)). Adding a variant: one line here and its
 * source file. */
#ifndef SSDF_ISA_LIST_H
#define SSDF_ISA_LIST_H

/* CPU features a variant needs (dispatch.c finds which this CPU has). */
#define SSDF_CPU_AVX2_FMA 1
#define SSDF_CPU_AVX512F 2
#define SSDF_CPU_AVXVNNI 4    /* AVX-VNNI (VEX vpdpbusd) */
#define SSDF_CPU_AVX512VNNI 8 /* AVX-512 F, BW, VL and VNNI (with AVX2 and FMA) */
#define SSDF_CPU_AMXINT8 16   /* AMX-TILE and AMX-INT8, their state enabled and, on
                                 Linux, permitted (arch_prctl); absent elsewhere */

#define SSDF_ISA_LIST_PORTABLE(X) \
    X(reference, 0, "")           \
    X(scalar, 0, "")

#if defined(SSDF_X86_KERNELS)
#define SSDF_ISA_LIST_X86(X)                                      \
    X(avx2, SSDF_CPU_AVX2_FMA, "-mavx2 -mfma")                    \
    X(avx512, SSDF_CPU_AVX2_FMA | SSDF_CPU_AVX512F, "-mavx512f -mavx2 -mfma")                 \
    X(avxvnni, SSDF_CPU_AVX2_FMA | SSDF_CPU_AVXVNNI, "-mavxvnni -mavx2 -mfma")                 \
    X(avx512vnni, SSDF_CPU_AVX512VNNI, "-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma") \
    X(amx, SSDF_CPU_AVX512VNNI | SSDF_CPU_AMXINT8, "-mamx-tile -mamx-int8 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma")
#else
#define SSDF_ISA_LIST_X86(X)
#endif

#define SSDF_ISA_LIST(X) SSDF_ISA_LIST_PORTABLE(X) SSDF_ISA_LIST_X86(X)

#endif

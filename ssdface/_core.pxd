# What ssdface._core offers other extension modules at C level: today the
# test hooks of ssdface._testing (kernels, fusion, checksum). Cython exports
# the cdef functions declared here through _core's capsule table
# (__pyx_capi__); a module that cimports them imports _core when it is
# imported and calls into it through those pointers.
#
# Why wrappers and not the C functions themselves: the C engine (csrc/) is
# compiled into _core only. Python loads extension modules with RTLD_LOCAL,
# so another module cannot link to _core's C symbols, and compiling the C
# sources into it as well would double the build (the per-ISA kernel files
# included) and give it a second copy of the model and of the kernel tables.
# Through these few one-line wrappers, _testing runs the very code the engine
# runs. Functions defined ``static inline`` in the headers (kernels.h's
# scratch sizes) need no wrapper: _testing uses them from _cdefs.pxd.

from libc.stdint cimport int8_t, int32_t, uint8_t, uint64_t

from ssdface._cdefs cimport (ssdf_f32_block, ssdf_kernel_table, ssdf_model, ssdf_plan,
                             ssdf_tensor_spec)

# The model this build runs (csrc/models/).
cdef const ssdf_model *model() noexcept nogil
# A kernel table by name; ValueError if unknown or if this CPU cannot run it.
cdef const ssdf_kernel_table *kernel_table(str name, str dtype=*) except NULL

# csrc/model.h: TF SAME padding.
cdef int same_out(int inp, int stride) noexcept nogil
cdef int same_pad_before(int inp, int out, int k, int stride) noexcept nogil
# csrc/pack.h: the kernels' weight layout.
cdef size_t packed_floats(const ssdf_tensor_spec *t) noexcept nogil
cdef void pack_tensor(const ssdf_tensor_spec *t, const float *src, const float *bias,
                      float *dst) noexcept nogil
cdef size_t qu8_gemm_bytes(size_t n, size_t k) noexcept nogil
cdef size_t qu8_dw_bytes(size_t n) noexcept nogil
cdef void pack_qu8_gemm(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                        size_t k, uint8_t *dst) noexcept nogil
cdef void pack_qu8_dw(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                      uint8_t *dst) noexcept nogil
# csrc/fuse.h: the engine's plan and the shapes of a fused block.
cdef int plan_build(const ssdf_model *m, int fuse, ssdf_plan *p) noexcept nogil
cdef ssdf_f32_block block_shape(const ssdf_model *m, int first) noexcept nogil
# csrc/checksum.h: the blob checksum.
cdef uint64_t xxh64(const void *data, size_t n, uint64_t seed) noexcept nogil

# Declarations of the C core's headers (csrc/), for Cython: cimporting them
# adds no run-time dependency. The C functions they name are compiled into
# ssdface._core alone, so ssdface._testing may call only the ``static
# inline`` ones (defined in the headers) directly; it reaches the others
# through ssdface/_core.pxd (see there).

from libc.stdint cimport int8_t, int32_t, uint8_t, uint64_t

cdef extern from "common.h":
    ctypedef struct ssdf_error:
        char msg[256]
    int SSDF_OK, SSDF_ERR_FORMAT, SSDF_ERR_VALUE, SSDF_ERR_NOMEM, SSDF_ERR_THREADS

cdef extern from "checksum.h":
    uint64_t ssdf_xxh64(const void *data, size_t len, uint64_t seed) nogil

cdef extern from "model.h" nogil:
    enum:
        SSDF_MAX_TENSORS
    ctypedef struct ssdf_tensor_spec:
        char name[88]
        int kind
        int ndim
        int shape[4]
    ctypedef struct ssdf_layer:
        int op, stride, relu6, in_h, in_w, in_c, out_h, out_w, out_c
        int pad_top, pad_left, src, res, output
        size_t output_offset
        int weight, bias
        char scope[64]
    ctypedef struct ssdf_model:
        char name[33]
        int input_h, input_w, input_c
        int num_anchors, box_size, num_classes, score_class
        ssdf_tensor_spec tensors[160]
        int n_tensors
        ssdf_layer layers[80]
        int n_layers
    const ssdf_model *ssdf_model_builtin()
    int ssdf_same_out(int inp, int stride)
    int ssdf_same_pad_before(int inp, int out, int k, int stride)

cdef extern from "pack.h" nogil:
    size_t ssdf_source_floats(const ssdf_tensor_spec *t)
    size_t ssdf_packed_floats(const ssdf_tensor_spec *t)
    void ssdf_pack_tensor(const ssdf_tensor_spec *t, const float *src, const float *bias,
                          float *dst)
    void ssdf_unpack_tensor(const ssdf_tensor_spec *t, const float *packed, float *src)
    size_t ssdf_qu8_gemm_bytes(size_t n, size_t k)
    size_t ssdf_qu8_dw_bytes(size_t n)
    void ssdf_pack_qu8_gemm(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                            size_t k, uint8_t *dst)
    void ssdf_pack_qu8_dw(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                          uint8_t *dst)

cdef extern from "kernels/kernels.h":  # (kernels_qu8.h, which it includes)
    ctypedef struct ssdf_qu8_output:
        int in_zero, out_zero
        float out_lo, out_hi
        const uint8_t *res
        int res_zero
        float res_scale
        int f32_out
    size_t ssdf_qu8_conv_scratch_bytes(int in_c)

cdef extern from "qu8_model.h":
    ctypedef struct ssdf_qu8_source:
        float input_inv_scale
        int input_zero
        const int8_t *weights[80]
        const int32_t *bias[80]
        const float *scale[80]
        ssdf_qu8_output out[80]

cdef extern from "blob.h":
    ctypedef struct ssdf_blob_info:
        unsigned int version
        unsigned int tensor_count
        uint64_t payload_size
        uint64_t file_size
        uint64_t checksum
        char model_name[33]
        int has_qu8
    int SSDF_BLOB_VERSION
    int SSDF_BLOB_HEADER_SIZE
    int ssdf_blob_check_header(const uint8_t *data, size_t avail, uint64_t file_size,
                               const ssdf_model *g, ssdf_error *err)
    size_t ssdf_blob_size(const ssdf_model *g, int with_qu8)
    void ssdf_blob_write(const ssdf_model *g, const float *const *sources,
                         const ssdf_qu8_source *qu8, uint8_t *out) nogil

cdef extern from "kernels/kernels.h":
    ctypedef struct ssdf_conv_params:
        int in_h, in_w, in_c, out_h, out_w, out_c, stride, pad_top, pad_left, relu6
    ctypedef void (*ssdf_f32_conv_fn)(const ssdf_conv_params *p, const float *inp, const float *w,
                                  const float *res, float *out, size_t m0, size_t m1, int n0,
                                  int n1, float *scratch) noexcept nogil
    ctypedef struct ssdf_f32_block:
        int producer_k
        ssdf_conv_params producer, dw, project
        const float *in_ "in"
        const float *w_producer
        const float *w_dw
        const float *w_project
        const float *res
        float *out
    ctypedef void (*ssdf_f32_block_fn)(const ssdf_f32_block *b, int y0, int y1,
                                   float *scratch) noexcept nogil
    size_t ssdf_f32_block_scratch_floats(const ssdf_f32_block *b)
    ctypedef void (*ssdf_qu8_conv_fn)(const ssdf_conv_params *p, const ssdf_qu8_output *q,
                                      const uint8_t *inp, const uint8_t *w, void *out, size_t m0,
                                      size_t m1, int n0, int n1, uint8_t *scratch) noexcept nogil
    ctypedef struct ssdf_qu8_block:
        int producer_k
        ssdf_conv_params producer, dw, project
        ssdf_qu8_output q_producer, q_dw, q_project
        const uint8_t *in_ "in"
        const uint8_t *w_producer
        const uint8_t *w_dw
        const uint8_t *w_project
        uint8_t *out
    ctypedef void (*ssdf_qu8_block_fn)(const ssdf_qu8_block *b, int y0, int y1,
                                       uint8_t *scratch) noexcept nogil
    int ssdf_qu8_block_ok(const ssdf_qu8_block *b)
    size_t ssdf_qu8_block_scratch_bytes(const ssdf_qu8_block *b, int ring_rows, int band_rows)
    int SSDF_RING_ROWS
    int ssdf_band_rows(int width)
    ctypedef struct ssdf_kernel_table:
        const char *name
        int tile_m
        ssdf_f32_conv_fn f32_conv3x3
        ssdf_f32_conv_fn f32_dw3x3
        ssdf_f32_conv_fn f32_conv1x1
        ssdf_f32_block_fn f32_block
        int qu8_tile_m
        ssdf_qu8_conv_fn qu8_conv3x3
        ssdf_qu8_conv_fn qu8_dw3x3
        ssdf_qu8_conv_fn qu8_conv1x1
        ssdf_qu8_block_fn qu8_block
    ctypedef enum ssdf_dtype:
        SSDF_DTYPE_F32
        SSDF_DTYPE_QU8
    int ssdf_kernels_have(const ssdf_kernel_table *t, ssdf_dtype dtype)
    ctypedef struct ssdf_kernel_choice:
        const char *name
        const ssdf_kernel_table *table
        int supported
    size_t ssdf_f32_conv_scratch_floats(int in_c)
    int ssdf_kernel_choices(ssdf_kernel_choice *out, int max)
    const ssdf_kernel_table *ssdf_kernels_best()
    const ssdf_kernel_table *ssdf_kernels_by_name(const char *name)

cdef extern from "fuse.h" nogil:
    ctypedef struct ssdf_binding:
        int src, dst, res
        size_t dst_offset
    ctypedef struct ssdf_step:
        int first, count
    ctypedef struct ssdf_plan:
        ssdf_step steps[80]
        int n_steps
        ssdf_binding bind[80]
        int n_slots
        size_t slot_floats[8]
        size_t spill_floats[2]
    int ssdf_fuse_readers(const ssdf_model *m, int l)
    int ssdf_plan_build(const ssdf_model *m, int fuse, ssdf_plan *p)
    ssdf_f32_block ssdf_block_shape(const ssdf_model *m, int first)

cdef extern from "anchors.h":
    void ssdf_anchors(const ssdf_model *m, float *anchors)

cdef extern from "postprocess.h":
    ctypedef struct ssdf_face:
        float xmin, ymin, xmax, ymax, score
        int anchor
    int ssdf_postprocess(const ssdf_model *m, const float *boxes, const float *logits, const float *anchors,
                         float score_threshold, float iou_threshold, int max_faces, float width,
                         float height, ssdf_face *faces, void *scratch) nogil
    size_t ssdf_postprocess_scratch_bytes(const ssdf_model *m)

cdef extern from "resize.h":
    int ssdf_resize_normalize(const unsigned char *src, int height, int width, int channels,
                              Py_ssize_t row_stride, int out_h, int out_w, float *dst,
                              const ssdf_kernel_table *k, ssdf_error *err) nogil

cdef extern from "engine.h":
    ctypedef struct ssdf_engine:
        pass
    int ssdf_engine_create(ssdf_engine **out, const ssdf_model *model, const uint8_t *blob,
                           size_t size, int num_threads, ssdf_error *err)
    int ssdf_engine_threads(const ssdf_engine *e)
    int ssdf_engine_profile(ssdf_engine *e, const float *inp, float *boxes, float *logits,
                            double *seconds, ssdf_error *err) nogil
    void ssdf_engine_destroy(ssdf_engine *e)
    const ssdf_blob_info *ssdf_engine_info(const ssdf_engine *e)
    int ssdf_engine_set_kernels(ssdf_engine *e, const ssdf_kernel_table *k, ssdf_error *err)
    const ssdf_kernel_table *ssdf_engine_kernels(const ssdf_engine *e)
    const ssdf_kernel_table *ssdf_engine_resize_kernels(const ssdf_engine *e)
    int ssdf_engine_set_precision(ssdf_engine *e, ssdf_dtype precision, ssdf_error *err)
    ssdf_dtype ssdf_engine_precision(const ssdf_engine *e)
    int ssdf_engine_forward(ssdf_engine *e, const float *inp, float *boxes, float *logits,
                            ssdf_error *err) nogil
    int ssdf_engine_detect(ssdf_engine *e, const unsigned char *image, int height, int width,
                           int channels, Py_ssize_t row_stride, float score_threshold,
                           float iou_threshold, int max_faces, ssdf_face *faces, int *n_faces,
                           ssdf_error *err) nogil
    int ssdf_engine_forward_batch(ssdf_engine *e, const float *inputs, int n, float *boxes,
                                  float *logits, ssdf_error *err) nogil
    ctypedef struct ssdf_view:
        const unsigned char *pixels
        int height, width, channels
        Py_ssize_t row_stride
        int x0, y0, x1, y1
        float box_width, box_height
        int flip
    int ssdf_engine_detect_views(ssdf_engine *e, const ssdf_view *views, int n,
                                 float score_threshold, float iou_threshold, int max_faces,
                                 ssdf_face *faces, int *counts, ssdf_error *err) nogil
    const float *ssdf_engine_anchors(const ssdf_engine *e)
    const float *ssdf_engine_tensor(const ssdf_engine *e, int i)
    size_t ssdf_engine_arena_bytes(const ssdf_engine *e)

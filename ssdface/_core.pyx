# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin Cython layer over the C core in ``csrc/``.

Everything here checks its arguments (dtype, shape, contiguity) before any C
code sees a pointer, and releases the GIL around the real work. The public,
friendlier API lives in :mod:`ssdface.detector`; this module is private.

This file: the model's description, kernel sets, blob packing and header
checks, pre- and post-processing. The :class:`Engine` type is in
``_engine.pxi`` (included at the end: same module), the C headers'
declarations in ``_cdefs.pxd``, the test hooks in the ``_testing`` module.
"""

import numpy as np

from libc.stdint cimport int8_t, int32_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc

from ssdface._cdefs cimport *  # the C headers' declarations (csrc/*.h)


# The model this build runs (csrc/models/): its sizes are read from its
# description, never written here.
cdef const ssdf_model *_model = ssdf_model_builtin()
cdef int _IN_H = _model.input_h, _IN_W = _model.input_w, _IN_C = _model.input_c
cdef int _ANCHORS = _model.num_anchors, _BOX = _model.box_size, _CLASSES = _model.num_classes

MODEL_NAME = _model.name.decode()
NUM_ANCHORS = _ANCHORS
INPUT_SIZE = _IN_H  # the input is square: INPUT_SIZE x INPUT_SIZE
INPUT_SHAPE = (_IN_H, _IN_W, _IN_C)
BLOB_VERSION = SSDF_BLOB_VERSION
BLOB_HEADER_SIZE = SSDF_BLOB_HEADER_SIZE

KIND_NAMES = {1: "bias", 2: "conv3x3", 3: "depthwise3x3", 4: "conv1x1"}


class BlobError(ValueError):
    """The weights blob is malformed, corrupt, truncated or of another version."""


cdef raise_error(int code, ssdf_error *err):
    msg = err.msg.decode("utf-8", "replace")
    if code == SSDF_ERR_FORMAT:
        raise BlobError(msg)
    if code == SSDF_ERR_NOMEM:
        raise MemoryError(msg)
    if code == SSDF_ERR_THREADS:
        raise RuntimeError(msg)
    raise ValueError(msg)


_DTYPES = {"f32": SSDF_DTYPE_F32, "qu8": SSDF_DTYPE_QU8}


def kernel_sets(bint supported_only=True, str dtype="f32"):
    """Names of the kernel sets with kernels of `dtype` ("f32" or "qu8"),
    reference first and best last: those this CPU can run (default), or every
    set this build contains."""
    if dtype not in _DTYPES:
        raise ValueError(f"unknown kernel data type {dtype!r}; expected one of {sorted(_DTYPES)}")
    cdef ssdf_kernel_choice choices[16]
    cdef int n = min(ssdf_kernel_choices(choices, 16), 16)
    cdef ssdf_dtype dt = _DTYPES[dtype]
    return [choices[i].name.decode() for i in range(n)
            if (choices[i].supported or not supported_only)
            and ssdf_kernels_have(choices[i].table, dt)]


def best_kernel_set():
    """The kernel set the engine picks on this CPU by default."""
    return ssdf_kernels_best().name.decode()


cdef const ssdf_kernel_table *kernel_table(str name, str dtype="f32") except NULL:
    cdef bytes key = name.encode()
    cdef const ssdf_kernel_table *t = ssdf_kernels_by_name(key)
    if t != NULL and not ssdf_kernels_have(t, _DTYPES[dtype]):
        raise ValueError(f"kernel set {name!r} has no {dtype} kernels; the sets with them: "
                         f"{kernel_sets(dtype=dtype)}")
    if t == NULL:
        if name in kernel_sets(False, dtype):
            raise ValueError(f"kernel set {name!r} needs instructions this CPU lacks; "
                             f"this CPU runs {kernel_sets(dtype=dtype)}")
        raise ValueError(f"unknown kernel set {name!r}; this build has "
                         f"{kernel_sets(False, dtype)}")
    return t


def tensor_specs():
    """The weight tensors the network reads, in blob order.

    Returns a list of ``(name, kind, shape)``: ``name`` is the ``.npy`` file
    name without extension, ``shape`` the source (TFLite) shape.
    """
    cdef const ssdf_model *g = _model
    out = []
    for i in range(g.n_tensors):
        t = &g.tensors[i]
        out.append((t.name.decode(), KIND_NAMES[t.kind],
                    tuple(t.shape[d] for d in range(t.ndim))))
    return out


def layers():
    """The layer table as a list of dicts (for the exporters, tests,
    profiling and docs): with the buffers the engine's plan gives each layer
    (``src``, ``dst``, ``residual``: fuse.h ssdf_buffer ids), ``fuse_next``,
    whether the layer's output feeds the next layer inside a fused block,
    and ``scope``, the layer's '/'-separated name scope in the source TF
    model (model.h)."""
    cdef const ssdf_model *g = _model
    cdef ssdf_plan plan
    ssdf_plan_build(g, 1, &plan)
    fused = set()
    for s in range(plan.n_steps):
        fused.update(range(plan.steps[s].first, plan.steps[s].first + plan.steps[s].count - 1))
    ops = {1: "conv3x3", 2: "depthwise3x3", 3: "conv1x1"}
    out = []
    for i in range(g.n_layers):
        L = &g.layers[i]
        B = &plan.bind[i]
        out.append(dict(op=ops[L.op], stride=L.stride, relu6=bool(L.relu6),
                        in_shape=(L.in_h, L.in_w, L.in_c), out_shape=(L.out_h, L.out_w, L.out_c),
                        pad=(L.pad_top, L.pad_left), src=B.src, dst=B.dst, residual=B.res,
                        dst_offset=B.dst_offset, fuse_next=i in fused,
                        reads=L.src, adds=L.res, readers=ssdf_fuse_readers(g, i),
                        weight=g.tensors[L.weight].name.decode(),
                        bias=g.tensors[L.bias].name.decode(), scope=L.scope.decode()))
    return out


def anchors():
    """The network's anchors as (yc, xc, h, w), float32 [NUM_ANCHORS, 4]."""
    out = np.empty((_ANCHORS, 4), dtype=np.float32)
    cdef float[:, ::1] ov = out
    ssdf_anchors(_model, &ov[0, 0])
    return out


def check_blob_header(header, unsigned long long file_size):
    """Check a blob's first bytes (at least the header) against the size of
    the file they come from, before the rest is read. Raises BlobError."""
    cdef const uint8_t[::1] view = memoryview(header).cast("B")
    cdef ssdf_error err
    cdef int rc
    cdef size_t n = view.shape[0]
    cdef const uint8_t *p = &view[0] if n else <const uint8_t *>b""
    rc = ssdf_blob_check_header(p, n, file_size, _model, &err)
    if rc:
        raise_error(rc, &err)


def pack_blob(sources, qu8=None):
    """Pack source tensors (graph order, float32, C-contiguous, exact shapes)
    into a blob; with ``qu8`` (see :func:`_qu8_source`), its qu8 section
    too. Returns a 64-byte aligned ``uint8`` array."""
    cdef const ssdf_model *g = _model
    cdef const float **ptrs
    cdef const float[::1] flat
    cdef size_t size
    cdef uint8_t[::1] out_view
    cdef ssdf_qu8_source src
    cdef const ssdf_qu8_source *srcp = NULL
    if len(sources) != g.n_tensors:
        raise ValueError(f"expected {g.n_tensors} tensors, got {len(sources)}")
    keep = []
    if qu8 is not None:
        keep.append(_qu8_source(qu8, &src))
        srcp = &src
    ptrs = <const float **>malloc(sizeof(float *) * g.n_tensors)
    if ptrs == NULL:
        raise MemoryError()
    try:
        for i in range(g.n_tensors):
            t = &g.tensors[i]
            want = tuple(t.shape[d] for d in range(t.ndim))
            arr = sources[i]
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
                raise TypeError(f"tensor {t.name.decode()}: expected a float32 array")
            if arr.shape != want:
                raise ValueError(f"tensor {t.name.decode()}: shape {arr.shape}, expected {want}")
            arr = np.ascontiguousarray(arr)
            keep.append(arr)
            flat = arr.reshape(-1)
            ptrs[i] = &flat[0]
        size = ssdf_blob_size(g, srcp != NULL)
        out = _aligned_empty(size)
        out_view = out
        with nogil:
            ssdf_blob_write(g, ptrs, srcp, &out_view[0])
        return out
    finally:
        free(ptrs)


cdef list _qu8_source(qu8, ssdf_qu8_source *src):
    """Fill ``src`` from ``qu8``, a mapping: ``input_inv_scale``,
    ``input_zero`` and ``layers``, one mapping per layer of the model with
    ``weights`` (int8, the float tensor's source shape), ``bias`` (int32
    [out_c]), ``scale`` (float32 [out_c]) and the output stage's
    ``in_zero``, ``out_zero``, ``out_lo``, ``out_hi``, ``res_zero``,
    ``res_scale``, ``f32_out``. Returns the arrays ``src`` points into (keep
    them alive). The values are checked when the blob is opened."""
    cdef const ssdf_model *g = _model
    cdef const int8_t[::1] wv
    cdef const int32_t[::1] bv
    cdef const float[::1] sv
    layers = qu8["layers"]
    if len(layers) != g.n_layers:
        raise ValueError(f"qu8: expected {g.n_layers} layers, got {len(layers)}")
    src.input_inv_scale = float(qu8["input_inv_scale"])
    src.input_zero = int(qu8["input_zero"])
    keep = []
    for l in range(g.n_layers):
        L = &g.layers[l]
        q = layers[l]
        t = &g.tensors[L.weight]
        shape = tuple(t.shape[d] for d in range(t.ndim))
        w = np.ascontiguousarray(q["weights"])
        b = np.ascontiguousarray(q["bias"])
        sc = np.ascontiguousarray(q["scale"])
        if w.dtype != np.int8 or w.shape != shape:
            raise ValueError(f"qu8 layer {l}: weights must be int8 {shape}, got {w.dtype} {w.shape}")
        if b.dtype != np.int32 or b.shape != (L.out_c,):
            raise ValueError(f"qu8 layer {l}: bias must be int32 ({L.out_c},)")
        if sc.dtype != np.float32 or sc.shape != (L.out_c,):
            raise ValueError(f"qu8 layer {l}: scale must be float32 ({L.out_c},)")
        keep += [w, b, sc]
        wv = w.reshape(-1)
        bv = b
        sv = sc
        src.weights[l] = &wv[0]
        src.bias[l] = &bv[0]
        src.scale[l] = &sv[0]
        o = &src.out[l]
        o.in_zero, o.out_zero = int(q["in_zero"]), int(q["out_zero"])
        o.out_lo, o.out_hi = float(q["out_lo"]), float(q["out_hi"])
        o.res = NULL
        o.res_zero, o.res_scale = int(q["res_zero"]), float(q["res_scale"])
        o.f32_out = int(bool(q["f32_out"]))
    return keep


def _aligned_empty(size_t nbytes):
    """A uint8 array of ``nbytes`` whose data starts on a 64-byte boundary."""
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def _check_array(x, name, dtype, ndim):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: array is empty (shape {x.shape})")
    # Aligned too: a float32 view at an odd byte offset (np.frombuffer of a
    # slice) is C-contiguous but its loads are undefined behaviour in C.
    return np.require(x, requirements=("C", "A"))


def _check_pixels(image, str where, str empty):
    """Raise unless ``image`` is a uint8 [H,W] or [H,W,C] array, C in (1, 3,
    4), non-empty, with sides the C code can index. ``where`` prefixes the
    messages; ``empty`` is the message for an empty array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{where}: expected dtype uint8, got {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"{where}: expected [H, W] or [H, W, C], got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{where}: expected 1, 3 or 4 channels, got {image.shape[2]}")
    if image.size == 0:
        raise ValueError(f"{empty} (shape {image.shape})")
    if image.shape[0] > 2**30 or image.shape[1] * (image.shape[2] if image.ndim == 3 else 1) > 2**30:
        raise ValueError(f"{empty.replace('empty', 'too large')} (shape {image.shape})")


def _check_image(image):
    """A C-contiguous uint8 [H,W] or [H,W,C] array with C in (1, 3, 4)."""
    _check_pixels(image, "image", "image is empty")
    return np.ascontiguousarray(image)


def resize_normalize(image, out_h=None, out_w=None, str impl=None):
    """uint8 image [H,W] or [H,W,C] (C in 1, 3, 4) -> float32 [out_h,out_w,3]
    normalised network input (see csrc/resize.h for the filter), computed
    with kernel set `impl` (default: the best this CPU runs)."""
    cdef const ssdf_kernel_table *table = (ssdf_kernels_best() if impl is None
                                           else kernel_table(impl))
    cdef ssdf_error err
    cdef const unsigned char[:, ::1] rows
    cdef float[::1] ov
    cdef int rc, h, w, c, oh, ow
    oh = _IN_H if out_h is None else out_h
    ow = _IN_W if out_w is None else out_w
    if oh <= 0 or ow <= 0:
        raise ValueError("output size must be positive")
    image = _check_image(image)
    h, w = image.shape[0], image.shape[1]
    c = 1 if image.ndim == 2 else image.shape[2]
    rows = image.reshape(h, -1)
    out = np.empty((oh, ow, 3), dtype=np.float32)
    ov = out.reshape(-1)
    with nogil:
        rc = ssdf_resize_normalize(&rows[0, 0], h, w, c, w * c, oh, ow, &ov[0], table,
                                   &err)
    if rc:
        raise_error(rc, &err)
    return out


cdef object _faces_array(ssdf_face *faces, int n):
    out = np.empty((n, 6), dtype=np.float64)
    for i in range(n):
        out[i, 0] = faces[i].xmin
        out[i, 1] = faces[i].ymin
        out[i, 2] = faces[i].xmax
        out[i, 3] = faces[i].ymax
        out[i, 4] = faces[i].score
        out[i, 5] = faces[i].anchor
    return out


def postprocess(boxes, logits, anchors, float score_threshold, float iou_threshold,
                int max_faces, float width, float height):
    """Decode + score + NMS on raw head outputs of one image.
    Returns float64 [n, 6]: xmin, ymin, xmax, ymax (pixels), score, anchor."""
    cdef const float[::1] bv, lv, av
    cdef ssdf_face *faces
    cdef void *scratch
    cdef int n
    boxes = _check_array(boxes, "boxes", np.float32, 2)
    logits = _check_array(logits, "logits", np.float32, 2)
    anchors = _check_array(anchors, "anchors", np.float32, 2)
    for arr, name, cols in ((boxes, "boxes", _BOX), (logits, "logits", _CLASSES),
                            (anchors, "anchors", 4)):
        if arr.shape != (_ANCHORS, cols):
            raise ValueError(f"{name} must have shape ({_ANCHORS}, {cols}), got {arr.shape}")
    if max_faces < 1:
        raise ValueError("max_faces must be >= 1")
    if not (0 < width < float("inf") and 0 < height < float("inf")):
        raise ValueError(f"image size must be finite and positive, got {width} x {height}")
    max_faces = min(max_faces, _ANCHORS)
    bv, lv, av = boxes.reshape(-1), logits.reshape(-1), anchors.reshape(-1)
    faces = <ssdf_face *>malloc(sizeof(ssdf_face) * max_faces)
    scratch = malloc(ssdf_postprocess_scratch_bytes(_model))
    try:
        if faces == NULL or scratch == NULL:
            raise MemoryError()
        with nogil:
            n = ssdf_postprocess(_model, &bv[0], &lv[0], &av[0], score_threshold, iou_threshold,
                                 max_faces, width, height, faces, scratch)
        return _faces_array(faces, n)
    finally:
        free(faces)
        free(scratch)


# The C functions ssdface._testing calls through _core (see _core.pxd; kernel_table,
# above, is one too).
cdef const ssdf_model *model() noexcept nogil:
    return _model


cdef int same_out(int inp, int stride) noexcept nogil:
    return ssdf_same_out(inp, stride)


cdef int same_pad_before(int inp, int out, int k, int stride) noexcept nogil:
    return ssdf_same_pad_before(inp, out, k, stride)


cdef size_t packed_floats(const ssdf_tensor_spec *t) noexcept nogil:
    return ssdf_packed_floats(t)


cdef void pack_tensor(const ssdf_tensor_spec *t, const float *src, const float *bias,
                      float *dst) noexcept nogil:
    ssdf_pack_tensor(t, src, bias, dst)


cdef size_t qu8_gemm_bytes(size_t n, size_t k) noexcept nogil:
    return ssdf_qu8_gemm_bytes(n, k)


cdef size_t qu8_dw_bytes(size_t n) noexcept nogil:
    return ssdf_qu8_dw_bytes(n)


cdef void pack_qu8_gemm(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                        size_t k, uint8_t *dst) noexcept nogil:
    ssdf_pack_qu8_gemm(w, bias, scale, n, k, dst)


cdef void pack_qu8_dw(const int8_t *w, const int32_t *bias, const float *scale, size_t n,
                      uint8_t *dst) noexcept nogil:
    ssdf_pack_qu8_dw(w, bias, scale, n, dst)


cdef int plan_build(const ssdf_model *m, int fuse, ssdf_plan *p) noexcept nogil:
    return ssdf_plan_build(m, fuse, p)


cdef ssdf_f32_block block_shape(const ssdf_model *m, int first) noexcept nogil:
    return ssdf_block_shape(m, first)


cdef uint64_t xxh64(const void *data, size_t n, uint64_t seed) noexcept nogil:
    return ssdf_xxh64(data, n, seed)


# The engine: a validated blob, its arena and threads (the Engine type).
include "_engine.pxi"

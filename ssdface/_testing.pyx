# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Test hooks into the C core: single kernels, the fusion pass, the checksum.

For the tests and fuzz harnesses only; the library never imports this module.
It holds no C code of its own: it runs ssdface._core's (the kernel tables,
the weight packer, the plan), reached through the cdef functions that
``_core.pxd`` declares (see there for why), plus the ``static inline``
helpers of the C headers (``_cdefs.pxd``). Arguments are checked as in
``_core`` before any C code sees a pointer.
"""

import numpy as np

from ssdface._core import _check_array

cimport ssdface._core as core
from ssdface._cdefs cimport (ssdf_conv_params, ssdf_f32_block, ssdf_f32_block_scratch_floats,
                             ssdf_f32_conv_fn, ssdf_f32_conv_scratch_floats, ssdf_kernel_table,
                             ssdf_layer, ssdf_model, ssdf_plan, ssdf_qu8_conv_fn,
                             ssdf_qu8_conv_scratch_bytes, ssdf_qu8_output, ssdf_tensor_spec,
                             ssdf_qu8_block, ssdf_qu8_block_ok, ssdf_qu8_block_scratch_bytes,
                             SSDF_RING_ROWS, ssdf_band_rows)
from libc.stdint cimport int8_t, int32_t, uint8_t, uint64_t

# The model _core runs (the same object, not a copy).
cdef const ssdf_model *_model = core.model()


cdef ssdf_conv_params _conv_params(int h, int wd, int c, int cout, int k, int stride,
                                   bint relu6):
    """A kernel's parameters for an h x wd x c image, TF SAME padding."""
    cdef ssdf_conv_params p
    p.in_h, p.in_w, p.in_c = h, wd, c
    p.out_h, p.out_w, p.out_c = core.same_out(h, stride), core.same_out(wd, stride), cout
    p.stride, p.relu6 = stride, relu6
    p.pad_top = core.same_pad_before(h, p.out_h, k, stride)
    p.pad_left = core.same_pad_before(wd, p.out_w, k, stride)
    return p


def _pieces(size_t M, int cout, split):
    """The (m0, m1, n0, n1) calls that run a kernel piecewise, as threads do:
    ``split`` = (m_parts, n_parts) ranges of output pixels and of 16-channel
    panels."""
    m_parts, n_parts = split
    panels = (cout + 15) // 16
    out = []
    for i in range(m_parts):
        for j in range(n_parts):
            m0, m1 = M * i // m_parts, M * (i + 1) // m_parts
            n0 = min(cout, panels * j // n_parts * 16)
            n1 = min(cout, panels * (j + 1) // n_parts * 16)
            if m0 < m1 and n0 < n1:
                out.append((m0, m1, n0, n1))
    return out


def _weight_geometry(str op, tuple wshape, int c, int stride):
    """(out channels, kernel size) of a conv ("conv": OHWI, 1x1 or 3x3) or
    depthwise ("dw": [1,3,3,C]) weight shape on a C-channel input; refuses
    shapes and strides the kernels do not take."""
    if stride not in (1, 2):
        raise ValueError("stride must be 1 or 2")
    if op == "dw":
        if wshape != (1, 3, 3, c):
            raise ValueError(f"depthwise weights must be [1,3,3,{c}], got {wshape}")
        return c, 3
    cout, k = wshape[0], wshape[1]
    if wshape[3] != c or wshape[1] != wshape[2] or k not in (1, 3):
        raise ValueError(f"weights must be [O,3,3,{c}] or [O,1,1,{c}], got {wshape}")
    if k == 1 and stride != 1:
        raise ValueError("1x1 convolutions have stride 1")
    return cout, k


def _conv(str op, x, w, b, int stride, bint relu6, residual, str impl, split):
    """Run one kernel on one HWC image. Weights in source (TFLite) layout;
    they are packed with the same code the blob uses."""
    cdef ssdf_tensor_spec spec
    cdef ssdf_conv_params p
    cdef const ssdf_kernel_table *table = core.kernel_table(impl)
    cdef ssdf_f32_conv_fn fn
    cdef const float[::1] xv, wv, bv, rv
    cdef float[::1] ov, sv
    cdef const float *rp = NULL
    cdef int k, n0, n1
    cdef size_t m0, m1
    x = _check_array(x, "x", np.float32, 3)
    w = _check_array(w, "w", np.float32, 4)
    b = _check_array(b, "b", np.float32, 1)
    h, wd, c = x.shape
    cout, k = _weight_geometry(op, w.shape, c, stride)
    if op == "dw":
        spec.kind, fn = 3, table.f32_dw3x3
    else:
        spec.kind = 4 if k == 1 else 2
        fn = table.f32_conv1x1 if k == 1 else table.f32_conv3x3
    if b.shape[0] != cout:
        raise ValueError(f"bias must have {cout} elements, got {b.shape[0]}")
    spec.ndim = 4
    for d in range(4):
        spec.shape[d] = w.shape[d]
    packed = np.empty(core.packed_floats(&spec), dtype=np.float32)
    wv = w.reshape(-1)
    bv = b
    ov = packed
    core.pack_tensor(&spec, &wv[0], &bv[0], &ov[0])

    p = _conv_params(h, wd, c, cout, k, stride, relu6)
    out = np.full((p.out_h, p.out_w, cout), np.nan, dtype=np.float32)
    if residual is not None:
        if k != 1 or op == "dw":
            raise ValueError("only 1x1 convolutions take a residual")
        residual = _check_array(residual, "residual", np.float32, 3)
        if residual.shape != out.shape:
            raise ValueError(f"residual must have shape {out.shape}, got {residual.shape}")
        rv = residual.reshape(-1)
        rp = &rv[0]
    scratch = np.empty(ssdf_f32_conv_scratch_floats(c), dtype=np.float32)
    xv = x.reshape(-1)
    wv = packed
    ov = out.reshape(-1)
    sv = scratch
    for m0, m1, n0, n1 in _pieces(p.out_h * p.out_w, cout, split):
        with nogil:
            fn(&p, &xv[0], &wv[0], rp, &ov[0], m0, m1, n0, n1, &sv[0])
    return out


def conv2d(x, w, b, int stride=1, bint relu6=False, residual=None, str impl="scalar",
           split=(1, 1)):
    """3x3 (any stride) or 1x1 (stride 1) convolution with TF SAME padding.
    ``x`` [H,W,Cin] float32, ``w`` OHWI, ``b`` [Cout]."""
    return _conv("conv", x, w, b, stride, relu6, residual, impl, split)


def depthwise_conv2d(x, w, b, int stride=1, bint relu6=False, str impl="scalar",
                     split=(1, 1)):
    """Depthwise 3x3 convolution with TF SAME padding; ``w`` is [1,3,3,C]."""
    return _conv("dw", x, w, b, stride, relu6, None, impl, split)


def plan(bint fuse=True):
    """The engine's plan of the model: ``steps``, a list of (first layer,
    layer count) with count 3 for a fused block; ``slots``, the floats of
    each arena slot; ``spill``, the floats of the two spill buffers."""
    cdef ssdf_plan p
    if core.plan_build(_model, fuse, &p) != 0:
        raise ValueError("the model needs more activation buffers than the plan has")
    return dict(steps=[(p.steps[s].first, p.steps[s].count) for s in range(p.n_steps)],
                slots=[p.slot_floats[s] for s in range(p.n_slots)],
                spill=[p.spill_floats[0], p.spill_floats[1]])


def fused_block(str impl, int first, int seed=0):
    """The fused block starting at layer ``first`` run on random inputs and
    weights two ways with kernel set ``impl``: by its block kernel, and
    layer by layer by its conv kernels. Returns (fused, unfused) outputs."""
    cdef const ssdf_kernel_table *table = core.kernel_table(impl)
    cdef ssdf_f32_block blk
    cdef const ssdf_layer *L
    cdef ssdf_f32_conv_fn fn
    cdef ssdf_conv_params p
    cdef const float[::1] wv, bv, xv, rv
    cdef float[::1] pv, ov, sv
    cdef const float *wp[3]
    cdef const float *ins[3]
    cdef float *outs[3]
    cdef int i
    if table.f32_block == NULL:
        raise ValueError(f"kernel set {impl!r} has no fused block kernel")
    if not (0 <= first and first + 2 < _model.n_layers):
        raise ValueError(f"no block starts at layer {first}")
    blk = core.block_shape(_model, first)
    rng = np.random.default_rng(seed)
    keep = []
    for i in range(3):
        L = &_model.layers[first + i]
        spec = &_model.tensors[L.weight]
        shape = tuple(spec.shape[d] for d in range(spec.ndim))
        fan_in = int(np.prod(shape[1:])) if L.op != 2 else 9
        w = rng.normal(0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32).reshape(-1)
        b = rng.normal(0, 0.1, L.out_c).astype(np.float32)
        packed = np.empty(core.packed_floats(spec), dtype=np.float32)
        wv, bv, pv = w, b, packed
        core.pack_tensor(spec, &wv[0], &bv[0], &pv[0])
        keep.append(packed)
        wp[i] = &pv[0]
    x = rng.uniform(-1, 1, (blk.producer.in_h, blk.producer.in_w, blk.producer.in_c))
    x = x.astype(np.float32)
    xv = x.reshape(-1)
    oshape = (blk.project.out_h, blk.project.out_w, blk.project.out_c)
    res = None
    if _model.layers[first + 2].res != -1:
        res = rng.uniform(-1, 1, oshape).astype(np.float32)
        rv = res.reshape(-1)
    fused = np.full(oshape, np.nan, dtype=np.float32)
    ov = fused.reshape(-1)
    blk.in_, blk.out = &xv[0], &ov[0]
    blk.w_producer, blk.w_dw, blk.w_project = wp[0], wp[1], wp[2]
    blk.res = &rv[0] if res is not None else NULL
    scratch = np.empty(ssdf_f32_block_scratch_floats(&blk), dtype=np.float32)
    sv = scratch
    with nogil:
        table.f32_block(&blk, 0, blk.dw.out_h, &sv[0])
    mids = [np.full((q.out_h, q.out_w, q.out_c), np.nan, dtype=np.float32)
            for q in (blk.producer, blk.dw)]
    unfused = np.full(oshape, np.nan, dtype=np.float32)
    scratch = np.empty(ssdf_f32_conv_scratch_floats(blk.producer.in_c), dtype=np.float32)
    sv = scratch
    ins[0] = &xv[0]
    for i, arr in enumerate((mids[0], mids[1], unfused)):
        ov = arr.reshape(-1)
        outs[i] = &ov[0]
        if i > 0:
            ins[i] = outs[i - 1]
    for i in range(3):
        L = &_model.layers[first + i]
        p = blk.producer if i == 0 else (blk.dw if i == 1 else blk.project)
        fn = (table.f32_conv3x3 if L.op == 1 else table.f32_dw3x3 if L.op == 2 else table.f32_conv1x1)
        fn(&p, ins[i], wp[i], blk.res if i == 2 else NULL, outs[i], 0,
           <size_t>p.out_h * p.out_w, 0, p.out_c, &sv[0])
    return fused, unfused


def xxh64(data, unsigned long long seed=0):
    """XXH64 of a bytes-like object (the blob checksum)."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef size_t n = view.shape[0]
    cdef const uint8_t *p = &view[0] if n else NULL
    cdef uint64_t h
    with nogil:
        h = core.xxh64(p, n, seed)
    return h


def _qu8_pack(str op, w, bias, scale, int cout, int k, int c):
    """A qu8 weight tensor packed by the blob's packer (uint8 array)."""
    cdef const int8_t[::1] wv
    cdef const int32_t[::1] bv
    cdef const float[::1] sv
    cdef uint8_t[::1] pv
    bias = _check_array(bias, "bias", np.int32, 1)
    scale = _check_array(scale, "scale", np.float32, 1)
    if bias.shape[0] != cout or scale.shape[0] != cout:
        raise ValueError(f"bias and scale must have {cout} elements")
    wv = w.reshape(-1)
    bv = bias
    sv = scale
    if op == "dw":
        packed = np.empty(core.qu8_dw_bytes(cout), dtype=np.uint8)
        pv = packed
        core.pack_qu8_dw(&wv[0], &bv[0], &sv[0], cout, &pv[0])
    else:
        packed = np.empty(core.qu8_gemm_bytes(cout, k * k * c), dtype=np.uint8)
        pv = packed
        core.pack_qu8_gemm(&wv[0], &bv[0], &sv[0], cout, k * k * c, &pv[0])
    return packed


cdef ssdf_qu8_output _qu8_output(int in_zero, int out_zero, float out_lo, float out_hi,
                                 int res_zero, float res_scale, bint f32_out) except *:
    """An output stage (no residual tensor yet), checked as the blob loader does."""
    cdef ssdf_qu8_output q
    q.in_zero, q.out_zero, q.out_lo, q.out_hi = in_zero, out_zero, out_lo, out_hi
    q.res, q.res_zero, q.res_scale, q.f32_out = NULL, res_zero, res_scale, f32_out
    if not (0 <= in_zero <= 255 and 0 <= out_zero <= 255 and -out_zero <= out_lo <= out_hi
            <= 255 - out_zero):
        raise ValueError("zero points and clamps must keep the output inside uint8")
    return q


cdef ssdf_qu8_output _qu8_stage(L) except *:
    """The uint8 output stage a layer dict of qu8_block describes."""
    return _qu8_output(L["in_zero"], L["out_zero"], L["out_lo"], L["out_hi"],
                       L.get("res_zero", 0), L.get("res_scale", 0.0), False)


def qu8_block(str impl, x, layers, *, int producer_k=1, int producer_stride=1,
              int dw_stride=1, residual=None, int row_parts=1):
    """A qu8 fused block (producer 1x1 or 3x3, depthwise 3x3, project 1x1)
    run by kernel set ``impl``'s block kernel on an HWC uint8 image, its
    depthwise output rows in ``row_parts`` calls (as threads split it).
    ``layers``: three dicts (producer, dw, project) of ``w`` (int8, source
    layout), ``bias`` (int32), ``scale`` (float32) and the output stage's
    ``in_zero``, ``out_zero``, ``out_lo``, ``out_hi`` (the project's also
    ``res_zero``, ``res_scale`` with ``residual``). Returns the project's
    uint8 output; compare with three ``qu8_conv`` calls."""
    cdef const ssdf_kernel_table *table = core.kernel_table(impl, "qu8")
    cdef ssdf_qu8_block blk
    cdef const uint8_t[::1] xv, rv, p0, p1, p2
    cdef uint8_t[::1] ov, scr
    cdef int y0, y1, i
    if table.qu8_block == NULL:
        raise ValueError(f"kernel set {impl!r} has no qu8 block kernel")
    if producer_k not in (1, 3) or (producer_k == 1 and producer_stride != 1):
        raise ValueError("the producer is a 1x1 (stride 1) or a 3x3 conv")
    if len(layers) != 3 or row_parts < 1:
        raise ValueError("three layers (producer, dw, project) and row_parts >= 1")
    x = _check_array(x, "x", np.uint8, 3)
    h, wd, c = x.shape
    ws = [_check_array(L["w"], "w", np.int8, 4) for L in layers]
    e, k = _weight_geometry("conv", ws[0].shape, c, producer_stride)
    if k != producer_k:
        raise ValueError(f"producer weights are {k}x{k}, producer_k is {producer_k}")
    blk.producer_k = producer_k
    blk.producer = _conv_params(h, wd, c, e, k, producer_stride, 0)
    _weight_geometry("dw", ws[1].shape, e, dw_stride)
    blk.dw = _conv_params(blk.producer.out_h, blk.producer.out_w, e, e, 3, dw_stride, 0)
    cout, k = _weight_geometry("conv", ws[2].shape, e, 1)
    if k != 1:
        raise ValueError("the project is a 1x1 conv")
    blk.project = _conv_params(blk.dw.out_h, blk.dw.out_w, e, cout, 1, 1, 0)
    packed = [_qu8_pack(op, w, L["bias"], L["scale"], n, kk, cin)
              for op, w, L, n, kk, cin in zip(("conv", "dw", "conv"), ws, layers,
                                              (e, e, cout), (producer_k, 3, 1), (c, e, e))]
    blk.q_producer = _qu8_stage(layers[0])
    blk.q_dw = _qu8_stage(layers[1])
    blk.q_project = _qu8_stage(layers[2])
    oshape = (blk.project.out_h, blk.project.out_w, cout)
    if residual is not None:
        residual = _check_array(residual, "residual", np.uint8, 3)
        if residual.shape != oshape:
            raise ValueError(f"residual must have shape {oshape}, got {residual.shape}")
        rv = residual.reshape(-1)
        blk.q_project.res = &rv[0]
    if not ssdf_qu8_block_ok(&blk):
        raise ValueError("the expanded channels (and a 1x1 producer's inputs) must be "
                         "multiples of 4")
    out = np.zeros(oshape, dtype=np.uint8)
    xv, ov = x.reshape(-1), out.reshape(-1)
    p0, p1, p2 = packed
    blk.in_, blk.out = &xv[0], &ov[0]
    blk.w_producer, blk.w_dw, blk.w_project = &p0[0], &p1[0], &p2[0]
    scratch = np.empty(ssdf_qu8_block_scratch_bytes(&blk, SSDF_RING_ROWS,
                                                    ssdf_band_rows(blk.dw.out_w)),
                       dtype=np.uint8)
    scr = scratch
    rows = blk.dw.out_h
    for i in range(row_parts):
        y0, y1 = rows * i // row_parts, rows * (i + 1) // row_parts
        if y0 < y1:
            with nogil:
                table.qu8_block(&blk, y0, y1, &scr[0])
    return out


def qu8_conv(str op, x, w, bias, scale, *, int stride=1, int in_zero=0, int out_zero=0,
             float out_lo=-255.0, float out_hi=255.0, residual=None, int res_zero=0,
             float res_scale=0.0, bint f32_out=False, str impl="reference", split=(1, 1)):
    """Run one quantized (qu8) kernel on one HWC uint8 image: ``op`` "conv"
    (``w`` int8 OHWI, 1x1 or 3x3) or "dw" (``w`` int8 [1,3,3,C]), ``bias``
    int32 and ``scale`` float32 per output channel, the output stage of
    kernels_qu8.h. Packed with the blob's packer; returns uint8 (float32
    with ``f32_out``)."""
    cdef const ssdf_kernel_table *table = core.kernel_table(impl, "qu8")
    cdef ssdf_qu8_conv_fn fn
    cdef ssdf_conv_params p
    cdef ssdf_qu8_output q
    cdef const uint8_t[::1] xv, rv, pv
    cdef uint8_t[::1] scr
    cdef char *op_out
    cdef size_t m0, m1
    cdef int k, n0, n1, cout
    x = _check_array(x, "x", np.uint8, 3)
    w = _check_array(w, "w", np.int8, 4)
    bias = _check_array(bias, "bias", np.int32, 1)
    scale = _check_array(scale, "scale", np.float32, 1)
    h, wd, c = x.shape
    cout, k = _weight_geometry(op, w.shape, c, stride)
    if op == "dw":
        fn = table.qu8_dw3x3
    else:
        fn = table.qu8_conv1x1 if k == 1 else table.qu8_conv3x3
    packed = _qu8_pack(op, w, bias, scale, cout, k, c)
    pv = packed
    p = _conv_params(h, wd, c, cout, k, stride, 0)
    q = _qu8_output(in_zero, out_zero, out_lo, out_hi, res_zero, res_scale, f32_out)
    if f32_out:
        out = np.full((p.out_h, p.out_w, cout), np.nan, dtype=np.float32)
    else:
        out = np.zeros((p.out_h, p.out_w, cout), dtype=np.uint8)
    if residual is not None:
        if k != 1 or op == "dw" or f32_out:
            raise ValueError("only 1x1 convolutions with uint8 output take a residual")
        residual = _check_array(residual, "residual", np.uint8, 3)
        if residual.shape != out.shape:
            raise ValueError(f"residual must have shape {out.shape}, got {residual.shape}")
        rv = residual.reshape(-1)
        q.res = &rv[0]
    scratch = np.empty(ssdf_qu8_conv_scratch_bytes(c), dtype=np.uint8)
    scr = scratch
    xv = x.reshape(-1)
    op_out = <char *>(<size_t>out.ctypes.data)
    for m0, m1, n0, n1 in _pieces(p.out_h * p.out_w, cout, split):
        with nogil:
            fn(&p, &q, &xv[0], &pv[0], op_out, m0, m1, n0, n1, &scr[0])
    return out

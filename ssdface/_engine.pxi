# Included by _core.pyx (the same module, so it shares _core's declarations,
# model and checks): the Engine extension type, which runs the network on a
# validated blob, and the checks of detect_views' views.

import os
import threading
import weakref

from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport uintptr_t


def _view_pixels(image, int i):
    """View i's pixels: (array to keep alive, height, width, channels, row
    stride in bytes). A crop of a larger array is used in place when each
    row's pixels are packed (any row stride); otherwise it is copied."""
    where = f"view {i}: pixels"
    _check_pixels(image, where, f"{where}: image is empty")
    h, w = image.shape[0], image.shape[1]
    c = 1 if image.ndim == 2 else image.shape[2]
    st = image.strides
    packed = (w == 1 or st[1] == c) and (image.ndim == 2 or c == 1 or st[2] == 1)
    row_stride = st[0] if h > 1 else w * c
    if not packed or row_stride < w * c:
        image = np.ascontiguousarray(image)
        row_stride = w * c
    return image, h, w, c, row_stride


def _view_rect(rect, int i):
    """(x0, y0, x1, y1): integers, a non-empty rectangle inside the input."""
    try:
        ok = len(rect) == 4 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            for v in rect)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"view {i}: the destination must be four integers (x0, y0, x1, y1), "
                        f"got {rect!r}")
    x0, y0, x1, y1 = (int(v) for v in rect)
    if not (0 <= x0 < x1 <= _IN_W and 0 <= y0 < y1 <= _IN_H):
        raise ValueError(f"view {i}: the destination (x0, y0, x1, y1) = {(x0, y0, x1, y1)} must "
                         f"be a non-empty rectangle inside the {_IN_W}x{_IN_H} input "
                         f"(0 <= x0 < x1 <= {_IN_W}, 0 <= y0 < y1 <= {_IN_H})")
    return x0, y0, x1, y1


def _box_size(size, int i):
    try:
        ok = len(size) == 2 and all(isinstance(v, (int, float, np.integer, np.floating))
                                    and not isinstance(v, (bool, np.bool_)) for v in size)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"box_sizes[{i}] must be a (width, height) pair, got {size!r}")
    bw, bh = float(size[0]), float(size[1])
    if not (0 < bw < 3.0e38 and 0 < bh < 3.0e38):
        raise ValueError(f"box_sizes[{i}] must be finite and positive, got {size!r}")
    return bw, bh


# Every live engine, so that a forked child can give each a fresh lock.
_live_engines = weakref.WeakSet()


def _after_fork_in_child():
    # The child has one thread. An engine lock held at fork() time by another
    # thread of the parent (inside detect) would never be released here; the
    # C thread pool restarts its workers by itself on the child's first call.
    for engine in list(_live_engines):
        engine._reset_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef class Engine:
    """A validated blob plus its activation arena. Calls on one engine are
    serialised by a lock (the arena is shared), and run without the GIL."""

    cdef ssdf_engine *_engine
    cdef object _buffer
    cdef object _lock
    cdef object __weakref__

    def __cinit__(self, buffer, int num_threads=1, str precision="f32"):
        cdef const uint8_t[::1] view
        cdef ssdf_error err
        cdef int rc
        self._engine = NULL
        view = memoryview(buffer).cast("B")
        if view.shape[0] == 0:
            raise BlobError("the weights blob is empty")
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {sorted(_DTYPES)}, got {precision!r}")
        rc = ssdf_engine_create(&self._engine, _model, &view[0], view.shape[0], num_threads, &err)
        if rc:
            raise_error(rc, &err)
        rc = ssdf_engine_set_precision(self._engine, _DTYPES[precision], &err)
        if rc:
            ssdf_engine_destroy(self._engine)
            self._engine = NULL
            raise_error(rc, &err)
        # The engine reads weights from the buffer in place: hold an export
        # of it so that it cannot be freed under us.
        self._buffer = memoryview(buffer)
        self._lock = threading.Lock()
        _live_engines.add(self)

    def _reset_lock(self):
        self._lock = threading.Lock()

    cdef ssdf_engine *_live(self) except NULL:
        if self._engine == NULL:
            raise ValueError("this detector is closed")
        return self._engine

    def close(self):
        """Stop the worker threads and free the arena and weights now
        (idempotent); any later call raises ValueError."""
        with self._lock:
            if self._engine != NULL:
                ssdf_engine_destroy(self._engine)
                self._engine = NULL
            self._buffer = None

    @property
    def closed(self):
        return self._engine == NULL

    def blob_bytes(self):
        """A copy of the validated blob this engine runs on."""
        self._live()
        return bytes(self._buffer)

    def __dealloc__(self):
        if self._engine != NULL:
            ssdf_engine_destroy(self._engine)
            self._engine = NULL

    @property
    def info(self):
        """Blob header facts: version, tensor count, sizes, checksum, model name."""
        cdef const ssdf_blob_info *i = ssdf_engine_info(self._live())
        return dict(version=i.version, tensor_count=i.tensor_count,
                    payload_size=i.payload_size, file_size=i.file_size,
                    checksum=i.checksum, model_name=i.model_name.decode(),
                    has_qu8=bool(i.has_qu8))

    @property
    def precision(self):
        """What forward runs in: "f32", or "qu8" (uint8 activations, int8
        weights: the int8 mode)."""
        return "qu8" if ssdf_engine_precision(self._live()) == SSDF_DTYPE_QU8 else "f32"

    @property
    def num_threads(self):
        return ssdf_engine_threads(self._live())

    @property
    def arena_bytes(self):
        return ssdf_engine_arena_bytes(self._live())

    @property
    def kernels(self):
        """Name of the kernel table in use (for the engine's precision)."""
        return ssdf_engine_kernels(self._live()).name.decode()

    @kernels.setter
    def kernels(self, str name):
        cdef const ssdf_kernel_table *t = kernel_table(name, self.precision)
        cdef ssdf_error err
        cdef int rc = 0
        with self._lock:
            rc = ssdf_engine_set_kernels(self._live(), t, &err)
        if rc:
            raise_error(rc, &err)

    @property
    def resize_kernels(self):
        """Name of the f32 kernel table the engine resizes images with."""
        return ssdf_engine_resize_kernels(self._live()).name.decode()

    def profile(self, x, int repeats=1):
        """Per-layer wall time in seconds (summed over `repeats` forwards of
        one image ``x`` [1, *INPUT_SHAPE]), in layer-table order."""
        cdef const float[::1] xv
        cdef float[::1] bv, lv
        cdef double[::1] tv
        cdef ssdf_error err
        cdef int rc = 0, i
        cdef ssdf_engine *e
        x = _check_array(x, "x", np.float32, 4)
        if x.shape != (1, _IN_H, _IN_W, _IN_C):
            raise ValueError(f"x must have shape [1, {_IN_H}, {_IN_W}, {_IN_C}]")
        times = np.zeros(len(layers()), dtype=np.float64)
        boxes = np.empty(_ANCHORS * _BOX, dtype=np.float32)
        logits = np.empty(_ANCHORS * _CLASSES, dtype=np.float32)
        xv, bv, lv, tv = x.reshape(-1), boxes, logits, times
        with self._lock:
            e = self._live()
            for i in range(repeats):
                with nogil:
                    rc = ssdf_engine_profile(e, &xv[0], &bv[0], &lv[0], &tv[0], &err)
                if rc:
                    break
                PyErr_CheckSignals()
        if rc:
            raise_error(rc, &err)
        return times

    def source_tensors(self):
        """Every weight tensor back in its source (TFLite, .npy) layout, as a
        dict name -> float32 array, unpacked from the validated blob."""
        cdef const ssdf_model *g = _model
        cdef float[::1] ov
        out = {}
        for i in range(g.n_tensors):
            t = &g.tensors[i]
            arr = np.empty(ssdf_source_floats(t), dtype=np.float32)
            ov = arr
            ssdf_unpack_tensor(t, ssdf_engine_tensor(self._live(), i), &ov[0])
            out[t.name.decode()] = arr.reshape(tuple(t.shape[d] for d in range(t.ndim)))
        return out

    def anchors(self):
        """Anchors (yc, xc, h, w), float32 [NUM_ANCHORS, 4]."""
        cdef const float *a = ssdf_engine_anchors(self._live())
        return np.asarray(<const float[:_ANCHORS * 4]>a).reshape(_ANCHORS, 4).copy()

    def forward(self, x):
        """float32 [N, *INPUT_SHAPE] -> (float32 [N, NUM_ANCHORS, 4], float32
        [N, NUM_ANCHORS, classes])."""
        cdef const float[:, ::1] xv
        cdef float[:, ::1] bv, lv
        cdef ssdf_error err
        cdef int rc = 0, i, n
        cdef ssdf_engine *e
        x = _check_array(x, "x", np.float32, 4)
        if x.shape[1:] != (_IN_H, _IN_W, _IN_C):
            raise ValueError(f"x must have shape [N, {_IN_H}, {_IN_W}, {_IN_C}], "
                             f"got {list(x.shape)}")
        n = x.shape[0]
        xv = x.reshape(n, -1)
        boxes = np.empty((n, _ANCHORS, _BOX), dtype=np.float32)
        logits = np.empty((n, _ANCHORS, _CLASSES), dtype=np.float32)
        bv = boxes.reshape(n, -1)
        lv = logits.reshape(n, -1)
        with self._lock:
            e = self._live()
            # Chunks of images (one image at a time on one thread; a few per
            # thread otherwise, each thread running whole images): between
            # chunks Ctrl-C (or any signal handler) acts, where a large batch
            # would otherwise hold it off until the end.
            chunk = self._chunk(e)
            for i in range(0, n, chunk):
                m = min(chunk, n - i)
                with nogil:
                    rc = ssdf_engine_forward_batch(e, &xv[i, 0], m, &bv[i, 0], &lv[i, 0], &err)
                if rc:
                    break
                PyErr_CheckSignals()
        if rc:
            raise_error(rc, &err)
        return boxes, logits

    cdef int _chunk(self, ssdf_engine *e):
        """Images per engine call of a batch: 1 on one thread, else 4 per
        thread (the batch runs one image per thread)."""
        cdef int t = ssdf_engine_threads(e)
        return 1 if t == 1 else 4 * t

    def detect_views(self, views, float score_threshold, float iou_threshold, int max_faces,
                     box_sizes=None):
        """Faces in views: each ``(pixels, (x0, y0, x1, y1))`` resizes
        ``pixels`` (uint8 [H,W] or [H,W,C], C in 1, 3, 4; a strided crop of a
        larger array is read in place when its rows' pixels are packed) into
        columns x0..x1-1 and rows y0..y1-1 of the network input, the
        rest of it mid-grey (0.0), then detects. Returns one float64 [k, 6]
        array per view (see postprocess), boxes in network-input pixels, or
        in pixels of a (width, height) frame laid over the whole input when
        ``box_sizes`` gives one per view (a whole image's size: the boxes of
        detect). A third item ``True`` mirrors the built input left-right
        (the rectangle too); that view's boxes are as found in the mirrored
        input. On 2 threads or more, batches run one view per thread."""
        cdef ssdf_view *cv = NULL
        cdef ssdf_face *faces = NULL
        cdef int *counts = NULL
        cdef ssdf_error err
        cdef int rc = 0, n, i, j, m, chunk
        cdef ssdf_engine *e
        if not isinstance(views, (list, tuple)):
            raise TypeError(f"views must be a list of (pixels, (x0, y0, x1, y1)), got "
                            f"{type(views).__name__}")
        n = len(views)
        if n == 0:
            raise ValueError("views is empty")
        if max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        max_faces = min(max_faces, _ANCHORS)
        if box_sizes is not None and len(box_sizes) != n:
            raise ValueError(f"box_sizes has {len(box_sizes)} entries for {n} views")
        keep = []
        cv = <ssdf_view *>malloc(sizeof(ssdf_view) * n)
        if cv == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                item = views[i]
                if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                    raise TypeError(f"view {i}: expected (pixels, (x0, y0, x1, y1)[, flip]), "
                                    f"got {type(item).__name__}")
                flip = item[2] if len(item) == 3 else False
                if not isinstance(flip, (bool, np.bool_)):
                    raise TypeError(f"view {i}: flip must be a bool, got {type(flip).__name__}")
                image, h, w, c, stride = _view_pixels(item[0], i)
                x0, y0, x1, y1 = _view_rect(item[1], i)
                bw, bh = (0.0, 0.0) if box_sizes is None else _box_size(box_sizes[i], i)
                keep.append(image)
                cv[i].pixels = <const unsigned char *><uintptr_t>image.ctypes.data
                cv[i].height, cv[i].width, cv[i].channels, cv[i].row_stride = h, w, c, stride
                cv[i].x0, cv[i].y0, cv[i].x1, cv[i].y1 = x0, y0, x1, y1
                cv[i].box_width, cv[i].box_height = bw, bh
                cv[i].flip = 1 if flip else 0
            out = []
            with self._lock:
                e = self._live()
                chunk = min(self._chunk(e), n)
                faces = <ssdf_face *>malloc(sizeof(ssdf_face) * max_faces * chunk)
                counts = <int *>malloc(sizeof(int) * chunk)
                if faces == NULL or counts == NULL:
                    raise MemoryError()
                for i in range(0, n, chunk):
                    m = min(chunk, n - i)
                    with nogil:
                        rc = ssdf_engine_detect_views(e, &cv[i], m, score_threshold,
                                                      iou_threshold, max_faces, faces, counts,
                                                      &err)
                    if rc:
                        break
                    for j in range(m):
                        out.append(_faces_array(faces + <size_t>j * max_faces, counts[j]))
                    PyErr_CheckSignals()
            if rc:
                raise_error(rc, &err)
            return out
        finally:
            free(cv)
            free(faces)
            free(counts)

    def detect(self, image, float score_threshold, float iou_threshold, int max_faces):
        """uint8 image [H,W] / [H,W,C] -> float64 [n, 6] faces (see postprocess)."""
        cdef const unsigned char[:, ::1] rows
        cdef ssdf_face *faces
        cdef ssdf_error err
        cdef int rc = 0, n = 0, h, w, c
        cdef ssdf_engine *e
        image = _check_image(image)
        if max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        max_faces = min(max_faces, _ANCHORS)  # no more boxes exist
        h, w = image.shape[0], image.shape[1]
        c = 1 if image.ndim == 2 else image.shape[2]
        rows = image.reshape(h, -1)
        faces = <ssdf_face *>malloc(sizeof(ssdf_face) * max_faces)
        if faces == NULL:
            raise MemoryError()
        try:
            with self._lock:
                e = self._live()
                with nogil:
                    rc = ssdf_engine_detect(e, &rows[0, 0], h, w, c, w * c,
                                            score_threshold, iou_threshold, max_faces,
                                            faces, &n, &err)
            if rc:
                raise_error(rc, &err)
            return _faces_array(faces, n)
        finally:
            free(faces)

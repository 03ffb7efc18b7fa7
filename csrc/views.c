/* Views, batches and lanes: the calls that build the network input from
 * pixels (ssdf_view), post-process, or run several images, one per thread
 * in its own lane of buffers. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "engine_internal.h"
#include "resize.h"

/* ---- Views ---- */

static int check_view(const ssdf_model *m, const ssdf_view *v, int i, int n, ssdf_error *err) {
    char who[32] = "";
    if (n > 1) snprintf(who, sizeof who, "view %d: ", i);
    if (!v->pixels) return ssdf_fail(err, SSDF_ERR_VALUE, "%sno pixels (NULL)", who);
    if (v->height <= 0 || v->width <= 0)
        return ssdf_fail(err, SSDF_ERR_VALUE, "%simage must not be empty", who);
    if (v->channels != 1 && v->channels != 3 && v->channels != 4)
        return ssdf_fail(err, SSDF_ERR_VALUE, "%simage has %d channels, expected 1, 3 or 4", who,
                         v->channels);
    if (v->row_stride < (ptrdiff_t)v->width * v->channels)
        return ssdf_fail(err, SSDF_ERR_VALUE, "%srow stride %td is less than a row (%d pixels "
                         "of %d bytes)", who, v->row_stride, v->width, v->channels);
    if (!(0 <= v->x0 && v->x0 < v->x1 && v->x1 <= m->input_w && 0 <= v->y0 &&
          v->y0 < v->y1 && v->y1 <= m->input_h))
        return ssdf_fail(err, SSDF_ERR_VALUE, "%sdestination (x0 %d, y0 %d, x1 %d, y1 %d) is "
                         "not a non-empty rectangle inside the %dx%d input", who, v->x0, v->y0,
                         v->x1, v->y1, m->input_w, m->input_h);
    if (v->flip != 0 && v->flip != 1)
        return ssdf_fail(err, SSDF_ERR_VALUE, "%sflip must be 0 or 1, got %d", who, v->flip);
    if (!(v->box_width == 0.0f || (isfinite(v->box_width) && v->box_width > 0.0f)) ||
        !(v->box_height == 0.0f || (isfinite(v->box_height) && v->box_height > 0.0f)))
        return ssdf_fail(err, SSDF_ERR_VALUE, "%sbox frame %g x %g must be positive and finite "
                         "(or 0: network-input pixels)", who, (double)v->box_width,
                         (double)v->box_height);
    return SSDF_OK;
}

static int plan_view(ssdf_resize_plan *plan, const ssdf_view *v, int nthreads, ssdf_error *err) {
    return ssdf_resize_plan_init(plan, v->pixels, v->height, v->width, v->channels, v->row_stride,
                                 v->y1 - v->y0, v->x1 - v->x0, nthreads, err);
}

/* One input row (`width` RGB pixels) mirrored left-right in place. */
static void mirror_row(float *row, int width) {
    for (int i = 0, j = width - 1; i < j; i++, j--)
        for (int c = 0; c < 3; c++) {
            const float t = row[i * 3 + c];
            row[i * 3 + c] = row[j * 3 + c];
            row[j * 3 + c] = t;
        }
}

/* Rows [Y0, Y1) of the network input for view v: the view's resized rows
 * inside its rectangle, 0.0 around it. The plan's prepass must be done. */
static void view_rows(const ssdf_model *m, const ssdf_view *v, const ssdf_resize_plan *plan,
                      const ssdf_kernel_table *k, int Y0, int Y1, int thread, float *input) {
    const size_t row_floats = (size_t)m->input_w * 3;
    const size_t left = (size_t)v->x0 * 3, right = (size_t)v->x1 * 3;
    for (int y = Y0; y < Y1; y++) {
        float *row = input + (size_t)y * row_floats;
        if (y < v->y0 || y >= v->y1) {
            memset(row, 0, row_floats * sizeof(float));
            continue;
        }
        if (left) memset(row, 0, left * sizeof(float));
        if (right < row_floats) memset(row + right, 0, (row_floats - right) * sizeof(float));
    }
    const int a = Y0 > v->y0 ? Y0 : v->y0, b = Y1 < v->y1 ? Y1 : v->y1;
    if (a < b)
        ssdf_resize_rows(plan, k, a - v->y0, b - v->y0, thread,
                         input + (size_t)v->y0 * row_floats + left, row_floats);
    if (v->flip) /* after the resize: mirroring its source would cost a copy */
        for (int y = a; y < b; y++) mirror_row(input + (size_t)y * row_floats, m->input_w);
}

static int postprocess_view(const ssdf_engine *e, const ssdf_view *v, const buffer_set *b,
                            float score_threshold, float iou_threshold, int max_faces,
                            ssdf_face *faces) {
    const float w = v->box_width > 0.0f ? v->box_width : (float)e->model->input_w;
    const float h = v->box_height > 0.0f ? v->box_height : (float)e->model->input_h;
    return ssdf_postprocess(e->model, b->boxes, b->logits, e->anchors, score_threshold, iou_threshold,
                            max_faces, w, h, faces, b->post);
}

typedef struct {
    const ssdf_model *m;
    const ssdf_view *v;
    const ssdf_resize_plan *plan;
    const ssdf_kernel_table *kernels;
    ssdf_pool *pool;
    float *input;
} resize_job;

static void resize_region(void *ctx, int t, int T) {
    const resize_job *job = ctx;
    const size_t items = ssdf_resize_prepass_items(job->plan);
    if (items) { /* horizontal first: its pass, then the rows that read it */
        ssdf_resize_prepass(job->plan, ssdf_split_at(items, t, T),
                            ssdf_split_at(items, t + 1, T), t);
        ssdf_pool_barrier(job->pool);
    }
    const size_t rows = (size_t)job->m->input_h;
    view_rows(job->m, job->v, job->plan, job->kernels, (int)ssdf_split_at(rows, t, T),
              (int)ssdf_split_at(rows, t + 1, T), t, job->input);
}

/* One view split between the threads, on the main buffer set. */
static int view_split(ssdf_engine *e, const ssdf_view *v, float score_threshold,
                      float iou_threshold, int max_faces, ssdf_face *faces, int *count,
                      ssdf_error *err) {
    ssdf_resize_plan plan;
    int rc = plan_view(&plan, v, e->nthreads, err);
    if (rc) return rc;
    resize_job job = {e->model, v, &plan, e->kernels, e->pool, e->main.input};
    rc = ssdf_pool_run(e->pool, resize_region, &job);
    ssdf_resize_plan_free(&plan);
    if (rc) return ssdf_fail(err, SSDF_ERR_THREADS, RESTART_FAILED);
    /* The input is a resize of bytes: always finite, no check needed. */
    rc = ssdf_engine_run_split(e, e->main.input, e->main.boxes, e->main.logits, NULL, NULL, err);
    if (rc) return rc;
    *count = postprocess_view(e, v, &e->main, score_threshold, iou_threshold, max_faces, faces);
    return SSDF_OK;
}

/* ---- Lanes: one image per thread ---- */

typedef struct {
    ssdf_engine *e;
    size_t n;
    atomic_size_t next; /* the next image to take */
    atomic_int failed;  /* an error was recorded: take no more images */
    int rc;             /* the first error, written by the thread that set failed */
    ssdf_error err;
    /* forward_batch */
    const float *inputs;
    float *boxes, *logits;
    /* detect_views */
    const ssdf_view *views;
    float score_threshold, iou_threshold;
    int max_faces;
    ssdf_face *faces;
    int *counts;
} batch_job;

static void record_failure(batch_job *job, int rc, const ssdf_error *err) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&job->failed, &expected, 1)) {
        job->rc = rc;
        job->err = *err;
    }
}

/* View i on thread t, in lane t. */
static int view_in_lane(batch_job *job, size_t i, int t, ssdf_error *err) {
    ssdf_engine *e = job->e;
    const ssdf_view *v = &job->views[i];
    const buffer_set *b = &e->lanes[t];
    ssdf_resize_plan plan;
    int rc = plan_view(&plan, v, 1, err);
    if (rc) return rc;
    ssdf_resize_prepass(&plan, 0, ssdf_resize_prepass_items(&plan), 0);
    view_rows(e->model, v, &plan, e->kernels, 0, e->model->input_h, 0, b->input);
    ssdf_resize_plan_free(&plan);
    const forward_job fj = {e, b, b->input, b->boxes, b->logits, NULL};
    ssdf_engine_run_layers(&fj, 0, 1, e->scratch[t]);
    job->counts[i] = postprocess_view(e, v, b, job->score_threshold, job->iou_threshold,
                                      job->max_faces, job->faces + i * (size_t)job->max_faces);
    return SSDF_OK;
}

/* Every thread takes images from the shared counter until there are none
 * left (or one failed), and runs each whole in its own lane. No barrier:
 * a thread that finds no work returns, and the region ends when all have. */
static void lanes_region(void *ctx, int t, int T) {
    batch_job *job = ctx;
    ssdf_engine *e = job->e;
    (void)T;
    while (!atomic_load_explicit(&job->failed, memory_order_relaxed)) {
        const size_t i = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (i >= job->n) return;
        if (job->views) {
            ssdf_error err;
            const int rc = view_in_lane(job, i, t, &err);
            if (rc) record_failure(job, rc, &err);
        } else {
            const ssdf_model *m = e->model;
            const forward_job fj = {e, &e->lanes[t],
                                    job->inputs + i * ssdf_model_input_floats(m),
                                    job->boxes + i * ssdf_model_box_floats(m),
                                    job->logits + i * ssdf_model_logit_floats(m), NULL};
            ssdf_engine_run_layers(&fj, 0, 1, e->scratch[t]);
        }
    }
}

static int run_lanes(batch_job *job, ssdf_error *err) {
    int rc = ssdf_engine_ensure_lanes(job->e, err);
    if (rc) return rc;
    atomic_init(&job->next, 0);
    atomic_init(&job->failed, 0);
    if (ssdf_pool_run(job->e->pool, lanes_region, job) != 0)
        return ssdf_fail(err, SSDF_ERR_THREADS, RESTART_FAILED);
    /* ssdf_pool_run returns once every thread has left the region (acquire
     * on the workers' release): the recorded error is visible here. */
    if (atomic_load(&job->failed)) {
        if (err) *err = job->err;
        return job->rc;
    }
    return SSDF_OK;
}

static int use_lanes(const ssdf_engine *e, int n) { return n >= 2 && e->nthreads >= 2; }

int ssdf_engine_forward_batch(ssdf_engine *e, const float *inputs, int n, float *boxes,
                              float *logits, ssdf_error *err) {
    if (n < 0) return ssdf_fail(err, SSDF_ERR_VALUE, "batch size %d is negative", n);
    if (use_lanes(e, n)) { /* every input checked first: the lanes run images at once */
        for (int i = 0; i < n; i++) {
            const float *input = inputs + (size_t)i * ssdf_model_input_floats(e->model);
            const int rc = ssdf_engine_check_finite(e->model, input, i, n, err);
            if (rc) return rc;
        }
        batch_job job = {0};
        job.e = e;
        job.n = (size_t)n;
        job.inputs = inputs;
        job.boxes = boxes;
        job.logits = logits;
        return run_lanes(&job, err);
    }
    for (int i = 0; i < n; i++) {
        const int rc = ssdf_engine_run_checked(
            e, inputs + (size_t)i * ssdf_model_input_floats(e->model),
            boxes + (size_t)i * ssdf_model_box_floats(e->model),
            logits + (size_t)i * ssdf_model_logit_floats(e->model), NULL, i, n, err);
        if (rc) return rc;
    }
    return SSDF_OK;
}

int ssdf_engine_detect_views(ssdf_engine *e, const ssdf_view *views, int n,
                             float score_threshold, float iou_threshold, int max_faces,
                             ssdf_face *faces, int *counts, ssdf_error *err) {
    if (n < 0) return ssdf_fail(err, SSDF_ERR_VALUE, "view count %d is negative", n);
    if (max_faces < 1) return ssdf_fail(err, SSDF_ERR_VALUE, "max_faces must be >= 1");
    for (int i = 0; i < n; i++) {
        const int rc = check_view(e->model, &views[i], i, n, err);
        if (rc) return rc;
    }
    if (use_lanes(e, n)) {
        batch_job job = {0};
        job.e = e;
        job.n = (size_t)n;
        job.views = views;
        job.score_threshold = score_threshold;
        job.iou_threshold = iou_threshold;
        job.max_faces = max_faces;
        job.faces = faces;
        job.counts = counts;
        return run_lanes(&job, err);
    }
    for (int i = 0; i < n; i++) {
        const int rc = view_split(e, &views[i], score_threshold, iou_threshold, max_faces,
                                  faces + (size_t)i * max_faces, &counts[i], err);
        if (rc) return rc;
    }
    return SSDF_OK;
}

int ssdf_engine_detect(ssdf_engine *e, const unsigned char *image, int height, int width,
                       int channels, ptrdiff_t row_stride, float score_threshold,
                       float iou_threshold, int max_faces, ssdf_face *faces, int *n_faces,
                       ssdf_error *err) {
    const ssdf_view view = {image, height, width, channels, row_stride, 0, 0, e->model->input_w,
                            e->model->input_h, (float)width, (float)height};
    return ssdf_engine_detect_views(e, &view, 1, score_threshold, iou_threshold, max_faces,
                                    faces, n_faces, err);
}

#include "postprocess.h"

#include <math.h>
#include <stdlib.h>

void ssdf_decode_box(const float scales[4], const float enc[4], const float anchor[4],
                     float box[4]) {
    const float yc = enc[0] / scales[0] * anchor[2] + anchor[0];
    const float xc = enc[1] / scales[1] * anchor[3] + anchor[1];
    const float h = expf(enc[2] / scales[2]) * anchor[2];
    const float w = expf(enc[3] / scales[3]) * anchor[3];
    box[0] = yc - 0.5f * h;
    box[1] = xc - 0.5f * w;
    box[2] = yc + 0.5f * h;
    box[3] = xc + 0.5f * w;
}

typedef struct {
    float score;
    int anchor;
} candidate;

static int by_score_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->anchor - y->anchor;
}

static float area(const float *b) {
    const float h = b[2] - b[0], w = b[3] - b[1];
    return (h > 0.0f ? h : 0.0f) * (w > 0.0f ? w : 0.0f);
}

static float iou(const float *a, const float *b) {
    const float ih = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
    const float iw = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    const float inter = (ih > 0.0f ? ih : 0.0f) * (iw > 0.0f ? iw : 0.0f);
    const float uni = area(a) + area(b) - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

static int all_finite4(const float *v) {
    return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]) && isfinite(v[3]);
}

static float clip(float v, float hi) { return v < 0.0f ? 0.0f : (v > hi ? hi : v); }

/* The scratch: the kept boxes (normalised), then the candidates. */
size_t ssdf_postprocess_scratch_bytes(const ssdf_model *m) {
    return (sizeof(float[4]) + sizeof(candidate)) * (size_t)m->num_anchors;
}

int ssdf_postprocess(const ssdf_model *m, const float *boxes, const float *logits, const float *anchors,
                     float score_threshold, float iou_threshold, int max_faces, float width,
                     float height, ssdf_face *faces, void *scratch) {
    float(*kept)[4] = scratch;
    candidate *cand = (candidate *)((char *)scratch + sizeof(float[4]) * (size_t)m->num_anchors);
    const size_t nc = (size_t)m->num_classes, bs = (size_t)m->box_size;
    int n_cand = 0, n_kept = 0;

    for (int i = 0; i < m->num_anchors; i++) {
        const float score = 1.0f / (1.0f + expf(-logits[nc * i + m->score_class]));
        if (score >= score_threshold) cand[n_cand++] = (candidate){score, i};
    }
    qsort(cand, (size_t)n_cand, sizeof *cand, by_score_desc);

    for (int c = 0; c < n_cand && n_kept < max_faces; c++) {
        float box[4];
        int suppressed = 0;
        const float *enc = boxes + bs * cand[c].anchor;
        ssdf_decode_box(m->box_scales, enc, anchors + 4 * cand[c].anchor, box);
        /* A non-finite encoding, or one whose exp overflows, is no box. */
        if (!(all_finite4(enc) && all_finite4(box))) continue;
        for (int k = 0; k < n_kept && !suppressed; k++) suppressed = iou(box, kept[k]) > iou_threshold;
        if (suppressed) continue;
        kept[n_kept][0] = box[0], kept[n_kept][1] = box[1];
        kept[n_kept][2] = box[2], kept[n_kept][3] = box[3];
        faces[n_kept] = (ssdf_face){clip(box[1] * width, width), clip(box[0] * height, height),
                                    clip(box[3] * width, width), clip(box[2] * height, height),
                                    cand[c].score, cand[c].anchor};
        n_kept++;
    }
    return n_kept;
}

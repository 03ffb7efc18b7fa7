#include "postprocess.h"

#include <math.h>
#include <stdlib.h>

/* Scales s_0..s_6 for the six grids, MODEL.md "Anchors". */
static double anchor_scale(int i) { return i >= 6 ? 1.0 : 0.2 + (0.95 - 0.2) * i / 5.0; }

void ssdf_anchors(const ssdf_graph *g, float *anchors) {
    static const double ratios[5] = {1.0, 2.0, 0.5, 3.0, 0.3333};
    int n = 0;
    for (int i = 0; i < SSDF_NUM_FEATURE_MAPS; i++) {
        const int grid = g->grid[i];
        double scale[6], ratio[6];
        int per_cell;
        if (i == 0) {
            scale[0] = 0.1, ratio[0] = 1.0;
            scale[1] = anchor_scale(0), ratio[1] = 2.0;
            scale[2] = anchor_scale(0), ratio[2] = 0.5;
            per_cell = 3;
        } else {
            for (int r = 0; r < 5; r++) scale[r] = anchor_scale(i), ratio[r] = ratios[r];
            scale[5] = sqrt(anchor_scale(i) * anchor_scale(i + 1)), ratio[5] = 1.0;
            per_cell = 6;
        }
        for (int y = 0; y < grid; y++)
            for (int x = 0; x < grid; x++)
                for (int a = 0; a < per_cell; a++, n++) {
                    anchors[4 * n + 0] = (float)((y + 0.5) / grid);
                    anchors[4 * n + 1] = (float)((x + 0.5) / grid);
                    anchors[4 * n + 2] = (float)(scale[a] / sqrt(ratio[a]));
                    anchors[4 * n + 3] = (float)(scale[a] * sqrt(ratio[a]));
                }
    }
}

void ssdf_decode_box(const float enc[4], const float anchor[4], float box[4]) {
    const float yc = enc[0] / 10.0f * anchor[2] + anchor[0];
    const float xc = enc[1] / 10.0f * anchor[3] + anchor[1];
    const float h = expf(enc[2] / 5.0f) * anchor[2];
    const float w = expf(enc[3] / 5.0f) * anchor[3];
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
size_t ssdf_postprocess_scratch_bytes(void) {
    return sizeof(float[4]) * SSDF_NUM_ANCHORS + sizeof(candidate) * SSDF_NUM_ANCHORS;
}

int ssdf_postprocess(const float *boxes, const float *logits, const float *anchors,
                     float score_threshold, float iou_threshold, int max_faces, float width,
                     float height, ssdf_face *faces, void *scratch) {
    float(*kept)[4] = scratch;
    candidate *cand = (candidate *)((char *)scratch + sizeof(float[4]) * SSDF_NUM_ANCHORS);
    int n_cand = 0, n_kept = 0;

    for (int i = 0; i < SSDF_NUM_ANCHORS; i++) {
        const float score = 1.0f / (1.0f + expf(-logits[2 * i + 1]));
        if (score >= score_threshold) cand[n_cand++] = (candidate){score, i};
    }
    qsort(cand, (size_t)n_cand, sizeof *cand, by_score_desc);

    for (int c = 0; c < n_cand && n_kept < max_faces; c++) {
        float box[4];
        int suppressed = 0;
        const float *enc = boxes + 4 * cand[c].anchor;
        ssdf_decode_box(enc, anchors + 4 * cand[c].anchor, box);
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

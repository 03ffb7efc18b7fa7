#include "fuse.h"

#include <string.h>

int ssdf_fuse_readers(const ssdf_model *m, int l) {
    int n = 0;
    for (int r = 0; r < m->n_layers; r++) n += (m->layers[r].src == l) + (m->layers[r].res == l);
    return n;
}

/* Whether layer l's output may stay unmaterialised inside a block: an
 * activation (not a model output) whose only reader is the next layer. */
static int feeds_only_next(const ssdf_model *m, int l) {
    return m->layers[l].output == SSDF_OUTPUT_NONE && l + 1 < m->n_layers &&
           m->layers[l + 1].src == l && ssdf_fuse_readers(m, l) == 1;
}

int ssdf_fuse_block_at(const ssdf_model *m, int l) {
    if (l + 2 >= m->n_layers) return 0;
    const ssdf_layer *P = &m->layers[l], *D = P + 1, *J = P + 2;
    /* What the block kernel runs: a 1x1 producer, or a 3x3 one small
     * enough for its direct path; a depthwise 3x3; a 1x1 project into an
     * activation. */
    const int producer_ok =
        P->op == SSDF_OP_CONV1X1 ||
        (P->op == SSDF_OP_CONV3X3 && 9 * P->in_c <= SSDF_DIRECT_MAX_K);
    if (!producer_ok || D->op != SSDF_OP_DW3X3 || J->op != SSDF_OP_CONV1X1 ||
        J->output != SSDF_OUTPUT_NONE)
        return 0;
    if (!feeds_only_next(m, l) || !feeds_only_next(m, l + 1)) return 0;
    const size_t bytes = (size_t)P->out_h * P->out_w * P->out_c * sizeof(float);
    return bytes > SSDF_FUSE_MIN_BYTES;
}

/* Index of the last layer reading layer l's output (l itself if none). */
static int last_use(const ssdf_model *m, int l) {
    int last = l;
    for (int r = l + 1; r < m->n_layers; r++)
        if (m->layers[r].src == l || m->layers[r].res == l) last = r;
    return last;
}

static int value_buffer(const int *buf_of, int v) {
    if (v == SSDF_VALUE_NONE) return SSDF_BUF_NONE;
    if (v == SSDF_VALUE_INPUT) return SSDF_BUF_INPUT;
    return buf_of[v];
}

int ssdf_plan_build(const ssdf_model *m, int fuse, ssdf_plan *p) {
    int buf_of[SSDF_MAX_LAYERS];
    int holder[SSDF_MAX_SLOTS]; /* layer whose output a slot holds, or -1 */
    memset(p, 0, sizeof *p);
    for (int s = 0; s < SSDF_MAX_SLOTS; s++) holder[s] = -1;
    for (int l = 0; l < m->n_layers;) {
        const int count = fuse && ssdf_fuse_block_at(m, l) ? 3 : 1;
        p->steps[p->n_steps++] = (ssdf_step){l, count};
        for (int i = 0; i < count; i++) {
            const ssdf_layer *L = &m->layers[l + i];
            const size_t floats = (size_t)L->out_h * L->out_w * L->out_c;
            ssdf_binding *b = &p->bind[l + i];
            b->dst_offset = L->output_offset;
            if (L->output == SSDF_OUTPUT_BOXES) {
                b->dst = SSDF_BUF_BOXES;
            } else if (L->output == SSDF_OUTPUT_CLASSES) {
                b->dst = SSDF_BUF_CLASSES;
            } else if (i < count - 1) { /* a fused block's intermediate */
                b->dst = SSDF_BUF_SPILL0 + i;
                if (floats > p->spill_floats[i]) p->spill_floats[i] = floats;
            } else {
                /* The lowest slot whose value no layer of this step or later
                 * reads: the step's inputs stay intact while it runs. */
                int s = 0;
                while (s < SSDF_MAX_SLOTS && holder[s] >= 0 && last_use(m, holder[s]) >= l) s++;
                if (s == SSDF_MAX_SLOTS) return -1;
                holder[s] = l + i;
                b->dst = SSDF_BUF_SLOT0 + s;
                if (s + 1 > p->n_slots) p->n_slots = s + 1;
                if (floats > p->slot_floats[s]) p->slot_floats[s] = floats;
            }
            buf_of[l + i] = b->dst;
            b->src = value_buffer(buf_of, L->src);
            b->res = value_buffer(buf_of, L->res);
        }
        l += count;
    }
    return 0;
}

ssdf_conv_params ssdf_layer_params(const ssdf_layer *L) {
    const ssdf_conv_params p = {L->in_h,  L->in_w,   L->in_c,    L->out_h,    L->out_w,
                                L->out_c, L->stride, L->pad_top, L->pad_left, L->relu6};
    return p;
}

ssdf_f32_block ssdf_block_shape(const ssdf_model *m, int first) {
    const ssdf_layer *P = &m->layers[first];
    ssdf_f32_block b;
    memset(&b, 0, sizeof b);
    b.producer_k = P->op == SSDF_OP_CONV3X3 ? 3 : 1;
    b.producer = ssdf_layer_params(P);
    b.dw = ssdf_layer_params(P + 1);
    b.project = ssdf_layer_params(P + 2);
    return b;
}

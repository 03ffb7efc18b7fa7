/* What a model is, as data: its input size, its layer table (the engine runs
 * it in order), the weight tensors the layers read, its outputs (anchors x
 * box encodings and anchors x class logits) and the specification of its
 * anchors and box coder. A model is defined by one file in models/, which
 * fills an ssdf_model; nothing else in the core knows any network's shape,
 * sizes or tensor names. */
#ifndef SSDF_MODEL_H
#define SSDF_MODEL_H

#include <stddef.h>

/* Capacities of the description (not properties of any model). */
#define SSDF_MAX_TENSORS 160
#define SSDF_MAX_LAYERS 80
#define SSDF_NUM_SLOTS 3
#define SSDF_TENSOR_NAME_MAX 88
#define SSDF_MODEL_NAME_MAX 32
#define SSDF_MAX_GRIDS 8
#define SSDF_MAX_ANCHORS_PER_CELL 8
/* A block runs fused when its expanded tensor is larger than this; smaller
 * ones are faster as whole-tensor GEMMs, whose tiles are fuller and whose
 * threads split channels instead of recomputing rows. */
#define SSDF_FUSE_MIN_BYTES (1024 * 1024)

/* How a weight tensor is laid out in the blob (see pack.c). */
typedef enum {
    SSDF_KIND_BIAS = 1,     /* [C] */
    SSDF_KIND_CONV3X3 = 2,  /* source OHWI [O,3,3,I] */
    SSDF_KIND_DW3X3 = 3,    /* source [1,3,3,C] */
    SSDF_KIND_CONV1X1 = 4,  /* source OHWI [O,1,1,I] */
} ssdf_tensor_kind;

typedef struct {
    char name[SSDF_TENSOR_NAME_MAX]; /* file name of the .npy without extension */
    int kind;
    int ndim;
    int shape[4]; /* source shape, as in the .npy file */
} ssdf_tensor_spec;

typedef enum {
    SSDF_OP_CONV3X3 = 1, /* full 3x3 conv, TF SAME padding */
    SSDF_OP_DW3X3 = 2,   /* depthwise 3x3 conv, TF SAME padding */
    SSDF_OP_CONV1X1 = 3, /* pointwise conv: a GEMM over pixels */
} ssdf_op;

/* Where a layer reads or writes: one of the arena slots, the network input,
 * or one of the two output arrays (the heads write straight into them). */
typedef enum {
    SSDF_BUF_NONE = -1,
    SSDF_BUF_SLOT0 = 0, /* SLOT0 + k for slot k */
    /* The two intermediates of a fused block (producer and depthwise
     * outputs): only materialised when kernels without fusion run it. */
    SSDF_BUF_SPILL0 = 8,
    SSDF_BUF_SPILL1 = 9,
    SSDF_BUF_INPUT = 16,
    SSDF_BUF_BOXES = 17,
    SSDF_BUF_CLASSES = 18,
} ssdf_buffer;

typedef struct {
    int op;
    int stride;
    int relu6;
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int pad_top, pad_left; /* TF SAME: smaller half of the total pad first */
    int src, dst, res;     /* ssdf_buffer ids; res is SSDF_BUF_NONE without residual */
    size_t dst_offset;     /* in floats; used for the head outputs */
    int weight, bias;      /* indices into the tensor table */
    int fuse_next;         /* this layer's output feeds only the next one, in a
                              fused block: producer -> depthwise -> project */
} ssdf_layer;

/* One feature-map grid of anchors: size x size cells, each with per_cell
 * anchors of (scale, aspect ratio); an anchor of scale s and ratio r has
 * height s / sqrt(r) and width s * sqrt(r) in units of the square input,
 * and is centred on its cell. Anchors are flattened grid by grid, then row,
 * column, anchor (anchor fastest): the NHWC order of the head outputs. */
typedef struct {
    int size;
    int per_cell;
    double scale[SSDF_MAX_ANCHORS_PER_CELL];
    double ratio[SSDF_MAX_ANCHORS_PER_CELL];
} ssdf_anchor_grid;

typedef struct {
    char name[SSDF_MODEL_NAME_MAX + 1]; /* stored in (and checked against) the blob */
    int input_h, input_w, input_c;      /* the network input, HWC float32 */
    /* Outputs: num_anchors x box_size box encodings and num_anchors x
     * num_classes logits; a detection's score is sigmoid(logit[score_class]). */
    int num_anchors;
    int box_size, num_classes, score_class;
    /* Faster R-CNN box coder: (ty, tx, th, tw) are divided by these. */
    float box_scales[4];
    int n_grids;
    ssdf_anchor_grid grids[SSDF_MAX_GRIDS];

    ssdf_tensor_spec tensors[SSDF_MAX_TENSORS];
    int n_tensors;
    ssdf_layer layers[SSDF_MAX_LAYERS];
    int n_layers;
    size_t slot_floats[SSDF_NUM_SLOTS]; /* capacity each arena slot needs */
    size_t spill_floats[2];             /* capacity of the spill buffers */
} ssdf_model;

/* The model this build runs (defined by the file in models/; built once,
 * immutable afterwards). */
const ssdf_model *ssdf_model_builtin(void);

/* Floats of one network input, and of the two outputs. */
static inline size_t ssdf_model_input_floats(const ssdf_model *m) {
    return (size_t)m->input_h * m->input_w * m->input_c;
}
static inline size_t ssdf_model_box_floats(const ssdf_model *m) {
    return (size_t)m->num_anchors * m->box_size;
}
static inline size_t ssdf_model_logit_floats(const ssdf_model *m) {
    return (size_t)m->num_anchors * m->num_classes;
}

/* Index of the bias tensor of the layer whose weights are tensor `weight`,
 * or -1 when `weight` is not a layer's weights. */
int ssdf_model_bias_of(const ssdf_model *m, int weight);

/* Index of the tensor with this name, or -1. */
int ssdf_model_find_tensor(const ssdf_model *m, const char *name);

/* TF SAME padding: output size and the pad before the first row/column. */
int ssdf_same_out(int in, int stride);
int ssdf_same_pad_before(int in, int out, int k, int stride);

#endif

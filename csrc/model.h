/* What a model is, as data: its input size, its layer table (in execution
 * order; fuse.h plans how the engine runs it), the weight tensors the layers read, its outputs (anchors x
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
#define SSDF_TENSOR_NAME_MAX 88
#define SSDF_LAYER_SCOPE_MAX 64
#define SSDF_MODEL_NAME_MAX 32
#define SSDF_MAX_GRIDS 8
#define SSDF_MAX_ANCHORS_PER_CELL 8

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

/* What a layer reads: the output of layer i (i >= 0, an earlier layer), the
 * network input, or nothing (a residual that is absent). */
enum { SSDF_VALUE_NONE = -1, SSDF_VALUE_INPUT = -2 };

/* Where a layer's output goes: an activation (read by later layers), or a
 * slice of one of the two model outputs (the heads write straight there). */
typedef enum {
    SSDF_OUTPUT_NONE = 0,
    SSDF_OUTPUT_BOXES = 1,
    SSDF_OUTPUT_CLASSES = 2,
} ssdf_output;

typedef struct {
    int op;
    int stride;
    int relu6;
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int pad_top, pad_left; /* TF SAME: smaller half of the total pad first */
    int src, res;          /* values read (SSDF_VALUE_*, or a layer index); res is
                              added to the output (1x1 only), SSDF_VALUE_NONE if none */
    int output;            /* ssdf_output */
    size_t output_offset;  /* in floats, into the model output */
    int weight, bias;      /* indices into the tensor table */
    /* The layer's name scope in the source TF model, '/'-separated (e.g.
     * "FeatureExtractor/MobilenetV2/expanded_conv_1/expand"): exporters name
     * the layer's activation after it. */
    char scope[SSDF_LAYER_SCOPE_MAX];
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

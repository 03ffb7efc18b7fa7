/* The SSD MobileNetV2 face network as data: a flat table of layers built from
 * the MobileNetV2 block configuration, plus the table of weight tensors the
 * layers read. The engine runs the layer table in order; nothing else in the
 * core knows the network's shape. */
#ifndef SSDF_GRAPH_H
#define SSDF_GRAPH_H

#include <stddef.h>

#define SSDF_INPUT_SIZE 300
#define SSDF_NUM_ANCHORS 1917
#define SSDF_NUM_FEATURE_MAPS 6
#define SSDF_MAX_TENSORS 160
#define SSDF_MAX_LAYERS 80
#define SSDF_NUM_SLOTS 3
#define SSDF_TENSOR_NAME_MAX 88
/* A block runs fused when its expanded tensor is larger than this; smaller
 * ones (the 10x10 blocks) are faster as whole-tensor GEMMs, whose tiles are
 * fuller and whose threads split channels instead of recomputing rows. */
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

typedef struct {
    ssdf_tensor_spec tensors[SSDF_MAX_TENSORS];
    int n_tensors;
    ssdf_layer layers[SSDF_MAX_LAYERS];
    int n_layers;
    size_t slot_floats[SSDF_NUM_SLOTS]; /* capacity each arena slot needs */
    size_t spill_floats[2];             /* capacity of the spill buffers */
    int grid[SSDF_NUM_FEATURE_MAPS];     /* feature map sizes: 19, 10, 5, 3, 2, 1 */
    int anchors_per_cell[SSDF_NUM_FEATURE_MAPS];
} ssdf_graph;

/* The graph is built once and shared (it is immutable afterwards). */
const ssdf_graph *ssdf_graph_get(void);

/* Index of the bias tensor of the layer whose weights are tensor `weight`,
 * or -1 when `weight` is not a layer's weights. */
int ssdf_graph_bias_of(const ssdf_graph *g, int weight);

/* Index of the tensor with this name, or -1. */
int ssdf_graph_find_tensor(const ssdf_graph *g, const char *name);

/* TF SAME padding: output size and the pad before the first row/column. */
int ssdf_same_out(int in, int stride);
int ssdf_same_pad_before(int in, int out, int k, int stride);

#endif

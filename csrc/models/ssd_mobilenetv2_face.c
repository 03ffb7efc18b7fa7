/* SSD MobileNetV2 face (docs: MODEL.md): the only file that knows this
 * network. It builds the model description (model.h): the flat layer table
 * from the MobileNetV2 block configuration, the weight tensors' names and
 * shapes, the 300x300 input, the 1917 anchors' specification and the box
 * coder. */
#include "model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "FeatureExtractor/MobilenetV2/"

/* MobileNetV2 inverted residual blocks 0..16: expansion width (0 = no expand
 * layer), output channels and depthwise stride. */
static const struct { int expand, out, stride; } BLOCKS[17] = {
    {0, 16, 1},    {96, 24, 2},   {144, 24, 1},  {144, 32, 2},  {192, 32, 1},  {192, 32, 1},
    {192, 64, 2},  {384, 64, 1},  {384, 64, 1},  {384, 64, 1},  {384, 96, 1},  {576, 96, 1},
    {576, 96, 1},  {576, 160, 2}, {960, 160, 1}, {960, 160, 1}, {960, 320, 1},
};

/* SSD extra layers 2..5: 1x1 reduction width, then 3x3 stride-2 output. */
static const struct { int mid, out; } EXTRAS[4] = {{256, 512}, {128, 256}, {128, 256}, {64, 128}};

#define INPUT_SIZE 300
#define NUM_GRIDS 6

typedef struct {
    ssdf_model *g;
    int h, w, c;         /* shape of the current activation */
    int cur;             /* the value holding it (model.h: a layer index, or the input) */
    int anchor_offset;   /* anchors emitted so far by the heads */
} builder;

static int add_tensor(ssdf_model *g, const char *name, int kind, int ndim, int d0, int d1, int d2,
                      int d3) {
    ssdf_tensor_spec *t = &g->tensors[g->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->shape[3] = d3;
    return g->n_tensors++;
}

/* The names of a layer's weight tensors (the .npy files), as the converter
 * named the source model's variables: the layer's TF scope with '/' written
 * '_', then "_weights" and "_Conv2D_bias" ("_depthwise_weights" and
 * "_depthwise_bias" for a depthwise layer). */
_Static_assert(SSDF_LAYER_SCOPE_MAX - 1 + sizeof "_depthwise_weights" <= SSDF_TENSOR_NAME_MAX,
               "every scope's tensor names fit a tensor name");
static void tensor_names(const char *scope, int depthwise, char *weights, char *bias) {
    char prefix[SSDF_LAYER_SCOPE_MAX];
    snprintf(prefix, sizeof prefix, "%s", scope);
    for (char *c = prefix; *c; c++)
        if (*c == '/') *c = '_';
    snprintf(weights, SSDF_TENSOR_NAME_MAX, "%s%s", prefix,
             depthwise ? "_depthwise_weights" : "_weights");
    snprintf(bias, SSDF_TENSOR_NAME_MAX, "%s%s", prefix,
             depthwise ? "_depthwise_bias" : "_Conv2D_bias");
}

/* Append a layer reading the current activation (and adding `res`, a value,
 * when not SSDF_VALUE_NONE), named by its TF scope (which names its weight
 * tensors: tensor_names); the layer's output becomes the current activation
 * unless it goes to a model output. */
static ssdf_layer *add_layer(builder *b, int op, int out_c, int stride, int relu6, int output,
                             int res, const char *scope) {
    ssdf_model *g = b->g;
    ssdf_layer *L = &g->layers[g->n_layers++];
    int k = op == SSDF_OP_CONV1X1 ? 1 : 3;
    char weights[SSDF_TENSOR_NAME_MAX], bias[SSDF_TENSOR_NAME_MAX];
    memset(L, 0, sizeof *L);
    L->op = op;
    L->stride = stride;
    L->relu6 = relu6;
    L->in_h = b->h;
    L->in_w = b->w;
    L->in_c = b->c;
    L->out_h = ssdf_same_out(b->h, stride);
    L->out_w = ssdf_same_out(b->w, stride);
    L->out_c = out_c;
    L->pad_top = ssdf_same_pad_before(L->in_h, L->out_h, k, stride);
    L->pad_left = ssdf_same_pad_before(L->in_w, L->out_w, k, stride);
    L->src = b->cur;
    L->output = output;
    L->res = res;
    snprintf(L->scope, sizeof L->scope, "%s", scope);
    tensor_names(L->scope, op == SSDF_OP_DW3X3, weights, bias);
    switch (op) {
    case SSDF_OP_CONV3X3:
        L->weight = add_tensor(g, weights, SSDF_KIND_CONV3X3, 4, out_c, 3, 3, b->c);
        break;
    case SSDF_OP_DW3X3:
        L->weight = add_tensor(g, weights, SSDF_KIND_DW3X3, 4, 1, 3, 3, b->c);
        break;
    default:
        L->weight = add_tensor(g, weights, SSDF_KIND_CONV1X1, 4, out_c, 1, 1, b->c);
        break;
    }
    L->bias = add_tensor(g, bias, SSDF_KIND_BIAS, 1, out_c, 0, 0, 0);
    if (output == SSDF_OUTPUT_NONE) {
        b->h = L->out_h;
        b->w = L->out_w;
        b->c = out_c;
        b->cur = g->n_layers - 1;
    }
    return L;
}

/* Box and class heads of feature map `i`: two linear 1x1 convs that write
 * their NHWC output straight into the concatenated output arrays. */
/* Scales s_0..s_6 of the six grids, MODEL.md "Anchors". */
static double anchor_scale(int i) { return i >= NUM_GRIDS ? 1.0 : 0.2 + (0.95 - 0.2) * i / 5.0; }

/* Grid i's anchors: 3 per cell on grid 0, (0.1, 1.0), (s_0, 2.0) and
 * (s_0, 0.5); 6 on the others, (s_i, r) for the five ratios, then
 * (sqrt(s_i * s_{i+1}), 1.0). */
static int set_grid(ssdf_anchor_grid *a, int i, int size) {
    static const double ratios[5] = {1.0, 2.0, 0.5, 3.0, 0.3333};
    a->size = size;
    if (i == 0) {
        a->scale[0] = 0.1, a->ratio[0] = 1.0;
        a->scale[1] = anchor_scale(0), a->ratio[1] = 2.0;
        a->scale[2] = anchor_scale(0), a->ratio[2] = 0.5;
        a->per_cell = 3;
    } else {
        for (int r = 0; r < 5; r++) a->scale[r] = anchor_scale(i), a->ratio[r] = ratios[r];
        a->scale[5] = sqrt(anchor_scale(i) * anchor_scale(i + 1)), a->ratio[5] = 1.0;
        a->per_cell = 6;
    }
    return a->per_cell;
}

static void add_heads(builder *b, int i) {
    char scope[SSDF_LAYER_SCOPE_MAX];
    ssdf_layer *L;
    const int anchors = set_grid(&b->g->grids[i], i, b->h);
    b->g->n_grids = i + 1;
    snprintf(scope, sizeof scope, "BoxPredictor_%d/BoxEncodingPredictor", i);
    L = add_layer(b, SSDF_OP_CONV1X1, anchors * 4, 1, 0, SSDF_OUTPUT_BOXES, SSDF_VALUE_NONE, scope);
    L->output_offset = (size_t)b->anchor_offset * 4;
    snprintf(scope, sizeof scope, "BoxPredictor_%d/ClassPredictor", i);
    L = add_layer(b, SSDF_OP_CONV1X1, anchors * 2, 1, 0, SSDF_OUTPUT_CLASSES, SSDF_VALUE_NONE, scope);
    L->output_offset = (size_t)b->anchor_offset * 2;
    b->anchor_offset += b->h * b->w * anchors;
}

static void build(ssdf_model *g) {
    builder b = {g, INPUT_SIZE, INPUT_SIZE, 3, SSDF_VALUE_INPUT, 0};
    char scope[SSDF_LAYER_SCOPE_MAX], blk[48];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "ssd_mobilenetv2_face");
    g->input_h = g->input_w = INPUT_SIZE;
    g->input_c = 3;
    g->box_size = 4;
    g->num_classes = 2; /* background, face */
    g->score_class = 1;
    g->box_scales[0] = g->box_scales[1] = 10.0f;
    g->box_scales[2] = g->box_scales[3] = 5.0f;

    add_layer(&b, SSDF_OP_CONV3X3, 32, 2, 1, SSDF_OUTPUT_NONE, SSDF_VALUE_NONE, PREFIX "Conv");

    for (int n = 0; n < 17; n++) {
        int x = b.cur; /* block input, kept for the residual */
        int residual = BLOCKS[n].stride == 1 && b.c == BLOCKS[n].out;
        if (n == 0)
            snprintf(blk, sizeof blk, PREFIX "expanded_conv");
        else
            snprintf(blk, sizeof blk, PREFIX "expanded_conv_%d", n);
        if (BLOCKS[n].expand) {
            snprintf(scope, sizeof scope, "%s/expand", blk);
            add_layer(&b, SSDF_OP_CONV1X1, BLOCKS[n].expand, 1, 1, SSDF_OUTPUT_NONE,
                      SSDF_VALUE_NONE, scope);
            if (n == 13) add_heads(&b, 0); /* its expansion is feature map 0 */
        }
        snprintf(scope, sizeof scope, "%s/depthwise", blk);
        add_layer(&b, SSDF_OP_DW3X3, b.c, BLOCKS[n].stride, 1, SSDF_OUTPUT_NONE,
                  SSDF_VALUE_NONE, scope);
        snprintf(scope, sizeof scope, "%s/project", blk);
        add_layer(&b, SSDF_OP_CONV1X1, BLOCKS[n].out, 1, 0, SSDF_OUTPUT_NONE,
                  residual ? x : SSDF_VALUE_NONE, scope);
    }

    add_layer(&b, SSDF_OP_CONV1X1, 1280, 1, 1, SSDF_OUTPUT_NONE, SSDF_VALUE_NONE, PREFIX "Conv_1");
    add_heads(&b, 1);

    for (int k = 2; k <= 5; k++) {
        int mid = EXTRAS[k - 2].mid, out = EXTRAS[k - 2].out;
        snprintf(scope, sizeof scope, PREFIX "layer_19_1_Conv2d_%d_1x1_%d", k, mid);
        add_layer(&b, SSDF_OP_CONV1X1, mid, 1, 1, SSDF_OUTPUT_NONE, SSDF_VALUE_NONE, scope);
        snprintf(scope, sizeof scope, PREFIX "layer_19_2_Conv2d_%d_3x3_s2_%d", k, out);
        add_layer(&b, SSDF_OP_CONV3X3, out, 2, 1, SSDF_OUTPUT_NONE, SSDF_VALUE_NONE, scope);
        add_heads(&b, k);
    }
    g->num_anchors = b.anchor_offset; /* 1917 */
}

static ssdf_model the_model;
static pthread_once_t the_model_once = PTHREAD_ONCE_INIT;
static void build_once(void) { build(&the_model); }

const ssdf_model *ssdf_model_builtin(void) {
    pthread_once(&the_model_once, build_once);
    return &the_model;
}

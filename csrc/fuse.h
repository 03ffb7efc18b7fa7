/* The fusion pass and the buffer plan: how the engine runs a model.
 *
 * The model (model.h) is a list of layers reading each other's outputs. The
 * pass rewrites it into steps: a single layer, or a fused block of three
 * layers (producer -> depthwise 3x3 -> 1x1 project) that a kernel runs row
 * band by row band without materialising the two intermediates. The rule
 * comes from the graph alone: a layer's output may stay unmaterialised only
 * when the next layer is its single reader (an output another layer reads,
 * such as a feature map the heads read, must stay); plus what the block
 * kernel can run and a size below which whole-tensor GEMMs are faster.
 *
 * The plan then gives every layer output a buffer: an arena slot (reused
 * once its value has no reader left), one of the two spill buffers (a fused
 * block's intermediates, written only by kernels without fusion), or one of
 * the model outputs. */
#ifndef SSDF_FUSE_H
#define SSDF_FUSE_H

#include <stddef.h>

#include "kernels/kernels.h"
#include "model.h"

#define SSDF_MAX_SLOTS 8
/* A block runs fused when its producer's output is larger than this; smaller
 * ones are faster as whole-tensor GEMMs, whose tiles are fuller and whose
 * threads split channels instead of recomputing rows. */
#define SSDF_FUSE_MIN_BYTES (1024 * 1024)

/* Where a layer reads or writes. */
typedef enum {
    SSDF_BUF_NONE = -1,
    SSDF_BUF_SLOT0 = 0, /* SLOT0 + k for slot k */
    SSDF_BUF_SPILL0 = 8, /* a fused block's producer output */
    SSDF_BUF_SPILL1 = 9, /* a fused block's depthwise output */
    SSDF_BUF_INPUT = 16,
    SSDF_BUF_BOXES = 17,
    SSDF_BUF_CLASSES = 18,
} ssdf_buffer;

typedef struct {
    int src, dst, res; /* ssdf_buffer ids; res is SSDF_BUF_NONE without residual */
    size_t dst_offset; /* in floats (the heads' place in the outputs) */
} ssdf_binding;

/* One step: layers [first, first + count); count 1 (a layer) or 3 (a fused
 * block: producer, depthwise, project). */
typedef struct {
    int first, count;
} ssdf_step;

typedef struct {
    ssdf_step steps[SSDF_MAX_LAYERS];
    int n_steps;
    ssdf_binding bind[SSDF_MAX_LAYERS]; /* per layer */
    int n_slots;
    size_t slot_floats[SSDF_MAX_SLOTS]; /* capacity each arena slot needs */
    size_t spill_floats[2];             /* capacity of the spill buffers */
} ssdf_plan;

/* Number of layers reading layer l's output (as input or residual). */
int ssdf_fuse_readers(const ssdf_model *m, int l);

/* Whether layers l, l+1, l+2 form a block the kernels can run fused. */
int ssdf_fuse_block_at(const ssdf_model *m, int l);

/* The fusion pass (with fuse = 0, every layer its own step) and the buffer
 * plan. Returns 0, or -1 when the model needs more than SSDF_MAX_SLOTS. */
int ssdf_plan_build(const ssdf_model *m, int fuse, ssdf_plan *p);

/* A layer's kernel parameters. */
ssdf_conv_params ssdf_layer_params(const ssdf_layer *L);

/* The shapes of the fused block starting at layer `first` (pointers NULL). */
ssdf_f32_block ssdf_block_shape(const ssdf_model *m, int first);

#endif

/* graph.h — the graph stage: layer types and their registry, the typed network a recipe describes,
 * shape inference and parameter counting. Every layer keeps the mark of the YAML node that made it,
 * so an error found here or later (in compile/) points at the recipe line that caused it. */
#ifndef GRAFT_GRAPH_H
#define GRAFT_GRAPH_H

#include "base.h"

#include <stdbool.h>

typedef enum graft_layer_type {
    GRAFT_LAYER_CONV2D,
    GRAFT_LAYER_DENSE,
    GRAFT_LAYER_BATCHNORM,
    GRAFT_LAYER_RELU,
    GRAFT_LAYER_RELU6,
    GRAFT_LAYER_LEAKY_RELU,
    GRAFT_LAYER_GELU,
    GRAFT_LAYER_SIGMOID,
    GRAFT_LAYER_TANH,
    GRAFT_LAYER_MAXPOOL,
    GRAFT_LAYER_AVGPOOL,
    GRAFT_LAYER_GLOBAL_AVGPOOL,
    GRAFT_LAYER_FLATTEN,
    GRAFT_LAYER_DROPOUT,
    GRAFT_LAYER_ADD,
    GRAFT_LAYER_CONCAT,
    GRAFT_LAYER_COUNT
} graft_layer_type;

/* A per-sample shape (the batch dimension is not part of it): [C, H, W] or [F]. */
typedef struct shape {
    int rank; /* 1 or 3 */
    int d[3];
} shape;

static inline long shape_size(shape s)
{
    long n = 1;
    for (int i = 0; i < s.rank; i++) n *= s.d[i];
    return n;
}

#define LAYER_MAX_INPUTS 16
#define LAYER_MAX_PARAMS 4

/* A parameter or buffer tensor of a layer, named as in PyTorch: "<layer>.weight", ".bias",
 * ".running_mean", ".running_var". Buffers (running stats) are never trained. */
typedef struct param_info {
    const char *name; /* full name, e.g. "layer1.0.conv1.weight" */
    int rank;
    int dims[4]; /* PyTorch layout: conv OIHW, dense [out, in], vectors [C] */
    long count;
    bool is_buffer;
} param_info;

typedef struct layer {
    const char *name;
    graft_mark mark;      /* the layer's mapping in the YAML */
    graft_layer_type type;
    int ninputs;
    int inputs[LAYER_MAX_INPUTS]; /* indexes of earlier layers; -1 = the network input */
    shape in;                     /* shape of the (first) input */
    shape out;

    /* type-specific settings (PyTorch defaults applied by the recipe stage) */
    int filters, kernel[2], stride[2], pad[2], groups; /* conv2d; pad = explicit per side */
    int units;                                         /* dense */
    bool bias;                                         /* conv2d, dense */
    float momentum, eps;                               /* batchnorm */
    float slope;                                       /* leaky_relu */
    float rate;                                        /* dropout */
    int pool[2], pool_stride[2], pool_pad[2];          /* maxpool, avgpool */

    /* parameters (0 for parameter-free layers) */
    int nparams;
    param_info params[LAYER_MAX_PARAMS];

    /* transfer settings, resolved by the recipe stage */
    bool frozen;     /* no gradients, no optimizer state, no backward kernels */
    bool fresh;      /* part of the new head: initialised, not loaded */
    float lr_mult;   /* 1 unless train.lr_mult says otherwise */
} layer;

typedef struct graph {
    shape input;
    int nlayers;
    layer *layers; /* topological order: inputs always refer to earlier layers */
    int num_classes; /* the last layer's output size */
} graph;

/* The registry: one entry per layer type, implemented in one file of graph/ each. */
typedef struct layer_kind {
    graft_layer_type type;
    const char *name; /* YAML spelling: "conv2d", "leaky_relu", ... */
    /* Compute l->out (and l->params) from the input shapes; report problems at l->mark. */
    bool (*infer)(layer *l, const shape *inputs, int ninputs, arena *a, graft_diags *d);
} layer_kind;

const layer_kind *layer_kind_by_name(const char *name);
const layer_kind *layer_kind_of(graft_layer_type t);
const char *layer_type_name(graft_layer_type t);

/* Shape inference over the whole graph, in order; every problem goes to d. */
bool graph_infer_shapes(graph *g, arena *a, graft_diags *d);
long graph_param_count(const graph *g, bool trainable_only);
int graph_find_layer(const graph *g, const char *name);
/* The frozen prefix: the largest k such that layers [0, k) are all frozen (0 if none). */
int graph_frozen_prefix(const graph *g);

#endif

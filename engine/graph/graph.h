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
    GRAFT_LAYER_LAYERNORM,
    GRAFT_LAYER_PATCH_EMBED,
    GRAFT_LAYER_CLASS_TOKEN,
    GRAFT_LAYER_POSITION_EMBEDDING,
    GRAFT_LAYER_TOKEN_SELECT,
    GRAFT_LAYER_TOKEN_MEAN,
    GRAFT_LAYER_ATTENTION,
    GRAFT_LAYER_COUNT
} graft_layer_type;

/* A per-sample shape (the batch dimension is not part of it): [C, H, W], [F], or [T, D] (T tokens
 * of D features each, what a transformer's layers pass along). */
typedef struct shape {
    int rank; /* 1, 2 or 3 */
    int d[3];
} shape;

/* Rows of features a per-token layer (dense, layernorm) sees in one sample: T of [T, D], else 1. */
static inline int shape_tokens(shape s)
{
    return s.rank == 2 ? s.d[0] : 1;
}

static inline long shape_size(shape s)
{
    long n = 1;
    for (int i = 0; i < s.rank; i++) n *= s.d[i];
    return n;
}

/* Features per row: D of [T, D], F of [F] (the whole sample otherwise). */
static inline long shape_features(shape s)
{
    return shape_size(s) / shape_tokens(s);
}

#define LAYER_MAX_INPUTS 16
#define LAYER_MAX_PARAMS 8 /* attention with Hugging Face's separate query/key/value */

/* A parameter or buffer tensor of a layer, named as in PyTorch: "<layer>.weight", ".bias",
 * ".running_mean", ".running_var". Buffers (running stats) are never trained. */
typedef struct param_info {
    const char *name; /* full name, e.g. "layer1.0.conv1.weight" */
    int rank;
    int dims[4]; /* PyTorch layout: conv OIHW, dense [out, in], vectors [C] */
    long count;
    bool is_buffer;
    bool in_checkpoint; /* set by the recipe stage: transfer.from holds this tensor (shape checked) */
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
    float momentum, eps;                               /* batchnorm; eps also layernorm */
    bool affine;                                       /* layernorm: weight and bias */
    int patch;                                         /* patch_embed (its dim is units) */
    int index;                                         /* token_select */
    int heads, names;                                  /* attention (names: ATTN_NAMES_*) */
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
    bool aligned;    /* adapt.layer: its own output is aligned, so no activation fuses into it */
} layer;

typedef struct graph {
    shape input;
    int nlayers;
    layer *layers; /* topological order: inputs always refer to earlier layers */
    int num_classes; /* the last layer's output size */
} graph;

/* attention's parameter names: torchvision's packed in_proj_weight/in_proj_bias + out_proj, or
 * Hugging Face's attention.query/key/value + output.dense */
enum { ATTN_NAMES_TORCH, ATTN_NAMES_HF };

/* padding: same, stored in layer.pad until conv2d's infer resolves it */
#define GRAPH_PAD_SAME (-1)

/* A type-specific YAML key of a layer, parsed by the recipe stage into the layer field at offset,
 * so adding a layer type touches only its own file here (plus one registry line). */
typedef enum layer_opt_kind {
    LOPT_INT,   /* an integer in [lo, hi] -> int */
    LOPT_PAIR,  /* an integer or [h, w], each in [lo, hi] -> int[2] */
    LOPT_PAD,   /* same | valid | N | [h, w] -> int[2] (same = GRAPH_PAD_SAME) */
    LOPT_FLOAT, /* a number in [lo, hi] (hi excluded when hi_open, lo excluded when lo_open) */
    LOPT_BOOL,  /* true | false -> bool */
    LOPT_ENUM,  /* one of choices (NULL-terminated) -> int, its index */
} layer_opt_kind;

typedef struct layer_opt {
    const char *key;
    layer_opt_kind kind;
    size_t offset; /* offsetof(layer, field) */
    double lo, hi;
    bool lo_open, hi_open;
    bool required;
    const char *expect; /* what the user should write, for type errors ("a positive integer") */
    const char *const *choices; /* LOPT_ENUM */
} layer_opt;

/* The registry: one entry per layer type, implemented in one file of graph/ each. */
typedef struct layer_kind {
    graft_layer_type type;
    const char *name; /* YAML spelling: "conv2d", "leaky_relu", ... */
    /* Compute l->out (and l->params) from the input shapes; report problems at l->mark. */
    bool (*infer)(layer *l, const shape *inputs, int ninputs, arena *a, graft_diags *d);
    /* Type-specific keys and PyTorch defaults (NULL/0 when none). */
    const layer_opt *opts;
    int nopts;
    void (*defaults)(layer *l);
    int min_inputs;       /* add/concat: 2; others 1 */
    int max_inputs;       /* 1, or LAYER_MAX_INPUTS for merges */
    bool activation_sugar; /* conv2d, dense: `activation:` expands to a following layer */
    bool deterministic;    /* same output for the same input in training mode (not dropout) */
} layer_kind;

/* Every registered kind, in enum order (for did-you-mean over type names). */
const layer_kind *const *layer_kinds(int *count);

const layer_kind *layer_kind_by_name(const char *name);
const layer_kind *layer_kind_of(graft_layer_type t);
const char *layer_type_name(graft_layer_type t);

/* Shape inference over the whole graph, in order; every problem goes to d. */
bool graph_infer_shapes(graph *g, arena *a, graft_diags *d);
long graph_param_count(const graph *g, bool trainable_only);
int graph_find_layer(const graph *g, const char *name);
/* The frozen prefix: the largest k such that layers [0, k) are all frozen (0 if none). */
int graph_frozen_prefix(const graph *g);
/* Whether the frozen prefix can be computed once and cached (deterministic in training: no dropout,
 * no batch-statistics batchnorm, no augmentation, one tensor crossing the cut); why (not) in reason.
 * The compiler's plan and the recipe check both use this one rule. */
bool graph_feature_cache(const graph *g, bool bn_train, bool augment, char *reason, size_t n);
/* Trainable parameter count of one layer (0 when frozen); non-buffer parameter count. */
long layer_param_count(const layer *l);
/* "[32, 28, 28]" into out. */
void shape_format(shape s, char *out, size_t n);
/* The older spelling a checkpoint may use for parameter p of l, into out: a layer norm's
 * "<layer>.gamma" / "<layer>.beta" (TensorFlow-era BERT and ViT ports) for .weight / .bias.
 * False when there is none. */
bool param_legacy_name(const layer *l, const param_info *p, char *out, size_t n);
/* Append a parameter "<layer>.<suffix>" with the given dims to l (arena-allocated name); with
 * suffix NULL the parameter is named after the layer itself (class_token, position_embedding). */
bool layer_add_param(layer *l, arena *a, const char *suffix, int rank, const int *dims,
                     bool is_buffer);

#endif

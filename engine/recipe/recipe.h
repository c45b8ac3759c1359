/* recipe.h — the recipe stage: YAML (with marks on every node) → extends/--set merge → schema
 * validation → a typed recipe with its graph. Every problem of a pass lands in one graft_diags. */
#ifndef GRAFT_RECIPE_H
#define GRAFT_RECIPE_H

#include "base.h"
#include "graph.h"

#include <stdbool.h>

/* ---- the generic YAML tree: every node keeps its mark ---- */
typedef enum ynode_kind { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP } ynode_kind;

typedef struct ynode ynode;
struct ynode {
    ynode_kind kind;
    graft_mark mark;
    const char *value;  /* scalar text */
    bool quoted;        /* scalar was quoted: never a number/bool/null */
    int count;          /* seq items / map pairs */
    ynode **items;      /* seq: items; map: values */
    const char **keys;  /* map: keys */
    graft_mark *key_marks;
    int cap;            /* allocated items (and keys) */
};

/* Limits that keep hostile input cheap: every file and --set value is checked against them. */
#define RECIPE_MAX_FILE_BYTES (1 << 20) /* a recipe is a small text file */
#define RECIPE_MAX_DEPTH 64             /* nesting of sequences and mappings */
#define RECIPE_MAX_NODES 200000         /* nodes per file, aliases expanded */
#define RECIPE_MAX_EXTENDS 32           /* files in one extends / model.file chain */

/* Parse YAML text into a ynode tree (one document). name is the FILE of every mark; line0/col0
 * shift the marks (a --set value's position inside its option). NULL on error (in d). */
ynode *yaml_parse(arena *a, const char *name, const char *text, size_t len, int line0, int col0,
                  graft_diags *d);
/* Read and parse a file; errors are reported at `from` (the node that named it) when the file
 * cannot be read. Only regular files are read (never a FIFO or device that would block). */
ynode *yaml_load_file(arena *a, const char *path, graft_mark from, graft_diags *d);
/* Map lookups: the value for key, or NULL when absent. */
ynode *ynode_get(const ynode *map, const char *key);
int ynode_find(const ynode *map, const char *key);
/* A null scalar (~, null, empty, unquoted): treated as absent by the schema. */
bool ynode_is_null(const ynode *n);
ynode *ynode_new(arena *a, ynode_kind kind, graft_mark mark);
bool ynode_push(arena *a, ynode *parent, const char *key, graft_mark key_mark, ynode *item);
void ynode_remove(ynode *map, int index);
/* Deep merge: maps merge key by key (over wins), lists and scalars are replaced by over. */
ynode *ynode_merge(arena *a, ynode *base, ynode *over);
/* Lexically normalise a path: drop "." segments, fold "dir/.." (keeps leading ".."). */
void path_normalize(char *p);

/* ---- the typed recipe ---- */
typedef enum data_format { DATA_NONE, DATA_IDX, DATA_NPY, DATA_CSV, DATA_FOLDER } data_format;

typedef struct data_source {
    bool present;
    graft_mark mark;
    data_format format;
    const char *images, *labels; /* idx, npy: resolved paths */
    const char *path;            /* csv: resolved path */
    int label_column;            /* csv: negative counts from the end; default -1 (the last) */
    const char *root;            /* folder (torchvision issue) */
    bool skip_bad_images;        /* folder: data.on_bad_image: skip (default stop) */
    bool unlabelled;             /* labels are never read (adapt.target): idx/npy need none */
} data_source;

typedef struct data_spec {
    data_source train, val, test;
    int nclasses;     /* 0 = all labels as they are */
    int *classes;     /* kept labels, mapped to 0..nclasses-1 in this order */
    int shots;        /* 0 = all */
    double val_split; /* default 0.1 */
    int nnorm;        /* channels in normalize (0 = none) */
    float norm_mean[16], norm_std[16];
    bool flip;        /* augment.flip: horizontal */
    int crop_pad;     /* augment.crop: PAD (0 = none) */
    float rrc_min_scale; /* augment.random_resized_crop: smallest area fraction (0 = off) */
    unsigned long seed;
} data_spec;

/* Whether training batches are augmented (so nothing before the network is deterministic). */
static inline bool data_spec_augments(const data_spec *d)
{
    return d->flip || d->crop_pad > 0 || d->rrc_min_scale > 0;
}

/* optimizer_kind (OPT_SGD ... OPT_ADAMW) lives in base.h: the runtime's fused updates use it too. */
typedef enum schedule_kind { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE } schedule_kind;
typedef enum cache_mode { CACHE_AUTO, CACHE_ON, CACHE_OFF } cache_mode;
typedef enum monitor_kind { MONITOR_VAL_LOSS, MONITOR_VAL_ACCURACY } monitor_kind;
/* train.tune: GEMM tuning on a device without results (the same order as tune.h's tune_mode) */
typedef enum tune_kind { TUNE_KIND_AUTO, TUNE_KIND_OFF, TUNE_KIND_FULL } tune_kind;
/* train.on_nonfinite: what a non-finite training loss does (stop: the run fails, its last good
 * checkpoint kept; skip_batch: the batch's update is not applied and training goes on) */
typedef enum nonfinite_kind { NONFINITE_STOP, NONFINITE_SKIP_BATCH } nonfinite_kind;
typedef enum split_kind { SPLIT_EVEN, SPLIT_THROUGHPUT } split_kind;

/* A freeze selector, as written: a layer name, a depth, a list of names//regexes/, none or all.
 * It is resolved against the graph into layer.frozen flags. A depth counts the graph's layers as
 * `graft plan` numbers them (activation sugar layers included); /regexes/ are POSIX extended and
 * must match a whole layer name. Selecting a layer of the new head is an error. */
typedef struct freeze_spec {
    enum { FREEZE_NONE, FREEZE_ALL, FREEZE_THROUGH, FREEZE_DEPTH, FREEZE_LIST } kind;
    graft_mark mark;
    const char *through; /* FREEZE_THROUGH: freeze every layer up to and including it */
    int depth;           /* FREEZE_DEPTH: the first N layers */
    int nlist;
    const char **list;   /* FREEZE_LIST: names or "/regex/" */
} freeze_spec;

/* At the start of epoch `epoch` (epochs count from 1, as progress shows them), `freeze` replaces
 * the freeze selector in force. */
typedef struct unfreeze_step {
    int epoch;
    freeze_spec freeze;
} unfreeze_step;

typedef struct lr_mult_rule {
    const char *pattern; /* a layer name or "/regex/" */
    float factor;
    graft_mark mark;
} lr_mult_rule;

typedef struct train_spec {
    int epochs, batch_size;
    optimizer_kind optimizer;
    double lr, momentum, beta1, beta2, eps, weight_decay;
    schedule_kind schedule;
    double warmup_epochs, gamma;
    int step_size;
    int nlr_mult;
    lr_mult_rule *lr_mult;
    double l2sp;
    double label_smoothing;
    bool early_stopping;
    monitor_kind monitor;
    int patience;
    double min_delta;
    int nunfreeze;
    unfreeze_step *unfreeze;
    long max_steps; /* 0 = no limit */
    /* the least time between two epoch-end checkpoints (0: every epoch; the run's last epoch
     * is always written) */
    double checkpoint_seconds;
    unsigned long seed;
    tune_kind tune;
    nonfinite_kind on_nonfinite;
    /* data parallelism: the devices of the replicas as one comma-separated list of device specs
     * (or "all"); NULL = the one device of recipe.device / --device */
    const char *devices;
    /* batchnorm statistics (and their backward sums) over the global batch across replicas and
     * ranks, not each replica's share (PyTorch's SyncBatchNorm) */
    bool sync_bn;
    /* the global batch's shares: even, or weighted by each replica's measured speed */
    split_kind split;
} train_spec;

typedef struct transfer_spec {
    const char *from; /* resolved checkpoint path or NULL */
    graft_mark from_mark;
    freeze_spec freeze;
    const char *head_cut; /* NULL = no new head */
    int head_first;       /* index in graph.layers of the first new head layer (-1 = none) */
    bool bn_train;        /* bn: train (default frozen) */
    cache_mode cache_features;
    /* the feature cache lives in device memory when it needs at most this fraction of the
     * device's global memory (default 0.25; 0 keeps it in host memory) */
    double cache_device_fraction;
} transfer_spec;

/* adapt: domain adaptation to an unlabelled target domain (docs/adaptation.md). Methods combine as
 * a bit set: adabn re-estimates batchnorm statistics on the target after training; coral, mmd and
 * dann add an alignment loss on the features of `layer` from a source and a target batch per step. */
enum { ADAPT_ADABN = 1, ADAPT_CORAL = 2, ADAPT_MMD = 4, ADAPT_DANN = 8 };
#define ADAPT_ALIGNING (ADAPT_CORAL | ADAPT_MMD | ADAPT_DANN)
typedef enum adapt_schedule { ADAPT_SCHED_GANIN, ADAPT_SCHED_CONSTANT } adapt_schedule;
#define ADAPT_MAX_DISC 8
typedef struct adapt_spec {
    bool present;
    graft_mark mark;
    data_source target;      /* unlabelled target training data (labels ignored when present) */
    data_source source_test; /* optional: the source domain's labelled test split, reported too */
    unsigned methods;        /* ADAPT_* bits */
    int layer;               /* graph index whose output is aligned (default: the last layer's input) */
    graft_mark layer_mark;
    double weight;           /* trade-off of the alignment loss (default 1) */
    adapt_schedule schedule; /* dann: lambda over training progress (default ganin) */
    double gamma;            /* ganin: lambda = 2/(1+exp(-gamma p)) - 1 (default 10) */
    int ndisc;               /* dann: hidden layer widths of the domain discriminator */
    int disc[ADAPT_MAX_DISC];
    double disc_dropout;
    /* dann: the discriminator as a graph of dense layers on the aligned features, input [d]:
     * hidden layers (ReLU after each) then one logit; parameters domain_disc.N.weight/bias */
    graph disc_graph;
} adapt_spec;

typedef struct graft_recipe {
    arena arena;      /* everything below lives here */
    const char *file; /* the top recipe file */
    const char *name;
    ynode *root;      /* the merged tree (after extends and --set) */
    graph graph;      /* built, heads applied, shapes inferred, freeze and lr_mult resolved */
    data_spec data;
    transfer_spec transfer;
    train_spec train;
    adapt_spec adapt;
    const char *device; /* NULL = default */
    const char *output; /* run directory or NULL */
} graft_recipe;

/* Load FILE with extends chains, apply the --set overrides ("path.to.key=YAML"), validate all of it
 * and build the graph. On failure every problem is in diags and the status is BAD_RECIPE. */
graft_status recipe_load(const char *file, const char *const *sets, int nsets, graft_recipe **out,
                         graft_diags *diags);
void recipe_free(graft_recipe *r);

/* Re-resolve the frozen flags for a freeze selector (gradual unfreezing at an epoch). */
graft_status recipe_apply_freeze(graft_recipe *r, const freeze_spec *f, graft_diags *diags);

/* Whether the frozen prefix's features can be cached (transfer.cache_features with the auto rule:
 * a non-empty frozen prefix of deterministic layers, no dropout, batchnorm frozen, no data
 * augmentation, and nothing after the prefix reads from inside it). reason says why (not). */
bool recipe_feature_cache(const graft_recipe *r, char *reason, size_t n);
/* The recipe adapts with a method that aligns features (CORAL, MMD, DANN): source and target
 * batches go through the whole network every step, so no frozen prefix is cached (the check,
 * graft plan, graft train and graft bench all decide by this); recipe_align_reason says why. */
bool recipe_aligns(const graft_recipe *r);
extern const char recipe_align_reason[];
/* The rows a training step runs at train.batch_size `batch`: a source and a target batch
 * together where the recipe aligns, else the batch (the trainer's pipeline, graft plan's memory,
 * the memory check before epoch 1). */
int recipe_step_rows(const graft_recipe *r, int batch);

/* The merged recipe as YAML text (for the run directory's resolved recipe): extends and
 * model.file inlined, --set applied, every path absolute. malloc'ed. */
char *recipe_dump_yaml(const graft_recipe *r);

#endif

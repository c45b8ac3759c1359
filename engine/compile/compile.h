/* compile.h — the compile stage: a checked graph becomes a pipeline of op launches over device
 * buffers. Shapes are fixed here (batch up to max_batch); the frozen prefix gets no backward work and
 * no gradient or optimizer buffers; activations live in slots shared by liveness; the same analysis
 * feeds `graft plan`. Host-side weights (a param_store) move in and out of pipelines by name. */
#ifndef GRAFT_COMPILE_H
#define GRAFT_COMPILE_H

#include "graph.h"
#include "io.h"
#include "ops.h"
#include "recipe.h"
#include "tune.h"

/* ---- host copies of every parameter, buffer and optimizer state, by PyTorch name ---- */
typedef struct param_entry {
    char *name;
    int rank;
    int64_t dims[4];
    long count;
    bool is_buffer;
    float *data;
    float *m, *v;   /* optimizer state (NULL until a pipeline trained it) */
    float *anchor;  /* L2-SP anchor: the weights as loaded from the checkpoint (NULL if none) */
    bool loaded;    /* came from the checkpoint */
    long t;         /* optimizer steps taken on this tensor (Adam's bias correction) */
} param_entry;

typedef struct param_store {
    int n, cap;
    param_entry *items;
} param_store;

param_entry *store_find(param_store *s, const char *name);
/* Create every tensor the graph needs; parameters get PyTorch's default initialisation from seed
 * (conv/dense: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias; batchnorm: 1, 0, mean 0,
 * var 1; layernorm: weight 1, bias 0). Existing entries with the right size are kept. */
graft_status store_init(param_store *s, const graph *g, uint64_t seed, graft_error *e);
/* Load every tensor of a checkpoint whose name the store has (shapes must match; fresh layers are
 * skipped). *loaded gets the count. Sets anchors when want_anchor. */
graft_status store_load(param_store *s, const graph *g, const char *path, bool want_anchor,
                        int *loaded, graft_error *e);
/* The same for every layer, new head included (a run's own checkpoints: resume, best weights). */
graft_status store_load_all(param_store *s, const graph *g, const char *path, int *loaded,
                            graft_error *e);
/* Write the model tensors (params and buffers) as safetensors with metadata. */
graft_status store_save(const param_store *s, const char *path, const char *const *meta_kv,
                        int nmeta, graft_error *e);
/* Optimizer state (m, v) and anchors as a second safetensors file, with metadata. */
graft_status store_save_state(const param_store *s, const char *path, const char *const *meta_kv,
                              int nmeta, graft_error *e);
/* store_save (state false) or store_save_state (true) as bytes in memory (*out malloc'ed), to be
 * written later (the trainer's checkpoint writer); path names the file in errors. */
graft_status store_encode(const param_store *s, bool state, const char *path,
                          const char *const *meta_kv, int nmeta, char **out, size_t *out_len,
                          graft_error *e);
graft_status store_load_state(param_store *s, const char *path, st_file **meta_out, graft_error *e);
void store_free(param_store *s);

/* ---- the analysis shared by the pipeline and `graft plan` ---- */
typedef struct layer_plan {
    bool backward;     /* gradients flow through this layer (it or something before it trains) */
    bool trains;       /* its own parameters get gradients */
    bool need_dx[LAYER_MAX_INPUTS];
    bool bn_batch_stats; /* batchnorm in training mode */
    bool keeps_output; /* its output stays alive for some backward */
    /* Fusion: an activation layer right after a conv2d, dense or batchnorm that is its only reader runs
     * as that layer's epilogue (the producer writes act(out); its backward applies act' from that
     * output). The activation becomes a view of the producer's output and launches nothing. */
    int fused_act;     /* producers: index of the activation they apply, or -1 */
    int fused_into;    /* fused activations and folded batchnorms: index of their producer, or -1 */
    /* A batchnorm in eval mode right after a conv2d that is its only reader, where neither runs
     * backward (evaluation, prediction, a frozen prefix): the conv runs with the weights and bias
     * scaled by the normalisation (w * gamma/sqrt(var + eps); (b - mean) * that + beta) and the
     * batchnorm's own epilogue, and the batchnorm becomes a view like a fused activation. */
    int bn_fold;       /* conv2d: index of the batchnorm folded into it, or -1 */
    /* A 2x2 max-pool of stride 2 right after a conv2d (or its fused activation) that is its only
     * reader, on an even output: the conv's forward may write the pool's output and indexes as
     * well (where its op can: conv2d_can_pool; the pipeline decides), and the pool's forward
     * then launches nothing. Its output is defined at the conv's step (no slot shared with the
     * conv's input); the conv's backward reads the pool's gradient and indexes instead of its
     * own dy (conv2d_bwd_pool), and the pool's backward launches nothing either. */
    int fused_pool;    /* conv2d: index of that pool, or -1 */
    int pool_of;       /* that pool: index of its conv2d, or -1 */
    /* A stem (plan_fusion): a conv2d of few channels in whose output only another conv2d reads,
     * neither with a backward, that the reader's forward may compute from the stem's input
     * (conv2d_stem_init; the pipeline decides, where the reader runs Winograd F(4x4) on a CPU) */
    int stem_into;     /* the stem: index of its reader, or -1 */
    int stem;          /* the reader: index of its stem, or -1 */
} layer_plan;

typedef struct plan_memory {
    size_t weights, gradients, optimizer, activations, workspace, total;
} plan_memory;

/* Activation and gradient tensors share device slots by liveness: a tensor defined at one step of
 * the schedule (forward 0..L-1, loss, backward) can reuse a slot whose last reader came earlier. */
typedef struct tensor_plan {
    long size;    /* floats per sample */
    int slot;     /* index into slots */
    int def, last; /* schedule times */
} tensor_plan;

typedef struct graph_plan {
    int first;          /* first layer run (after a cached prefix) */
    int nlayers;
    layer_plan *layers; /* nlayers entries, index = layer index */
    bool cacheable;     /* frozen prefix can be computed once */
    int cache_cut;      /* layers [0, cache_cut) form the cacheable prefix */
    char cache_reason[256];
    int ntensors;
    tensor_plan *tensors;
    int *y_tensor, *dy_tensor; /* per layer: tensor index of its output / output gradient (-1) */
    int *dx_accumulate;        /* per layer*LAYER_MAX_INPUTS: 1 = add into the gradient */
    int nslots;
    long *slot_size;           /* floats per sample */
    long scratch_size;         /* floats per sample for gradients that must be summed */
    plan_memory mem;
} graph_plan;

/* training: whether backward and optimizer run. bn_train: recipe's transfer.bn == train.
 * augment: the data pipeline augments (so nothing is deterministic). first: first layer to run. */
graft_status plan_analyse(const graph *g, bool training, bool bn_train, bool augment,
                          int optimizer_kind, bool l2sp, int first, int max_batch, graph_plan *out,
                          graft_error *e);
void plan_free(graph_plan *p);
/* mem.workspace is a bound over every conv path and device (an im2col column matrix where a
 * layer could take that path); this makes it, and mem.total, what the paths a device of info's
 * kind takes by default use (conv2d_workspace_bytes_on; the pipeline allocates what its ops
 * actually use). training and max_batch as plan_analyse's. */
void plan_workspace_on(const graph *g, graph_plan *p, const graft_device_info *info,
                       bool training, int max_batch);
/* The epilogue a layer's kernels apply (none unless the plan fused an activation into it). */
epilogue plan_epilogue(const graph *g, const graph_plan *p, int layer_index);
/* Is layer_index a conv2d with a batchnorm right after it, not folded in by this plan
 * (conv2d_desc.fold_ready)? *epi: the activation the fold would give it (that batchnorm's). */
bool plan_fold_ready(const graph *g, const graph_plan *p, int layer_index, epilogue *epi);
/* Whether the frozen prefix's feature pass (when the plan caches it) and the training pipeline
 * after it fit the device together, in half its memory, under the freeze selector in force: the
 * trainer then builds the second while the first runs, instead of one after the other as
 * plan_check_memory counts them. */
bool plan_overlap_fits(const graft_recipe *r, const graft_device_info *info);
/* Whether graft train computes r's frozen prefix (gp->cache_cut layers of its training plan gp)
 * once: the plan can cache it, transfer.cache_features is not off, and no aligning adaptation
 * runs every layer each step. The trainer, graft plan and graft bench all decide by this. */
bool plan_caches_prefix(const graft_recipe *r, const graph_plan *gp);

/* Before training: every freeze phase's training pipeline (the plan `graft plan` prints) against
 * the device's global memory and largest allocation. A recipe that cannot fit gets *fits false
 * and, in e, a NOMEM error with the sizes and the largest train.batch_size that fits; the status
 * is for the check itself failing (out of memory while planning). The graph's frozen flags are
 * those of `current` afterwards. */
graft_status plan_check_memory(graft_recipe *r, const graft_device_info *info,
                               const freeze_spec *current, bool *fits, graft_error *e);

/* ---- pipelines ---- */
typedef struct pipeline pipeline;

typedef struct pipeline_options {
    int max_batch;
    bool training;
    bool bn_train;          /* frozen batchnorm uses batch statistics (transfer.bn: train) */
    int first;              /* run layers [first, nlayers); the input is layer first-1's output */
    int optimizer;          /* optimizer_kind */
    bool l2sp;
    float label_smoothing;
    uint64_t dropout_seed;
    /* adapt: an alignment loss (align_kind; 0 = none) on the output of layer align_layer; the
     * training batches of pipeline_train_step_adapt hold source rows, then target rows */
    int align;
    int align_layer;
    const graph *disc; /* ALIGN_DANN: the domain discriminator (adapt_spec.disc_graph) */
    float disc_dropout; /* ... and the dropout rate after each of its hidden layers */
    /* AdaBN: pipeline_bn_restat runs batchnorm on batch statistics in an evaluation pipeline */
    bool bn_restat;
    /* train.on_nonfinite: skip_batch. A step given a step_result reads its loss back before the
     * backward pass and, when it is not finite, applies no update (batchnorm running statistics
     * put back too): one host wait per step instead of the batched read-back. */
    bool skip_nonfinite;
    /* train.sync_bn: pipeline_train_grads normalises with the global batch's statistics
     * (pipeline_sync_points) */
    bool sync_bn;
    /* the pipeline only computes features (pipeline_forward_features*): no loss head, so no
     * cross-entropy program is built for its output's width */
    bool features_only;
} pipeline_options;

graft_status pipeline_create(graft_context *ctx, const graph *g, const pipeline_options *o,
                             pipeline **out, graft_error *e);
void pipeline_free(pipeline *p);
/* Upload the store's tensors (and optimizer state when present) into the pipeline's buffers. */
graft_status pipeline_upload(pipeline *p, param_store *s, graft_error *e);
/* Read parameters, buffers and optimizer state back into the store. */
graft_status pipeline_download(pipeline *p, param_store *s, graft_error *e);
/* Per-sample input size of the pipeline (the graph input, or layer first-1's output). */
long pipeline_input_size(const pipeline *p);

/* One batch: x [n, input], labels [n] (NULL for predict). */
typedef struct step_result {
    double loss_sum; /* sum over the batch of per-sample loss */
    int correct;
    bool nonfinite; /* skip_nonfinite pipelines: the loss was not finite, the update skipped */
} step_result;

/* Forward, loss, backward and one optimizer update (training pipelines). x and labels are copied
 * into pinned staging memory and uploaded without waiting, so they may be reused at once.
 * With r == NULL nothing is read back: the batch's per-sample loss and correct flags stay on the
 * device (one slot per step) for pipeline_stats_read, and the step never blocks except when the
 * host is two steps ahead of the device. With r, the step waits and fills r (the old blocking
 * path, one host synchronisation per step). */
graft_status pipeline_train_step(pipeline *p, const float *x, const int *labels, int n,
                                 const optim_hparams *h, step_result *r, graft_error *e);
/* Forward in evaluation mode; logits out [n, k] when non-NULL (a blocking read); with labels, the
 * loss and correct count go to r (blocking) or, when r is NULL, to the device-side statistics. */
graft_status pipeline_eval(pipeline *p, const float *x, const int *labels, int n, float *logits,
                           step_result *r, graft_error *e);

/* Totals of the steps (training or evaluation batches) whose statistics were read back: the same
 * sums, in the same order, as the blocking path's step_results would give. */
typedef struct pipeline_stats {
    double loss_sum;
    long correct;
    long samples;
    long steps;
} pipeline_stats;
#define PIPELINE_STATS_SLOTS 64 /* steps kept on the device between forced read-backs */
/* Hand out the statistics read back since the last call, and start a non-blocking read of the
 * steps enqueued since (at most one is in flight; a finished one is collected first). With wait,
 * block until every step enqueued so far is in *out: exact totals, e.g. at the end of an epoch.
 * A non-finite step loss is an error naming the step (1-based pipeline step count). */
graft_status pipeline_stats_read(pipeline *p, bool wait, pipeline_stats *out, graft_error *e);
/* Everything read back since the last restart, summed step after step in step order: unlike the
 * reads' sums added together, whose grouping follows when they were asked for (a progress
 * display's timing), the same bits on every run. restart: begin again from zero after. */
void pipeline_stats_total(pipeline *p, pipeline_stats *out, bool restart);
/* Without blocking: collect a read-back that has landed and return the non-finite-loss error seen
 * so far, if any (kept for pipeline_stats_read). A training loop calls it after each step. */
graft_status pipeline_stats_poll(pipeline *p, graft_error *e);
/* The first step (1-based pipeline step count) whose read-back loss was not finite, and that loss.
 */
bool pipeline_nonfinite(const pipeline *p, uint64_t *step, double *value);
/* Wait for the read-back in flight and drop every statistic (the total too) and error collected
 * (a replay). */
graft_status pipeline_stats_reset(pipeline *p, graft_error *e);
/* Scan mode: each forward reads every layer's parameters and output back (blocking) and keeps the
 * first layer holding a NaN or an infinity; pipeline_scan_result gives it (-1 if none) and whether
 * its parameters, rather than its output, were the first (PIPELINE_SCAN_INPUT: the input). Turning
 * it on forgets the last result. */
#define PIPELINE_SCAN_INPUT (-2) /* the batch's input itself was not finite */
graft_status pipeline_set_scan(pipeline *p, bool on, graft_error *e); /* on: may grow a buffer */
int pipeline_scan_result(const pipeline *p, bool *in_weights);
/* How many times this pipeline blocked the host: waits on transfers that had not finished and
 * blocking read-backs (the "host synchronisations" of a step). */
long pipeline_host_syncs(const pipeline *p);
/* Forward to the last layer's output (features, for the feature cache); out [n, out size]. */
graft_status pipeline_forward_features(pipeline *p, const float *x, int n, float *out,
                                       graft_error *e);
/* The same into rows [first_row, first_row + n) of a device table of [rows, out size] floats,
 * without reading anything back or waiting (a device-resident feature cache). x is read by the
 * device later: it must stay as it is until the queue has finished (pipeline_free waits). */
graft_status pipeline_forward_features_to(pipeline *p, const float *x, int n, cl_mem table,
                                          long first_row, graft_error *e);
/* pipeline_train_step on a batch that is rows[0..n) of a device table of
 * [rows, input size] floats (the device-resident feature cache): only the row numbers and labels
 * are uploaded, the rows are gathered on the device. */
graft_status pipeline_train_step_rows(pipeline *p, cl_mem table, const long *rows,
                                      const int *labels, int n, const optim_hparams *h,
                                      step_result *r, graft_error *e);
/* pipeline_eval (no step_result), on a batch of x or of rows of a device table as above, that
 * reads the logits back without waiting: they are in logits, which must stay valid until then,
 * once pipeline_logits_wait has returned GRAFT_OK. The host goes on to the next batch meanwhile. */
graft_status pipeline_eval_async(pipeline *p, const float *x, const int *labels, int n,
                                 float *logits, graft_error *e);
graft_status pipeline_eval_rows_async(pipeline *p, cl_mem table, const long *rows,
                                      const int *labels, int n, float *logits, graft_error *e);
/* Wait for every logits read of the async evaluations so far (after a failed call too, before
 * their destinations are freed). */
graft_status pipeline_logits_wait(pipeline *p, graft_error *e);
long pipeline_output_size(const pipeline *p);
/* Layer i's kernels in words where the op chooses among several (conv2d: its path,
 * conv2d_op_describe); "" for the others. */
void pipeline_layer_kernel(const pipeline *p, int i, char *buf, size_t n);
/* The plan it was built from; its mem.workspace (and total) what it allocated for its ops. */
const graph_plan *pipeline_plan(const pipeline *p);

/* One adaptation step (a pipeline built with options.align): x holds ns labelled source rows and
 * then nt target rows (labels: ns entries). DANN: the discriminator classifies the aligned
 * features (source 1, target 0) with binary cross-entropy times weight, trains with the same
 * optimizer, and its input gradient reaches the features reversed and scaled by lambda. The classification loss is the mean over the source
 * rows (its statistics count ns samples); weight * the alignment loss on layer align_layer's
 * output adds its gradient there, and is summed on the device for pipeline_align_read. With
 * fewer than 2 rows of either domain the step has no alignment term. */
graft_status pipeline_train_step_adapt(pipeline *p, const float *x, const int *labels, int ns,
                                       int nt, const optim_hparams *h, float weight, float lambda,
                                       graft_error *e);
/* The alignment loss summed over the steps since the last call and their count (blocking). */
graft_status pipeline_align_read(pipeline *p, double *sum, long *steps, graft_error *e);
/* AdaBN (a pipeline built with options.bn_restat): forward x [n] with every batchnorm layer on
 * the batch's statistics, which update its running statistics with the layer's momentum. */
graft_status pipeline_bn_restat(pipeline *p, const float *x, int n, graft_error *e);
/* Read one parameter or buffer of layer `layer` (by name suffix, e.g. ".running_mean"). */
graft_status pipeline_read_tensor(pipeline *p, int layer, const char *suffix, float *out,
                                  graft_error *e);
/* The optimizer step counter (keys dropout masks; saved for resume). */
void pipeline_set_step(pipeline *p, uint64_t step);
uint64_t pipeline_step(const pipeline *p);

/* ---- data parallelism: one step of a global batch split across replicas ----
 * Gradients travel in buckets, one per trainable layer, numbered in the order backward finishes
 * them (the last layer first); the buckets lie back to back in one float array of the layout's
 * total size. pipeline_train_grads (x: rows row0.. of the global batch, which keys dropout) runs
 * forward, loss (statistics as pipeline_train_step's) and
 * backward, and enqueues each bucket's read into pinned host memory as soon as its layer's
 * backward is enqueued; pipeline_grad_bucket_wait waits for bucket k and points *data at it (the
 * caller reduces the replicas' buckets as they land); pipeline_apply_grads writes the reduced
 * gradients (the whole array) and runs the same optimizer update as pipeline_train_step. */
graft_status pipeline_grad_layout(pipeline *p, int *nbuckets, const long **offsets,
                                  const long **counts, graft_error *e);
graft_status pipeline_train_grads(pipeline *p, const float *x, const int *labels, int n,
                                  long row0, graft_error *e);
graft_status pipeline_grad_bucket_wait(pipeline *p, int k, float **data, graft_error *e);
graft_status pipeline_apply_grads(pipeline *p, const float *grads, const optim_hparams *h,
                                  graft_error *e);
/* train.sync_bn (options.sync_bn): a pipeline_train_grads step stops at each of the points
 * pipeline_sync_points lists (every training-mode batchnorm in forward, then those whose input
 * gradient is needed in backward, in backward order), the same list for every replica and rank.
 * At each, the caller gathers every replica's per-plane partials into one array of the global
 * batch's N rows ([channels][N][2] doubles, zeroed first; pipeline_sync_gather waits for this
 * replica's and puts them, times scale, at rows [first, first + n)), sums it over the ranks, and
 * hands it to every replica (pipeline_sync_resume), which runs on to the next point or to the end
 * of the step. Forward partials go in unscaled; backward ones scaled by n / N, the replica's share
 * (each replica's loss is the mean over its own rows). The statistics, running statistics and
 * input gradients are then the one-device step's. */
typedef struct pipeline_sync_point {
    int layer;
    bool backward;
    int channels;
} pipeline_sync_point;
int pipeline_sync_points(const pipeline *p, pipeline_sync_point *out, int cap);
/* Without blocking: whether every gradient bucket of the step enqueued last has landed, and
 * whether the partials of the sync_bn point a step waits at have. */
bool pipeline_grads_ready(const pipeline *p);
bool pipeline_sync_ready(const pipeline *p);
graft_status pipeline_sync_gather(pipeline *p, const pipeline_sync_point *at, int first, int N,
                                  double scale, double *global, graft_error *e);
graft_status pipeline_sync_resume(pipeline *p, int N, const double *global, graft_error *e);

/* ---- GEMM shapes and tuning (autotune.c) ---- */
#define COMPILE_MAX_GEMM_SHAPES 256
/* The GEMMs the pipeline issues for graph g at this batch (as op_conv.c / op_dense.c issue
 * them), without repeats, at most cap; returns the count. only_trained: skip the backward
 * products of layers no gradient reaches and the weight gradients of frozen layers. ctx: leave
 * out the convolutions whose path on that device issues no GEMM (conv2d_uses_gemm; NULL: list
 * every product, as if each ran im2col). */
int compile_gemm_shapes(graft_context *ctx, const graph *g, size_t batch, bool only_trained,
                        gemm_shape *out, int cap);
/* The same for a whole recipe at its batch size: the model's products, and where `adapt:` aligns
 * features (coral, mmd, dann), also the products of its steps over a source and a target batch
 * (2B rows), DANN's discriminator and the alignment losses' own GEMMs. */
int compile_recipe_gemm_shapes(graft_context *ctx, const graft_recipe *r, bool only_trained,
                               gemm_shape *out, int cap);
/* A conv2d layer's op descriptor (shape, stride, padding, groups, bias; no epilogue). */
void plan_conv_desc(const layer *l, conv2d_desc *d);
typedef void (*tune_note_fn)(void *user, const char *note);
/* Before a run's first step: tune the recipe's shapes that have no results on this device, as
 * train.tune and GRAFT_TUNE say (auto: within 60 s), saying so through note: the GEMM shapes
 * first (three quarters of the budget when there are convolutions to tune), then the path of
 * each conv2d shape (conv2d_tune, with the tuned GEMMs in place; GRAFT_CONV set skips it). Only
 * a bad GRAFT_TUNE value is an error; a failed search leaves the defaults. steps: the run's
 * planned training steps; auto leaves out GEMMs that cannot repay their tuning over them (see
 * autotune.c; 0 = unknown, none left out for that reason). */
graft_status compile_autotune(graft_context *ctx, const graft_recipe *r, long steps,
                              tune_note_fn note,
                              void *user, tune_summary *sum, graft_error *e);

/* ---- the compiled view of a recipe (planview.c): `graft plan`, graft_recipe_plan_json ---- */
typedef struct plan_view {
    const graft_recipe *r;
    graph_plan plan; /* the compiler's own analysis: backward, caching, memory */
    bool ws_device;  /* plan.mem.workspace is the recipe's device's (else the bound) */
    bool *backward;  /* per layer, from plan */
    bool cache;
    char cache_reason[512];
    /* where the cache lives: device memory while every split's features fit in the budget */
    double cache_row_bytes, cache_device_budget; /* budget 0: no device found */
    char cache_device[256];
    /* whether training fits the recipe's device (the trainer's own check before epoch 1) */
    int fit; /* -1 no device, 0 does not fit, 1 fits */
    char fit_text[1700];
} plan_view;

graft_status plan_view_build(const graft_recipe *r, plan_view *v, graft_error *e);
void plan_view_free(plan_view *v);
/* Device bytes domain adaptation adds to a training step at train.batch_size `batch` (adapt:
 * alignment workspace or DANN's discriminator). */
size_t plan_adapt_bytes(const graft_recipe *r, int batch);
/* Where the feature cache lives, in words. */
void plan_view_cache_location(const plan_view *v, char *out, size_t n);
/* One JSON object: recipe, name, input_shape, checkpoint, layers, totals, feature_cache, memory.
 * The caller json_decref()s it. */
struct json_t;
struct json_t *plan_view_json(const plan_view *v);

#endif

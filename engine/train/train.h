/* train.h — the train stage: the training loop over a compiled pipeline (schedules, checkpoints and
 * exact resume, early stopping, gradual unfreezing, feature caching), evaluation and prediction. */
#ifndef GRAFT_TRAIN_H
#define GRAFT_TRAIN_H

#include "compile.h"
#include "data.h"
#include "recipe.h"

typedef struct train_progress {
    int epoch, epochs;        /* 1-based epoch */
    long batch, nbatches;     /* batches done in this epoch */
    double loss, accuracy;    /* running means over the epoch so far */
    double images_per_second; /* this epoch so far */
    double eta_seconds;       /* rest of this epoch */
    bool epoch_done;
    double val_loss, val_accuracy; /* when epoch_done and a validation split exists (else NAN) */
    double lr;
    const char *note; /* an event worth a line ("compiling kernels", "unfreezing: ...") or NULL */
} train_progress;

/* Frozen features kept across training runs in one process (graft sweep): variants whose frozen
 * prefix has the same layers, the same weights and the same input split get the features the
 * first one computed. Keys are SHA-256 over the prefix's layer settings, every prefix tensor and
 * the split's samples, so a hit is the same computation, never a guess. */
typedef struct feature_pool_entry {
    uint8_t key[32];
    long n, fs;
    float *x;
} feature_pool_entry;
typedef struct feature_pool {
    int n, cap;
    feature_pool_entry *items;
    long hits, misses; /* splits reused and computed */
    size_t bytes, max_bytes; /* held; no new entries past max_bytes (0: 1 GiB) */
} feature_pool;
void feature_pool_free(feature_pool *p);

/* ---- a run's epoch end on disk (ckpt.c) ---- */
typedef struct ckpt_job {
    char dir[2048];
    int epoch;              /* 1-based, for the messages */
    bool best;              /* model.safetensors too */
    char *metrics;          /* metrics.jsonl, whole */
    char *model, *state;    /* safetensors files: the model's tensors (model and last), the state */
    /* model.safetensors of an earlier best epoch whose own checkpoint was skipped
     * (train.checkpoint_seconds), written instead of model when not best; NULL: none */
    char *best_model;
    size_t metrics_len, model_len, state_len, best_model_len;
} ckpt_job;
typedef struct ckpt_writer ckpt_writer;
/* Write the job's files now, in the order a kill at any point leaves resumable. */
graft_status ckpt_commit(const ckpt_job *j, graft_error *e);
/* Hand the job over (its buffers become the writer's; *wp is created at the first call): it is
 * written while the caller goes on. Waits for the job before first, and returns its error
 * instead (the new job is dropped then). */
graft_status ckpt_submit(ckpt_writer **wp, ckpt_job *job, graft_error *e);
/* Wait until every job handed over is on disk; the first failure since the last wait, if any. */
graft_status ckpt_wait(ckpt_writer *w, graft_error *e);
/* Finish the job in flight (never cut a file short) and stop the thread. */
void ckpt_free(ckpt_writer *w);
void ckpt_job_clear(ckpt_job *j);

/* ---- across processes (dist.c): MPI when built with it and started by mpirun ---- */
typedef struct dist {
    bool active; /* MPI_Init was called */
    int rank, size, local_rank;
    double timeout; /* seconds a step waits for its peers (GRAFT_DIST_TIMEOUT, default 20) */
    double limit;   /* the bound of the waits in progress: timeout, or more (the first step) */
    void *pending;  /* the bucket allreduces in flight (MPI_Request array) */
    int npending, cap;
    /* every rank's process id and host (a hash of its name), traded once at the start: a rank
     * whose process on this host is gone can be named from a signal handler (dist_lost_local) */
    long *pid;
    unsigned long *host;
} dist;
bool dist_built(void); /* this build has MPI (-Dmpi) */
/* Join the MPI job when mpirun started the process; else rank 0 of 1 (no MPI call at all). */
graft_status dist_init(dist *d, graft_error *e);
void dist_finalize(dist *d);
/* After an error on one rank: end the whole job, so no peer waits for it. */
void dist_abort(dist *d);
/* Every rank at the same step, waiting at most timeout seconds: else an error naming the ranks
 * that did not answer (dead or hung). */
graft_status dist_check_peers(dist *d, long step, double timeout, graft_error *e);
/* Element-wise sums over the ranks, in place (the epoch's metrics). */
graft_status dist_sum_f64(dist *d, double *x, int n, graft_error *e);
/* Every rank here, waiting at most limit seconds; what names the barrier in the error. */
graft_status dist_barrier(dist *d, const char *what, double limit, graft_error *e);
/* The ranks on this host whose process is gone (no such process, or a zombie), as "1, 3" into
 * out (cap bytes); returns how many. Async-signal-safe: for the SIGTERM mpirun sends when a
 * rank died, before it ends this one. */
int dist_lost_local(const dist *d, char *out, size_t cap);
/* A gradient bucket's sum over the ranks, started without waiting (x must stay put until
 * dist_sum_finish, which waits for every bucket started, bounded like the rest). */
graft_status dist_sum_start(dist *d, float *x, long n, graft_error *e);
graft_status dist_sum_finish(dist *d, graft_error *e);

typedef struct train_options {
    const char *device;  /* overrides recipe.device */
    const char *devices; /* overrides train.devices: replicas, one per device (SPEC,SPEC | all) */
    dist *dist;          /* NULL or one rank: this process trains alone */
    const char *out_dir; /* overrides recipe.output */
    const char *resume;  /* run directory to resume from */
    void (*progress)(void *user, const train_progress *p);
    void *user;
    /* nonzero (set by progress or another thread) ends training after the current step, as
     * train.max_steps does: the epoch so far is checkpointed and the test split evaluated */
    const volatile int *stop;
    feature_pool *pool; /* NULL: features are computed for this run only */
} train_options;

#define SPLIT_MAX_WORKERS 64 /* workers whose split a summary records */
typedef struct train_summary {
    double test_accuracy, test_loss;
    int best_epoch, epochs_run;
    bool stopped_early;
    long steps;
    double train_seconds, images_per_second;
    char device[256];     /* with replicas: their devices joined by " + " */
    int replicas;         /* data-parallel replicas in this process (1: one device) */
    int ranks;            /* processes of an MPI job (1: none) */
    double allreduce_seconds_per_step; /* host time reducing gradient buckets, per step */
    /* train.split: throughput: the rows of a full global batch per worker (rank-major), as
     * "34+16", and each worker's measured images/s (0 when split is even) */
    char split[SPLIT_MAX_WORKERS * 8];
    int nworkers;
    double worker_ips[SPLIT_MAX_WORKERS];
    int worker_rows[SPLIT_MAX_WORKERS];
    long params_total, params_trainable;
    bool feature_cache;
    bool feature_cache_device; /* the cache lived in device memory */
    bool feature_cache_test_streamed; /* the test split's features were made as it was evaluated */
    /* times the host waited for the device in the training loop (staging reuse, statistics
     * read-backs), per step; epoch ends and evaluation are not counted */
    double host_syncs_per_step;
    long checkpoints; /* epoch-end checkpoints this process wrote (train.checkpoint_seconds) */
    char feature_cache_reason[320];
    char out_dir[2048];
    /* adapt: test_accuracy is the target domain's (data.test); the source domain's test split
     * (adapt.source_test, NAN without one) and the target accuracy before AdaBN (NAN without it) */
    double source_test_accuracy, target_accuracy_before_adabn;
    double align_loss; /* the last epoch's mean alignment loss (NAN when none) */
} train_summary;

graft_status graft_train(graft_recipe *r, const train_options *o, train_summary *out,
                         graft_error *e);
/* Whether a feature cache of `bytes` in all (its largest split `largest` bytes) lives in device
 * memory: at most transfer.cache_device_fraction of the device's global memory, and each split
 * within one allocation. Otherwise it stays in host memory. */
/* Data parallelism: rows [*first, *first + *count) of a global batch of n go to replica k of
 * nrep (an even split; the first n % nrep replicas take one row more). */
void train_shard(int n, int nrep, int k, int *first, int *count);
/* train.split: throughput: the rows of each of nw workers in a global batch of n, proportional to
 * the weights w (largest remainders, ties to the lower worker; counts sum to n). Workers in
 * order take contiguous rows, as with train_shard. */
void train_split(int n, int nw, const double *w, int *count);
bool train_cache_on_device(double bytes, double largest, double fraction,
                           const graft_device_info *info);

/* ---- adapt (adabn.c) ---- */
/* AdaBN: re-estimate every batchnorm layer's running statistics in store on target (forward only,
 * batch statistics, averaged over the batches as PyTorch's momentum=None does). *batches gets
 * the number of batches used (may be NULL). */
graft_status train_adabn(graft_context *ctx, const graft_recipe *r, param_store *store,
                         const dataset *target, long *batches, graft_error *e);
/* adapt.target (unlabelled, all samples, the recipe's normalisation) and adapt.source_test. */
graft_status train_load_target(const graft_recipe *r, dataset *out, graft_error *e);
graft_status train_load_source_test(const graft_recipe *r, dataset *out, graft_error *e);
typedef struct adapt_result {
    long samples, batches;
} adapt_result;
/* `graft adapt`: AdaBN on trained weights, written to out_path. */
graft_status graft_adapt(graft_recipe *r, const char *weights, const char *out_path,
                         const char *device, adapt_result *res, graft_error *e);
/* The plan graft train analyses for r's training at batch (every layer, the recipe's data
 * augmentation); plan_caches_prefix says whether it then computes the frozen prefix once, and
 * `graft bench` times the step the same rule gives. */
graft_status train_plan(const graft_recipe *r, int batch, graph_plan *gp, graft_error *e);

/* The frozen prefix [0, cut) of g with the store's weights, run once in evaluation mode over n
 * samples of x (sample floats each), batch rows at a time, as the feature cache runs it: *out is
 * n × *fs floats, malloc'ed. graft rank uses it outside a training run. */
graft_status train_prefix_features(graft_context *ctx, const graph *g, int cut, param_store *store,
                                   const float *x, long n, long sample, int batch, float **out,
                                   long *fs, graft_error *e);

typedef struct eval_result {
    double loss, accuracy;
    long n;
    int k;
    long *confusion; /* k*k, row = true class, column = predicted; malloc'ed */
} eval_result;

/* Evaluate weights on the recipe's test split. */
graft_status graft_evaluate(graft_recipe *r, const char *weights, const char *device,
                            eval_result *out, graft_error *e);
/* Samples [0, n) of a split through an evaluation, B a batch, without a wait per batch: the loss
 * and accuracy stay on the device for pipeline_stats_read; with confusion ([k, k], k the output
 * size) the logits come back 8 batches a wait and are tallied (truth row, argmax column). The
 * inputs are x (sample floats each), or rows of table (a device feature cache) when given; with
 * prefix as well, each batch of x goes through prefix (a frozen prefix's features-only pipeline)
 * into the table's first rows (B of them at least) and p evaluates those. */
graft_status eval_batches(pipeline *p, pipeline *prefix, const float *x, long sample,
                          cl_mem table, const int *y, long n, int B, long *confusion,
                          graft_error *e);
void eval_result_free(eval_result *r);
/* {loss, accuracy, n, per_class_accuracy, confusion} (`graft eval --json`); json_decref it. */
struct json_t;
struct json_t *eval_result_json(const eval_result *r);

/* Logits for every row of an .npy input (N×C×H×W or N×F float32 / uint8), written as float32 .npy. */
graft_status graft_predict(graft_recipe *r, const char *weights, const char *input,
                           const char *output, const char *device, long *rows, graft_error *e);

/* Logits (n × outputs, into the caller's array) for n rows of the model input given as raw values:
 * kind 'f' with itemsize 4 or 8 (already preprocessed), or 'u' with itemsize 1 (pixels, scaled and
 * normalised as training data is). */
graft_status graft_predict_rows(graft_recipe *r, const char *weights, const char *device,
                                const void *data, char kind, int itemsize, long n, float *logits,
                                graft_error *e);

/* Class probabilities (softmax of the logits) for image files, each prepared as the folder source
 * prepares evaluation images; *probs is nfiles × *k, malloc'ed. */
graft_status graft_predict_images(graft_recipe *r, const char *weights, const char *const *files,
                                  int nfiles, const char *device, float **probs, int *k,
                                  graft_error *e);

#endif

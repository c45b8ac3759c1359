/* trainer.c — `graft train`: data, compile, the epoch loop, checkpoints with exact resume, early
 * stopping, gradual unfreezing and automatic feature caching. Every file of the run directory is
 * written aside and renamed, so a kill at any moment leaves the previous checkpoint whole. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"
#include "tune.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Everything the loop needs, so helpers can share it. */
typedef struct run {
    graft_recipe *r;
    ckpt_writer *ckw; /* the epoch ends on disk (rank 0) */
    graft_context *ctx;
    const train_options *o;
    char dir[2048];
    dataset train, val, test;
    bool have_val;
    param_store store;
    /* compiled state for the current freeze phase */
    pipeline *head;      /* the pipeline that trains (first = cut when caching) */
    bool cached;         /* features of the frozen prefix are precomputed */
    int cut;
    dataset ftrain, fval, ftest; /* cached features (x only is ours; y borrowed) */
    bool on_device;      /* the cached features live in device memory (x is then NULL) */
    cl_mem dtrain, dval, dtest;
    /* the test split's features made as it is evaluated, a batch at a time, by the frozen prefix
     * kept for that (dtest then holds one batch): see compile_phase */
    pipeline *tprefix;
    graph prefix; /* the recipe's graph through the cut, which a prefix pipeline points to */
    char cache_reason[320];
    buf metrics;         /* metrics.jsonl so far */
    /* progress of training, saved for resume */
    int epoch;           /* next epoch to run, 0-based */
    long step;
    double best_metric;
    int best_epoch, bad_epochs;
    bool stopped_early;
    double train_seconds;
    long images_seen;
    long loop_steps, loop_syncs; /* this process's training steps and the host waits in them */
    /* epoch-end checkpoints (train.checkpoint_seconds): when the last was handed over, the epoch
     * on disk (0: none), an epoch end not written yet (the store and the fields above still hold
     * it), the model of a best epoch not written yet (with validation: encoded, kept until the
     * next checkpoint), and how many this process wrote */
    double ckpt_time;
    int ckpt_epoch;
    bool ckpt_pending, ckpt_improved;
    long ckpt_step, ckpt_tpos; /* the pending epoch end's step and target-stream position */
    int ckpt_tepoch;
    int model_epoch; /* the epoch whose own weights a checkpoint wrote as model.safetensors */
    char *best_model;
    size_t best_model_len;
    long checkpoints;
    char recipe_hash[40]; /* what checkpoints carry as recipe_sha256 ("" until the first) */
    char ckpt_failed[600]; /* why keep_pending could not write the last good epoch end */
    /* adapt: the unlabelled target stream (cycling on its own; its position is saved state), the
     * source test split, and the combined source + target batch of an aligning step
     * (recipe_aligns) */
    dataset target, stest;
    batcher *tb;
    batcher *eb;  /* the training split's, kept from epoch to epoch until the pipeline changes */
    int tepoch;   /* target epoch in progress */
    long tpos;    /* target batches taken in it */
    float *xcomb;
    int *ycomb;
    double source_accuracy, target_accuracy_before; /* after training, before AdaBN */
    /* for summary.json and report.html: the trainable set of each phase this process ran, the
     * test split's confusion matrix, and where the time went */
    json_t *phases;
    long *confusion;
    int nclasses;
    double t_start, data_seconds, compile_seconds, val_seconds, test_seconds;
    /* data parallelism (train.devices, --devices): replica k runs pipeline rep[k] on context
     * rctx[k]; replica 0 is ctx / head, which alone evaluates and is checkpointed (every replica
     * holds the same weights after each step). nrep 1: the one-device path, untouched. */
    int nrep;
    graft_context *rctx[DEVSPEC_MAX_LIST];
    pipeline *rep[DEVSPEC_MAX_LIST];
    float *gsum;              /* the reduced gradients of a step (the bucket layout) */
    long gtotal;              /* floats in gsum */
    /* across processes (mpirun): this rank's place; rank 0 alone writes the run directory */
    dist *D;
    int world, rank;
    bool peers_checked; /* a step has met every peer since the last compile */
    double allreduce_seconds; /* host time reducing the replicas' gradient buckets */
    long dp_steps;
    /* train.split: throughput: after the first step of a compile (PoCL builds kernels at their
     * first launch), SPLIT_CALIBRATION_STEPS steps split evenly are timed per worker (its busy
     * time: from its enqueue to its last gradient bucket landing, less its waits at sync_bn
     * points); then every worker (rank-major, world * nrep)
     * takes rows in proportion to its measured images/s, the same split on every rank */
    int split_step;        /* data-parallel steps since the last compile */
    double *wrows, *wsecs; /* calibration sums per worker (this rank's only; summed over ranks) */
    double *weight;        /* each worker's images/s; NULL: the even split */
    int *wcount;           /* scratch: rows per worker of the step */
} run;

/* Across processes: the barrier after compiling waits BUILD_WAIT_FACTOR times
 * GRAFT_DIST_TIMEOUT (a cold build of every program), the first step after it FIRST_STEP_SLACK
 * seconds more than the others. */
#define BUILD_WAIT_FACTOR 15
#define FIRST_STEP_SLACK 30.0

/* How often the progress display reads the loss back from the device (the CLI redraws at most
 * ten times a second); without a progress callback it is read once per epoch. The epoch's totals
 * do not depend on it (pipeline_stats_total): GRAFT_PROGRESS_READ_STEPS=N reads after every N
 * steps instead, so that a test can group the reads differently and compare. */
#define PROGRESS_READ_SECONDS 0.1

static long progress_read_steps(void)
{
    const char *v = getenv("GRAFT_PROGRESS_READ_STEPS");
    char *end;
    long n = v && *v ? strtol(v, &end, 10) : 0;
    return v && *v && !*end && n > 0 ? n : 0;
}

/* Whether this process writes the run directory (rank 0, or the only process). */
static bool writer(const run *R)
{
    return R->rank == 0;
}

static double schedule_lr(const train_spec *t, double epoch_frac)
{
    double lr = t->lr;
    if (t->warmup_epochs > 0 && epoch_frac < t->warmup_epochs)
        return lr * (epoch_frac + 1e-9) / t->warmup_epochs;
    switch (t->schedule) {
    case SCHED_STEP:
        if (t->step_size > 0) lr *= pow(t->gamma, floor(epoch_frac / t->step_size));
        break;
    case SCHED_COSINE: {
        double span = t->epochs - t->warmup_epochs;
        double pos = (epoch_frac - t->warmup_epochs) / (span > 0 ? span : 1);
        if (pos > 1) pos = 1;
        lr *= 0.5 * (1 + cos(M_PI * pos));
        break;
    }
    default: break;
    }
    return lr;
}

static void free_features(run *R)
{
    if (!R->cached) return;
    pipeline_free(R->tprefix);
    R->tprefix = NULL;
    cl_mem *dev[] = {&R->dtrain, &R->dval, &R->dtest};
    for (int i = 0; i < 3; i++) {
        if (*dev[i]) clReleaseMemObject(*dev[i]);
        *dev[i] = NULL;
    }
    R->on_device = false;
    free(R->ftrain.x);
    free(R->fval.x);
    free(R->ftest.x);
    memset(&R->ftrain, 0, sizeof R->ftrain);
    memset(&R->fval, 0, sizeof R->fval);
    memset(&R->ftest, 0, sizeof R->ftest);
    R->cached = false;
}

void feature_pool_free(feature_pool *p)
{
    for (int i = 0; i < p->n; i++) free(p->items[i].x);
    free(p->items);
    memset(p, 0, sizeof *p);
}

static void hash_i(sha256_ctx *h, long v) { sha256_update(h, &v, sizeof v); }

/* The pool key of a split's features: what the prefix computes (its layers' settings and every
 * tensor they hold) and what it computes it on (the split's samples). */
static void pool_key(run *R, const dataset *src, uint8_t key[32])
{
    sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, "graft-features-1", 16);
    const graph *g = &R->r->graph;
    hash_i(&h, R->cut);
    hash_i(&h, R->r->train.batch_size);
    for (int i = 0; i < R->cut; i++) {
        const layer *l = &g->layers[i];
        sha256_update(&h, l->name, strlen(l->name) + 1);
        long f[] = {l->type, l->ninputs, l->in.rank, l->in.d[0], l->in.d[1], l->in.d[2],
                    l->out.rank, l->out.d[0], l->out.d[1], l->out.d[2], l->filters,
                    l->kernel[0], l->kernel[1], l->stride[0], l->stride[1], l->pad[0], l->pad[1],
                    l->groups, l->units, l->bias, l->pool[0], l->pool[1], l->pool_stride[0],
                    l->pool_stride[1], l->pool_pad[0], l->pool_pad[1]};
        sha256_update(&h, f, sizeof f);
        for (int k = 0; k < l->ninputs; k++) hash_i(&h, l->inputs[k]);
        float fl[] = {l->momentum, l->eps, l->slope, l->rate};
        sha256_update(&h, fl, sizeof fl);
        for (int j = 0; j < l->nparams; j++) {
            param_entry *p = store_find(&R->store, l->params[j].name);
            if (!p) continue;
            sha256_update(&h, p->name, strlen(p->name) + 1);
            sha256_update(&h, p->data, (size_t)p->count * sizeof(float));
        }
    }
    hash_i(&h, src->n);
    hash_i(&h, src->sample);
    sha256_update(&h, src->x, (size_t)src->n * (size_t)src->sample * sizeof(float));
    sha256_final(&h, key);
}

static feature_pool_entry *pool_find(feature_pool *p, const uint8_t key[32])
{
    for (int i = 0; i < p->n; i++)
        if (memcmp(p->items[i].key, key, 32) == 0) return &p->items[i];
    return NULL;
}

/* Keep a copy of features in the pool (nothing happens past its size limit or without memory:
 * the pool only saves time). */
static void pool_add(feature_pool *p, const uint8_t key[32], const float *x, long n, long fs)
{
    size_t bytes = (size_t)n * (size_t)fs * sizeof(float);
    size_t limit = p->max_bytes ? p->max_bytes : (size_t)1 << 30;
    if (p->bytes + bytes > limit) return;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        feature_pool_entry *it = realloc(p->items, (size_t)cap * sizeof *it);
        if (!it) return;
        p->items = it;
        p->cap = cap;
    }
    float *copy = malloc(bytes ? bytes : 1);
    if (!copy) return;
    memcpy(copy, x, bytes);
    feature_pool_entry *en = &p->items[p->n++];
    memcpy(en->key, key, 32);
    en->n = n;
    en->fs = fs;
    en->x = copy;
    p->bytes += bytes;
}

/* dst: src's labels and count, with samples of the prefix's output size and no x (yet) */
static long feature_split(pipeline *prefix, const dataset *src, dataset *dst)
{
    *dst = *src;
    dst->x = NULL;
    long fs = pipeline_output_size(prefix);
    dst->sample = fs;
    dst->c = (int)fs;
    dst->h = dst->w = 1;
    return fs;
}

/* Run the frozen prefix once over a split, keeping its output as the split's new samples: in
 * host memory (dst->x), or in a device buffer (*table) without reading anything back. With a
 * feature pool, a split whose features are there is not computed again, and new features are
 * added to it. */
static graft_status features_of(run *R, pipeline *prefix, const dataset *src, dataset *dst,
                                cl_mem *table, graft_error *e)
{
    const long fs = feature_split(prefix, src, dst);
    if (src->n == 0) return GRAFT_OK;
    graft_status s;
    feature_pool *pool = R->o->pool;
    if (pool) {
        uint8_t key[32];
        pool_key(R, src, key);
        feature_pool_entry *hit = pool_find(pool, key);
        size_t bytes = (size_t)src->n * (size_t)fs * sizeof(float);
        if (hit && hit->n == src->n && hit->fs == fs) {
            pool->hits++;
            if (table) {
                if ((s = buffer_create(R->ctx, bytes, table, e))) return s;
                return buffer_write(R->ctx, *table, 0, hit->x, bytes, e);
            }
            dst->x = malloc(bytes);
            if (!dst->x) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for cached features");
            memcpy(dst->x, hit->x, bytes);
            return GRAFT_OK;
        }
        pool->misses++;
        /* computed in host memory (for the pool), then uploaded when the cache is on the device */
        float *x = malloc(bytes);
        if (!x) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for cached features");
        int B = R->r->train.batch_size;
        s = GRAFT_OK;
        for (long i = 0; i < src->n && !s; i += B) {
            int n = (int)(src->n - i < B ? src->n - i : B);
            s = pipeline_forward_features(prefix, src->x + i * src->sample, n, x + i * fs, e);
        }
        if (!s) pool_add(pool, key, x, src->n, fs);
        if (!s && table) {
            if (!(s = buffer_create(R->ctx, bytes, table, e)))
                s = buffer_write(R->ctx, *table, 0, x, bytes, e);
            free(x);
            return s;
        }
        if (s) {
            free(x);
            return s;
        }
        dst->x = x;
        return GRAFT_OK;
    }
    if (table) {
        if ((s = buffer_create(R->ctx, (size_t)src->n * (size_t)fs * sizeof(float), table, e)))
            return s;
    } else {
        dst->x = malloc((size_t)src->n * (size_t)fs * sizeof(float));
        if (!dst->x) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for cached features");
    }
    int B = R->r->train.batch_size;
    for (long i = 0; i < src->n; i += B) {
        int n = (int)(src->n - i < B ? src->n - i : B);
        const float *x = src->x + i * src->sample;
        s = table ? pipeline_forward_features_to(prefix, x, n, *table, i, e)
                  : pipeline_forward_features(prefix, x, n, dst->x + i * fs, e);
        if (s) return s;
    }
    return GRAFT_OK;
}

/* The frozen prefix [0, cut) of g with the store's weights, run once in evaluation mode over n
 * samples of x (the feature cache's forward, for callers outside a training run: graft rank).
 * *out (n × *fs floats) is malloc'ed. */
graft_status train_prefix_features(graft_context *ctx, const graph *g, int cut, param_store *store,
                                   const float *x, long n, long sample, int batch, float **out,
                                   long *fs, graft_error *e)
{
    *out = NULL;
    *fs = 0;
    graph prefix = *g;
    prefix.nlayers = cut;
    pipeline_options fo = {.max_batch = batch, .first = 0, .features_only = true};
    pipeline *fp;
    graft_status s = pipeline_create(ctx, &prefix, &fo, &fp, e);
    if (s) return s;
    if ((s = pipeline_upload(fp, store, e))) goto done;
    *fs = pipeline_output_size(fp);
    *out = malloc((size_t)(n ? n : 1) * (size_t)*fs * sizeof(float));
    if (!*out) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for %ld feature rows", n);
        goto done;
    }
    for (long i = 0; i < n && !s; i += batch) {
        int m = (int)(n - i < batch ? n - i : batch);
        s = pipeline_forward_features(fp, x + i * sample, m, *out + i * *fs, e);
    }
done:
    pipeline_free(fp);
    if (s) {
        free(*out);
        *out = NULL;
    }
    return s;
}

/* Where the feature cache lives: on the device when all splits' features take at most
 * transfer.cache_device_fraction of its global memory (and each fits one allocation). */
bool train_cache_on_device(double bytes, double largest, double fraction,
                           const graft_device_info *info)
{
    return fraction > 0 && bytes <= fraction * (double)info->global_mem_bytes &&
           (!info->max_alloc_bytes || largest <= (double)info->max_alloc_bytes);
}

/* a progress note during epoch (1-based) */
static void notify_at(run *R, int epoch, const char *note)
{
    if (!R->o->progress) return;
    train_progress p = {.epoch = epoch, .epochs = R->r->train.epochs, .note = note,
                        .val_loss = NAN, .val_accuracy = NAN};
    R->o->progress(R->o->user, &p);
}

/* a note of the epoch about to run (after the last one: the last, see graft_train) */
static void notify(run *R, const char *note) { notify_at(R, R->epoch + 1, note); }

static void tune_note(void *user, const char *note) { notify(user, note); }

graft_status train_plan(const graft_recipe *r, int batch, graph_plan *gp, graft_error *e)
{
    return plan_analyse(&r->graph, true, r->transfer.bn_train, data_spec_augments(&r->data),
                        r->train.optimizer, r->train.l2sp > 0, 0, batch, gp, e);
}


/* Compile the pipelines for the current frozen set (and cache features when allowed). */
static graft_status compile_phase(run *R, graft_error *e)
{
    graft_recipe *r = R->r;
    if (R->head) {
        graft_status s = pipeline_download(R->head, &R->store, e);
        if (s) return s;
        pipeline_free(R->head);
        R->head = NULL;
        for (int k = 1; k < R->nrep; k++) {
            pipeline_free(R->rep[k]);
            R->rep[k] = NULL;
        }
    }
    bool first = !R->head; /* a later phase (an unfreeze) replaces the pipeline */
    batcher_free(R->eb); /* it may draw from the features about to go */
    R->eb = NULL;
    free_features(R);
    graph_plan gp;
    graft_status s = train_plan(r, r->train.batch_size, &gp, e);
    if (s) return s;
    bool any_trains = false;
    for (int i = 0; i < r->graph.nlayers; i++) any_trains |= gp.layers[i].trains;
    bool use_cache = plan_caches_prefix(r, &gp);
    snprintf(R->cache_reason, sizeof R->cache_reason, "%s%s",
             r->transfer.cache_features == CACHE_OFF && gp.cacheable ? "off by recipe; " : "",
             recipe_aligns(r) && gp.cacheable ? recipe_align_reason : gp.cache_reason);
    R->cut = use_cache ? gp.cache_cut : 0;
    plan_free(&gp);
    if (!any_trains)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "nothing to train: every layer with parameters is frozen");
    {
        json_t *ph = json_object(), *tr = json_array();
        for (int i = 0; i < r->graph.nlayers; i++)
            json_array_append_new(tr, json_boolean(!r->graph.layers[i].frozen &&
                                                   layer_param_count(&r->graph.layers[i]) > 0));
        json_object_set_new(ph, "from_epoch", json_integer(R->epoch + 1));
        json_object_set_new(ph, "trainable_params",
                            json_integer(graph_param_count(&r->graph, true)));
        json_object_set_new(ph, "trainable", tr);
        json_array_append_new(R->phases, ph);
    }
    if (r->transfer.cache_features == CACHE_ON && !use_cache)
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "transfer.cache_features is on, but the frozen prefix cannot be cached: %s",
                       R->cache_reason);
    unsigned am = r->adapt.present ? r->adapt.methods : 0;
    pipeline_options po = {.max_batch = recipe_step_rows(R->r, r->train.batch_size),
                           .align = am & ADAPT_CORAL ? ALIGN_CORAL
                                    : am & ADAPT_MMD ? ALIGN_MMD
                                    : am & ADAPT_DANN ? ALIGN_DANN
                                                      : 0,
                           .disc = am & ADAPT_DANN ? &r->adapt.disc_graph : NULL,
                           .disc_dropout = (float)r->adapt.disc_dropout,
                           .align_layer = recipe_aligns(R->r) ? r->adapt.layer : 0,
                           .training = true,
                           .bn_train = r->transfer.bn_train,
                           .first = R->cut,
                           .optimizer = r->train.optimizer,
                           .l2sp = r->train.l2sp > 0,
                           .label_smoothing = (float)r->train.label_smoothing,
                           .dropout_seed = r->train.seed * 1000003ull + 17,
                           .skip_nonfinite = r->train.on_nonfinite == NONFINITE_SKIP_BATCH,
                           .sync_bn = r->train.sync_bn && (R->nrep > 1 || R->world > 1)};
    /* (the first-run tuner has built programs of its own by now: not a sign of a later phase) */
    notify(R, first ? "compiling kernels (cached on disk for the next run)"
                    : "recompiling for the new frozen set");
    if (use_cache) {
        R->prefix = r->graph;
        R->prefix.nlayers = R->cut;
        pipeline_options fo = {.max_batch = r->train.batch_size, .first = 0,
                                 .features_only = true};
        pipeline *fp;
        if ((s = pipeline_create(R->ctx, &R->prefix, &fo, &fp, e))) return s;
        s = pipeline_upload(fp, &R->store, e);
        double row = (double)pipeline_output_size(fp) * sizeof(float);
        /* A test split read once, at the end (no adaptation evaluating it each epoch, no later
         * phase, no pool keeping it), gets its features then, a batch at a time into a table of
         * one batch that the head evaluates at once, where both pipelines fit the device
         * together: a table of the whole split would be written now by the one thread that
         * copies, a fresh page at a time, and read back once (fmnist-feature-extract: 5,000
         * test images, 62 MB). The prefix stays for that. */
        const bool both_fit = plan_overlap_fits(r, &R->ctx->info);
        const bool test_once = both_fit && R->test.n > 0 && !r->adapt.present &&
                               r->train.nunfreeze == 0 && !R->o->pool && R->nrep == 1;
        const long B = r->train.batch_size, tn = test_once && R->test.n > B ? B : R->test.n;
        long most = R->train.n > R->val.n ? R->train.n : R->val.n;
        most = most > tn ? most : tn;
        R->on_device = train_cache_on_device(row * (double)(R->train.n + R->val.n + tn),
                                             row * (double)most,
                                             r->transfer.cache_device_fraction, &R->ctx->info);
        /* replicas take their rows from host memory: a device table would live on one device */
        if (R->nrep > 1) R->on_device = false;
        R->cached = true;
        notify(R, R->on_device ? "computing frozen features once (feature cache in device memory)"
                               : "computing frozen features once (feature cache in host memory)");
        if (!s) s = features_of(R, fp, &R->train, &R->ftrain, R->on_device ? &R->dtrain : NULL, e);
        if (!s) s = features_of(R, fp, &R->val, &R->fval, R->on_device ? &R->dval : NULL, e);
        const bool overlap = R->on_device && both_fit, stream = R->on_device && test_once;
        if (!s && stream) {
            feature_split(fp, &R->test, &R->ftest);
            s = buffer_create(R->ctx, (size_t)tn * (size_t)row, &R->dtest, e);
        } else if (!s) {
            s = features_of(R, fp, &R->test, &R->ftest, R->on_device ? &R->dtest : NULL, e);
        }
        /* a device cache is filled without the host waiting: the training pipeline's programs
         * are built meanwhile, when both fit the device at once (its buffers too then) */
        if (!s && overlap) s = pipeline_create(R->ctx, &r->graph, &po, &R->head, e);
        if (!s && stream)
            R->tprefix = fp;
        else
            pipeline_free(fp); /* waits for the prefix's last batch */
        if (s) return s;
    }
    if (!R->head && (s = pipeline_create(R->ctx, &r->graph, &po, &R->head, e))) return s;
    pipeline_set_step(R->head, (uint64_t)R->step);
    R->rep[0] = R->head;
    for (int k = 1; k < R->nrep; k++) {
        if ((s = pipeline_create(R->rctx[k], &r->graph, &po, &R->rep[k], e))) {
            err_prefix(e, "replica %d (%s)", k, R->rctx[k]->info.name);
            return s;
        }
        pipeline_set_step(R->rep[k], (uint64_t)R->step);
        if ((s = pipeline_upload(R->rep[k], &R->store, e))) return s;
    }
    R->peers_checked = false;
    R->split_step = 0;
    const int nw = R->world * R->nrep;
    if (r->train.split == SPLIT_THROUGHPUT && nw > 1 && !R->wrows) {
        R->wrows = calloc((size_t)nw, sizeof *R->wrows);
        R->wsecs = calloc((size_t)nw, sizeof *R->wsecs);
        R->weight = NULL;
        R->wcount = calloc((size_t)nw, sizeof *R->wcount);
        if (!R->wrows || !R->wsecs || !R->wcount)
            return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    if (R->nrep > 1 || R->world > 1) {
        /* the reduced gradients: the bucket layout of this phase's trainable set */
        int nb;
        const long *off, *count;
        if ((s = pipeline_grad_layout(R->head, &nb, &off, &count, e))) return s;
        long total = nb ? off[nb - 1] + count[nb - 1] : 1;
        free(R->gsum);
        if (!(R->gsum = malloc((size_t)total * sizeof(float))))
            return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for %ld gradients", total);
        R->gtotal = total;
    }
    s = pipeline_upload(R->head, &R->store, e);
    /* every rank has built its kernels (cold builds differ between ranks by minutes), so the
     * first step's waits need not cover them */
    if (!s && R->world > 1)
        s = dist_barrier(R->D, "the barrier after compiling", R->D->timeout * BUILD_WAIT_FACTOR,
                         e);
    return s;
}

/* The share of replica k in a global batch of n rows: even, the first n % nrep replicas one row
 * more; rows [*first, *first + *count) in the batch order, so each example of an epoch goes to
 * exactly one replica. */
void train_shard(int n, int nrep, int k, int *first, int *count)
{
    int base = n / nrep, extra = n % nrep;
    *count = base + (k < extra);
    *first = k * base + (k < extra ? k : extra);
}

static void split_wait(run *R, const int *cnt, bool sync, double *t_seg, double *busy);

/* train.sync_bn: the step of every replica stops at each batchnorm (pipeline_sync_points, the same
 * list on every rank, so a rank with no rows still joins each sum); the replicas' per-plane
 * partials are gathered into the global batch's rows, summed over the ranks, and handed back to
 * every replica, which normalises (or, in backward, takes the gradient) as one device would.
 * t_seg, busy: with split calibration (else NULL), each replica's start of the segment it runs
 * and its busy seconds so far; the wait at each point is not counted as busy. */
static graft_status sync_bn_steps(run *R, int n, const int *first, const int *cnt, double *t_seg,
                                  double *busy, graft_error *e)
{
    int np = pipeline_sync_points(R->head, NULL, 0);
    if (!np) return GRAFT_OK;
    pipeline_sync_point *pt = malloc((size_t)np * sizeof *pt);
    if (!pt) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    pipeline_sync_points(R->head, pt, np);
    int most = 1;
    for (int q = 0; q < np; q++) most = pt[q].channels > most ? pt[q].channels : most;
    double *global = malloc(2 * (size_t)most * (size_t)n * sizeof *global);
    if (!global) {
        free(pt);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    graft_status s = GRAFT_OK;
    for (int q = 0; q < np && !s; q++) {
        long count = 2L * pt[q].channels * n;
        memset(global, 0, (size_t)count * sizeof *global);
        if (busy) split_wait(R, cnt, true, t_seg, busy);
        for (int k = 0; k < R->nrep && !s; k++)
            if (cnt[k])
                s = pipeline_sync_gather(R->rep[k], &pt[q], first[k], n,
                                         pt[q].backward ? (double)cnt[k] / n : 1.0, global, e);
        if (!s && R->world > 1) {
            if (count > 0x7fffffffL)
                s = err_set(e, GRAFT_STATUS_UNSUPPORTED, "sync_bn: %ld partials", count);
            else s = dist_sum_f64(R->D, global, (int)count, e);
        }
        for (int k = 0; k < R->nrep && !s; k++) {
            if (t_seg) t_seg[k] = now_seconds();
            if (cnt[k]) s = pipeline_sync_resume(R->rep[k], n, global, e);
        }
    }
    free(global);
    free(pt);
    return s;
}

#define SPLIT_CALIBRATION_STEPS 3

void train_split(int n, int nw, const double *w, int *count)
{
    double total = 0;
    for (int k = 0; k < nw; k++) total += w[k] > 0 ? w[k] : 0;
    int used = 0;
    for (int k = 0; k < nw; k++) {
        double q = total > 0 ? (double)n * (w[k] > 0 ? w[k] : 0) / total : (double)n / nw;
        count[k] = (int)floor(q);
        used += count[k];
    }
    /* the rows left: one each to the largest remainders (the lower worker on a tie) */
    while (used < n) {
        int best = 0;
        double bestr = -1;
        for (int k = 0; k < nw; k++) {
            double q = total > 0 ? (double)n * (w[k] > 0 ? w[k] : 0) / total : (double)n / nw;
            double r = q - count[k];
            if (r > bestr + 1e-12) {
                bestr = r;
                best = k;
            }
        }
        count[best]++;
        used++;
    }
}

/* The rows of this rank's replicas in a global batch of n: even, or by the measured weights. */
static void split_rows(run *R, int n, int *first, int *cnt)
{
    const int nw = R->world * R->nrep, me = R->rank * R->nrep;
    if (!R->weight) {
        for (int k = 0; k < R->nrep; k++) train_shard(n, nw, me + k, &first[k], &cnt[k]);
        return;
    }
    train_split(n, nw, R->weight, R->wcount);
    int at = 0;
    for (int w = 0; w < me + R->nrep; w++) {
        if (w >= me) {
            first[w - me] = at;
            cnt[w - me] = R->wcount[w];
        }
        at += R->wcount[w];
    }
}

/* Calibration: wait for every replica's segment to end (its sync_bn partials landed, or with
 * sync false its last gradient bucket), adding to busy[k] the time from the segment's start
 * t_seg[k] to the moment that was seen. */
static void split_wait(run *R, const int *cnt, bool sync, double *t_seg, double *busy)
{
    bool done[DEVSPEC_MAX_LIST] = {0};
    for (int left = R->nrep; left > 0;) {
        left = 0;
        for (int k = 0; k < R->nrep; k++) {
            if (done[k] || !cnt[k]) continue;
            if (sync ? pipeline_sync_ready(R->rep[k]) : pipeline_grads_ready(R->rep[k])) {
                done[k] = true;
                busy[k] += now_seconds() - t_seg[k];
            } else left++;
        }
        struct timespec ts = {0, 50000};
        if (left) nanosleep(&ts, NULL);
    }
}

/* Calibration: the step's last segment waited for; each replica credited its rows and busy time. */
static void split_time(run *R, double *t_seg, double *busy, const int *cnt)
{
    const int me = R->rank * R->nrep;
    split_wait(R, cnt, false, t_seg, busy);
    for (int k = 0; k < R->nrep; k++)
        if (cnt[k]) {
            R->wrows[me + k] += cnt[k];
            R->wsecs[me + k] += busy[k];
        }
}

/* After calibration: every worker's images/s (summed over the ranks: each filled its own). */
static graft_status split_set(run *R, graft_error *e)
{
    const int nw = R->world * R->nrep;
    double *v = calloc(2 * (size_t)nw, sizeof *v);
    R->weight = calloc((size_t)nw, sizeof *R->weight);
    if (!v || !R->weight) {
        free(v);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    memcpy(v, R->wrows, (size_t)nw * sizeof *v);
    memcpy(v + nw, R->wsecs, (size_t)nw * sizeof *v);
    graft_status s = R->world > 1 ? dist_sum_f64(R->D, v, 2 * nw, e) : GRAFT_OK;
    double mean = 0;
    int measured = 0;
    for (int w = 0; w < nw && !s; w++)
        if (v[nw + w] > 0) {
            R->weight[w] = v[w] / v[nw + w];
            mean += R->weight[w];
            measured++;
        } else R->weight[w] = -1;
    /* a worker that had no rows to time (a batch smaller than the workers) counts as average */
    for (int w = 0; w < nw && !s; w++)
        if (R->weight[w] < 0) R->weight[w] = measured ? mean / measured : 1;
    free(v);
    if (s) return s;
    train_split(R->r->train.batch_size, nw, R->weight, R->wcount);
    char note[512] = "split by measured throughput:";
    for (int w = 0; w < nw; w++) {
        size_t used = strlen(note);
        snprintf(note + used, sizeof note - used, "%s%d", w ? " + " : " ", R->wcount[w]);
    }
    size_t used = strlen(note);
    snprintf(note + used, sizeof note - used, " rows of %d", R->r->train.batch_size);
    notify(R, note);
    return GRAFT_OK;
}

/* One data-parallel step: each replica runs forward and backward on its share of the batch (the
 * devices work at once: nothing waits until the reduction), then the gradient buckets are
 * reduced as they land, in backward order and in replica order (a fixed order, so a run is
 * reproducible): g = sum_k (n_k / n) g_k, the mean gradient over the global batch, since each
 * replica's loss is the mean over its n_k rows. Every replica then applies the same update. */
static graft_status dp_step(run *R, const float *x, const int *y, int n, const optim_hparams *h,
                            graft_error *e)
{
    long ss = pipeline_input_size(R->head);
    int first[DEVSPEC_MAX_LIST], cnt[DEVSPEC_MAX_LIST];
    graft_status s = GRAFT_OK;
    if (R->world > 1) {
        /* every wait on a peer in this step is bounded: the first step after compiling by
         * FIRST_STEP_SLACK seconds more (PoCL builds each kernel for its launch size at its
         * first launch: 23 s for LeNet-5 on 2 devices here with a cold cache; the programs
         * themselves were built before the barrier that ends compile_phase) */
        R->D->limit = R->D->timeout + (R->peers_checked ? 0 : FIRST_STEP_SLACK);
        R->peers_checked = true;
    }
    /* across processes, replica k of rank r is worker r * nrep + k of world * nrep */
    split_rows(R, n, first, cnt);
    const bool calibrate = R->wrows && !R->weight && R->split_step >= 1 &&
                           R->split_step <= SPLIT_CALIBRATION_STEPS;
    double t_enq[DEVSPEC_MAX_LIST], busy[DEVSPEC_MAX_LIST] = {0};
    for (int k = 0; k < R->nrep && !s; k++) {
        t_enq[k] = now_seconds();
        if (cnt[k])
            s = pipeline_train_grads(R->rep[k], x + (long)first[k] * ss, y + first[k], cnt[k],
                                     first[k], e);
    }
    if (!s)
        s = sync_bn_steps(R, n, first, cnt, calibrate ? t_enq : NULL, calibrate ? busy : NULL, e);
    if (!s && calibrate) split_time(R, t_enq, busy, cnt);
    R->split_step++;
    if (!s && calibrate && R->split_step > SPLIT_CALIBRATION_STEPS) s = split_set(R, e);
    if (s) return s;
    int nb;
    const long *off, *count;
    if ((s = pipeline_grad_layout(R->head, &nb, &off, &count, e))) return s;
    double t0 = now_seconds();
    if (R->world > 1) {
        /* every rank is at this step (a bounded wait: a dead or hung rank is named) */
        s = dist_check_peers(R->D, R->step, R->D->limit, e);
    }
    for (int b = 0; b < nb && !s; b++) {
        float *dst = R->gsum + off[b];
        bool any = false;
        for (int k = 0; k < R->nrep && !s; k++) {
            if (!cnt[k]) continue;
            float *g;
            if ((s = pipeline_grad_bucket_wait(R->rep[k], b, &g, e))) break;
            float w = (float)cnt[k] / (float)n;
            if (!any)
                for (long i = 0; i < count[b]; i++) dst[i] = w * g[i];
            else
                for (long i = 0; i < count[b]; i++) dst[i] += w * g[i];
            any = true;
        }
        if (!any) memset(dst, 0, (size_t)count[b] * sizeof(float)); /* a rank with no rows */
        /* across ranks: the bucket's sum starts now, while the next buckets land; the sum of the
         * ranks' weighted gradients is the mean over the global batch */
        if (!s && R->world > 1) s = dist_sum_start(R->D, dst, count[b], e);
    }
    if (R->world > 1) {
        if (s) R->D->npending = 0; /* the job is aborted: the sums in flight are abandoned */
        else s = dist_sum_finish(R->D, e); /* waits for every bucket's sum */
    }
    R->allreduce_seconds += now_seconds() - t0;
    R->dp_steps++;
    if (R->world > 1) R->D->limit = R->D->timeout;
    for (int k = 0; k < R->nrep && !s; k++) s = pipeline_apply_grads(R->rep[k], R->gsum, h, e);
    return s;
}

/* The training statistics of every replica, summed (pipeline_stats_read on each). */
static graft_status stats_read_all(run *R, bool wait, pipeline_stats *out, graft_error *e)
{
    graft_status s = pipeline_stats_read(R->head, wait, out, e);
    for (int k = 1; k < R->nrep && !s; k++) {
        pipeline_stats st;
        s = pipeline_stats_read(R->rep[k], wait, &st, e);
        out->loss_sum += st.loss_sum;
        out->correct += st.correct;
        out->samples += st.samples;
    }
    return s;
}

/* The device table of a split's cached features, or NULL when batches come from host memory. */
static cl_mem split_table(run *R, int which)
{
    if (!R->on_device) return NULL;
    return which == 0 ? R->dtrain : which == 1 ? R->dval : R->dtest;
}

static const dataset *split(run *R, int which)
{
    if (R->cached) return which == 0 ? &R->ftrain : which == 1 ? &R->fval : &R->ftest;
    return which == 0 ? &R->train : which == 1 ? &R->val : &R->test;
}

/* Loss and accuracy of a split: every batch's statistics stay on the device and are read back
 * once, at the end (eval_batches). The caller has collected the training statistics before. */
static graft_status evaluate_split(run *R, int which, double *loss, double *acc,
                                   long *confusion, graft_error *e)
{
    const dataset *d = split(R, which);
    pipeline *prefix = which == 2 ? R->tprefix : NULL;
    graft_status s = eval_batches(R->head, prefix, prefix ? R->test.x : d->x,
                                  prefix ? R->test.sample : d->sample, split_table(R, which),
                                  d->y, d->n, R->r->train.batch_size, confusion, e);
    if (s) return s;
    pipeline_stats st;
    if ((s = pipeline_stats_read(R->head, true, &st, e))) return s;
    if (st.samples != d->n)
        return err_set(e, GRAFT_STATUS_INTERNAL, "evaluation read back %ld of %ld samples",
                       st.samples, d->n);
    *loss = d->n ? st.loss_sum / (double)d->n : NAN;
    *acc = d->n ? (double)st.correct / (double)d->n : NAN;
    return GRAFT_OK;
}

/* The freeze selector in force for a 0-based epoch: the recipe's, then each unfreeze step reached
 * (unfreeze epochs are 1-based: `epoch: 3` changes the trainable set from the third epoch on). */
static const freeze_spec *phase_freeze(const graft_recipe *r, int epoch)
{
    const freeze_spec *f = &r->transfer.freeze;
    for (int i = 0; i < r->train.nunfreeze; i++)
        if (r->train.unfreeze[i].epoch <= epoch + 1) f = &r->train.unfreeze[i].freeze;
    return f;
}

static void path_in(const run *R, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", R->dir, name);
}

/* A checkpoint never holds NaN or Inf: the loss can stay finite while parameters are not (a ReLU
 * turns a NaN activation into 0, so the gradients behind it poison the weights silently). */
static graft_status check_weights_finite(run *R, graft_error *e)
{
    for (int i = 0; i < R->store.n; i++) {
        const param_entry *pe = &R->store.items[i];
        const long k = pe->data ? first_nonfinite_f32(pe->data, pe->count) : -1;
        if (k >= 0) {
            char kept[2400];
            if (R->ckpt_epoch > 0)
                snprintf(kept, sizeof kept,
                         "the last good checkpoint %s/last.safetensors (epoch %d) is kept",
                         R->dir, R->ckpt_epoch);
            else
                snprintf(kept, sizeof kept, "no checkpoint was written");
            return err_set(e, GRAFT_STATUS_BAD_DATA,
                           "%s is %s at the end of epoch %d although the loss stayed finite "
                           "(an activation such as relu hid it from the loss); %s; lower "
                           "train.lr or check the data for huge or non-finite values",
                           pe->name, isnan(pe->data[k]) ? "NaN" : "Inf", R->epoch, kept);
        }
    }
    return GRAFT_OK;
}

/* Files a killed graft left half-written in the run directory (NAME.tmp.PID of a process that is
 * gone): never read, removed when the next run (a resume or a fresh run) writes there. */
static void remove_dead_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *t = strstr(de->d_name, ".tmp.");
        if (!t) continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != ESRCH)) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0) continue;
        char path[2400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Before a resume: finish or drop an epoch end that a kill interrupted (commit_checkpoints). */
static graft_status recover_checkpoints(const char *dir, graft_error *e)
{
    remove_dead_temporaries(dir);
    char state_next[2400], last_next[2400], last[2300];
    snprintf(state_next, sizeof state_next, "%s/state.safetensors.next", dir);
    snprintf(last_next, sizeof last_next, "%s/last.safetensors.next", dir);
    snprintf(last, sizeof last, "%s/last.safetensors", dir);
    if (fs_exists(state_next)) {
        /* killed before the first rename: the previous pair is whole */
        unlink(state_next);
        unlink(last_next);
    } else if (fs_exists(last_next) && rename(last_next, last) != 0) {
        /* killed between the renames: state is the new epoch's, so is last.next */
        return err_set(e, GRAFT_STATUS_IO, "cannot rename %s to %s: %s", last_next, last,
                       strerror(errno));
    }
    return GRAFT_OK;
}

/* The model file's text of the store's weights as at the end of epoch R->epoch (model_meta). */
static graft_status encode_model(run *R, const char *hash, char **out, size_t *len,
                                 graft_error *e)
{
    char epoch[32], bm[64], mpath[2300];
    snprintf(epoch, sizeof epoch, "%d", R->epoch);
    snprintf(bm, sizeof bm, "%.17g", R->best_metric);
    const char *model_meta[] = {"format", "graft", "recipe_sha256", hash, "epoch", epoch,
                                "best_metric", bm};
    path_in(R, "last.safetensors.next", mpath, sizeof mpath);
    return store_encode(&R->store, false, mpath, model_meta, 4, out, len, e);
}

/* The recipe's hash as checkpoints carry it (16 bytes of the SHA-256 of its text, in hex), in
 * R->recipe_hash: the text is the same all run, so it is dumped and hashed once. */
static graft_status recipe_hash(run *R, graft_error *e)
{
    if (R->recipe_hash[0]) return GRAFT_OK;
    char *yaml = recipe_dump_yaml(R->r);
    /* without the text the checkpoint would carry the hash of "" as its recipe's */
    if (!yaml) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory writing the checkpoint");
    uint8_t h[32];
    sha256(yaml, strlen(yaml), h);
    hex_encode(h, 16, R->recipe_hash);
    free(yaml);
    return GRAFT_OK;
}

static graft_status write_checkpoints(run *R, bool best, graft_error *e);

/* An epoch end: the weights and optimizer state come back to the store (a non-finite replay of
 * the next epoch starts from them) and are checked. The checkpoint is written when the run ends
 * here (final), or train.checkpoint_seconds have passed since the last; else the epoch end stays
 * pending in the store (written at the next, or by finish_checkpoints), and with a validation
 * split a best epoch's model is encoded now and kept for it. A kill loses at most those seconds;
 * the resume reruns the epochs after the checkpoint, deterministically. */
static graft_status save_checkpoints(run *R, bool best, bool final, graft_error *e)
{
    graft_status s = pipeline_download(R->head, &R->store, e);
    if (!s) s = check_weights_finite(R, e);
    if (s) return s;
    const double every = R->r->train.checkpoint_seconds, now = now_seconds();
    if (final || every <= 0 || now - R->ckpt_time >= every) return write_checkpoints(R, best, e);
    R->ckpt_pending = true;
    R->ckpt_improved = R->ckpt_improved || best;
    R->ckpt_step = R->step;
    R->ckpt_tepoch = R->tepoch;
    R->ckpt_tpos = R->tpos;
    if (best && R->have_val && writer(R)) {
        free(R->best_model);
        R->best_model = NULL;
        if (!(s = recipe_hash(R, e)))
            s = encode_model(R, R->recipe_hash, &R->best_model, &R->best_model_len, e);
    }
    return s;
}

/* The epoch end still pending when the loop stops (a stop request that came after its last
 * checkpoint decision): written now, from the store. */
static graft_status finish_checkpoints(run *R, graft_error *e)
{
    if (!R->ckpt_pending) return GRAFT_OK;
    return write_checkpoints(R, R->best_epoch == R->epoch, e);
}

/* A non-finite loss stops the run in the epoch after a pending epoch end: that end, the last good
 * one, is written as it would have been (the store still holds it; the step counters are put back
 * to it), so the run keeps the same checkpoint it would have with train.checkpoint_seconds: 0.
 * A failed write leaves the previous checkpoint, and the message names that one. */
static void keep_pending(run *R)
{
    if (!R->ckpt_pending) return;
    const long step = R->step, tpos = R->tpos;
    const int tepoch = R->tepoch, had = R->ckpt_epoch;
    R->step = R->ckpt_step;
    R->tepoch = R->ckpt_tepoch;
    R->tpos = R->ckpt_tpos;
    graft_error ig = {0};
    if (write_checkpoints(R, false, &ig) || ckpt_wait(R->ckw, &ig)) {
        R->ckpt_epoch = had;
        snprintf(R->ckpt_failed, sizeof R->ckpt_failed, "%.590s", ig.message);
    }
    R->step = step;
    R->tepoch = tepoch;
    R->tpos = tpos;
}

static graft_status write_checkpoints(run *R, bool best, graft_error *e)
{
    graft_status s = GRAFT_OK;
    /* without validation the model is the last weights at the run's end (graft_train), so an
     * epoch since the last checkpoint that improved makes this one's weights model.safetensors */
    if (R->ckpt_improved && !R->have_val) best = true;
    if (best) { /* supersedes a pending best epoch's model */
        free(R->best_model);
        R->best_model = NULL;
        R->model_epoch = R->epoch;
    }
    R->ckpt_improved = R->ckpt_pending = false;
    R->ckpt_time = now_seconds();
    R->ckpt_epoch = R->epoch;
    R->checkpoints++;
    char epoch[32], step[32], bm[64], be[32], bad[32], secs[64], seen[32], tep[32], tpos[32];
    snprintf(tep, sizeof tep, "%d", R->tepoch);
    snprintf(tpos, sizeof tpos, "%ld", R->tpos);
    snprintf(epoch, sizeof epoch, "%d", R->epoch);
    snprintf(step, sizeof step, "%ld", R->step);
    snprintf(bm, sizeof bm, "%.17g", R->best_metric);
    snprintf(be, sizeof be, "%d", R->best_epoch);
    snprintf(bad, sizeof bad, "%d", R->bad_epochs);
    snprintf(secs, sizeof secs, "%.6f", R->train_seconds);
    snprintf(seen, sizeof seen, "%ld", R->images_seen);
    if ((s = recipe_hash(R, e))) return s;
    const char *hash = R->recipe_hash;
    /* state: the loop's counters plus each tensor's optimizer step count (Adam's bias
     * correction continues exactly after a resume) */
    int nmeta = 11 + R->store.n;
    const char **state_meta = calloc((size_t)nmeta * 2, sizeof *state_meta);
    char *tvals = calloc((size_t)R->store.n + 1, 24);
    char *tkeys = calloc((size_t)R->store.n + 1, 1040);
    if (!state_meta || !tvals || !tkeys) {
        free(state_meta);
        free(tvals);
        free(tkeys);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    const char *fixed[] = {"epoch", epoch, "step", step, "best_metric", bm,
                           "best_epoch", be, "bad_epochs", bad, "train_seconds", secs,
                           "images_seen", seen, "recipe_sha256", hash, "format", "graft-state",
                           /* the target stream's position (adapt), so a resume draws the same
                            * target batches */
                           "target_epoch", tep, "target_batch", tpos};
    memcpy(state_meta, fixed, sizeof fixed);
    for (int i = 0; i < R->store.n; i++) {
        snprintf(tkeys + (size_t)i * 1040, 1040, "t.%s", R->store.items[i].name);
        snprintf(tvals + (size_t)i * 24, 24, "%ld", R->store.items[i].t);
        state_meta[22 + 2 * i] = tkeys + (size_t)i * 1040;
        state_meta[23 + 2 * i] = tvals + (size_t)i * 24;
    }
    /* across processes every rank holds these weights; rank 0 alone writes them, on its
     * checkpoint thread (ckpt.c) while the next epoch trains */
    if (writer(R)) {
        ckpt_job job = {.epoch = R->epoch, .best = best};
        snprintf(job.dir, sizeof job.dir, "%s", R->dir);
        char spath[2300];
        path_in(R, "state.safetensors.next", spath, sizeof spath);
        if (!best && R->best_model) { /* an earlier best epoch's, skipped then */
            job.best_model = R->best_model;
            job.best_model_len = R->best_model_len;
            R->best_model = NULL;
        }
        job.metrics_len = R->metrics.len;
        if (!(job.metrics = malloc(job.metrics_len + 1)))
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        else if (job.metrics_len)
            memcpy(job.metrics, R->metrics.data, job.metrics_len);
        if (!s) s = encode_model(R, hash, &job.model, &job.model_len, e);
        if (!s)
            s = store_encode(&R->store, true, spath, (const char *const *)state_meta, nmeta,
                             &job.state, &job.state_len, e);
        if (!s) s = ckpt_submit(&R->ckw, &job, e);
        ckpt_job_clear(&job);
    }
    free(state_meta);
    free(tvals);
    free(tkeys);
    return s;
}

static double meta_num(st_file *f, const char *key, double dflt)
{
    const char *v = st_meta(f, key);
    return v ? strtod(v, NULL) : dflt;
}

static graft_status resume_from(run *R, const char *dir, graft_error *e)
{
    char path[2300];
    /* rank 0 puts an interrupted commit right; the others read once it has */
    graft_status rs = writer(R) ? recover_checkpoints(dir, e) : GRAFT_OK;
    if (!rs && R->world > 1) rs = dist_barrier(R->D, "the resume barrier", R->D->timeout, e);
    if (rs) return rs;
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    graft_status s = store_load_all(&R->store, &R->r->graph, path, NULL, e);
    if (!s && recipe_aligns(R->r) && (R->r->adapt.methods & ADAPT_DANN))
        s = store_load_all(&R->store, &R->r->adapt.disc_graph, path, NULL, e);
    if (s) {
        err_prefix(e, "cannot resume from %s", dir);
        return s;
    }
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    st_file *meta;
    if ((s = store_load_state(&R->store, path, &meta, e))) {
        err_prefix(e, "cannot resume from %s", dir);
        return s;
    }
    R->epoch = (int)meta_num(meta, "epoch", 0);
    R->step = (long)meta_num(meta, "step", 0);
    R->best_metric = meta_num(meta, "best_metric", NAN);
    R->best_epoch = (int)meta_num(meta, "best_epoch", 0);
    R->bad_epochs = (int)meta_num(meta, "bad_epochs", 0);
    R->train_seconds = meta_num(meta, "train_seconds", 0);
    R->images_seen = (long)meta_num(meta, "images_seen", 0);
    R->tepoch = (int)meta_num(meta, "target_epoch", 0);
    R->tpos = (long)meta_num(meta, "target_batch", 0);
    /* per-tensor optimizer step counts */
    for (int i = 0; i < R->store.n; i++) {
        char key[1100];
        snprintf(key, sizeof key, "t.%s", R->store.items[i].name);
        R->store.items[i].t = (long)meta_num(meta, key, 0);
    }
    st_close(meta);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *old;
    size_t n;
    if (fs_read_file(path, 64 << 20, &old, &n, NULL) == GRAFT_OK) {
        /* keep only the lines of epochs before the resume point */
        int lines = 0;
        size_t keep = 0;
        for (size_t i = 0; i < n && lines < R->epoch; i++)
            if (old[i] == '\n') {
                lines++;
                keep = i + 1;
            }
        buf_append(&R->metrics, old, keep);
        free(old);
    }
    return GRAFT_OK;
}

/* What report.html shows beyond the curves: the model's layout and the trainable set of each
 * phase, the unfreeze steps, per-class test accuracy and the confusion matrix, and timing. */
static void summary_report_fields(run *R, json_t *o)
{
    const graft_recipe *r = R->r;
    json_object_set_new(o, "name", json_string(r->name ? r->name : ""));
    json_t *layers = json_array();
    for (int i = 0; i < r->graph.nlayers; i++) {
        const layer *l = &r->graph.layers[i];
        json_t *lo = json_object(), *sh = json_array();
        for (int d = 0; d < l->out.rank; d++) json_array_append_new(sh, json_integer(l->out.d[d]));
        json_object_set_new(lo, "name", json_string(l->name));
        json_object_set_new(lo, "type", json_string(layer_type_name(l->type)));
        json_object_set_new(lo, "output_shape", sh);
        json_object_set_new(lo, "params", json_integer(layer_param_count(l)));
        json_object_set_new(lo, "fresh", json_boolean(l->fresh));
        json_array_append_new(layers, lo);
    }
    json_object_set_new(o, "layers", layers);
    json_object_set(o, "phases", R->phases);
    json_t *unf = json_array();
    for (int i = 0; i < r->train.nunfreeze; i++)
        if (r->train.unfreeze[i].epoch <= R->epoch)
            json_array_append_new(unf, json_integer(r->train.unfreeze[i].epoch));
    json_object_set_new(o, "unfreeze_epochs", unf);
    if (R->confusion) {
        int k = R->nclasses;
        json_t *cm = json_array(), *pc = json_array(), *labels = json_array();
        for (int t = 0; t < k; t++) {
            json_t *row = json_array();
            long n = 0;
            for (int p = 0; p < k; p++) {
                json_array_append_new(row, json_integer(R->confusion[t * k + p]));
                n += R->confusion[t * k + p];
            }
            json_array_append_new(cm, row);
            json_array_append_new(pc, n ? json_real((double)R->confusion[t * k + t] / (double)n)
                                        : json_null());
            json_array_append_new(labels, json_integer(r->data.nclasses && t < r->data.nclasses
                                                           ? r->data.classes[t] : t));
        }
        json_object_set_new(o, "class_labels", labels);
        json_object_set_new(o, "per_class_accuracy", pc);
        json_object_set_new(o, "confusion", cm);
    }
    json_t *tm = json_object();
    json_object_set_new(tm, "data_seconds", json_real(R->data_seconds));
    json_object_set_new(tm, "compile_seconds", json_real(R->compile_seconds));
    json_object_set_new(tm, "train_seconds", json_real(R->train_seconds));
    json_object_set_new(tm, "validation_seconds", json_real(R->val_seconds));
    json_object_set_new(tm, "test_seconds", json_real(R->test_seconds));
    json_object_set_new(tm, "wall_seconds", json_real(now_seconds() - R->t_start));
    /* launches handed to the compile-ahead helper (0: none started, e.g. a warm cache) */
    json_object_set_new(tm, "compile_ahead_launches",
                        json_integer(R->ctx ? ahead_launches_sent(R->ctx) : 0));
    json_object_set_new(o, "timing", tm);
}

static graft_status write_summary(run *R, const train_summary *sum, graft_error *e)
{
    json_t *o = json_object();
    /* null when the recipe has no test split */
    json_object_set_new(o, "test_accuracy",
                        isfinite(sum->test_accuracy) ? json_real(sum->test_accuracy) : json_null());
    json_object_set_new(o, "test_loss",
                        isfinite(sum->test_loss) ? json_real(sum->test_loss) : json_null());
    json_object_set_new(o, "best_epoch", json_integer(sum->best_epoch));
    json_object_set_new(o, "epochs_run", json_integer(sum->epochs_run));
    json_object_set_new(o, "stopped_early", json_boolean(sum->stopped_early));
    json_object_set_new(o, "steps", json_integer(sum->steps));
    json_object_set_new(o, "train_seconds", json_real(sum->train_seconds));
    json_object_set_new(o, "images_per_second", json_real(sum->images_per_second));
    json_object_set_new(o, "device", json_string(sum->device));
    json_object_set_new(o, "params_total", json_integer(sum->params_total));
    json_object_set_new(o, "params_trainable", json_integer(sum->params_trainable));
    json_object_set_new(o, "feature_cache", json_boolean(sum->feature_cache));
    json_object_set_new(o, "feature_cache_reason", json_string(sum->feature_cache_reason));
    json_object_set_new(o, "feature_cache_device", json_boolean(sum->feature_cache_device));
    json_object_set_new(o, "feature_cache_test_streamed",
                        json_boolean(sum->feature_cache_test_streamed));
    json_object_set_new(o, "host_syncs_per_step", json_real(sum->host_syncs_per_step));
    json_object_set_new(o, "checkpoints", json_integer(sum->checkpoints));
    if (sum->ranks > 1) json_object_set_new(o, "ranks", json_integer(sum->ranks));
    if (sum->replicas > 1 || sum->ranks > 1) {
        json_object_set_new(o, "replicas", json_integer(sum->replicas));
        json_object_set_new(o, "allreduce_seconds_per_step",
                            json_real(sum->allreduce_seconds_per_step));
        /* train.split: each worker's rows of a full batch and its measured images/s */
        json_t *sp = json_object(), *rows = json_array(), *ips = json_array();
        json_object_set_new(sp, "mode", json_string(sum->nworkers ? "throughput" : "even"));
        for (int w = 0; w < sum->nworkers; w++) {
            json_array_append_new(rows, json_integer(sum->worker_rows[w]));
            json_array_append_new(ips, json_real(sum->worker_ips[w]));
        }
        json_object_set_new(sp, "rows", rows);
        json_object_set_new(sp, "images_per_second", ips);
        json_object_set_new(o, "split", sp);
    }
    const adapt_spec *as = &R->r->adapt;
    if (as->present) {
        static const char *const names[] = {"adabn", "coral", "mmd", "dann"};
        json_t *m = json_array();
        for (int i = 0; i < 4; i++)
            if (as->methods & (1u << i)) json_array_append_new(m, json_string(names[i]));
        json_t *a = json_object();
        json_object_set_new(a, "methods", m);
        json_object_set_new(a, "layer", as->layer >= 0 && (as->methods & ADAPT_ALIGNING)
                                            ? json_string(R->r->graph.layers[as->layer].name)
                                            : json_null());
        json_object_set_new(a, "weight", json_real(as->weight));
        json_object_set_new(a, "target_samples", json_integer(R->target.n));
#define NUM_OR_NULL(v) (isfinite(v) ? json_real(v) : json_null())
        json_object_set_new(a, "target_test_accuracy", NUM_OR_NULL(sum->test_accuracy));
        json_object_set_new(a, "source_test_accuracy", NUM_OR_NULL(sum->source_test_accuracy));
        json_object_set_new(a, "target_accuracy_before_adabn",
                            NUM_OR_NULL(sum->target_accuracy_before_adabn));
        json_object_set_new(a, "align_loss", NUM_OR_NULL(sum->align_loss));
#undef NUM_OR_NULL
        json_object_set_new(o, "adapt", a);
    }
    summary_report_fields(R, o);
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    char path[2300];
    path_in(R, "summary.json", path, sizeof path);
    size_t len = strlen(text);
    graft_status s = GRAFT_OK;
    char *withnl = malloc(len + 2);
    if (!withnl) s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    else {
        memcpy(withnl, text, len);
        withnl[len] = '\n';
        s = fs_write_atomic(path, withnl, len + 1, e);
    }
    free(withnl);
    free(text);
    return s;
}

/* DANN's gradient-reversal coefficient: constant 1, or Ganin's 2 / (1 + exp(-gamma p)) - 1 over
 * the training progress p in [0, 1] (steps so far over the run's steps). */
static double dann_lambda(const graft_recipe *r, int epoch, long batch, long nb)
{
    if (r->adapt.schedule == ADAPT_SCHED_CONSTANT) return 1.0;
    double total = (double)r->train.epochs * (double)nb;
    if (r->train.max_steps > 0 && r->train.max_steps < total) total = (double)r->train.max_steps;
    double pr = ((double)epoch * (double)nb + (double)batch) / (total > 0 ? total : 1);
    if (pr > 1) pr = 1;
    return 2.0 / (1.0 + exp(-r->adapt.gamma * pr)) - 1.0;
}

/* The next target batch: the target stream cycles through its own epochs (a new order each),
 * independently of the source epoch; (tepoch, tpos) is where it stands. */
static graft_status target_next(run *R, const float **x, const int **y, int *n, graft_error *e)
{
    for (int tries = 0; tries < 2; tries++) {
        if (batcher_next(R->tb, x, y, n)) {
            R->tpos++;
            return GRAFT_OK;
        }
        R->tepoch++;
        R->tpos = 0;
        batcher_start_epoch(R->tb, R->tepoch);
    }
    return err_set(e, GRAFT_STATUS_INTERNAL, "the target stream has no batches");
}

/* Loss and accuracy of a labelled dataset that is not one of the run's splits (adapt's source
 * test split), through the training pipeline in evaluation mode. */
static graft_status evaluate_set(run *R, const dataset *d, double *acc, graft_error *e)
{
    int B = R->r->train.batch_size;
    for (long i = 0; i < d->n; i += B) {
        int n = (int)(d->n - i < B ? d->n - i : B);
        graft_status s = pipeline_eval(R->head, d->x + i * d->sample, d->y + i, n, NULL, NULL, e);
        if (s) return s;
    }
    pipeline_stats st;
    graft_status s = pipeline_stats_read(R->head, true, &st, e);
    if (s) return s;
    *acc = d->n ? (double)st.correct / (double)d->n : NAN;
    return GRAFT_OK;
}

/* ---- non-finite losses (train.on_nonfinite) ---- */

/* How many steps a diagnosis may replay to find the first non-finite layer (at most one epoch is
 * ever replayed; past this the error goes without the layer's name). */
#define NONFINITE_REPLAY_MAX_STEPS 20000

static const optim_hparams *step_hparams(const train_spec *t, double lr, optim_hparams *h)
{
    *h = (optim_hparams){.kind = t->optimizer,
                         .lr = (float)lr,
                         .momentum = (float)t->momentum,
                         .beta1 = (float)t->beta1,
                         .beta2 = (float)t->beta2,
                         .eps = (float)t->eps,
                         .weight_decay = (float)t->weight_decay,
                         .l2sp = (float)t->l2sp};
    return h;
}

/* A batcher over the training split as the epochs draw it: shuffled by epoch, augmented unless
 * its samples are cached features, row indexes only when those live on the device. */
static graft_status train_batcher(run *R, batcher **out, graft_error *e)
{
    const graft_recipe *r = R->r;
    const bool augment = !R->cached;
    graft_status s = batcher_create(split(R, 0), r->train.batch_size, true,
                                    augment && r->data.flip, augment ? r->data.crop_pad : 0,
                                    r->train.seed, out, e);
    if (s) return s;
    batcher_set_resized_crop(*out, augment ? r->data.rrc_min_scale : 0.f);
    batcher_set_rows_only(*out, split_table(R, 0) != NULL);
    return GRAFT_OK;
}

/* Replay the current epoch from its starting weights (the store holds them: the last checkpoint's,
 * or the initial ones) up to global step `bad`, scanning every layer on that step: the first layer
 * whose parameters or output hold a NaN or an infinity. The batches and dropout masks are those of
 * the failed pass (the batcher is seeded by epoch, dropout by step), so the replay meets the same
 * values. Returns -1 when the replay does not reproduce it or cannot run. */
static int nonfinite_layer(run *R, long step0, long bad, bool *in_weights)
{
    graft_error ig = {0};
    const train_spec *t = &R->r->train;
    *in_weights = false;
    if (bad - step0 > NONFINITE_REPLAY_MAX_STEPS || bad <= step0) return -1;
    notify(R, "loss not finite: replaying the epoch to find the first non-finite layer");
    const dataset *tr = split(R, 0);
    batcher *b;
    /* the batches of train_epoch, made the same way */
    if (pipeline_stats_reset(R->head, &ig) || train_batcher(R, &b, &ig)) return -1;
    cl_mem table = split_table(R, 0);
    batcher_start_epoch(b, R->epoch);
    long nb = (tr->n + t->batch_size - 1) / t->batch_size;
    graft_status s = pipeline_upload(R->head, &R->store, &ig);
    pipeline_set_step(R->head, (uint64_t)step0);
    const float *x;
    const int *y;
    int n, layer = -1;
    for (long k = step0 + 1; !s && k <= bad && batcher_next(b, &x, &y, &n); k++) {
        optim_hparams h;
        step_hparams(t, schedule_lr(t, R->epoch + (double)(k - step0 - 1) / (double)nb), &h);
        if (k == bad && (s = pipeline_set_scan(R->head, true, &ig))) break;
        s = table ? pipeline_train_step_rows(R->head, table, batcher_rows(b), y, n, &h, NULL, &ig)
                  : pipeline_train_step(R->head, x, y, n, &h, NULL, &ig);
        if (k == bad && !s) layer = pipeline_scan_result(R->head, in_weights);
    }
    pipeline_set_scan(R->head, false, &ig);
    pipeline_stats_reset(R->head, &ig);
    batcher_free(b);
    return layer;
}

/* The error of a run stopped by a non-finite loss (train.on_nonfinite: stop): where, at which
 * learning rate, in which layer, and which checkpoint is left. `e` holds the pipeline's error. */
static graft_status nonfinite_stop(run *R, long step0, long nb, graft_error *e)
{
    uint64_t bad;
    double value;
    if (!pipeline_nonfinite(R->head, &bad, &value))
        return e->status ? e->status : GRAFT_STATUS_BAD_DATA;
    const train_spec *t = &R->r->train;
    long k = (long)bad - step0; /* 1-based step of this epoch */
    double lr = schedule_lr(t, R->epoch + (double)(k - 1) / (double)nb);
    bool in_weights;
    int li = nonfinite_layer(R, step0, (long)bad, &in_weights);
    char where[600] = "", kept[2400];
    if (li == PIPELINE_SCAN_INPUT)
        snprintf(where, sizeof where, "; the batch's input data itself holds a NaN or an infinity");
    if (li >= 0) {
        const char *name = R->r->graph.layers[li].name;
        if (in_weights)
            snprintf(where, sizeof where,
                     "; the parameters of layer '%s' were the first non-finite values (an update "
                     "before step %ld overflowed)",
                     name, k);
        else
            snprintf(where, sizeof where, "; layer '%s' was the first whose output was not finite",
                     name);
    }
    char failed[800] = "";
    if (R->ckpt_failed[0]) /* keep_pending's write of the last good epoch end */
        snprintf(failed, sizeof failed, " (epoch %d's could not be written: %s)", R->epoch,
                 R->ckpt_failed);
    if (R->ckpt_epoch > 0)
        snprintf(kept, sizeof kept,
                 "the last good checkpoint %s/last.safetensors (epoch %d) is kept%s", R->dir,
                 R->ckpt_epoch, failed);
    else if (R->epoch > 0)
        snprintf(kept, sizeof kept, "no checkpoint was written%s", failed);
    else
        snprintf(kept, sizeof kept, "no checkpoint was written (it failed in the first epoch)");
    return err_set(e, GRAFT_STATUS_BAD_DATA,
                   "loss is %s at epoch %d step %ld (lr %.4g)%s; %s; lower train.lr, or set "
                   "train.on_nonfinite: skip_batch",
                   isnan(value) ? "NaN" : "Inf", R->epoch + 1, k, lr, where, kept);
}

/* train.on_nonfinite: skip_batch met an epoch in which every batch was skipped: no point going on.
 */
static graft_status nonfinite_all_skipped(run *R, long nb, double lr, graft_error *e)
{
    return err_set(
        e, GRAFT_STATUS_BAD_DATA,
        "loss is NaN at epoch %d step %ld (lr %.4g): all %ld batches of the epoch had a "
        "non-finite loss and were skipped (train.on_nonfinite: skip_batch); lower train.lr",
        R->epoch + 1, nb, lr, nb);
}

static graft_status train_epoch(run *R, bool *stop, graft_error *e)
{
    graft_recipe *r = R->r;
    const train_spec *t = &r->train;
    const dataset *tr = split(R, 0);
    graft_status s;
    /* one batcher (and its worker thread) for every epoch of a pipeline */
    if (!R->eb && (s = train_batcher(R, &R->eb, e))) return s;
    batcher *b = R->eb;
    cl_mem table = split_table(R, 0);
    batcher_start_epoch(b, R->epoch);
    long nb = (tr->n + t->batch_size - 1) / t->batch_size, done = 0, seen = 0, correct = 0, got = 0;
    double loss_sum = 0, t0 = now_seconds(), lr = t->lr, last_read = t0;
    const long read_steps = progress_read_steps();
    double lr_start = schedule_lr(t, R->epoch);
    const float *x;
    const int *y;
    int n;
    train_progress p = {.epoch = R->epoch + 1, .epochs = t->epochs, .nbatches = nb,
                        .val_loss = NAN, .val_accuracy = NAN};
    long syncs0 = pipeline_host_syncs(R->head);
    pipeline_stats tot;
    for (int k = 0; k < R->nrep; k++) pipeline_stats_total(R->rep[k], &tot, true);
    long step0 = R->step, skipped = 0, skipped_n = 0;
    bool skip_mode = t->on_nonfinite == NONFINITE_SKIP_BATCH; /* never with adapt's alignment */
    /* o->stop is read before each step, so a progress callback that sets it stops right there */
    while (!*stop && !(R->o->stop && (*stop = *R->o->stop != 0)) && batcher_next(b, &x, &y, &n)) {
        lr = schedule_lr(t, R->epoch + (double)done / (double)nb);
        optim_hparams h = {.kind = t->optimizer, .lr = (float)lr, .momentum = (float)t->momentum,
                           .beta1 = (float)t->beta1, .beta2 = (float)t->beta2, .eps = (float)t->eps,
                           .weight_decay = (float)t->weight_decay, .l2sp = (float)t->l2sp};
        /* nothing is read back here: the loss and correct count stay on the device (except with
         * train.on_nonfinite: skip_batch, which checks each batch's loss before its update) */
        step_result sr, *srp = skip_mode ? &sr : NULL;
        if (recipe_aligns(R->r)) {
            const float *tx;
            const int *ty;
            int tn;
            if ((s = target_next(R, &tx, &ty, &tn, e))) break;
            size_t ss = (size_t)tr->sample;
            memcpy(R->xcomb, x, (size_t)n * ss * sizeof(float));
            memcpy(R->xcomb + (size_t)n * ss, tx, (size_t)tn * ss * sizeof(float));
            s = pipeline_train_step_adapt(R->head, R->xcomb, y, n, tn, &h,
                                          (float)r->adapt.weight,
                                          (float)dann_lambda(r, R->epoch, done, nb), e);
        } else {
            s = R->nrep > 1 || R->world > 1 ? dp_step(R, x, y, n, &h, e)
                : table     ? pipeline_train_step_rows(R->head, table, batcher_rows(b), y, n, &h,
                                                       srp, e)
                            : pipeline_train_step(R->head, x, y, n, &h, srp, e);
        }
        for (int k = 0; k < R->nrep && !s && !skip_mode; k++)
            s = pipeline_stats_poll(R->rep[k], e); /* a NaN stops at once */
        if (s) break;
        if (srp && sr.nonfinite) {
            skipped++;
            skipped_n += n;
        } else if (srp) {
            loss_sum += sr.loss_sum;
            correct += sr.correct;
            got += n;
        }
        R->step++;
        done++;
        seen += n;
        if (t->max_steps > 0 && R->step >= t->max_steps) *stop = true;
        if (R->o->progress) {
            double now = now_seconds(), el = now - t0;
            if (read_steps ? done % read_steps == 0 : now - last_read >= PROGRESS_READ_SECONDS) {
                /* collect the read started last time, start the next (non-blocking) */
                pipeline_stats st;
                if ((s = stats_read_all(R, false, &st, e))) break;
                loss_sum += st.loss_sum;
                correct += st.correct;
                got += st.samples;
                last_read = now;
            }
            p.batch = done;
            p.loss = got ? loss_sum / (double)got : NAN;
            p.accuracy = got ? (double)correct / (double)got : NAN;
            p.images_per_second = el > 0 ? (double)seen / el : 0;
            p.eta_seconds = done ? el / (double)done * (double)(nb - done) : 0;
            p.lr = lr;
            R->o->progress(R->o->user, &p);
        }
    }
    R->loop_steps += done;
    R->loop_syncs += pipeline_host_syncs(R->head) - syncs0;
    if (!s) {
        /* the epoch's exact totals: wait for every step's statistics */
        pipeline_stats st;
        s = stats_read_all(R, true, &st, e);
        loss_sum += st.loss_sum;
        correct += st.correct;
        got += st.samples;
        if (!s && !skip_mode) {
            /* the totals as each replica's pipeline summed them, step by step: the display's reads
             * above added partial sums grouped by their timing (last-bit differences run to run) */
            loss_sum = 0;
            correct = got = 0;
            for (int k = 0; k < R->nrep; k++) {
                pipeline_stats_total(R->rep[k], &tot, true);
                loss_sum += tot.loss_sum;
                correct += tot.correct;
                got += tot.samples;
            }
        }
        if (!s && R->world > 1) {
            /* each rank counted its own rows: the epoch's totals are their sums (the display's
             * running figures above were this rank's) */
            double v[3] = {loss_sum, (double)correct, (double)got};
            s = dist_sum_f64(R->D, v, 3, e);
            loss_sum = v[0];
            correct = (long)v[1];
            got = (long)v[2];
        }
        if (!s && got != seen - skipped_n)
            s = err_set(e, GRAFT_STATUS_INTERNAL, "epoch statistics cover %ld of %ld samples", got,
                        seen - skipped_n);
    }
    if (s && !skip_mode && s == GRAFT_STATUS_BAD_DATA) {
        keep_pending(R);
        s = nonfinite_stop(R, step0, nb, e);
    }
    if (!s && skipped && skipped == done) s = nonfinite_all_skipped(R, nb, lr, e);
    if (s) return s;
    seen -= skipped_n; /* the epoch's loss and accuracy cover the batches that trained */
    double secs = now_seconds() - t0;
    R->train_seconds += secs;
    R->images_seen += seen;
    double vl = NAN, va = NAN;
    double tv = now_seconds();
    if (R->have_val && (s = evaluate_split(R, 1, &vl, &va, NULL, e))) return s;
    R->val_seconds += now_seconds() - tv;
    /* adapt: both domains' test accuracy and the alignment loss, every epoch */
    double tacc = NAN, sacc = NAN, align = NAN;
    if (r->adapt.present) {
        double tl;
        if (R->test.n > 0 && (s = evaluate_split(R, 2, &tl, &tacc, NULL, e))) return s;
        if (R->stest.n > 0 && (s = evaluate_set(R, &R->stest, &sacc, e))) return s;
        double sum;
        long steps;
        if ((s = pipeline_align_read(R->head, &sum, &steps, e))) return s;
        if (steps) align = sum / (double)steps;
    }
    /* metrics line */
    json_t *m = json_object();
    json_object_set_new(m, "epoch", json_integer(R->epoch + 1));
    json_object_set_new(m, "lr", json_real(lr));
    json_object_set_new(m, "lr_start", json_real(lr_start));
    json_object_set_new(m, "trainable_params", json_integer(graph_param_count(&r->graph, true)));
    json_object_set_new(m, "train_loss", json_real(seen ? loss_sum / (double)seen : 0));
    json_object_set_new(m, "train_accuracy", json_real(seen ? (double)correct / (double)seen : 0));
    json_object_set_new(m, "val_loss", isfinite(vl) ? json_real(vl) : json_null());
    json_object_set_new(m, "val_accuracy", isfinite(va) ? json_real(va) : json_null());
    json_object_set_new(m, "seconds", json_real(secs));
    json_object_set_new(m, "images_per_second", json_real(secs > 0 ? (double)seen / secs : 0));
    json_object_set_new(m, "steps", json_integer(R->step));
    if (r->adapt.present) {
        json_object_set_new(m, "source_accuracy", isfinite(sacc) ? json_real(sacc) : json_null());
        json_object_set_new(m, "target_accuracy", isfinite(tacc) ? json_real(tacc) : json_null());
        json_object_set_new(m, "align_loss", isfinite(align) ? json_real(align) : json_null());
    }
    if (skip_mode) json_object_set_new(m, "skipped_batches", json_integer(skipped));
    char *line = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (line) {
        buf_printf(&R->metrics, "%s\n", line);
        free(line);
    }
    /* the monitored metric: validation when there is a validation split, else training loss */
    double metric;
    bool higher_better = false;
    if (R->have_val && t->monitor == MONITOR_VAL_ACCURACY) {
        metric = va;
        higher_better = true;
    } else {
        metric = R->have_val ? vl : (seen ? loss_sum / (double)seen : 0);
    }
    bool improved = isnan(R->best_metric) ||
                    (higher_better ? metric > R->best_metric + t->min_delta
                                   : metric < R->best_metric - t->min_delta);
    if (improved) {
        R->best_metric = metric;
        R->best_epoch = R->epoch + 1;
        R->bad_epochs = 0;
    } else {
        R->bad_epochs++;
    }
    R->epoch++;
    if (t->early_stopping && R->have_val && R->bad_epochs >= t->patience) {
        R->stopped_early = true;
        *stop = true;
    }
    /* the run's last epoch end is always written */
    const bool final = *stop || R->epoch >= t->epochs || (R->o->stop && *R->o->stop);
    if ((s = save_checkpoints(R, improved, final, e))) return s;
    if (R->o->progress) {
        p.epoch_done = true;
        p.batch = done;
        p.loss = seen ? loss_sum / (double)seen : 0;
        p.accuracy = seen ? (double)correct / (double)seen : 0;
        p.images_per_second = secs > 0 ? (double)seen / secs : 0;
        p.eta_seconds = 0;
        p.val_loss = vl;
        p.val_accuracy = va;
        R->o->progress(R->o->user, &p);
    }
    return GRAFT_OK;
}

static void run_free(run *R)
{
    ckpt_free(R->ckw); /* the epoch end in flight, if any, is finished first */
    free(R->best_model);
    for (int k = 1; k < R->nrep; k++) pipeline_free(R->rep[k]);
    pipeline_free(R->head);
    free_features(R);
    store_free(&R->store);
    dataset_free(&R->train);
    dataset_free(&R->val);
    dataset_free(&R->test);
    dataset_free(&R->target);
    dataset_free(&R->stest);
    batcher_free(R->tb);
    batcher_free(R->eb);
    free(R->xcomb);
    free(R->ycomb);
    buf_free(&R->metrics);
    json_decref(R->phases);
    free(R->confusion);
    graft_context_free(R->ctx);
    for (int k = 1; k < R->nrep; k++) graft_context_free(R->rctx[k]);
    free(R->gsum);
    free(R->wrows);
    free(R->wsecs);
    free(R->weight);
    free(R->wcount);
}

/* The contexts of the run: one device (--device, recipe.device), or one per device of
 * --devices / train.devices (replicas; one device named there is the one-device path). */
static graft_status open_devices(run *R, graft_error *e)
{
    const train_options *o = R->o;
    const char *list = o->devices ? o->devices : o->device ? NULL : R->r->train.devices;
    graft_context_options co = {.device = o->device ? o->device : R->r->device};
    R->nrep = 1;
    char mine[256];
    if (R->world > 1) {
        /* each rank its device: --device, recipe.device or GRAFT_DEVICE with {local_rank} */
        const char *spec = list ? list : co.device ? co.device : getenv("GRAFT_DEVICE");
        if (spec) {
            devspec_local_rank(spec, R->D->local_rank, mine, sizeof mine);
            if (list) list = mine;
            else co.device = mine;
        }
    }
    if (!list) return graft_context_create(&co, &R->ctx, e);
    graft_device_info *devs = NULL;
    int ndev = 0, idx[DEVSPEC_MAX_LIST], n = 0;
    graft_status s = graft_devices_list(&devs, &ndev, e);
    if (!s) s = devspec_match_list(list, devs, ndev, idx, DEVSPEC_MAX_LIST, &n, e);
    char spec[DEVSPEC_MAX_LIST][32];
    for (int k = 0; k < n && !s; k++)
        snprintf(spec[k], sizeof spec[k], "%d:%d", devs[idx[k]].platform_index,
                 devs[idx[k]].device_index);
    free(devs);
    if (s) return s;
    if (n > 1) {
        if (recipe_aligns(R->r))
            return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                           "adapt: domain adaptation trains on one device; train.devices names %d",
                           n);
        if (R->r->train.on_nonfinite == NONFINITE_SKIP_BATCH)
            return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                           "train.on_nonfinite: skip_batch runs on one device; train.devices "
                           "names %d (use stop)",
                           n);
    }
    for (int k = 0; k < n; k++) {
        co.device = spec[k];
        if ((s = graft_context_create(&co, k ? &R->rctx[k] : &R->ctx, e))) {
            err_prefix(e, "device %s", spec[k]);
            return s;
        }
        R->rctx[k] = k ? R->rctx[k] : R->ctx;
        R->nrep = k + 1;
    }
    return GRAFT_OK;
}

/* graft_train's data: the splits and, for domain adaptation, the target and source-test sets */
typedef struct {
    run *R;
    graft_status s;
    graft_error e;
} load_job;

static void *load_data(void *arg)
{
    load_job *j = arg;
    run *R = j->R;
    const graft_recipe *r = R->r;
    j->s = data_load(&r->data, r->graph.input, &R->train, &R->val, &R->test, &j->e);
    R->data_seconds = now_seconds() - R->t_start;
    if (!j->s && r->adapt.present) j->s = train_load_target(r, &R->target, &j->e);
    if (!j->s && r->adapt.present && r->adapt.source_test.present)
        j->s = train_load_source_test(r, &R->stest, &j->e);
    return NULL;
}

graft_status graft_train(graft_recipe *r, const train_options *o, train_summary *out,
                         graft_error *e)
{
    memset(out, 0, sizeof *out);
    run R = {.r = r, .o = o, .best_metric = NAN, .phases = json_array(), .t_start = now_seconds(),
             .D = o->dist, .world = o->dist ? o->dist->size : 1,
             .rank = o->dist ? o->dist->rank : 0};
    graft_status s;
    const char *dir = o->resume ? o->resume : o->out_dir ? o->out_dir : r->output;
    if (!dir) dir = "runs/last";
    snprintf(R.dir, sizeof R.dir, "%s", dir);
    /* the data loads on a thread of its own while the device opens (the OpenCL platforms load
     * their libraries, ~40 ms with PoCL, as long as decoding a test split); a bad data file is
     * still reported first, and before anything is written */
    R.source_accuracy = R.target_accuracy_before = NAN;
    {
        load_job job = {.R = &R};
        pthread_t th;
        bool threaded = pthread_create(&th, NULL, load_data, &job) == 0;
        if (!threaded) load_data(&job);
        graft_error de = {0};
        graft_status ds = open_devices(&R, &de);
        if (threaded) pthread_join(th, NULL);
        if ((s = job.s)) {
            *e = job.e;
            goto done;
        }
        if ((s = ds)) {
            *e = de;
            goto done;
        }
    }
    R.have_val = R.val.n > 0;
    if (recipe_aligns(r)) {
        size_t B = (size_t)r->train.batch_size;
        R.xcomb = malloc(2 * B * (size_t)R.train.sample * sizeof(float));
        if (!R.xcomb) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto done;
        }
        if ((s = batcher_create(&R.target, r->train.batch_size, true, false, 0,
                                data_seed_mix(r->train.seed, 0x7a29e7), &R.tb, e)))
            goto done;
    }
    if ((s = store_init(&R.store, &r->graph, r->train.seed, e))) goto done;
    /* dann's discriminator: its tensors live in the same store (checkpoints, exact resume) */
    if (recipe_aligns(r) && (r->adapt.methods & ADAPT_DANN) &&
        (s = store_init(&R.store, &r->adapt.disc_graph, data_seed_mix(r->train.seed, 0xd155), e)))
        goto done;
    if (r->transfer.from) {
        int loaded = 0;
        if ((s = store_load(&R.store, &r->graph, r->transfer.from, r->train.l2sp > 0, &loaded, e)))
            goto done;
        /* a checkpoint may hold a DANN discriminator too (a DANN run's, or a test's) */
        if (recipe_aligns(r) && (r->adapt.methods & ADAPT_DANN) &&
            (s = store_load_all(&R.store, &r->adapt.disc_graph, r->transfer.from, NULL, e)))
            goto done;
    }
    if (o->resume && (s = resume_from(&R, o->resume, e))) goto done;
    if (R.tb) {
        /* the target stream continues where the checkpoint left it */
        batcher_start_epoch(R.tb, R.tepoch);
        batcher_skip(R.tb, R.tpos);
    }
    if ((s = recipe_apply_freeze(r, phase_freeze(r, R.epoch), NULL))) {
        err_set(e, s, "cannot apply the freeze selector of epoch %d", R.epoch + 1);
        goto done;
    }
    /* a recipe that cannot fit the device fails here, before anything is written */
    bool fits;
    if ((s = plan_check_memory(r, &R.ctx->info, phase_freeze(r, R.epoch), &fits, e))) goto done;
    if (!fits && (s = e->status)) goto done;
    {
        /* first run on this device: tune the recipe's GEMM shapes (train.tune, GRAFT_TUNE) */
        tune_summary ts;
        long B = r->train.batch_size > 0 ? r->train.batch_size : 1;
        long nb = (R.train.n + B - 1) / B, steps = (long)r->train.epochs * nb;
        if (r->train.max_steps > 0 && r->train.max_steps < steps) steps = r->train.max_steps;
        if ((s = compile_autotune(R.ctx, r, steps, tune_note, &R, &ts, e))) goto done;
    }
    if (writer(&R) && (s = fs_mkdir_p(R.dir, e))) goto done;
    /* a fresh run into a directory a killed run started (it had saved no epoch, so the next run
     * is no resume) drops that run's half-written files too; a resume did (recover_checkpoints) */
    if (writer(&R) && !o->resume) remove_dead_temporaries(R.dir);
    double tc = now_seconds();
    if ((s = compile_phase(&R, e))) goto done;
    R.compile_seconds += now_seconds() - tc;
    out->feature_cache = R.cached;
    out->feature_cache_device = R.on_device;
    out->feature_cache_test_streamed = R.tprefix != NULL;
    snprintf(out->feature_cache_reason, sizeof out->feature_cache_reason, "%s", R.cache_reason);
    if (writer(&R)) {
        char path[2300];
        char *yaml = recipe_dump_yaml(r);
        path_in(&R, "recipe.yaml", path, sizeof path);
        s = yaml ? fs_write_atomic(path, yaml, strlen(yaml), e)
                 : err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        free(yaml);
        if (s) goto done;
        /* metrics.jsonl exists from the start (the epochs kept on resume), so a run stopped
         * before its first epoch still has every file */
        path_in(&R, "metrics.jsonl", path, sizeof path);
        if ((s = fs_write_atomic(path, R.metrics.data ? R.metrics.data : "", R.metrics.len, e)))
            goto done;
    }
    bool stop = r->train.max_steps > 0 && R.step >= r->train.max_steps;
    const freeze_spec *current = phase_freeze(r, R.epoch);
    R.ckpt_time = now_seconds(); /* train.checkpoint_seconds count from here */
    R.ckpt_epoch = R.epoch;      /* a resume's checkpoint is on disk */
    while (!stop && !(o->stop && *o->stop) && R.epoch < r->train.epochs) {
        const freeze_spec *f = phase_freeze(r, R.epoch);
        if (f != current) {
            current = f;
            if ((s = recipe_apply_freeze(r, f, NULL))) {
                err_set(e, s, "cannot apply the unfreeze step of epoch %d", R.epoch + 1);
                goto done;
            }
            notify(&R, "unfreezing: the trainable set changes");
            tc = now_seconds();
            if ((s = compile_phase(&R, e))) goto done;
            R.compile_seconds += now_seconds() - tc;
            out->feature_cache = out->feature_cache || R.cached;
            out->feature_cache_device = out->feature_cache_device || R.on_device;
        }
        if ((s = train_epoch(&R, &stop, e))) goto done;
    }
    /* the last epoch end on disk before anything reads it back */
    if ((s = finish_checkpoints(&R, e)) || (s = ckpt_wait(R.ckw, e))) goto done;
    out->checkpoints = R.checkpoints;
    if (!writer(&R)) {
        /* the other ranks are done: rank 0 evaluates the test split and writes the results */
        out->epochs_run = R.epoch;
        out->steps = R.step;
        out->best_epoch = R.best_epoch;
        out->test_accuracy = out->test_loss = NAN;
        snprintf(out->device, sizeof out->device, "%s", R.ctx->info.name);
        snprintf(out->out_dir, sizeof out->out_dir, "%s", R.dir);
        goto done;
    }
    /* evaluate the best weights on the test split */
    if (R.have_val && R.best_epoch > 0 && R.best_epoch != R.epoch) {
        char path[2300];
        path_in(&R, "model.safetensors", path, sizeof path);
        s = store_load_all(&R.store, &r->graph, path, NULL, e);
        if (!s) s = pipeline_upload(R.head, &R.store, e);
        if (s) goto done;
    } else if ((!R.have_val && R.model_epoch != R.epoch) || (R.have_val && R.best_epoch == 0)) {
        /* no validation: the last weights are the model (unless the last checkpoint wrote them
         * as the model already) */
        char path[2300];
        if ((s = pipeline_download(R.head, &R.store, e))) goto done;
        const char *meta[] = {"format", "graft"};
        path_in(&R, "model.safetensors", path, sizeof path);
        if ((s = store_save(&R.store, path, meta, 1, e))) goto done;
    }
    double tl = NAN, ta = NAN;
    out->align_loss = NAN;
    if (r->adapt.present) {
        if (R.stest.n > 0 && (s = evaluate_set(&R, &R.stest, &R.source_accuracy, e))) goto done;
        double sum;
        long steps;
        /* the last epoch's mean alignment loss, from its metrics line */
        const char *last = R.metrics.data ? strstr(R.metrics.data, "\"align_loss\":") : NULL;
        for (const char *q = last; q; q = strstr(q + 1, "\"align_loss\":")) last = q;
        if (last && strncmp(last + 13, "null", 4) != 0) out->align_loss = strtod(last + 13, NULL);
        if (!isfinite(out->align_loss)) out->align_loss = NAN;
        if ((s = pipeline_align_read(R.head, &sum, &steps, e))) goto done;
    }
    if (r->adapt.present && (r->adapt.methods & ADAPT_ADABN)) {
        /* AdaBN after training: the model's batchnorm statistics become the target domain's */
        double l0;
        if (R.test.n > 0 && (s = evaluate_split(&R, 2, &l0, &R.target_accuracy_before, NULL, e)))
            goto done;
        notify_at(&R, R.epoch, "AdaBN: re-estimating batchnorm statistics on the target data");
        char path[2300];
        if ((s = pipeline_download(R.head, &R.store, e))) goto done;
        if ((s = train_adabn(R.ctx, r, &R.store, &R.target, NULL, e))) goto done;
        if ((s = pipeline_upload(R.head, &R.store, e))) goto done;
        const char *meta[] = {"format", "graft", "adapted", "adabn"};
        path_in(&R, "model.safetensors", path, sizeof path);
        if ((s = store_save(&R.store, path, meta, 2, e))) goto done;
    }
    out->source_test_accuracy = R.source_accuracy;
    out->target_accuracy_before_adabn = R.target_accuracy_before;
    if (R.test.n > 0) {
        double tt = now_seconds();
        R.nclasses = (int)pipeline_output_size(R.head);
        R.confusion = calloc((size_t)R.nclasses * (size_t)R.nclasses, sizeof *R.confusion);
        if (!R.confusion) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto done;
        }
        if (R.tprefix)
            notify_at(&R, R.epoch, "evaluating the test split through the frozen prefix");
        if ((s = evaluate_split(&R, 2, &tl, &ta, R.confusion, e))) goto done;
        R.test_seconds = now_seconds() - tt;
    }
    out->test_loss = tl;
    out->test_accuracy = ta;
    out->best_epoch = R.best_epoch;
    out->epochs_run = R.epoch;
    out->stopped_early = R.stopped_early;
    out->steps = R.step;
    out->train_seconds = R.train_seconds;
    out->host_syncs_per_step = R.loop_steps ? (double)R.loop_syncs / (double)R.loop_steps : 0;
    out->images_per_second = R.train_seconds > 0 ? (double)R.images_seen / R.train_seconds : 0;
    snprintf(out->device, sizeof out->device, "%s", R.ctx->info.name);
    out->replicas = R.nrep;
    out->ranks = R.world;
    for (int k = 1; k < R.nrep; k++) {
        size_t used = strlen(out->device);
        snprintf(out->device + used, sizeof out->device - used, " + %s", R.rctx[k]->info.name);
    }
    out->allreduce_seconds_per_step = R.dp_steps ? R.allreduce_seconds / (double)R.dp_steps : 0;
    if (R.weight) {
        const int nw = R.world * R.nrep;
        train_split(r->train.batch_size, nw, R.weight, R.wcount);
        out->nworkers = nw < SPLIT_MAX_WORKERS ? nw : SPLIT_MAX_WORKERS;
        for (int w = 0; w < out->nworkers; w++) {
            size_t used = strlen(out->split);
            snprintf(out->split + used, sizeof out->split - used, "%s%d", w ? "+" : "",
                     R.wcount[w]);
            out->worker_rows[w] = R.wcount[w];
            out->worker_ips[w] = R.weight[w];
        }
    }
    out->params_total = graph_param_count(&r->graph, false);
    out->params_trainable = graph_param_count(&r->graph, true);
    snprintf(out->out_dir, sizeof out->out_dir, "%s", R.dir);
    if ((s = write_summary(&R, out, e))) goto done;
    {
        /* report.html beside the other outputs, from the files just written */
        char path[2300];
        const char *dirs[] = {R.dir};
        path_in(&R, "report.html", path, sizeof path);
        s = graft_report_runs(dirs, 1, path, e);
    }
done:
    run_free(&R);
    return s;
}

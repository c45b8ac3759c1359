/* run.c — a recipe's training step profiled on one device: cold and warm start, per-layer forward,
 * backward and update times from OpenCL profiling events (median, min, max over the measured
 * steps), step time and images/s, the plan's memory and the cost model of one step; and the JSON
 * of a run (docs/bench-schema.md). */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "train.h"
#include "tune.h"

/* ---- statistics over the measured steps ---- */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

bench_stats bench_stats_of(const double *v, int n)
{
    bench_stats s = {0};
    if (n <= 0) return s;
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) return s;
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    s.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    s.min = t[0];
    s.max = t[n - 1];
    s.spread = s.median > 0 ? (s.max - s.min) / s.median : 0;
    s.flagged = s.spread > BENCH_SPREAD_FLAG;
    free(t);
    return s;
}

/* ---- GEMM shapes the recipe issues, for the cold-start tuner (compile_gemm_shapes) ---- */
#define BENCH_MAX_SHAPES 128
typedef struct shape_set {
    gemm_shape s[BENCH_MAX_SHAPES];
    int n;
} shape_set;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- one device ---- */
typedef struct device_run {
    graft_context *ctx;
    pipeline *p;
    param_store store;
} device_run;

static void run_free(device_run *r)
{
    if (r->p) pipeline_free(r->p);
    store_free(&r->store);
    if (r->ctx) graft_context_free(r->ctx);
    memset(r, 0, sizeof *r);
}

/* The training pipeline's options at batch, running layers [first, n). */
static pipeline_options step_options(const graft_recipe *rc, int batch, int first)
{
    return (pipeline_options){.max_batch = batch,
                              .first = first,
                              .training = true,
                              .bn_train = rc->transfer.bn_train,
                              .optimizer = rc->train.optimizer,
                              .l2sp = rc->train.l2sp > 0,
                              .label_smoothing = (float)rc->train.label_smoothing,
                              .dropout_seed = 17};
}

/* The frozen prefix `graft train` computes once for rc (plan_caches_prefix, the trainer's
 * rule): its length in layers, 0 when none. */
static graft_status cache_cut_of(const graft_recipe *rc, int batch, int *cut, graft_error *e)
{
    graph_plan gp;
    graft_status s = train_plan(rc, batch, &gp, e);
    if (s) return s;
    *cut = plan_caches_prefix(rc, &gp) ? gp.cache_cut : 0;
    plan_free(&gp);
    return GRAFT_OK;
}

/* A copy of the cost rows the context filed (*rows NULL when there are none). */
static graft_status copy_rows(const graft_context *ctx, cost_row **rows, int *n, graft_error *e)
{
    *rows = NULL;
    *n = 0;
    if (!ctx->cost.nrows) return GRAFT_OK;
    size_t bytes = (size_t)ctx->cost.nrows * sizeof **rows;
    if (!(*rows = malloc(bytes)))
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory for the cost model");
    memcpy(*rows, ctx->cost.rows, bytes);
    *n = ctx->cost.nrows;
    return GRAFT_OK;
}

/* The step as `graft train` runs a recipe with a cached frozen prefix, on w's context and
 * weights: the prefix's evaluation-mode forward of a batch into a device table of features
 * (the trainer's device-resident feature cache), once untimed and then o->steps times; then the
 * training pipeline of the layers after it, its batches gathered from that table's rows (in
 * reverse order): o->warmup + 1 untimed steps, one more counted and profiled for its cost model
 * (as bench_run's first measured step), and o->steps measured ones. */
static graft_status cached_run(graft_recipe *rc, device_run *w, const float *x, const int *y,
                               optim_hparams *h, const bench_settings *o, int cut,
                               bench_result *out, graft_error *e)
{
    const int B = o->batch, S = o->steps;
    graft_context *ctx = w->ctx;
    graph prefix = rc->graph;
    prefix.nlayers = cut;
    pipeline_options fo = {.max_batch = B, .first = 0, .features_only = true};
    pipeline_options po = step_options(rc, B, cut);
    pipeline *fp = NULL, *hp = NULL;
    cl_mem table = NULL;
    double *v = calloc((size_t)S, sizeof *v);
    long *rows = malloc((size_t)B * sizeof *rows);
    graft_status s = GRAFT_OK;
    if (!v || !rows) s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for timings");
    for (int i = 0; i < B && !s; i++) rows[i] = B - 1 - i;
    if (!s) s = pipeline_create(ctx, &prefix, &fo, &fp, e);
    if (!s) s = pipeline_upload(fp, &w->store, e);
    if (!s) {
        size_t row = (size_t)pipeline_output_size(fp) * sizeof(float);
        s = buffer_create(ctx, (size_t)B * row, &table, e);
    }
    if (!s) s = pipeline_forward_features_to(fp, x, B, table, 0, e);
    if (!s) s = queue_finish(ctx, e);
    for (int st = 0; st < S && !s; st++) {
        double t0 = now_seconds();
        s = pipeline_forward_features_to(fp, x, B, table, 0, e);
        if (!s) s = queue_finish(ctx, e);
        v[st] = now_seconds() - t0;
    }
    if (!s) out->feature_pass = bench_stats_of(v, S);
    if (!s) s = pipeline_create(ctx, &rc->graph, &po, &hp, e);
    if (!s) s = pipeline_upload(hp, &w->store, e);
    for (int i = 0; i <= o->warmup && !s; i++) {
        h->t++;
        s = pipeline_train_step_rows(hp, table, rows, y, B, h, NULL, e);
    }
    if (!s) s = queue_finish(ctx, e);
    if (!s) {
        prof_clear(ctx);
        ctx->record = 1;
        cost_reset(ctx);
        cost_rows(ctx, 1);
        h->t++;
        s = pipeline_train_step_rows(hp, table, rows, y, B, h, NULL, e);
        cost_rows(ctx, 0);
        out->cached_events = ctx->nprof;
        if (!s) s = queue_finish(ctx, e);
        ctx->record = 0;
        prof_clear(ctx);
        if (!s) s = copy_rows(ctx, &out->cached_rows, &out->ncached_rows, e);
    }
    for (int st = 0; st < S && !s; st++) {
        h->t++;
        double t0 = now_seconds();
        s = pipeline_train_step_rows(hp, table, rows, y, B, h, NULL, e);
        if (!s) s = queue_finish(ctx, e);
        v[st] = now_seconds() - t0;
    }
    if (!s) {
        out->cached_step = bench_stats_of(v, S);
        out->cache_cut = cut;
        bench_step_cost(out->cached_rows, out->ncached_rows, &rc->graph, pipeline_plan(hp),
                        rc->train.optimizer, rc->train.l2sp > 0, B, out->cached_cost);
        if (out->has_estimate)
            out->cached_estimate =
                bench_estimate_step(&out->cached_cost[FAM_COUNT], o->model_launch_us,
                                    o->model_bandwidth_gbs, o->model_gflops);
    }
    graft_error ig;
    queue_finish(ctx, &ig); /* (after an error too: the table goes next) */
    if (hp) pipeline_free(hp);
    if (fp) pipeline_free(fp);
    if (table) clReleaseMemObject(table);
    free(v);
    free(rows);
    return s;
}

/* A context on spec with the cache in dir, the training pipeline compiled and uploaded, and one
 * step run (so every kernel is built): what "start" means to a user. */
static graft_status start_run(const char *spec, const char *dir, graft_recipe *rc, int batch,
                              const float *x, const int *y, const optim_hparams *h,
                              shape_set *tune, double *tune_seconds, device_run *r,
                              graft_error *e)
{
    graft_context_options co = {.device = spec, .cache_dir = dir, .profile = 1};
    graft_status s = graft_context_create(&co, &r->ctx, e);
    if (s) return s;
    if (tune) {
        double t0 = now_seconds();
        /* every GEMM the pipeline issues on this device (the convolutions' only where their path
         * multiplies through one); the trainer's auto mode also leaves out the small ones and
         * those a short run cannot repay (autotune.c), so this is the most a first run tunes */
        tune->n = compile_gemm_shapes(r->ctx, &rc->graph, (size_t)batch, false, tune->s,
                                      BENCH_MAX_SHAPES);
        for (int i = 0; i < tune->n && !s; i++) {
            tune_result tr;
            s = tune_gemm(r->ctx, &tune->s[i], NULL, NULL, &tr, e);
        }
        *tune_seconds = now_seconds() - t0;
        if (s) return s;
    }
    pipeline_options po = step_options(rc, batch, 0);
    if ((s = store_init(&r->store, &rc->graph, rc->train.seed, e))) return s;
    if ((s = pipeline_create(r->ctx, &rc->graph, &po, &r->p, e))) return s;
    if ((s = pipeline_upload(r->p, &r->store, e))) return s;
    step_result sr;
    if ((s = pipeline_train_step(r->p, x, y, batch, h, &sr, e))) return s;
    return queue_finish(r->ctx, e);
}

void bench_result_free(bench_result *r)
{
    free(r->layers);
    free(r->rows);
    free(r->cached_rows);
    memset(r, 0, sizeof *r);
}

graft_status bench_run(graft_recipe *rc, const char *spec, const bench_settings *o, bench_result *out,
                       graft_error *e)
{
    memset(out, 0, sizeof *out);
    const graph *g = &rc->graph;
    int B = o->batch, L = g->nlayers, S = o->steps;
    device_run cold = {0}, warm = {0};
    float *x = NULL;
    int *y = NULL;
    double *t = NULL, *wall = NULL, *v = NULL;
    graft_status s = GRAFT_OK;
    char dir[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/graft-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return err_set(e, GRAFT_STATUS_IO, "mkdtemp %s: %s", dir, strerror(errno));

    /* the peak probe runs in the user's cache, where it is kept across runs */
    {
        graft_context *pc = NULL;
        graft_context_options co = {.device = spec};
        if ((s = graft_context_create(&co, &pc, e))) goto done;
        s = peak_probe(pc, 1, &out->peak, e);
        graft_context_free(pc);
        if (s) goto done;
    }

    /* synthetic inputs of the graph's input size (the measured step runs every layer; a cached
     * prefix's step comes after, cached_run); timings do not depend on the values (only dropout
     * draws differ) */
    long in = shape_size(g->input);
    x = malloc((size_t)B * (size_t)in * sizeof *x);
    y = malloc((size_t)B * sizeof *y);
    if (!x || !y) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for the synthetic batch");
        goto done;
    }
    for (long i = 0; i < (long)B * in; i++) x[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
    for (int i = 0; i < B; i++) y[i] = i % (g->num_classes > 0 ? g->num_classes : 1);
    const train_spec *ts = &rc->train;
    optim_hparams h = {.kind = ts->optimizer, .lr = (float)ts->lr, .momentum = (float)ts->momentum,
                       .beta1 = (float)ts->beta1, .beta2 = (float)ts->beta2, .eps = (float)ts->eps,
                       .weight_decay = (float)ts->weight_decay, .l2sp = (float)ts->l2sp, .t = 1};

    shape_set shapes = {0};
    double t0 = now_seconds();
    if ((s = start_run(spec, dir, rc, B, x, y, &h, o->tune ? &shapes : NULL,
                       &out->cold_tune_seconds, &cold, e)))
        goto done;
    out->cold_seconds = now_seconds() - t0;
    out->cold_compile_seconds = cold.ctx->compile_seconds;
    out->programs_built = cold.ctx->programs_built;
    out->tuned_shapes = o->tune ? shapes.n : 0;
    run_free(&cold);
    t0 = now_seconds();
    if ((s = start_run(spec, dir, rc, B, x, y, &h, NULL, NULL, &warm, e))) goto done;
    out->warm_seconds = now_seconds() - t0;
    graft_context *ctx = warm.ctx;
    out->info = ctx->info;
    out->programs_loaded = ctx->programs_loaded;
    out->programs_built_warm = ctx->programs_built;
    const graph_plan *gp = pipeline_plan(warm.p);
    out->memory = gp->mem;

    step_result sr;
    for (int i = 0; i < o->warmup; i++) {
        h.t++;
        if ((s = pipeline_train_step(warm.p, x, y, B, &h, &sr, e))) goto done;
    }
    if ((s = queue_finish(ctx, e))) goto done;
    /* t[(step * (L + 1) + slot) * BENCH_PHASES + phase]: seconds of that step's events */
    t = calloc((size_t)S * (size_t)(L + 1) * BENCH_PHASES, sizeof *t);
    wall = calloc((size_t)S, sizeof *wall);
    v = calloc((size_t)S, sizeof *v);
    out->layers = calloc((size_t)L + 1, sizeof *out->layers);
    if (!t || !wall || !v || !out->layers) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for timings");
        goto done;
    }
    out->nlayers = L;
    for (int st = 0; st < S; st++) {
        prof_clear(ctx);
        ctx->record = 1;
        h.t++;
        if (st == 0) { /* the cost model counts the first measured step, as the pipeline ran it */
            cost_reset(ctx);
            cost_rows(ctx, 1);
        }
        double w0 = now_seconds();
        s = pipeline_train_step(warm.p, x, y, B, &h, &sr, e);
        cost_rows(ctx, 0); /* the wait below is the bench's, not the step's */
        if (st == 0) out->profiled_events = ctx->nprof;
        if (!s) s = queue_finish(ctx, e);
        wall[st] = now_seconds() - w0;
        ctx->record = 0;
        if (s) goto done;
        for (int i = 0; i < ctx->nprof; i++) {
            int ph, slot = bench_label_layer(g, ctx->prof[i].label, &ph);
            if (slot < 0 || ph < 0) {
                out->unlabelled_events++;
                continue;
            }
            t[((size_t)st * (size_t)(L + 1) + (size_t)slot) * BENCH_PHASES + (size_t)ph] +=
                event_seconds(ctx->prof[i].evt);
            if (st == 0) out->layers[slot].events[ph]++;
        }
    }
    prof_clear(ctx);

    out->step = bench_stats_of(wall, S);
    out->images_per_second = out->step.median > 0 ? B / out->step.median : 0;
    for (int li = 0; li <= L; li++) {
        bench_layer_result *lr = &out->layers[li];
        for (int p = 0; p < BENCH_PHASES; p++) {
            for (int st = 0; st < S; st++)
                v[st] = t[((size_t)st * (size_t)(L + 1) + (size_t)li) * BENCH_PHASES + (size_t)p];
            lr->phase[p] = bench_stats_of(v, S);
        }
        if (li < L) {
            lr->cost = bench_layer_cost(g, &g->layers[li], &gp->layers[li], B);
            pipeline_layer_kernel(warm.p, li, lr->kernel, sizeof lr->kernel);
        }
    }
    if ((s = copy_rows(ctx, &out->rows, &out->nrows, e))) goto done;
    bench_step_cost(out->rows, out->nrows, g, gp, ts->optimizer, ts->l2sp > 0, B, out->cost);
    if (o->model_launch_us > 0 || o->model_bandwidth_gbs > 0) {
        out->has_estimate = true;
        out->estimate = bench_estimate_step(&out->cost[FAM_COUNT], o->model_launch_us,
                                            o->model_bandwidth_gbs, o->model_gflops);
    }
    /* a recipe whose frozen prefix graft train caches: also its step as trained (the whole
     * network's pipeline goes first; its plan and kernels have been read above) */
    int cut;
    if ((s = cache_cut_of(rc, B, &cut, e))) goto done;
    if (cut > 0) {
        pipeline_free(warm.p);
        warm.p = NULL;
        if ((s = cached_run(rc, &warm, x, y, &h, o, cut, out, e))) goto done;
    }

done:
    free(t);
    free(wall);
    free(v);
    free(x);
    free(y);
    run_free(&cold);
    run_free(&warm);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (s) bench_result_free(out);
    return s;
}

/* ---- JSON ---- */
static json_t *stats_json(bench_stats s)
{
    json_t *o = json_object();
    json_object_set_new(o, "median_ms", json_real(s.median * 1e3));
    json_object_set_new(o, "min_ms", json_real(s.min * 1e3));
    json_object_set_new(o, "max_ms", json_real(s.max * 1e3));
    json_object_set_new(o, "spread", json_real(s.spread));
    json_object_set_new(o, "flagged", json_boolean(s.flagged));
    return o;
}

/* Timing plus achieved rates of one phase of one layer. */
static json_t *phase_json(bench_stats s, int events, double flops, double bytes,
                          const peak_result *pk)
{
    json_t *o = stats_json(s);
    json_object_set_new(o, "events", json_integer(events));
    json_object_set_new(o, "flops", json_real(flops));
    json_object_set_new(o, "bytes", json_real(bytes));
    double gf = s.median > 0 ? flops / s.median / 1e9 : 0;
    double gb = s.median > 0 ? bytes / s.median / 1e9 : 0;
    double pf = peak_best_gflops(pk);
    json_object_set_new(o, "gflops", json_real(gf));
    json_object_set_new(o, "gbps", json_real(gb));
    json_object_set_new(o, "pct_peak_flops", json_real(pf > 0 ? 100 * gf / pf : 0));
    json_object_set_new(o, "pct_peak_bandwidth",
                        json_real(pk->copy_gbps > 0 ? 100 * gb / pk->copy_gbps : 0));
    return o;
}

void bench_result_json(const bench_result *r, const graph *g, const bench_settings *o, json_t *dev)
{
    const peak_result *pk = &r->peak;
    json_t *peak = json_object(), *pg = json_object();
    for (int i = 0; i < PEAK_FMA_TYPES; i++)
        json_object_set_new(pg, PEAK_FMA_NAMES[i], json_real(pk->gflops[i]));
    json_object_set_new(peak, "gflops", pg);
    json_object_set_new(peak, "best_gflops", json_real(peak_best_gflops(pk)));
    json_object_set_new(peak, "copy_gbps", json_real(pk->copy_gbps));
    json_object_set_new(peak, "from_cache", json_boolean(pk->from_cache));
    json_object_set_new(dev, "peak", peak);
    json_t *start = json_object();
    json_object_set_new(start, "cold_seconds", json_real(r->cold_seconds));
    json_object_set_new(start, "cold_compile_seconds", json_real(r->cold_compile_seconds));
    json_object_set_new(start, "cold_tune_seconds", json_real(r->cold_tune_seconds));
    json_object_set_new(start, "tuned_shapes", json_integer(r->tuned_shapes));
    json_object_set_new(start, "programs_built", json_integer(r->programs_built));
    json_object_set_new(start, "warm_seconds", json_real(r->warm_seconds));
    json_object_set_new(start, "programs_loaded", json_integer(r->programs_loaded));
    json_object_set_new(start, "programs_built_warm", json_integer(r->programs_built_warm));
    json_object_set_new(dev, "start", start);
    const plan_memory *m = &r->memory;
    json_t *mem = json_object();
    json_object_set_new(mem, "weights", json_integer((json_int_t)m->weights));
    json_object_set_new(mem, "gradients", json_integer((json_int_t)m->gradients));
    json_object_set_new(mem, "optimizer", json_integer((json_int_t)m->optimizer));
    json_object_set_new(mem, "activations", json_integer((json_int_t)m->activations));
    json_object_set_new(mem, "workspace", json_integer((json_int_t)m->workspace));
    json_object_set_new(mem, "total", json_integer((json_int_t)m->total));
    json_object_set_new(dev, "memory_bytes", mem);
    json_object_set_new(dev, "step", stats_json(r->step));
    json_object_set_new(dev, "images_per_second", json_real(r->images_per_second));

    json_t *layers = json_array(), *flagged = json_array();
    const bench_layer_result *loss = &r->layers[r->nlayers];
    json_t *lossj = stats_json(loss->phase[BENCH_FWD]);
    json_object_set_new(lossj, "events", json_integer(loss->events[BENCH_FWD]));
    json_object_set_new(dev, "loss", lossj);
    for (int li = 0; li < r->nlayers; li++) {
        const layer *l = &g->layers[li];
        const bench_layer_result *lr = &r->layers[li];
        json_t *lj = json_object();
        json_object_set_new(lj, "name", json_string(l->name));
        json_object_set_new(lj, "type", json_string(layer_type_name(l->type)));
        json_t *shp = json_array();
        for (int k = 0; k < l->out.rank; k++) json_array_append_new(shp, json_integer(l->out.d[k]));
        json_object_set_new(lj, "output_shape", shp);
        json_object_set_new(lj, "frozen", json_boolean(l->frozen));
        json_object_set_new(lj, "kernel", lr->kernel[0] ? json_string(lr->kernel) : json_null());
        json_object_set_new(lj, "forward", phase_json(lr->phase[BENCH_FWD], lr->events[BENCH_FWD],
                                                      lr->cost.fwd_flops, lr->cost.fwd_bytes, pk));
        bool has_bwd = lr->events[BENCH_BWD] > 0, has_upd = lr->events[BENCH_UPD] > 0;
        json_object_set_new(lj, "backward",
                            has_bwd ? phase_json(lr->phase[BENCH_BWD], lr->events[BENCH_BWD],
                                                 lr->cost.bwd_flops, lr->cost.bwd_bytes, pk)
                                    : json_null());
        json_t *uj = has_upd ? stats_json(lr->phase[BENCH_UPD]) : json_null();
        if (has_upd) json_object_set_new(uj, "events", json_integer(lr->events[BENCH_UPD]));
        json_object_set_new(lj, "update", uj);
        json_array_append_new(layers, lj);
        if (lr->phase[BENCH_FWD].flagged || (has_bwd && lr->phase[BENCH_BWD].flagged))
            json_array_append_new(flagged, json_string(l->name));
    }
    if (loss->phase[BENCH_FWD].flagged) json_array_append_new(flagged, json_string("loss"));
    json_object_set_new(dev, "layers", layers);
    if (r->step.flagged) json_array_append_new(flagged, json_string("step"));
    json_object_set_new(dev, "flagged", flagged);
    json_object_set_new(dev, "unlabelled_events", json_integer(r->unlabelled_events));
    json_t *cj = bench_cost_json(r->rows, r->nrows, g, r->cost, r->profiled_events);
    json_object_set_new(cj, "counted_step", json_integer(1));
    json_object_set_new(cj, "estimate", r->has_estimate
                                            ? bench_estimate_json(&r->estimate, o->batch)
                                            : json_null());
    json_object_set_new(dev, "cost_model", cj);
    json_t *fc = json_null();
    if (r->cache_cut > 0) {
        const double fm = r->feature_pass.median, sm = r->cached_step.median;
        fc = json_object();
        json_object_set_new(fc, "cut", json_integer(r->cache_cut));
        json_object_set_new(fc, "through", json_string(g->layers[r->cache_cut - 1].name));
        json_object_set_new(fc, "feature_pass", stats_json(r->feature_pass));
        json_object_set_new(fc, "feature_images_per_second", json_real(fm > 0 ? o->batch / fm : 0));
        json_object_set_new(fc, "step", stats_json(r->cached_step));
        json_object_set_new(fc, "images_per_second", json_real(sm > 0 ? o->batch / sm : 0));
        json_t *ccj = bench_cost_json(r->cached_rows, r->ncached_rows, g, r->cached_cost,
                                      r->cached_events);
        json_object_set_new(ccj, "counted_step", json_integer(1));
        json_object_set_new(ccj, "estimate",
                            r->has_estimate ? bench_estimate_json(&r->cached_estimate, o->batch)
                                            : json_null());
        json_object_set_new(fc, "cost_model", ccj);
    }
    json_object_set_new(dev, "feature_cache", fc);
}

json_t *bench_run_json(const char *recipe_file, const graft_recipe *rc, const bench_settings *o)
{
    json_t *root = json_object();
    json_object_set_new(root, "schema_version", json_integer(BENCH_SCHEMA_VERSION));
    json_object_set_new(root, "tool", json_string("graft " GRAFT_VERSION));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_object_set_new(root, "host", json_string(host));
    char when[64];
    time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    json_object_set_new(root, "created", json_string(when));
    json_t *rj = json_object();
    json_object_set_new(rj, "file", json_string(recipe_file));
    json_object_set_new(rj, "name", json_string(rc->name ? rc->name : ""));
    json_object_set_new(rj, "layers", json_integer(rc->graph.nlayers));
    json_object_set_new(rj, "params", json_integer(graph_param_count(&rc->graph, false)));
    json_object_set_new(rj, "trainable_params", json_integer(graph_param_count(&rc->graph, true)));
    json_object_set_new(root, "recipe", rj);
    json_t *set = json_object();
    json_object_set_new(set, "batch", json_integer(o->batch));
    json_object_set_new(set, "steps", json_integer(o->steps));
    json_object_set_new(set, "warmup", json_integer(o->warmup));
    json_object_set_new(set, "tune", json_boolean(o->tune));
    json_object_set_new(set, "input", json_string("synthetic"));
    json_t *model = json_null();
    if (o->model_launch_us > 0) {
        model = json_object();
        json_object_set_new(model, "launch_us", json_real(o->model_launch_us));
        json_object_set_new(model, "bandwidth_gbs", json_real(o->model_bandwidth_gbs));
        json_object_set_new(model, "peak_gflops", json_real(o->model_gflops));
    }
    json_object_set_new(set, "model", model);
    json_object_set_new(root, "settings", set);
    json_object_set_new(root, "devices", json_array());
    return root;
}

/* ---- `graft bench RECIPE` on a list of devices ---- */
bool bench_estimate_settings_ok(const bench_settings *s)
{
    return s->model_launch_us >= 0 && s->model_bandwidth_gbs >= 0 && s->model_gflops >= 0 &&
           (s->model_launch_us > 0) == (s->model_bandwidth_gbs > 0) &&
           !(s->model_gflops > 0 && !(s->model_launch_us > 0));
}

graft_status bench_resolve_devices(const char *list, char specs[][16], int max, int *n,
                                   graft_error *e)
{
    graft_device_info *devs = NULL;
    int nd = 0;
    *n = 0;
    graft_status s = graft_devices_list(&devs, &nd, e);
    if (s) return s;
    if (!list || strcmp(list, "all") == 0) {
        for (int i = 0; i < nd && *n < max; i++) {
            if (!list) { /* the usual device alone */
                int idx;
                if ((s = graft_device_select(devs, nd, NULL, &idx, e))) break;
                i = idx;
            }
            snprintf(specs[(*n)++], 16, "%d:%d", devs[i].platform_index, devs[i].device_index);
            if (!list) break;
        }
    } else {
        char *copy = strdup(list), *save = NULL;
        if (!copy) s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        for (char *w = copy ? strtok_r(copy, ",", &save) : NULL; w && *n < max && !s;
             w = strtok_r(NULL, ",", &save)) {
            int idx;
            if ((s = graft_device_select(devs, nd, w, &idx, e))) break;
            char sp[16];
            snprintf(sp, sizeof sp, "%d:%d", devs[idx].platform_index, devs[idx].device_index);
            bool dup = false; /* a device named twice runs once */
            for (int j = 0; j < *n; j++) dup = dup || strcmp(specs[j], sp) == 0;
            if (!dup) snprintf(specs[(*n)++], 16, "%s", sp);
        }
        free(copy);
    }
    free(devs);
    if (!s && *n == 0) s = err_set(e, GRAFT_STATUS_OPENCL, "no OpenCL device to run on");
    return s;
}

json_t *bench_devices(graft_recipe *rc, const bench_settings *s, char specs[][16], int n,
                      bench_each_fn each, void *user, int *failed)
{
    json_t *root = bench_run_json(rc->file ? rc->file : "", rc, s);
    json_t *devs = json_object_get(root, "devices");
    *failed = 0;
    graft_device_info *list = NULL; /* for the identities: listed once */
    int nd = 0;
    graft_error le = {0};
    if (graft_devices_list(&list, &nd, &le)) nd = 0;
    for (int i = 0; i < n; i++) {
        graft_error e = {0};
        json_t *dev = json_object();
        json_object_set_new(dev, "spec", json_string(specs[i]));
        int idx = 0;
        if (nd && !graft_device_select(list, nd, specs[i], &idx, &e))
            json_object_set_new(dev, "identity", bench_device_json(&list[idx], "device"));
        if (each) each(user, i, n, specs[i], NULL, NULL);
        bench_result r;
        if (bench_run(rc, specs[i], s, &r, &e)) {
            (*failed)++;
            if (each) each(user, i, n, specs[i], NULL, &e);
            json_object_set_new(dev, "error", json_string(e.message));
        } else {
            if (each) each(user, i, n, specs[i], &r, NULL);
            bench_result_json(&r, &rc->graph, s, dev);
            bench_result_free(&r);
            json_object_set_new(dev, "error", json_null());
        }
        json_array_append_new(devs, dev);
    }
    free(list);
    return root;
}

graft_status graft_bench_json(graft_recipe *r, const char *devices, const graft_bench_options *o,
                              char **json, graft_error *err)
{
    *json = NULL;
    const graft_bench_options none = {.warmup = -1};
    if (!o) o = &none;
    bench_settings s = {.steps = o->steps ? o->steps : 10,
                        .warmup = o->warmup < 0 ? 2 : o->warmup,
                        .batch = o->batch ? o->batch
                                 : r->train.batch_size > 0 ? r->train.batch_size
                                                           : 64,
                        .tune = !o->no_tune,
                        .model_launch_us = o->model_launch_us,
                        .model_bandwidth_gbs = o->model_bandwidth_gbs,
                        .model_gflops = o->model_gflops};
    if (s.steps < 1 || s.steps > BENCH_MAX_STEPS || s.warmup > BENCH_MAX_STEPS || s.batch < 1 ||
        s.batch > BENCH_MAX_BATCH)
        return err_set(err, GRAFT_STATUS_USAGE,
                       "bench: steps %d (1 to %d), warmup %d (0 to %d), batch %d (1 to %d)",
                       s.steps, BENCH_MAX_STEPS, s.warmup, BENCH_MAX_STEPS, s.batch,
                       BENCH_MAX_BATCH);
    if (!bench_estimate_settings_ok(&s))
        return err_set(err, GRAFT_STATUS_USAGE,
                       "bench: the estimate needs both model_launch_us and model_bandwidth_gbs "
                       "(model_gflops is optional), all positive");
    char specs[64][16];
    int n = 0, failed = 0;
    graft_status st = bench_resolve_devices(devices, specs, 64, &n, err);
    if (st) return st;
    json_t *root = bench_devices(r, &s, specs, n, NULL, NULL, &failed);
    *json = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                        JSON_REAL_PRECISION(6))
                 : NULL;
    json_decref(root);
    return *json ? GRAFT_OK : err_set(err, GRAFT_STATUS_NOMEM, "out of memory for the JSON");
}

/* bench_recipe.c — `graft bench RECIPE`: profile a recipe's training step on one or every device:
 * cold and warm start, per-layer forward/backward times from OpenCL profiling events (median, min,
 * max over the steps after warm-up), step time, images/s, GFLOP/s and GB/s against the device's
 * probed peak, the plan's memory and the device's identity; JSON per docs/bench-schema.md. */
#include "cli.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "compile.h"
#include "tune.h"

#define BENCH_SCHEMA_VERSION 2
#define SPREAD_FLAG 0.10 /* (max - min) / median above this marks a timing as unsteady */

/* The human-readable tables: stdout, or stderr when the JSON goes to stdout. */
static FILE *out;


const char BENCH_RECIPE_USAGE[] =
    "usage: graft bench RECIPE [--devices all|SPEC,SPEC...] [--steps N] [--warmup N]\n"
    "                   [--batch N] [--no-tune] [--json OUT] [--set PATH=VALUE]...\n"
    "                   [--model-launch-us L --model-bandwidth-gbs B [--model-gflops P]]\n"
    "\n"
    "Profile the recipe's training step (forward, loss, backward, optimizer update) on each\n"
    "device with synthetic inputs: cold start (compile + GEMM tuning from an empty cache in a\n"
    "temporary directory) and warm start (same cache, second process-like start); per layer the\n"
    "forward and backward time from OpenCL profiling events (median, min and max over the steps\n"
    "after warm-up), achieved GFLOP/s and GB/s and their %% of the device's probed peak (FMA with\n"
    "float..float16, copy bandwidth; measured once per device and kept in the cache); step time,\n"
    "images/s and the plan's memory. Timings whose spread (max-min)/median exceeds 10%% are\n"
    "flagged with '!'. The cost model of one step, per op family: kernel launches, host\n"
    "synchronisations, bytes host->device and device->host (counted) and device-memory traffic\n"
    "(estimated), the numbers that carry over to a device nobody here has.\n"
    "\n"
    "  --devices all|LIST  every OpenCL device, or a comma-separated list of device specs\n"
    "                      (cpu, gpu, nvidia, pocl, P:D, name substring); default: the usual device\n"
    "  --steps N           measured steps (default 10)\n"
    "  --warmup N          untimed steps after the warm start (default 2)\n"
    "  --batch N           batch size (default: the recipe's train.batch_size)\n"
    "  --no-tune           cold start compiles only (skips the GEMM tuner)\n"
    "  --json OUT          write the results as JSON (schema: docs/bench-schema.md; - = stdout)\n"
    "  --set PATH=VALUE    override a recipe key (repeatable)\n"
    "  --model-launch-us L, --model-bandwidth-gbs B, --model-gflops P\n"
    "                      estimate a step on another device from the cost model: launches*L +\n"
    "                      max(traffic/B, FLOPs/P) (P optional), a lower bound, not a measurement\n";

typedef struct bench_opts {
    const char *recipe;
    const char *devices;
    const char *json;
    int steps, warmup, batch;
    bool tune;
    double model_launch_us, model_bandwidth_gbs, model_gflops; /* 0: no estimate */
} bench_opts;

/* ---- GEMM shapes the recipe issues (as op_conv.c / op_dense.c do), for the cold-start tuner;
 * the same rule as cmd_tune.c's layer_shapes ---- */
#define BENCH_MAX_SHAPES 128
typedef struct shape_set {
    gemm_shape s[BENCH_MAX_SHAPES];
    int n;
} shape_set;

static void add_shape(shape_set *l, bool ta, bool tb, size_t m, size_t n, size_t k)
{
    if (m == 0 || n == 0 || k == 0) return;
    gemm_shape s = {ta, tb, m, n, k};
    for (int i = 0; i < l->n; i++)
        if (memcmp(&l->s[i], &s, sizeof s) == 0) return;
    if (l->n < BENCH_MAX_SHAPES) l->s[l->n++] = s;
}

static void gemm_shapes(shape_set *l, const layer *ly, size_t n)
{
    if (ly->type == GRAFT_LAYER_CONV2D) {
        size_t g = (size_t)(ly->groups > 0 ? ly->groups : 1);
        size_t c = (size_t)ly->in.d[0], o = (size_t)ly->out.d[0];
        size_t p = (size_t)ly->out.d[1] * (size_t)ly->out.d[2];
        size_t ckk = c * (size_t)ly->kernel[0] * (size_t)ly->kernel[1];
        size_t cols = (g > 1 || ckk >= 32) ? n * p : p;
        add_shape(l, false, false, o / g, cols, ckk / g);
        add_shape(l, true, false, ckk / g, cols, o / g);
        add_shape(l, false, true, o / g, ckk / g, cols);
    } else if (ly->type == GRAFT_LAYER_DENSE) {
        size_t in = (size_t)shape_size(ly->in), out = (size_t)ly->units;
        add_shape(l, false, true, n, out, in);
        add_shape(l, false, false, n, in, out);
        add_shape(l, true, false, out, in, n);
    }
}

/* ---- statistics over the measured steps ---- */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats {
    double median, min, max, spread;
    bool flagged;
} stats;

static stats stats_of(const double *v, int n)
{
    stats s = {0};
    if (n <= 0) return s;
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) return s;
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    s.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    s.min = t[0];
    s.max = t[n - 1];
    s.spread = s.median > 0 ? (s.max - s.min) / s.median : 0;
    s.flagged = s.spread > SPREAD_FLAG;
    free(t);
    return s;
}

static json_t *stats_json(stats s)
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
static json_t *phase_json(stats s, int events, double flops, double bytes, const peak_result *pk)
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

/* A context on spec with the cache in dir, the training pipeline compiled and uploaded, and one
 * step run (so every kernel is built): what "start" means to a user. */
static graft_status start_run(const char *spec, const char *dir, graft_recipe *rc, int batch,
                              const float *x, const int *y, const optim_hparams *h,
                              const shape_set *tune, double *tune_seconds, device_run *r,
                              graft_error *e)
{
    graft_context_options co = {.device = spec, .cache_dir = dir, .profile = 1};
    graft_status s = graft_context_create(&co, &r->ctx, e);
    if (s) return s;
    if (tune) {
        double t0 = now_seconds();
        for (int i = 0; i < tune->n && !s; i++) {
            tune_result tr;
            s = tune_gemm(r->ctx, &tune->s[i], NULL, NULL, &tr, e);
        }
        *tune_seconds = now_seconds() - t0;
        if (s) return s;
    }
    pipeline_options po = {.max_batch = batch,
                           .training = true,
                           .bn_train = rc->transfer.bn_train,
                           .optimizer = rc->train.optimizer,
                           .l2sp = rc->train.l2sp > 0,
                           .label_smoothing = (float)rc->train.label_smoothing,
                           .dropout_seed = 17};
    if ((s = store_init(&r->store, &rc->graph, rc->train.seed, e))) return s;
    if ((s = pipeline_create(r->ctx, &rc->graph, &po, &r->p, e))) return s;
    if ((s = pipeline_upload(r->p, &r->store, e))) return s;
    step_result sr;
    if ((s = pipeline_train_step(r->p, x, y, batch, h, &sr, e))) return s;
    return queue_finish(r->ctx, e);
}

/* Which layer and phase an event label names: "<layer>.fwd|.bwd|.update" or "loss". */
enum { PH_FWD, PH_BWD, PH_UPD, PH_COUNT };
static int label_slot(const graph *g, const char *label, int *phase)
{
    if (strcmp(label, "loss") == 0) {
        *phase = PH_FWD;
        return g->nlayers; /* the loss row */
    }
    const char *dot = strrchr(label, '.');
    if (!dot) return -1;
    *phase = strcmp(dot, ".fwd") == 0 ? PH_FWD : strcmp(dot, ".bwd") == 0 ? PH_BWD
             : strcmp(dot, ".update") == 0                                 ? PH_UPD
                                                                            : -1;
    if (*phase < 0) return -1;
    char name[96];
    size_t n = (size_t)(dot - label);
    if (n >= sizeof name) return -1;
    memcpy(name, label, n);
    name[n] = 0;
    return graph_find_layer(g, name);
}

static void print_stats_cell(stats s, bool any)
{
    if (!any) fprintf(out, " %21s", "-");
    else fprintf(out, " %7.3f [%5.2f-%5.2f]%s", s.median * 1e3, s.min * 1e3, s.max * 1e3,
                s.flagged ? "!" : " ");
}

/* The cost model of the counted step: a table per op family, the estimate for another device
 * when asked for, and the JSON object "cost_model". */
static void cost_model_report(const bench_opts *o, const graft_recipe *rc, const graft_context *ctx,
                              const graph_plan *gp, int profiled, json_t *dev)
{
    bench_cost fam[FAM_COUNT + 1];
    bench_step_cost(ctx, &rc->graph, gp, rc->train.optimizer, rc->train.l2sp > 0, o->batch, fam);
    json_t *cj = bench_cost_json(ctx, &rc->graph, fam, profiled);
    json_object_set_new(cj, "counted_step", json_integer(1));
    fprintf(out, "cost model of one step (counted: launches, syncs, host<->device bytes; estimated: "
                 "device-memory traffic):\n");
    fprintf(out, "%-11s %9s %6s %12s %12s %12s %10s\n", "family", "launches", "syncs", "H2D bytes",
            "D2H bytes", "traffic MB", "MFLOP");
    for (int f = 0; f <= FAM_COUNT; f++) {
        const bench_cost *c = &fam[f];
        if (f < FAM_COUNT && !c->launches && !c->syncs && !c->h2d_bytes && !c->d2h_bytes &&
            !c->traffic_bytes)
            continue;
        char launches[32];
        snprintf(launches, sizeof launches, "%.0f", c->launches);
        if (c->clblast_calls) /* CLBlast's own kernels are not visible: its calls count as one */
            snprintf(launches, sizeof launches, "%.0f (%.0f clblast)", c->launches, c->clblast_calls);
        fprintf(out, "%-11s %9s %6.0f %12.0f %12.0f %12.2f %10.1f\n",
                f < FAM_COUNT ? BENCH_FAMILY_NAMES[f] : "total", launches, c->syncs, c->h2d_bytes,
                c->d2h_bytes, c->traffic_bytes / 1e6, c->flops / 1e6);
    }
    if (o->model_launch_us > 0 || o->model_bandwidth_gbs > 0) {
        bench_estimate est = bench_estimate_step(&fam[FAM_COUNT], o->model_launch_us,
                                                 o->model_bandwidth_gbs, o->model_gflops);
        char peak[64] = "";
        if (o->model_gflops > 0) snprintf(peak, sizeof peak, ", %g GFLOP/s", o->model_gflops);
        fprintf(out, "ESTIMATE, not a measurement: on a device with %g us launches, %g GB/s%s a step "
                     "takes at least %.3f ms = launches %.3f ms + max(memory %.3f ms, compute "
                     "%.3f ms) => at most %.0f images/s\n",
                o->model_launch_us, o->model_bandwidth_gbs, peak, est.step_s * 1e3,
                est.launch_s * 1e3, est.memory_s * 1e3, est.compute_s * 1e3,
                est.step_s > 0 ? o->batch / est.step_s : 0);
        json_object_set_new(cj, "estimate", bench_estimate_json(&est, o->batch));
    } else json_object_set_new(cj, "estimate", json_null());
    json_object_set_new(dev, "cost_model", cj);
}

static graft_status bench_device(const bench_opts *o, graft_recipe *rc, const char *spec,
                                 json_t *dev, graft_error *e)
{
    const graph *g = &rc->graph;
    int B = o->batch, L = g->nlayers, S = o->steps;
    device_run cold = {0}, warm = {0};
    float *x = NULL;
    int *y = NULL;
    double *t = NULL, *wall = NULL;
    int *nev = NULL;
    graft_status s = GRAFT_OK;
    char dir[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/graft-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return err_set(e, GRAFT_STATUS_IO, "mkdtemp %s: %s", dir, strerror(errno));

    /* the peak probe runs in the user's cache, where it is kept across runs */
    peak_result pk;
    {
        graft_context *pc = NULL;
        graft_context_options co = {.device = spec};
        if ((s = graft_context_create(&co, &pc, e))) goto done;
        s = peak_probe(pc, 1, &pk, e);
        graft_context_free(pc);
        if (s) goto done;
    }

    long in = 0;
    {
        /* the input size is the graph's input (bench always runs every layer: no feature cache) */
        in = shape_size(g->input);
        x = malloc((size_t)B * (size_t)in * sizeof *x);
        y = malloc((size_t)B * sizeof *y);
        if (!x || !y) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for the synthetic batch");
            goto done;
        }
        /* synthetic inputs: timings do not depend on the values (only dropout draws differ) */
        for (long i = 0; i < (long)B * in; i++) x[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
        for (int i = 0; i < B; i++) y[i] = i % (g->num_classes > 0 ? g->num_classes : 1);
    }
    const train_spec *ts = &rc->train;
    optim_hparams h = {.kind = ts->optimizer, .lr = (float)ts->lr, .momentum = (float)ts->momentum,
                       .beta1 = (float)ts->beta1, .beta2 = (float)ts->beta2, .eps = (float)ts->eps,
                       .weight_decay = (float)ts->weight_decay, .l2sp = (float)ts->l2sp, .t = 1};

    shape_set shapes = {0};
    for (int i = 0; i < L; i++) gemm_shapes(&shapes, &g->layers[i], (size_t)B);
    double tune_s = 0, t0 = now_seconds();
    if ((s = start_run(spec, dir, rc, B, x, y, &h, o->tune ? &shapes : NULL, &tune_s, &cold, e)))
        goto done;
    double cold_s = now_seconds() - t0, cold_compile = cold.ctx->compile_seconds;
    int built = cold.ctx->programs_built;
    run_free(&cold);
    t0 = now_seconds();
    if ((s = start_run(spec, dir, rc, B, x, y, &h, NULL, NULL, &warm, e))) goto done;
    double warm_s = now_seconds() - t0;
    graft_context *ctx = warm.ctx;
    const graph_plan *gp = pipeline_plan(warm.p);

    step_result sr;
    for (int i = 0; i < o->warmup; i++) {
        h.t++;
        if ((s = pipeline_train_step(warm.p, x, y, B, &h, &sr, e))) goto done;
    }
    if ((s = queue_finish(ctx, e))) goto done;
    /* t[(step * (L + 1) + slot) * PH_COUNT + phase]: seconds of that step's events */
    size_t cells = (size_t)S * (size_t)(L + 1) * PH_COUNT;
    t = calloc(cells, sizeof *t);
    nev = calloc((size_t)(L + 1) * PH_COUNT, sizeof *nev);
    wall = calloc((size_t)S, sizeof *wall);
    if (!t || !nev || !wall) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory for timings");
        goto done;
    }
    int other = 0, profiled = 0;
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
        cost_rows(ctx, 0); /* the bench's own wait below is not the step's */
        if (st == 0) profiled = ctx->nprof;
        if (!s) s = queue_finish(ctx, e);
        wall[st] = now_seconds() - w0;
        ctx->record = 0;
        if (s) goto done;
        for (int i = 0; i < ctx->nprof; i++) {
            int ph, slot = label_slot(g, ctx->prof[i].label, &ph);
            if (slot < 0) {
                other++;
                continue;
            }
            t[((size_t)st * (size_t)(L + 1) + (size_t)slot) * PH_COUNT + (size_t)ph] +=
                event_seconds(ctx->prof[i].evt);
            if (st == 0) nev[slot * PH_COUNT + ph]++;
        }
    }
    prof_clear(ctx);

    /* ---- results ---- */
    stats step = stats_of(wall, S);
    double ips = step.median > 0 ? B / step.median : 0;
    json_t *peak = json_object(), *pg = json_object();
    for (int i = 0; i < PEAK_FMA_TYPES; i++)
        json_object_set_new(pg, PEAK_FMA_NAMES[i], json_real(pk.gflops[i]));
    json_object_set_new(peak, "gflops", pg);
    json_object_set_new(peak, "best_gflops", json_real(peak_best_gflops(&pk)));
    json_object_set_new(peak, "copy_gbps", json_real(pk.copy_gbps));
    json_object_set_new(peak, "from_cache", json_boolean(pk.from_cache));
    json_object_set_new(dev, "peak", peak);
    json_t *start = json_object();
    json_object_set_new(start, "cold_seconds", json_real(cold_s));
    json_object_set_new(start, "cold_compile_seconds", json_real(cold_compile));
    json_object_set_new(start, "cold_tune_seconds", json_real(tune_s));
    json_object_set_new(start, "tuned_shapes", json_integer(o->tune ? shapes.n : 0));
    json_object_set_new(start, "programs_built", json_integer(built));
    json_object_set_new(start, "warm_seconds", json_real(warm_s));
    json_object_set_new(start, "programs_loaded", json_integer(ctx->programs_loaded));
    json_object_set_new(start, "programs_built_warm", json_integer(ctx->programs_built));
    json_object_set_new(dev, "start", start);
    const plan_memory *m = &gp->mem;
    json_t *mem = json_object();
    json_object_set_new(mem, "weights", json_integer((json_int_t)m->weights));
    json_object_set_new(mem, "gradients", json_integer((json_int_t)m->gradients));
    json_object_set_new(mem, "optimizer", json_integer((json_int_t)m->optimizer));
    json_object_set_new(mem, "activations", json_integer((json_int_t)m->activations));
    json_object_set_new(mem, "workspace", json_integer((json_int_t)m->workspace));
    json_object_set_new(mem, "total", json_integer((json_int_t)m->total));
    json_object_set_new(dev, "memory_bytes", mem);
    json_t *stj = stats_json(step);
    json_object_set_new(dev, "step", stj);
    json_object_set_new(dev, "images_per_second", json_real(ips));

    const graft_device_info *d = &ctx->info;
    fprintf(out, "\n%s (%s, %s) — %d measured steps of batch %d after %d warm-up\n", d->name,
           d->platform, d->driver, S, B, o->warmup);
    fprintf(out, "peak: FMA %.1f/%.1f/%.1f/%.1f GFLOP/s (float/4/8/16), copy %.1f GB/s%s\n", pk.gflops[0],
           pk.gflops[1], pk.gflops[2], pk.gflops[3], pk.copy_gbps,
           pk.from_cache ? " (cached)" : "");
    fprintf(out, "start: cold %.2f s (compile %.2f s, tune %.2f s, %d programs), warm %.2f s\n", cold_s,
           cold_compile, tune_s, built, warm_s);
    fprintf(out, "%-14s %-10s %21s %21s %9s %6s %8s %6s\n", "layer", "type", "forward ms [min-max]",
           "backward ms [min-max]", "GFLOP/s", "%peak", "GB/s", "%bw");

    json_t *layers = json_array(), *flagged = json_array();
    double *v = malloc((size_t)S * sizeof *v);
    if (!v) {
        s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (int li = 0; li <= L; li++) {
        bool is_loss = li == L;
        stats ph[PH_COUNT];
        for (int p = 0; p < PH_COUNT; p++) {
            for (int st = 0; st < S; st++)
                v[st] = t[((size_t)st * (size_t)(L + 1) + (size_t)li) * PH_COUNT + (size_t)p];
            ph[p] = stats_of(v, S);
        }
        if (is_loss) {
            json_t *lj = stats_json(ph[PH_FWD]);
            json_object_set_new(lj, "events", json_integer(nev[L * PH_COUNT]));
            json_object_set_new(dev, "loss", lj);
            if (ph[PH_FWD].flagged) json_array_append_new(flagged, json_string("loss"));
            fprintf(out, "%-14s %-10s", "loss", "");
            print_stats_cell(ph[PH_FWD], true);
            fprintf(out, "\n");
            continue;
        }
        const layer *l = &g->layers[li];
        const layer_plan *lp = &gp->layers[li];
        layer_cost c = bench_layer_cost(g, l, lp, B);
        json_t *lj = json_object();
        json_object_set_new(lj, "name", json_string(l->name));
        json_object_set_new(lj, "type", json_string(layer_type_name(l->type)));
        json_t *shp = json_array();
        for (int k = 0; k < l->out.rank; k++) json_array_append_new(shp, json_integer(l->out.d[k]));
        json_object_set_new(lj, "output_shape", shp);
        json_object_set_new(lj, "frozen", json_boolean(l->frozen));
        json_object_set_new(lj, "forward",
                            phase_json(ph[PH_FWD], nev[li * PH_COUNT + PH_FWD], c.fwd_flops,
                                       c.fwd_bytes, &pk));
        bool has_bwd = nev[li * PH_COUNT + PH_BWD] > 0;
        json_object_set_new(lj, "backward",
                            has_bwd ? phase_json(ph[PH_BWD], nev[li * PH_COUNT + PH_BWD],
                                                 c.bwd_flops, c.bwd_bytes, &pk)
                                    : json_null());
        bool has_upd = nev[li * PH_COUNT + PH_UPD] > 0;
        json_t *uj = has_upd ? stats_json(ph[PH_UPD]) : json_null();
        if (has_upd) json_object_set_new(uj, "events", json_integer(nev[li * PH_COUNT + PH_UPD]));
        json_object_set_new(lj, "update", uj);
        json_array_append_new(layers, lj);
        if (ph[PH_FWD].flagged || (has_bwd && ph[PH_BWD].flagged))
            json_array_append_new(flagged, json_string(l->name));
        double tot = ph[PH_FWD].median + (has_bwd ? ph[PH_BWD].median : 0);
        double fl = c.fwd_flops + (has_bwd ? c.bwd_flops : 0);
        double by = c.fwd_bytes + (has_bwd ? c.bwd_bytes : 0);
        double gf = tot > 0 ? fl / tot / 1e9 : 0, gb = tot > 0 ? by / tot / 1e9 : 0;
        double pf = peak_best_gflops(&pk);
        fprintf(out, "%-14.14s %-10.10s", l->name, layer_type_name(l->type));
        print_stats_cell(ph[PH_FWD], true);
        print_stats_cell(ph[PH_BWD], has_bwd);
        fprintf(out, " %9.2f %5.1f%% %8.2f %5.1f%%\n", gf, pf > 0 ? 100 * gf / pf : 0, gb,
               pk.copy_gbps > 0 ? 100 * gb / pk.copy_gbps : 0);
    }
    free(v);
    json_object_set_new(dev, "layers", layers);
    if (step.flagged) json_array_append_new(flagged, json_string("step"));
    json_object_set_new(dev, "flagged", flagged);
    json_object_set_new(dev, "unlabelled_events", json_integer(other));
    fprintf(out, "step: %.2f ms [%.2f-%.2f]%s => %.1f images/s; memory %.2f MiB (plan)\n",
           step.median * 1e3, step.min * 1e3, step.max * 1e3, step.flagged ? " ! spread > 10%" : "",
           ips, (double)m->total / 1048576.0);
    if (json_array_size(flagged))
        fprintf(out, "flagged (spread > 10%%): %zu timings; more --steps or a quieter machine help\n",
               json_array_size(flagged));
    cost_model_report(o, rc, ctx, gp, profiled, dev);

done:
    free(t);
    free(nev);
    free(wall);
    free(x);
    free(y);
    run_free(&cold);
    run_free(&warm);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return s;
}

static bool parse_count(const char *v, int lo, int hi, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) return false;
    *out = (int)n;
    return true;
}

/* The device specs to run: "all" = every device as P:D; else each listed spec resolved to P:D
 * (so a device named twice runs once). */
static int resolve_devices(const char *list, char specs[][16], int max, int *n)
{
    graft_error e = {0};
    graft_device_info *devs = NULL;
    int nd = 0;
    *n = 0;
    if (graft_devices_list(&devs, &nd, &e)) return cli_fail(&e);
    if (!list || strcmp(list, "all") == 0) {
        for (int i = 0; i < nd && *n < max; i++) {
            if (!list) {
                int idx;
                if (graft_device_select(devs, nd, NULL, &idx, &e)) {
                    free(devs);
                    return cli_fail(&e);
                }
                i = idx;
            }
            snprintf(specs[(*n)++], 16, "%d:%d", devs[i].platform_index, devs[i].device_index);
            if (!list) break;
        }
    } else {
        char *copy = strdup(list), *save = NULL;
        if (!copy) {
            free(devs);
            return 1;
        }
        for (char *w = strtok_r(copy, ",", &save); w && *n < max; w = strtok_r(NULL, ",", &save)) {
            int idx;
            if (graft_device_select(devs, nd, w, &idx, &e)) {
                free(copy);
                free(devs);
                return cli_fail(&e);
            }
            char sp[16];
            snprintf(sp, sizeof sp, "%d:%d", devs[idx].platform_index, devs[idx].device_index);
            bool dup = false;
            for (int j = 0; j < *n; j++) dup = dup || strcmp(specs[j], sp) == 0;
            if (!dup) snprintf(specs[(*n)++], 16, "%s", sp);
        }
        free(copy);
    }
    free(devs);
    if (*n == 0) {
        fprintf(stderr, "graft bench: no OpenCL device to run on\n");
        return 1;
    }
    return 0;
}

int bench_recipe_main(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "bench", BENCH_RECIPE_USAGE, argc, argv);
    bench_opts o = {.steps = 10, .warmup = 2, .tune = true};
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    const char *opt, *pos;
    while (cli_next(&a, &opt, &pos)) {
        if (!opt) {
            if (o.recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            o.recipe = pos;
        } else if (strcmp(opt, "--no-tune") == 0) o.tune = false;
        else if (strcmp(opt, "--set") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v || !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
        } else if (strcmp(opt, "--model-launch-us") == 0 ||
                   strcmp(opt, "--model-bandwidth-gbs") == 0 || strcmp(opt, "--model-gflops") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            char *end;
            double d = strtod(v, &end);
            if (!*v || *end || !(d > 0) || d > 1e9)
                return cli_usage_error(&a, "%s %s: expected a positive number", opt, v);
            if (strcmp(opt, "--model-launch-us") == 0) o.model_launch_us = d;
            else if (strcmp(opt, "--model-bandwidth-gbs") == 0) o.model_bandwidth_gbs = d;
            else o.model_gflops = d;
        } else if (strcmp(opt, "--devices") == 0 || strcmp(opt, "--json") == 0 ||
                   strcmp(opt, "--steps") == 0 || strcmp(opt, "--warmup") == 0 ||
                   strcmp(opt, "--batch") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (strcmp(opt, "--devices") == 0) o.devices = v;
            else if (strcmp(opt, "--json") == 0) o.json = v;
            else if (strcmp(opt, "--steps") == 0 && !parse_count(v, 1, 100000, &o.steps))
                return cli_usage_error(&a, "--steps %s: expected 1 to 100000", v);
            else if (strcmp(opt, "--warmup") == 0 && !parse_count(v, 0, 100000, &o.warmup))
                return cli_usage_error(&a, "--warmup %s: expected 0 to 100000", v);
            else if (strcmp(opt, "--batch") == 0 && !parse_count(v, 1, 1 << 20, &o.batch))
                return cli_usage_error(&a, "--batch %s: expected 1 to 1048576", v);
        } else return cli_usage_error(&a, "unknown option %s", opt);
    }
    if (!o.recipe) return cli_usage_error(&a, "expected a recipe file (or `gemm`)");
    if ((o.model_launch_us > 0) != (o.model_bandwidth_gbs > 0) ||
        (o.model_gflops > 0 && !(o.model_launch_us > 0)))
        return cli_usage_error(&a, "the estimate needs both --model-launch-us and "
                                   "--model-bandwidth-gbs (--model-gflops is optional)");
    out = o.json && strcmp(o.json, "-") == 0 ? stderr : stdout;

    graft_recipe *rc = NULL;
    int code = cli_load_recipe(o.recipe, sets, nsets, &rc);
    if (code) return code;
    if (!o.batch) o.batch = rc->train.batch_size > 0 ? rc->train.batch_size : 64;
    char specs[64][16];
    int nspecs = 0;
    if ((code = resolve_devices(o.devices, specs, 64, &nspecs))) {
        recipe_free(rc);
        return code;
    }

    json_t *root = json_object(), *devs = json_array();
    json_object_set_new(root, "schema_version", json_integer(BENCH_SCHEMA_VERSION));
    json_object_set_new(root, "tool", json_string("graft " GRAFT_VERSION));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_object_set_new(root, "host", json_string(host));
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(root, "created", json_string(when));
    json_t *rj = json_object();
    json_object_set_new(rj, "file", json_string(o.recipe));
    json_object_set_new(rj, "name", json_string(rc->name ? rc->name : ""));
    json_object_set_new(rj, "layers", json_integer(rc->graph.nlayers));
    json_object_set_new(rj, "params", json_integer(graph_param_count(&rc->graph, false)));
    json_object_set_new(rj, "trainable_params", json_integer(graph_param_count(&rc->graph, true)));
    json_object_set_new(root, "recipe", rj);
    json_t *set = json_object();
    json_object_set_new(set, "batch", json_integer(o.batch));
    json_object_set_new(set, "steps", json_integer(o.steps));
    json_object_set_new(set, "warmup", json_integer(o.warmup));
    json_object_set_new(set, "tune", json_boolean(o.tune));
    json_object_set_new(set, "input", json_string("synthetic"));
    json_t *model = json_null();
    if (o.model_launch_us > 0) {
        model = json_object();
        json_object_set_new(model, "launch_us", json_real(o.model_launch_us));
        json_object_set_new(model, "bandwidth_gbs", json_real(o.model_bandwidth_gbs));
        json_object_set_new(model, "peak_gflops", json_real(o.model_gflops));
    }
    json_object_set_new(set, "model", model);
    json_object_set_new(root, "settings", set);
    json_object_set_new(root, "devices", devs);

    int failed = 0;
    for (int i = 0; i < nspecs; i++) {
        graft_error e = {0};
        json_t *dev = json_object();
        json_object_set_new(dev, "spec", json_string(specs[i]));
        graft_device_info *list = NULL;
        int nd = 0, idx = 0;
        if (!graft_devices_list(&list, &nd, &e) &&
            !graft_device_select(list, nd, specs[i], &idx, &e))
            json_object_set_new(dev, "identity", bench_device_json(&list[idx], "device"));
        free(list);
        fprintf(stderr, "graft bench: device %s (%d of %d)...\n", specs[i], i + 1, nspecs);
        if (bench_device(&o, rc, specs[i], dev, &e)) {
            failed++;
            fprintf(stderr, "graft bench: device %s: ", specs[i]);
            cli_fail(&e);
            json_object_set_new(dev, "error", json_string(e.message));
        } else json_object_set_new(dev, "error", json_null());
        json_array_append_new(devs, dev);
    }
    recipe_free(rc);
    if (o.json) {
        char *txt = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        graft_error e = {0};
        if (!txt) code = 1, fprintf(stderr, "graft bench: out of memory for the JSON\n");
        else if (strcmp(o.json, "-") == 0) puts(txt);
        else {
            size_t n = strlen(txt);
            txt[n] = '\n'; /* json_dumps' terminator becomes the file's last newline */
            if (fs_write_atomic(o.json, txt, n + 1, &e)) code = cli_fail(&e);
            else fprintf(stderr, "graft bench: wrote %s\n", o.json);
        }
        free(txt);
    }
    json_decref(root);
    if (!code && failed) code = 1;
    return code;
}

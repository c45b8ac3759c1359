/* autotune.c — the GEMM shapes a recipe's pipeline issues, and the tuning a training run does on
 * a device that has no results for them (train.tune / GRAFT_TUNE): `graft tune` and the trainer
 * share the derivation here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"

static void add_ld(gemm_shape *out, int *n, int cap, bool ta, bool tb, size_t m, size_t nn,
                   size_t k, size_t lda, size_t ldb, size_t ldc)
{
    if (m == 0 || nn == 0 || k == 0) return;
    for (int i = 0; i < *n; i++) /* field by field: the struct has padding */
        if (out[i].ta == ta && out[i].tb == tb && out[i].m == m && out[i].n == nn && out[i].k == k)
            return;
    if (*n < cap) out[(*n)++] = (gemm_shape){ta, tb, m, nn, k, lda, ldb, ldc};
}

static void add(gemm_shape *out, int *n, int cap, bool ta, bool tb, size_t m, size_t nn, size_t k)
{
    add_ld(out, n, cap, ta, tb, m, nn, k, 0, 0, 0);
}

int compile_gemm_shapes(graft_context *ctx, const graph *g, size_t batch, bool only_trained,
                        gemm_shape *out, int cap)
{
    int n = 0;
    /* flows[i]: a gradient reaches layer i's output (it or something before it trains) */
    bool *flows = calloc((size_t)(g->nlayers > 0 ? g->nlayers : 1), sizeof *flows);
    if (!flows) return 0;
    for (int i = 0; i < g->nlayers; i++) {
        const layer *ly = &g->layers[i];
        bool trains = !only_trained || (!ly->frozen && ly->nparams > 0);
        bool need_dx = !only_trained;
        for (int j = 0; j < ly->ninputs; j++)
            if (ly->inputs[j] >= 0 && flows[ly->inputs[j]]) need_dx = true;
        flows[i] = trains || need_dx;
        /* the GEMMs op_conv.c and op_dense.c issue for the layer at this batch */
        if (ly->type == GRAFT_LAYER_CONV2D) {
            conv2d_desc d = {.c = ly->in.d[0], .h = ly->in.d[1], .w = ly->in.d[2],
                             .o = ly->out.d[0], .kh = ly->kernel[0], .kw = ly->kernel[1],
                             .sh = ly->stride[0], .sw = ly->stride[1], .ph = ly->pad[0],
                             .pw = ly->pad[1], .groups = ly->groups > 0 ? ly->groups : 1,
                             .oh = ly->out.d[1], .ow = ly->out.d[2]};
            gemm_shape prod[4];
            int np = ctx && !conv2d_uses_gemm(ctx, &d)
                         ? 0
                         : conv2d_gemm_products(&d, (int)batch, need_dx, trains, prod, 4);
            for (int j = 0; j < np; j++)
                add_ld(out, &n, cap, prod[j].ta, prod[j].tb, prod[j].m, prod[j].n, prod[j].k,
                       prod[j].lda, prod[j].ldb, prod[j].ldc);
        } else if (ly->type == GRAFT_LAYER_DENSE || ly->type == GRAFT_LAYER_PATCH_EMBED) {
            /* on tokens every token is a row (patch_embed: a patch of C * P * P values) */
            size_t in = ly->type == GRAFT_LAYER_DENSE
                            ? (size_t)shape_features(ly->in)
                            : (size_t)ly->in.d[0] * (size_t)ly->patch * (size_t)ly->patch;
            size_t units = (size_t)ly->units, rows = batch * (size_t)shape_tokens(ly->out);
            add(out, &n, cap, false, true, rows, units, in);            /* y = x W^T */
            if (need_dx) add(out, &n, cap, false, false, rows, in, units); /* dx = dy W */
            if (trains) add(out, &n, cap, true, false, units, in, rows);   /* dW = dy^T x */
        } else if (ly->type == GRAFT_LAYER_ATTENTION) { /* as op_attention.c issues them */
            size_t t = (size_t)ly->in.d[0], d = (size_t)ly->in.d[1], dh = d / (size_t)ly->heads;
            size_t rows = batch * t;
            add(out, &n, cap, false, true, rows, d, d);  /* q, k, v and the output projection */
            add(out, &n, cap, false, true, t, t, dh);    /* S = Q K^T */
            add(out, &n, cap, false, false, t, dh, t);   /* O = P V, dQ = dS K */
            if (trains || need_dx) {
                add(out, &n, cap, false, false, rows, d, d); /* dO, dx */
                add(out, &n, cap, true, false, t, dh, t);    /* dV = P^T dO, dK = dS^T Q */
            }
            if (trains) add(out, &n, cap, true, false, d, d, rows); /* dW */
        }
    }
    free(flows);
    return n;
}

int compile_recipe_gemm_shapes(graft_context *ctx, const graft_recipe *r, bool only_trained,
                               gemm_shape *out, int cap)
{
    size_t b = (size_t)(r->train.batch_size > 0 ? r->train.batch_size : 64);
    int n = compile_gemm_shapes(ctx, &r->graph, b, only_trained, out, cap);
    const adapt_spec *a = &r->adapt;
    if (!a->present || !(a->methods & ADAPT_ALIGNING) || a->layer < 0 || a->layer >= r->graph.nlayers)
        return n;
    /* an aligning step runs the source and the target batch together (pipeline.c) */
    gemm_shape more[COMPILE_MAX_GEMM_SHAPES];
    int m = compile_gemm_shapes(ctx, &r->graph, 2 * b, only_trained, more,
                                COMPILE_MAX_GEMM_SHAPES);
    for (int i = 0; i < m; i++) add(out, &n, cap, more[i].ta, more[i].tb, more[i].m, more[i].n, more[i].k);
    if (a->methods & ADAPT_DANN) {
        m = compile_gemm_shapes(ctx, &a->disc_graph, 2 * b, false, more,
                                COMPILE_MAX_GEMM_SHAPES);
        for (int i = 0; i < m; i++)
            add(out, &n, cap, more[i].ta, more[i].tb, more[i].m, more[i].n, more[i].k);
    }
    /* op_adapt.c: CORAL's covariances (D x D over B rows) and their gradients; MMD's Gram matrix
     * over the 2B rows and its gradient */
    size_t d = (size_t)shape_size(r->graph.layers[a->layer].out);
    if (a->methods & ADAPT_CORAL) {
        add(out, &n, cap, true, false, d, d, b);
        add(out, &n, cap, false, false, b, d, d);
    }
    if (a->methods & ADAPT_MMD) {
        add(out, &n, cap, false, true, 2 * b, 2 * b, d);
        add(out, &n, cap, false, false, 2 * b, d, 2 * b);
    }
    return n;
}

/* The distinct conv2d shapes of g without a tuned path on this device that the search has a
 * rival to the default for (quick: see conv2d_tune), into out when given. */
static int conv_missing(graft_context *ctx, const graph *g, bool quick, conv2d_desc *out,
                        int cap)
{
    const char *forced = getenv("GRAFT_CONV");
    if (forced && *forced) return 0; /* the user chose */
    int n = 0;
    conv2d_desc seen[64];
    int nseen = 0;
    for (int i = 0; i < g->nlayers; i++) {
        if (g->layers[i].type != GRAFT_LAYER_CONV2D) continue;
        conv2d_desc d;
        plan_conv_desc(&g->layers[i], &d);
        bool dup = false;
        for (int j = 0; j < nseen && !dup; j++) /* field by field: the struct has padding */
            dup = seen[j].c == d.c && seen[j].h == d.h && seen[j].w == d.w && seen[j].o == d.o &&
                  seen[j].kh == d.kh && seen[j].kw == d.kw && seen[j].sh == d.sh &&
                  seen[j].sw == d.sw && seen[j].ph == d.ph && seen[j].pw == d.pw &&
                  seen[j].groups == d.groups && seen[j].bias == d.bias;
        if (dup || nseen == 64) continue;
        seen[nseen++] = d;
        if (conv2d_path_tuned(ctx, &d) || !conv2d_tune_has_rivals(ctx, &d, quick)) continue;
        if (out && n < cap) out[n] = d;
        n++;
    }
    return n;
}

/* Each conv2d shape's path (conv2d_tune) within what is left of the budget since t0. */
static graft_status tune_convs(graft_context *ctx, const graft_recipe *r, tune_mode mode,
                               double budget, double t0, tune_note_fn note, void *user,
                               graft_error *e)
{
    (void)e; /* a failed search is not a failed run */
    conv2d_desc todo[64];
    int n = conv_missing(ctx, &r->graph, mode != TUNE_FULL, todo, 64);
    if (n > 64) n = 64;
    if (n == 0) return GRAFT_OK;
    int batch = r->train.batch_size > 0 ? r->train.batch_size : 64;
    double stop = mode == TUNE_FULL ? 0 : t0 + budget;
    int stored = 0, changed = 0;
    char line[256], paths[160] = "";
    for (int i = 0; i < n; i++) {
        conv_tune_result cr;
        graft_error te = {0};
        if (stop > 0 && now_seconds() > stop) break;
        if (conv2d_tune(ctx, &todo[i], batch, mode != TUNE_FULL, stop, &cr, &te)) {
            if (note) {
                snprintf(line, sizeof line, "convolution tuning stopped (%.160s)", te.message);
                note(user, line);
            }
            return GRAFT_OK;
        }
        if (!cr.stored) continue;
        stored++;
        if (cr.best != cr.deflt) changed++;
        size_t l = strlen(paths);
        snprintf(paths + l, sizeof paths - l, "%s%s", l ? ", " : "", conv2d_path_name(cr.best));
    }
    if (note) {
        if (stored < n)
            snprintf(line, sizeof line,
                     "tuned the path of %d of %d convolution shapes (%s); the rest keep the default "
                     "until a later run", stored, n, stored ? paths : "none");
        else
            snprintf(line, sizeof line, "tuned the path of %d convolution shape%s: %s (%d changed "
                     "from the default)", n, n == 1 ? "" : "s", paths, changed);
        note(user, line);
    }
    return GRAFT_OK;
}

static double gemm_flops(const gemm_shape *s) { return 2.0 * (double)s->m * s->n * s->k; }

/* The budgeted search leaves out the GEMMs that cannot repay their tuning. On a fresh machine
 * each candidate costs ~3.5 s of PoCL compiles (13 a shape in the quick list): fmnist-pretrain's
 * first run spent 45 s tuning fc1's three products, 1.3 ms of a 68 ms step, and with the 5 %
 * rule alone the demo's feature-extraction run spent 45 s on a head that trains in 0.4 s. So,
 * in auto mode on CPU devices:
 *   - a shape under 5 % of the FLOPs of every product the step would issue as im2col + GEMM
 *     (the convolutions' included, whatever path they run; repeats counted once) is left out;
 *   - if what is left is under TUNE_MIN_RUN_S seconds of work over the run's planned steps at
 *     100 GFLOP/s (a CPU's order of magnitude; a GPU's would make it shorter still), nothing is
 *     tuned: a 10-30 % gain on it would not pay for the compiles.
 * GRAFT_TUNE_MIN_RUN=SECONDS changes the second threshold (0: tune whatever the run's length;
 * tests/gemm/test_cli.sh). A ViT or MLP pretraining for many epochs keeps its GEMMs. */
#define TUNE_MIN_SHARE 0.05
#define TUNE_MIN_RUN_S 30.0
#define TUNE_RATE_FLOPS 100e9
static int drop_small_shapes(const graft_recipe *r, long steps, gemm_shape *shapes, int n,
                             double *run_seconds, bool *short_run)
{
    gemm_shape all[COMPILE_MAX_GEMM_SHAPES];
    int na = compile_recipe_gemm_shapes(NULL, r, r->train.nunfreeze == 0, all,
                                        COMPILE_MAX_GEMM_SHAPES);
    double total = 0, kept = 0;
    for (int i = 0; i < na; i++) total += gemm_flops(&all[i]);
    int w = 0;
    for (int i = 0; i < n; i++)
        if (gemm_flops(&shapes[i]) >= TUNE_MIN_SHARE * total) {
            kept += gemm_flops(&shapes[i]);
            shapes[w++] = shapes[i];
        }
    *run_seconds = steps > 0 ? kept * (double)steps / TUNE_RATE_FLOPS : -1;
    const char *v = getenv("GRAFT_TUNE_MIN_RUN");
    double min_run = v && *v ? strtod(v, NULL) : TUNE_MIN_RUN_S;
    *short_run = *run_seconds >= 0 && *run_seconds < min_run;
    return w;
}

graft_status compile_autotune(graft_context *ctx, const graft_recipe *r, long steps,
                              tune_note_fn note,
                              void *user, tune_summary *sum, graft_error *e)
{
    memset(sum, 0, sizeof *sum);
    tune_mode mode;
    double budget;
    graft_status st = tune_mode_resolve((int)r->train.tune, &mode, &budget, e);
    if (st || mode == TUNE_OFF) return st;
    gemm_shape shapes[COMPILE_MAX_GEMM_SHAPES], missing[COMPILE_MAX_GEMM_SHAPES];
    /* an unfreeze schedule trains more layers later: tune every product then; convolutions
     * whose path issues no GEMM on this device (the rows path on CPUs) have none to tune */
    int n = compile_recipe_gemm_shapes(ctx, r, r->train.nunfreeze == 0, shapes,
                                       COMPILE_MAX_GEMM_SHAPES);
    double run_s = -1;
    bool short_run = false;
    /* only where compiles are what they cost on PoCL: on a GPU a candidate builds in tens of ms,
     * and a product of few FLOPs can still take a large part of the step (fmnist-cnn's fc1
     * forward, 64x128 over K = 3136: under 1 % of the FLOPs, 11 % of the step on an H200) */
    if (mode == TUNE_AUTO && ctx->info.type == GRAFT_DEVICE_CPU)
        n = drop_small_shapes(r, steps, shapes, n, &run_s, &short_run);
    int m = tune_missing(ctx, shapes, n, missing);
    double t0 = now_seconds();
    int convs = conv_missing(ctx, &r->graph, mode != TUNE_FULL, NULL, 0);
    char line[256];
    if (short_run && m > 0) {
        if (note) {
            snprintf(line, sizeof line,
                     "GEMM tuning skipped: the run's GEMMs are ~%.1f s of work, too little to repay "
                     "the kernel compiles (train.tune: full or `graft tune` tunes them)",
                     run_s);
            note(user, line);
        }
        m = 0;
    }
    if (m == 0) return tune_convs(ctx, r, mode, budget, t0, note, user, e);
    double gemm_budget = convs ? 0.75 * budget : budget;
    if (note) {
        if (mode == TUNE_FULL)
            snprintf(line, sizeof line,
                     "tuning %d GEMM shape%s for this device (train.tune: full, no time limit)...",
                     m, m == 1 ? "" : "s");
        else
            snprintf(line, sizeof line,
                     "tuning %d GEMM shape%s for this device (budget %.0f s; results stay in the "
                     "cache)...",
                     m, m == 1 ? "" : "s", budget);
        note(user, line);
    }
    /* a failure to tune is not a failure to train: the shapes keep the defaults */
    graft_error te = {0};
    if (tune_shapes(ctx, missing, m, mode, gemm_budget, NULL, NULL, sum, &te)) {
        if (note) {
            snprintf(line, sizeof line, "GEMM tuning stopped (%.160s): default kernels", te.message);
            note(user, line);
        }
        return GRAFT_OK;
    }
    if (note) {
        if (sum->skipped)
            snprintf(line, sizeof line,
                     "tuned %d of %d GEMM shapes in %.1f s (%d changed from the default); the "
                     "other %d keep the default until a later run",
                     sum->tuned, m, sum->seconds, sum->changed, sum->skipped);
        else
            snprintf(line, sizeof line, "tuned %d GEMM shapes in %.1f s (%d changed from the default)",
                     sum->tuned, sum->seconds, sum->changed);
        note(user, line);
    }
    return tune_convs(ctx, r, mode, budget, t0, note, user, e);
}

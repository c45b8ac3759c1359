/* test_cost.c TINY.yaml — the cost counters and the cost model. On the device: every launch, fill,
 * GEMM call, blocking transfer and wait is counted once, with the bytes and the GEMM operand
 * traffic from its formula, rows only while asked, launches = profiled events + fills. Without a
 * device: rows of a made-up step on the bench's tiny recipe go to the right op families with the
 * documented traffic (docs/bench-schema.md), and the estimate follows its formula. */
#include "bench.h"
#include "harness.h"

static const cost_row *find_row(const graft_context *ctx, const char *label, const char *kernel)
{
    for (int i = 0; i < ctx->cost.nrows; i++)
        if (!strcmp(ctx->cost.rows[i].label, label) && !strcmp(ctx->cost.rows[i].kernel, kernel))
            return &ctx->cost.rows[i];
    return NULL;
}

static void counters_on_device(void)
{
    graft_context_options o = {.profile = 1};
    graft_context *ctx = NULL;
    graft_error e = {0};
    if (graft_context_create(&o, &ctx, &e)) {
        printf("no device (%s): counters not checked here\n", e.message);
        return;
    }
    enum { M = 8, N = 16, K = 4 };
    float host[256];
    for (int i = 0; i < 256; i++) host[i] = (float)i;
    cl_mem a = NULL, b = NULL, c = NULL;
    CHECK_OK(buffer_create(ctx, sizeof host, &a, err));
    CHECK_OK(buffer_create(ctx, sizeof host, &b, err));
    CHECK_OK(buffer_create(ctx, sizeof host, &c, err));
    cost_reset(ctx);
    cost_rows(ctx, 1);
    ctx->record = 1;
    prof_set_label(ctx, "x.fwd");
    CHECK_OK(buffer_write(ctx, a, 0, host, 1024, err));
    CHECK_OK(buffer_write(ctx, b, 0, host, 1024, err));
    CHECK_OK(buffer_fill_f32(ctx, c, 0.f, 256, err));
    prof_set_label(ctx, "y.bwd");
    CHECK_OK(gemm(ctx, false, false, M, N, K, 1.f, a, 0, K, b, 0, N, 0.f, c, 0, N, err));
    CHECK_OK(gemm(ctx, false, false, M, N, K, 1.f, a, 0, K, b, 0, N, 1.f, c, 0, N, err));
    CHECK_OK(queue_finish(ctx, err));
    cl_event none = NULL;
    CHECK_OK(events_wait(ctx, 0, &none, err)); /* nothing to wait for: not a sync */
    float back[128];
    CHECK_OK(buffer_read(ctx, c, 0, back, 512, err));
    ctx->record = 0;
    const cost_counters *k = &ctx->cost;
    CHECKF(k->h2d_bytes == 2048 && k->d2h_bytes == 512, "h2d %g d2h %g", k->h2d_bytes, k->d2h_bytes);
    CHECKF(k->syncs == 4, "%ld syncs, expected 2 writes + finish + read", k->syncs);
    CHECK(k->gemm_calls == 2);
    double t1 = 4.0 * (M * K + K * N + M * N), t2 = t1 + 4.0 * M * N; /* beta = 1 reads C */
    CHECKF(k->gemm_traffic_bytes == t1 + t2, "GEMM traffic %g, expected %g", k->gemm_traffic_bytes,
           t1 + t2);
    CHECK(k->gemm_flops == 2 * 2.0 * M * N * K);
    /* each GEMM is at least one launch (its kernels, or one CLBlast call), plus the fill */
    CHECKF(k->launches >= 3 && k->launches == ctx->nprof + 1, "%ld launches, %d profiled events",
           k->launches, ctx->nprof);
    long rl = 0, rs = 0;
    for (int i = 0; i < k->nrows; i++) rl += k->rows[i].launches, rs += k->rows[i].syncs;
    CHECK(rl == k->launches && rs == k->syncs);
    const cost_row *w = find_row(ctx, "x.fwd", "write"), *f = find_row(ctx, "x.fwd", "fill");
    const cost_row *g = find_row(ctx, "y.bwd", "gemm"), *r = find_row(ctx, "y.bwd", "read");
    CHECK(w && w->h2d_bytes == 2048 && w->syncs == 2);
    CHECK(f && f->launches == 1 && f->traffic_bytes == 1024);
    CHECK(g && g->gemm_calls == 2 && g->traffic_bytes == t1 + t2);
    CHECK(r && r->d2h_bytes == 512 && r->syncs == 1);
    CHECK(find_row(ctx, "y.bwd", "finish") != NULL);
    /* rows off: the totals still count, no row is filed */
    cost_rows(ctx, 0);
    int nrows = k->nrows;
    CHECK_OK(buffer_write(ctx, a, 0, host, 4, err));
    CHECK(k->nrows == nrows && k->h2d_bytes == 2052);
    cost_reset(ctx);
    CHECK(k->launches == 0 && k->syncs == 0 && k->h2d_bytes == 0 && k->nrows == 0);
    prof_clear(ctx);
    clReleaseMemObject(a);
    clReleaseMemObject(b);
    clReleaseMemObject(c);
    graft_context_free(ctx);
}

static cost_row row(const char *label, const char *kernel, long launches)
{
    cost_row r = {0};
    snprintf(r.label, sizeof r.label, "%s", label);
    snprintf(r.kernel, sizeof r.kernel, "%s", kernel);
    r.launches = launches;
    return r;
}

/* The recipe and its training plan (Adam) at batch n; false (a failed check) when either fails. */
static bool load_plan(const char *recipe, int n, graft_recipe **rc, graph_plan *plan)
{
    graft_diags d = {0};
    *rc = NULL;
    if (recipe_load(recipe, NULL, 0, rc, &d)) {
        CHECKF(0, "cannot load %s", recipe);
        graft_diags_print(&d, stderr);
        graft_diags_free(&d);
        return false;
    }
    graft_error e = {0};
    if (plan_analyse(&(*rc)->graph, true, false, false, OPT_ADAM, false, 0, n, plan, &e)) {
        CHECKF(0, "plan: %s", e.message);
        recipe_free(*rc);
        return false;
    }
    return true;
}

static void model_of_a_step(const char *recipe)
{
    graft_recipe *rc;
    graph_plan plan = {0};
    if (!load_plan(recipe, 16, &rc, &plan)) return;
    const graph *g = &rc->graph;
    const double n = 16;
    cost_row rows[10];
    int nr = 0;
    rows[nr++] = row("conv1.fwd", "conv2d_im2col", 1);
    rows[nr] = row("conv1.fwd", "gemm", 0);
    rows[nr].gemm_calls = 1, rows[nr].traffic_bytes = 1000, rows[nr++].flops = 50;
    rows[nr++] = row("conv1.fwd", "gemm_outer", 16);
    rows[nr++] = row("conv1.fwd", "bias_fwd", 1);
    rows[nr++] = row("relu1.fwd", "act_fwd", 1);
    rows[nr++] = row("fc.update", "optim_adam", 2);
    rows[nr] = row("fc.update", "write", 0);
    rows[nr].syncs = 1, rows[nr++].h2d_bytes = 100;
    rows[nr++] = row("loss", "xent_fwd_bwd", 1);
    rows[nr++] = row("nolayer", "k", 1);
    bench_cost fam[FAM_COUNT + 1];
    bench_step_cost(rows, nr, g, &plan, OPT_ADAM, false, n, fam);
    /* conv1: 1x28x28 -> 8x28x28, 3x3: the column matrix is 9 x 784 a sample */
    CHECKF(fam[FAM_LAYOUT].traffic_bytes == 4 * n * (784 + 9 * 784) && fam[FAM_LAYOUT].launches == 1,
           "layout %g", fam[FAM_LAYOUT].traffic_bytes);
    CHECK(fam[FAM_GEMM].launches == 16 && fam[FAM_GEMM].gemm_calls == 1 &&
          fam[FAM_GEMM].traffic_bytes == 1000 && fam[FAM_GEMM].flops == 50);
    /* conv1 called GEMM: its own kernel is the epilogue, y read and written once */
    CHECKF(fam[FAM_CONV].traffic_bytes == 8 * n * 6272 && fam[FAM_CONV].launches == 1, "conv %g",
           fam[FAM_CONV].traffic_bytes);
    CHECK(fam[FAM_ACTIVATION].traffic_bytes == 4 * n * (6272 + 6272));
    /* fc: 784 x 10 + 10 parameters; Adam reads w, g, m, v and writes w, m, v */
    CHECKF(fam[FAM_OPTIMIZER].traffic_bytes == 4 * 7850 * 7 && fam[FAM_OPTIMIZER].launches == 2,
           "optimizer %g", fam[FAM_OPTIMIZER].traffic_bytes);
    CHECK(fam[FAM_TRANSFER].syncs == 1 && fam[FAM_TRANSFER].h2d_bytes == 100 &&
          fam[FAM_TRANSFER].launches == 0);
    CHECK(fam[FAM_LOSS].traffic_bytes == 4 * n * (2 * 10 + 3) && fam[FAM_LOSS].launches == 1);
    CHECK(fam[FAM_OTHER].launches == 1);
    CHECK(fam[FAM_BATCHNORM].launches == 0 && fam[FAM_BATCHNORM].traffic_bytes == 0);
    double sum = 0, launches = 0;
    for (int f = 0; f < FAM_COUNT; f++) sum += fam[f].traffic_bytes, launches += fam[f].launches;
    CHECK(fam[FAM_COUNT].traffic_bytes == sum && fam[FAM_COUNT].launches == launches &&
          launches == 23);
    /* the estimate: launches * L + max(traffic / B, flops / P) */
    bench_estimate est = bench_estimate_step(&fam[FAM_COUNT], 7, 3000, 0);
    CHECK(fabs(est.launch_s - 23 * 7e-6) < 1e-12 && est.compute_s == 0);
    CHECK(fabs(est.step_s - (23 * 7e-6 + sum / 3e12)) < 1e-12);
    bench_estimate slow = bench_estimate_step(&fam[FAM_COUNT], 7, 3000, 1e-6);
    CHECK(slow.compute_s > slow.memory_s && fabs(slow.step_s - slow.launch_s - slow.compute_s) < 1e-9);
    /* labels */
    int ph;
    CHECK(bench_label_layer(g, "loss", &ph) == g->nlayers && ph == BENCH_FWD);
    CHECK(bench_label_layer(g, "conv2.bwd", &ph) == graph_find_layer(g, "conv2") && ph == BENCH_BWD);
    CHECK(bench_label_layer(g, "conv2.sideways", &ph) < 0 && bench_label_layer(g, "conv2", &ph) < 0);
    CHECK(bench_family_of(g, "conv1.fwd", "clblast_sgemm") == FAM_GEMM);
    CHECK(bench_family_of(g, "bn1.bwd", "bn_bwd_train") == FAM_BATCHNORM);
    CHECK(bench_family_of(g, "pool2.fwd", "read") == FAM_TRANSFER);
    /* one update launch over every trained tensor, labelled with its first layer (the pipeline's
     * arenas): the traffic of all of them, conv1 80 + bn1 16 + conv2 1168 + fc 7850 parameters */
    cost_row upd[1] = {row("conv1.update", "optim_adam", 1)};
    bench_step_cost(upd, 1, g, &plan, OPT_ADAM, false, n, fam);
    CHECKF(fam[FAM_OPTIMIZER].traffic_bytes == 4 * 9114 * 7 && fam[FAM_OPTIMIZER].launches == 1,
           "one run over all: optimizer %g", fam[FAM_OPTIMIZER].traffic_bytes);
    plan_free(&plan);
    recipe_free(rc);
}

/* The transformer layers in the model: attention's projections and per-head products, layer
 * norm's passes, dense on tokens (every token a row), and their families. */
static void transformer_costs(const char *model)
{
    graft_recipe *rc;
    graph_plan plan = {0};
    if (!load_plan(model, 8, &rc, &plan)) return;
    const graph *g = &rc->graph;
    const double n = 8, t = 17, dm = 64;
    const int ia = graph_find_layer(g, "encoder.layers.encoder_layer_0.self_attention");
    const int il = graph_find_layer(g, "encoder.layers.encoder_layer_0.ln_1");
    const int im = graph_find_layer(g, "encoder.layers.encoder_layer_0.mlp.0");
    CHECK(ia >= 0 && il >= 0 && im >= 0);
    if (ia >= 0 && il >= 0 && im >= 0) {
        layer_cost a = bench_layer_cost(g, &g->layers[ia], &plan.layers[ia], n);
        const double mac = n * (4 * t * dm * dm + 2 * t * t * dm);
        CHECKF(a.fwd_flops == 2 * mac && a.bwd_flops == 4 * mac, "attention %g %g", a.fwd_flops,
               a.bwd_flops);
        layer_cost l = bench_layer_cost(g, &g->layers[il], &plan.layers[il], n);
        CHECKF(l.fwd_flops == n * t * dm * 8, "layernorm %g", l.fwd_flops);
        layer_cost m = bench_layer_cost(g, &g->layers[im], &plan.layers[im], n);
        CHECKF(m.fwd_flops == 2 * n * t * dm * 128 + n * t * 128, "dense on tokens %g", m.fwd_flops);
    }
    CHECK(bench_family_of(g, "encoder.layers.encoder_layer_0.self_attention.fwd", "attn_softmax_fwd") ==
          FAM_ATTENTION);
    CHECK(bench_family_of(g, "encoder.layers.encoder_layer_0.self_attention.bwd", "gemm") == FAM_GEMM);
    CHECK(bench_family_of(g, "encoder.layers.encoder_layer_1.ln_2.bwd", "layernorm_bwd_data") ==
          FAM_LAYERNORM);
    CHECK(bench_family_of(g, "class_token.fwd", "token_broadcast") == FAM_LAYOUT);
    plan_free(&plan);
    recipe_free(rc);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cost TINY.yaml\n");
        return 2;
    }
    counters_on_device();
    model_of_a_step(argv[1]);
    if (argc > 2) transformer_costs(argv[2]);
    return test_finish("test_cost");
}

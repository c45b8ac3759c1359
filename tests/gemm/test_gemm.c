/* test_gemm.c — every GEMM kernel the tuner may pick (Graft's gemm_outer / gemm_inner with each
 * tile size, split K, the GPU-shaped gemm_tiled variants, CLBlast parameter sets) against a double
 * reference on awkward shapes, with offsets, padded leading dimensions, alpha and beta, and C
 * poisoned with NaN (inside too when beta = 0, which must never read it); then the tuner:
 * results stored in the cache, read back by a new context, ignored when the entry is corrupt,
 * budgets that stop cleanly, GRAFT_TUNE. GRAFT_TEST_SMALL=1 (rusticl, Oclgrind) shortens the
 * long-K shapes and skips the timing-heavy parts. */
#include "../ops/opcheck.h"
#include "tune.h"

#include <unistd.h>

typedef struct tcase {
    bool ta, tb;
    size_t m, n, k;
    float alpha, beta;
    bool clblast; /* also run the CLBlast sets (each set compiles for seconds on PoCL) */
} tcase;

/* max |got - ref| / (|alpha| * sum_k |a||b| + |beta||c| + 1e-30): rounding of a K-term sum stays
 * well under K * 2^-24 of that bound, whatever the order of the additions */
static double run_case(graft_context *ctx, const tcase *t, const gemm_choice *ch, char *why,
                       size_t whyn)
{
    const size_t pad = 3, aoff = 5, boff = 7, coff = 11;
    size_t arows = t->ta ? t->k : t->m, acols = t->ta ? t->m : t->k;
    size_t brows = t->tb ? t->n : t->k, bcols = t->tb ? t->k : t->n;
    size_t lda = acols + pad, ldb = bcols + pad, ldc = t->n + pad;
    size_t na = aoff + arows * lda, nb = boff + brows * ldb, nc = coff + t->m * ldc;
    float *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(nc * 4), *got = malloc(nc * 4);
    if (!a || !b || !c || !got) {
        snprintf(why, whyn, "out of memory");
        return 1e30;
    }
    oc_fill(a, (long)na, -1, 1);
    oc_fill(b, (long)nb, -1, 1);
    oc_fill(c, (long)nc, -1, 1);
    /* NaN everywhere outside C's window (padding, offset), and inside it when beta = 0 */
    for (size_t i = 0; i < nc; i++) {
        size_t r = i >= coff ? (i - coff) / ldc : 0, col = i >= coff ? (i - coff) % ldc : 0;
        bool inside = i >= coff && r < t->m && col < t->n;
        if (!inside || t->beta == 0.0f) c[i] = NAN;
    }
    cl_mem da, db, dc;
    graft_error e = {0};
    double worst = 1e30;
    if (buffer_create(ctx, na * 4, &da, &e) || buffer_create(ctx, nb * 4, &db, &e) ||
        buffer_create(ctx, nc * 4, &dc, &e)) {
        snprintf(why, whyn, "%.200s", e.message);
        goto out;
    }
    buffer_write(ctx, da, 0, a, na * 4, &e);
    buffer_write(ctx, db, 0, b, nb * 4, &e);
    buffer_write(ctx, dc, 0, c, nc * 4, &e);
    if (gemm_run(ctx, ch, t->ta, t->tb, t->m, t->n, t->k, t->alpha, da, aoff, lda, db, boff, ldb,
                 t->beta, dc, coff, ldc, &e) ||
        buffer_read(ctx, dc, 0, got, nc * 4, &e)) {
        snprintf(why, whyn, "%.200s", e.message);
        goto release;
    }
    worst = 0;
    for (size_t i = 0; i < t->m; i++)
        for (size_t j = 0; j < t->n; j++) {
            double s = 0, mag = 0;
            for (size_t q = 0; q < t->k; q++) {
                double x = t->ta ? a[aoff + q * lda + i] : a[aoff + i * lda + q];
                double y = t->tb ? b[boff + j * ldb + q] : b[boff + q * ldb + j];
                s += x * y;
                mag += fabs(x * y);
            }
            double cold = t->beta == 0.0f ? 0.0 : c[coff + i * ldc + j];
            double ref = t->alpha * s + t->beta * cold;
            double bound = fabs(t->alpha) * mag + fabs(t->beta * cold) + 1e-30;
            double err = fabs(got[coff + i * ldc + j] - ref) / bound;
            if (!(err <= worst)) worst = isnan(err) ? 1e30 : err;
        }
    /* the padding and everything outside C's window must be untouched */
    for (size_t i = 0; i < nc; i++) {
        size_t r = i >= coff ? (i - coff) / ldc : 0, col = i >= coff ? (i - coff) % ldc : 0;
        bool inside = i >= coff && r < t->m && col < t->n;
        if (!inside && memcmp(&got[i], &c[i], sizeof got[i]) != 0) {
            snprintf(why, whyn, "wrote outside C at element %zu", i);
            worst = 1e30;
            break;
        }
    }
release:
    clReleaseMemObject(da);
    clReleaseMemObject(db);
    clReleaseMemObject(dc);
out:
    free(a);
    free(b);
    free(c);
    free(got);
    return worst;
}

static bool small_run(void)
{
    const char *v = getenv("GRAFT_TEST_SMALL");
    return v && atoi(v);
}

static void check_kernel(graft_context *ctx, const tcase *t, const gemm_choice *ch)
{
    char desc[320], why[2048] = "";
    gemm_choice_describe(ch, desc, sizeof desc);
    double err = run_case(ctx, t, ch, why, sizeof why);
    /* float sums of K terms: 2^-24 relative per addition, far from 1e-5 x sqrt(K) */
    double tol = 1e-5 * (t->k > 1 ? sqrt((double)t->k) : 1.0) + 1e-6;
    CHECKF(err <= tol, "%s on %zux%zux%zu ta=%d tb=%d alpha=%g beta=%g: error %.3g %s", desc,
           t->m, t->n, t->k, t->ta, t->tb, t->alpha, t->beta, err, why);
}

static void kernels_vs_reference(graft_context *ctx)
{
    bool small = small_run();
    /* split K needs K >= 64 per range (tune.c): 2100 still splits 32 ways, 600 8 ways */
    size_t longk = small ? 600 : 20000, midk = small ? 2100 : 4099, k784 = small ? 300 : 784;
    const tcase cases[] = {
        {false, false, 1, 1, 1, 1.0f, 0.0f, false},
        {false, false, 7, 13, 5, 1.0f, 0.0f, true},     /* every edge of every tile */
        {false, false, 33, 65, 17, 0.5f, 0.25f, false}, /* alpha, beta */
        {true, false, 9, 100, 32, 1.0f, 0.0f, true},    /* conv backward data, small */
        {true, false, 37, 70, 19, -1.0f, 1.0f, false},
        {false, true, 32, 9, k784, 1.0f, 1.0f, false}, /* conv weight gradient, accumulating */
        {false, true, 13, 11, midk, 1.0f, 0.0f, true}, /* long K: split K with a ragged tail */
        {false, true, 5, 3, longk, 0.5f, 0.5f, false},
        {true, true, 6, 10, 14, 1.0f, 0.0f, false}, /* only CLBlast and gemm_tiled run this */
        {false, false, 64, 200, 0, 1.0f, 0.5f, false}, /* K = 0: C = beta C */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tcase *t = &cases[i];
        gemm_shape s = {.ta = t->ta, .tb = t->tb, .m = t->m, .n = t->n, .k = t->k};
        gemm_choice cand[64];
        int n = tune_candidates(ctx, &s, cand, 64);
        CHECKF(n >= 1, "no candidates for %zux%zux%zu", t->m, t->n, t->k);
        int ran = 0;
        for (int j = 0; j < n; j++) {
            /* CLBlast's own kernels (not Graft's) take minutes each under Oclgrind */
            if (cand[j].backend == GEMM_BACKEND_CLBLAST && (!t->clblast || small) && j > 0)
                continue;
            if (t->k == 0 && cand[j].backend == GEMM_BACKEND_CLBLAST) continue;
            /* simulators: the long-K cases only for Graft's CPU kernels, whose split-K paths
             * they exist for; gemm_tiled is covered at its own edges (tiled_vs_reference) and a
             * K of 2100 through it took Oclgrind over 20 minutes */
            if (small && t->k > 300 && (cand[j].backend == GEMM_BACKEND_TILED ||
                                        cand[j].backend == GEMM_BACKEND_CLBLAST))
                continue;
            check_kernel(ctx, t, &cand[j]);
            ran++;
        }
        printf("%zux%zux%zu ta=%d tb=%d: %d kernels checked\n", t->m, t->n, t->k, t->ta, t->tb,
               ran);
        fflush(stdout);
    }
}

/* Every candidate of Graft's kernels on tc's shapes (gemm_tiled's too unless no_tiled) */
static void graft_kernels_on(graft_context *ctx, const tcase *tc, size_t ntc, bool no_tiled)
{
    for (size_t i = 0; i < ntc; i++) {
        const tcase *t = &tc[i];
        gemm_shape s = {.ta = t->ta, .tb = t->tb, .m = t->m, .n = t->n, .k = t->k};
        gemm_choice cand[64];
        int n = tune_candidates(ctx, &s, cand, 64), ran = 0;
        for (int j = 0; j < n; j++)
            if (cand[j].backend != GEMM_BACKEND_CLBLAST &&
                !(no_tiled && cand[j].backend == GEMM_BACKEND_TILED)) {
                check_kernel(ctx, t, &cand[j]);
                ran++;
            }
        printf("%zux%zux%zu ta=%d tb=%d, loop limit %ld: %d kernels checked\n", t->m, t->n, t->k,
               t->ta, t->tb, ctx->loop_limit, ran);
        fflush(stdout);
    }
}

/* A device that ends a work-item's loops after so many iterations in all (Mesa's llvmpipe:
 * 65535), where gemm.c runs K in pieces, shortens gemm_outer's walks and gives each range of a
 * split K one column tile: first under a limit set small on this device, so that every device and
 * simulator runs those paths (gemm_tiled's pieces, the same host code, not under the simulators:
 * a limit of 700 took Oclgrind over 15 minutes); then, on a device with a limit of its own,
 * shapes past it (each failed there before: a split K that left 80 of 150 columns unwritten,
 * 64-block walks that stopped early, a K of 40000 split or not). */
static void loop_limited(graft_context *ctx)
{
    const long own = ctx->loop_limit;
    const tcase limited[] = {
        {false, true, 13, 11, 1500, 0.5f, 0.25f, false}, /* unsplit K in pieces; split ranges */
        {false, false, 40, 37, 120, 1.0f, 0.5f, false},  /* walks shortened, K in pieces */
        {true, false, 40, 37, 120, 1.0f, 0.0f, false},
    };
    ctx->loop_limit = 6000;
    graft_kernels_on(ctx, limited, sizeof limited / sizeof limited[0], small_run());
    ctx->loop_limit = own;
    if (!own) return;
    const tcase past[] = {
        {false, true, 16, 150, 3200, 1.0f, 0.0f, false}, /* LeNet's conv2 weight gradient */
        {false, false, 512, 64, 1000, 1.0f, 0.0f, false},
        {true, false, 512, 64, 1000, 1.0f, 0.0f, false},
        {false, true, 8, 24, 40000, 1.0f, 0.0f, false},
    };
    graft_kernels_on(ctx, past, sizeof past / sizeof past[0], false);
}

/* Every gemm_tiled variant (the GPU candidates) on every device, at the edges of its own tiles:
 * one less and one more than a tile in M and N, a K step (16) +-1, 1x1x1, every transposition,
 * offsets and padded leading dimensions (run_case), alpha and beta, K = 0, and K split. */
static void tiled_vs_reference(graft_context *ctx)
{
    gemm_choice v[16];
    int nv = tune_tiled_variants(ctx, v, 16);
    CHECKF(nv >= 1 || ctx->info.max_work_group_size < 64,
           "no tiled variant fits a device with %zu work-items and %llu bytes of local memory",
           ctx->info.max_work_group_size, (unsigned long long)ctx->info.local_mem_bytes);
    bool small = small_run();
    for (int i = 0; i < nv; i++) {
        size_t bm = (size_t)v[i].p[1] * v[i].p[2], bn = (size_t)v[i].p[0] * v[i].p[3];
        const tcase base[] = {
            {false, false, 1, 1, 1, 1.0f, 0.0f, false},
            {false, false, bm + 1, bn - 1, 17, 1.0f, 0.0f, false},
            {true, false, bm - 1, bn + 1, 15, 0.5f, 0.25f, false},
            {false, true, bm, 2 * bn + 1, 33, -1.0f, 1.0f, false},
            {true, true, 2 * bm + 1, bn, 16, 1.0f, 0.0f, false},
            {false, false, 3, 5, 0, 1.0f, 0.5f, false},
            {true, false, 7, 3, 0, 2.0f, 0.0f, false},
        };
        int ncase = (int)(sizeof base / sizeof base[0]);
        for (int j = 0; j < ncase; j++) {
            /* Oclgrind simulates every work-item: the two largest cases are left to PoCL */
            if (small && (j == 3 || j == 4) && bm * bn > 32 * 32) continue;
            check_kernel(ctx, &base[j], &v[i]);
        }
        /* split K: one tile (fewer than the device's cores) and a long K, which the kernel splits
         * into ranges (a ragged last one) summed by gemm_tiled_reduce; with beta, transposed */
        const tcase split[] = {
            {false, true, bm - 1, bn, small ? 300 : 1000, 0.5f, 0.25f, false},
            {true, false, bm, bn - 1, small ? 401 : 3136, 1.0f, 0.0f, false},
        };
        for (int j = 0; j < 2; j++) {
            if (small && bm * bn > 32 * 32) continue; /* Oclgrind: the 32x32 tiles split too */
            const tcase *t = &split[j];
            int kc = 0, ns = gemm_tiled_splits(ctx, &v[i], t->m, t->n, t->k, &kc);
            CHECKF(ns > 1 && (size_t)(ns - 1) * kc < t->k && (size_t)ns * kc >= t->k,
                   "%zux%zux%zu on %u cores: %d ranges of %d", t->m, t->n, t->k,
                   ctx->info.compute_units, ns, kc);
            check_kernel(ctx, t, &v[i]);
        }
        char d[320];
        gemm_choice_describe(&v[i], d, sizeof d);
        printf("%s: edge shapes checked\n", d);
        fflush(stdout);
    }
}

static void parse_and_describe(void)
{
    gemm_choice c;
    graft_error e = {0};
    CHECK(gemm_choice_parse("outer:8,2,4,16", &c, &e) == GRAFT_OK);
    CHECK(c.backend == GEMM_BACKEND_OUTER && c.p[0] == 8 && c.p[1] == 2 && c.p[2] == 4 &&
          c.p[3] == 16);
    CHECK(gemm_choice_parse("inner:4,3", &c, &e) == GRAFT_OK);
    CHECK(c.backend == GEMM_BACKEND_INNER && c.p[0] == 4 && c.p[1] == 3 && c.p[2] == 1 &&
          c.p[3] == 8);
    CHECK(gemm_choice_parse("clblast:1", &c, &e) == GRAFT_OK);
    CHECK(c.backend == GEMM_BACKEND_CLBLAST && c.p[0] == 1);
    CHECK(gemm_choice_parse("outer:8,2,4,12", &c, &e) == GRAFT_STATUS_USAGE);
    CHECKF(strstr(e.message, "VW 8 or 16") != NULL, "message: %s", e.message);
    CHECK(gemm_choice_parse("clblast:99", &c, &e) == GRAFT_STATUS_USAGE);
    CHECK(gemm_choice_parse("fast", &c, &e) == GRAFT_STATUS_USAGE);
    CHECKF(strstr(e.message, "unknown GEMM kernel 'fast'") != NULL, "message: %s", e.message);
    CHECK(gemm_choice_parse("tiled:16,8,4,2", &c, &e) == GRAFT_OK);
    CHECK(c.backend == GEMM_BACKEND_TILED && c.p[0] == 16 && c.p[1] == 8 && c.p[2] == 4 &&
          c.p[3] == 2);
    CHECK(gemm_choice_parse("tiled:12,8,4,4", &c, &e) == GRAFT_STATUS_USAGE);
    CHECKF(strstr(e.message, "TX, TY 8 or 16") != NULL, "message: %s", e.message);
    CHECK(gemm_choice_parse("tiled:16,16", &c, &e) == GRAFT_STATUS_USAGE);
    char d[320];
    gemm_choice_describe(&(gemm_choice){GEMM_BACKEND_TILED, {16, 16, 4, 4}}, d, sizeof d);
    CHECKF(strncmp(d, "tiled:16,16,4,4 ", 16) == 0, "describe: %s", d);
    gemm_choice_describe(&(gemm_choice){GEMM_BACKEND_INNER, {4, 4, 32, 16}}, d, sizeof d);
    CHECKF(strncmp(d, "inner:4,4,32,16 ", 16) == 0, "describe: %s", d);
    /* what describe prints, parse reads back */
    CHECK(gemm_choice_parse("inner:4,4,32,16", &c, &e) == GRAFT_OK && c.p[2] == 32);
    gemm_shape nt = {.tb = true, .m = 8, .n = 8, .k = 8}, nn = {.m = 8, .n = 8, .k = 8};
    CHECK(!gemm_choice_fits(&(gemm_choice){GEMM_BACKEND_OUTER, {8, 2, 1, 16}}, &nt));
    CHECK(!gemm_choice_fits(&(gemm_choice){GEMM_BACKEND_INNER, {4, 3, 1, 16}}, &nn));
    CHECK(gemm_choice_fits(&(gemm_choice){GEMM_BACKEND_TILED, {16, 16, 4, 4}}, &nt));

    /* GRAFT_TUNE overrides train.tune */
    tune_mode m;
    double budget;
    unsetenv("GRAFT_TUNE");
    CHECK(tune_mode_resolve(TUNE_FULL, &m, &budget, &e) == GRAFT_OK && m == TUNE_FULL);
    CHECK(tune_mode_resolve(TUNE_AUTO, &m, &budget, &e) == GRAFT_OK && m == TUNE_AUTO &&
          budget == TUNE_AUTO_BUDGET);
    setenv("GRAFT_TUNE", "off", 1);
    CHECK(tune_mode_resolve(TUNE_FULL, &m, &budget, &e) == GRAFT_OK && m == TUNE_OFF);
    setenv("GRAFT_TUNE", "auto:12.5", 1);
    CHECK(tune_mode_resolve(TUNE_OFF, &m, &budget, &e) == GRAFT_OK && m == TUNE_AUTO &&
          budget == 12.5);
    setenv("GRAFT_TUNE", "auto:-1", 1);
    CHECK(tune_mode_resolve(TUNE_AUTO, &m, &budget, &e) == GRAFT_STATUS_USAGE);
    CHECKF(strstr(e.message, "GRAFT_TUNE=auto:-1: expected off, auto") != NULL, "message: %s",
           e.message);
    unsetenv("GRAFT_TUNE");
}

/* counts[0]: candidates timed, [1]: results that differ from the first, [2]: failed to run */
static void count_progress(void *user, const gemm_shape *s, const gemm_choice *ch, double gflops)
{
    (void)s;
    (void)ch;
    int *counts = user;
    counts[gflops >= 0 ? 0 : gflops == -2 ? 1 : 2]++;
}

static void persistence(void)
{
    char dir[] = "/tmp/graft-tune-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    graft_context_options o = {.cache_dir = dir};
    graft_context *ctx = NULL;
    graft_error e = {0};
    if (graft_context_create(&o, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
    gemm_shape s = {.ta = false, .tb = false, .m = 24, .n = 96, .k = 40};
    CHECK(!tune_results_exist(ctx));
    bool tuned = true;
    gemm_choice d = gemm_choose(ctx, &s, &tuned);
    CHECK(!tuned);
    gemm_choice dd = gemm_default_choice(ctx, &s);
    CHECK(memcmp(&d, &dd, sizeof d) == 0);
    tune_result r;
    /* GRAFT_TEST_SMALL (Oclgrind simulates every work-item): the quick list, cut after 2 s */
    tune_options quick = {.quick = true, .stop_at = now_seconds() + 2};
    CHECK_OK(tune_gemm_with(ctx, &s, small_run() ? &quick : NULL, NULL, NULL, &r, err));
    CHECK(r.tried >= 1 && r.best_gflops > 0 && r.stored);
    /* a choice other than the default won its head to head by the 7 % margin */
    CHECK(memcmp(&r.best, &r.deflt, sizeof r.best) == 0 || r.best_gflops >= r.default_gflops);
    CHECK(tune_results_exist(ctx));
    gemm_choice now = gemm_choose(ctx, &s, &tuned);
    CHECK(tuned && memcmp(&now, &r.best, sizeof now) == 0);
    graft_context_free(ctx);

    /* a fresh context (a second process) finds the result in the cache */
    CHECK(graft_context_create(&o, &ctx, &e) == GRAFT_OK);
    CHECK(tune_results_exist(ctx));
    gemm_choice again = gemm_choose(ctx, &s, &tuned);
    CHECK(tuned && memcmp(&again, &r.best, sizeof again) == 0);
    CHECK(ctx->gemm_tuned_hits == 1);
    /* another shape is untuned: the default, and said so */
    gemm_shape other = {.ta = false, .tb = false, .m = 24, .n = 96, .k = 41};
    gemm_choose(ctx, &other, &tuned);
    CHECK(!tuned && ctx->gemm_default_uses == 1);
    /* timed with padded operands, as op_conv.c lays out its column matrix: every candidate that
     * runs agrees with the first (the rows' padding is not part of the comparison's result).
     * GRAFT_TEST_SMALL: a small shape and a budget of its own (the simulator spent ~150 s on the
     * larger one, whose budget had already run out, so only the default was tried) */
    gemm_shape pad = {.tb = true, .m = 24, .n = 40, .k = 96, .lda = 112, .ldb = 112};
    if (small_run()) pad = (gemm_shape){.tb = true, .m = 8, .n = 12, .k = 20, .lda = 36, .ldb = 36};
    int counts[3] = {0};
    quick.stop_at = now_seconds() + 2;
    CHECK_OK(tune_gemm_with(ctx, &pad, small_run() ? &quick : NULL, count_progress, counts, &r,
                            err));
    CHECKF(r.tried >= 1 && r.stored && counts[1] == 0, "tried %d, %d wrong, %d failed", r.tried,
           counts[1], counts[2]);
    graft_context_free(ctx);

    /* corrupt every entry: the cache rejects them and gemm falls back to the defaults */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "for f in $(find %s -type f); do printf garbage > $f; done", dir);
    CHECK(system(cmd) == 0);
    CHECK(graft_context_create(&o, &ctx, &e) == GRAFT_OK);
    CHECK(!tune_results_exist(ctx));
    gemm_choice fallback = gemm_choose(ctx, &s, &tuned);
    CHECK(!tuned && memcmp(&fallback, &dd, sizeof fallback) == 0);
    graft_context_free(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* tune_shapes: the biggest shapes first, a budget that stops cleanly (untuned shapes keep the
 * default), off does nothing, and a finished search leaves nothing missing. */
static void budgets(void)
{
    char dir[] = "/tmp/graft-tune-budget-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    graft_context_options o = {.cache_dir = dir};
    graft_context *ctx = NULL;
    graft_error e = {0};
    if (graft_context_create(&o, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
    const gemm_shape shapes[] = {
        {.m = 24, .n = 96, .k = 40}, {.tb = true, .m = 8, .n = 8, .k = 300},
        {.ta = true, .m = 48, .n = 200, .k = 64}};
    gemm_shape order[3];
    CHECK(tune_missing(ctx, shapes, 3, order) == 3);
    CHECK(order[0].m == 48 && order[1].m == 24 && order[2].m == 8); /* most FLOPs first */
    tune_summary sum;
    CHECK_OK(tune_shapes(ctx, shapes, 3, TUNE_OFF, 60, NULL, NULL, &sum, err));
    CHECK(sum.shapes == 0 && sum.tuned == 0 && !tune_results_exist(ctx));
    /* a budget spent before the first shape starts: nothing measured, nothing stored */
    CHECK_OK(tune_shapes(ctx, shapes, 3, TUNE_AUTO, 1e-9, NULL, NULL, &sum, err));
    CHECKF(sum.shapes == 3 && sum.tuned == 0 && sum.skipped == 3, "shapes %d tuned %d skipped %d",
           sum.shapes, sum.tuned, sum.skipped);
    CHECK(!tune_results_exist(ctx) && tune_missing(ctx, shapes, 3, order) == 3);
    bool tuned = true;
    gemm_choice ch = gemm_choose(ctx, &shapes[0], &tuned), d = gemm_default_choice(ctx, &shapes[0]);
    CHECK(!tuned && memcmp(&ch, &d, sizeof ch) == 0);
    graft_context_free(ctx);
    if (!small_run()) {
        /* the whole quick search in a fresh context: every shape stored, nothing left */
        CHECK(graft_context_create(&o, &ctx, &e) == GRAFT_OK);
        CHECK_OK(tune_shapes(ctx, shapes, 3, TUNE_AUTO, 60, NULL, NULL, &sum, err));
        CHECKF(sum.shapes == 3 && sum.tuned == 3 && sum.skipped == 0 && sum.changed <= 3,
               "shapes %d tuned %d skipped %d", sum.shapes, sum.tuned, sum.skipped);
        CHECK(tune_missing(ctx, shapes, 3, order) == 0 && tune_results_exist(ctx));
        graft_context_free(ctx);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    parse_and_describe();
    graft_context *ctx = oc_context();
    /* the GPU-shaped kernels first: a slow simulator reaches them before any time limit */
    tiled_vs_reference(ctx);
    kernels_vs_reference(ctx);
    loop_limited(ctx);
    graft_context_free(ctx);
    persistence();
    budgets();
    return test_finish("test_gemm");
}

/* tune.c — the GEMM tuner: for one shape it times every back end that fits (CLBlast parameter
 * sets, Graft's gemm_outer / gemm_inner tile sizes), keeps the fastest whose output matches, and
 * stores the choice in the program cache (kind "tune") keyed by device, driver, CLBlast version,
 * cl/gemm.cl's source and the shape. gemm() reads those results and never measures anything. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "ops.h"
#include "tune.h"

/* ---- CLBlast parameter sets ----
 * Complete sets for Xgemm (16 parameters), XgemmDirect (10) and GemmRoutine (1): CLBlast rejects
 * an override that misses one. Set 0 is CLBlast's own database (no override): the right start on
 * GPUs it knows. The others were written for CPU devices, where the database has no entry and
 * falls back to GPU-style defaults (6-8 GFLOP/s at 1024^3 on PoCL): wide tiles, 8-wide vectors,
 * no local memory (SA = SB = 0). */
typedef struct clblast_set {
    const char *what;
    size_t xgemm[16];  /* GEMMK KREG KWG KWI MDIMA MDIMC MWG NDIMB NDIMC NWG SA SB STRM STRN VWM VWN */
    size_t direct[10]; /* KWID MDIMAD MDIMCD NDIMBD NDIMCD PADA PADB VWMD VWND WGD */
    size_t min_indirect;
} clblast_set;

static const char *const xgemm_names[16] = {"GEMMK", "KREG", "KWG",  "KWI",  "MDIMA", "MDIMC",
                                            "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                            "STRM",  "STRN", "VWM",  "VWN"};
static const char *const direct_names[10] = {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD",
                                             "PADA", "PADB",   "VWMD",   "VWND",   "WGD"};
static const char *const routine_names[1] = {"XGEMM_MIN_INDIRECT_SIZE"};

static const clblast_set sets[] = {
    {"CLBlast's database", {0}, {0}, 0},
    /* issue 6's hand-picked set: 61 GFLOP/s at 1024^3 on PoCL, 128x128 tiles */
    {"128x128 tiles, KWG 32, vectors 8",
     {0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 0, 0, 0, 0, 8, 8},
     {2, 8, 8, 8, 8, 1, 1, 4, 4, 32},
     0},
    /* 32 x 128: small M (conv output channels) with the long N in the wide tile */
    {"32x128 tiles, KWG 32, vectors 8",
     {0, 1, 32, 2, 4, 4, 32, 8, 8, 128, 0, 0, 0, 0, 8, 8},
     {2, 8, 8, 8, 8, 1, 1, 4, 4, 32},
     0},
    /* 64 x 64 tiles */
    {"64x64 tiles, KWG 16, vectors 8",
     {0, 1, 16, 2, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 8, 8},
     {2, 8, 8, 8, 8, 1, 1, 4, 4, 32},
     0},
    /* the direct kernel for everything (no pad/transpose helper kernels) */
    {"direct kernel, WGD 32",
     {0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 0, 0, 0, 0, 8, 8},
     {2, 8, 8, 8, 8, 1, 1, 4, 4, 32},
     (size_t)1 << 40},
};
#define NSETS ((int)(sizeof sets / sizeof sets[0]))

int tune_clblast_sets(void) { return NSETS; }

void tune_clblast_describe(int set, char *buf, size_t n)
{
    if (set < 0 || set >= NSETS) {
        snprintf(buf, n, "no such set");
        return;
    }
    snprintf(buf, n, "%s", sets[set].what);
}

static graft_status override(graft_context *ctx, const char *kernel, size_t count,
                             const char *const *names, const size_t *values, graft_error *e)
{
    CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, kernel, CLBlastPrecisionSingle,
                                                    count, (const char **)names, values);
    if (s != CLBlastSuccess)
        return err_set(e, GRAFT_STATUS_OPENCL,
                       "CLBlastOverrideParameters(%s, %zu parameters) failed: status %d%s", kernel,
                       count, (int)s,
                       s == CLBlastMissingOverrideParameter ? " (incomplete parameter set)" : "");
    return GRAFT_OK;
}

graft_status tune_clblast_apply(graft_context *ctx, int set, graft_error *e)
{
    if (set <= 0 || set >= NSETS) return GRAFT_OK;
    const clblast_set *p = &sets[set];
    graft_status st;
    if ((st = override(ctx, "Xgemm", 16, xgemm_names, p->xgemm, e)) ||
        (st = override(ctx, "XgemmDirect", 10, direct_names, p->direct, e)) ||
        (st = override(ctx, "GemmRoutine", 1, routine_names, &p->min_indirect, e)))
        return st;
    return GRAFT_OK;
}

/* ---- defaults, the memo and the cache ---- */

gemm_choice gemm_default_choice(const graft_context *ctx, const gemm_shape *s)
{
    /* On CPU devices Graft's kernels beat every CLBlast set tried (docs/performance.md); the tile
     * sizes here were the tuner's most frequent winners for the Fashion-MNIST CNN's shapes. */
    if (ctx->info.type == GRAFT_DEVICE_CPU) {
        int w = ctx->info.vec_float >= 16 ? 16 : 8; /* AVX-512 devices report 16 */
        if (!s->tb) {
            /* a small M walks all its rows down each column panel of B (see cl/gemm.cl) */
            int mt = s->m <= 512 ? (int)((s->m + 7) / 8) : 1;
            return (gemm_choice){GEMM_BACKEND_OUTER, {8, 2, mt, w}};
        }
        if (!s->ta) {
            /* a long K (weight gradients) is split so slices of A and B stay in cache */
            int splits = s->k >= 8192 ? 32 : 1;
            return (gemm_choice){GEMM_BACKEND_INNER, {4, 3, splits, w}};
        }
        return (gemm_choice){GEMM_BACKEND_CLBLAST, {1, 0, 0, 0}};
    }
    return (gemm_choice){GEMM_BACKEND_CLBLAST, {0, 0, 0, 0}};
}

/* The key of a shape's tuning result, or of the device's index entry when s is NULL. */
static char *tune_key(const graft_context *ctx, const gemm_shape *s, size_t *len)
{
    const char *src = cl_source_get("gemm");
    uint8_t h[32];
    char hex[65];
    sha256(src ? src : "", src ? strlen(src) : 0, h);
    hex_encode(h, 32, hex);
    buf b = {0};
    buf_printf(&b,
               "gemm-tune 3\nplatform=%s\nplatform_version=%s\ndevice=%s\ndriver=%s\n"
               "clblast=%d.%d.%d\ngemm.cl=%s\n",
               ctx->info.platform, ctx->info.platform_version, ctx->info.name, ctx->info.driver,
               CLBLAST_VERSION_MAJOR, CLBLAST_VERSION_MINOR, CLBLAST_VERSION_PATCH, hex);
    if (s)
        buf_printf(&b, "shape=%d %d %zu %zu %zu\n", s->ta ? 1 : 0, s->tb ? 1 : 0, s->m, s->n,
                   s->k);
    else
        buf_printf(&b, "index\n");
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* A stored result: "backend p0 p1 p2 p3 gflops\n". */
static bool cache_read_choice(graft_context *ctx, const gemm_shape *s, gemm_choice *out)
{
    size_t keylen;
    char *key = tune_key(ctx, s, &keylen);
    if (!key) return false;
    void *data = NULL;
    size_t len = 0;
    cache_get(&ctx->cache, "tune", key, keylen, &data, &len);
    free(key);
    if (!data) return false;
    char text[128];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    free(data);
    int b, p0, p1, p2, p3;
    double g;
    if (sscanf(text, "%d %d %d %d %d %lf", &b, &p0, &p1, &p2, &p3, &g) != 6) return false;
    gemm_choice ch = {(gemm_backend)b, {p0, p1, p2, p3}};
    if (b < 0 || b >= GEMM_BACKEND_COUNT || !gemm_choice_fits(&ch, s)) return false;
    if (b == GEMM_BACKEND_CLBLAST && (p0 < 0 || p0 >= NSETS)) return false;
    if (b != GEMM_BACKEND_CLBLAST &&
        (p0 < 1 || p0 > 16 || p1 < 1 || p1 > 8 || p2 < 0 || p2 > 1024 || (p3 != 8 && p3 != 16)))
        return false;
    *out = ch;
    return true;
}

static void memo_put(graft_context *ctx, const gemm_shape *s, const gemm_choice *ch, bool tuned)
{
    gemm_memo *m = NULL;
    for (int i = 0; i < ctx->ngemm_memo; i++) {
        gemm_memo *q = &ctx->gemm_memo[i];
        if (q->m == s->m && q->n == s->n && q->k == s->k && q->ta == s->ta && q->tb == s->tb)
            m = q;
    }
    if (!m) {
        if (ctx->ngemm_memo >= GEMM_MEMO_MAX) return; /* full: later shapes ask the cache */
        m = &ctx->gemm_memo[ctx->ngemm_memo++];
    }
    *m = (gemm_memo){s->m, s->n, s->k, s->ta, s->tb, tuned, (int)ch->backend,
                     {ch->p[0], ch->p[1], ch->p[2], ch->p[3]}};
}

gemm_choice gemm_choose(graft_context *ctx, const gemm_shape *s, bool *tuned)
{
    for (int i = 0; i < ctx->ngemm_memo; i++) {
        const gemm_memo *q = &ctx->gemm_memo[i];
        if (q->m == s->m && q->n == s->n && q->k == s->k && q->ta == s->ta && q->tb == s->tb) {
            if (tuned) *tuned = q->tuned;
            return (gemm_choice){(gemm_backend)q->backend, {q->p[0], q->p[1], q->p[2], q->p[3]}};
        }
    }
    gemm_choice ch;
    bool t = cache_read_choice(ctx, s, &ch);
    if (t) ctx->gemm_tuned_hits++;
    else {
        ch = gemm_default_choice(ctx, s);
        ctx->gemm_default_uses++;
    }
    memo_put(ctx, s, &ch, t);
    if (tuned) *tuned = t;
    return ch;
}

bool tune_results_exist(graft_context *ctx)
{
    size_t keylen;
    char *key = tune_key(ctx, NULL, &keylen);
    if (!key) return false;
    void *data = NULL;
    size_t len = 0;
    cache_get(&ctx->cache, "tune", key, keylen, &data, &len);
    free(key);
    bool yes = data && len > 0;
    free(data);
    return yes;
}

/* The index entry lists every tuned shape, one per line, so `graft tune` and the trainer can tell
 * whether this device was ever tuned without knowing the shapes. */
static void index_add(graft_context *ctx, const gemm_shape *s)
{
    size_t keylen;
    char *key = tune_key(ctx, NULL, &keylen);
    if (!key) return;
    void *data = NULL;
    size_t len = 0;
    cache_get(&ctx->cache, "tune", key, keylen, &data, &len);
    char line[128];
    int n = snprintf(line, sizeof line, "%d %d %zu %zu %zu\n", s->ta ? 1 : 0, s->tb ? 1 : 0, s->m,
                     s->n, s->k);
    buf b = {0};
    bool present = false;
    if (data) {
        /* keep the old lines; skip adding a duplicate */
        const char *p = data, *end = p + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
            if (l == (size_t)n && memcmp(p, line, l) == 0) present = true;
            p += l;
        }
        buf_append(&b, data, len);
    }
    if (!present) buf_append(&b, line, (size_t)n);
    if (!b.failed && !present) cache_put(&ctx->cache, "tune", key, keylen, b.data, b.len, NULL);
    buf_free(&b);
    free(data);
    free(key);
}

/* ---- measuring ---- */

typedef struct operands {
    cl_mem a, b, c;
    size_t lda, ldb, ldc, asz, bsz, csz;
} operands;

static void operands_free(operands *o)
{
    if (o->a) clReleaseMemObject(o->a);
    if (o->b) clReleaseMemObject(o->b);
    if (o->c) clReleaseMemObject(o->c);
    memset(o, 0, sizeof *o);
}

static graft_status operands_make(graft_context *ctx, const gemm_shape *s, bool fill,
                                  operands *o, graft_error *e)
{
    memset(o, 0, sizeof *o);
    o->lda = s->ta ? s->m : s->k;
    o->ldb = s->tb ? s->k : s->n;
    o->ldc = s->n;
    o->asz = s->m * s->k;
    o->bsz = s->k * s->n;
    o->csz = s->m * s->n;
    graft_status st;
    if ((st = buffer_create(ctx, (o->asz ? o->asz : 1) * 4, &o->a, e)) ||
        (st = buffer_create(ctx, (o->bsz ? o->bsz : 1) * 4, &o->b, e)) ||
        (st = buffer_create(ctx, (o->csz ? o->csz : 1) * 4, &o->c, e)))
        goto fail;
    if (fill) {
        /* small pseudo-random values with both signs, so a wrong kernel cannot match by accident */
        size_t big = o->asz > o->bsz ? o->asz : o->bsz;
        float *h = malloc((big ? big : 1) * sizeof *h);
        if (!h) {
            st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto fail;
        }
        uint32_t x = 12345;
        for (size_t i = 0; i < big; i++) {
            x = x * 1664525u + 1013904223u;
            h[i] = (float)((x >> 8) & 0xffff) / 65536.0f - 0.5f;
        }
        st = buffer_write(ctx, o->a, 0, h, o->asz * 4, e);
        if (!st) st = buffer_write(ctx, o->b, 0, h + (big - o->bsz), o->bsz * 4, e);
        free(h);
        if (st) goto fail;
    }
    return GRAFT_OK;
fail:
    operands_free(o);
    return st;
}

static graft_status run_once(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s,
                             const operands *o, graft_error *e)
{
    return gemm_run(ctx, ch, s->ta, s->tb, s->m, s->n, s->k, 1.0f, o->a, 0, o->lda, o->b, 0,
                    o->ldb, 0.0f, o->c, 0, o->ldc, e);
}

static graft_status time_with(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s,
                              const operands *o, int reps, double *seconds, graft_error *e)
{
    graft_status st = run_once(ctx, ch, s, o, e); /* compiles, first touch */
    if (st) return st;
    if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
    /* one call's time decides how many to batch per sample: about 50 ms a sample */
    double t0 = now_seconds();
    if ((st = run_once(ctx, ch, s, o, e))) return st;
    if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
    double one = now_seconds() - t0, best = one;
    int per = one > 0.05 ? 1 : (int)(0.05 / (one > 1e-6 ? one : 1e-6));
    if (per > 200) per = 200;
    for (int r = 0; r < reps; r++) {
        t0 = now_seconds();
        for (int i = 0; i < per; i++)
            if ((st = run_once(ctx, ch, s, o, e))) return st;
        if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
        double t = (now_seconds() - t0) / per;
        if (t < best) best = t;
    }
    *seconds = best;
    return GRAFT_OK;
}

graft_status tune_time(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s, int reps,
                       double *seconds, graft_error *e)
{
    operands o;
    graft_status st = operands_make(ctx, s, true, &o, e);
    if (st) return st;
    st = time_with(ctx, ch, s, &o, reps, seconds, e);
    operands_free(&o);
    return st;
}

/* The candidates for a shape, in the order they are tried (the default first: it is the
 * reference every other output is compared with). */
int tune_candidates(const graft_context *ctx, const gemm_shape *s, gemm_choice *out, int cap)
{
    int n = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        gemm_choice c_ = {__VA_ARGS__};                                                            \
        if (n < cap && gemm_choice_fits(&c_, s)) out[n++] = c_;                                    \
    } while (0)
    gemm_choice d = gemm_default_choice(ctx, s);
    if (cap < 1) return 0;
    out[n++] = d;
    bool cpu = ctx->info.type == GRAFT_DEVICE_CPU;
    if (cpu) {
        /* outer: MR x NV*VW tiles with at most 16 vector accumulators (AVX2 has 16 ymm
         * registers, AVX-512 32 zmm); NT > 1 walks several tiles along N per work-item */
        static const int outer[][4] = {
            {8, 2, 1, 16},  {6, 2, 1, 16},  {4, 3, 1, 16},  {6, 4, 1, 16}, {8, 1, 1, 16},
            {4, 4, 1, 16},  {8, 2, 1, 8},   {6, 2, 1, 8},   {2, 4, 1, 16}, {8, 1, 64, 16},
            {8, 2, 64, 16}, {6, 2, 64, 16}, {4, 3, 64, 16}, {8, 2, 8, 16}, {8, 1, 8, 16},
            {8, 2, 64, 8}};
        for (size_t i = 0; i < sizeof outer / sizeof outer[0]; i++)
            ADD(GEMM_BACKEND_OUTER, {outer[i][0], outer[i][1], outer[i][2], outer[i][3]});
        /* inner: MR x NC dot products, each a vector along K */
        static const int inner[][4] = {
            {4, 3, 1, 16},  {2, 4, 1, 16},  {4, 4, 1, 16},   {8, 2, 1, 16},  {4, 3, 1, 8},
            {4, 4, 8, 16},  {4, 4, 16, 16}, {4, 3, 32, 16},  {4, 4, 32, 16}, {8, 2, 32, 16},
            {4, 4, 64, 16}, {4, 3, 64, 16}, {4, 4, 128, 16}, {4, 6, 16, 16}, {8, 3, 16, 16},
            {8, 2, 16, 16}, {8, 3, 32, 16}};
        for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++)
            if (inner[i][2] == 1 || s->k >= (size_t)inner[i][2] * 64)
                ADD(GEMM_BACKEND_INNER, {inner[i][0], inner[i][1], inner[i][2], inner[i][3]});
        for (int set = 1; set < NSETS; set++) ADD(GEMM_BACKEND_CLBLAST, {set, 0, 0});
    } else {
        /* GPUs: CLBlast's database (one work-item per group, as in Graft's CPU kernels, would
         * waste a GPU); GPU parameter sets join this list with issue 9 */
        ADD(GEMM_BACKEND_CLBLAST, {0, 0, 0});
    }
#undef ADD
    /* drop a repeat of the default */
    int w = 1;
    for (int i = 1; i < n; i++)
        if (memcmp(&out[i], &d, sizeof d) != 0) out[w++] = out[i];
    return w;
}

#define CLBLAST_MARGIN 1.15

graft_status tune_gemm(graft_context *ctx, const gemm_shape *s, tune_progress_fn progress,
                       void *user, tune_result *r, graft_error *e)
{
    memset(r, 0, sizeof *r);
    r->shape = *s;
    double t_start = now_seconds();
    gemm_choice cand[48];
    int nc = tune_candidates(ctx, s, cand, 48);
    operands o;
    graft_status st = operands_make(ctx, s, true, &o, e);
    if (st) return st;
    float *ref = malloc((o.csz ? o.csz : 1) * sizeof *ref);
    float *got = malloc((o.csz ? o.csz : 1) * sizeof *got);
    if (!ref || !got) {
        st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
        goto done;
    }
    double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    double refmax = 0;
    bool have_ref = false, have_best = false;
    double best_t = 0;
    for (int i = 0; i < nc; i++) {
        graft_error ce = {0};
        double t = 0;
        graft_status cs = time_with(ctx, &cand[i], s, &o, 3, &t, &ce);
        if (!cs) cs = buffer_read(ctx, o.c, 0, have_ref ? got : ref, o.csz * 4, &ce);
        if (cs) {
            /* a candidate the device cannot build or run is skipped, not fatal */
            if (progress) progress(user, s, &cand[i], -1);
            continue;
        }
        r->tried++;
        if (!have_ref) {
            have_ref = true;
            for (size_t j = 0; j < o.csz; j++)
                if (fabs(ref[j]) > refmax) refmax = fabs(ref[j]);
        } else {
            /* sums of K products of values in [-0.5, 0.5): float rounding stays far below this */
            double tol = 1e-4 * (refmax + 1.0) * (s->k > 64 ? sqrt((double)s->k / 64.0) : 1.0);
            bool ok = true;
            for (size_t j = 0; j < o.csz && ok; j++)
                if (!(fabs((double)got[j] - ref[j]) <= tol)) ok = false;
            if (!ok) {
                if (progress) progress(user, s, &cand[i], -2);
                continue;
            }
        }
        double g = t > 0 ? flops / t / 1e9 : 0;
        if (progress) progress(user, s, &cand[i], g);
        if (i == 0) {
            r->deflt = cand[0];
            r->default_gflops = g;
        }
        /* CLBlast keeps its compiled kernels in memory only: a choice of CLBlast costs every
         * process a compile of 10-15 s per parameter set on PoCL, so it must win clearly */
        double eff = cand[i].backend == GEMM_BACKEND_CLBLAST ? t * CLBLAST_MARGIN : t;
        if (!have_best || eff < best_t) {
            have_best = true;
            best_t = eff;
            r->best = cand[i];
            r->best_gflops = g;
        }
    }
    if (!have_best) {
        st = err_set(e, GRAFT_STATUS_OPENCL,
                     "no GEMM kernel ran %zux%zux%zu (trans %d/%d) on this device", s->m, s->n,
                     s->k, s->ta, s->tb);
        goto done;
    }
    {
        char text[128];
        int n = snprintf(text, sizeof text, "%d %d %d %d %d %.3f\n", (int)r->best.backend,
                         r->best.p[0], r->best.p[1], r->best.p[2], r->best.p[3], r->best_gflops);
        size_t keylen;
        char *key = tune_key(ctx, s, &keylen);
        if (!key) {
            st = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto done;
        }
        st = cache_put(&ctx->cache, "tune", key, keylen, text, (size_t)n, e);
        free(key);
        if (st) goto done;
        index_add(ctx, s);
        memo_put(ctx, s, &r->best, true);
    }
done:
    r->seconds = now_seconds() - t_start;
    free(ref);
    free(got);
    operands_free(&o);
    return st;
}

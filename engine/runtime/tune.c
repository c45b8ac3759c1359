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

/* The vector width Graft's CPU kernels use on a device: the device's own where it prefers 16
 * floats (AVX-512), else float8. An earlier PoCL on another machine (POCL_LLVM_CPU_NAME=znver3 on
 * AVX-512 hardware) ran float16 tiles 1.5-3x faster than float8 on AVX2 code, so they were used
 * there too; on Zen 5 capped at AVX2 (PoCL 3.1 `pthread-haswell`, 16 ymm registers) the float16
 * tiles spilled and lost to float8 ones by 1.3-2x on every dense shape of fmnist-cnn
 * (`graft bench gemm`, alternating, 2026-12-05): fc1's forward (64 x 128 over 3136, tb)
 * 74-117 GFLOP/s as 4 x 3 float16 dot products against 169-184 as 4 x 3 float8; its weight
 * gradient (128 x 3136 over 64, ta) 115-127 as an 8 x 32 float16 tile against 188-208 as
 * 6 x 16 float8; its data gradient 113-146 against 194-203. */
static int cpu_vector_width(const graft_context *ctx)
{
    return ctx->info.vec_float >= 16 ? 16 : 8;
}

gemm_choice gemm_default_choice(const graft_context *ctx, const gemm_shape *s)
{
    /* On CPU devices Graft's kernels beat every CLBlast set tried (docs/performance.md). The
     * tile follows the device's vector width (above): an 8 x 32 tile of float16 (16 zmm
     * accumulators on AVX-512), 6 x 16 of float8 on 8-float devices (12 ymm accumulators, two B
     * vectors and a broadcast in AVX2's 16), 4 x 8 on 128-bit SIMD (untested). */
    if (ctx->info.type == GRAFT_DEVICE_CPU) {
        /* regs16: 16 or more vector registers of 8 or more floats (AVX2, AVX-512) */
        int w = cpu_vector_width(ctx), regs16 = ctx->info.vec_float >= 8;
        size_t cu = ctx->info.compute_units ? ctx->info.compute_units : 1;
        if (!s->tb) {
            /* a work-item walks up to 64 row blocks down one column panel of B (see cl/gemm.cl)
             * when M is small or the panel (K x 32 floats) is small enough to stay in cache
             * (576 x 12544 x 64 ta: 82 GFLOP/s walking, 49 not), as long as that leaves a few
             * work-items per compute unit */
            int mr = w == 16 ? 8 : regs16 ? 6 : 4, nv = regs16 ? 2 : 1;
            size_t panels = (s->n + (size_t)(nv * w) - 1) / (size_t)(nv * w);
            size_t blocks = (s->m + (size_t)mr - 1) / (size_t)mr;
            size_t mt = s->m <= 512 || s->k < 1024 ? (blocks < 64 ? blocks : 64) : 1;
            while (mt > 1 && panels * ((blocks + mt - 1) / mt) < 4 * cu) mt = (mt + 1) / 2;
            return (gemm_choice){GEMM_BACKEND_OUTER, {mr, nv, (int)mt, w}};
        }
        if (!s->ta) {
            /* a long K (weight gradients) is split so slices of A and B stay in cache. 4 x 3
             * dot products take 12 + 3 + 1 vector registers; a device that prefers 16 floats
             * (AVX-512's 32 zmm) fits 4 x 6 (24 + 6 + 1), which won on K = 50176 here in two
             * runs out of two (and lost on K = 12544), and is 40 % slower where float16 is two
             * ymm (AVX2) */
            if (s->k >= 32768 && ctx->info.vec_float >= 16)
                return (gemm_choice){GEMM_BACKEND_INNER, {4, 6, 16, 16}};
            const int nc = regs16 ? 3 : 2; /* 4 x 3: 12 accumulators, 3 + 1 more in 16 registers */
            if (s->k >= 8192) return (gemm_choice){GEMM_BACKEND_INNER, {4, nc, 32, w}};
            /* a few outputs over a long K (a dense layer's forward: fmnist-cnn's fc1, 64 x 128
             * over 3136): four K ranges. Zen 5, best of 30, two rounds: 300-325 GFLOP/s against
             * 187-222 unsplit (8 ranges 250-275); capped at AVX2, float8, 169-184. */
            if (s->k >= 2048 && s->m * s->n <= 16384)
                return (gemm_choice){GEMM_BACKEND_INNER, {4, nc, 4, w}};
            return (gemm_choice){GEMM_BACKEND_INNER, {4, nc, 1, w}};
        }
        return (gemm_choice){GEMM_BACKEND_CLBLAST, {1, 0, 0, 0}};
    }
    /* GPUs and accelerators: CLBlast's own database, tuned per GPU model (NVIDIA, AMD, Intel) by
     * its authors; gemm_tiled joins the tuner's candidates beside it */
    return (gemm_choice){GEMM_BACKEND_CLBLAST, {0, 0, 0, 0}};
}

/* The hash of a kind's kernel sources, once per context (every layer's key needs it). */
static const char *sources_hash(graft_context *ctx, const char *kind, const char *const *sources,
                                int nsources, char hex[65])
{
    for (int i = 0; i < ctx->nsrc_hash; i++)
        if (strcmp(ctx->src_hash[i].kind, kind) == 0) return ctx->src_hash[i].hex;
    buf src = {0};
    for (int i = 0; i < nsources; i++) {
        const char *t = cl_source_get(sources[i]);
        if (t) buf_append(&src, t, strlen(t));
    }
    uint8_t h[32];
    sha256(src.data ? src.data : "", src.len, h);
    hex_encode(h, 32, hex);
    buf_free(&src);
    int n = (int)(sizeof ctx->src_hash / sizeof ctx->src_hash[0]);
    if (ctx->nsrc_hash < n) {
        ctx->src_hash[ctx->nsrc_hash].kind = kind;
        memcpy(ctx->src_hash[ctx->nsrc_hash++].hex, hex, 65);
    }
    return hex;
}

void tune_key_begin(buf *b, graft_context *ctx, const char *kind, const char *const *sources,
                    int nsources)
{
    /* the kernels' sources: a changed kernel invalidates every result */
    char own[65];
    const char *hex = sources_hash(ctx, kind, sources, nsources, own);
    buf_printf(b,
               "%s\nplatform=%s\nplatform_version=%s\ndevice=%s\ndriver=%s\nclblast=%d.%d.%d\n"
               "kernels=%s\nvec_float=%u\n",
               kind, ctx->info.platform, ctx->info.platform_version, ctx->info.name,
               ctx->info.driver, CLBLAST_VERSION_MAJOR, CLBLAST_VERSION_MINOR,
               CLBLAST_VERSION_PATCH, hex, ctx->info.vec_float);
}

bool tune_cache_text(graft_context *ctx, const char *key, size_t keylen, char *text, size_t n)
{
    void *data = NULL;
    size_t len = 0;
    cache_get(&ctx->cache, "tune", key, keylen, &data, &len);
    if (!data || n == 0) {
        free(data);
        return false;
    }
    size_t m = len < n - 1 ? len : n - 1;
    memcpy(text, data, m);
    text[m] = 0;
    free(data);
    return true;
}

/* The key of a shape's tuning result, or of the device's index entry when s is NULL. */
static char *tune_key(graft_context *ctx, const gemm_shape *s, size_t *len)
{
    buf b = {0};
    const char *names[] = {"gemm", "gemm_tiled"};
    /* 5: 8-float devices (AVX2) time float8 tiles, not float16 (cpu_vector_width), so what
     * an older run stored for them came from the wrong candidates */
    tune_key_begin(&b, ctx, "gemm-tune 5", names, 2);
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
    char text[128];
    bool have = tune_cache_text(ctx, key, keylen, text, sizeof text);
    free(key);
    if (!have) return false;
    int b, p0, p1, p2, p3;
    double g;
    if (sscanf(text, "%d %d %d %d %d %lf", &b, &p0, &p1, &p2, &p3, &g) != 6) return false;
    gemm_choice ch = {(gemm_backend)b, {p0, p1, p2, p3}};
    if (b < 0 || b >= GEMM_BACKEND_COUNT || !gemm_choice_valid(&ch) || !gemm_choice_fits(&ch, s) ||
        !gemm_choice_fits_device(ctx, &ch))
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

/* ---- measuring ----
 * A candidate is timed as the pipeline runs it: the same shape, transpositions and leading
 * dimensions, beta = 0, and operands that are not in the cache when the shape's operands are
 * larger than what the cache can hold across a training step. The operands rotate over enough
 * copies that together they exceed twice the device's global memory cache (CPU: the last-level
 * cache), so a call never finds the previous call's data still cached unless it is small enough
 * to stay there in the pipeline too. Each figure is the median of several samples (a sample is
 * enough calls to last SAMPLE_SECONDS), never the best one: the best of a few runs rewards a
 * kernel that was lucky once, and the pipeline sees its typical speed. */

#define MAX_COPIES 8
#define SAMPLE_SECONDS 0.02
/* A candidate must beat the default's median by this much, measured head to head (interleaved
 * samples of both), to replace it. On the shared 2-core machine two runs of the same kernel
 * differ by up to 3-5 % in the median of 5 samples; the issue saw tuned choices up to 15 % slower
 * in training than untuned. 7 % is above that noise, and a smaller gain is not worth the risk. */
#define TUNE_MARGIN 1.07

typedef struct operands {
    int copies;
    cl_mem a[MAX_COPIES], b[MAX_COPIES], c[MAX_COPIES];
    size_t lda, ldb, ldc, asz, bsz, csz;
} operands;

static void operands_free(operands *o)
{
    for (int i = 0; i < MAX_COPIES; i++) {
        if (o->a[i]) clReleaseMemObject(o->a[i]);
        if (o->b[i]) clReleaseMemObject(o->b[i]);
        if (o->c[i]) clReleaseMemObject(o->c[i]);
    }
    memset(o, 0, sizeof *o);
}

static size_t device_cache_bytes(const graft_context *ctx)
{
    cl_ulong v = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof v, &v, NULL) !=
            CL_SUCCESS ||
        v == 0)
        v = (cl_ulong)32 << 20; /* a typical server last-level cache */
    return (size_t)v;
}

static graft_status operands_make(graft_context *ctx, const gemm_shape *s, operands *o,
                                  graft_error *e)
{
    memset(o, 0, sizeof *o);
    size_t acols = s->ta ? s->m : s->k, bcols = s->tb ? s->k : s->n;
    o->lda = s->lda > acols ? s->lda : acols;
    o->ldb = s->ldb > bcols ? s->ldb : bcols;
    o->ldc = s->ldc > s->n ? s->ldc : s->n;
    o->asz = (s->ta ? s->k : s->m) * o->lda;
    o->bsz = (s->tb ? s->n : s->k) * o->ldb;
    o->csz = s->m * o->ldc;
    size_t set = (o->asz + o->bsz + o->csz + 3) * sizeof(float);
    size_t want = 2 * device_cache_bytes(ctx), limit = ctx->info.global_mem_bytes / 8;
    int copies = (int)((want + set - 1) / set);
    /* operands that stay in the cache even at MAX_COPIES stay there in the pipeline too */
    if (copies > MAX_COPIES) copies = (size_t)MAX_COPIES * set < want / 2 ? 1 : MAX_COPIES;
    while (copies > 1 && (size_t)copies * set > limit) copies--;
    if (copies < 1) copies = 1;
    o->copies = copies;
    graft_status st = GRAFT_OK;
    /* small pseudo-random values with both signs (no denormals, nothing that could run a kernel
     * on a slow path), so a wrong kernel cannot match by accident */
    size_t big = o->asz > o->bsz ? o->asz : o->bsz;
    float *h = malloc((big ? big : 1) * sizeof *h);
    if (!h) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    uint32_t x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1664525u + 1013904223u;
        h[i] = (float)((x >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    for (int i = 0; i < copies && !st; i++) {
        if ((st = buffer_create(ctx, (o->asz ? o->asz : 1) * 4, &o->a[i], e)) ||
            (st = buffer_create(ctx, (o->bsz ? o->bsz : 1) * 4, &o->b[i], e)) ||
            (st = buffer_create(ctx, (o->csz ? o->csz : 1) * 4, &o->c[i], e)))
            break;
        if (o->asz && (st = buffer_write(ctx, o->a[i], 0, h, o->asz * 4, e))) break;
        /* zeros in C: a padded row's tail is never written, and a candidate that writes there
         * differs from the first one in the comparison below */
        if (o->csz && (st = buffer_fill_f32(ctx, o->c[i], 0.0f, o->csz, e))) break;
        if (o->bsz && (st = buffer_write(ctx, o->b[i], 0, h + (big - o->bsz), o->bsz * 4, e)))
            break;
    }
    free(h);
    if (st) operands_free(o);
    return st;
}

static graft_status run_once(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s,
                             const operands *o, int copy, graft_error *e)
{
    return gemm_run(ctx, ch, s->ta, s->tb, s->m, s->n, s->k, 1.0f, o->a[copy], 0, o->lda,
                    o->b[copy], 0, o->ldb, 0.0f, o->c[copy], 0, o->ldc, e);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A warm-up (compiles, first touch), one timed call, then the other copies' first touch; *per
 * gets how many calls make a sample and *one the single call's time. */
static graft_status warm_up(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s,
                            const operands *o, int *per, double *one, graft_error *e)
{
    graft_status st;
    if ((st = run_once(ctx, ch, s, o, 0, e))) return st;
    if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
    double t0 = now_seconds();
    if ((st = run_once(ctx, ch, s, o, 0, e))) return st;
    if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
    *one = now_seconds() - t0;
    for (int i = 1; i < o->copies; i++)
        if ((st = run_once(ctx, ch, s, o, i, e))) return st;
    if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
    int n = *one >= SAMPLE_SECONDS ? 1 : (int)(SAMPLE_SECONDS / (*one > 1e-6 ? *one : 1e-6));
    *per = n > 200 ? 200 : n;
    return GRAFT_OK;
}

/* One sample: per calls, rotating over the copies; seconds per call. */
static graft_status sample(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s,
                           const operands *o, int per, int *next, double *t, graft_error *e)
{
    graft_status st;
    double t0 = now_seconds();
    for (int i = 0; i < per; i++) {
        if ((st = run_once(ctx, ch, s, o, *next, e))) return st;
        *next = (*next + 1) % o->copies;
    }
    if ((st = cl_check(clFinish(ctx->queue), "clFinish", e))) return st;
    *t = (now_seconds() - t0) / per;
    return GRAFT_OK;
}

/* The median of reps samples; a candidate whose single warm call already took more than
 * cutoff seconds (0 = none: three times the default's median) is not sampled further: it cannot
 * win, and a kernel at 1 % of the default's speed would otherwise take minutes. */
static graft_status time_median(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s,
                                const operands *o, int reps, double cutoff, double *seconds,
                                graft_error *e)
{
    int per, next = 0;
    double one;
    graft_status st = warm_up(ctx, ch, s, o, &per, &one, e);
    if (st) return st;
    if (cutoff > 0 && one > cutoff) {
        *seconds = one;
        return GRAFT_OK;
    }
    double t[16];
    if (reps > 16) reps = 16;
    if (reps < 1) reps = 1;
    for (int r = 0; r < reps; r++)
        if ((st = sample(ctx, ch, s, o, per, &next, &t[r], e))) return st;
    *seconds = median(t, reps);
    return GRAFT_OK;
}

graft_status tune_time(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s, int reps,
                       double *seconds, graft_error *e)
{
    operands o;
    graft_status st = operands_make(ctx, s, &o, e);
    if (st) return st;
    st = time_median(ctx, ch, s, &o, reps, 0, seconds, e);
    operands_free(&o);
    return st;
}

/* Head to head: interleaved samples of the default and the challenger, so a change of load hits
 * both; *ratio is the median over the pairs of default time / challenger time (a pair's ratio
 * cancels load that lasts longer than the pair), *td and *tc the medians of each. */
static graft_status duel(graft_context *ctx, const gemm_choice *d, const gemm_choice *c,
                         const gemm_shape *s, const operands *o, int rounds, double *td,
                         double *tc, double *ratio, graft_error *e)
{
    int pd, pc, nd = 0, nc = 0;
    double one;
    graft_status st;
    if ((st = warm_up(ctx, d, s, o, &pd, &one, e)) || (st = warm_up(ctx, c, s, o, &pc, &one, e)))
        return st;
    double a[16], b[16], q[16];
    if (rounds > 16) rounds = 16;
    for (int r = 0; r < rounds; r++) {
        /* alternate which goes first, so neither always runs right after the other */
        if ((st = sample(ctx, r % 2 ? c : d, s, o, r % 2 ? pc : pd, r % 2 ? &nc : &nd,
                         r % 2 ? &b[r] : &a[r], e)) ||
            (st = sample(ctx, r % 2 ? d : c, s, o, r % 2 ? pd : pc, r % 2 ? &nd : &nc,
                         r % 2 ? &a[r] : &b[r], e)))
            return st;
        q[r] = b[r] > 0 ? a[r] / b[r] : 0;
    }
    *ratio = median(q, rounds);
    *td = median(a, rounds);
    *tc = median(b, rounds);
    return GRAFT_OK;
}

/* The GPU-shaped tiled kernel's variants (TX, TY, RM, RN): 64-256 work-items, tiles of 32x32 to
 * 128x128, 8-20 KiB of local memory */
static const int tiled[][4] = {{16, 16, 4, 4}, {16, 16, 8, 4}, {16, 16, 8, 8}, {8, 8, 4, 4},
                               {16, 8, 4, 4},  {16, 16, 2, 2}, {8, 16, 4, 8}};
#define NTILED ((int)(sizeof tiled / sizeof tiled[0]))

int tune_tiled_variants(const graft_context *ctx, gemm_choice *out, int cap)
{
    int n = 0;
    for (int i = 0; i < NTILED && n < cap; i++) {
        gemm_choice c = {GEMM_BACKEND_TILED, {tiled[i][0], tiled[i][1], tiled[i][2], tiled[i][3]}};
        if (gemm_choice_fits_device(ctx, &c)) out[n++] = c;
    }
    return n;
}

/* The candidates for a shape, in the order they are tried (the default first: it is the
 * reference every other output is compared with; then the likeliest winners, so a search cut
 * short by its budget has tried those). quick: the short list the trainer's budgeted search
 * uses (no CLBlast sets on CPUs: each compiles for 10-15 s and never won there). */
static int candidates(const graft_context *ctx, const gemm_shape *s, bool quick, gemm_choice *out,
                      int cap)
{
    int n = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        gemm_choice c_ = {__VA_ARGS__};                                                            \
        if (n < cap && gemm_choice_fits(&c_, s) && gemm_choice_fits_device(ctx, &c_))             \
            out[n++] = c_;                                                                         \
    } while (0)
    gemm_choice d = gemm_default_choice(ctx, s);
    if (cap < 1) return 0;
    out[n++] = d;
    bool cpu = ctx->info.type == GRAFT_DEVICE_CPU;
    if (cpu) {
        /* outer: MR x NV*VW tiles with at most 16 vector accumulators (AVX2 has 16 ymm
         * registers, AVX-512 32 zmm); MT > 1 walks several row blocks per work-item. Ordered by
         * how often each won on the CNN's shapes (docs/performance.md) */
        int w = cpu_vector_width(ctx);
        static const int outer16[][4] = {
            {8, 1, 64, 16}, {8, 2, 36, 16}, {8, 1, 8, 16},  {8, 2, 1, 16},  {6, 4, 1, 16},
            {8, 2, 8, 16},  {6, 2, 64, 16}, {4, 3, 64, 16}, {6, 2, 1, 16},  {4, 3, 1, 16},
            {8, 1, 1, 16},  {4, 4, 1, 16},  {2, 4, 1, 16},  {8, 2, 64, 16}, {8, 2, 1, 8},
            {6, 2, 1, 8},   {8, 2, 64, 8}};
        /* (8-float devices: AVX2 with its 16 ymm, whose best were 6 x 16 tiles, and 128-bit
         * SIMD, for which the 4 x 8 ones were chosen) */
        static const int outer8[][4] = {
            {6, 2, 16, 8}, {4, 2, 64, 8}, {6, 2, 64, 8}, {4, 1, 64, 8}, {6, 1, 64, 8},
            {4, 2, 1, 8},  {4, 1, 1, 8},  {8, 1, 64, 8}, {2, 2, 64, 8}, {4, 1, 8, 8},
            {2, 1, 64, 16}};
        const int(*outer)[4] = w == 16 ? outer16 : outer8;
        int nouter = w == 16 ? (int)(sizeof outer16 / sizeof outer16[0])
                             : (int)(sizeof outer8 / sizeof outer8[0]);
        if (quick && nouter > 7) nouter = 7;
        for (int i = 0; i < nouter; i++)
            ADD(GEMM_BACKEND_OUTER, {outer[i][0], outer[i][1], outer[i][2], outer[i][3]});
        /* inner: MR x NC dot products, each a vector along K */
        static const int inner16[][4] = {
            {4, 6, 16, 16}, {4, 4, 16, 16}, {4, 4, 1, 16},  {4, 3, 32, 16}, {4, 4, 32, 16},
            {8, 2, 32, 16}, {2, 4, 1, 16},  {8, 2, 1, 16},  {4, 4, 8, 16},  {4, 4, 64, 16},
            {4, 3, 64, 16}, {4, 4, 128, 16}, {8, 3, 16, 16}, {8, 2, 16, 16}, {8, 3, 32, 16},
            {4, 3, 1, 16},  {4, 3, 1, 8}};
        static const int inner8[][4] = {
            {4, 3, 16, 8}, {4, 2, 16, 8}, {4, 3, 1, 8}, {4, 2, 1, 8},  {2, 2, 16, 8},
            {4, 3, 32, 8}, {2, 2, 1, 8},  {4, 2, 32, 8}, {2, 4, 1, 8}, {4, 2, 64, 8},
            {2, 2, 64, 8}, {2, 1, 32, 16}};
        const int(*inner)[4] = w == 16 ? inner16 : inner8;
        int ninner = w == 16 ? (int)(sizeof inner16 / sizeof inner16[0])
                             : (int)(sizeof inner8 / sizeof inner8[0]);
        int taken = 0;
        for (int i = 0; i < ninner && (!quick || taken < 6); i++)
            if (inner[i][2] == 1 || s->k >= (size_t)inner[i][2] * 64) {
                int before = n;
                ADD(GEMM_BACKEND_INNER, {inner[i][0], inner[i][1], inner[i][2], inner[i][3]});
                taken += n > before;
            }
        if (!quick) {
            for (int set = 1; set < NSETS; set++) ADD(GEMM_BACKEND_CLBLAST, {set, 0, 0});
            /* the tiled kernel is shaped for GPUs; a full search tries two on CPUs too */
            for (int i = 0; i < 2; i++)
                ADD(GEMM_BACKEND_TILED, {tiled[i][0], tiled[i][1], tiled[i][2], tiled[i][3]});
        }
    } else {
        /* GPUs: the tiled kernel's variants beside CLBlast's database (the default) */
        for (int i = 0; i < NTILED; i++)
            ADD(GEMM_BACKEND_TILED, {tiled[i][0], tiled[i][1], tiled[i][2], tiled[i][3]});
        ADD(GEMM_BACKEND_CLBLAST, {0, 0, 0});
    }
#undef ADD
    /* a row walk longer than M's row blocks is the same kernel as one of exactly that many */
    for (int i = 0; i < n; i++)
        if (out[i].backend == GEMM_BACKEND_OUTER) {
            size_t blocks = (s->m + (size_t)out[i].p[0] - 1) / (size_t)out[i].p[0];
            if ((size_t)out[i].p[2] > blocks) out[i].p[2] = blocks > 0 ? (int)blocks : 1;
        }
    /* drop repeats (of the default, and of rows that became equal) */
    int w = 1;
    for (int i = 1; i < n; i++) {
        bool dup = false;
        for (int j = 0; j < w && !dup; j++)
            dup = out[j].backend == out[i].backend && memcmp(out[j].p, out[i].p, sizeof out[i].p) == 0;
        if (!dup) out[w++] = out[i];
    }
    return w;
}

int tune_candidates(const graft_context *ctx, const gemm_shape *s, gemm_choice *out, int cap)
{
    return candidates(ctx, s, false, out, cap);
}

#define CLBLAST_MARGIN 1.15

static bool same_choice(const gemm_choice *x, const gemm_choice *y)
{
    return x->backend == y->backend && memcmp(x->p, y->p, sizeof x->p) == 0;
}

graft_status tune_gemm_with(graft_context *ctx, const gemm_shape *s, const tune_options *opt,
                            tune_progress_fn progress, void *user, tune_result *r, graft_error *e)
{
    memset(r, 0, sizeof *r);
    r->shape = *s;
    double t_start = now_seconds();
    bool quick = opt && opt->quick;
    double stop_at = opt && opt->stop_at > 0 ? opt->stop_at : 0;
    double hard_stop = opt && opt->hard_stop > 0 ? opt->hard_stop : 0;
    gemm_choice cand[64];
    int nc = candidates(ctx, s, quick, cand, 64);
    operands o;
    graft_status st = operands_make(ctx, s, &o, e);
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
    double best_t = 0, best_raw = 0;
    int reps = quick ? 3 : 5;
    for (int i = 0; i < nc; i++) {
        /* out of time: what was tried so far decides (the default always is) */
        if (i > 0 && stop_at > 0 && now_seconds() >= stop_at) {
            r->partial = true;
            break;
        }
        graft_error ce = {0};
        double t = 0;
        double cutoff = have_ref && r->default_gflops > 0 ? 3 * flops / r->default_gflops / 1e9 : 0;
        graft_status cs = time_median(ctx, &cand[i], s, &o, reps, cutoff, &t, &ce);
        if (!cs) cs = buffer_read(ctx, o.c[0], 0, have_ref ? got : ref, o.csz * 4, &ce);
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
            best_raw = t;
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
    /* the screening's winner must beat the default head to head, by TUNE_MARGIN */
    if (have_ref && r->tried > 1 && !same_choice(&r->best, &cand[0])) {
        if (hard_stop > 0 && now_seconds() >= hard_stop) {
            r->out_of_time = true; /* nothing stored: the shape keeps the default */
            goto done;
        }
        double td = 0, tc = 0, ratio = 0;
        graft_error ce = {0};
        if (duel(ctx, &cand[0], &r->best, s, &o, quick ? 7 : 9, &td, &tc, &ratio, &ce) ==
                GRAFT_OK &&
            tc > 0 && td > 0) {
            r->default_gflops = flops / td / 1e9;
            double need = r->best.backend == GEMM_BACKEND_CLBLAST ? TUNE_MARGIN * CLBLAST_MARGIN
                                                                   : TUNE_MARGIN;
            if (ratio >= need && td / tc >= need) r->best_gflops = flops / tc / 1e9;
            else r->kept_default = true;
        } else
            r->kept_default = true;
        if (r->kept_default) {
            r->best = cand[0];
            r->best_gflops = r->default_gflops;
        }
    } else if (!same_choice(&r->best, &cand[0])) {
        /* no default to compare with (it failed to run): the best that ran */
        r->best_gflops = best_raw > 0 ? flops / best_raw / 1e9 : 0;
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
        r->stored = true;
    }
done:
    r->seconds = now_seconds() - t_start;
    free(ref);
    free(got);
    operands_free(&o);
    return st;
}

graft_status tune_gemm(graft_context *ctx, const gemm_shape *s, tune_progress_fn progress,
                       void *user, tune_result *r, graft_error *e)
{
    return tune_gemm_with(ctx, s, NULL, progress, user, r, e);
}

/* ---- a recipe's shapes within a budget ---- */

static double shape_flops(const gemm_shape *s)
{
    return 2.0 * (double)s->m * (double)s->n * (double)s->k;
}

static int cmp_flops_desc(const void *x, const void *y)
{
    double a = shape_flops(x), b = shape_flops(y);
    return a > b ? -1 : a < b;
}

int tune_missing(graft_context *ctx, const gemm_shape *shapes, int n, gemm_shape *out)
{
    int w = 0;
    for (int i = 0; i < n; i++) {
        bool tuned = false;
        gemm_choose(ctx, &shapes[i], &tuned);
        if (!tuned) out[w++] = shapes[i];
    }
    qsort(out, (size_t)w, sizeof *out, cmp_flops_desc);
    return w;
}

graft_status tune_shapes(graft_context *ctx, const gemm_shape *shapes, int n, tune_mode mode,
                         double budget_s, tune_progress_fn progress, void *user,
                         tune_summary *sum, graft_error *e)
{
    memset(sum, 0, sizeof *sum);
    if (mode == TUNE_OFF || n <= 0) return GRAFT_OK;
    gemm_shape *todo = malloc((size_t)n * sizeof *todo);
    if (!todo) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    int m = tune_missing(ctx, shapes, n, todo);
    sum->shapes = m;
    double t0 = now_seconds(), end = mode == TUNE_FULL || budget_s <= 0 ? 0 : t0 + budget_s;
    double left_flops = 0;
    for (int i = 0; i < m; i++) left_flops += shape_flops(&todo[i]);
    graft_status st = GRAFT_OK;
    for (int i = 0; i < m; i++) {
        double now = now_seconds();
        if (end > 0 && now >= end) {
            sum->skipped = m - i; /* they keep the default */
            break;
        }
        /* the time left is shared by FLOPs, the biggest shapes first; what one shape leaves
         * unused goes to the next ones. A shape's share only stops new candidates: the head to
         * head with the default still runs, unless the whole budget is gone. */
        tune_options o = {.quick = mode == TUNE_AUTO};
        if (end > 0) {
            double share = (end - now) * shape_flops(&todo[i]) / (left_flops > 0 ? left_flops : 1);
            o.stop_at = now + share;
            o.hard_stop = end;
        }
        left_flops -= shape_flops(&todo[i]);
        tune_result r;
        if ((st = tune_gemm_with(ctx, &todo[i], &o, progress, user, &r, e))) break;
        if (r.stored) {
            sum->tuned++;
            if (!same_choice(&r.best, &r.deflt)) sum->changed++;
        } else
            sum->skipped++;
        if (r.partial) sum->partial++;
    }
    sum->seconds = now_seconds() - t0;
    free(todo);
    return st;
}

graft_status tune_mode_resolve(int recipe_mode, tune_mode *mode, double *budget_s,
                               graft_error *e)
{
    *mode = recipe_mode == TUNE_OFF || recipe_mode == TUNE_FULL ? (tune_mode)recipe_mode
                                                                : TUNE_AUTO;
    *budget_s = TUNE_AUTO_BUDGET;
    const char *env = getenv("GRAFT_TUNE");
    if (!env || !*env) return GRAFT_OK;
    if (strcmp(env, "off") == 0) *mode = TUNE_OFF;
    else if (strcmp(env, "full") == 0) *mode = TUNE_FULL;
    else if (strcmp(env, "auto") == 0) *mode = TUNE_AUTO;
    else {
        char *end;
        double b = strncmp(env, "auto:", 5) == 0 ? strtod(env + 5, &end) : 0;
        if (!(b > 0 && b <= 86400 && end != env + 5 && *end == 0))
            return err_set(e, GRAFT_STATUS_USAGE,
                           "GRAFT_TUNE=%s: expected off, auto, auto:SECONDS (a budget, at most "
                           "86400) or full",
                           env);
        *mode = TUNE_AUTO;
        *budget_s = b;
    }
    return GRAFT_OK;
}

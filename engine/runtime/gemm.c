/* gemm.c — row-major SGEMM through one of three back ends: CLBlast (with a per-shape parameter set
 * applied through CLBlastOverrideParameters), Graft's own CPU kernels in cl/gemm.cl, or the
 * GPU-shaped tiled kernel in cl/gemm_tiled.cl. Which one a shape gets is tune.c's decision
 * (gemm_choose); every launch is recorded for profiling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "ops.h"
#include "tune.h"

#define INT_LIMIT 2147483647u
#define GEMM_EPI_BIAS 16 /* gemm.cl's EPI_BIAS: the epilogue adds a bias (the activation below) */

/* vector width of Graft's kernels: 8 unless p[3] says 16 */
static int vw(const gemm_choice *ch) { return ch->p[3] == 16 ? 16 : 8; }
/* K splits of gemm_inner (1 = none) */
static int ks(const gemm_choice *ch) { return ch->p[2] > 1 ? ch->p[2] : 1; }
#define SCRATCH_LIMIT ((size_t)1 << 26) /* floats of split-K partial products: 256 MiB */
#define TILED_BK 16

bool gemm_choice_fits(const gemm_choice *ch, const gemm_shape *s)
{
    switch (ch->backend) {
    case GEMM_BACKEND_CLBLAST:
        return true;
    case GEMM_BACKEND_OUTER:
        return !s->tb && s->m < INT_LIMIT && s->n < INT_LIMIT && s->k < INT_LIMIT;
    case GEMM_BACKEND_INNER:
        return !s->ta && s->tb && s->m < INT_LIMIT && s->n < INT_LIMIT && s->k < INT_LIMIT &&
               (ks(ch) == 1 || (size_t)ks(ch) * s->m * s->n <= SCRATCH_LIMIT);
    case GEMM_BACKEND_TILED:
        return s->m < INT_LIMIT && s->n < INT_LIMIT && s->k < INT_LIMIT;
    default:
        return false;
    }
}

bool gemm_choice_valid(const gemm_choice *ch)
{
    const int *p = ch->p;
    switch (ch->backend) {
    case GEMM_BACKEND_CLBLAST:
        return p[0] >= 0 && p[0] < tune_clblast_sets();
    case GEMM_BACKEND_OUTER:
        return p[0] >= 1 && p[0] <= 16 && p[1] >= 1 && p[1] <= 4 && p[2] >= 1 && p[2] <= 1024 &&
               (p[3] == 8 || p[3] == 16);
    case GEMM_BACKEND_INNER:
        return p[0] >= 1 && p[0] <= 8 && p[1] >= 1 && p[1] <= 8 && p[2] >= 1 && p[2] <= 1024 &&
               (p[3] == 8 || p[3] == 16);
    case GEMM_BACKEND_TILED:
        /* TX, TY of 8 or 16 split the BK = 16 tiles evenly over the work-group (gemm_tiled.cl) */
        return (p[0] == 8 || p[0] == 16) && (p[1] == 8 || p[1] == 16) && p[2] >= 1 && p[2] <= 8 &&
               p[3] >= 1 && p[3] <= 8;
    default:
        return false;
    }
}

/* bytes of __local the tiled kernel declares: (BK x (BM+1) + BK x (BN+1)) floats */
static size_t tiled_local_bytes(const gemm_choice *ch)
{
    return (size_t)TILED_BK * ((size_t)ch->p[1] * ch->p[2] + 1 + (size_t)ch->p[0] * ch->p[3] + 1) *
           sizeof(float);
}

int gemm_tiled_splits(const graft_context *ctx, const gemm_choice *ch, size_t m, size_t n,
                      size_t k, int *kc)
{
    /* few tiles and a long K: split K so that the tiles times the ranges fill the device's cores
     * four times over, with ranges of at least 128 (8 BK steps) and at most 64 of them */
    size_t bm = (size_t)ch->p[1] * ch->p[2], bn = (size_t)ch->p[0] * ch->p[3];
    size_t tiles = ((m + bm - 1) / bm) * ((n + bn - 1) / bn);
    size_t cu = ctx->info.compute_units > 0 ? ctx->info.compute_units : 1;
    size_t s = 1;
    if (ch->backend == GEMM_BACKEND_TILED && tiles > 0 && tiles < 2 * cu && k >= 256) {
        s = (4 * cu + tiles - 1) / tiles;
        if (s > k / 128) s = k / 128;
        if (s > 64) s = 64;
        while (s > 1 && s * m * n > SCRATCH_LIMIT) s /= 2;
    }
    size_t c = k;
    if (s > 1) {
        c = ((k + s - 1) / s + TILED_BK - 1) / TILED_BK * TILED_BK;
        s = (k + c - 1) / c;
    }
    if (kc) *kc = (int)c;
    return (int)s;
}

bool gemm_choice_fits_device(const graft_context *ctx, const gemm_choice *ch)
{
    if (ch->backend != GEMM_BACKEND_TILED) return true;
    size_t wg = (size_t)ch->p[0] * (size_t)ch->p[1];
    return wg <= ctx->info.max_work_group_size && tiled_local_bytes(ch) <= ctx->info.local_mem_bytes;
}

void gemm_choice_describe(const gemm_choice *ch, char *buf, size_t n)
{
    switch (ch->backend) {
    case GEMM_BACKEND_CLBLAST: {
        char sets[256];
        tune_clblast_describe(ch->p[0], sets, sizeof sets);
        snprintf(buf, n, "clblast:%d (%s)", ch->p[0], sets);
        break;
    }
    case GEMM_BACKEND_OUTER:
        snprintf(buf, n, "outer:%d,%d,%d,%d (graft gemm_outer MR=%d NR=%d MT=%d)", ch->p[0],
                 ch->p[1], ch->p[2], vw(ch), ch->p[0], ch->p[1] * vw(ch), ch->p[2]);
        break;
    case GEMM_BACKEND_INNER:
        snprintf(buf, n, "inner:%d,%d,%d,%d (graft gemm_inner MR=%d NC=%d KS=%d, float%d)",
                 ch->p[0], ch->p[1], ks(ch), vw(ch), ch->p[0], ch->p[1], ks(ch), vw(ch));
        break;
    case GEMM_BACKEND_TILED:
        snprintf(buf, n, "tiled:%d,%d,%d,%d (graft gemm_tiled %dx%d work-items, %dx%d tile)",
                 ch->p[0], ch->p[1], ch->p[2], ch->p[3], ch->p[0], ch->p[1], ch->p[1] * ch->p[2],
                 ch->p[0] * ch->p[3]);
        break;
    default:
        snprintf(buf, n, "unknown back end %d", (int)ch->backend);
    }
}

/* "NAME:v1,v2,..." -> up to 4 integers; the count read, or -1 when the text is not of that form */
static int parse_ints(const char *text, const char *name, int *v)
{
    size_t l = strlen(name);
    if (strncmp(text, name, l) != 0 || text[l] != ':') return -1;
    const char *p = text + l + 1;
    int n = 0;
    while (n < 4) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 4096) return -1;
        v[n++] = (int)x;
        if (*end == 0) return n;
        if (*end != ',') return -1;
        p = end + 1;
    }
    return -1;
}

graft_status gemm_choice_parse(const char *text, gemm_choice *out, graft_error *e)
{
    static const struct {
        const char *name, *form;
        gemm_backend backend;
        int min_count;
        int defaults[4];
    } forms[] = {
        {"clblast", "clblast[:SET] with SET 0 to the last parameter set", GEMM_BACKEND_CLBLAST, 1,
         {0, 0, 0, 0}},
        {"outer", "outer:MR,NV[,MT[,VW]] with MR 1-16, NV 1-4, MT 1-1024, VW 8 or 16",
         GEMM_BACKEND_OUTER, 2, {0, 0, 1, 8}},
        {"inner", "inner:MR,NC[,KS[,VW]] with MR 1-8, NC 1-8, KS 1-1024, VW 8 or 16",
         GEMM_BACKEND_INNER, 2, {0, 0, 1, 8}},
        {"tiled", "tiled:TX,TY,RM,RN with TX, TY 8 or 16 and RM, RN 1-8", GEMM_BACKEND_TILED, 4,
         {0, 0, 0, 0}},
    };
    memset(out, 0, sizeof *out);
    if (strcmp(text, "clblast") == 0) {
        out->backend = GEMM_BACKEND_CLBLAST;
        return GRAFT_OK;
    }
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        int v[4];
        memcpy(v, forms[i].defaults, sizeof v);
        int n = parse_ints(text, forms[i].name, v);
        if (n == -1 && strncmp(text, forms[i].name, strlen(forms[i].name)) != 0) continue;
        gemm_choice ch = {forms[i].backend, {v[0], v[1], v[2], v[3]}};
        if (n < forms[i].min_count || (forms[i].backend == GEMM_BACKEND_CLBLAST && n != 1) ||
            !gemm_choice_valid(&ch)) {
            if (forms[i].backend == GEMM_BACKEND_CLBLAST)
                return err_set(e, GRAFT_STATUS_USAGE, "%s: expected a CLBlast parameter set 0 to %d",
                               text, tune_clblast_sets() - 1);
            return err_set(e, GRAFT_STATUS_USAGE, "%s: expected %s", text, forms[i].form);
        }
        *out = ch;
        return GRAFT_OK;
    }
    return err_set(e, GRAFT_STATUS_USAGE,
                   "unknown GEMM kernel '%s': expected clblast[:SET], outer:MR,NV[,MT[,VW]], "
                   "inner:MR,NC[,KS[,VW]] or tiled:TX,TY,RM,RN",
                   text);
}

static graft_status run_clblast(graft_context *ctx, int set, bool trans_a, bool trans_b, size_t m,
                                size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                                size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta,
                                cl_mem c, size_t c_off, size_t ldc, graft_error *e)
{
    /* CLBlast keeps one parameter set per device and kernel, process-wide; its compiled programs
     * are keyed by the parameter values, so switching sets between calls is safe and, once each
     * set is compiled, cheap. Set 0 leaves CLBlast's own database alone. */
    graft_status st;
    if (set > 0 && (st = tune_clblast_apply(ctx, set, e))) return st;
    cl_event *rec = prof_next_event(ctx);
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor,
                                       trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                                       trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k,
                                       alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc,
                                       &ctx->queue, rec);
    if (s != CLBlastSuccess)
        return err_set(e, GRAFT_STATUS_OPENCL,
                       "CLBlast SGEMM %zux%zux%zu (trans %d/%d, ld %zu/%zu/%zu, parameter set %d) "
                       "failed: status %d",
                       m, n, k, trans_a, trans_b, lda, ldb, ldc, set, (int)s);
    return GRAFT_OK;
}

/* The kernel of a choice of Graft's kernels (not CLBlast), its program's source and build
 * options (opts); the split-K reduction is in the same program. */
static const char *gemm_kernel_of(const gemm_choice *ch, bool trans_a, bool trans_b, char *opts,
                                  size_t n, const char **source)
{
    *source = "gemm";
    if (ch->backend == GEMM_BACKEND_TILED) {
        snprintf(opts, n, "-DTX=%d -DTY=%d -DRM=%d -DRN=%d -DBK=%d -DTA=%d -DTB=%d", ch->p[0],
                 ch->p[1], ch->p[2], ch->p[3], TILED_BK, trans_a ? 1 : 0, trans_b ? 1 : 0);
        return *source = "gemm_tiled";
    }
    if (ch->backend == GEMM_BACKEND_OUTER) {
        snprintf(opts, n, "-DMR=%d -DNV=%d -DVW=%d -DTA=%d", ch->p[0], ch->p[1], vw(ch),
                 trans_a ? 1 : 0);
        return "gemm_outer";
    }
    /* KS is an argument (as gemm_outer's MT): one program serves every split */
    snprintf(opts, n, "-DMR=%d -DNC=%d -DVW=%d", ch->p[0], ch->p[1], vw(ch));
    return "gemm_inner";
}

/* On a device that ends a work-item's loops after so many iterations in all (ctx->loop_limit:
 * Mesa's llvmpipe), a launch of Graft's kernels keeps every work-item within half of it, each
 * loop counted as written (llvmpipe's compiler unrolls some: a gemm_inner step of K of 4 x 2
 * dot products took 18.5 of its iterations, 24 counted here). A work-item's loops per step of K
 * along its tile: */
static long loops_per_k(const gemm_choice *ch)
{
    long mr = ch->p[0];
    switch (ch->backend) {
    case GEMM_BACKEND_OUTER: { /* the edge tile's copy and vector loads, A's rows, the FMAs */
        long nv = ch->p[1];
        return 2 + nv * vw(ch) + 2 * nv + mr * (1 + nv);
    }
    case GEMM_BACKEND_INNER: { /* a step of VW: B's loads, A's rows, the FMAs */
        long nc = ch->p[1];
        return (1 + nc + mr * (1 + nc) + vw(ch) - 1) / vw(ch) + 1;
    }
    case GEMM_BACKEND_TILED: /* the local tiles' loads, then RM + RN reads and RM x RN FMAs */
        return 3 + ch->p[2] + ch->p[3] + (long)ch->p[2] * (1 + ch->p[3]);
    default:
        return 0;
    }
}

/* The longest K a launch of ch may take on a loop-limited device (0: any); an OUTER walk of *mt
 * row blocks down a K of k is first shortened to fit. A range of a split K walks one tile there
 * (gemm_launch). */
static size_t loop_bounded_k(const graft_context *ctx, const gemm_choice *ch, size_t k, int *mt)
{
    long per = loops_per_k(ch);
    if (ctx->loop_limit <= 0 || per == 0) return 0;
    /* the other half: each tile's set-up and stores, and what the count leaves out */
    long budget = ctx->loop_limit / 2 > per ? ctx->loop_limit / 2 : per;
    size_t kmax = (size_t)(budget / per);
    if (ch->backend == GEMM_BACKEND_OUTER) {
        size_t fit = k > 0 ? kmax / k : kmax;
        if ((size_t)*mt > fit) *mt = fit > 1 ? (int)fit : 1;
        return kmax / (size_t)*mt;
    }
    return ch->backend == GEMM_BACKEND_INNER ? kmax * (size_t)ks(ch) : kmax;
}

static graft_status gemm_launch(graft_context *ctx, const gemm_choice *ch, bool trans_a,
                                bool trans_b, size_t m, size_t n, size_t k, float alpha, cl_mem a,
                                size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb,
                                float beta, cl_mem c, size_t c_off, size_t ldc,
                                const gemm_epilogue *ep, bool *applied, graft_error *e);

/* gemm_run with an optional output epilogue, which Graft's gemm_inner applies as it writes C (or
 * its gemm_reduce, after a split K); *applied says whether it did (the other back ends leave it
 * to the caller). */
static graft_status gemm_go(graft_context *ctx, const gemm_choice *ch, bool trans_a, bool trans_b,
                            size_t m, size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                            size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta, cl_mem c,
                            size_t c_off, size_t ldc, const gemm_epilogue *ep, bool *applied,
                            graft_error *e)
{
    if (applied) *applied = false;
    if (m == 0 || n == 0) return GRAFT_OK;
    gemm_shape shape = {.ta = trans_a, .tb = trans_b, .m = m, .n = n, .k = k};
    if (!gemm_choice_fits(ch, &shape)) {
        char d[320];
        gemm_choice_describe(ch, d, sizeof d);
        return err_set(e, GRAFT_STATUS_INTERNAL, "GEMM kernel %s cannot run %zux%zux%zu (trans %d/%d)",
                       d, m, n, k, trans_a, trans_b);
    }
    if (ch->backend == GEMM_BACKEND_CLBLAST) {
        cost_count_gemm(ctx, m, n, k, beta, 1);
        return run_clblast(ctx, ch->p[0], trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off,
                           ldb, beta, c, c_off, ldc, e);
    }
    /* a loop-limited device: K in pieces short enough, accumulated into C (beta 1 after the
     * first), the epilogue applied by the last */
    int mt = ch->p[2] > 1 ? ch->p[2] : 1;
    size_t kmax = loop_bounded_k(ctx, ch, k, &mt);
    if (kmax == 0 || k <= kmax)
        return gemm_launch(ctx, ch, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb,
                           beta, c, c_off, ldc, ep, applied, e);
    for (size_t k0 = 0; k0 < k; k0 += kmax) {
        size_t kn = k - k0 < kmax ? k - k0 : kmax;
        bool last = k0 + kn == k;
        graft_status st = gemm_launch(
            ctx, ch, trans_a, trans_b, m, n, kn, alpha, a, a_off + (trans_a ? k0 * lda : k0), lda,
            b, b_off + (trans_b ? k0 : k0 * ldb), ldb, k0 ? 1.0f : beta, c, c_off, ldc,
            last ? ep : NULL, last ? applied : NULL, e);
        if (st) return st;
    }
    return GRAFT_OK;
}

/* One launch of Graft's kernels (and the reduction of a split K). */
static graft_status gemm_launch(graft_context *ctx, const gemm_choice *ch, bool trans_a,
                                bool trans_b, size_t m, size_t n, size_t k, float alpha, cl_mem a,
                                size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb,
                                float beta, cl_mem c, size_t c_off, size_t ldc,
                                const gemm_epilogue *ep, bool *applied, graft_error *e)
{
    if (applied) *applied = false;
    cost_count_gemm(ctx, m, n, k, beta, 0);
    if (ldc > INT_LIMIT || lda > INT_LIMIT || ldb > INT_LIMIT)
        return err_set(e, GRAFT_STATUS_INTERNAL, "GEMM leading dimension past 2^31");
    char opts[128];
    const char *source, *name = gemm_kernel_of(ch, trans_a, trans_b, opts, sizeof opts,
                                           &source);
    size_t global[3];
    size_t local[3] = {1, 1, 1};
    int dims = 2, splits = 1, tiled_kc = 0;
    cl_int outer_mt = 0;
    if (ch->backend == GEMM_BACKEND_TILED) {
        if (!gemm_choice_fits_device(ctx, ch)) {
            char d[320];
            gemm_choice_describe(ch, d, sizeof d);
            return err_set(e, GRAFT_STATUS_OPENCL,
                           "GEMM kernel %s needs %zu work-items and %zu bytes of local memory; the "
                           "device allows %zu and %llu",
                           d, (size_t)ch->p[0] * ch->p[1], tiled_local_bytes(ch),
                           ctx->info.max_work_group_size,
                           (unsigned long long)ctx->info.local_mem_bytes);
        }
        int tx = ch->p[0], ty = ch->p[1], rm = ch->p[2], rn = ch->p[3];
        /* whole work-groups: the kernel guards the edges itself */
        size_t bm = (size_t)ty * rm, bn = (size_t)tx * rn;
        global[0] = (n + bn - 1) / bn * (size_t)tx;
        global[1] = (m + bm - 1) / bm * (size_t)ty;
        local[0] = (size_t)tx;
        local[1] = (size_t)ty;
        splits = gemm_tiled_splits(ctx, ch, m, n, k, &tiled_kc);
        global[2] = (size_t)splits;
        dims = 3;
    } else if (ch->backend == GEMM_BACKEND_OUTER) {
        int mr = ch->p[0], nr = ch->p[1] * vw(ch), mt = ch->p[2] > 1 ? ch->p[2] : 1;
        loop_bounded_k(ctx, ch, k, &mt); /* a loop-limited device: a walk it can finish */
        outer_mt = mt; /* an argument: one program serves every MT */
        global[0] = (n + nr - 1) / nr;
        global[1] = (m + (size_t)mr * mt - 1) / ((size_t)mr * mt);
    } else {
        int mr = ch->p[0], nc = ch->p[1];
        splits = ks(ch);
        /* split K: a work-item walks every column tile, or one on a loop-limited device */
        global[0] = splits > 1 && !ctx->loop_limit ? 1 : (n + nc - 1) / nc;
        global[1] = (m + mr - 1) / mr;
        global[2] = (size_t)splits;
        if (splits > 1) dims = 3;
    }
    cl_kernel kern;
    graft_status st = kernel_get(ctx, source, opts, name, &kern, e);
    if (st) return st;
    /* the compiled kernel may allow fewer work-items than the device (registers, local memory);
     * its CL_KERNEL_WORK_GROUP_SIZE only explains a failed launch, since rusticl 22.3 reports 32
     * for kernels it then runs with 256 */
    size_t kwg = 0;
    if (ch->backend == GEMM_BACKEND_TILED &&
        clGetKernelWorkGroupInfo(kern, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg,
                                 NULL) != CL_SUCCESS)
        kwg = 0;
    /* split K: the partial products go to a scratch buffer released right after the launches
     * are enqueued (OpenCL frees it once the commands using it have finished) */
    cl_mem part = NULL;
    cl_mem cbuf = c;
    float kalpha = alpha, kbeta = beta;
    size_t kcoff = c_off, kldc = ldc;
    if (splits > 1) {
        if ((st = buffer_create(ctx, (size_t)splits * m * n * sizeof(float), &part, e))) return st;
        cbuf = part;
        kalpha = 1.0f;
        kbeta = 0.0f;
        kcoff = 0;
        kldc = n;
    }
    cl_int im = (cl_int)m, in = (cl_int)n, ik = (cl_int)k;
    cl_int ilda = (cl_int)lda, ildb = (cl_int)ldb, ildc = (cl_int)kldc;
    cl_long ao = (cl_long)a_off, bo = (cl_long)b_off, co = (cl_long)kcoff;
    cl_int rc = 0;
    rc |= kernel_arg(kern, 0, sizeof im, &im);
    rc |= kernel_arg(kern, 1, sizeof in, &in);
    rc |= kernel_arg(kern, 2, sizeof ik, &ik);
    rc |= kernel_arg(kern, 3, sizeof kalpha, &kalpha);
    rc |= kernel_arg(kern, 4, sizeof a, &a);
    rc |= kernel_arg(kern, 5, sizeof ao, &ao);
    rc |= kernel_arg(kern, 6, sizeof ilda, &ilda);
    rc |= kernel_arg(kern, 7, sizeof b, &b);
    rc |= kernel_arg(kern, 8, sizeof bo, &bo);
    rc |= kernel_arg(kern, 9, sizeof ildb, &ildb);
    rc |= kernel_arg(kern, 10, sizeof kbeta, &kbeta);
    rc |= kernel_arg(kern, 11, sizeof cbuf, &cbuf);
    rc |= kernel_arg(kern, 12, sizeof co, &co);
    rc |= kernel_arg(kern, 13, sizeof ildc, &ildc);
    /* gemm_inner's epilogue: the activation | GEMM_EPI_BIAS */
    cl_mem ebias = ep ? ep->bias : NULL;
    cl_int epi = ep ? (cl_int)(ep->act.kind | (ep->bias ? GEMM_EPI_BIAS : 0)) : 0;
    cl_float eslope = ep ? ep->act.slope : 0.0f;
    bool inner = ch->backend == GEMM_BACKEND_INNER;
    if (inner) {
        rc |= kernel_arg(kern, 14, sizeof ebias, &ebias);
        rc |= kernel_arg(kern, 15, sizeof epi, &epi);
        rc |= kernel_arg(kern, 16, sizeof eslope, &eslope);
        cl_int iks = splits;
        rc |= kernel_arg(kern, 17, sizeof iks, &iks);
    }
    if (outer_mt) rc |= kernel_arg(kern, 14, sizeof outer_mt, &outer_mt);
    if (ch->backend == GEMM_BACKEND_TILED)
        rc |= kernel_arg(kern, 14, sizeof tiled_kc, &tiled_kc);
    if (rc != CL_SUCCESS) {
        st = err_set(e, GRAFT_STATUS_OPENCL, "setting the arguments of %s failed", name);
        goto done;
    }
    if ((st = launch(ctx, kern, dims, global, local, NULL, e))) {
        if (kwg && kwg < local[0] * local[1]) {
            char msg[sizeof e->message];
            snprintf(msg, sizeof msg, "%s", e->message);
            st = err_set(e, st, "%s (the compiled kernel allows %zu work-items per work-group, "
                                "%zu asked)",
                         msg, kwg, local[0] * local[1]);
        }
        goto done;
    }
    if (applied) *applied = inner && epi;
    if (splits == 1) goto done;
    /* sum the partial products: gemm_tiled_reduce a work-item per element of C, the CPU kernels'
     * gemm_reduce a work-item per row */
    bool tiled = ch->backend == GEMM_BACKEND_TILED;
    const char *rname = tiled ? "gemm_tiled_reduce" : "gemm_reduce";
    cl_kernel red;
    if ((st = kernel_get(ctx, tiled ? source : "gemm", opts, rname, &red, e))) goto done;
    cl_int is = splits, ildc2 = (cl_int)ldc;
    cl_long cof = (cl_long)c_off;
    cl_uint q = 0;
    rc = 0;
    rc |= kernel_arg(red, q++, sizeof im, &im);
    rc |= kernel_arg(red, q++, sizeof in, &in);
    if (tiled) rc |= kernel_arg(red, q++, sizeof is, &is);
    rc |= kernel_arg(red, q++, sizeof alpha, &alpha);
    rc |= kernel_arg(red, q++, sizeof part, &part);
    rc |= kernel_arg(red, q++, sizeof beta, &beta);
    rc |= kernel_arg(red, q++, sizeof c, &c);
    rc |= kernel_arg(red, q++, sizeof cof, &cof);
    rc |= kernel_arg(red, q++, sizeof ildc2, &ildc2);
    if (!tiled) {
        rc |= kernel_arg(red, q++, sizeof ebias, &ebias);
        rc |= kernel_arg(red, q++, sizeof epi, &epi);
        rc |= kernel_arg(red, q++, sizeof eslope, &eslope);
        rc |= kernel_arg(red, q++, sizeof is, &is);
    }
    if (rc != CL_SUCCESS) {
        st = err_set(e, GRAFT_STATUS_OPENCL, "setting the arguments of %s failed", rname);
        goto done;
    }
    /* gemm_reduce: a work-item walks a row of C, or one element on a loop-limited device */
    size_t rg[2] = {tiled ? n : m, tiled ? m : ctx->loop_limit ? n : 1}, rl[2] = {1, 1};
    st = launch(ctx, red, 2, rg, tiled ? NULL : rl, NULL, e);
done:
    if (part) clReleaseMemObject(part);
    return st;
}

graft_status gemm_run(graft_context *ctx, const gemm_choice *ch, bool trans_a, bool trans_b,
                      size_t m, size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                      size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta, cl_mem c,
                      size_t c_off, size_t ldc, graft_error *e)
{
    return gemm_go(ctx, ch, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                   c, c_off, ldc, NULL, NULL, e);
}

/* The kernel gemm() runs for a shape: the tuned or default choice, or CLBlast past what Graft's
 * kernels index with 32-bit ints (with the device's CPU set on CPUs, its database elsewhere). */
static gemm_choice choice_for(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n,
                              size_t k)
{
    gemm_shape s = {.ta = trans_a, .tb = trans_b, .m = m, .n = n, .k = k};
    gemm_choice ch = gemm_choose(ctx, &s, NULL);
    if (!gemm_choice_fits(&ch, &s))
        ch = (gemm_choice){GEMM_BACKEND_CLBLAST,
                           {ctx->info.type == GRAFT_DEVICE_CPU ? 1 : 0, 0, 0, 0}};
    return ch;
}

graft_status gemm_epi(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                      size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc,
                      const gemm_epilogue *ep, bool *applied, graft_error *e)
{
    if (applied) *applied = false;
    if (m == 0 || n == 0) return GRAFT_OK;
    gemm_choice ch = choice_for(ctx, trans_a, trans_b, m, n, k);
    return gemm_go(ctx, &ch, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                   c, c_off, ldc, ep, applied, e);
}

graft_status gemm_prepare(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n,
                          size_t k, graft_error *e)
{
    if (m == 0 || n == 0) return GRAFT_OK;
    gemm_choice ch = choice_for(ctx, trans_a, trans_b, m, n, k);
    if (ch.backend == GEMM_BACKEND_CLBLAST ||
        (ch.backend == GEMM_BACKEND_TILED && !gemm_choice_fits_device(ctx, &ch)))
        return GRAFT_OK; /* CLBlast builds its own; a misfit fails where it runs */
    char opts[128];
    const char *source, *name = gemm_kernel_of(&ch, trans_a, trans_b, opts, sizeof opts, &source);
    cl_kernel k_;
    return kernel_get(ctx, source, opts, name, &k_, e);
}

graft_status gemm(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                  float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                  size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc, graft_error *e)
{
    return gemm_epi(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                    c_off, ldc, NULL, NULL, e);
}

/* test_pool.c — max (argmax indexes, padding that never wins), average (count_include_pad) and
 * global-average pooling, forward and backward, on the test device against a double-precision
 * reference written here (scatter-form backward), whose gradients are checked first by central
 * finite differences. */
#include "opcheck.h"

#include <stdlib.h>

typedef struct pool_case {
    const char *name;
    pool_kind kind;
    int n, nsmall, c, h, w, kh, kw, sh, sw, ph, pw;
    double lo, hi; /* input range: all-negative inputs show that padding never wins a max */
} pool_case;

static const pool_case full_cases[] = {
    {"max 2x2 s2, odd size", POOL_MAX, 3, 2, 3, 7, 9, 2, 2, 2, 2, 0, 0, -1, 1},
    {"max 3x3 s2 p1 (stem), negative", POOL_MAX, 2, 1, 5, 11, 10, 3, 3, 2, 2, 1, 1, -2, -1},
    {"max 3x3 s1 p1, negative", POOL_MAX, 2, 1, 3, 6, 7, 3, 3, 1, 1, 1, 1, -2, -1},
    {"max 2x3 s1x2 p1x1 (asymmetric)", POOL_MAX, 2, 1, 2, 7, 8, 2, 3, 1, 2, 1, 1, -1, 1},
    {"max 3x3 s3, batch 1", POOL_MAX, 1, 1, 6, 9, 9, 3, 3, 3, 3, 0, 0, -1, 1},
    {"avg 2x2 s2", POOL_AVG, 3, 2, 3, 8, 9, 2, 2, 2, 2, 0, 0, -1, 1},
    {"avg 3x3 s2 p1 (count_include_pad)", POOL_AVG, 2, 1, 5, 9, 8, 3, 3, 2, 2, 1, 1, -1, 1},
    {"avg 3x2 s1x2 p1x1 (asymmetric)", POOL_AVG, 2, 1, 3, 6, 7, 3, 2, 1, 2, 1, 1, -1, 1},
    {"global avg 7x7", POOL_GLOBAL_AVG, 3, 1, 5, 7, 7, 0, 0, 0, 0, 0, 0, -1, 1},
    {"global avg 3x5", POOL_GLOBAL_AVG, 2, 1, 3, 3, 5, 0, 0, 0, 0, 0, 0, -1, 1},
    {"fmnist pool1 32x28x28", POOL_MAX, 64, 17, 32, 28, 28, 2, 2, 2, 2, 0, 0, -1, 1},
    {"fmnist pool2 64x14x14", POOL_MAX, 64, 1, 64, 14, 14, 2, 2, 2, 2, 0, 0, -1, 1},
};
static const pool_case small_cases[] = {
    {"max 2x2 s2 (tiling windows), odd size", POOL_MAX, 2, 1, 2, 5, 7, 2, 2, 2, 2, 0, 0, -1, 1},
    {"max 2x2 s2 (tiling windows), rows of 11", POOL_MAX, 2, 1, 2, 6, 11, 2, 2, 2, 2, 0, 0, -1, 1},
    {"max 3x3 s2 p1, negative", POOL_MAX, 2, 1, 2, 5, 6, 3, 3, 2, 2, 1, 1, -2, -1},
    {"avg 3x3 s2 p1", POOL_AVG, 2, 1, 2, 5, 5, 3, 3, 2, 2, 1, 1, -1, 1},
    {"global avg", POOL_GLOBAL_AVG, 2, 1, 3, 3, 4, 0, 0, 0, 0, 0, 0, -1, 1},
};

typedef struct geom {
    pool_kind kind;
    int n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
} geom;

static geom geom_of(const pool_case *k, int n)
{
    geom g = {k->kind, n, k->c, k->h, k->w, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw, 0, 0};
    if (k->kind == POOL_GLOBAL_AVG) g.kh = g.h, g.kw = g.w, g.sh = g.sw = 1, g.ph = g.pw = 0;
    g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
    g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
    return g;
}

/* Forward; for max also the winner's index within its plane (first on ties). */
static void ref_fwd(const geom *g, const double *x, double *y, int *arg)
{
    for (int pl = 0; pl < g->n * g->c; pl++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double best = 0, sum = 0;
                int at = -1;
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        int iy = oy * g->sh - g->ph + ky, ix = ox * g->sw - g->pw + kx;
                        if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                        double v = x[((long)pl * g->h + iy) * g->w + ix];
                        sum += v;
                        /* PyTorch's CPU rule: a NaN wins (the window's last NaN) */
                        if (at < 0 || v > best || isnan(v)) best = v, at = iy * g->w + ix;
                    }
                long o = ((long)pl * g->oh + oy) * g->ow + ox;
                y[o] = g->kind == POOL_MAX ? best : sum / (g->kh * g->kw);
                if (arg) arg[o] = at;
            }
}

static void ref_bwd(const geom *g, const double *dy, const int *arg, double *dx)
{
    memset(dx, 0, sizeof(double) * (size_t)g->n * g->c * g->h * g->w);
    for (int pl = 0; pl < g->n * g->c; pl++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                long o = ((long)pl * g->oh + oy) * g->ow + ox;
                if (g->kind == POOL_MAX) {
                    dx[(long)pl * g->h * g->w + arg[o]] += dy[o];
                    continue;
                }
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        int iy = oy * g->sh - g->ph + ky, ix = ox * g->sw - g->pw + kx;
                        if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                        dx[((long)pl * g->h + iy) * g->w + ix] += dy[o] / (g->kh * g->kw);
                    }
            }
}

/* Central differences of L = sum(y * dy) at 16 random inputs, normalised by the largest gradient.
 * Random continuous inputs have no ties, so a step of 1e-6 never changes a max window's winner. */
static double fd_check(const geom *g, double *x, const double *dy, const double *dx)
{
    long nx = (long)g->n * g->c * g->h * g->w, ny = (long)g->n * g->c * g->oh * g->ow;
    double *y = malloc(sizeof(double) * (size_t)ny);
    double maxg = 1e-12, maxd = 0, h = 1e-6;
    for (long i = 0; i < nx; i++)
        maxg = fmax(maxg, fabs(dx[i]));
    for (int r = 0; r < 16; r++) {
        long j = (long)(oc_uniform() * (double)nx);
        double keep = x[j], l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            x[j] = keep + (sgn ? -h : h);
            ref_fwd(g, x, y, NULL);
            l[sgn] = 0;
            for (long q = 0; q < ny; q++)
                l[sgn] += y[q] * dy[q];
        }
        x[j] = keep;
        maxd = fmax(maxd, fabs((l[0] - l[1]) / (2 * h) - dx[j]));
    }
    free(y);
    return maxd / maxg;
}

/* Elements past the first `valid` must still hold the NaN poison. */
static int untouched(const float *p, long valid, long total)
{
    for (long i = valid; i < total; i++)
        if (!isnan(p[i])) return 0;
    return 1;
}

static double *to_double(const float *p, long n)
{
    double *d = calloc((size_t)n, sizeof(double));
    for (long i = 0; i < n; i++)
        d[i] = p[i];
    return d;
}

static void run_case(graft_context *ctx, const pool_case *k)
{
    geom g = geom_of(k, k->n);
    long nx = (long)g.n * g.c * g.h * g.w, ny = (long)g.n * g.c * g.oh * g.ow;
    printf("case %s: n %d (then %d), %dx%dx%d -> %dx%d, window %dx%d, stride %dx%d, pad %dx%d\n",
           k->name, g.n, k->nsmall, g.c, g.h, g.w, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw);
    float *xf = malloc(sizeof(float) * nx), *dyf = malloc(sizeof(float) * ny);
    oc_fill(xf, nx, k->lo, k->hi);
    oc_fill(dyf, ny, -1, 1);
    double *x = to_double(xf, nx), *dy = to_double(dyf, ny);
    double *y = malloc(sizeof(double) * ny), *dx = malloc(sizeof(double) * nx);
    int *arg = malloc(sizeof(int) * ny);
    ref_fwd(&g, x, y, arg);
    ref_bwd(&g, dy, arg, dx);
    double efd = fd_check(&g, x, dy, dx);
    printf("  %-40s rel.err %.2e (tol 1e-06)\n", "reference vs finite diff dx", efd);
    CHECKF(efd < 1e-6, "%s: finite differences", k->name);

    pool_op op;
    graft_error e = {0};
    if (pool_op_init(ctx, &op, k->kind, k->c, k->h, k->w, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw,
                     &e)) {
        CHECKF(0, "%s: pool_op_init: %s", k->name, e.message);
        goto done;
    }
    CHECK(op.oh == g.oh && op.ow == g.ow);
    cl_mem bx = oc_buffer(ctx, xf, nx), bdy = oc_buffer(ctx, dyf, ny);
    cl_mem by = oc_buffer(ctx, NULL, ny), bdx = oc_buffer(ctx, NULL, nx);
    cl_mem bidx = NULL;
    if (k->kind == POOL_MAX)
        bidx = oc_buffer(ctx, NULL, ny); /* int-sized, poisoned with NaN bits */
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? k->nsmall : g.n;
        if (pass && n == g.n) break;
        geom gn = geom_of(k, n);
        long nyn = (long)n * g.c * g.oh * g.ow, nxn = (long)n * g.c * g.h * g.w;
        if (pass) {
            ref_fwd(&gn, x, y, arg);
            ref_bwd(&gn, dy, arg, dx);
        }
        char what[64];
        oc_poison(ctx, by, ny);
        if (bidx) oc_poison(ctx, bidx, ny);
        CHECK_OK(pool_fwd(ctx, &op, n, bx, by, bidx, err));
        float *got = oc_read(ctx, by, ny);
        snprintf(what, sizeof what, "n=%d forward", n);
        CHECK_CLOSE(what, got, y, nyn, 1e-5);
        CHECKF(untouched(got, nyn, ny), "%s: forward wrote past sample %d", k->name, n);
        free(got);
        if (bidx) {
            int *gi = malloc(sizeof(int) * ny);
            CHECK_OK(buffer_read(ctx, bidx, 0, gi, sizeof(int) * ny, err));
            long bad = 0;
            for (long i = 0; i < nyn; i++)
                bad += gi[i] != arg[i];
            printf("  %-40s %ld of %ld differ\n", "argmax indexes", bad, nyn);
            CHECKF(bad == 0, "%s: %ld argmax indexes differ", k->name, bad);
            free(gi);
        }
        oc_poison(ctx, bdx, nx);
        CHECK_OK(pool_bwd(ctx, &op, n, bdy, bidx, bdx, err));
        got = oc_read(ctx, bdx, nx);
        snprintf(what, sizeof what, "n=%d backward", n);
        CHECK_CLOSE(what, got, dx, nxn, 1e-5);
        CHECKF(untouched(got, nxn, nx), "%s: backward wrote past sample %d", k->name, n);
        free(got);
    }
    pool_op_free(&op);
    clReleaseMemObject(bx), clReleaseMemObject(bdy), clReleaseMemObject(by);
    clReleaseMemObject(bdx);
    if (bidx) clReleaseMemObject(bidx);
done:
    free(xf), free(dyf), free(x), free(dy), free(y), free(dx), free(arg);
}

/* A NaN in a max window wins, as in PyTorch's CPU kernel (v > m || isnan(v)): the output is NaN
 * and the index is that of the window's last NaN; a NaN stays once taken, and windows without one
 * are untouched by it. Ties go to the first candidate (row by row, left to right), and a window of
 * -inf keeps its first position. One 4x4 plane against ref_fwd, 2x2 windows at stride 2 (the
 * tiling form) and 3x3 at stride 1 with padding 1 (the bounds-tested form), and a 4x10 plane at
 * 2x2 stride 2: five outputs a row, four from pool.cl's float8 path, one from its scalar tail. */
static void nan_wins(graft_context *ctx)
{
    printf("case max pooling with NaN inputs, ties and -inf windows\n");
    const float nan = NAN, inf = INFINITY;
    const float x4[16] = {1, nan, 3, 4,  /* window (0,0): one NaN at 1; window (0,1): none */
                          5, 2,   0, 7,
                          nan, 9, 8, nan, /* window (1,0): NaN at 8 then 9 after it: stays NaN */
                          2, 1, nan, 6}; /* window (1,1): NaNs at 11 and 14: the last, 14 */
    const float x10[40] = {1,   nan, 3, 4,   5,    5,    -inf, -inf, 2,   nan,
                           5,   2,   0, 7,   5,    5,    -inf, -inf, nan, 3,
                           nan, 9,   8, nan, -inf, -inf, 7,    7,    1,   1,
                           2,   1,   nan, 6, -inf, -inf, 7,    7,    1,   1};
    /* x10's expectations, window by window: NaN at 1, 7 at 13, the tie 5 at 4, -inf at 6, the last
     * NaN at 18 (the scalar tail); NaN at 20, the last NaN at 32, -inf at 24, the tie 7 at 26, the
     * tie 1 at 28 */
    const int want10[10] = {1, 13, 4, 6, 18, 20, 32, 24, 26, 28};
    for (int form = 0; form < 3; form++) {
        const int k = form == 1 ? 3 : 2, st = form == 1 ? 1 : 2, pd = form == 1 ? 1 : 0;
        const int w = form == 2 ? 10 : 4, nx = 4 * w;
        const float *x = form == 2 ? x10 : x4;
        pool_op op;
        graft_error e = {0};
        if (pool_op_init(ctx, &op, POOL_MAX, 1, 4, w, k, k, st, st, pd, pd, &e)) {
            CHECKF(0, "nan: pool_op_init: %s", e.message);
            return;
        }
        const int ny = op.oh * op.ow;
        cl_mem bx = oc_buffer(ctx, x, nx), by = oc_buffer(ctx, NULL, ny),
               bidx = oc_buffer(ctx, NULL, ny);
        CHECK_OK(pool_fwd(ctx, &op, 1, bx, by, bidx, err));
        float *got = oc_read(ctx, by, ny);
        int gi[16], arg[16];
        CHECK_OK(buffer_read(ctx, bidx, 0, gi, sizeof(int) * ny, err));
        const geom g = {POOL_MAX, 1, 1, 4, w, k, k, st, st, pd, pd, op.oh, op.ow};
        double *xd = to_double(x, nx), y[16];
        ref_fwd(&g, xd, y, arg);
        free(xd);
        long bad = 0;
        for (int o = 0; o < ny; o++)
            bad += isnan(y[o]) != isnan(got[o]) || (!isnan(y[o]) && y[o] != got[o]) ||
                   gi[o] != arg[o];
        static const char *const names[3] = {"2x2 s2: outputs and indexes",
                                             "3x3 s1 p1: outputs and indexes",
                                             "2x2 s2, 4x10: outputs and indexes"};
        printf("  %-40s %ld of %d differ\n", names[form], bad, ny);
        CHECKF(bad == 0, "nan: %ld outputs or indexes differ (form %d)", bad, form);
        if (form == 0) /* the hand-worked expectations of the comments above */
            CHECK(isnan(got[0]) && gi[0] == 1 && got[1] == 7 && gi[1] == 7 && isnan(got[2]) &&
                  gi[2] == 8 && isnan(got[3]) && gi[3] == 14);
        if (form == 2) {
            int hand = ny == 10;
            for (int o = 0; hand && o < 10; o++) hand = gi[o] == want10[o];
            CHECKF(hand && isnan(got[0]) && got[1] == 7 && got[2] == 5 && got[3] == -inf &&
                       isnan(got[4]) && isnan(got[5]) && isnan(got[6]) && got[7] == -inf &&
                       got[8] == 7 && got[9] == 1,
                   "nan: the 4x10 plane's hand-worked outputs and indexes differ");
        }
        free(got);
        clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(bidx);
        pool_op_free(&op);
    }
}

/* Bad windows are refused with a message that names the problem. */
static void bad_windows(graft_context *ctx)
{
    pool_op op;
    graft_error e = {0};
    CHECK(pool_op_init(ctx, &op, POOL_MAX, 3, 8, 8, 3, 3, 2, 2, 2, 1, &e) != GRAFT_OK &&
          strstr(e.message, "at most half"));
    CHECK(pool_op_init(ctx, &op, POOL_AVG, 3, 2, 2, 3, 3, 1, 1, 0, 0, &e) != GRAFT_OK &&
          strstr(e.message, "larger than"));
    CHECK(pool_op_init(ctx, &op, POOL_MAX, 3, 8, 8, 2, 2, 0, 2, 0, 0, &e) != GRAFT_OK &&
          strstr(e.message, "bad shape"));
}

int main(void)
{
    graft_context *ctx = oc_context();
    const char *small = getenv("GRAFT_TEST_SMALL");
    int is_small = small && *small && strcmp(small, "0") != 0;
    const pool_case *cases = is_small ? small_cases : full_cases;
    size_t ncases = is_small ? ARRAY_LEN(small_cases) : ARRAY_LEN(full_cases);
    for (size_t i = 0; i < ncases; i++)
        run_case(ctx, &cases[i]);
    nan_wins(ctx);
    bad_windows(ctx);
    graft_context_free(ctx);
    return test_finish("test_pool");
}

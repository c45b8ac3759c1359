/* test_layernorm.c — layer normalisation over the last axis (forward, backward to the input and to
 * weight/bias, with and without affine) against a double reference; the reference backward is
 * itself checked by central finite differences of its forward. Outputs are NaN-poisoned first, and
 * rows past the batch must stay NaN. Row counts are never a multiple of the gradient chunk (64). */
#include "opcheck.h"

/* ---- double reference: PyTorch's LayerNorm(d), biased variance ---- */
static void ref_fwd(long rows, int d, double eps, const double *x, const double *gamma,
                    const double *beta, double *y, double *mean, double *invstd)
{
    for (long r = 0; r < rows; r++) {
        const double *p = x + r * d;
        double s = 0, q = 0;
        for (int j = 0; j < d; j++) s += p[j];
        const double mu = s / d;
        for (int j = 0; j < d; j++) q += (p[j] - mu) * (p[j] - mu);
        const double is = 1.0 / sqrt(q / d + eps);
        for (int j = 0; j < d; j++) {
            const double xh = (p[j] - mu) * is;
            y[r * d + j] = gamma ? xh * gamma[j] + beta[j] : xh;
        }
        if (mean) mean[r] = mu;
        if (invstd) invstd[r] = is;
    }
}

static void ref_bwd(long rows, int d, double eps, const double *x, const double *dy,
                    const double *gamma, double *dx, double *dgamma, double *dbeta)
{
    if (dgamma)
        for (int j = 0; j < d; j++) dgamma[j] = dbeta[j] = 0;
    for (long r = 0; r < rows; r++) {
        const double *p = x + r * d, *g = dy + r * d;
        double s = 0, q = 0;
        for (int j = 0; j < d; j++) s += p[j];
        const double mu = s / d;
        for (int j = 0; j < d; j++) q += (p[j] - mu) * (p[j] - mu);
        const double is = 1.0 / sqrt(q / d + eps);
        double s1 = 0, s2 = 0;
        for (int j = 0; j < d; j++) {
            const double xh = (p[j] - mu) * is, gg = g[j] * (gamma ? gamma[j] : 1.0);
            s1 += gg;
            s2 += gg * xh;
            if (dgamma) {
                dgamma[j] += g[j] * xh;
                dbeta[j] += g[j];
            }
        }
        for (int j = 0; j < d; j++) {
            const double xh = (p[j] - mu) * is, gg = g[j] * (gamma ? gamma[j] : 1.0);
            dx[r * d + j] = is * (gg - s1 / d - xh * s2 / d);
        }
    }
}

/* L = sum(y * r), so the reference backward with dy = r must match central differences of L. */
typedef struct fd_problem {
    long rows;
    int d;
    double eps;
    double *x, *gamma, *beta, *r, *y;
} fd_problem;

static double fd_loss(fd_problem *P)
{
    ref_fwd(P->rows, P->d, P->eps, P->x, P->gamma, P->beta, P->y, NULL, NULL);
    double L = 0;
    for (long i = 0; i < P->rows * P->d; i++) L += P->y[i] * P->r[i];
    return L;
}

static double fd_rel(fd_problem *P, double *v, long count, const double *ana)
{
    const double h = 1e-5;
    double maxd = 0, maxa = 1e-12;
    for (long i = 0; i < count; i++) {
        const double o = v[i];
        v[i] = o + h;
        const double lp = fd_loss(P);
        v[i] = o - h;
        const double lm = fd_loss(P);
        v[i] = o;
        const double num = (lp - lm) / (2 * h);
        if (fabs(num - ana[i]) > maxd) maxd = fabs(num - ana[i]);
        if (fabs(ana[i]) > maxa) maxa = fabs(ana[i]);
    }
    return maxd / maxa;
}

static double *to_double(const float *f, long n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (long i = 0; i < n; i++) d[i] = f[i];
    return d;
}

typedef struct ln_case {
    long cap, rows; /* rows run (<= cap, the rows the buffers hold) */
    int d;
    float eps;
    bool affine;
    double offset; /* added to x: a mean far from zero exercises the variance's cancellation */
} ln_case;

static void run_case(graft_context *ctx, const ln_case *c)
{
    const long rows = c->rows, total = rows * c->d, cap = c->cap * c->d;
    const int d = c->d;
    printf("case rows=%ld (buffers for %ld) d=%d eps=%g affine=%d offset=%g\n", rows, c->cap, d,
           (double)c->eps, c->affine, c->offset);
    float *x = malloc(cap * sizeof *x), *dy = malloc(cap * sizeof *dy);
    float *gamma = malloc(d * sizeof *gamma), *beta = malloc(d * sizeof *beta);
    oc_fill(x, cap, -2.0, 3.0);
    for (long i = 0; i < cap; i++) x[i] += (float)c->offset + 0.05f * (float)(i / d % 7);
    oc_fill(dy, cap, -1.0, 1.0);
    oc_fill(gamma, d, 0.5, 1.5);
    oc_fill(beta, d, -0.5, 0.5);
    double *xd = to_double(x, total), *dyd = to_double(dy, total), *gd = to_double(gamma, d),
           *bd = to_double(beta, d);
    const double *gref = c->affine ? gd : NULL;
    double *yref = malloc(total * sizeof(double)), *dxref = malloc(total * sizeof(double));
    double *mean = malloc(rows * sizeof(double)), *invstd = malloc(rows * sizeof(double));
    double *dg = malloc(d * sizeof(double)), *db = malloc(d * sizeof(double));
    const double eps = c->eps;

    if (total <= 3000) { /* finite differences prove the reference backward */
        fd_problem P = {rows, d, eps, xd, c->affine ? gd : NULL, bd, dyd, yref};
        ref_bwd(rows, d, eps, xd, dyd, gref, dxref, dg, db);
        double ex = fd_rel(&P, xd, total, dxref), eg = 0, eb = 0;
        if (c->affine) {
            eg = fd_rel(&P, gd, d, dg);
            eb = fd_rel(&P, bd, d, db);
        }
        printf("  %-40s rel.err %.2e / %.2e / %.2e\n", "FD ref: dx / dgamma / dbeta", ex, eg, eb);
        CHECK(ex < 1e-6 && eg < 1e-6 && eb < 1e-6);
    }

    layernorm_op op;
    CHECK_OK(layernorm_op_init(ctx, &op, d, c->eps, c->affine, err));
    cl_mem bx = oc_buffer(ctx, x, cap), bdy = oc_buffer(ctx, dy, cap), bg = oc_buffer(ctx, gamma, d),
           bb = oc_buffer(ctx, beta, d), bsm = oc_buffer(ctx, NULL, c->cap),
           bsi = oc_buffer(ctx, NULL, c->cap), by = oc_buffer(ctx, NULL, cap),
           bdx = oc_buffer(ctx, NULL, cap), bdg = oc_buffer(ctx, NULL, d),
           bdb = oc_buffer(ctx, NULL, d);
    cl_mem pg = c->affine ? bg : NULL, pb = c->affine ? bb : NULL;

    ref_fwd(rows, d, eps, xd, gref, bd, yref, mean, invstd);
    CHECK_OK(layernorm_fwd(ctx, &op, rows, bx, pg, pb, by, bsm, bsi, err));
    float *got = oc_read(ctx, by, cap);
    CHECK_CLOSE("fwd y", got, yref, total, 2e-5);
    CHECK(cap == total || isnan(got[cap - 1])); /* rows past the batch untouched */
    free(got);
    got = oc_read(ctx, bsm, rows);
    CHECK_CLOSE("fwd save_mean", got, mean, rows, 2e-5);
    free(got);
    got = oc_read(ctx, bsi, rows);
    CHECK_CLOSE("fwd save_invstd", got, invstd, rows, 2e-5);
    free(got);

    ref_bwd(rows, d, eps, xd, dyd, gref, dxref, dg, db);
    CHECK_OK(layernorm_bwd(ctx, &op, rows, bx, bdy, pg, bsm, bsi, bdx, c->affine ? bdg : NULL,
                           c->affine ? bdb : NULL, err));
    got = oc_read(ctx, bdx, cap);
    CHECK_CLOSE("bwd dx", got, dxref, total, 1e-4);
    CHECK(cap == total || isnan(got[cap - 1]));
    free(got);
    if (c->affine) {
        got = oc_read(ctx, bdg, d);
        CHECK_CLOSE("bwd dgamma", got, dg, d, 5e-5);
        free(got);
        got = oc_read(ctx, bdb, d);
        CHECK_CLOSE("bwd dbeta", got, db, d, 5e-5);
        free(got);
        /* parameter gradients alone (the first layer: nothing below needs dx) */
        oc_poison(ctx, bdx, cap);
        oc_poison(ctx, bdg, d);
        oc_poison(ctx, bdb, d);
        CHECK_OK(layernorm_bwd(ctx, &op, rows, bx, bdy, pg, bsm, bsi, NULL, bdg, bdb, err));
        got = oc_read(ctx, bdg, d);
        CHECK_CLOSE("bwd dgamma without dx", got, dg, d, 5e-5);
        free(got);
        got = oc_read(ctx, bdx, 1);
        CHECK(isnan(got[0]));
        free(got);
        /* dx alone (a frozen layernorm inside a trained network) */
        oc_poison(ctx, bdg, d);
        CHECK_OK(layernorm_bwd(ctx, &op, rows, bx, bdy, pg, bsm, bsi, bdx, NULL, NULL, err));
        got = oc_read(ctx, bdx, total);
        CHECK_CLOSE("bwd dx only (frozen)", got, dxref, total, 1e-4);
        free(got);
        got = oc_read(ctx, bdg, 1);
        CHECK(isnan(got[0]));
        free(got);
    }

    cl_mem all[] = {bx, bdy, bg, bb, bsm, bsi, by, bdx, bdg, bdb};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    layernorm_op_free(&op);
    free(x);
    free(dy);
    free(gamma);
    free(beta);
    free(xd);
    free(dyd);
    free(gd);
    free(bd);
    free(yref);
    free(dxref);
    free(mean);
    free(invstd);
    free(dg);
    free(db);
}

int main(void)
{
    const int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    static const ln_case full[] = {
        {5, 5, 7, 1e-5f, true, 0},        /* tiny odd rows */
        {1, 1, 10, 1e-5f, true, 0},       /* one row */
        {131, 97, 64, 1e-6f, true, 0},    /* 97 rows: two gradient chunks, buffers for more */
        {50, 50, 33, 1e-5f, false, 0},    /* no affine, d not a power of two */
        {12, 12, 48, 1e-5f, true, 100.0}, /* mean far from zero */
        {256, 256, 784, 1e-5f, true, 0},  /* a Fashion-MNIST batch, flattened */
        {3200, 3137, 64, 1e-6f, true, 0}, /* 64 images x 49 tokens + class token, last batch */
    };
    static const ln_case tiny[] = {
        {5, 3, 7, 1e-5f, true, 0},
        {70, 67, 5, 1e-5f, true, 0}, /* two chunks */
        {4, 4, 6, 1e-5f, false, 0},
    };
    const ln_case *cases = small ? tiny : full;
    size_t nc = small ? ARRAY_LEN(tiny) : ARRAY_LEN(full);
    for (size_t i = 0; i < nc; i++) run_case(ctx, &cases[i]);

    /* bad parameters are refused with a message */
    layernorm_op op;
    graft_error e = {0};
    CHECK(layernorm_op_init(ctx, &op, 0, 1e-5f, true, &e) != GRAFT_OK);
    CHECK(strstr(e.message, "row length") != NULL);
    CHECK(layernorm_op_init(ctx, &op, 4, 0.0f, true, &e) != GRAFT_OK);
    CHECK(strstr(e.message, "eps") != NULL);
    graft_context_free(ctx);
    return test_finish("layernorm");
}

/* test_norm.c — batchnorm (train and eval, forward and backward, and the synchronised form of a
 * batch split into shares) against a double reference; the reference backward is itself checked
 * by central finite differences of its forward. */
#include "opcheck.h"

static int small;

/* ---- double reference: straightforward loops over (sample, channel, position) ---- */
static void ref_fwd_train(int n, int c, int hw, double eps, const double *x, const double *gamma,
                          const double *beta, double *y, double *mean, double *invstd,
                          double *var_unbiased)
{
    const int m = n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0, q = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) s += x[((long)i * c + ch) * hw + p];
        const double mu = s / m;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                double d = x[((long)i * c + ch) * hw + p] - mu;
                q += d * d;
            }
        const double var = q / m, is = 1.0 / sqrt(var + eps);
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                long k = ((long)i * c + ch) * hw + p;
                y[k] = (x[k] - mu) * is * gamma[ch] + beta[ch];
            }
        if (mean) mean[ch] = mu;
        if (invstd) invstd[ch] = is;
        if (var_unbiased) var_unbiased[ch] = m > 1 ? q / (m - 1) : var;
    }
}

static void ref_fwd_eval(int n, int c, int hw, double eps, const double *x, const double *gamma,
                         const double *beta, const double *rm, const double *rv, double *y)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++) {
                long k = ((long)i * c + ch) * hw + p;
                y[k] = (x[k] - rm[ch]) / sqrt(rv[ch] + eps) * gamma[ch] + beta[ch];
            }
}

/* training backward through the batch statistics (the textbook three-term formula) */
static void ref_bwd_train(int n, int c, int hw, double eps, const double *x, const double *dy,
                          const double *gamma, double *dx, double *dgamma, double *dbeta)
{
    const int m = n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0, q = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) s += x[((long)i * c + ch) * hw + p];
        const double mu = s / m;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                double d = x[((long)i * c + ch) * hw + p] - mu;
                q += d * d;
            }
        const double is = 1.0 / sqrt(q / m + eps);
        double sdy = 0, sdyxh = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                long k = ((long)i * c + ch) * hw + p;
                sdy += dy[k];
                sdyxh += dy[k] * (x[k] - mu) * is;
            }
        dgamma[ch] = sdyxh;
        dbeta[ch] = sdy;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                long k = ((long)i * c + ch) * hw + p;
                double xh = (x[k] - mu) * is;
                dx[k] = gamma[ch] * is / m * (m * dy[k] - sdy - xh * sdyxh);
            }
    }
}

static void ref_bwd_eval(int n, int c, int hw, double eps, const double *x, const double *dy,
                         const double *gamma, const double *rm, const double *rv, double *dx,
                         double *dgamma, double *dbeta)
{
    for (int ch = 0; ch < c; ch++) dgamma[ch] = dbeta[ch] = 0;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++) {
                long k = ((long)i * c + ch) * hw + p;
                double is = 1.0 / sqrt(rv[ch] + eps);
                dx[k] = dy[k] * gamma[ch] * is;
                dgamma[ch] += dy[k] * (x[k] - rm[ch]) * is;
                dbeta[ch] += dy[k];
            }
}

/* L = sum(y * r): its gradient w.r.t. y is r, so the reference backward with dy = r must match
 * central differences of L. Returns the worst relative error over x, gamma and beta. */
typedef struct fd_problem {
    int n, c, hw, train;
    double eps;
    double *x, *gamma, *beta, *rm, *rv, *r, *y;
} fd_problem;

static double fd_loss(fd_problem *P)
{
    if (P->train)
        ref_fwd_train(P->n, P->c, P->hw, P->eps, P->x, P->gamma, P->beta, P->y, NULL, NULL, NULL);
    else ref_fwd_eval(P->n, P->c, P->hw, P->eps, P->x, P->gamma, P->beta, P->rm, P->rv, P->y);
    double L = 0;
    for (long i = 0; i < (long)P->n * P->c * P->hw; i++) L += P->y[i] * P->r[i];
    return L;
}

static double fd_rel(fd_problem *P, double *v, long count, const double *ana)
{
    const double h = 1e-5;
    double maxd = 0, maxa = 1e-12;
    for (long i = 0; i < count; i++) {
        double o = v[i];
        v[i] = o + h;
        double lp = fd_loss(P);
        v[i] = o - h;
        double lm = fd_loss(P);
        v[i] = o;
        double num = (lp - lm) / (2 * h);
        if (fabs(num - ana[i]) > maxd) maxd = fabs(num - ana[i]);
        if (fabs(ana[i]) > maxa) maxa = fabs(ana[i]);
    }
    return maxd / maxa;
}

typedef struct bn_case {
    int nb, n, c, h, w; /* nb: batch the buffers are sized for; n: batch run (n <= nb) */
    float momentum, eps;
    double offset; /* added to x: a mean far from zero exercises the variance's cancellation */
} bn_case;

static double *to_double(const float *f, long n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (long i = 0; i < n; i++) d[i] = f[i];
    return d;
}

/* Random inputs of a case: count values of x (offset by the case's mean and per channel) and dy,
 * and c values of gamma, beta and the running statistics. */
static void fill_inputs(const bn_case *bc, long count, float *x, float *dy, float *gamma,
                        float *beta, float *rm, float *rv)
{
    const int c = bc->c, hw = bc->h * bc->w;
    oc_fill(x, count, -2.0, 3.0);
    for (long i = 0; i < count; i++) x[i] += (float)bc->offset + 0.1f * (float)((i / hw) % c);
    oc_fill(dy, count, -1.0, 1.0);
    oc_fill(gamma, c, 0.5, 1.5);
    oc_fill(beta, c, -0.5, 0.5);
    oc_fill(rm, c, -0.2, 0.2);
    oc_fill(rv, c, 0.5, 2.0);
}

static void run_case(graft_context *ctx, const bn_case *bc)
{
    const int n = bc->n, c = bc->c, hw = bc->h * bc->w;
    const long total = (long)n * c * hw, cap = (long)bc->nb * c * hw;
    printf("case n=%d (buffers for %d) c=%d hw=%dx%d momentum=%g eps=%g offset=%g\n", n, bc->nb, c,
           bc->h, bc->w, (double)bc->momentum, (double)bc->eps, bc->offset);
    float *x = malloc(cap * sizeof *x), *dy = malloc(cap * sizeof *dy);
    float gamma[4096], beta[4096], rm[4096], rv[4096];
    fill_inputs(bc, cap, x, dy, gamma, beta, rm, rv);
    double *xd = to_double(x, total), *dyd = to_double(dy, total), *gd = to_double(gamma, c),
           *bd = to_double(beta, c), *rmd = to_double(rm, c), *rvd = to_double(rv, c);
    double *yref = malloc(total * sizeof(double)), *dxref = malloc(total * sizeof(double));
    double mean[4096], invstd[4096], varu[4096], dg[4096], db[4096], rm_new[4096], rv_new[4096];
    const double eps = bc->eps, mom = bc->momentum;

    /* finite differences prove the reference backward (small problems only) */
    if (total <= 4000) {
        fd_problem P = {n, c, hw, 1, eps, xd, gd, bd, rmd, rvd, dyd, yref};
        ref_bwd_train(n, c, hw, eps, xd, dyd, gd, dxref, dg, db);
        double ex = fd_rel(&P, xd, total, dxref), eg = fd_rel(&P, gd, c, dg),
               eb = fd_rel(&P, bd, c, db);
        printf("  %-40s rel.err %.2e / %.2e / %.2e\n", "FD train ref: dx / dgamma / dbeta", ex, eg,
               eb);
        CHECK(ex < 1e-6 && eg < 1e-6 && eb < 1e-6);
        P.train = 0;
        ref_bwd_eval(n, c, hw, eps, xd, dyd, gd, rmd, rvd, dxref, dg, db);
        ex = fd_rel(&P, xd, total, dxref);
        eg = fd_rel(&P, gd, c, dg);
        eb = fd_rel(&P, bd, c, db);
        printf("  %-40s rel.err %.2e / %.2e / %.2e\n", "FD eval ref: dx / dgamma / dbeta", ex, eg,
               eb);
        CHECK(ex < 1e-6 && eg < 1e-6 && eb < 1e-6);
    }

    graft_error e = {0};
    batchnorm_op op;
    CHECK_OK(batchnorm_op_init(ctx, &op, c, hw, bc->momentum, bc->eps, NULL, err));
    cl_mem bx = oc_buffer(ctx, x, cap), bdy = oc_buffer(ctx, dy, cap), bg = oc_buffer(ctx, gamma, c),
           bb = oc_buffer(ctx, beta, c), brm = oc_buffer(ctx, rm, c), brv = oc_buffer(ctx, rv, c),
           bsm = oc_buffer(ctx, NULL, c), bsi = oc_buffer(ctx, NULL, c),
           by = oc_buffer(ctx, NULL, cap), bdx = oc_buffer(ctx, NULL, cap),
           bdg = oc_buffer(ctx, NULL, c), bdb = oc_buffer(ctx, NULL, c);

    /* training forward */
    ref_fwd_train(n, c, hw, eps, xd, gd, bd, yref, mean, invstd, varu);
    for (int ch = 0; ch < c; ch++) {
        rm_new[ch] = (1 - mom) * rmd[ch] + mom * mean[ch];
        rv_new[ch] = (1 - mom) * rvd[ch] + mom * varu[ch];
    }
    oc_poison(ctx, by, cap);
    oc_poison(ctx, bsm, c);
    oc_poison(ctx, bsi, c);
    CHECK_OK(batchnorm_fwd_train(ctx, &op, n, bx, bg, bb, brm, brv, bsm, bsi, by, err));
    float *got = oc_read(ctx, by, cap);
    CHECK_CLOSE("train fwd y", got, yref, total, 2e-5);
    CHECK(isnan(got[cap - 1]) || cap == total); /* rows past n untouched */
    free(got);
    got = oc_read(ctx, bsm, c);
    CHECK_CLOSE("train fwd save_mean", got, mean, c, 2e-5);
    free(got);
    got = oc_read(ctx, bsi, c);
    CHECK_CLOSE("train fwd save_invstd", got, invstd, c, 2e-5);
    free(got);
    got = oc_read(ctx, brm, c);
    CHECK_CLOSE("train running_mean update", got, rm_new, c, 2e-5);
    free(got);
    got = oc_read(ctx, brv, c);
    CHECK_CLOSE("train running_var update (unbiased)", got, rv_new, c, 2e-5);
    free(got);

    /* training backward, all outputs, then with dgamma/dbeta or dx left out */
    ref_bwd_train(n, c, hw, eps, xd, dyd, gd, dxref, dg, db);
    oc_poison(ctx, bdx, cap);
    oc_poison(ctx, bdg, c);
    oc_poison(ctx, bdb, c);
    CHECK_OK(batchnorm_bwd(ctx, &op, n, bx, NULL, bdy, bg, bsm, bsi, bdx, bdg, bdb, err));
    got = oc_read(ctx, bdx, total);
    CHECK_CLOSE("train bwd dx", got, dxref, total, 1e-4);
    free(got);
    got = oc_read(ctx, bdg, c);
    CHECK_CLOSE("train bwd dgamma", got, dg, c, 5e-5);
    free(got);
    got = oc_read(ctx, bdb, c);
    CHECK_CLOSE("train bwd dbeta", got, db, c, 5e-5);
    free(got);
    oc_poison(ctx, bdx, cap);
    CHECK_OK(batchnorm_bwd(ctx, &op, n, bx, NULL, bdy, bg, bsm, bsi, bdx, NULL, NULL, err));
    got = oc_read(ctx, bdx, total);
    CHECK_CLOSE("train bwd dx only (frozen affine)", got, dxref, total, 1e-4);
    free(got);
    oc_poison(ctx, bdg, c);
    oc_poison(ctx, bdb, c);
    oc_poison(ctx, bdx, cap);
    CHECK_OK(batchnorm_bwd(ctx, &op, n, bx, NULL, bdy, bg, bsm, bsi, NULL, bdg, bdb, err));
    got = oc_read(ctx, bdg, c);
    CHECK_CLOSE("train bwd dgamma without dx", got, dg, c, 5e-5);
    free(got);
    got = oc_read(ctx, bdx, 1);
    CHECK(isnan(got[0])); /* dx NULL: nothing written anywhere near it */
    free(got);

    /* eval forward and backward with the (updated) running statistics */
    float *rmf = oc_read(ctx, brm, c), *rvf = oc_read(ctx, brv, c);
    double *rmu = to_double(rmf, c), *rvu = to_double(rvf, c);
    ref_fwd_eval(n, c, hw, eps, xd, gd, bd, rmu, rvu, yref);
    oc_poison(ctx, by, cap);
    CHECK_OK(batchnorm_fwd_eval(ctx, &op, n, bx, bg, bb, brm, brv, by, err));
    got = oc_read(ctx, by, cap);
    CHECK_CLOSE("eval fwd y", got, yref, total, 2e-5);
    CHECK(isnan(got[cap - 1]) || cap == total);
    free(got);
    ref_bwd_eval(n, c, hw, eps, xd, dyd, gd, rmu, rvu, dxref, dg, db);
    oc_poison(ctx, bdx, cap);
    oc_poison(ctx, bdg, c);
    oc_poison(ctx, bdb, c);
    CHECK_OK(batchnorm_bwd_eval(ctx, &op, n, bx, NULL, bdy, bg, brm, brv, bdx, bdg, bdb, err));
    got = oc_read(ctx, bdx, total);
    CHECK_CLOSE("eval bwd dx", got, dxref, total, 2e-5);
    free(got);
    got = oc_read(ctx, bdg, c);
    CHECK_CLOSE("eval bwd dgamma", got, dg, c, 5e-5);
    free(got);
    got = oc_read(ctx, bdb, c);
    CHECK_CLOSE("eval bwd dbeta", got, db, c, 5e-5);
    free(got);
    oc_poison(ctx, bdx, cap);
    CHECK_OK(batchnorm_bwd_eval(ctx, &op, n, bx, NULL, bdy, bg, brm, brv, bdx, NULL, NULL, err));
    got = oc_read(ctx, bdx, total);
    CHECK_CLOSE("eval bwd dx only", got, dxref, total, 2e-5);
    free(got);

    /* the same with a fused relu epilogue: y = relu(bn(x)); backward takes relu's output gradient
     * and masks it with the layer's own output (the reference uses the mask of the output the
     * kernel wrote, so a value within rounding of 0 cannot flip it) */
    {
        batchnorm_op fop;
        epilogue relu = {.kind = ACT_RELU + 1};
        CHECK_OK(batchnorm_op_init(ctx, &fop, c, hw, bc->momentum, bc->eps, &relu, err));
        float *rm0 = oc_read(ctx, brm, c), *rv0 = oc_read(ctx, brv, c);
        ref_fwd_train(n, c, hw, eps, xd, gd, bd, yref, mean, invstd, varu);
        for (long i = 0; i < total; i++) yref[i] = yref[i] > 0 ? yref[i] : 0;
        oc_poison(ctx, by, cap);
        CHECK_OK(batchnorm_fwd_train(ctx, &fop, n, bx, bg, bb, brm, brv, bsm, bsi, by, err));
        float *yf = oc_read(ctx, by, cap);
        CHECK_CLOSE("fused relu: train fwd y", yf, yref, total, 2e-5);
        CHECK(isnan(yf[cap - 1]) || cap == total);
        double *dym = malloc(total * sizeof(double));
        for (long i = 0; i < total; i++) dym[i] = yf[i] > 0.0f ? dyd[i] : 0.0;
        ref_bwd_train(n, c, hw, eps, xd, dym, gd, dxref, dg, db);
        oc_poison(ctx, bdx, cap);
        oc_poison(ctx, bdg, c);
        oc_poison(ctx, bdb, c);
        CHECK_OK(batchnorm_bwd(ctx, &fop, n, bx, by, bdy, bg, bsm, bsi, bdx, bdg, bdb, err));
        got = oc_read(ctx, bdx, total);
        CHECK_CLOSE("fused relu: train bwd dx", got, dxref, total, 1e-4);
        free(got);
        got = oc_read(ctx, bdg, c);
        CHECK_CLOSE("fused relu: train bwd dgamma", got, dg, c, 5e-5);
        free(got);
        got = oc_read(ctx, bdb, c);
        CHECK_CLOSE("fused relu: train bwd dbeta", got, db, c, 5e-5);
        free(got);
        /* eval mode with the running statistics as they are now */
        float *rm1 = oc_read(ctx, brm, c), *rv1 = oc_read(ctx, brv, c);
        double *rmu1 = to_double(rm1, c), *rvu1 = to_double(rv1, c);
        ref_fwd_eval(n, c, hw, eps, xd, gd, bd, rmu1, rvu1, yref);
        for (long i = 0; i < total; i++) yref[i] = yref[i] > 0 ? yref[i] : 0;
        oc_poison(ctx, by, cap);
        CHECK_OK(batchnorm_fwd_eval(ctx, &fop, n, bx, bg, bb, brm, brv, by, err));
        free(yf);
        yf = oc_read(ctx, by, cap);
        CHECK_CLOSE("fused relu: eval fwd y", yf, yref, total, 2e-5);
        for (long i = 0; i < total; i++) dym[i] = yf[i] > 0.0f ? dyd[i] : 0.0;
        ref_bwd_eval(n, c, hw, eps, xd, dym, gd, rmu1, rvu1, dxref, dg, db);
        oc_poison(ctx, bdx, cap);
        oc_poison(ctx, bdg, c);
        CHECK_OK(batchnorm_bwd_eval(ctx, &fop, n, bx, by, bdy, bg, brm, brv, bdx, bdg, NULL, err));
        got = oc_read(ctx, bdx, total);
        CHECK_CLOSE("fused relu: eval bwd dx", got, dxref, total, 2e-5);
        free(got);
        got = oc_read(ctx, bdg, c);
        CHECK_CLOSE("fused relu: eval bwd dgamma", got, dg, c, 5e-5);
        free(got);
        batchnorm_op_free(&fop);
        free(yf);
        free(dym);
        free(rm0);
        free(rv0);
        free(rm1);
        free(rv1);
        free(rmu1);
        free(rvu1);
    }

    cl_mem all[] = {bx, bdy, bg, bb, brm, brv, bsm, bsi, by, bdx, bdg, bdb};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    batchnorm_op_free(&op);
    free(rmf);
    free(rvf);
    free(rmu);
    free(rvu);
    free(x);
    free(dy);
    free(xd);
    free(dyd);
    free(gd);
    free(bd);
    free(rmd);
    free(rvd);
    free(yref);
    free(dxref);
    (void)e;
}

/* train.sync_bn's ops: the batch split into up to three shares, each on its own op (as each
 * replica has), normalised with the whole batch's statistics gathered from the shares' partials;
 * the running and saved statistics and every share's output equal the whole-batch reference, and
 * backward (each share's loss the mean over its own rows: dy scaled by N / n_k) gives each share
 * its rows of the whole batch's dx in those units, and dgamma / dbeta whose share-weighted sum is
 * the whole batch's. With the fused ReLU epilogue, as the compiler places it. */
static void run_sync_case(graft_context *ctx, const bn_case *bc)
{
    const int N = bc->n, c = bc->c, hw = bc->h * bc->w, K = N < 3 ? N : 3;
    const long total = (long)N * c * hw, plane = (long)c * hw;
    printf("sync case N=%d in %d shares c=%d hw=%dx%d\n", N, K, c, bc->h, bc->w);
    float *x = malloc(total * sizeof *x), *dy = malloc(total * sizeof *dy);
    float gamma[4096], beta[4096], rm[4096], rv[4096];
    fill_inputs(bc, total, x, dy, gamma, beta, rm, rv);
    double *xd = to_double(x, total), *gd = to_double(gamma, c), *bd = to_double(beta, c);
    double *yref = malloc(total * sizeof(double)), *dxref = malloc(total * sizeof(double));
    double *dym = calloc((size_t)total, sizeof(double));
    double *global = malloc(2 * (size_t)N * c * sizeof(double));
    double mean[4096], invstd[4096], varu[4096], dg[4096], db[4096], rm_new[4096], rv_new[4096];
    const double mom = bc->momentum;
    ref_fwd_train(N, c, hw, bc->eps, xd, gd, bd, yref, mean, invstd, varu);
    for (long i = 0; i < total; i++) yref[i] = yref[i] > 0 ? yref[i] : 0;
    for (int ch = 0; ch < c; ch++) {
        rm_new[ch] = (1 - mom) * rm[ch] + mom * mean[ch];
        rv_new[ch] = (1 - mom) * rv[ch] + mom * varu[ch];
    }
    epilogue relu = {.kind = ACT_RELU + 1};
    batchnorm_op op[3];
    cl_mem bx[3], bdy[3], brm[3], brv[3], bsm[3], bsi[3], by[3], bdx[3], bdg[3], bdb[3];
    int first[3], cnt[3];
    void *host[3];
    cl_mem bg = oc_buffer(ctx, gamma, c), bb = oc_buffer(ctx, beta, c);
    float *yk[3];
    for (int k = 0; k < K; k++) {
        first[k] = k * N / K;
        cnt[k] = (k + 1) * N / K - first[k];
        CHECK_OK(batchnorm_op_init(ctx, &op[k], c, hw, bc->momentum, bc->eps, &relu, err));
        long sz = cnt[k] * plane;
        /* the share's loss is the mean over its own rows: its output gradient N / n_k times */
        float *dyk = malloc(sz * sizeof *dyk);
        for (long i = 0; i < sz; i++) dyk[i] = dy[first[k] * plane + i] * (float)N / (float)cnt[k];
        bx[k] = oc_buffer(ctx, x + first[k] * plane, sz);
        bdy[k] = oc_buffer(ctx, dyk, sz);
        free(dyk);
        brm[k] = oc_buffer(ctx, rm, c);
        brv[k] = oc_buffer(ctx, rv, c);
        bsm[k] = oc_buffer(ctx, NULL, c);
        bsi[k] = oc_buffer(ctx, NULL, c);
        by[k] = oc_buffer(ctx, NULL, sz);
        bdx[k] = oc_buffer(ctx, NULL, sz);
        bdg[k] = oc_buffer(ctx, NULL, c);
        bdb[k] = oc_buffer(ctx, NULL, c);
        host[k] = malloc(2 * (size_t)cnt[k] * c * sizeof(double));
    }
    /* forward: every share's partials, gathered in row order, then each share normalised */
    for (int i = 0; i < 2 * N * c; i++) global[i] = NAN;
    for (int k = 0; k < K; k++) {
        cl_event ev = NULL;
        CHECK_OK(batchnorm_sync_stats(ctx, &op[k], cnt[k], bx[k], err));
        CHECK_OK(batchnorm_sync_read(ctx, &op[k], cnt[k], host[k], &ev, err));
        CHECK_OK(transfer_wait(ctx, &ev, NULL, err));
        batchnorm_part_gather(&op[k], host[k], cnt[k], first[k], N, 1.0, global);
    }
    for (int k = 0; k < K; k++) {
        CHECK_OK(batchnorm_sync_fwd(ctx, &op[k], N, global, cnt[k], bx[k], bg, bb, brm[k], brv[k],
                                    bsm[k], bsi[k], by[k], err));
        char what[64];
        yk[k] = oc_read(ctx, by[k], cnt[k] * plane);
        snprintf(what, sizeof what, "sync fwd y, share %d (%d rows)", k, cnt[k]);
        CHECK_CLOSE(what, yk[k], yref + first[k] * plane, cnt[k] * plane, 2e-5);
        float *got = oc_read(ctx, bsm[k], c);
        CHECK_CLOSE("sync fwd save_mean", got, mean, c, 2e-5);
        free(got);
        got = oc_read(ctx, bsi[k], c);
        CHECK_CLOSE("sync fwd save_invstd", got, invstd, c, 2e-5);
        free(got);
        got = oc_read(ctx, brm[k], c);
        CHECK_CLOSE("sync running_mean update", got, rm_new, c, 2e-5);
        free(got);
        got = oc_read(ctx, brv[k], c);
        CHECK_CLOSE("sync running_var update", got, rv_new, c, 2e-5);
        free(got);
    }
    /* backward: the reference masks dy with the output the kernels wrote (see run_case) */
    for (int k = 0; k < K; k++)
        for (long i = 0; i < cnt[k] * plane; i++) {
            long g = first[k] * plane + i;
            dym[g] = yk[k][i] > 0.0f ? dy[g] : 0.0;
        }
    ref_bwd_train(N, c, hw, bc->eps, xd, dym, gd, dxref, dg, db);
    for (int i = 0; i < 2 * N * c; i++) global[i] = NAN;
    for (int k = 0; k < K; k++) {
        cl_event ev = NULL;
        CHECK_OK(batchnorm_sync_grads(ctx, &op[k], cnt[k], bx[k], by[k], bdy[k], bsm[k], bsi[k],
                                      bdg[k], bdb[k], err));
        CHECK_OK(batchnorm_sync_read(ctx, &op[k], cnt[k], host[k], &ev, err));
        CHECK_OK(transfer_wait(ctx, &ev, NULL, err));
        batchnorm_part_gather(&op[k], host[k], cnt[k], first[k], N, (double)cnt[k] / N, global);
    }
    float *sg = calloc((size_t)c, sizeof *sg), *sb = calloc((size_t)c, sizeof *sb);
    for (int k = 0; k < K; k++) {
        CHECK_OK(batchnorm_sync_bwd(ctx, &op[k], N, global, cnt[k], bx[k], by[k], bdy[k], bg,
                                    bsm[k], bsi[k], bdx[k], err));
        long sz = cnt[k] * plane;
        float *got = oc_read(ctx, bdx[k], sz);
        double *want = malloc(sz * sizeof *want);
        for (long i = 0; i < sz; i++) want[i] = dxref[first[k] * plane + i] * N / cnt[k];
        char what[64];
        snprintf(what, sizeof what, "sync bwd dx, share %d (x N/n_k)", k);
        CHECK_CLOSE(what, got, want, sz, 1e-4);
        free(got);
        free(want);
        float *gk = oc_read(ctx, bdg[k], c), *bk = oc_read(ctx, bdb[k], c);
        for (int ch = 0; ch < c; ch++) {
            sg[ch] += gk[ch] * (float)cnt[k] / (float)N;
            sb[ch] += bk[ch] * (float)cnt[k] / (float)N;
        }
        free(gk);
        free(bk);
    }
    CHECK_CLOSE("sync bwd dgamma (shares weighted)", sg, dg, c, 5e-5);
    CHECK_CLOSE("sync bwd dbeta (shares weighted)", sb, db, c, 5e-5);
    free(sg);
    free(sb);
    for (int k = 0; k < K; k++) {
        cl_mem all[] = {bx[k],  bdy[k], brm[k], brv[k], bsm[k],
                        bsi[k], by[k],  bdx[k], bdg[k], bdb[k]};
        for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
        batchnorm_op_free(&op[k]);
        free(host[k]);
        free(yk[k]);
    }
    clReleaseMemObject(bg);
    clReleaseMemObject(bb);
    free(x);
    free(dy);
    free(xd);
    free(gd);
    free(bd);
    free(yref);
    free(dxref);
    free(dym);
    free(global);
}

int main(void)
{
    small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    static const bn_case full[] = {
        {4, 4, 3, 5, 5, 0.1f, 1e-5f, 0},     /* odd spatial size, 3 channels */
        {1, 1, 5, 7, 7, 0.1f, 1e-5f, 0},     /* batch 1 */
        {8, 8, 10, 1, 1, 0.1f, 1e-5f, 0},    /* after a dense layer: hw = 1 */
        {8, 3, 7, 3, 3, 0.01f, 1e-3f, 0},    /* last batch smaller than the buffers */
        {6, 6, 6, 4, 3, 0.1f, 1e-5f, 50.0},  /* mean far from zero */
        {3, 3, 4, 1, 1, 0.1f, 1e-5f, 0},     /* three values per channel: unbiased factor 3/2 */
        {64, 64, 32, 28, 28, 0.1f, 1e-5f, 0}, /* Fashion-MNIST CNN conv1 output */
        {64, 17, 64, 14, 14, 0.1f, 1e-5f, 0}, /* its conv3 output, last batch of 17 */
        {2, 2, 256, 4, 4, 0.1f, 1e-5f, 0},    /* resnet18 layer3 at 64x64, batch 2 */
    };
    static const bn_case tiny[] = {
        {3, 2, 3, 3, 3, 0.1f, 1e-5f, 0},
        {3, 3, 4, 1, 1, 0.1f, 1e-5f, 0},
    };
    const bn_case *cases = small ? tiny : full;
    size_t nc = small ? ARRAY_LEN(tiny) : ARRAY_LEN(full);
    for (size_t i = 0; i < nc; i++) run_case(ctx, &cases[i]);
    for (size_t i = 0; i < nc; i++)
        if (cases[i].n >= 2) run_sync_case(ctx, &cases[i]);

    /* bad parameters are refused with a message */
    batchnorm_op op;
    graft_error e = {0};
    CHECK(batchnorm_op_init(ctx, &op, 0, 4, 0.1f, 1e-5f, NULL, &e) != GRAFT_OK);
    CHECK(strstr(e.message, "c=0") != NULL);
    CHECK(batchnorm_op_init(ctx, &op, 4, 4, 0.1f, 0.0f, NULL, &e) != GRAFT_OK);
    CHECK(strstr(e.message, "eps") != NULL);
    graft_context_free(ctx);
    return test_finish("norm");
}

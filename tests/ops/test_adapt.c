/* test_adapt.c — the domain-adaptation ops (cl/adapt.cl, op_adapt.c) against double-precision
 * references written from their definitions: Deep CORAL and multi-kernel MMD losses and the
 * gradients they add to the features (each reference gradient proved by central differences
 * first), gradient reversal's backward, the discriminator's binary cross-entropy, and the row
 * zeroing of the unlabelled logits. Outputs are poisoned with NaN; rows past the batch must stay
 * poisoned. */
#include "opcheck.h"

/* ---- references ---- */

/* CORAL: |Cs - Ct|_F^2 / (4 d^2), C = Xc^T Xc / (m - 1); grad (if g) of the same. */
static double ref_coral(const double *f, int ns, int nt, int d, double *g)
{
    double *c[2], *xc[2];
    const int r0[2] = {0, ns}, m[2] = {ns, nt};
    for (int k = 0; k < 2; k++) {
        xc[k] = calloc((size_t)m[k] * d, sizeof(double));
        c[k] = calloc((size_t)d * d, sizeof(double));
        for (int j = 0; j < d; j++) {
            double mean = 0;
            for (int r = 0; r < m[k]; r++) mean += f[(long)(r0[k] + r) * d + j];
            mean /= m[k];
            for (int r = 0; r < m[k]; r++) xc[k][(long)r * d + j] = f[(long)(r0[k] + r) * d + j] - mean;
        }
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) {
                double s = 0;
                for (int r = 0; r < m[k]; r++) s += xc[k][(long)r * d + a] * xc[k][(long)r * d + b];
                c[k][a * d + b] = s / (m[k] - 1);
            }
    }
    double loss = 0;
    for (long i = 0; i < (long)d * d; i++) loss += (c[0][i] - c[1][i]) * (c[0][i] - c[1][i]);
    loss /= 4.0 * d * d;
    if (g)
        for (int k = 0; k < 2; k++)
            for (int r = 0; r < m[k]; r++)
                for (int j = 0; j < d; j++) {
                    double s = 0;
                    for (int q = 0; q < d; q++)
                        s += xc[k][(long)r * d + q] * (c[0][q * d + j] - c[1][q * d + j]);
                    g[(long)(r0[k] + r) * d + j] = (k ? -s : s) / ((double)d * d * (m[k] - 1));
                }
    for (int k = 0; k < 2; k++) {
        free(xc[k]);
        free(c[k]);
    }
    return loss;
}

static double sqdist(const double *f, int d, int i, int j)
{
    double s = 0;
    for (int q = 0; q < d; q++) s += (f[(long)i * d + q] - f[(long)j * d + q]) * (f[(long)i * d + q] - f[(long)j * d + q]);
    return s;
}

static double mmd_bandwidth(const double *f, int n, int d)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) s += sqdist(f, d, i, j);
    return s / ((double)n * n);
}

static double mmd_w(int i, int j, int ns, int nt)
{
    if (i == j) return 0;
    bool si = i < ns, sj = j < ns;
    if (si && sj) return 1.0 / ((double)ns * (ns - 1));
    if (!si && !sj) return 1.0 / ((double)nt * (nt - 1));
    return -1.0 / ((double)ns * nt);
}

/* The unbiased MK-MMD^2 estimate with the bandwidth s2 held fixed (DAN: no gradient through it). */
static double ref_mmd(const double *f, int ns, int nt, int d, double s2, double *g)
{
    const int n = ns + nt;
    double loss = 0;
    if (g) memset(g, 0, (size_t)n * d * sizeof *g);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double w = mmd_w(i, j, ns, nt), dist = sqdist(f, d, i, j), k = 0, dk = 0;
            for (int m = -2; m <= 2; m++) {
                double bw = 2 * s2 * ldexp(1.0, m), e = exp(-dist / bw);
                k += e;
                dk -= e / bw;
            }
            loss += w * k;
            if (g)
                for (int q = 0; q < d; q++) {
                    double diff = f[(long)i * d + q] - f[(long)j * d + q];
                    g[(long)i * d + q] += w * dk * 2 * diff;
                    g[(long)j * d + q] -= w * dk * 2 * diff;
                }
        }
    return loss;
}

/* ---- checks ---- */

static void fd_check(const char *what, double (*fn)(const double *, int, int, int, double, double *),
                     double *f, int ns, int nt, int d, double s2, const double *g)
{
    const int n = ns + nt;
    double maxd = 0, maxa = 1e-12, h = 1e-6;
    for (long t = 0; t < (long)n * d; t++) {
        double o = f[t];
        f[t] = o + h;
        double lp = fn(f, ns, nt, d, s2, NULL);
        f[t] = o - h;
        double lm = fn(f, ns, nt, d, s2, NULL);
        f[t] = o;
        maxd = fmax(maxd, fabs((lp - lm) / (2 * h) - g[t]));
        maxa = fmax(maxa, fabs(g[t]));
    }
    printf("  %-40s rel.err %.2e\n", what, maxd / maxa);
    CHECKF(maxd / maxa < 1e-6, "%s: %.3e", what, maxd / maxa);
}

static double coral_fn(const double *f, int ns, int nt, int d, double s2, double *g)
{
    (void)s2;
    return ref_coral(f, ns, nt, d, g);
}

static void run_align(graft_context *ctx, align_kind kind, int ns, int nt, int d, int max_n,
                      double scale, float weight)
{
    const int n = ns + nt;
    printf("%s ns=%d nt=%d d=%d (buffers for %d rows) features in +-%g, weight %g\n",
           kind == ALIGN_CORAL ? "coral" : "mmd", ns, nt, d, max_n, scale, (double)weight);
    const long cap = (long)max_n * d, total = (long)n * d;
    float *f = malloc(cap * sizeof *f), *g0 = malloc(cap * sizeof *g0);
    oc_fill(f, cap, -scale, scale);
    /* a domain shift: the target's features are stretched and moved */
    for (int i = ns; i < n; i++)
        for (int j = 0; j < d; j++) f[(long)i * d + j] = f[(long)i * d + j] * (1.0f + 0.1f * (float)(j % 4)) + 0.3f;
    oc_fill(g0, cap, -1, 1);
    double *fd = malloc(total * sizeof *fd), *g = malloc(total * sizeof *g),
           *want = malloc(total * sizeof *want);
    for (long i = 0; i < total; i++) fd[i] = f[i];
    double s2 = kind == ALIGN_MMD ? mmd_bandwidth(fd, n, d) : 0;
    double loss = kind == ALIGN_CORAL ? ref_coral(fd, ns, nt, d, g) : ref_mmd(fd, ns, nt, d, s2, g);
    if (total <= 400)
        fd_check("FD reference gradient", kind == ALIGN_CORAL ? coral_fn : ref_mmd, fd, ns, nt, d,
                 s2, g);
    for (long i = 0; i < total; i++) want[i] = g0[i] + weight * g[i];

    align_op op;
    CHECK_OK(align_op_init(ctx, &op, kind, d, max_n, err));
    /* df: zero over the batch's rows (the gradient alone, at full precision), NaN past them */
    float *zeros = calloc((size_t)total, sizeof *zeros);
    graft_error e = {0};
    cl_mem bf = oc_buffer(ctx, f, cap), bdf = oc_buffer(ctx, NULL, cap), bout = oc_buffer(ctx, NULL, 2);
    buffer_write(ctx, bdf, 0, zeros, (size_t)total * sizeof(float), &e);
    CHECK_OK(align_fwd_bwd(ctx, &op, ns, nt, bf, weight, bdf, bout, false, err));
    float *got = oc_read(ctx, bout, 2);
    double wl = weight * loss;
    printf("  %-40s %.9g vs %.9g\n", "loss (device vs reference)", (double)got[0], wl);
    CHECK_CLOSE("weighted loss", got, &wl, 1, 2e-4);
    CHECK(isnan(got[1]));
    free(got);
    double *gw = malloc(total * sizeof *gw);
    for (long i = 0; i < total; i++) gw[i] = weight * g[i];
    got = oc_read(ctx, bdf, cap);
    CHECK_CLOSE("weight * gradient", got, gw, total, 1e-4);
    if (n < max_n) CHECK(isnan(got[total]));
    free(got);
    free(gw);
    /* the gradient is ADDED to what df holds (the other readers' gradients) */
    buffer_write(ctx, bdf, 0, g0, (size_t)total * sizeof(float), &e);
    CHECK_OK(align_fwd_bwd(ctx, &op, ns, nt, bf, weight, bdf, bout, false, err));
    got = oc_read(ctx, bdf, total);
    CHECK_CLOSE("df after (g0 + weight * grad)", got, want, total, 1e-5);
    free(got);
    free(zeros);
    /* accumulate: the loss is added to out[0]; no df: the loss only */
    CHECK_OK(align_fwd_bwd(ctx, &op, ns, nt, bf, weight, NULL, bout, true, err));
    got = oc_read(ctx, bout, 1);
    double twice = 2 * wl;
    CHECK_CLOSE("accumulated loss (two steps)", got, &twice, 1, 2e-4);
    free(got);
    /* too few rows of a domain is an error, not a NaN */
    CHECK(align_fwd_bwd(ctx, &op, 1, nt, bf, weight, bdf, bout, false, &e) != GRAFT_OK);
    clReleaseMemObject(bf);
    clReleaseMemObject(bdf);
    clReleaseMemObject(bout);
    align_op_free(&op);
    free(f);
    free(g0);
    free(fd);
    free(g);
    free(want);
}

static double ref_bce(double l, double t) { return fmax(l, 0) - l * t + log1p(exp(-fabs(l))); }

static void run_bce_grl(graft_context *ctx, int n, int ns)
{
    printf("bce n=%d ns=%d, grl, zero rows\n", n, ns);
    float *l = malloc((n + 1) * sizeof *l);
    oc_fill(l, n + 1, -6, 6);
    l[0] = 40.0f; /* saturated logits stay finite */
    if (n > 1) l[1] = -40.0f;
    double *loss = malloc(n * sizeof *loss), *dl = malloc(n * sizeof *dl);
    const double scale = 0.7 / n;
    for (int i = 0; i < n; i++) {
        double t = i < ns ? 1 : 0, x = l[i];
        loss[i] = ref_bce(x, t);
        dl[i] = scale * (1 / (1 + exp(-x)) - t);
        if (fabs(x) < 20) { /* central differences of the reference */
            double h = 1e-6, fdv = scale * (ref_bce(x + h, t) - ref_bce(x - h, t)) / (2 * h);
            CHECKF(fabs(fdv - dl[i]) < 1e-7, "bce FD row %d: %g vs %g", i, fdv, dl[i]);
        }
    }
    cl_mem bl = oc_buffer(ctx, l, n + 1), bloss = oc_buffer(ctx, NULL, n + 1),
           bdl = oc_buffer(ctx, NULL, n + 1);
    CHECK_OK(bce_fwd_bwd(ctx, n, ns, (float)scale, bl, bloss, bdl, err));
    float *got = oc_read(ctx, bloss, n + 1);
    CHECK_CLOSE("bce per-row loss", got, loss, n, 1e-6);
    CHECK(isnan(got[n]));
    free(got);
    got = oc_read(ctx, bdl, n + 1);
    CHECK_CLOSE("bce dlogit", got, dl, n, 1e-6);
    CHECK(isnan(got[n]));
    free(got);

    /* gradient reversal: dx += -lambda g */
    const long cnt = 3L * n;
    float *g = malloc((cnt + 1) * sizeof *g), *dx = malloc((cnt + 1) * sizeof *dx);
    oc_fill(g, cnt + 1, -2, 2);
    oc_fill(dx, cnt + 1, -2, 2);
    dx[cnt] = NAN;
    double *want = malloc(cnt * sizeof *want);
    const float lambda = 0.37f;
    for (long i = 0; i < cnt; i++) want[i] = (double)dx[i] - (double)lambda * g[i];
    cl_mem bg = oc_buffer(ctx, g, cnt + 1), bdx = oc_buffer(ctx, dx, cnt + 1);
    CHECK_OK(grl_bwd(ctx, cnt, lambda, bg, bdx, err));
    got = oc_read(ctx, bdx, cnt + 1);
    CHECK_CLOSE("grl: dx - lambda g", got, want, cnt, 1e-6);
    CHECK(isnan(got[cnt]));
    free(got);
    /* zero rows [ns, n) of a [n, 3] tensor, nothing else */
    CHECK_OK(zero_rows_f32(ctx, 3L * ns, 3L * (n - ns), bg, err));
    got = oc_read(ctx, bg, cnt + 1);
    int bad = 0;
    for (long i = 0; i <= cnt; i++) bad += i >= 3L * ns && i < cnt ? got[i] != 0.0f : got[i] != g[i];
    CHECKF(bad == 0, "zero_rows_f32: %d elements wrong", bad);
    free(got);
    clReleaseMemObject(bl);
    clReleaseMemObject(bloss);
    clReleaseMemObject(bdl);
    clReleaseMemObject(bg);
    clReleaseMemObject(bdx);
    free(l);
    free(loss);
    free(dl);
    free(g);
    free(dx);
    free(want);
}

int main(void)
{
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    /* FD-checked small shapes, unequal domains, a partly used buffer, then the recipes' shapes */
    run_align(ctx, ALIGN_CORAL, 6, 5, 4, 12, 1.0, 1.0f);
    run_align(ctx, ALIGN_MMD, 6, 5, 4, 12, 1.0, 1.0f);
    run_align(ctx, ALIGN_CORAL, 3, 4, 5, 8, 2.0, 0.5f);
    run_align(ctx, ALIGN_MMD, 4, 2, 3, 6, 0.5, 2.0f);
    if (!small) {
        run_align(ctx, ALIGN_CORAL, 64, 64, 128, 128, 3.0, 1.0f);
        run_align(ctx, ALIGN_MMD, 64, 64, 128, 128, 3.0, 1.0f);
        run_align(ctx, ALIGN_CORAL, 48, 64, 128, 128, 1.0, 1.0f); /* a last, smaller source batch */
        run_align(ctx, ALIGN_MMD, 64, 17, 33, 128, 1.0, 0.3f);
    }
    run_bce_grl(ctx, small ? 7 : 128, small ? 4 : 64);
    graft_context_free(ctx);
    return test_finish("test_adapt");
}

/* test_tensor.c — add2, accumulate, copy and channel concat (forward and backward) against
 * host references; their Jacobians are selections, checked by finite differences of L = r . y.
 * And the eval-mode batchnorm folded into a convolution's weights (batchnorm_fold) against a
 * double-precision fold. */
#include "opcheck.h"

static void test_elementwise(graft_context *ctx, long count)
{
    const long cap = count + 5; /* elements past count must stay untouched */
    printf("elementwise count=%ld\n", count);
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    oc_fill(a, cap, -3, 3);
    oc_fill(b, cap, -3, 3);
    double *ref = malloc(cap * sizeof *ref);
    cl_mem ba = oc_buffer(ctx, a, cap), bb = oc_buffer(ctx, b, cap), by = oc_buffer(ctx, NULL, cap);

    for (long i = 0; i < count; i++) ref[i] = (double)a[i] + b[i];
    oc_poison(ctx, by, cap);
    CHECK_OK(add2_f32(ctx, count, ba, bb, by, err));
    float *got = oc_read(ctx, by, cap);
    CHECK_CLOSE("add2_f32", got, ref, count, 1e-7);
    CHECK(isnan(got[count]) && isnan(got[cap - 1]));
    free(got);

    for (long i = 0; i < count; i++) ref[i] = a[i];
    oc_poison(ctx, by, cap);
    CHECK_OK(copy_f32(ctx, count, ba, by, err));
    got = oc_read(ctx, by, cap);
    CHECK_CLOSE("copy_f32", got, ref, count, 0);
    CHECK(isnan(got[count]));
    free(got);

    /* accumulate twice: y = b + a + a, past count b is unchanged */
    for (long i = 0; i < cap; i++) ref[i] = i < count ? (double)b[i] + 2.0 * a[i] : b[i];
    CHECK_OK(accumulate_f32(ctx, count, ba, bb, err));
    CHECK_OK(accumulate_f32(ctx, count, ba, bb, err));
    got = oc_read(ctx, bb, cap);
    CHECK_CLOSE("accumulate_f32 (twice)", got, ref, cap, 2e-7);
    free(got);
    CHECK_OK(add2_f32(ctx, 0, ba, bb, by, err)); /* empty is a no-op */
    clReleaseMemObject(ba);
    clReleaseMemObject(bb);
    clReleaseMemObject(by);
    free(a);
    free(b);
    free(ref);
}

/* Reference concat: y[i, c0 + c, p] = x[i, c, p]. */
static void ref_concat(int n, int cx, int cy, int c0, int hw, const double *x, double *y)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < cx; c++)
            for (int p = 0; p < hw; p++)
                y[((long)i * cy + c0 + c) * hw + p] = x[((long)i * cx + c) * hw + p];
}

/* Finite differences of L = sum r * concat(x1, x2) against the analytic gradient (r sliced). */
static double fd_concat(int n, int c1, int c2, int hw)
{
    const int cy = c1 + c2;
    long n1 = (long)n * c1 * hw, n2 = (long)n * c2 * hw, ny = (long)n * cy * hw;
    double *x1 = malloc(n1 * sizeof(double)), *x2 = malloc(n2 * sizeof(double)),
           *y = malloc(ny * sizeof(double)), *r = malloc(ny * sizeof(double));
    for (long i = 0; i < n1; i++) x1[i] = oc_uniform();
    for (long i = 0; i < n2; i++) x2[i] = oc_uniform();
    for (long i = 0; i < ny; i++) r[i] = oc_uniform() - 0.5;
    double worst = 0, h = 1e-6;
    for (int which = 0; which < 2; which++) {
        double *x = which ? x2 : x1;
        long nx = which ? n2 : n1;
        int cx = which ? c2 : c1, c0 = which ? c1 : 0;
        for (long k = 0; k < nx; k++) {
            double L[2];
            for (int s = 0; s < 2; s++) {
                double o = x[k];
                x[k] = o + (s ? -h : h);
                ref_concat(n, c1, cy, 0, hw, x1, y);
                ref_concat(n, c2, cy, c1, hw, x2, y);
                x[k] = o;
                L[s] = 0;
                for (long i = 0; i < ny; i++) L[s] += r[i] * y[i];
            }
            long i = k / ((long)cx * hw), rem = k % ((long)cx * hw);
            double ana = r[(i * cy + c0) * hw + rem]; /* concat_bwd's selection */
            worst = fmax(worst, fabs((L[0] - L[1]) / (2 * h) - ana));
        }
    }
    free(x1);
    free(x2);
    free(y);
    free(r);
    return worst;
}

/* Two inputs concatenated along channels at c0 = 0 and c0 = c1 fill y exactly; backward slices
 * them back out. The op is run with n <= nb (buffers sized for nb). */
static void test_concat(graft_context *ctx, int nb, int n, int c1, int c2, int hw)
{
    const int cy = c1 + c2;
    printf("concat n=%d (buffers for %d) channels %d + %d, hw=%d\n", n, nb, c1, c2, hw);
    long n1 = (long)nb * c1 * hw, n2 = (long)nb * c2 * hw, ny = (long)nb * cy * hw;
    float *x1 = malloc(n1 * sizeof *x1), *x2 = malloc(n2 * sizeof *x2), *dy = malloc(ny * sizeof *dy);
    oc_fill(x1, n1, -1, 1);
    oc_fill(x2, n2, 2, 3);
    oc_fill(dy, ny, -5, 5);
    double *ref = malloc(ny * sizeof *ref), *d1 = malloc(n1 * sizeof *d1), *d2 = malloc(n2 * sizeof *d2);
    double *x1d = malloc(n1 * sizeof *x1d), *x2d = malloc(n2 * sizeof *x2d);
    for (long i = 0; i < n1; i++) x1d[i] = x1[i];
    for (long i = 0; i < n2; i++) x2d[i] = x2[i];
    ref_concat(n, c1, cy, 0, hw, x1d, ref);
    ref_concat(n, c2, cy, c1, hw, x2d, ref);
    /* backward reference: the slices of dy, written as its own loop */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < cy; c++)
            for (int p = 0; p < hw; p++) {
                double v = dy[((long)i * cy + c) * hw + p];
                if (c < c1) d1[((long)i * c1 + c) * hw + p] = v;
                else d2[((long)i * c2 + c - c1) * hw + p] = v;
            }
    cl_mem b1 = oc_buffer(ctx, x1, n1), b2 = oc_buffer(ctx, x2, n2), by = oc_buffer(ctx, NULL, ny),
           bdy = oc_buffer(ctx, dy, ny), bd1 = oc_buffer(ctx, NULL, n1), bd2 = oc_buffer(ctx, NULL, n2);
    oc_poison(ctx, by, ny);
    CHECK_OK(concat_fwd(ctx, n, c1, cy, 0, hw, b1, by, err));
    CHECK_OK(concat_fwd(ctx, n, c2, cy, c1, hw, b2, by, err));
    float *got = oc_read(ctx, by, ny);
    CHECK_CLOSE("concat_fwd (both parts)", got, ref, (long)n * cy * hw, 0);
    if (n < nb) CHECK(isnan(got[(long)n * cy * hw]));
    free(got);
    oc_poison(ctx, bd1, n1);
    oc_poison(ctx, bd2, n2);
    CHECK_OK(concat_bwd(ctx, n, c1, cy, 0, hw, bdy, bd1, err));
    CHECK_OK(concat_bwd(ctx, n, c2, cy, c1, hw, bdy, bd2, err));
    got = oc_read(ctx, bd1, n1);
    CHECK_CLOSE("concat_bwd first part", got, d1, (long)n * c1 * hw, 0);
    if (n < nb) CHECK(isnan(got[(long)n * c1 * hw]));
    free(got);
    got = oc_read(ctx, bd2, n2);
    CHECK_CLOSE("concat_bwd second part", got, d2, (long)n * c2 * hw, 0);
    free(got);
    cl_mem all[] = {b1, b2, by, bdy, bd1, bd2};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    free(x1);
    free(x2);
    free(dy);
    free(ref);
    free(d1);
    free(d2);
    free(x1d);
    free(x2d);
}

/* batchnorm_fold: c channels of k weights, with and without a conv bias, against the fold in
 * double; outputs poisoned first, the channel past c untouched. */
static void test_fold(graft_context *ctx, int c, int k, bool has_cb)
{
    printf("bn_fold c=%d k=%d bias=%d\n", c, k, has_cb);
    const long nw = (long)c * k;
    float *w = malloc((nw + k) * sizeof *w), *cb = malloc((c + 1) * sizeof *cb);
    float *gamma = malloc(c * sizeof *gamma), *beta = malloc(c * sizeof *beta);
    float *mean = malloc(c * sizeof *mean), *var = malloc(c * sizeof *var);
    oc_fill(w, nw + k, -1, 1);
    oc_fill(cb, c + 1, -0.5, 0.5);
    oc_fill(gamma, c, 0.5, 2);
    oc_fill(beta, c, -1, 1);
    oc_fill(mean, c, -0.3, 0.3);
    oc_fill(var, c, 1e-6, 3); /* down to far below eps */
    const float eps = 1e-5f;
    double *rw = malloc((nw + k) * sizeof *rw), *rb = malloc((c + 1) * sizeof *rb);
    for (int ch = 0; ch < c; ch++) {
        double g = gamma[ch] / sqrt((double)var[ch] + (double)eps);
        for (int j = 0; j < k; j++) rw[(long)ch * k + j] = w[(long)ch * k + j] * g;
        rb[ch] = ((has_cb ? cb[ch] : 0.0) - mean[ch]) * g + beta[ch];
    }
    cl_mem bw = oc_buffer(ctx, w, nw + k), bcb = oc_buffer(ctx, cb, c + 1);
    cl_mem bg = oc_buffer(ctx, gamma, c), bbeta = oc_buffer(ctx, beta, c);
    cl_mem bm = oc_buffer(ctx, mean, c), bv = oc_buffer(ctx, var, c);
    cl_mem wf = oc_buffer(ctx, NULL, nw + k), bf = oc_buffer(ctx, NULL, c + 1);
    CHECK_OK(batchnorm_fold(ctx, c, eps, k, bw, has_cb ? bcb : NULL, bg, bbeta, bm, bv, wf, bf,
                            err));
    float *got = oc_read(ctx, wf, nw + k);
    CHECK_CLOSE("bn_fold weights", got, rw, nw, 2e-6);
    CHECK(isnan(got[nw]) && isnan(got[nw + k - 1]));
    free(got);
    got = oc_read(ctx, bf, c + 1);
    CHECK_CLOSE("bn_fold bias", got, rb, c, 2e-6);
    CHECK(isnan(got[c]));
    free(got);
    cl_mem all[] = {bw, bcb, bg, bbeta, bm, bv, wf, bf};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    free(w);
    free(cb);
    free(gamma);
    free(beta);
    free(mean);
    free(var);
    free(rw);
    free(rb);
}

int main(void)
{
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    double fd = fd_concat(2, 3, 2, 5);
    printf("FD concat reference gradient: max abs err %.2e\n", fd);
    CHECK(fd < 1e-8);
    long counts_full[] = {1, 63, 64, 1000, 64 * 32 * 28 * 28 + 3};
    long counts_small[] = {1, 67};
    long *counts = small ? counts_small : counts_full;
    size_t ncount = small ? ARRAY_LEN(counts_small) : ARRAY_LEN(counts_full);
    for (size_t i = 0; i < ncount; i++) test_elementwise(ctx, counts[i]);
    if (small) {
        test_concat(ctx, 3, 2, 3, 2, 5);
    } else {
        test_concat(ctx, 4, 4, 3, 5, 7 * 7);     /* odd channels and size */
        test_concat(ctx, 8, 3, 16, 16, 14 * 14); /* last batch */
        test_concat(ctx, 1, 1, 1, 6, 1);         /* batch 1, hw 1 (dense features) */
        test_concat(ctx, 64, 64, 32, 64, 14 * 14);
    }
    test_fold(ctx, 1, 1, false);
    test_fold(ctx, 32, 9, true);
    if (!small) test_fold(ctx, 64, 288, false);
    graft_error e = {0};
    cl_mem m = oc_buffer(ctx, NULL, 16);
    CHECK(concat_fwd(ctx, 1, 3, 4, 2, 1, m, m, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "[2, 5) do not fit in 4") != NULL, "%s", e.message);
    clReleaseMemObject(m);
    graft_context_free(ctx);
    return test_finish("tensor");
}

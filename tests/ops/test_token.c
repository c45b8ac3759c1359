/* test_token.c — the token layers' kernels (cl/token.cl) against double references: patches of an
 * image as token rows and back, the per-sample parameter broadcast and add, their batch-sum
 * gradient, and the mean over tokens with its backward. The backwards are the adjoints of the
 * forwards (every op here is linear): <fwd(x), r> = <x, bwd(r)> is checked in double, which is
 * what central differences of <fwd(x), r> would measure. Outputs are NaN-poisoned first. */
#include "opcheck.h"

static double *dbl(const float *f, long n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (long i = 0; i < n; i++) d[i] = f[i];
    return d;
}

static double dot(const float *a, const float *b, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

#define CHECK_ADJOINT(what, lhs, rhs)                                                              \
    do {                                                                                           \
        const double l_ = (lhs), r_ = (rhs), e_ = fabs(l_ - r_) / fmax(1e-12, fabs(l_));           \
        printf("  %-40s rel.err %.2e\n", what, e_);                                                \
        CHECKF(e_ < 1e-5, "%s: <fwd x, r> %.9g vs <x, bwd r> %.9g", what, l_, r_);                 \
    } while (0)

static void patches(graft_context *ctx, int n, int c, int h, int w, int p)
{
    printf("patches n=%d c=%d %dx%d patch %d\n", n, c, h, w, p);
    const long sz = (long)n * c * h * w;
    const int pw = w / p, k = c * p * p, T = (h / p) * pw;
    float *x = malloc(sz * sizeof(float)), *r = malloc(sz * sizeof(float));
    oc_fill(x, sz, -1, 1);
    oc_fill(r, sz, -1, 1);
    double *ref = malloc(sz * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int t = 0; t < T; t++)
            for (int col = 0; col < k; col++) {
                const int ch = col / (p * p), ky = col % (p * p) / p, kx = col % p;
                const int y0 = t / pw * p + ky, x0 = t % pw * p + kx;
                ref[((long)i * T + t) * k + col] = x[(((long)i * c + ch) * h + y0) * w + x0];
            }
    cl_mem bx = oc_buffer(ctx, x, sz), br = oc_buffer(ctx, r, sz), bp = oc_buffer(ctx, NULL, sz),
           bi = oc_buffer(ctx, NULL, sz);
    graft_error e = {0};
    CHECK_OK(token_patches(ctx, n, c, h, w, p, false, bx, bp, err));
    float *got = oc_read(ctx, bp, sz);
    CHECK_CLOSE("patch rows", got, ref, sz, 0);
    CHECK_OK(token_patches(ctx, n, c, h, w, p, true, br, bi, err));
    float *back = oc_read(ctx, bi, sz);
    CHECK_ADJOINT("patches: back to the image (adjoint)", dot(got, r, sz), dot(x, back, sz));
    free(got);
    free(back);
    cl_mem all[] = {bx, br, bp, bi};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    free(x);
    free(r);
    free(ref);
    (void)e;
}

/* class_token / position_embedding: y[i] = x[i] + p (or p written into a block), dp = sum_i dy[i] */
static void broadcast(graft_context *ctx, int n, int t, int d)
{
    printf("broadcast n=%d t=%d d=%d\n", n, t, d);
    const long len = (long)t * d, sz = n * len, st = (long)(t + 1) * d;
    float *x = malloc(sz * sizeof(float)), *pp = malloc(len * sizeof(float));
    float *dy = malloc(n * st * sizeof(float));
    oc_fill(x, sz, -1, 1);
    oc_fill(pp, len, -1, 1);
    oc_fill(dy, n * st, -1, 1);
    double *ref = malloc(n * st * sizeof(double));
    cl_mem bx = oc_buffer(ctx, x, sz), bp = oc_buffer(ctx, pp, len),
           by = oc_buffer(ctx, NULL, n * st), bdy = oc_buffer(ctx, dy, n * st),
           bg = oc_buffer(ctx, NULL, len + 1);
    graft_error e = {0};
    for (long i = 0; i < sz; i++) ref[i] = (double)x[i] + pp[i % len];
    CHECK_OK(token_add(ctx, n, (int)len, bx, bp, by, err));
    float *got = oc_read(ctx, by, sz);
    CHECK_CLOSE("token_add (position embedding)", got, ref, sz, 1e-7);
    free(got);
    /* the class token: d values into the start of every (t + 1) * d block */
    oc_poison(ctx, by, n * st);
    CHECK_OK(token_broadcast(ctx, n, (int)st, d, bp, by, err));
    got = oc_read(ctx, by, n * st);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) CHECK(got[i * st + j] == pp[j]);
        CHECK(isnan(got[i * st + d])); /* the tokens after it are not its to write */
    }
    free(got);
    /* batch sums: over whole [t, d] samples (position embedding) and row 0 of each (class token) */
    for (int which = 0; which < 2; which++) {
        const long stride = which ? st : len, cnt = which ? d : len;
        double *g = calloc((size_t)cnt, sizeof(double));
        for (int i = 0; i < n; i++)
            for (long r = 0; r < cnt; r++) g[r] += dy[i * stride + r];
        oc_poison(ctx, bg, len + 1);
        CHECK_OK(token_batch_sum(ctx, n, (int)stride, (int)cnt, bdy, bg, err));
        got = oc_read(ctx, bg, cnt + 1);
        CHECK_CLOSE(which ? "batch sum: class token" : "batch sum: position embedding", got, g,
                    cnt, 1e-6);
        CHECK(isnan(got[cnt]));
        free(got);
        free(g);
    }
    cl_mem all[] = {bx, bp, by, bdy, bg};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    free(x);
    free(pp);
    free(dy);
    free(ref);
    (void)e;
}

static void mean(graft_context *ctx, int n, int t, int d)
{
    printf("token_mean n=%d t=%d d=%d\n", n, t, d);
    const long sz = (long)n * t * d, o = (long)n * d;
    float *x = malloc(sz * sizeof(float)), *r = malloc(o * sizeof(float));
    oc_fill(x, sz, -1, 1);
    oc_fill(r, o, -1, 1);
    double *ref = calloc((size_t)o, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < t; k++)
            for (int j = 0; j < d; j++) ref[i * d + j] += x[((long)i * t + k) * d + j] / (double)t;
    cl_mem bx = oc_buffer(ctx, x, sz), by = oc_buffer(ctx, NULL, o + 1), br = oc_buffer(ctx, r, o),
           bdx = oc_buffer(ctx, NULL, sz + 1);
    graft_error e = {0};
    CHECK_OK(token_mean_fwd(ctx, n, t, d, bx, by, err));
    float *got = oc_read(ctx, by, o + 1);
    CHECK_CLOSE("token_mean fwd", got, ref, o, 1e-6);
    CHECK(isnan(got[o]));
    CHECK_OK(token_mean_bwd(ctx, n, t, d, br, bdx, err));
    float *dx = oc_read(ctx, bdx, sz + 1);
    CHECK(isnan(dx[sz]));
    CHECK_ADJOINT("token_mean bwd (adjoint)", dot(got, r, o), dot(x, dx, sz));
    double *rd = dbl(r, o), *dref = malloc(sz * sizeof(double));
    for (long q = 0; q < sz; q++) dref[q] = rd[q / ((long)t * d) * d + q % d] / t;
    CHECK_CLOSE("token_mean bwd", dx, dref, sz, 1e-6);
    free(got);
    free(dx);
    free(rd);
    free(dref);
    cl_mem all[] = {bx, by, br, bdx};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    free(x);
    free(r);
    free(ref);
    (void)e;
}

int main(void)
{
    const int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    if (small) {
        patches(ctx, 2, 2, 6, 9, 3);
        broadcast(ctx, 2, 3, 5);
        mean(ctx, 2, 3, 5);
    } else {
        patches(ctx, 3, 1, 28, 28, 7); /* Fashion-MNIST in 16 patches */
        patches(ctx, 2, 3, 12, 20, 4);
        broadcast(ctx, 5, 49, 64);
        broadcast(ctx, 1, 1, 3);
        mean(ctx, 4, 17, 13);
    }
    graft_error e = {0};
    cl_mem m = oc_buffer(ctx, NULL, 4);
    CHECK(token_patches(ctx, 1, 1, 5, 4, 2, false, m, m, &e) != GRAFT_OK); /* 2 does not divide 5 */
    clReleaseMemObject(m);
    graft_context_free(ctx);
    return test_finish("token");
}

/* test_act.c — every activation forward and backward against a double reference; the reference
 * derivative is checked by central differences of the reference function away from kinks. */
#include "opcheck.h"

static const char *names[] = {"relu", "relu6", "leaky_relu", "gelu", "sigmoid", "tanh"};

static double ref_f(act_kind k, double x, double slope)
{
    switch (k) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case ACT_LEAKY_RELU: return x > 0 ? x : slope * x;
    case ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case ACT_SIGMOID: return 1 / (1 + exp(-x));
    case ACT_TANH: return tanh(x);
    }
    return NAN;
}

static double ref_df(act_kind k, double x, double slope)
{
    switch (k) {
    case ACT_RELU: return x > 0 ? 1 : 0;
    case ACT_RELU6: return x > 0 && x < 6 ? 1 : 0;
    case ACT_LEAKY_RELU: return x > 0 ? 1 : slope;
    case ACT_GELU: {
        double cdf = 0.5 * (1 + erf(x / sqrt(2.0)));
        double pdf = exp(-x * x / 2) / sqrt(2 * M_PI);
        return cdf + x * pdf;
    }
    case ACT_SIGMOID: {
        double s = 1 / (1 + exp(-x));
        return s * (1 - s);
    }
    case ACT_TANH: {
        double t = tanh(x);
        return 1 - t * t;
    }
    }
    return NAN;
}

/* inputs away from the kinks at 0 and 6, so finite differences and float rounding agree on the
 * side of the kink */
static void fill_input(float *x, long n, double lo, double hi)
{
    for (long i = 0; i < n; i++) {
        double v;
        do v = lo + (hi - lo) * oc_uniform();
        while (fabs(v) < 1e-3 || fabs(v - 6) < 1e-3);
        x[i] = (float)v;
    }
}

typedef struct act_case {
    int nb, n;  /* buffers for nb samples, run with n */
    long size;  /* per sample */
    double lo, hi;
} act_case;

static void run_case(graft_context *ctx, act_kind kind, float slope, const act_case *ac)
{
    const long total = ac->n * ac->size, cap = ac->nb * ac->size;
    printf("%s (slope %g) n=%d (buffers for %d) size=%ld x in [%g, %g]\n", names[kind],
           (double)slope, ac->n, ac->nb, ac->size, ac->lo, ac->hi);
    float *x = malloc(cap * sizeof *x), *dy = malloc(cap * sizeof *dy);
    fill_input(x, cap, ac->lo, ac->hi);
    oc_fill(dy, cap, -1, 1);
    double *y = malloc(total * sizeof *y), *dx = malloc(total * sizeof *dx);
    /* reference derivative vs central differences of the reference function */
    double maxd = 0, maxa = 1e-12;
    for (long i = 0; i < total; i++) {
        double h = 1e-6 * fmax(1.0, fabs((double)x[i]));
        double num = (ref_f(kind, x[i] + h, slope) - ref_f(kind, x[i] - h, slope)) / (2 * h);
        double ana = ref_df(kind, x[i], slope);
        maxd = fmax(maxd, fabs(num - ana));
        maxa = fmax(maxa, fabs(ana));
        y[i] = ref_f(kind, x[i], slope);
        dx[i] = dy[i] * ana;
    }
    printf("  %-40s rel.err %.2e\n", "FD reference derivative", maxd / maxa);
    CHECK(maxd / maxa < 1e-7);

    act_op op;
    CHECK_OK(act_op_init(ctx, &op, kind, ac->size, slope, err));
    cl_mem bx = oc_buffer(ctx, x, cap), bdy = oc_buffer(ctx, dy, cap), by = oc_buffer(ctx, NULL, cap),
           bdx = oc_buffer(ctx, NULL, cap);
    oc_poison(ctx, by, cap);
    CHECK_OK(act_fwd(ctx, &op, ac->n, bx, by, err));
    float *got = oc_read(ctx, by, cap);
    CHECK_CLOSE("fwd y", got, y, total, 1e-5);
    if (cap > total) CHECK(isnan(got[total])); /* the last batch writes only its n samples */
    free(got);
    oc_poison(ctx, bdx, cap);
    CHECK_OK(act_bwd(ctx, &op, ac->n, bx, by, bdy, bdx, err));
    got = oc_read(ctx, bdx, cap);
    CHECK_CLOSE("bwd dx", got, dx, total, 1e-5);
    if (cap > total) CHECK(isnan(got[total]));
    free(got);
    /* only the saved tensor the kind needs is read: the other may be absent */
    bool needs_x = kind == ACT_LEAKY_RELU || kind == ACT_GELU;
    CHECK(act_bwd_needs_input(kind) == needs_x);
    oc_poison(ctx, bdx, cap);
    CHECK_OK(act_bwd(ctx, &op, ac->n, needs_x ? bx : NULL, needs_x ? NULL : by, bdy, bdx, err));
    got = oc_read(ctx, bdx, cap);
    CHECK_CLOSE(needs_x ? "bwd dx from x alone" : "bwd dx from y alone", got, dx, total, 1e-5);
    free(got);
    graft_error e = {0};
    CHECK(act_bwd(ctx, &op, ac->n, needs_x ? NULL : bx, needs_x ? by : NULL, bdy, bdx, &e) != 0);
    CHECKF(strstr(e.message, needs_x ? "input x" : "output y") != NULL, "%s", e.message);
    clReleaseMemObject(bx);
    clReleaseMemObject(bdy);
    clReleaseMemObject(by);
    clReleaseMemObject(bdx);
    act_op_free(&op);
    free(x);
    free(dy);
    free(y);
    free(dx);
}

int main(void)
{
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    static const act_case full[] = {
        {3, 3, 5 * 7 * 7, -8, 8},      /* odd sizes; covers relu6's upper kink */
        {1, 1, 3, -3, 3},               /* batch 1, tiny */
        {64, 13, 32 * 14 * 14, -4, 9}, /* Fashion-MNIST CNN activation, last batch of 13 */
        {4, 4, 1001, -40, 40},          /* saturation: exp and erf far in the tails */
    };
    static const act_case tiny[] = {{3, 2, 5 * 3 * 3, -8, 8}};
    const act_case *cases = small ? tiny : full;
    size_t nc = small ? ARRAY_LEN(tiny) : ARRAY_LEN(full);
    for (int k = ACT_RELU; k <= ACT_TANH; k++)
        for (size_t i = 0; i < nc; i++) run_case(ctx, (act_kind)k, 0.01f, &cases[i]);
    /* leaky_relu with another slope, including a negative one (backward must use x, not y) */
    run_case(ctx, ACT_LEAKY_RELU, 0.2f, &cases[0]);
    run_case(ctx, ACT_LEAKY_RELU, -0.5f, &cases[0]);

    act_op op;
    graft_error e = {0};
    CHECK(act_op_init(ctx, &op, (act_kind)17, 10, 0, &e) != GRAFT_OK);
    CHECK(strstr(e.message, "unknown kind 17") != NULL);
    graft_context_free(ctx);
    return test_finish("act");
}

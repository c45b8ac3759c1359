/* test_dense.c — dense forward, backward data and backward weight (W [out, in], PyTorch's layout)
 * on the test device against a double-precision reference written here as plain loops, whose own
 * gradients are checked first by central finite differences; then each fused activation (the
 * GEMM's epilogue with the bias, a split K among them) and its gradient with the bias's. */
#include "opcheck.h"

#include <stdlib.h>

typedef struct dense_case {
    const char *name;
    int n, nsmall, in, out, bias;
} dense_case;

static const dense_case full_cases[] = {
    {"odd sizes", 3, 2, 7, 5, 1},
    {"batch 1, one output", 1, 1, 13, 1, 1},
    {"no bias, in 33 out 17", 5, 3, 33, 17, 0},
    {"one input", 4, 1, 1, 6, 1},
    {"fmnist fc1 3136->128", 64, 17, 3136, 128, 1},
    {"fmnist fc2 128->10", 64, 1, 128, 10, 1},
};
static const dense_case small_cases[] = {
    {"odd sizes", 3, 2, 7, 5, 1},
    {"no bias", 2, 1, 5, 3, 0},
};

static void ref_fwd(int n, int in, int out, int bias, const double *x, const double *w,
                    const double *b, double *y)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = bias ? b[o] : 0.0;
            for (int k = 0; k < in; k++)
                s += x[(long)i * in + k] * w[(long)o * in + k];
            y[(long)i * out + o] = s;
        }
}

/* Scatter each output gradient to its inputs, weights and bias. */
static void ref_bwd(int n, int in, int out, const double *x, const double *w, const double *dy,
                    double *dx, double *dw, double *db)
{
    memset(dx, 0, sizeof(double) * (size_t)n * in);
    memset(dw, 0, sizeof(double) * (size_t)out * in);
    memset(db, 0, sizeof(double) * (size_t)out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double g = dy[(long)i * out + o];
            db[o] += g;
            for (int k = 0; k < in; k++) {
                dx[(long)i * in + k] += g * w[(long)o * in + k];
                dw[(long)o * in + k] += g * x[(long)i * in + k];
            }
        }
}

static double *to_double(const float *p, long n)
{
    double *d = malloc(sizeof(double) * (size_t)n);
    for (long i = 0; i < n; i++)
        d[i] = p[i];
    return d;
}

/* Central differences of L = sum(y * dy) at up to 12 random coordinates of tensor t, normalised
 * by the largest gradient entry. */
static double fd_check(const dense_case *k, int n, double *x, double *w, double *b,
                       const double *dy, double *t, long nt, const double *grad)
{
    long ny = (long)n * k->out;
    double *y = malloc(sizeof(double) * (size_t)ny);
    double maxg = 1e-12, maxd = 0, h = 1e-3;
    for (long i = 0; i < nt; i++)
        maxg = fmax(maxg, fabs(grad[i]));
    for (int r = 0; r < 12; r++) {
        long j = (long)(oc_uniform() * (double)nt);
        double keep = t[j], l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            t[j] = keep + (sgn ? -h : h);
            ref_fwd(n, k->in, k->out, k->bias, x, w, b, y);
            l[sgn] = 0;
            for (long q = 0; q < ny; q++)
                l[sgn] += y[q] * dy[q];
        }
        t[j] = keep;
        maxd = fmax(maxd, fabs((l[0] - l[1]) / (2 * h) - grad[j]));
    }
    free(y);
    return maxd / maxg;
}

static void run_case(graft_context *ctx, const dense_case *k)
{
    int n = k->n, in = k->in, out = k->out;
    long nx = (long)n * in, nw = (long)out * in, ny = (long)n * out;
    printf("case %s: n %d (then %d), in %d, out %d%s\n", k->name, n, k->nsmall, in, out,
           k->bias ? ", bias" : "");
    float *xf = malloc(sizeof(float) * nx), *wf = malloc(sizeof(float) * nw);
    float *bf = malloc(sizeof(float) * out), *dyf = malloc(sizeof(float) * ny);
    oc_fill(xf, nx, -1, 1);
    oc_fill(wf, nw, -0.5, 0.5);
    oc_fill(bf, out, -1, 1);
    oc_fill(dyf, ny, -1, 1);
    double *x = to_double(xf, nx), *w = to_double(wf, nw), *b = to_double(bf, out);
    double *dy = to_double(dyf, ny);
    double *y = malloc(sizeof(double) * ny), *dx = malloc(sizeof(double) * nx);
    double *dw = malloc(sizeof(double) * nw), *db = malloc(sizeof(double) * out);
    ref_fwd(n, in, out, k->bias, x, w, b, y);
    ref_bwd(n, in, out, x, w, dy, dx, dw, db);
    double ex = fd_check(k, n, x, w, b, dy, x, nx, dx);
    double ew = fd_check(k, n, x, w, b, dy, w, nw, dw);
    double eb = k->bias ? fd_check(k, n, x, w, b, dy, b, out, db) : 0;
    printf("  %-40s rel.err %.2e / %.2e / %.2e (tol 1e-06)\n", "reference vs finite diff dx/dw/db",
           ex, ew, eb);
    CHECKF(ex < 1e-6 && ew < 1e-6 && eb < 1e-6, "%s: finite differences", k->name);

    dense_op op;
    graft_error e = {0};
    if (dense_op_init(ctx, &op, in, out, k->bias, &e)) {
        CHECKF(0, "%s: dense_op_init: %s", k->name, e.message);
        goto done;
    }
    cl_mem bx = oc_buffer(ctx, xf, nx), bw = oc_buffer(ctx, wf, nw), bb = oc_buffer(ctx, bf, out);
    cl_mem bdy = oc_buffer(ctx, dyf, ny), by = oc_buffer(ctx, NULL, ny);
    cl_mem bdx = oc_buffer(ctx, NULL, nx), bdw = oc_buffer(ctx, NULL, nw);
    cl_mem bdb = oc_buffer(ctx, NULL, out);
    for (int pass = 0; pass < 2; pass++) {
        int m = pass ? k->nsmall : n;
        if (pass && m == n) break;
        if (pass) {
            ref_fwd(m, in, out, k->bias, x, w, b, y);
            ref_bwd(m, in, out, x, w, dy, dx, dw, db);
        }
        char what[64];
        oc_poison(ctx, by, ny);
        CHECK_OK(dense_fwd(ctx, &op, m, bx, bw, k->bias ? bb : NULL, by, err));
        float *got = oc_read(ctx, by, ny);
        snprintf(what, sizeof what, "n=%d forward", m);
        CHECK_CLOSE(what, got, y, (long)m * out, 1e-5);
        int past = 0;
        for (long i = (long)m * out; i < ny; i++)
            past += !isnan(got[i]);
        CHECKF(past == 0, "%s: forward wrote past sample %d", k->name, m);
        free(got);

        oc_poison(ctx, bdx, nx);
        CHECK_OK(dense_bwd_data(ctx, &op, m, bdy, bw, bdx, err));
        got = oc_read(ctx, bdx, nx);
        snprintf(what, sizeof what, "n=%d backward data", m);
        CHECK_CLOSE(what, got, dx, (long)m * in, 1e-5);
        free(got);

        oc_poison(ctx, bdw, nw);
        oc_poison(ctx, bdb, out);
        CHECK_OK(dense_bwd_weight(ctx, &op, m, bx, bdy, bdw, k->bias ? bdb : NULL, err));
        got = oc_read(ctx, bdw, nw);
        snprintf(what, sizeof what, "n=%d backward weight", m);
        CHECK_CLOSE(what, got, dw, nw, 1e-5);
        free(got);
        if (k->bias) {
            got = oc_read(ctx, bdb, out);
            snprintf(what, sizeof what, "n=%d backward bias", m);
            CHECK_CLOSE(what, got, db, out, 1e-5);
            free(got);
        }
    }
    dense_op_free(&op);
    cl_mem all[] = {bx, bw, bb, bdy, by, bdx, bdw, bdb};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        clReleaseMemObject(all[i]);
done:
    free(xf), free(wf), free(bf), free(dyf);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

/* The activations a dense layer fuses, in double: forward, and the derivative from the output. */
static double ref_act(int kind, double slope, double v)
{
    switch (kind - 1) {
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case ACT_LEAKY_RELU: return v > 0 ? v : v * slope;
    case ACT_SIGMOID: return 1 / (1 + exp(-v));
    default: return tanh(v);
    }
}

static double ref_act_grad(int kind, double slope, double g, double y)
{
    switch (kind - 1) {
    case ACT_RELU: return y > 0 ? g : 0;
    case ACT_RELU6: return y > 0 && y < 6 ? g : 0;
    case ACT_LEAKY_RELU: return y > 0 ? g : g * slope;
    case ACT_SIGMOID: return g * y * (1 - y);
    default: return g * (1 - y * y);
    }
}

/* dense_fwd with a fused activation against act(x W^T + b), then dense_epi_grad: the
 * activation's output gradient turned into the layer's in place, and the bias's from it. */
static void run_epi_case(graft_context *ctx, const dense_case *k, int kind, float slope)
{
    int n = k->n, in = k->in, out = k->out;
    long nx = (long)n * in, nw = (long)out * in, ny = (long)n * out;
    printf("case %s, fused activation %d%s\n", k->name, kind, k->bias ? ", bias" : "");
    float *xf = malloc(sizeof(float) * nx), *wf = malloc(sizeof(float) * nw);
    float *bf = malloc(sizeof(float) * out), *dyf = malloc(sizeof(float) * ny);
    oc_fill(xf, nx, -1, 1);
    oc_fill(wf, nw, -0.5, 0.5);
    oc_fill(bf, out, -1, 1);
    oc_fill(dyf, ny, -1, 1);
    /* weights and bias scaled so that the pre-activation spreads past relu6's 6 on both sides
     * whatever the width (x W^T grows with sqrt(in)) */
    for (long i = 0; i < nw; i++)
        wf[i] = (float)(8.0 * wf[i] / sqrt((double)in));
    for (int o = 0; o < out; o++)
        bf[o] = (float)(8.0 * bf[o]);
    double *x = to_double(xf, nx), *w = to_double(wf, nw), *b = to_double(bf, out);
    double *y = malloc(sizeof(double) * ny), *g = malloc(sizeof(double) * ny);
    double *db = calloc((size_t)out, sizeof(double));
    dense_op op;
    graft_error e = {0};
    epilogue ep = {.kind = kind, .slope = slope};
    if (dense_op_init(ctx, &op, in, out, k->bias, &e) || dense_op_set_epilogue(ctx, &op, &ep, &e)) {
        CHECKF(0, "%s: dense_op_init: %s", k->name, e.message);
        goto done;
    }
    ref_fwd(n, in, out, k->bias, x, w, b, y);
    for (long i = 0; i < ny; i++)
        y[i] = ref_act(kind, slope, y[i]);
    cl_mem bx = oc_buffer(ctx, xf, nx), bw = oc_buffer(ctx, wf, nw), bb = oc_buffer(ctx, bf, out);
    cl_mem by = oc_buffer(ctx, NULL, ny), bdb = oc_buffer(ctx, NULL, out);
    CHECK_OK(dense_fwd(ctx, &op, n, bx, bw, k->bias ? bb : NULL, by, err));
    float *got = oc_read(ctx, by, ny);
    CHECK_CLOSE("forward with the activation", got, y, ny, 1e-5);
    {
        /* bitwise what the plain GEMM and then bias.cl's bias_fwd (the path without a GEMM
         * epilogue: CLBlast, the tiled kernel) write */
        cl_mem bu = oc_buffer(ctx, NULL, ny);
        CHECK_OK(gemm(ctx, false, true, (size_t)n, (size_t)out, (size_t)in, 1.0f, bx, 0,
                      (size_t)in, bw, 0, (size_t)in, 0.0f, bu, 0, (size_t)out, err));
        char opts[160], eo[96];
        epilogue_options(&ep, eo, sizeof eo);
        snprintf(opts, sizeof opts, "-DHW=1 -DHAS_BIAS=%d%s", k->bias ? 1 : 0, eo);
        cl_kernel bk;
        CHECK_OK(kernel_get(ctx, "bias", opts, "bias_fwd", &bk, err));
        cl_mem bbias = bb; /* with HAS_BIAS=0 the kernel reads no bias */
        kernel_arg(bk, 0, sizeof bu, &bu);
        kernel_arg(bk, 1, sizeof bbias, &bbias);
        kernel_arg(bk, 2, sizeof n, &n);
        kernel_arg(bk, 3, sizeof out, &out);
        size_t items = (size_t)n * (size_t)out, l = 16;
        CHECK_OK(launch(ctx, bk, 1, &items, &l, NULL, err));
        float *sep = oc_read(ctx, bu, ny);
        CHECKF(memcmp(sep, got, sizeof(float) * (size_t)ny) == 0,
               "%s: the GEMM's epilogue differs from the GEMM and bias_fwd", k->name);
        printf("  %-40s bitwise equal\n", "epilogue vs GEMM then bias_fwd");
        free(sep);
        clReleaseMemObject(bu);
    }
    /* the gradient from the device's own output, as the backward sees it */
    for (long i = 0; i < ny; i++) {
        g[i] = ref_act_grad(kind, slope, dyf[i], got[i]);
        db[i % out] += g[i];
    }
    free(got);
    cl_mem bdy = oc_buffer(ctx, dyf, ny);
    bool db_done = false;
    CHECK_OK(dense_epi_grad(ctx, &op, n, bdy, by, k->bias ? bdb : NULL, &db_done, err));
    CHECKF(db_done == (k->bias != 0), "%s: the bias gradient %s with the activation's",
           k->name, k->bias ? "not computed" : "computed without a bias");
    got = oc_read(ctx, bdy, ny);
    CHECK_CLOSE("activation gradient, in place", got, g, ny, 1e-6);
    free(got);
    if (k->bias) {
        got = oc_read(ctx, bdb, out);
        CHECK_CLOSE("bias gradient with it", got, db, out, 1e-5);
        free(got);
    }
    dense_op_free(&op);
    cl_mem all[] = {bx, bw, bb, by, bdb, bdy};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        clReleaseMemObject(all[i]);
done:
    free(xf), free(wf), free(bf), free(dyf);
    free(x), free(w), free(b), free(y), free(g), free(db);
}

int main(void)
{
    graft_context *ctx = oc_context();
    const char *small = getenv("GRAFT_TEST_SMALL");
    int is_small = small && *small && strcmp(small, "0") != 0;
    const dense_case *cases = is_small ? small_cases : full_cases;
    size_t ncases = is_small ? ARRAY_LEN(small_cases) : ARRAY_LEN(full_cases);
    for (size_t i = 0; i < ncases; i++)
        run_case(ctx, &cases[i]);
    /* the fused activations: every kind on odd sizes, with and without a bias; relu on fc1's
     * shape and on a K long enough to be split (gemm_reduce writes the epilogue) */
    static const dense_case epi_cases[] = {
        {"odd sizes", 3, 3, 7, 5, 1},
        {"no bias", 5, 5, 33, 17, 0},
        {"fmnist fc1", 64, 64, 3136, 128, 1},
        {"K 9000, split", 3, 3, 9000, 6, 1},
    };
    const int kinds[] = {ACT_RELU, ACT_RELU6, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH};
    for (size_t c = 0; c < ARRAY_LEN(epi_cases); c++)
        for (size_t a = 0; a < ARRAY_LEN(kinds); a++)
            if ((c < 2 || kinds[a] == ACT_RELU) && (!is_small || c == 0 || c == 3))
                run_epi_case(ctx, &epi_cases[c], kinds[a] + 1,
                             kinds[a] == ACT_LEAKY_RELU ? 0.1f : 0.0f);
    /* the split relu case again where a work-item's loops are limited (Mesa's llvmpipe; gemm.c
     * runs K in pieces there, the epilogue with the last): a limit of 700 on any device */
    const long own = ctx->loop_limit;
    ctx->loop_limit = 700;
    printf("loop limit %ld:\n", ctx->loop_limit);
    run_epi_case(ctx, &epi_cases[3], ACT_RELU + 1, 0.0f);
    ctx->loop_limit = own;
    dense_op op;
    graft_error e = {0};
    CHECK(dense_op_init(ctx, &op, 0, 3, true, &e) != GRAFT_OK && strstr(e.message, "in 0"));
    graft_context_free(ctx);
    return test_finish("test_dense");
}

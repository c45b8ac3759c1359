/* test_loss.c — fused softmax cross-entropy with label smoothing against a double reference (loss
 * per sample, correct flags with ties to the lowest index, gradient of the mean loss), the
 * reference gradient checked by central differences, and huge logits for stability. */
#include "opcheck.h"

/* PyTorch's definition, written from scratch in double: log-softmax by log-sum-exp, then
 * (1-eps) * NLL + eps * mean_j(-log p_j). Returns the per-sample loss. */
static double ref_loss(int k, double eps, const double *l, int y)
{
    double mx = l[0];
    for (int j = 1; j < k; j++) mx = fmax(mx, l[j]);
    double s = 0;
    for (int j = 0; j < k; j++) s += exp(l[j] - mx);
    double lse = mx + log(s), smooth = 0;
    for (int j = 0; j < k; j++) smooth += lse - l[j];
    return (1 - eps) * (lse - l[y]) + eps * smooth / k;
}

/* gradient of the MEAN loss over n samples w.r.t. one sample's logits */
static void ref_grad(int k, double eps, int n, const double *l, int y, double *g)
{
    double mx = l[0];
    for (int j = 1; j < k; j++) mx = fmax(mx, l[j]);
    double s = 0;
    for (int j = 0; j < k; j++) s += exp(l[j] - mx);
    for (int j = 0; j < k; j++) {
        double t = (j == y ? 1 - eps : 0) + eps / k;
        g[j] = (exp(l[j] - mx) / s - t) / n;
    }
}

typedef struct xcase {
    int nb, n, k;
    float eps;
    double scale; /* logits uniform in [-scale, scale] */
    int ties;     /* plant exact ties for the argmax */
} xcase;

static void run_case(graft_context *ctx, const xcase *xc)
{
    const int n = xc->n, k = xc->k;
    const long cap = (long)xc->nb * k, total = (long)n * k;
    printf("xent n=%d (buffers for %d) k=%d smoothing=%g logits in +-%g%s\n", n, xc->nb, k,
           (double)xc->eps, xc->scale, xc->ties ? " with ties" : "");
    float *lg = malloc(cap * sizeof *lg);
    int *lab = malloc(xc->nb * sizeof *lab);
    oc_fill(lg, cap, -xc->scale, xc->scale);
    for (int i = 0; i < xc->nb; i++) lab[i] = (int)(oc_uniform() * k);
    if (xc->ties)
        for (int i = 0; i < n; i++) {
            /* the two largest entries equal: argmax is the lower index; the label is one of them
             * every other row so both outcomes are seen */
            int a = (int)(oc_uniform() * (k - 1)), b = a + 1 + (int)(oc_uniform() * (k - 1 - a));
            lg[i * k + a] = lg[i * k + b] = (float)(2 * xc->scale + 1);
            lab[i] = i % 2 ? a : b;
        }
    /* make some rows correct on purpose (label = argmax) */
    for (int i = 0; i < n; i += 3)
        if (!xc->ties) {
            int am = 0;
            for (int j = 1; j < k; j++)
                if (lg[i * k + j] > lg[i * k + am]) am = j;
            lab[i] = am;
        }
    double *ld = malloc(cap * sizeof *ld), *loss = malloc(n * sizeof *loss),
           *grad = malloc(total * sizeof *grad), *corr = malloc(n * sizeof *corr);
    for (long i = 0; i < cap; i++) ld[i] = lg[i];
    for (int i = 0; i < n; i++) {
        loss[i] = ref_loss(k, xc->eps, ld + (long)i * k, lab[i]);
        ref_grad(k, xc->eps, n, ld + (long)i * k, lab[i], grad + (long)i * k);
        int am = 0;
        for (int j = 1; j < k; j++)
            if (ld[i * k + j] > ld[i * k + am]) am = j;
        corr[i] = am == lab[i];
    }
    /* finite differences of the mean loss prove the reference gradient */
    if (total <= 2000 && xc->scale <= 10) {
        double maxd = 0, maxa = 1e-12, h = 1e-5;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) {
                double *v = ld + (long)i * k + j, o = *v;
                *v = o + h;
                double lp = ref_loss(k, xc->eps, ld + (long)i * k, lab[i]) / n;
                *v = o - h;
                double lm = ref_loss(k, xc->eps, ld + (long)i * k, lab[i]) / n;
                *v = o;
                maxd = fmax(maxd, fabs((lp - lm) / (2 * h) - grad[i * k + j]));
                maxa = fmax(maxa, fabs(grad[i * k + j]));
            }
        printf("  %-40s rel.err %.2e\n", "FD reference gradient", maxd / maxa);
        CHECK(maxd / maxa < 1e-7);
    }

    xent_op op;
    CHECK_OK(xent_op_init(ctx, &op, k, xc->eps, err));
    graft_error e = {0};
    cl_mem bl = oc_buffer(ctx, lg, cap), bloss = oc_buffer(ctx, NULL, xc->nb),
           bg = oc_buffer(ctx, NULL, cap), blab, bcor;
    CHECK_OK(buffer_create(ctx, xc->nb * sizeof(int), &blab, err));
    CHECK_OK(buffer_create(ctx, xc->nb * sizeof(int), &bcor, err));
    CHECK_OK(buffer_write(ctx, blab, 0, lab, xc->nb * sizeof(int), err));
    oc_poison(ctx, bcor, xc->nb); /* int buffer: the NaN pattern is 0x7fc00000, neither 0 nor 1 */
    oc_poison(ctx, bloss, xc->nb);
    oc_poison(ctx, bg, cap);
    CHECK_OK(xent_fwd_bwd(ctx, &op, n, bl, blab, bloss, bcor, bg, err));
    float *got = oc_read(ctx, bloss, xc->nb);
    double scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(loss[i]));
    CHECK_CLOSE("per-sample loss", got, loss, n, xc->scale > 100 ? 1e-6 : 1e-5);
    if (n < xc->nb) CHECK(isnan(got[n]));
    /* row by row too: a small loss next to huge ones must still be right (the max-normalised
     * error alone would hide it) */
    int rows_bad = 0;
    for (int i = 0; i < n; i++)
        rows_bad += !(fabs(got[i] - loss[i]) <= 1e-5 * fmax(1.0, fabs(loss[i])));
    CHECKF(rows_bad == 0, "%d rows off by more than 1e-5 * max(1, |loss|)", rows_bad);
    double mean = 0, gmean = 0;
    for (int i = 0; i < n; i++) {
        mean += loss[i] / n;
        gmean += got[i] / n;
    }
    printf("  %-40s %.6f vs %.6f\n", "mean loss (device vs reference)", gmean, mean);
    free(got);
    int *gc = malloc(xc->nb * sizeof *gc);
    CHECK_OK(buffer_read(ctx, bcor, 0, gc, xc->nb * sizeof(int), err));
    int bad = 0, ncorrect = 0;
    for (int i = 0; i < n; i++) {
        bad += gc[i] != (int)corr[i];
        ncorrect += gc[i] == 1;
    }
    printf("  %-40s %d of %d correct, %d flags wrong\n", "correct flags", ncorrect, n, bad);
    CHECK(bad == 0);
    free(gc);
    got = oc_read(ctx, bg, cap);
    CHECK_CLOSE("dlogits (mean loss)", got, grad, total, 1e-5);
    if (n < xc->nb) CHECK(isnan(got[total]));
    free(got);
    /* evaluation: no gradient, the loss only */
    oc_poison(ctx, bloss, xc->nb);
    oc_poison(ctx, bg, cap);
    CHECK_OK(xent_fwd_bwd(ctx, &op, n, bl, blab, bloss, NULL, NULL, err));
    got = oc_read(ctx, bloss, n);
    CHECK_CLOSE("per-sample loss, no dlogits", got, loss, n, xc->scale > 100 ? 1e-6 : 1e-5);
    free(got);
    got = oc_read(ctx, bg, 1);
    CHECK(isnan(got[0]));
    free(got);
    clReleaseMemObject(bl);
    clReleaseMemObject(bloss);
    clReleaseMemObject(bg);
    clReleaseMemObject(blab);
    clReleaseMemObject(bcor);
    xent_op_free(&op);
    free(lg);
    free(lab);
    free(ld);
    free(loss);
    free(grad);
    free(corr);
    (void)e;
}

int main(void)
{
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    static const xcase full[] = {
        {8, 8, 10, 0.0f, 3, 0},       /* plain cross-entropy */
        {8, 8, 10, 0.1f, 3, 0},       /* label smoothing */
        {64, 64, 10, 0.1f, 5, 0},     /* Fashion-MNIST batch */
        {64, 23, 10, 0.1f, 5, 0},     /* last batch */
        {1, 1, 3, 0.2f, 2, 0},        /* batch 1 */
        {5, 5, 1, 0.1f, 2, 0},        /* one class: loss 0, gradient 0 */
        {16, 16, 7, 0.05f, 2, 1},     /* exact ties: lowest index wins */
        {32, 32, 10, 0.1f, 1e4, 0},   /* huge logits: still finite and exact */
        {32, 32, 10, 0.0f, 1e4, 0},   /* huge logits, no smoothing: right rows lose ~0 */
        {32, 32, 1000, 0.1f, 1e4, 0}, /* many classes, huge logits */
    };
    static const xcase tiny[] = {{4, 3, 5, 0.1f, 3, 0}, {4, 4, 3, 0.1f, 1e4, 0}, {4, 4, 7, 0.05f, 2, 1}};
    const xcase *cases = small ? tiny : full;
    size_t nc = small ? ARRAY_LEN(tiny) : ARRAY_LEN(full);
    for (size_t i = 0; i < nc; i++) run_case(ctx, &cases[i]);

    /* a label out of range gives NaN (never a silent plausible loss) */
    xent_op op;
    CHECK_OK(xent_op_init(ctx, &op, 4, 0.0f, err));
    float lg[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    int lab[2] = {1, 4};
    cl_mem bl = oc_buffer(ctx, lg, 8), bloss = oc_buffer(ctx, NULL, 2), blab;
    CHECK_OK(buffer_create(ctx, sizeof lab, &blab, err));
    CHECK_OK(buffer_write(ctx, blab, 0, lab, sizeof lab, err));
    CHECK_OK(xent_fwd_bwd(ctx, &op, 2, bl, blab, bloss, NULL, NULL, err));
    float *got = oc_read(ctx, bloss, 2);
    CHECK(isfinite(got[0]) && isnan(got[1]));
    free(got);
    clReleaseMemObject(bl);
    clReleaseMemObject(bloss);
    clReleaseMemObject(blab);
    xent_op_free(&op);
    graft_error e = {0};
    CHECK(xent_op_init(ctx, &op, 10, 1.5f, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "smoothing") != NULL, "%s", e.message);
    graft_context_free(ctx);
    return test_finish("loss");
}

/* test_optim.c — every optimizer (SGD, momentum, Nesterov, Adam, AdamW; weight decay, L2-SP, a
 * per-step lr schedule) for several steps against a double reference that follows PyTorch's
 * documented algorithms. With --dump it prints the problems and both results, so
 * tests/torch/test_optim_torch.py can replay them in torch.optim and check the reference too. */
#include "opcheck.h"
#include "recipe.h"

typedef struct ocfg {
    const char *name;
    int kind;
    float lr, momentum, beta1, beta2, eps, wd, l2sp;
} ocfg;

static const ocfg configs[] = {
    {"sgd", OPT_SGD, 0.1f, 0, 0, 0, 0, 0, 0},
    {"sgd_wd", OPT_SGD, 0.1f, 0, 0, 0, 0, 0.01f, 0},
    {"momentum", OPT_MOMENTUM, 0.05f, 0.9f, 0, 0, 0, 0, 0},
    {"momentum_wd", OPT_MOMENTUM, 0.05f, 0.9f, 0, 0, 0, 1e-3f, 0},
    {"nesterov_wd", OPT_NESTEROV, 0.05f, 0.9f, 0, 0, 0, 1e-3f, 0},
    {"adam", OPT_ADAM, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 0, 0},
    {"adam_wd", OPT_ADAM, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 0.01f, 0},
    {"adam_betas", OPT_ADAM, 3e-3f, 0, 0.8f, 0.9f, 1e-6f, 0, 0},
    {"adamw", OPT_ADAMW, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 0.05f, 0},
    {"sgd_l2sp", OPT_SGD, 0.1f, 0, 0, 0, 0, 0, 0.1f},
    {"momentum_wd_l2sp", OPT_MOMENTUM, 0.05f, 0.9f, 0, 0, 0, 1e-3f, 0.1f},
    {"nesterov_l2sp", OPT_NESTEROV, 0.05f, 0.9f, 0, 0, 0, 0, 0.2f},
    {"adam_wd_l2sp", OPT_ADAM, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 0.01f, 0.1f},
    {"adamw_l2sp", OPT_ADAMW, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 0.05f, 0.1f},
};

#define STEPS 6

/* a schedule: the lr changes every step, as a runtime argument */
static float lr_at(const ocfg *c, int t)
{
    return c->lr * (1.0f - 0.1f * (float)(t - 1));
}

/* PyTorch's documented algorithms (torch.optim.SGD / Adam / AdamW docs), in double. L2-SP is
 * added to the gradient before the optimizer sees it, weight decay inside it (not AdamW). */
static void ref_run(const ocfg *c, long count, const float *w0, float *const *grads, double *w,
                    double *m, double *v)
{
    for (long i = 0; i < count; i++) w[i] = w0[i], m[i] = v[i] = 0;
    for (int t = 1; t <= STEPS; t++) {
        const double lr = lr_at(c, t), mu = c->momentum, b1 = c->beta1, b2 = c->beta2;
        for (long i = 0; i < count; i++) {
            double g = grads[t - 1][i];
            g += (double)c->l2sp * (w[i] - w0[i]);
            if (c->kind != OPT_ADAMW) g += (double)c->wd * w[i];
            switch (c->kind) {
            case OPT_SGD: w[i] -= lr * g; break;
            case OPT_MOMENTUM:
            case OPT_NESTEROV:
                m[i] = t == 1 ? g : mu * m[i] + g; /* buffer created from the first gradient */
                w[i] -= lr * (c->kind == OPT_NESTEROV ? g + mu * m[i] : m[i]);
                break;
            case OPT_ADAM:
            case OPT_ADAMW: {
                if (c->kind == OPT_ADAMW) w[i] -= lr * c->wd * w[i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
                w[i] -= lr * mh / (sqrt(vh) + c->eps);
                break;
            }
            }
        }
    }
}

static void dump_floats(const char *tag, const float *p, long n)
{
    printf("%s", tag);
    for (long i = 0; i < n; i++) printf(" %.17g", (double)p[i]); /* the float's exact value */
    printf("\n");
}
static void dump_doubles(const char *tag, const double *p, long n)
{
    printf("%s", tag);
    for (long i = 0; i < n; i++) printf(" %.17g", p[i]);
    printf("\n");
}

static void run_config(graft_context *ctx, optim_op *op, const ocfg *c, long count, int dump)
{
    float *w0 = malloc(count * sizeof *w0), *grads[STEPS];
    oc_fill(w0, count, -1, 1);
    for (int t = 0; t < STEPS; t++) {
        grads[t] = malloc(count * sizeof(float));
        oc_fill(grads[t], count, -1, 1);
        for (long i = 0; i < count; i += 7) grads[t][i] *= 1e-3f; /* small ones too (Adam's eps) */
    }
    double *w = malloc(count * sizeof *w), *m = malloc(count * sizeof *m),
           *v = malloc(count * sizeof *v);
    ref_run(c, count, w0, grads, w, m, v);

    const bool has_m = c->kind != OPT_SGD, adam = c->kind == OPT_ADAM || c->kind == OPT_ADAMW;
    cl_mem bw = oc_buffer(ctx, w0, count), bg = oc_buffer(ctx, NULL, count),
           bm = has_m ? oc_buffer(ctx, NULL, count) : NULL, /* NaN: step 1 must not read it */
        bv = adam ? oc_buffer(ctx, NULL, count) : NULL,
           bw0 = c->l2sp != 0 ? oc_buffer(ctx, w0, count) : NULL;
    for (int t = 1; t <= STEPS; t++) {
        graft_error e = {0};
        buffer_write(ctx, bg, 0, grads[t - 1], count * sizeof(float), &e);
        optim_hparams h = {c->kind, lr_at(c, t), c->momentum, c->beta1, c->beta2,
                           c->eps,  c->wd,       c->l2sp,     t};
        CHECK_OK(optim_step(ctx, op, &h, count, bw, bg, bm, bv, bw0, err));
    }
    float *gw = oc_read(ctx, bw, count);
    if (dump) {
        printf("config %s kind %d lr %.17g momentum %.17g beta1 %.17g beta2 %.17g eps %.17g "
               "wd %.17g l2sp %.17g steps %d count %ld\n",
               c->name, c->kind, (double)c->lr, (double)c->momentum, (double)c->beta1,
               (double)c->beta2, (double)c->eps, (double)c->wd, (double)c->l2sp, STEPS, count);
        for (int t = 1; t <= STEPS; t++) printf("lr %d %.17g\n", t, (double)lr_at(c, t));
        dump_floats("w0", w0, count);
        for (int t = 0; t < STEPS; t++) dump_floats("g", grads[t], count);
        dump_doubles("ref_w", w, count);
        dump_floats("dev_w", gw, count);
    } else {
        printf("%s (%ld params, %d steps)\n", c->name, count, STEPS);
        /* compare the change of the weights: errors in small updates would hide under |w| */
        float *dd = malloc(count * sizeof *dd);
        double *rd = malloc(count * sizeof *rd);
        for (long i = 0; i < count; i++) {
            dd[i] = gw[i] - w0[i];
            rd[i] = w[i] - w0[i];
        }
        /* normalised by max |w - w0|, floored at 5% of max |w| so that a lone parameter whose
         * updates happen to cancel is not judged on float rounding of w itself */
        double maxdiff = 0, maxd = 0, maxw = 0;
        for (long i = 0; i < count; i++) {
            maxdiff = fmax(maxdiff, fabs(dd[i] - rd[i]));
            maxd = fmax(maxd, fabs(rd[i]));
            maxw = fmax(maxw, fabs(w[i]));
        }
        double derr = maxdiff / fmax(maxd, 0.05 * maxw);
        printf("  %-40s rel.err %.2e (tol 1e-04)\n", "w - w0 after all steps", derr);
        CHECKF(derr <= 1e-4, "%s w - w0: relative error %.3e", c->name, derr);
        CHECK_CLOSE("w after all steps", gw, w, count, 1e-5);
        if (has_m) {
            float *gm = oc_read(ctx, bm, count);
            CHECK_CLOSE(adam ? "exp_avg (m)" : "momentum buffer", gm, m, count, 1e-5);
            free(gm);
        }
        if (adam) {
            float *gv = oc_read(ctx, bv, count);
            CHECK_CLOSE("exp_avg_sq (v)", gv, v, count, 1e-5);
            free(gv);
        }
        free(dd);
        free(rd);
    }
    cl_mem all[] = {bw, bg, bm, bv, bw0};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        if (all[i]) clReleaseMemObject(all[i]);
    for (int t = 0; t < STEPS; t++) free(grads[t]);
    free(gw);
    free(w0);
    free(w);
    free(m);
    free(v);
}

int main(int argc, char **argv)
{
    int dump = argc > 1 && strcmp(argv[1], "--dump") == 0;
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    if (dump) {
        /* stdout carries the data: keep the device line off it */
        graft_error e = {0};
        graft_context *ctx;
        if (graft_context_create(NULL, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
        optim_op op;
        CHECK_OK(optim_op_init(ctx, &op, err));
        for (size_t i = 0; i < ARRAY_LEN(configs); i++) run_config(ctx, &op, &configs[i], 257, 1);
        optim_op_free(&op);
        graft_context_free(ctx);
        return t_failures ? 1 : 0;
    }
    graft_context *ctx = oc_context();
    optim_op op;
    CHECK_OK(optim_op_init(ctx, &op, err));
    long counts_full[] = {1, 1001, 64 * 32 * 3 * 3 + 5};
    long counts_small[] = {37};
    long *counts = small ? counts_small : counts_full;
    size_t ncount = small ? ARRAY_LEN(counts_small) : ARRAY_LEN(counts_full);
    for (size_t k = 0; k < ncount; k++)
        for (size_t i = 0; i < ARRAY_LEN(configs); i++)
            run_config(ctx, &op, &configs[i], counts[k], 0);

    /* optim_step_at updates [base, base + count) of each buffer and nothing outside it (the
     * pipeline's run over neighbouring tensors): outside, weights 7 with gradients 1, which any
     * update would move, must stay 7 */
    {
        const long n = 300, base = 100, cnt = 37;
        float *hw = malloc(n * sizeof *hw), *hg = malloc(n * sizeof *hg);
        for (long i = 0; i < n; i++) {
            hw[i] = i >= base && i < base + cnt ? 0.5f : 7.0f;
            hg[i] = i >= base && i < base + cnt ? (float)(i - base) - 18.0f : 1.0f;
        }
        cl_mem bw = oc_buffer(ctx, hw, n), bg = oc_buffer(ctx, hg, n);
        cl_mem bm = oc_buffer(ctx, hw, n), bv = oc_buffer(ctx, hw, n);
        optim_hparams ha = {OPT_ADAM, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 0, 0, 1};
        CHECK_OK(optim_step_at(ctx, &op, &ha, base, cnt, bw, bg, bm, bv, NULL, err));
        float *out = oc_read(ctx, bw, n);
        int inside_ok = 1, outside_ok = 1;
        for (long i = 0; i < n; i++) {
            bool in = i >= base && i < base + cnt;
            /* Adam's first step: w - lr * sign(g) (g = 0 stays put) */
            float want = hg[i] > 0 ? 0.49f : hg[i] < 0 ? 0.51f : 0.5f;
            if (in && fabsf(out[i] - want) > 1e-5f) inside_ok = 0;
            if (!in && out[i] != 7.0f) outside_ok = 0;
        }
        CHECKF(inside_ok, "optim_step_at: the range [%ld, %ld) not updated as Adam's first step",
               base, base + cnt);
        CHECKF(outside_ok, "optim_step_at wrote outside [%ld, %ld)", base, base + cnt);
        free(out);
        free(hw);
        free(hg);
        clReleaseMemObject(bw);
        clReleaseMemObject(bg);
        clReleaseMemObject(bm);
        clReleaseMemObject(bv);
    }

    /* missing state buffers and bad steps are errors with a message, never a crash */
    graft_error e = {0};
    cl_mem b = oc_buffer(ctx, NULL, 4);
    optim_hparams h = {OPT_ADAM, 1e-3f, 0, 0.9f, 0.999f, 1e-8f, 0, 0, 1};
    CHECK(optim_step(ctx, &op, &h, 4, b, b, b, NULL, NULL, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "missing state buffer v") != NULL, "%s", e.message);
    h.kind = OPT_MOMENTUM;
    CHECK(optim_step(ctx, &op, &h, 4, b, b, NULL, NULL, NULL, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "momentum: missing state buffer m") != NULL, "%s", e.message);
    h.kind = OPT_SGD;
    h.l2sp = 0.1f;
    CHECK(optim_step(ctx, &op, &h, 4, b, b, NULL, NULL, NULL, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "w0") != NULL, "%s", e.message);
    h.l2sp = 0;
    h.t = 0;
    CHECK(optim_step(ctx, &op, &h, 4, b, b, NULL, NULL, NULL, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "t=0") != NULL, "%s", e.message);
    clReleaseMemObject(b);
    optim_op_free(&op);
    graft_context_free(ctx);
    return test_finish("optim");
}

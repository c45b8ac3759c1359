/* op_optim.c — host side of the fused optimizer updates (cl/optim.cl): validates the state
 * buffers a kind needs and computes Adam's bias corrections in double. */
#include "ops.h"

#include <math.h>
#include <stdio.h>

graft_status optim_op_init(graft_context *ctx, optim_op *op, graft_error *e)
{
    *op = (optim_op){0};
    graft_status s;
    /* parameters per work-item: see cl/optim.cl */
    op->chunk = ctx->info.type == GRAFT_DEVICE_CPU ? 256 : 1;
    char opts[32];
    snprintf(opts, sizeof opts, "-DCHUNK=%d", op->chunk);
    if ((s = kernel_create(ctx, "optim", opts, "optim_sgd", &op->sgd, e)) ||
        (s = kernel_create(ctx, "optim", opts, "optim_adam", &op->adam, e))) {
        optim_op_free(op);
        return s;
    }
    return GRAFT_OK;
}

void optim_op_free(optim_op *op)
{
    if (op->sgd) clReleaseKernel(op->sgd);
    if (op->adam) clReleaseKernel(op->adam);
    op->sgd = op->adam = NULL;
}

static const char *kind_name(int kind)
{
    static const char *names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    return kind >= 0 && kind < (int)ARRAY_LEN(names) ? names[kind] : "?";
}

graft_status optim_step(graft_context *ctx, optim_op *op, const optim_hparams *h, long count,
                        cl_mem w, cl_mem g, cl_mem m, cl_mem v, cl_mem w0, graft_error *e)
{
    return optim_step_at(ctx, op, h, 0, count, w, g, m, v, w0, e);
}

graft_status optim_step_at(graft_context *ctx, optim_op *op, const optim_hparams *h, long base,
                           long count, cl_mem w, cl_mem g, cl_mem m, cl_mem v, cl_mem w0,
                           graft_error *e)
{
    if (!op->sgd || !op->adam)
        return err_set(e, GRAFT_STATUS_INTERNAL, "optimizer: op not initialised");
    if (h->kind < OPT_SGD || h->kind > OPT_ADAMW)
        return err_set(e, GRAFT_STATUS_INTERNAL, "optimizer: unknown kind %d", h->kind);
    if (h->t < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "optimizer %s: step count t=%ld, expected >= 1",
                       kind_name(h->kind), h->t);
    if (count < 0 || base < 0)
        return err_set(e, GRAFT_STATUS_INTERNAL, "optimizer: negative count %ld or base %ld",
                       count, base);
    bool adam = h->kind == OPT_ADAM || h->kind == OPT_ADAMW;
    if ((h->kind != OPT_SGD && !m) || (adam && !v))
        return err_set(e, GRAFT_STATUS_INTERNAL, "optimizer %s: missing state buffer %s",
                       kind_name(h->kind), !m ? "m" : "v");
    if (h->l2sp != 0.0f && !w0)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "optimizer %s: l2sp = %g needs the reference weights w0",
                       kind_name(h->kind), (double)h->l2sp);
    if (count == 0) return GRAFT_OK;
    cl_long cnt = count, b0 = base;
    const int first = h->t == 1;
    size_t gsz = ((size_t)count + (size_t)op->chunk - 1) / (size_t)op->chunk, l = 64;
    cl_kernel k;
    if (!adam) {
        k = op->sgd;
        const int kind = h->kind == OPT_SGD ? 0 : h->kind == OPT_MOMENTUM ? 1 : 2;
        SET_ARGS(k, 12, KARG(cnt), KARG(kind), KARG(first), KARG(h->lr), KARG(h->momentum),
                 KARG(h->weight_decay), KARG(h->l2sp), KARG(w), KARG(g), KARG(m), KARG(w0),
                 KARG(b0));
    } else {
        k = op->adam;
        const int decoupled = h->kind == OPT_ADAMW;
        /* as torch.optim: bias corrections from Python floats (double), used in float */
        const double bc1 = 1.0 - pow((double)h->beta1, (double)h->t);
        const double bc2 = 1.0 - pow((double)h->beta2, (double)h->t);
        if (!(bc1 > 0.0) || !(bc2 > 0.0))
            return err_set(e, GRAFT_STATUS_INTERNAL,
                           "optimizer %s: betas must be in [0, 1) (beta1=%g beta2=%g)",
                           kind_name(h->kind), (double)h->beta1, (double)h->beta2);
        const float step_size = (float)((double)h->lr / bc1);
        const float bc2_sqrt = (float)sqrt(bc2);
        SET_ARGS(k, 17, KARG(cnt), KARG(decoupled), KARG(first), KARG(h->lr), KARG(h->beta1),
                 KARG(h->beta2), KARG(h->eps), KARG(h->weight_decay), KARG(h->l2sp),
                 KARG(step_size), KARG(bc2_sqrt), KARG(w), KARG(g), KARG(m), KARG(v), KARG(w0),
                 KARG(b0));
    }
    return launch(ctx, k, 1, &gsz, &l, NULL, e);
}

/* op_act.c — host side of the elementwise activations (cl/act.cl): one kernel pair per kind
 * (and slope), enqueued over n * size elements. */
#include "ops.h"

#include <math.h>
#include <stdio.h>

graft_status act_op_init(graft_context *ctx, act_op *op, act_kind kind, long size, float slope,
                         graft_error *e)
{
    *op = (act_op){0};
    if ((int)kind < ACT_RELU || kind > ACT_TANH)
        return err_set(e, GRAFT_STATUS_INTERNAL, "activation: unknown kind %d", (int)kind);
    if (size <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "activation: bad size %ld", size);
    if (!isfinite(slope))
        return err_set(e, GRAFT_STATUS_INTERNAL, "activation: slope is not finite");
    op->kind = kind;
    op->size = size;
    op->slope = slope;
    char opts[128];
    /* only leaky_relu depends on the slope: the others share one program whatever it is */
    if (kind == ACT_LEAKY_RELU)
        snprintf(opts, sizeof opts, "-DACT=%d -DSLOPE=%.9ef", (int)kind, (double)slope);
    else
        snprintf(opts, sizeof opts, "-DACT=%d", (int)kind);
    graft_status s;
    if ((s = kernel_create(ctx, "act", opts, "act_fwd", &op->fwd, e)) ||
        (s = kernel_create(ctx, "act", opts, "act_bwd", &op->bwd, e))) {
        act_op_free(op);
        return s;
    }
    return GRAFT_OK;
}

bool act_bwd_needs_input(act_kind kind)
{
    /* leaky_relu with a negative slope is not monotone, so y does not tell the side of the kink;
     * gelu's derivative is not a function of y at all */
    return kind == ACT_LEAKY_RELU || kind == ACT_GELU;
}

void act_op_free(act_op *op)
{
    if (op->fwd) clReleaseKernel(op->fwd);
    if (op->bwd) clReleaseKernel(op->bwd);
    op->fwd = op->bwd = NULL;
}

graft_status act_fwd(graft_context *ctx, act_op *op, int n, cl_mem x, cl_mem y, graft_error *e)
{
    if (!op->fwd) return err_set(e, GRAFT_STATUS_INTERNAL, "activation: op not initialised");
    if (n <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "activation: bad batch count %d", n);
    cl_long total = (cl_long)n * op->size;
    SET_ARG(op->fwd, 0, total);
    SET_ARG(op->fwd, 1, x);
    SET_ARG(op->fwd, 2, y);
    size_t g = (size_t)((total + 7) / 8), l = 64; /* eight elements per work-item */
    return launch(ctx, op->fwd, 1, &g, &l, NULL, e);
}

graft_status act_bwd(graft_context *ctx, act_op *op, int n, cl_mem x, cl_mem y, cl_mem dy, cl_mem dx,
                     graft_error *e)
{
    if (!op->bwd) return err_set(e, GRAFT_STATUS_INTERNAL, "activation: op not initialised");
    if (n <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "activation: bad batch count %d", n);
    /* say early which saved tensor a kind needs, rather than reading a NULL pointer */
    bool needs_x = act_bwd_needs_input(op->kind);
    if (needs_x ? !x : !y)
        return err_set(e, GRAFT_STATUS_INTERNAL, "activation backward needs the saved %s",
                       needs_x ? "input x" : "output y");
    cl_long total = (cl_long)n * op->size;
    SET_ARG(op->bwd, 0, total);
    SET_ARG(op->bwd, 1, x);
    SET_ARG(op->bwd, 2, y);
    SET_ARG(op->bwd, 3, dy);
    SET_ARG(op->bwd, 4, dx);
    size_t g = (size_t)((total + 7) / 8), l = 64; /* eight elements per work-item */
    return launch(ctx, op->bwd, 1, &g, &l, NULL, e);
}

void epilogue_options(const epilogue *ep, char *buf, size_t n)
{
    if (!ep || !ep->kind) {
        if (n) buf[0] = '\0';
        return;
    }
    if (ep->kind == ACT_LEAKY_RELU + 1)
        snprintf(buf, n, " -DEPI=%d -DEPI_SLOPE=%.9ef", ep->kind, (double)ep->slope);
    else
        snprintf(buf, n, " -DEPI=%d", ep->kind);
}

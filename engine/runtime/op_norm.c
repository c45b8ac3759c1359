/* op_norm.c — host side of batch normalisation (cl/norm.cl): builds the four kernels for one
 * (C, HW, eps, momentum) and enqueues them with the batch count n as a runtime argument. */
#include "ops.h"

#include <stdio.h>

graft_status batchnorm_op_init(graft_context *ctx, batchnorm_op *op, int c, int hw, float momentum,
                               float eps, graft_error *e)
{
    *op = (batchnorm_op){0};
    if (c <= 0 || hw <= 0 || (long)c * hw > 0x7fffffffL)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: bad shape c=%d hw=%d", c, hw);
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "batchnorm: eps must be > 0 and momentum in [0, 1] (got eps=%g momentum=%g)",
                       (double)eps, (double)momentum);
    op->c = c;
    op->hw = hw;
    op->momentum = momentum;
    op->eps = eps;
    char opts[256];
    snprintf(opts, sizeof opts, "-DC=%d -DHW=%d -DEPS=%.9ef -DMOMENTUM=%.9ef", c, hw, (double)eps,
             (double)momentum);
    graft_status s;
    if ((s = kernel_create(ctx, "norm", opts, "bn_fwd_train", &op->fwd_train, e)) ||
        (s = kernel_create(ctx, "norm", opts, "bn_fwd_eval", &op->fwd_eval, e)) ||
        (s = kernel_create(ctx, "norm", opts, "bn_bwd_train", &op->bwd, e)) ||
        (s = kernel_create(ctx, "norm", opts, "bn_bwd_eval", &op->bwd_eval, e))) {
        batchnorm_op_free(op);
        return s;
    }
    return GRAFT_OK;
}

void batchnorm_op_free(batchnorm_op *op)
{
    cl_kernel *ks[] = {&op->fwd_train, &op->fwd_eval, &op->bwd, &op->bwd_eval};
    for (size_t i = 0; i < ARRAY_LEN(ks); i++)
        if (*ks[i]) {
            clReleaseKernel(*ks[i]);
            *ks[i] = NULL;
        }
}

/* Work-group size for the per-channel reductions: a power of two (the tree reduction needs it)
 * within the kernel's and the device's limits, at most 256 and no larger than the number of
 * values per channel, so a dense layer's BN (hw = 1, small n) does not idle hundreds of items. */
static size_t reduce_local_size(graft_context *ctx, cl_kernel k, long per_channel)
{
    size_t kmax = 0;
    if (clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax,
                                 NULL) != CL_SUCCESS ||
        kmax == 0)
        kmax = 64;
    size_t lim = 256;
    if (ctx->info.max_work_group_size && ctx->info.max_work_group_size < lim)
        lim = ctx->info.max_work_group_size;
    if (kmax < lim) lim = kmax;
    size_t l = 1;
    while (l * 2 <= lim && (long)l < per_channel) l *= 2;
    return l;
}

#define ARG(i, v)                                                                                  \
    do {                                                                                           \
        cl_int rc_ = clSetKernelArg(k, (i), sizeof(v), &(v));                                      \
        if (rc_ != CL_SUCCESS) return cl_check(rc_, "clSetKernelArg", e);                          \
    } while (0)
#define LOCAL_ARG(i, bytes)                                                                        \
    do {                                                                                           \
        cl_int rc_ = clSetKernelArg(k, (i), (bytes), NULL);                                        \
        if (rc_ != CL_SUCCESS) return cl_check(rc_, "clSetKernelArg", e);                          \
    } while (0)

static graft_status check_n(const batchnorm_op *op, int n, graft_error *e)
{
    if (!op->fwd_train) return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: op not initialised");
    if (n <= 0 || (long)n * op->c * op->hw > 0x7fffffffL)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: bad batch count %d", n);
    return GRAFT_OK;
}

graft_status batchnorm_fwd_train(graft_context *ctx, batchnorm_op *op, int n, cl_mem x,
                                 cl_mem gamma, cl_mem beta, cl_mem run_mean, cl_mem run_var,
                                 cl_mem save_mean, cl_mem save_invstd, cl_mem y, graft_error *e)
{
    graft_status s = check_n(op, n, e);
    if (s) return s;
    cl_kernel k = op->fwd_train;
    size_t l = reduce_local_size(ctx, k, (long)n * op->hw), g = l * (size_t)op->c;
    ARG(0, n);
    ARG(1, x);
    ARG(2, gamma);
    ARG(3, beta);
    ARG(4, run_mean);
    ARG(5, run_var);
    ARG(6, save_mean);
    ARG(7, save_invstd);
    ARG(8, y);
    LOCAL_ARG(9, l * sizeof(float));
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status batchnorm_fwd_eval(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem gamma,
                                cl_mem beta, cl_mem run_mean, cl_mem run_var, cl_mem y,
                                graft_error *e)
{
    graft_status s = check_n(op, n, e);
    if (s) return s;
    cl_kernel k = op->fwd_eval;
    ARG(0, n);
    ARG(1, x);
    ARG(2, gamma);
    ARG(3, beta);
    ARG(4, run_mean);
    ARG(5, run_var);
    ARG(6, y);
    size_t g = (size_t)n * (size_t)op->c * (size_t)op->hw, l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

/* Shared by both backwards: the same argument layout, statistics a/b being (mean, invstd) in
 * training and (running mean, running var) in eval. */
static graft_status bwd_launch(graft_context *ctx, batchnorm_op *op, cl_kernel k, int n, cl_mem x,
                               cl_mem dy, cl_mem gamma, cl_mem a, cl_mem b, cl_mem dx,
                               cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    graft_status s = check_n(op, n, e);
    if (s) return s;
    const int flags = (dx ? 1 : 0) | (dgamma ? 2 : 0) | (dbeta ? 4 : 0);
    if (!flags) return GRAFT_OK;
    size_t l = reduce_local_size(ctx, k, (long)n * op->hw), g = l * (size_t)op->c;
    ARG(0, n);
    ARG(1, flags);
    ARG(2, x);
    ARG(3, dy);
    ARG(4, gamma);
    ARG(5, a);
    ARG(6, b);
    ARG(7, dx); /* a NULL cl_mem is a NULL pointer in the kernel; flags keep it untouched */
    ARG(8, dgamma);
    ARG(9, dbeta);
    LOCAL_ARG(10, l * sizeof(float));
    LOCAL_ARG(11, l * sizeof(float));
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status batchnorm_bwd(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem dy,
                           cl_mem gamma, cl_mem save_mean, cl_mem save_invstd, cl_mem dx,
                           cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    return bwd_launch(ctx, op, op->bwd, n, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                      e);
}

graft_status batchnorm_bwd_eval(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem dy,
                                cl_mem gamma, cl_mem run_mean, cl_mem run_var, cl_mem dx,
                                cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    return bwd_launch(ctx, op, op->bwd_eval, n, x, dy, gamma, run_mean, run_var, dx, dgamma, dbeta,
                      e);
}

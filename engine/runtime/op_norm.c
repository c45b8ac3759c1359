/* op_norm.c — host side of batch normalisation (cl/norm.cl): builds the kernels for one
 * (C, HW, eps, momentum, epilogue) and enqueues them with the batch count n as a runtime argument.
 * Statistics and gradient sums are parallel over planes (sample, channel) with a per-channel
 * combine in between: three launches each way, none of them one work-group walking a channel. */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const BN_KERNELS[] = {"bn_stats_partial", "bn_stats_finalize", "bn_apply",
                                         "bn_grad_partial",  "bn_grad_finalize",  "bn_grad_apply"};

int group_local_size(const graft_context *ctx, long row)
{
    const char *force = getenv("GRAFT_PLANE_LSZ"); /* tests: 1 or a power of two up to 256 */
    if (force && *force) {
        int f = atoi(force);
        if (f >= 1 && f <= 256 && !(f & (f - 1))) return f;
    }
    if (ctx->info.type == GRAFT_DEVICE_CPU) return 1;
    int l = 1;
    size_t lim = ctx->info.max_work_group_size ? ctx->info.max_work_group_size : 64;
    while (l < 256 && (size_t)l * 2 <= lim && l < row) l *= 2;
    return l;
}

static graft_status prepare(graft_context *ctx, batchnorm_op *op, int n, graft_error *e);

/* Zeros written from the host once per buffer. Every float of the partials is written by a kernel
 * before it is read, but Oclgrind's uninitialised-value checker only counts host writes as
 * initialising a buffer across launches (a clEnqueueFillBuffer did not either). */
graft_status zero_from_host(graft_context *ctx, cl_mem m, size_t bytes, graft_error *e)
{
    void *z = calloc(1, bytes);
    if (!z) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    graft_status s = buffer_write(ctx, m, 0, z, bytes, e);
    free(z);
    return s;
}

graft_status batchnorm_op_init(graft_context *ctx, batchnorm_op *op, int c, int hw, float momentum,
                               float eps, const epilogue *epi, graft_error *e)
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
    op->lsz = group_local_size(ctx, hw);
    op->epi = epi ? *epi : (epilogue){0};
    char opts[384], eo[96];
    epilogue_options(&op->epi, eo, sizeof eo);
    op->acc_bytes = ctx->info.fp64 ? 8 : 4; /* cl/norm.cl's acc_t */
    snprintf(opts, sizeof opts,
             "-DC=%d -DHW=%d -DEPS=%.9ef -DMOMENTUM=%.9ef -DLSZ=%d -DACC_DOUBLE=%d%s", c, hw,
             (double)eps, (double)momentum, op->lsz, op->acc_bytes == 8, eo);
    graft_status s = kernels_create(ctx, "norm", opts, BN_KERNELS, BN_NKERNELS, op->k, e);
    if (!s) s = buffer_create(ctx, 2 * (size_t)c * sizeof(float), &op->sums, e);
    if (!s) s = zero_from_host(ctx, op->sums, 2 * (size_t)c * sizeof(float), e);
    if (s) batchnorm_op_free(op);
    return s;
}

void batchnorm_op_free(batchnorm_op *op)
{
    kernels_release(op->k, BN_NKERNELS);
    if (op->part) clReleaseMemObject(op->part);
    if (op->sums) clReleaseMemObject(op->sums);
    *op = (batchnorm_op){0};
}

/* Checks n and makes the partials buffer hold a batch of n (grown on the first larger batch). */
static graft_status prepare(graft_context *ctx, batchnorm_op *op, int n, graft_error *e)
{
    if (!op->k[0]) return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: op not initialised");
    if (n <= 0 || (long)n * op->c * op->hw > 0x7fffffffL)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: bad batch count %d", n);
    if (n <= op->part_n) return GRAFT_OK;
    if (op->part) clReleaseMemObject(op->part);
    op->part = NULL;
    op->part_n = 0;
    size_t bytes = 2 * (size_t)n * op->c * (size_t)op->acc_bytes;
    graft_status s = buffer_create(ctx, bytes, &op->part, e);
    if (!s) s = zero_from_host(ctx, op->part, bytes, e);
    if (!s) op->part_n = n;
    return s;
}

graft_status launch_rows(graft_context *ctx, cl_kernel k, int lsz, size_t rows, graft_error *e)
{
    size_t l = lsz > 1 ? (size_t)lsz : 64, g = lsz > 1 ? rows * (size_t)lsz : rows;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

static graft_status planes(graft_context *ctx, const batchnorm_op *op, cl_kernel k, int n,
                           graft_error *e)
{
    return launch_rows(ctx, k, op->lsz, (size_t)n * op->c, e);
}

static graft_status channels(graft_context *ctx, const batchnorm_op *op, cl_kernel k,
                             graft_error *e)
{
    size_t l = 16, g = (size_t)op->c;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

static graft_status apply(graft_context *ctx, batchnorm_op *op, int n, int is_var, cl_mem x,
                          cl_mem gamma, cl_mem beta, cl_mem mean, cl_mem s2, cl_mem y,
                          graft_error *e)
{
    cl_kernel k = op->k[BN_APPLY];
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, is_var);
    SET_ARG(k, 2, x);
    SET_ARG(k, 3, gamma);
    SET_ARG(k, 4, beta);
    SET_ARG(k, 5, mean);
    SET_ARG(k, 6, s2);
    SET_ARG(k, 7, y);
    return planes(ctx, op, k, n, e);
}

/* The batch statistics of n rows from the per-plane partials in op->part: saved (mean, invstd)
 * and the running statistics' update. */
static graft_status stats_finalize(graft_context *ctx, batchnorm_op *op, int n, cl_mem run_mean,
                                   cl_mem run_var, cl_mem save_mean, cl_mem save_invstd,
                                   graft_error *e)
{
    cl_kernel k = op->k[BN_STATS_FINALIZE];
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, op->part);
    SET_ARG(k, 2, run_mean);
    SET_ARG(k, 3, run_var);
    SET_ARG(k, 4, save_mean);
    SET_ARG(k, 5, save_invstd);
    return channels(ctx, op, k, e);
}

graft_status batchnorm_fwd_train(graft_context *ctx, batchnorm_op *op, int n, cl_mem x,
                                 cl_mem gamma, cl_mem beta, cl_mem run_mean, cl_mem run_var,
                                 cl_mem save_mean, cl_mem save_invstd, cl_mem y, graft_error *e)
{
    graft_status s = prepare(ctx, op, n, e);
    if (s) return s;
    cl_kernel k = op->k[BN_STATS_PARTIAL];
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, x);
    SET_ARG(k, 2, op->part);
    if ((s = planes(ctx, op, k, n, e))) return s;
    if ((s = stats_finalize(ctx, op, n, run_mean, run_var, save_mean, save_invstd, e))) return s;
    return apply(ctx, op, n, 0, x, gamma, beta, save_mean, save_invstd, y, e);
}

graft_status batchnorm_fwd_eval(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem gamma,
                                cl_mem beta, cl_mem run_mean, cl_mem run_var, cl_mem y,
                                graft_error *e)
{
    graft_status s = prepare(ctx, op, n, e);
    if (s) return s;
    return apply(ctx, op, n, 1, x, gamma, beta, run_mean, run_var, y, e);
}

graft_status batchnorm_fold(graft_context *ctx, int c, float eps, int k, cl_mem w, cl_mem cb,
                            cl_mem gamma, cl_mem beta, cl_mem run_mean, cl_mem run_var, cl_mem wf,
                            cl_mem bf, graft_error *e)
{
    if (k < 1 || c < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm_fold: %d channels of %d weights", c,
                       k);
    cl_kernel kk;
    graft_status s = kernel_get(ctx, "tensor", "", "bn_fold", &kk, e); /* cl/tensor.cl */
    if (s) return s;
    int has_cb = cb != NULL;
    SET_ARGS(kk, 12, KARG(c), KARG(k), KARG(eps), KARG(w), KARG(cb), KARG(has_cb), KARG(gamma),
             KARG(beta), KARG(run_mean), KARG(run_var), KARG(wf), KARG(bf));
    size_t g = (size_t)c, l = 1;
    return launch(ctx, kk, 1, &g, &l, NULL, e);
}

/* Per plane: (sum d, sum d * xhat) into op->part. */
static graft_status grad_partial(graft_context *ctx, batchnorm_op *op, int n, int is_var, cl_mem x,
                                 cl_mem y, cl_mem dy, cl_mem a, cl_mem b, graft_error *e)
{
    cl_kernel k = op->k[BN_GRAD_PARTIAL];
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, is_var);
    SET_ARG(k, 2, x);
    SET_ARG(k, 3, y);
    SET_ARG(k, 4, dy);
    SET_ARG(k, 5, a);
    SET_ARG(k, 6, b);
    SET_ARG(k, 7, op->part);
    return planes(ctx, op, k, n, e);
}

/* Per channel: the sums of n rows' partials into op->sums (and dgamma / dbeta as flags say). */
static graft_status grad_finalize(graft_context *ctx, batchnorm_op *op, int n, int flags,
                                  cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    cl_kernel k = op->k[BN_GRAD_FINALIZE];
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, flags);
    SET_ARG(k, 2, op->part);
    /* a NULL cl_mem is a NULL pointer in the kernel; flags keep it untouched */
    SET_ARG(k, 3, dgamma);
    SET_ARG(k, 4, dbeta);
    SET_ARG(k, 5, op->sums);
    return channels(ctx, op, k, e);
}

static graft_status grad_apply(graft_context *ctx, batchnorm_op *op, int n, int train, cl_mem x,
                               cl_mem y, cl_mem dy, cl_mem gamma, cl_mem a, cl_mem b, cl_mem dx,
                               graft_error *e)
{
    cl_kernel k = op->k[BN_GRAD_APPLY];
    const int is_var = !train;
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, is_var);
    SET_ARG(k, 2, train);
    SET_ARG(k, 3, x);
    SET_ARG(k, 4, y);
    SET_ARG(k, 5, dy);
    SET_ARG(k, 6, gamma);
    SET_ARG(k, 7, a);
    SET_ARG(k, 8, b);
    SET_ARG(k, 9, op->sums);
    SET_ARG(k, 10, dx);
    return planes(ctx, op, k, n, e);
}

/* Both backwards: statistics a/b are (mean, invstd) in training and (running mean, running var)
 * in eval. y is the layer's (fused) output, read only when the op has an epilogue. */
static graft_status bwd(graft_context *ctx, batchnorm_op *op, int n, int train, cl_mem x, cl_mem y,
                        cl_mem dy, cl_mem gamma, cl_mem a, cl_mem b, cl_mem dx, cl_mem dgamma,
                        cl_mem dbeta, graft_error *e)
{
    graft_status s = prepare(ctx, op, n, e);
    if (s) return s;
    if (op->epi.kind && !y)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: fused backward without its output");
    const int is_var = !train;
    const int flags = (dgamma ? 2 : 0) | (dbeta ? 4 : 0);
    if (flags || (dx && train)) {
        if ((s = grad_partial(ctx, op, n, is_var, x, y, dy, a, b, e))) return s;
        if ((s = grad_finalize(ctx, op, n, flags, dgamma, dbeta, e))) return s;
    }
    if (!dx) return GRAFT_OK;
    return grad_apply(ctx, op, n, train, x, y, dy, gamma, a, b, dx, e);
}

graft_status batchnorm_bwd(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem y,
                           cl_mem dy, cl_mem gamma, cl_mem save_mean, cl_mem save_invstd, cl_mem dx,
                           cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    return bwd(ctx, op, n, 1, x, y, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, e);
}

graft_status batchnorm_bwd_eval(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem y,
                                cl_mem dy, cl_mem gamma, cl_mem run_mean, cl_mem run_var,
                                cl_mem dx, cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    return bwd(ctx, op, n, 0, x, y, dy, gamma, run_mean, run_var, dx, dgamma, dbeta, e);
}

/* ---- synchronised batchnorm (train.sync_bn) ---- */

graft_status batchnorm_sync_stats(graft_context *ctx, batchnorm_op *op, int n, cl_mem x,
                                  graft_error *e)
{
    graft_status s = prepare(ctx, op, n, e);
    if (s) return s;
    cl_kernel k = op->k[BN_STATS_PARTIAL];
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, x);
    SET_ARG(k, 2, op->part);
    return planes(ctx, op, k, n, e);
}

graft_status batchnorm_sync_grads(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem y,
                                  cl_mem dy, cl_mem save_mean, cl_mem save_invstd, cl_mem dgamma,
                                  cl_mem dbeta, graft_error *e)
{
    graft_status s = prepare(ctx, op, n, e);
    if (s) return s;
    if (op->epi.kind && !y)
        return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: fused backward without its output");
    if ((s = grad_partial(ctx, op, n, 0, x, y, dy, save_mean, save_invstd, e))) return s;
    /* dgamma and dbeta are this device's sums (the caller weights each device's gradients by
     * its share of the batch, as for every other parameter) */
    const int flags = (dgamma ? 2 : 0) | (dbeta ? 4 : 0);
    return flags ? grad_finalize(ctx, op, n, flags, dgamma, dbeta, e) : GRAFT_OK;
}

graft_status batchnorm_sync_read(graft_context *ctx, batchnorm_op *op, int n, void *host,
                                 cl_event *done, graft_error *e)
{
    if (n > op->part_n) return err_set(e, GRAFT_STATUS_INTERNAL, "batchnorm: no partials of %d", n);
    return transfer_read_async(ctx, op->part, 0, host,
                               2 * (size_t)n * (size_t)op->c * (size_t)op->acc_bytes, done, e);
}

void batchnorm_part_gather(const batchnorm_op *op, const void *host, int n, int first, int N,
                           double scale, double *global)
{
    for (int c = 0; c < op->c; c++)
        for (long j = 0; j < 2L * n; j++) {
            long i = ((long)c * n) * 2 + j;
            double v = op->acc_bytes == 8 ? ((const double *)host)[i] : ((const float *)host)[i];
            global[((long)c * N + first) * 2 + j] = scale * v;
        }
}

/* The global partials (N rows) into op->part in the device's accumulator type. */
static graft_status part_put(graft_context *ctx, batchnorm_op *op, int N, const double *global,
                             graft_error *e)
{
    graft_status s = prepare(ctx, op, N, e);
    if (s) return s;
    size_t count = 2 * (size_t)N * (size_t)op->c;
    void *buf = malloc(count * (size_t)op->acc_bytes);
    if (!buf) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
        if (op->acc_bytes == 8) ((double *)buf)[i] = global[i];
        else ((float *)buf)[i] = (float)global[i];
    s = buffer_write(ctx, op->part, 0, buf, count * (size_t)op->acc_bytes, e);
    free(buf);
    return s;
}

graft_status batchnorm_sync_fwd(graft_context *ctx, batchnorm_op *op, int N, const double *global,
                                int n, cl_mem x, cl_mem gamma, cl_mem beta, cl_mem run_mean,
                                cl_mem run_var, cl_mem save_mean, cl_mem save_invstd, cl_mem y,
                                graft_error *e)
{
    graft_status s = part_put(ctx, op, N, global, e);
    if (!s) s = stats_finalize(ctx, op, N, run_mean, run_var, save_mean, save_invstd, e);
    return s ? s : apply(ctx, op, n, 0, x, gamma, beta, save_mean, save_invstd, y, e);
}

/* dx = gamma * invstd / m * (m * d - sdy - xhat * sdyx) with this device's m = n * HW: given
 * the sums of the true global-loss gradient (the caller scales each device's partials by its
 * share n_k / N), this is the global batch's dx scaled to the device's own loss (a mean over its
 * n rows), the units the rest of its backward works in. */
graft_status batchnorm_sync_bwd(graft_context *ctx, batchnorm_op *op, int N, const double *global,
                                int n, cl_mem x, cl_mem y, cl_mem dy, cl_mem gamma,
                                cl_mem save_mean, cl_mem save_invstd, cl_mem dx, graft_error *e)
{
    const cl_mem none = NULL;
    graft_status s = part_put(ctx, op, N, global, e);
    if (!s) s = grad_finalize(ctx, op, N, 0, none, none, e);
    return s ? s : grad_apply(ctx, op, n, 1, x, y, dy, gamma, save_mean, save_invstd, dx, e);
}

/* op_layernorm.c — host side of layer normalisation over the last axis (cl/layernorm.cl): builds
 * the kernels for one (d, eps, affine) and enqueues them with the row count as a runtime argument.
 * The row statistics are one launch each way; the parameter gradients are partial sums over chunks
 * of rows and a per-feature combine in chunk order, so they are deterministic run to run. */
#include "ops.h"

#include <stdio.h>

static const char *const LN_KERNELS[LN_NKERNELS] = {"layernorm_fwd", "layernorm_bwd_data",
                                                    "layernorm_grad_partial",
                                                    "layernorm_grad_finalize"};

/* Rows summed by one work-item of layernorm_grad_partial. */
#define LN_CHUNK 64

graft_status layernorm_op_init(graft_context *ctx, layernorm_op *op, int d, float eps, bool affine,
                               graft_error *e)
{
    *op = (layernorm_op){0};
    if (d <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "layernorm: bad row length %d", d);
    if (!(eps > 0.0f))
        return err_set(e, GRAFT_STATUS_INTERNAL, "layernorm: eps must be > 0 (got %g)", (double)eps);
    op->d = d;
    op->eps = eps;
    op->affine = affine;
    op->lsz = group_local_size(ctx, d);
    op->acc_bytes = ctx->info.fp64 ? 8 : 4; /* cl/layernorm.cl's acc_t */
    char opts[256];
    snprintf(opts, sizeof opts, "-DD=%d -DEPS=%.9ef -DAFFINE=%d -DLSZ=%d -DACC_DOUBLE=%d -DCHUNK=%d",
             d, (double)eps, affine ? 1 : 0, op->lsz, op->acc_bytes == 8, LN_CHUNK);
    graft_status s = kernels_create(ctx, "layernorm", opts, LN_KERNELS, LN_NKERNELS, op->k, e);
    if (s) layernorm_op_free(op);
    return s;
}

void layernorm_op_free(layernorm_op *op)
{
    kernels_release(op->k, LN_NKERNELS);
    if (op->part) clReleaseMemObject(op->part);
    *op = (layernorm_op){0};
}

static graft_status check_rows(const layernorm_op *op, long rows, graft_error *e)
{
    if (!op->k[0]) return err_set(e, GRAFT_STATUS_INTERNAL, "layernorm: op not initialised");
    if (rows <= 0 || rows * op->d > 0x7fffffffL)
        return err_set(e, GRAFT_STATUS_INTERNAL, "layernorm: bad row count %ld", rows);
    return GRAFT_OK;
}

graft_status layernorm_fwd(graft_context *ctx, layernorm_op *op, long rows, cl_mem x, cl_mem gamma,
                           cl_mem beta, cl_mem y, cl_mem save_mean, cl_mem save_invstd,
                           graft_error *e)
{
    graft_status s = check_rows(op, rows, e);
    if (s) return s;
    const int r = (int)rows;
    cl_kernel k = op->k[LN_FWD];
    SET_ARG(k, 0, r);
    SET_ARG(k, 1, x);
    SET_ARG(k, 2, gamma); /* a NULL cl_mem without affine: the kernel does not read it */
    SET_ARG(k, 3, beta);
    SET_ARG(k, 4, y);
    SET_ARG(k, 5, save_mean);
    SET_ARG(k, 6, save_invstd);
    return launch_rows(ctx, k, op->lsz, (size_t)rows, e);
}

/* The partials buffer for `chunks` chunks (grown on the first larger batch). */
static graft_status part_reserve(graft_context *ctx, layernorm_op *op, int chunks, graft_error *e)
{
    if (chunks <= op->part_chunks) return GRAFT_OK;
    if (op->part) clReleaseMemObject(op->part);
    op->part = NULL;
    op->part_chunks = 0;
    size_t bytes = 2 * (size_t)chunks * (size_t)op->d * (size_t)op->acc_bytes;
    graft_status s = buffer_create(ctx, bytes, &op->part, e);
    if (!s) s = zero_from_host(ctx, op->part, bytes, e);
    if (!s) op->part_chunks = chunks;
    return s;
}

graft_status layernorm_bwd(graft_context *ctx, layernorm_op *op, long rows, cl_mem x, cl_mem dy,
                           cl_mem gamma, cl_mem save_mean, cl_mem save_invstd, cl_mem dx,
                           cl_mem dgamma, cl_mem dbeta, graft_error *e)
{
    graft_status s = check_rows(op, rows, e);
    if (s) return s;
    const int r = (int)rows;
    if ((dgamma != NULL) != (dbeta != NULL) || (dgamma && !op->affine))
        return err_set(e, GRAFT_STATUS_INTERNAL, "layernorm: parameter gradients without affine");
    if (dgamma) {
        const int chunks = (int)((rows + LN_CHUNK - 1) / LN_CHUNK);
        if ((s = part_reserve(ctx, op, chunks, e))) return s;
        cl_kernel k = op->k[LN_GRAD_PARTIAL];
        SET_ARG(k, 0, r);
        SET_ARG(k, 1, x);
        SET_ARG(k, 2, dy);
        SET_ARG(k, 3, save_mean);
        SET_ARG(k, 4, save_invstd);
        SET_ARG(k, 5, op->part);
        size_t g[2] = {(size_t)op->d, (size_t)chunks}, l[2] = {op->d < 64 ? (size_t)op->d : 64, 1};
        if ((s = launch(ctx, k, 2, g, l, NULL, e))) return s;
        k = op->k[LN_GRAD_FINALIZE];
        SET_ARG(k, 0, chunks);
        SET_ARG(k, 1, op->part);
        SET_ARG(k, 2, dgamma);
        SET_ARG(k, 3, dbeta);
        size_t g1 = (size_t)op->d, l1 = op->d < 64 ? (size_t)op->d : 64;
        if ((s = launch(ctx, k, 1, &g1, &l1, NULL, e))) return s;
    }
    if (!dx) return GRAFT_OK;
    cl_kernel k = op->k[LN_BWD_DATA];
    SET_ARG(k, 0, r);
    SET_ARG(k, 1, x);
    SET_ARG(k, 2, dy);
    SET_ARG(k, 3, gamma);
    SET_ARG(k, 4, save_mean);
    SET_ARG(k, 5, save_invstd);
    SET_ARG(k, 6, dx);
    return launch_rows(ctx, k, op->lsz, (size_t)rows, e);
}

/* op_dense.c — dense layers as GEMMs with W [out, in] (PyTorch's layout): y = x W^T + b, dx = dy W,
 * dW = dy^T x, db = column sums of dy (cl/bias.cl with HW = 1). The bias and the fused activation
 * are the GEMM's epilogue where its kernel has one (Graft's gemm_inner), else bias_fwd after it;
 * backward, the activation's derivative and db are one pass (epi_grad_bias_bwd). The kernels are
 * the context's (kernel_get), so dense_op_free releases nothing. */
#include "ops.h"

#include <stdio.h>
#include <string.h>

graft_status dense_op_init(graft_context *ctx, dense_op *op, int in, int out, bool bias,
                           graft_error *e)
{
    memset(op, 0, sizeof *op);
    if (in < 1 || out < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "dense: bad shape (in %d, out %d)", in, out);
    op->in = in;
    op->out = out;
    op->bias = bias;
    if (!bias) return GRAFT_OK;
    char opts[64];
    snprintf(opts, sizeof opts, "-DHW=1");
    graft_status s;
    if ((s = kernel_get(ctx, "bias", opts, "bias_fwd", &op->bias_fwd, e)) ||
        (s = kernel_get(ctx, "bias", opts, "bias_bwd", &op->bias_bwd, e)))
        return s;
    return GRAFT_OK;
}

graft_status dense_op_set_epilogue(graft_context *ctx, dense_op *op, const epilogue *epi,
                                   graft_error *e)
{
    op->epi = *epi;
    if (!epi->kind) return GRAFT_OK;
    char opts[160], eo[96];
    epilogue_options(epi, eo, sizeof eo);
    snprintf(opts, sizeof opts, "-DHW=1 -DHAS_BIAS=%d%s", op->bias ? 1 : 0, eo);
    graft_status s;
    if ((s = kernel_get(ctx, "bias", opts, "bias_fwd", &op->bias_fwd, e)) ||
        (s = kernel_get(ctx, "bias", opts, "epi_grad_inplace", &op->epi_grad, e)) ||
        (op->bias &&
         (s = kernel_get(ctx, "bias", opts, "epi_grad_bias_bwd", &op->epi_grad_bias, e))))
        return s;
    return GRAFT_OK;
}

graft_status dense_prepare(graft_context *ctx, dense_op *op, int n, bool weight, bool data,
                           graft_error *e)
{
    size_t in = (size_t)op->in, out = (size_t)op->out, rows = (size_t)n;
    graft_status s = gemm_prepare(ctx, false, true, rows, out, in, e);
    if (!s && weight) s = gemm_prepare(ctx, true, false, out, in, rows, e);
    if (!s && data) s = gemm_prepare(ctx, false, false, rows, in, out, e);
    return s;
}

graft_status dense_epi_grad(graft_context *ctx, dense_op *op, int n, cl_mem dy, cl_mem y,
                            cl_mem db, bool *db_done, graft_error *e)
{
    *db_done = false;
    if (!op->epi.kind) return GRAFT_OK;
    size_t l = 16;
    if (db && op->epi_grad_bias) {
        cl_kernel k = op->epi_grad_bias;
        SET_ARGS(k, 5, KARG(dy), KARG(y), KARG(db), KARG(n), KARG(op->out));
        size_t items = (size_t)op->out;
        *db_done = true;
        return launch(ctx, k, 1, &items, &l, NULL, e);
    }
    cl_kernel k = op->epi_grad;
    SET_ARGS(k, 4, KARG(dy), KARG(y), KARG(n), KARG(op->out));
    size_t items = (size_t)n * op->out;
    return launch(ctx, k, 1, &items, &l, NULL, e);
}

void dense_op_free(dense_op *op)
{
    if (op) memset(op, 0, sizeof *op); /* the kernels are the context's */
}

static graft_status bias_launch(graft_context *ctx, cl_kernel k, cl_mem a, cl_mem b, int n,
                                int c, size_t items, graft_error *e)
{
    SET_ARGS(k, 4, KARG(a), KARG(b), KARG(n), KARG(c));
    size_t l = 16;
    return launch(ctx, k, 1, &items, &l, NULL, e);
}

graft_status dense_fwd(graft_context *ctx, dense_op *op, int n, cl_mem x, cl_mem w, cl_mem b,
                       cl_mem y, graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "dense_fwd: batch count %d", n);
    size_t in = (size_t)op->in, out = (size_t)op->out;
    const bool epi = op->bias || op->epi.kind;
    gemm_epilogue ep = {.bias = op->bias ? b : NULL, .act = op->epi};
    bool applied = false;
    graft_status s = gemm_epi(ctx, false, true, (size_t)n, out, in, 1.0f, x, 0, in, w, 0, in, 0.0f,
                              y, 0, out, epi ? &ep : NULL, &applied, e);
    if (s || !epi || applied) return s;
    return bias_launch(ctx, op->bias_fwd, y, b, n, op->out, (size_t)n * out, e);
}

graft_status dense_bwd_data(graft_context *ctx, dense_op *op, int n, cl_mem dy, cl_mem w, cl_mem dx,
                            graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "dense_bwd_data: batch count %d", n);
    size_t in = (size_t)op->in, out = (size_t)op->out;
    return gemm(ctx, false, false, (size_t)n, in, out, 1.0f, dy, 0, out, w, 0, in, 0.0f, dx, 0, in,
                e);
}

graft_status dense_bwd_weight(graft_context *ctx, dense_op *op, int n, cl_mem x, cl_mem dy,
                              cl_mem dw, cl_mem db, graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "dense_bwd_weight: batch count %d", n);
    size_t in = (size_t)op->in, out = (size_t)op->out;
    graft_status s;
    if (dw && (s = gemm(ctx, true, false, out, in, (size_t)n, 1.0f, dy, 0, out, x, 0, in, 0.0f, dw,
                        0, in, e)))
        return s;
    if (op->bias && db) return bias_bwd_launch(ctx, op->bias_bwd, dy, db, n, op->out, 1, e);
    return GRAFT_OK;
}

graft_status bias_bwd_launch(graft_context *ctx, cl_kernel k, cl_mem dy, cl_mem db, int n, int c,
                             size_t hw, graft_error *e)
{
    const int step = loop_bounded_rows(ctx, n, hw + 1);
    for (int i0 = 0; i0 < n; i0 += step) {
        cl_long off = (cl_long)i0 * c * (cl_long)hw;
        cl_int m = n - i0 < step ? n - i0 : step, acc = i0 > 0;
        SET_ARGS(k, 6, KARG(dy), KARG(off), KARG(db), KARG(m), KARG(c), KARG(acc));
        size_t items = (size_t)c, l = 16;
        graft_status s = launch(ctx, k, 1, &items, &l, NULL, e);
        if (s) return s;
    }
    return GRAFT_OK;
}

/* op_dropout.c — host side of dropout (cl/dropout.cl): the keep threshold and scale are baked in
 * at build time; seed and step travel as runtime arguments, so one program serves every step. */
#include "ops.h"

#include <math.h>
#include <stdio.h>

void dropout_options(float rate, char *buf, size_t n)
{
    if (rate == 0.0f) {
        snprintf(buf, n, "-DKEEP_ALL");
        return;
    }
    /* keep iff a uniform 32-bit word < (1 - rate) * 2^32; rate > 0 keeps this below 2^32 */
    double thr = floor((1.0 - (double)rate) * 4294967296.0 + 0.5);
    if (thr > 4294967295.0) thr = 4294967295.0;
    snprintf(buf, n, "-DKEEP_THRESHOLD=%.0fu -DSCALE=%.9ef", thr, 1.0 / (1.0 - (double)rate));
}

graft_status dropout_op_init(graft_context *ctx, dropout_op *op, long size, float rate, graft_error *e)
{
    *op = (dropout_op){0};
    if (size <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "dropout: bad size %ld", size);
    if (!(rate >= 0.0f && rate < 1.0f))
        return err_set(e, GRAFT_STATUS_BAD_RECIPE, "dropout: rate must be in [0, 1), got %g",
                       (double)rate);
    op->size = size;
    op->rate = rate;
    char opts[128];
    dropout_options(rate, opts, sizeof opts);
    graft_status s;
    if ((s = kernel_create(ctx, "dropout", opts, "dropout_fwd", &op->fwd, e)) ||
        (s = kernel_create(ctx, "dropout", opts, "dropout_bwd", &op->bwd, e))) {
        dropout_op_free(op);
        return s;
    }
    return GRAFT_OK;
}

void dropout_op_free(dropout_op *op)
{
    if (op->fwd) clReleaseKernel(op->fwd);
    if (op->bwd) clReleaseKernel(op->bwd);
    op->fwd = op->bwd = NULL;
}

static graft_status run(graft_context *ctx, cl_kernel k, const dropout_op *op, int n, long row0,
                        uint64_t seed, uint64_t step, cl_mem in, cl_mem out, graft_error *e)
{
    if (!k) return err_set(e, GRAFT_STATUS_INTERNAL, "dropout: op not initialised");
    if (n <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "dropout: bad batch count %d", n);
    cl_long total = (cl_long)n * op->size, offset = (cl_long)row0 * op->size;
    if (row0 < 0 || (offset + total) / 4 >= 0x7fffffffL) /* a 31-bit Philox counter */
        return err_set(e, GRAFT_STATUS_UNSUPPORTED, "dropout: %lld elements is too many",
                       (long long)total);
    cl_uint a[4] = {(cl_uint)seed, (cl_uint)(seed >> 32), (cl_uint)step, (cl_uint)(step >> 32)};
    cl_int rc = kernel_arg(k, 0, sizeof total, &total);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 1, sizeof offset, &offset);
    for (int i = 0; i < 4 && rc == CL_SUCCESS; i++)
        rc = kernel_arg(k, 2 + i, sizeof a[i], &a[i]);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 6, sizeof in, &in);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 7, sizeof out, &out);
    if (rc != CL_SUCCESS) return cl_check(rc, "clSetKernelArg", e);
    size_t g = (size_t)((total + 3) / 4), l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status dropout_fwd(graft_context *ctx, dropout_op *op, int n, long row0, uint64_t seed,
                         uint64_t step, cl_mem x, cl_mem y, graft_error *e)
{
    return run(ctx, op->fwd, op, n, row0, seed, step, x, y, e);
}

graft_status dropout_bwd(graft_context *ctx, dropout_op *op, int n, long row0, uint64_t seed,
                         uint64_t step, cl_mem dy, cl_mem dx, graft_error *e)
{
    return run(ctx, op->bwd, op, n, row0, seed, step, dy, dx, e);
}

/* op_loss.c — host side of the fused softmax cross-entropy (cl/loss.cl). labels are int32 [n];
 * loss_out is float [n]; correct is int32 [n] (1 = argmax equals the label). loss_out and correct
 * may be NULL too when the caller does not want them. */
#include "ops.h"

#include <stdio.h>

graft_status xent_op_init(graft_context *ctx, xent_op *op, int k, float smoothing, graft_error *e)
{
    *op = (xent_op){0};
    if (k < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "cross-entropy: bad class count %d", k);
    if (!(smoothing >= 0.0f && smoothing <= 1.0f))
        return err_set(e, GRAFT_STATUS_BAD_RECIPE,
                       "cross-entropy: label smoothing must be in [0, 1], got %g", (double)smoothing);
    op->k = k;
    op->smoothing = smoothing;
    op->lsz = group_local_size(ctx, k);
    char opts[128];
    if (op->lsz == 1) /* the class count at run time (cl/loss.cl) */
        snprintf(opts, sizeof opts, "-DSMOOTH=%.9ef -DLSZ=1", (double)smoothing);
    else
        snprintf(opts, sizeof opts, "-DK=%d -DSMOOTH=%.9ef -DLSZ=%d", k, (double)smoothing,
                 op->lsz);
    return kernel_create(ctx, "loss", opts, "xent_fwd_bwd", &op->fwd_bwd, e);
}

void xent_op_free(xent_op *op)
{
    if (op->fwd_bwd) clReleaseKernel(op->fwd_bwd);
    op->fwd_bwd = NULL;
}

graft_status xent_fwd_bwd(graft_context *ctx, xent_op *op, int n, cl_mem logits, cl_mem labels,
                          cl_mem loss_out, cl_mem correct, cl_mem dlogits, graft_error *e)
{
    cl_kernel k = op->fwd_bwd;
    if (!k) return err_set(e, GRAFT_STATUS_INTERNAL, "cross-entropy: op not initialised");
    if (n <= 0) return err_set(e, GRAFT_STATUS_INTERNAL, "cross-entropy: bad batch count %d", n);
    int flags = (loss_out ? 1 : 0) | (correct ? 2 : 0) | (dlogits ? 4 : 0);
    if (!flags) return GRAFT_OK;
    cl_int rc = kernel_arg(k, 0, sizeof n, &n);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 1, sizeof flags, &flags);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 2, sizeof op->k, &op->k);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 3, sizeof logits, &logits);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 4, sizeof labels, &labels);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 5, sizeof loss_out, &loss_out);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 6, sizeof correct, &correct);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 7, sizeof dlogits, &dlogits);
    if (rc != CL_SUCCESS) return cl_check(rc, "clSetKernelArg", e);
    return launch_rows(ctx, k, op->lsz, (size_t)n, e); /* a row per sample */
}

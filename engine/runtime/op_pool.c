/* op_pool.c — max, average and global-average pooling (cl/pool.cl). Kernels come from kernel_get:
 * the context owns them, so pooling layers of one shape share a program and pool_op_free releases
 * nothing. */
#include "ops.h"

#include <stdio.h>
#include <string.h>

#define LOCAL 64

graft_status pool_op_init(graft_context *ctx, pool_op *op, pool_kind kind, int c, int h, int w,
                          int kh, int kw, int sh, int sw, int ph, int pw, graft_error *e)
{
    memset(op, 0, sizeof *op);
    if (kind == POOL_GLOBAL_AVG) { /* the window is the whole plane */
        kh = h, kw = w, sh = sw = 1, ph = pw = 0;
    }
    if (c < 1 || h < 1 || w < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0)
        return err_set(
            e, GRAFT_STATUS_INTERNAL,
            "pool: bad shape (c %d, h %d, w %d, window %dx%d, stride %dx%d, padding %dx%d)", c, h,
            w, kh, kw, sh, sw, ph, pw);
    /* PyTorch's rule; it also guarantees every max window holds a real element */
    if (2 * ph > kh || 2 * pw > kw)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "pool: padding %dx%d must be at most half the window %dx%d", ph, pw, kh, kw);
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "pool: window %dx%d larger than the padded input %dx%d", kh, kw, h + 2 * ph,
                       w + 2 * pw);
    *op = (pool_op){.kind = kind,
                    .c = c,
                    .h = h,
                    .w = w,
                    .kh = kh,
                    .kw = kw,
                    .sh = sh,
                    .sw = sw,
                    .ph = ph,
                    .pw = pw};
    op->oh = (h + 2 * ph - kh) / sh + 1;
    op->ow = (w + 2 * pw - kw) / sw + 1;
    char opts[256];
    snprintf(
        opts, sizeof opts,
        "-DCI=%d -DHI=%d -DWI=%d -DHO=%d -DWO=%d -DKH=%d -DKW=%d -DSH=%d -DSW=%d -DPH=%d -DPW=%d",
        c, h, w, op->oh, op->ow, kh, kw, sh, sw, ph, pw);
    static const char *names[][2] = {[POOL_MAX] = {"pool_max_fwd", "pool_max_bwd"},
                                     [POOL_AVG] = {"pool_avg_fwd", "pool_avg_bwd"},
                                     [POOL_GLOBAL_AVG] = {"pool_gavg_fwd", "pool_gavg_bwd"}};
    if ((int)kind < 0 || (int)kind > POOL_GLOBAL_AVG)
        return err_set(e, GRAFT_STATUS_INTERNAL, "pool: unknown kind %d", (int)kind);
    graft_status s;
    if ((s = kernel_get(ctx, "pool", opts, names[kind][0], &op->fwd, e)) ||
        (s = kernel_get(ctx, "pool", opts, names[kind][1], &op->bwd, e)))
        return s;
    return GRAFT_OK;
}

void pool_op_free(pool_op *op)
{
    if (op) memset(op, 0, sizeof *op); /* the kernels are the context's */
}

/* Rows per launch: the forward kernels take one output row (or, global average, one plane) per
 * work-item, the backward kernels one input row (or plane). */
static size_t work_items(const pool_op *op, int n, bool backward)
{
    if (op->kind == POOL_GLOBAL_AVG) return (size_t)op->c * n;
    return (size_t)(backward ? op->h : op->oh) * op->c * n;
}

graft_status pool_fwd(graft_context *ctx, pool_op *op, int n, cl_mem x, cl_mem y, cl_mem idx,
                      graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "pool_fwd: batch count %d", n);
    if (op->kind == POOL_MAX && !idx)
        return err_set(e, GRAFT_STATUS_INTERNAL, "pool_fwd: max pooling needs an index buffer");
    cl_kernel k = op->fwd;
    int a = 0;
    kernel_arg(k, a++, sizeof x, &x);
    kernel_arg(k, a++, sizeof y, &y);
    if (op->kind == POOL_MAX) kernel_arg(k, a++, sizeof idx, &idx);
    kernel_arg(k, a++, sizeof n, &n);
    size_t g = work_items(op, n, false), l = LOCAL;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status pool_bwd(graft_context *ctx, pool_op *op, int n, cl_mem dy, cl_mem idx, cl_mem dx,
                      graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "pool_bwd: batch count %d", n);
    if (op->kind == POOL_MAX && !idx)
        return err_set(e, GRAFT_STATUS_INTERNAL, "pool_bwd: max pooling needs the index buffer");
    cl_kernel k = op->bwd;
    int a = 0;
    kernel_arg(k, a++, sizeof dy, &dy);
    if (op->kind == POOL_MAX) kernel_arg(k, a++, sizeof idx, &idx);
    kernel_arg(k, a++, sizeof dx, &dx);
    kernel_arg(k, a++, sizeof n, &n);
    size_t g = work_items(op, n, true), l = LOCAL;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

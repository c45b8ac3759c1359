/* op_tensor.c — add, accumulate, copy and channel concat (cl/tensor.cl). Their kernels belong to
 * the context (kernel_get), since they carry no shape; arguments are set right before each
 * enqueue. */
#include "ops.h"

static graft_status elementwise(graft_context *ctx, const char *name, long count, cl_mem a,
                                cl_mem b, cl_mem y, graft_error *e)
{
    if (count < 0) return err_set(e, GRAFT_STATUS_INTERNAL, "%s: negative count %ld", name, count);
    if (count == 0) return GRAFT_OK;
    cl_kernel k;
    graft_status s = kernel_get(ctx, "tensor", "", name, &k, e);
    if (s) return s;
    cl_long c = count;
    SET_ARGS(k, y ? 4 : 3, KARG(c), KARG(a), KARG(b), KARG(y)); /* y: add2's output */
    size_t g = (size_t)count, l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status add2_f32(graft_context *ctx, long count, cl_mem a, cl_mem b, cl_mem y, graft_error *e)
{
    return elementwise(ctx, "add2_f32", count, a, b, y, e);
}

graft_status accumulate_f32(graft_context *ctx, long count, cl_mem x, cl_mem y, graft_error *e)
{
    return elementwise(ctx, "accumulate_f32", count, x, y, NULL, e);
}

graft_status copy_f32(graft_context *ctx, long count, cl_mem x, cl_mem y, graft_error *e)
{
    return elementwise(ctx, "copy_f32", count, x, y, NULL, e);
}

static graft_status concat(graft_context *ctx, const char *name, int n, int cx, int cy, int c0,
                           int hw, cl_mem from, cl_mem to, graft_error *e)
{
    if (n <= 0 || cx <= 0 || hw <= 0 || c0 < 0 || c0 + cx > cy)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "%s: channels [%d, %d) do not fit in %d (n=%d hw=%d)", name, c0, c0 + cx, cy,
                       n, hw);
    cl_kernel k;
    graft_status s = kernel_get(ctx, "tensor", "", name, &k, e);
    if (s) return s;
    SET_ARGS(k, 7, KARG(n), KARG(cx), KARG(cy), KARG(c0), KARG(hw), KARG(from), KARG(to));
    size_t g = (size_t)n * (size_t)cx * (size_t)hw, l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status concat_fwd(graft_context *ctx, int n, int cx, int cy, int c0, int hw, cl_mem x,
                        cl_mem y, graft_error *e)
{
    return concat(ctx, "concat_fwd", n, cx, cy, c0, hw, x, y, e);
}

graft_status concat_bwd(graft_context *ctx, int n, int cx, int cy, int c0, int hw, cl_mem dy,
                        cl_mem dx, graft_error *e)
{
    return concat(ctx, "concat_bwd", n, cx, cy, c0, hw, dy, dx, e);
}

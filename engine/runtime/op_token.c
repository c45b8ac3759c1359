/* op_token.c — host side of the token layers' kernels (cl/token.cl). Like op_tensor.c, the
 * kernels carry no shape and belong to the context (kernel_get); integer arguments come first,
 * then the buffers, and are set right before each enqueue. */
#include "ops.h"

static graft_status run(graft_context *ctx, const char *name, long items, const int *iv, int ni,
                        const cl_mem *mv, int nm, graft_error *e)
{
    for (int i = 0; i < ni; i++)
        if (iv[i] < 0) return err_set(e, GRAFT_STATUS_INTERNAL, "%s: negative size", name);
    if (items <= 0) return GRAFT_OK;
    cl_kernel k;
    graft_status s = kernel_get(ctx, "token", "", name, &k, e);
    if (s) return s;
    for (int i = 0; i < ni; i++) SET_ARG(k, (cl_uint)i, iv[i]);
    for (int i = 0; i < nm; i++) SET_ARG(k, (cl_uint)(ni + i), mv[i]);
    size_t g = (size_t)items, l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status token_batch_sum(graft_context *ctx, int n, int stride, int len, cl_mem dy, cl_mem dp,
                             graft_error *e)
{
    const int iv[] = {n, stride, len};
    const cl_mem mv[] = {dy, dp};
    return run(ctx, "token_batch_sum", len, iv, 3, mv, 2, e);
}

graft_status token_broadcast(graft_context *ctx, int n, int stride, int len, cl_mem p, cl_mem y,
                             graft_error *e)
{
    const int iv[] = {n, stride, len};
    const cl_mem mv[] = {p, y};
    return run(ctx, "token_broadcast", (long)n * len, iv, 3, mv, 2, e);
}

graft_status token_add(graft_context *ctx, int n, int len, cl_mem x, cl_mem p, cl_mem y,
                       graft_error *e)
{
    const int iv[] = {n, len};
    const cl_mem mv[] = {x, p, y};
    return run(ctx, "token_add", (long)n * len, iv, 2, mv, 3, e);
}

graft_status token_mean_fwd(graft_context *ctx, int n, int t, int d, cl_mem x, cl_mem y,
                            graft_error *e)
{
    const int iv[] = {n, t, d};
    const cl_mem mv[] = {x, y};
    return run(ctx, "token_mean_fwd", (long)n * d, iv, 3, mv, 2, e);
}

graft_status token_mean_bwd(graft_context *ctx, int n, int t, int d, cl_mem dy, cl_mem dx,
                            graft_error *e)
{
    const int iv[] = {n, t, d};
    const cl_mem mv[] = {dy, dx};
    return run(ctx, "token_mean_bwd", (long)n * t * d, iv, 3, mv, 2, e);
}

graft_status token_patches(graft_context *ctx, int n, int c, int h, int w, int p, bool to_image,
                           cl_mem src, cl_mem dst, graft_error *e)
{
    if (p < 1 || h % p || w % p)
        return err_set(e, GRAFT_STATUS_INTERNAL, "token_patches: patch %d for %dx%d", p, h, w);
    const int iv[] = {n, c, h, w, p, to_image ? 1 : 0};
    const cl_mem mv[] = {src, dst};
    return run(ctx, "token_patches", (long)n * c * h * w, iv, 6, mv, 2, e);
}

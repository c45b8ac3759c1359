/* op_adapt.c — host side of the domain-adaptation losses (cl/adapt.cl): Deep CORAL and
 * multi-kernel MMD on a feature tensor whose first ns rows are source and the next nt target, with
 * their matrix products on the GEMM; gradient reversal and the discriminator's binary
 * cross-entropy for DANN. */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>

static graft_status launch1(graft_context *ctx, cl_kernel k, size_t items, graft_error *e)
{
    size_t g = items ? items : 1, l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status align_op_init(graft_context *ctx, align_op *op, align_kind kind, int d, int max_n,
                           graft_error *e)
{
    *op = (align_op){.kind = kind, .d = d, .max_n = max_n};
    if (d < 1 || max_n < 4)
        return err_set(e, GRAFT_STATUS_INTERNAL, "alignment loss: bad sizes d=%d n=%d", d, max_n);
    char opts[64];
    snprintf(opts, sizeof opts, "-DD=%d", d);
    graft_status s;
    const size_t f = sizeof(float), D = (size_t)d, N = (size_t)max_n;
    if ((s = kernel_create(ctx, "adapt", opts, "adapt_loss_sum", &op->sum, e))) goto fail;
    if (kind == ALIGN_CORAL) {
        /* b: xc source [N, D], xc target [N, D], Cs, Ct, Cs - Ct [D, D] each, row sums */
        if ((s = kernel_create(ctx, "adapt", opts, "adapt_center", &op->k1, e)) ||
            (s = kernel_create(ctx, "adapt", opts, "coral_diff", &op->k2, e)) ||
            (s = buffer_create(ctx, N * D * f, &op->b[0], e)) ||
            (s = buffer_create(ctx, N * D * f, &op->b[1], e)) ||
            (s = buffer_create(ctx, D * D * f, &op->b[2], e)) ||
            (s = buffer_create(ctx, D * D * f, &op->b[3], e)) ||
            (s = buffer_create(ctx, D * D * f, &op->b[4], e)) ||
            (s = buffer_create(ctx, D * f, &op->b[5], e)))
            goto fail;
    } else {
        /* b: Gram, distances, coefficients [N, N] each; row sums of distances, loss rows, row sums
         * of the coefficients [N] each */
        if ((s = kernel_create(ctx, "adapt", opts, "mmd_dist", &op->k1, e)) ||
            (s = kernel_create(ctx, "adapt", opts, "mmd_coef", &op->k2, e)) ||
            (s = kernel_create(ctx, "adapt", opts, "mmd_grad_diag", &op->k3, e)) ||
            (s = buffer_create(ctx, N * N * f, &op->b[0], e)) ||
            (s = buffer_create(ctx, N * N * f, &op->b[1], e)) ||
            (s = buffer_create(ctx, N * N * f, &op->b[2], e)) ||
            (s = buffer_create(ctx, N * f, &op->b[3], e)) ||
            (s = buffer_create(ctx, N * f, &op->b[4], e)) ||
            (s = buffer_create(ctx, N * f, &op->b[5], e)))
            goto fail;
    }
    /* the GEMM outputs start as zeros written from the host: the GEMM reads C even with
     * beta = 0 (0 * C), and Oclgrind counts a fill as no initialisation */
    for (int i = 0; i < ALIGN_BUFFERS; i++) {
        size_t bytes = 0;
        if (clGetMemObjectInfo(op->b[i], CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS)
            continue;
        void *z = calloc(1, bytes);
        if (!z) {
            s = err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
            goto fail;
        }
        s = buffer_write(ctx, op->b[i], 0, z, bytes, e);
        free(z);
        if (s) goto fail;
    }
    return GRAFT_OK;
fail:
    align_op_free(op);
    return s;
}

void align_op_free(align_op *op)
{
    cl_kernel *ks[] = {&op->k1, &op->k2, &op->k3, &op->sum};
    for (int i = 0; i < 4; i++)
        if (*ks[i]) clReleaseKernel(*ks[i]), *ks[i] = NULL;
    for (int i = 0; i < ALIGN_BUFFERS; i++)
        if (op->b[i]) clReleaseMemObject(op->b[i]), op->b[i] = NULL;
}

size_t align_op_bytes(align_kind kind, int d, int max_n)
{
    size_t D = (size_t)d, N = (size_t)max_n, f = sizeof(float);
    return kind == ALIGN_CORAL ? (2 * N * D + 3 * D * D + D) * f : (3 * N * N + 3 * N) * f;
}

static graft_status loss_sum(graft_context *ctx, align_op *op, int rows, float scale, cl_mem part,
                             cl_mem out, bool accumulate, graft_error *e)
{
    cl_kernel k = op->sum;
    int acc = accumulate;
    SET_ARG(k, 0, rows);
    SET_ARG(k, 1, scale);
    SET_ARG(k, 2, acc);
    SET_ARG(k, 3, part);
    SET_ARG(k, 4, out);
    return launch1(ctx, k, 1, e);
}

/* Deep CORAL: C = Xc^T Xc / (m - 1) per domain, loss = |Cs - Ct|_F^2 / (4 d^2); the gradient
 * dL/dXs = Xc_s (Cs - Ct) / (d^2 (ms - 1)) and dL/dXt = -Xc_t (Cs - Ct) / (d^2 (mt - 1)) (the
 * centring adds nothing: the columns of Xc (Cs - Ct) already sum to zero). */
static graft_status coral(graft_context *ctx, align_op *op, int ns, int nt, cl_mem f, float w,
                          cl_mem df, cl_mem out, bool accumulate, graft_error *e)
{
    const size_t D = (size_t)op->d;
    const float dd = (float)op->d * (float)op->d;
    graft_status s;
    const int r0[2] = {0, ns}, m[2] = {ns, nt};
    for (int k = 0; k < 2; k++) {
        cl_kernel c = op->k1;
        SET_ARG(c, 0, r0[k]);
        SET_ARG(c, 1, m[k]);
        SET_ARG(c, 2, f);
        SET_ARG(c, 3, op->b[k]);
        if ((s = launch1(ctx, c, D, e))) return s;
        if ((s = gemm(ctx, true, false, D, D, (size_t)m[k], 1.0f / (float)(m[k] - 1), op->b[k], 0,
                      D, op->b[k], 0, D, 0.0f, op->b[2 + k], 0, D, e)))
            return s;
    }
    cl_kernel k = op->k2;
    SET_ARG(k, 0, op->b[2]);
    SET_ARG(k, 1, op->b[3]);
    SET_ARG(k, 2, op->b[4]);
    SET_ARG(k, 3, op->b[5]);
    if ((s = launch1(ctx, k, D, e))) return s;
    if (out && (s = loss_sum(ctx, op, op->d, w / (4.0f * dd), op->b[5], out, accumulate, e)))
        return s;
    if (!df) return GRAFT_OK;
    for (int q = 0; q < 2; q++) {
        float alpha = (q ? -w : w) / (dd * (float)(m[q] - 1));
        if ((s = gemm(ctx, false, false, (size_t)m[q], D, D, alpha, op->b[q], 0, D, op->b[4], 0, D,
                      1.0f, df, (size_t)r0[q] * D, D, e)))
            return s;
    }
    return GRAFT_OK;
}

/* Multi-kernel MMD (DAN): see mmd_coef in cl/adapt.cl for the estimate; the gradient is
 * dL/dz_i = 4 (rowsum(A)_i z_i - (A Z)_i). */
static graft_status mmd(graft_context *ctx, align_op *op, int ns, int nt, cl_mem f, float w,
                        cl_mem df, cl_mem out, bool accumulate, graft_error *e)
{
    const int n = ns + nt;
    const size_t D = (size_t)op->d, N = (size_t)n;
    graft_status s;
    if ((s = gemm(ctx, false, true, N, N, D, 1.0f, f, 0, D, f, 0, D, 0.0f, op->b[0], 0, N, e)))
        return s;
    cl_kernel k = op->k1;
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, op->b[0]);
    SET_ARG(k, 2, op->b[1]);
    SET_ARG(k, 3, op->b[3]);
    if ((s = launch1(ctx, k, N, e))) return s;
    k = op->k2;
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, ns);
    SET_ARG(k, 2, op->b[1]);
    SET_ARG(k, 3, op->b[3]);
    SET_ARG(k, 4, op->b[2]);
    SET_ARG(k, 5, op->b[4]);
    SET_ARG(k, 6, op->b[5]);
    if ((s = launch1(ctx, k, N, e))) return s;
    if (out && (s = loss_sum(ctx, op, n, w, op->b[4], out, accumulate, e))) return s;
    if (!df) return GRAFT_OK;
    k = op->k3;
    float c = 4.0f * w;
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, c);
    SET_ARG(k, 2, op->b[5]);
    SET_ARG(k, 3, f);
    SET_ARG(k, 4, df);
    if ((s = launch1(ctx, k, N * D, e))) return s;
    return gemm(ctx, false, false, N, D, N, -c, op->b[2], 0, N, f, 0, D, 1.0f, df, 0, D, e);
}

graft_status align_fwd_bwd(graft_context *ctx, align_op *op, int ns, int nt, cl_mem f,
                           float weight, cl_mem df, cl_mem out, bool accumulate, graft_error *e)
{
    if (ns < 2 || nt < 2 || ns + nt > op->max_n)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "alignment loss: %d source and %d target rows (need 2 or more of each, "
                       "at most %d in all)",
                       ns, nt, op->max_n);
    return op->kind == ALIGN_CORAL ? coral(ctx, op, ns, nt, f, weight, df, out, accumulate, e)
                                   : mmd(ctx, op, ns, nt, f, weight, df, out, accumulate, e);
}

graft_status grl_bwd(graft_context *ctx, long count, float lambda, cl_mem g, cl_mem dx,
                     graft_error *e)
{
    cl_kernel k;
    graft_status s = kernel_get(ctx, "adapt", "-DD=1", "grl_bwd", &k, e);
    if (s) return s;
    cl_long c = count;
    SET_ARG(k, 0, c);
    SET_ARG(k, 1, lambda);
    SET_ARG(k, 2, g);
    SET_ARG(k, 3, dx);
    return launch1(ctx, k, (size_t)count, e);
}

graft_status bce_fwd_bwd(graft_context *ctx, int n, int ns, float scale, cl_mem logit,
                         cl_mem loss, cl_mem dlogit, graft_error *e)
{
    cl_kernel k;
    graft_status s = kernel_get(ctx, "adapt", "-DD=1", "bce_fwd_bwd", &k, e);
    if (s) return s;
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, ns);
    SET_ARG(k, 2, scale);
    SET_ARG(k, 3, logit);
    SET_ARG(k, 4, loss);
    SET_ARG(k, 5, dlogit);
    return launch1(ctx, k, (size_t)n, e);
}

graft_status zero_rows_f32(graft_context *ctx, long off, long count, cl_mem y, graft_error *e)
{
    if (count <= 0) return GRAFT_OK;
    cl_kernel k;
    graft_status s = kernel_get(ctx, "adapt", "-DD=1", "adapt_zero", &k, e);
    if (s) return s;
    cl_long o = off, c = count;
    SET_ARG(k, 0, o);
    SET_ARG(k, 1, c);
    SET_ARG(k, 2, y);
    return launch1(ctx, k, (size_t)count, e);
}

graft_status loss_sum_f32(graft_context *ctx, int rows, float scale, bool accumulate, cl_mem part,
                          cl_mem out, graft_error *e)
{
    cl_kernel k;
    graft_status s = kernel_get(ctx, "adapt", "-DD=1", "adapt_loss_sum", &k, e);
    if (s) return s;
    int acc = accumulate;
    SET_ARG(k, 0, rows);
    SET_ARG(k, 1, scale);
    SET_ARG(k, 2, acc);
    SET_ARG(k, 3, part);
    SET_ARG(k, 4, out);
    return launch1(ctx, k, 1, e);
}

/* op_attention.c — multi-head self-attention: the projections and the per-(sample, head)
 * products QK^T, PV and their gradients through the shared GEMM entry (gemm.c), plus the softmax
 * and bias kernels of cl/attention.cl. Q, K and V live side by side in one [n T, 3D] matrix, so
 * a head's slice of any of them is a GEMM operand with an offset and leading dimension 3D. */
#include "ops.h"

#include <math.h>
#include <stdio.h>

static const char *const ATTN_KERNELS[ATTN_NKERNELS] = {"attn_softmax_fwd", "attn_softmax_bwd",
                                                        "attn_bias_fwd", "attn_bias_bwd"};

long attention_buffer_floats(int t, int d, int heads, bool training)
{
    long f = (long)t * 3 * d + (long)heads * t * t + (long)t * d;
    return training ? 2 * f : f;
}

graft_status attention_op_init(graft_context *ctx, attention_op *op, int t, int d, int heads,
                               bool bias, int max_n, bool training, graft_error *e)
{
    *op = (attention_op){0};
    if (t < 1 || d < 1 || heads < 1 || d % heads || max_n < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "attention: bad shape t=%d d=%d heads=%d", t, d,
                       heads);
    op->t = t;
    op->d = d;
    op->heads = heads;
    op->bias = bias;
    op->max_n = max_n;
    op->training = training;
    op->lsz = group_local_size(ctx, t);
    char opts[96];
    snprintf(opts, sizeof opts, "-DT=%d -DLSZ=%d", t, op->lsz);
    graft_status s = kernels_create(ctx, "attention", opts, ATTN_KERNELS, ATTN_NKERNELS, op->k, e);
    if (!s) s = dense_op_init(ctx, &op->out, d, d, bias, e);
    const size_t n = (size_t)max_n, f = sizeof(float);
    const size_t qkv = n * t * 3 * d * f, pp = n * heads * t * t * f, o = n * t * d * f;
    if (!s) s = buffer_create(ctx, qkv, &op->qkv, e);
    if (!s) s = buffer_create(ctx, pp, &op->p, e);
    if (!s) s = buffer_create(ctx, o, &op->o, e);
    if (!s && training) s = buffer_create(ctx, qkv, &op->dqkv, e);
    if (!s && training) s = buffer_create(ctx, pp, &op->dp, e);
    if (!s && training) s = buffer_create(ctx, o, &op->dout, e);
    if (s) attention_op_free(op);
    return s;
}

void attention_op_free(attention_op *op)
{
    kernels_release(op->k, ATTN_NKERNELS);
    dense_op_free(&op->out);
    cl_mem *m[] = {&op->qkv, &op->p, &op->o, &op->dqkv, &op->dp, &op->dout};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (*m[i]) clReleaseMemObject(*m[i]);
    *op = (attention_op){0};
}

static graft_status check_n(const attention_op *op, int n, graft_error *e)
{
    if (!op->k[0]) return err_set(e, GRAFT_STATUS_INTERNAL, "attention: op not initialised");
    if (n < 1 || n > op->max_n)
        return err_set(e, GRAFT_STATUS_INTERNAL, "attention: batch %d outside 1..%d", n,
                       op->max_n);
    return GRAFT_OK;
}

/* The bias kernels on column slice [off, off + d) of a [rows, ld] matrix, in argument order:
 * forward (bias, matrix), backward (matrix, bias gradient); boff is the bias's offset. */
static graft_status bias_slice(graft_context *ctx, attention_op *op, int which, int rows, int ld,
                               int off, cl_mem src, size_t boff, cl_mem dst, graft_error *e)
{
    cl_kernel k = op->k[which];
    const int cols = op->d, bo = (int)boff;
    SET_ARG(k, 0, rows);
    SET_ARG(k, 1, cols);
    SET_ARG(k, 2, ld);
    SET_ARG(k, 3, off);
    SET_ARG(k, 4, src);
    SET_ARG(k, 5, bo);
    SET_ARG(k, 6, dst);
    size_t l = 64, g = which == ATTN_BIAS_FWD ? (size_t)rows * (size_t)cols : (size_t)cols;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

static graft_status softmax(graft_context *ctx, attention_op *op, bool bwd, int rows,
                            graft_error *e)
{
    cl_kernel k = op->k[bwd ? ATTN_SOFTMAX_BWD : ATTN_SOFTMAX_FWD];
    SET_ARG(k, 0, rows);
    if (bwd) {
        SET_ARG(k, 1, op->p);
        SET_ARG(k, 2, op->dp);
    } else {
        SET_ARG(k, 1, op->p);
    }
    return launch_rows(ctx, k, op->lsz, (size_t)rows, e);
}

graft_status attention_fwd(graft_context *ctx, attention_op *op, int n, cl_mem x,
                           const attn_params *w, cl_mem y, graft_error *e)
{
    graft_status s = check_n(op, n, e);
    if (s) return s;
    const size_t T = (size_t)op->t, D = (size_t)op->d, H = (size_t)op->heads, dh = D / H;
    const size_t R = (size_t)n * T, D3 = 3 * D;
    for (int p = 0; p < 3 && !s; p++) {
        s = gemm(ctx, false, true, R, D, D, 1.0f, x, 0, D, w->w[p], w->w_off[p], D, 0.0f, op->qkv,
                 (size_t)p * D, D3, e);
        if (!s && op->bias)
            s = bias_slice(ctx, op, ATTN_BIAS_FWD, (int)R, (int)D3, p * (int)D, w->b[p],
                           w->b_off[p], op->qkv, e);
    }
    const float scale = (float)(1.0 / sqrt((double)dh));
    for (size_t i = 0; i < (size_t)n && !s; i++)
        for (size_t h = 0; h < H && !s; h++) /* S = scale * Q K^T, T x T */
            s = gemm(ctx, false, true, T, T, dh, scale, op->qkv, i * T * D3 + h * dh, D3, op->qkv,
                     i * T * D3 + D + h * dh, D3, 0.0f, op->p, (i * H + h) * T * T, T, e);
    if (!s) s = softmax(ctx, op, false, (int)((size_t)n * H * T), e);
    for (size_t i = 0; i < (size_t)n && !s; i++)
        for (size_t h = 0; h < H && !s; h++) /* O = P V, T x dh, into head h's columns */
            s = gemm(ctx, false, false, T, dh, T, 1.0f, op->p, (i * H + h) * T * T, T, op->qkv,
                     i * T * D3 + 2 * D + h * dh, D3, 0.0f, op->o, i * T * D + h * dh, D, e);
    if (!s) s = dense_fwd(ctx, &op->out, (int)R, op->o, w->wo, w->bo, y, e);
    return s;
}

graft_status attention_bwd(graft_context *ctx, attention_op *op, int n, cl_mem x, cl_mem dy,
                           const attn_params *w, cl_mem dx, const attn_params *g, graft_error *e)
{
    graft_status s = check_n(op, n, e);
    if (s) return s;
    if (!op->training) return err_set(e, GRAFT_STATUS_INTERNAL, "attention: no training buffers");
    const size_t T = (size_t)op->t, D = (size_t)op->d, H = (size_t)op->heads, dh = D / H;
    const size_t R = (size_t)n * T, D3 = 3 * D;
    const float scale = (float)(1.0 / sqrt((double)dh));
    if (g && (s = dense_bwd_weight(ctx, &op->out, (int)R, op->o, dy, g->wo, g->bo, e))) return s;
    if (!g && !dx) return GRAFT_OK;
    if ((s = dense_bwd_data(ctx, &op->out, (int)R, dy, w->wo, op->dout, e))) return s;
    for (size_t i = 0; i < (size_t)n && !s; i++)
        for (size_t h = 0; h < H && !s; h++) {
            const size_t v = i * T * D3 + 2 * D + h * dh;
            const size_t pp = (i * H + h) * T * T, od = i * T * D + h * dh;
            /* dP = dO V^T (T x T); dV = P^T dO (T x dh) */
            s = gemm(ctx, false, true, T, T, dh, 1.0f, op->dout, od, D, op->qkv, v, D3, 0.0f,
                     op->dp, pp, T, e);
            if (!s)
                s = gemm(ctx, true, false, T, dh, T, 1.0f, op->p, pp, T, op->dout, od, D, 0.0f,
                         op->dqkv, v, D3, e);
        }
    if (!s) s = softmax(ctx, op, true, (int)((size_t)n * H * T), e); /* dp becomes dS */
    for (size_t i = 0; i < (size_t)n && !s; i++)
        for (size_t h = 0; h < H && !s; h++) {
            const size_t q = i * T * D3 + h * dh, k = q + D, pp = (i * H + h) * T * T;
            /* dQ = scale dS K; dK = scale dS^T Q */
            s = gemm(ctx, false, false, T, dh, T, scale, op->dp, pp, T, op->qkv, k, D3, 0.0f,
                     op->dqkv, q, D3, e);
            if (!s)
                s = gemm(ctx, true, false, T, dh, T, scale, op->dp, pp, T, op->qkv, q, D3, 0.0f,
                         op->dqkv, k, D3, e);
        }
    for (int p = 0; p < 3 && !s; p++) {
        if (g) { /* dW_p = dQKV_p^T x, db_p = column sums */
            s = gemm(ctx, true, false, D, D, R, 1.0f, op->dqkv, (size_t)p * D, D3, x, 0, D, 0.0f,
                     g->w[p], g->w_off[p], D, e);
            if (!s && op->bias)
                s = bias_slice(ctx, op, ATTN_BIAS_BWD, (int)R, (int)D3, p * (int)D, op->dqkv,
                               g->b_off[p], g->b[p], e);
        }
        if (!s && dx) /* dx = sum over p of dQKV_p W_p */
            s = gemm(ctx, false, false, R, D, D, 1.0f, op->dqkv, (size_t)p * D, D3, w->w[p],
                     w->w_off[p], D, p ? 1.0f : 0.0f, dx, 0, D, e);
    }
    return s;
}

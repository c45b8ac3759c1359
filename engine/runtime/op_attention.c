/* op_attention.c — multi-head self-attention: the projections through the shared GEMM entry
 * (gemm.c) and the bias kernels of cl/attention.cl; then, per head, softmax(QK^T/sqrt(dh)) V and
 * its gradients in one of two forms: fused (three kernels for all samples and heads, with
 * attention dropout) or, for heads too large for the fused kernels' private rows, per-(sample,
 * head) GEMMs plus the softmax kernels. Q, K and V live side by side in one [n T, 3D] matrix, so
 * a head's slice of any of them is a GEMM operand with an offset and leading dimension 3D. */
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ATTN_KERNELS[ATTN_NKERNELS] = {
    "attn_softmax_fwd", "attn_softmax_bwd",    "attn_bias_fwd",      "attn_bias_bwd",
    "attn_fused_fwd",   "attn_fused_bwd_rows", "attn_fused_bwd_cols"};

bool attention_use_fused(int t, int d, int heads, float rate)
{
    const int dh = heads > 0 ? d / heads : d;
    if (dh > ATTN_FUSED_MAX_DH) return false;
    const char *v = getenv("GRAFT_ATTN");
    if (rate > 0.0f || (v && strcmp(v, "fused") == 0)) return true;
    if (v && strcmp(v, "gemm") == 0) return false;
    /* One work-item per query row walks all T keys of its head: no reuse across rows, so it wins
     * only while a head's products are too small for a GEMM launch to pay (batch 64 on PoCL, AVX-512
     * EPYC, forward ms fused / GEMMs: T 17 dh 16 (ViT-tiny) 2.2 / 3.7 with the projections; T 50
     * dh 16: 14.8 / 15.7; T 50 dh 32: 33 / 29; T 197 dh 16: 131 / 114; T 50 dh 64: 67 / 33;
     * ViT-B/16 at batch 8, T 197 dh 64: 536 / 195). */
    return (double)t * t * dh <= 50.0 * 50.0 * 16.0;
}

long attention_buffer_floats(int t, int d, int heads, bool training)
{
    long f = (long)t * 3 * d + (long)heads * t * t + (long)t * d;
    return training ? 2 * f : f;
}

graft_status attention_op_init(graft_context *ctx, attention_op *op, int t, int d, int heads,
                               bool bias, int max_n, bool training, bool fused, float rate,
                               graft_error *e)
{
    *op = (attention_op){0};
    if (t < 1 || d < 1 || heads < 1 || d % heads || max_n < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "attention: bad shape t=%d d=%d heads=%d", t, d,
                       heads);
    if (fused && d / heads > ATTN_FUSED_MAX_DH)
        return err_set(e, GRAFT_STATUS_INTERNAL, "attention: head size %d over the fused "
                       "kernels' %d", d / heads, ATTN_FUSED_MAX_DH);
    if (!(rate >= 0.0f && rate < 1.0f) || (rate > 0.0f && !fused))
        return err_set(e, GRAFT_STATUS_INTERNAL, "attention: dropout %g needs the fused form "
                       "and a rate in [0, 1)", (double)rate);
    op->t = t;
    op->d = d;
    op->heads = heads;
    op->bias = bias;
    op->max_n = max_n;
    op->training = training;
    op->fused = fused;
    op->rate = rate;
    op->lsz = group_local_size(ctx, t);
    char opts[192], drop[96];
    dropout_options(rate, drop, sizeof drop);
    snprintf(opts, sizeof opts, "-DT=%d -DLSZ=%d -DDH=%d %s", t, op->lsz, d / heads, drop);
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

/* The fused kernels' trailing dropout arguments (drop, row0, seed lo/hi, step lo/hi) from index
 * i; rng NULL or a zero rate: no mask. The mask's element counter must fit Philox's 32 bits. */
static graft_status rng_args(const attention_op *op, cl_kernel k, int i, int n,
                             const attn_rng *rng, graft_error *e)
{
    const cl_int drop = rng && op->rate > 0.0f;
    const cl_long row0 = rng ? rng->row0 : 0;
    const double last = ((double)row0 + n) * op->heads * (double)op->t * op->t;
    if (row0 < 0 || last / 4 >= 4294967296.0)
        return err_set(e, GRAFT_STATUS_INTERNAL, "attention dropout: batch offset %ld too large",
                       (long)row0);
    const uint64_t seed = rng ? rng->seed : 0, step = rng ? rng->step : 0;
    const cl_uint w[4] = {(cl_uint)seed, (cl_uint)(seed >> 32), (cl_uint)step,
                          (cl_uint)(step >> 32)};
    SET_ARG(k, i, drop);
    SET_ARG(k, i + 1, row0);
    for (int j = 0; j < 4; j++) SET_ARG(k, i + 2 + j, w[j]);
    return GRAFT_OK;
}

/* One fused kernel over n * heads * T work-items: (n, heads, scale, qkv, bufs..., rng). */
static graft_status run_fused(graft_context *ctx, attention_op *op, int which, int n, int nbuf,
                          const cl_mem *bufs, const attn_rng *rng, graft_error *e)
{
    cl_kernel k = op->k[which];
    const cl_int heads = op->heads;
    const cl_float scale = (cl_float)(1.0 / sqrt((double)(op->d / op->heads)));
    SET_ARG(k, 0, n);
    SET_ARG(k, 1, heads);
    SET_ARG(k, 2, scale);
    SET_ARG(k, 3, op->qkv);
    for (int b = 0; b < nbuf; b++) SET_ARG(k, 4 + b, bufs[b]);
    graft_status s = rng_args(op, k, 4 + nbuf, n, rng, e);
    if (s) return s;
    size_t g = (size_t)n * (size_t)op->heads * (size_t)op->t, l = 64;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

graft_status attention_fwd(graft_context *ctx, attention_op *op, int n, cl_mem x,
                           const attn_params *w, const attn_rng *rng, cl_mem y, graft_error *e)
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
    if (!s && op->fused) {
        const cl_mem b[2] = {op->p, op->o};
        s = run_fused(ctx, op, ATTN_FUSED_FWD, n, 2, b, rng, e);
        if (!s) s = dense_fwd(ctx, &op->out, (int)R, op->o, w->wo, w->bo, y, e);
        return s;
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
                           const attn_params *w, const attn_rng *rng, cl_mem dx,
                           const attn_params *g, graft_error *e)
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
    if (op->fused) {
        const cl_mem b[4] = {op->p, op->dout, op->dp, op->dqkv};
        s = run_fused(ctx, op, ATTN_FUSED_BWD_ROWS, n, 4, b, rng, e);
        if (!s) s = run_fused(ctx, op, ATTN_FUSED_BWD_COLS, n, 4, b, rng, e);
    }
    for (size_t i = 0; !op->fused && i < (size_t)n && !s; i++)
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
    if (!s && !op->fused) s = softmax(ctx, op, true, (int)((size_t)n * H * T), e); /* dS */
    for (size_t i = 0; !op->fused && i < (size_t)n && !s; i++)
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

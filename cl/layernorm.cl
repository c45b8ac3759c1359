/* layernorm.cl — layer normalisation over the last axis (PyTorch nn.LayerNorm(D)): every row of
 * D contiguous values (a sample's [F] features, or one token of [T, D]) is normalised by its own
 * mean and biased variance, then scaled and shifted per feature. Training and evaluation are the
 * same computation, so there are no running statistics; the forward saves each row's mean and
 * inverse std for the backward.
 * Build options: -DD= (row length), -DEPS= (float, full precision), -DAFFINE= (0: no gamma/beta),
 * -DLSZ= (work-items per row, see reduce.cl), -DACC_DOUBLE=, -DCHUNK= (rows per partial of the
 * parameter gradients). The row count is a runtime argument. */
#include "acc.cl"

#define RED_T acc_t
#include "reduce.cl"

/* Per row: mean and biased variance (reduce.cl's two-pass group_mean_m2); y = xhat * gamma + beta. */
__kernel void layernorm_fwd(const int rows, __global const float *x, __global const float *gamma,
                            __global const float *beta, __global float *y,
                            __global float *save_mean, __global float *save_invstd)
{
    __local acc_t red[LSZ];
    const int t = ROW(), lid = LID();
    if (t >= rows) return; /* a whole group when LSZ > 1 */
    __global const float *p = x + (long)t * D;
    __global float *q = y + (long)t * D;
    acc_t v;
    const acc_t meand = group_mean_m2(red, p, D, &v);
    const float mean = (float)meand;
    const float invstd = (float)(1.0 / sqrt(v / D + (acc_t)EPS));
    for (int e = lid; e < D; e += LSZ) {
        const float xh = (p[e] - mean) * invstd;
#if AFFINE
        q[e] = fma(xh, gamma[e], beta[e]);
#else
        q[e] = xh;
#endif
    }
    if (lid == 0) {
        save_mean[t] = mean;
        save_invstd[t] = invstd;
    }
}

/* dx per row, with g = dy * gamma and xhat = (x - mean) * invstd:
 *   dx = invstd * (g - mean(g) - xhat * mean(g * xhat)). */
__kernel void layernorm_bwd_data(const int rows, __global const float *x,
                                 __global const float *dy, __global const float *gamma,
                                 __global const float *save_mean,
                                 __global const float *save_invstd, __global float *dx)
{
    __local acc_t red[LSZ];
    const int t = ROW(), lid = LID();
    if (t >= rows) return;
    __global const float *px = x + (long)t * D;
    __global const float *pd = dy + (long)t * D;
    __global float *q = dx + (long)t * D;
    const float mean = save_mean[t], invstd = save_invstd[t];
#if AFFINE
#define LN_G(e) (pd[e] * gamma[e])
#else
#define LN_G(e) pd[e]
#endif
    acc_t s1, s2;
    RED_GRAD_SUMS(red, D, LN_G, px, mean, invstd, s1, s2);
    const float m1 = (float)(s1 / D), m2 = (float)(s2 / D);
    for (int e = lid; e < D; e += LSZ) {
        const float g = LN_G(e);
        const float xh = (px[e] - mean) * invstd;
        q[e] = invstd * (g - m1 - xh * m2);
    }
}
#undef LN_G

/* Parameter gradients, first half: per feature j and chunk c of CHUNK rows, the sums of
 * dy * xhat and dy over those rows, into part[(c * 2 + {0, 1}) * D + j]. Work-items of a group
 * are consecutive features, so the reads of a row are contiguous. */
__kernel void layernorm_grad_partial(const int rows, __global const float *x,
                                     __global const float *dy, __global const float *save_mean,
                                     __global const float *save_invstd, __global acc_t *part)
{
    const int j = get_global_id(0), c = get_global_id(1);
    if (j >= D) return;
    const int r0 = c * CHUNK, r1 = min(rows, r0 + CHUNK);
    acc_t sg = 0, sb = 0;
    for (int r = r0; r < r1; r++) {
        const float d = dy[(long)r * D + j];
        sg += (acc_t)d * ((x[(long)r * D + j] - save_mean[r]) * save_invstd[r]);
        sb += d;
    }
    part[(long)(c * 2) * D + j] = sg;
    part[(long)(c * 2 + 1) * D + j] = sb;
}

/* Second half: per feature, the chunks' sums in chunk order (deterministic run to run). */
__kernel void layernorm_grad_finalize(const int nchunks, __global const acc_t *part,
                                      __global float *dgamma, __global float *dbeta)
{
    const int j = get_global_id(0);
    if (j >= D) return;
    acc_t sg = 0, sb = 0;
    for (int c = 0; c < nchunks; c++) {
        sg += part[(long)(c * 2) * D + j];
        sb += part[(long)(c * 2 + 1) * D + j];
    }
    dgamma[j] = (float)sg;
    dbeta[j] = (float)sb;
}

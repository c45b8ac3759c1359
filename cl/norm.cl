/* norm.cl — batch normalisation over the channels of [n, C, HW] tensors: training forward with
 * batch statistics and PyTorch's running-statistics update, eval forward, and both backwards, each
 * with the fused activation epilogue (epilogue.cl) when the compiler put one on it.
 * Build options: -DC= -DHW= -DEPS= -DMOMENTUM= (floats written with full precision by the host),
 * -DLSZ= (work-items per plane, see reduce.cl), -DEPI=. The batch count n is a runtime argument.
 *
 * Every reduction is parallel over planes (sample i, channel c: HW contiguous values), never one
 * work-group walking a whole channel: a plane kernel writes per-plane partial results
 * part[(c * n + i) * 2 + {0, 1}], a per-channel kernel combines a channel's n partials in a fixed
 * order (so results are deterministic run to run), and a plane kernel applies the result. */
#include "epilogue.cl"

/* Sums accumulate in double where the device has it (-DACC_DOUBLE=1), as PyTorch's CPU batchnorm
 * does: a channel whose values are all (nearly) equal has a variance far below eps, so its
 * normalised outputs are rounding noise times 1/sqrt(eps), and float sums put a different sign on
 * some of them than PyTorch does (a ReLU after it then passes different gradients; ResNet-18's
 * layer3 at batch 2 has such channels). Partials are acc_t too. */
#include "acc.cl"

#define RED_T acc_t
#include "reduce.cl"

/* (mean, invstd) of channel c from either the saved batch statistics (is_var = 0: s2 holds the
 * inverse std) or the running statistics (is_var = 1: s2 holds the variance). */
#define STATS(c, mean_buf, s2_buf, is_var)                                                         \
    const float mean = mean_buf[c];                                                                \
    const float invstd = is_var ? rsqrt(s2_buf[c] + EPS) : s2_buf[c]

/* Per plane: its mean and the sum of squared deviations from that mean (two passes over a plane
 * that is in cache), so the variance stays accurate when |mean| >> std. */
__kernel void bn_stats_partial(const int n, __global const float *x, __global acc_t *part)
{
    __local acc_t red[LSZ];
    const int t = ROW(), lid = LID();
    if (t >= n * C) return; /* a whole group when LSZ > 1 */
    const int i = t / C, c = t - i * C;
    acc_t q;
    const acc_t mean = group_mean_m2(red, x + (long)t * HW, HW, &q);
    if (lid == 0) {
        part[(c * n + i) * 2] = mean;
        part[(c * n + i) * 2 + 1] = q;
    }
}

/* Per channel: every plane has HW values, so the batch mean is the mean of the plane means and
 * the sum of squared deviations is sum(M2_i) + HW * sum((mean_i - mean)^2) (the parallel-variance
 * identity, two passes over n partials in sample order); normalisation uses the biased variance,
 * the running update the unbiased one (m/(m-1)), as PyTorch does. */
__kernel void bn_stats_finalize(const int n, __global const acc_t *part, __global float *run_mean,
                                __global float *run_var, __global float *save_mean,
                                __global float *save_invstd)
{
    const int c = get_global_id(0);
    if (c >= C) return;
    __global const acc_t *pc = part + (long)c * n * 2;
    acc_t sm = 0;
    for (int i = 0; i < n; i++) sm += pc[2 * i];
    const acc_t meand = sm / n;
    acc_t m2 = 0, dev = 0;
    for (int i = 0; i < n; i++) {
        const acc_t d = pc[2 * i] - meand;
        m2 += pc[2 * i + 1];
        dev += d * d;
    }
    m2 += dev * HW;
    const int m = n * HW;
    const float mean = (float)meand, var = (float)(m2 / m);
    save_mean[c] = mean;
    save_invstd[c] = (float)(1.0 / sqrt((acc_t)var + (acc_t)EPS));
    /* a batch of one value has no unbiased variance (PyTorch refuses to train on it); keep the
     * biased one rather than writing inf into the running statistics */
    const float unbiased = m > 1 ? var * ((float)m / (float)(m - 1)) : var;
    run_mean[c] = (1.0f - MOMENTUM) * run_mean[c] + MOMENTUM * mean;
    run_var[c] = (1.0f - MOMENTUM) * run_var[c] + MOMENTUM * unbiased;
}

/* y = epi(gamma * (x - mean) * invstd + beta), per plane. */
__kernel void bn_apply(const int n, const int is_var, __global const float *x,
                       __global const float *gamma, __global const float *beta,
                       __global const float *mean_buf, __global const float *s2_buf,
                       __global float *y)
{
    const int t = ROW(), lid = LID();
    if (t >= n * C) return;
    const int c = t - t / C * C;
    STATS(c, mean_buf, s2_buf, is_var);
    const float g = gamma[c] * invstd, b = beta[c] - mean * g;
    __global const float *p = x + (long)t * HW;
    __global float *q = y + (long)t * HW;
    for (int e = lid; e < HW; e += LSZ) q[e] = epi_fwd(fma(p[e], g, b));
}

/* Backward, per plane: sdy = sum d, sdyx = sum d * xhat, where d is the gradient of the
 * normalised output (the epilogue's derivative applied to dy, from the saved output y). */
__kernel void bn_grad_partial(const int n, const int is_var, __global const float *x,
                              __global const float *y, __global const float *dy,
                              __global const float *mean_buf, __global const float *s2_buf,
                              __global acc_t *part)
{
    __local acc_t red[LSZ];
    const int t = ROW(), lid = LID();
    if (t >= n * C) return;
    const int i = t / C, c = t - i * C;
    STATS(c, mean_buf, s2_buf, is_var);
    __global const float *px = x + (long)t * HW;
    __global const float *pd = dy + (long)t * HW;
#if EPI
    __global const float *py = y + (long)t * HW;
#endif
#if EPI
#define BN_D(e) epi_grad(pd[e], py[e])
#else
#define BN_D(e) pd[e]
#endif
    acc_t sdy, sdyx;
    RED_GRAD_SUMS(red, HW, BN_D, px, mean, invstd, sdy, sdyx);
    if (lid == 0) {
        part[(c * n + i) * 2] = sdy;
        part[(c * n + i) * 2 + 1] = sdyx;
    }
}
#undef BN_D

/* Flags for which outputs the backward writes. */
#define BN_DGAMMA 2
#define BN_DBETA 4

/* Per channel: the sums over the batch, in sample order; dgamma = sdyx, dbeta = sdy. */
__kernel void bn_grad_finalize(const int n, const int flags, __global const acc_t *part,
                               __global float *dgamma, __global float *dbeta,
                               __global float *sums)
{
    const int c = get_global_id(0);
    if (c >= C) return;
    __global const acc_t *pc = part + (long)c * n * 2;
    acc_t sdy = 0, sdyx = 0;
    for (int i = 0; i < n; i++) {
        sdy += pc[2 * i];
        sdyx += pc[2 * i + 1];
    }
    if (flags & BN_DGAMMA) dgamma[c] = (float)sdyx;
    if (flags & BN_DBETA) dbeta[c] = (float)sdy;
    sums[2 * c] = (float)sdy;
    sums[2 * c + 1] = (float)sdyx;
}

/* dx per plane. Through the batch statistics (train = 1):
 *   dx = gamma * invstd / m * (m * d - sdy - xhat * sdyx);
 * through constant (running) statistics: dx = d * gamma * invstd, and sums is not read. */
__kernel void bn_grad_apply(const int n, const int is_var, const int train,
                            __global const float *x, __global const float *y,
                            __global const float *dy, __global const float *gamma,
                            __global const float *mean_buf, __global const float *s2_buf,
                            __global const float *sums, __global float *dx)
{
    const int t = ROW(), lid = LID();
    if (t >= n * C) return;
    const int c = t - t / C * C;
    STATS(c, mean_buf, s2_buf, is_var);
    __global const float *px = x + (long)t * HW;
    __global const float *pd = dy + (long)t * HW;
#if EPI
    __global const float *py = y + (long)t * HW;
#endif
    __global float *q = dx + (long)t * HW;
    const float m = (float)n * HW;
    const float k = train ? gamma[c] * invstd / m : gamma[c] * invstd;
    const float sdy = train ? sums[2 * c] : 0.0f, sdyx = train ? sums[2 * c + 1] : 0.0f;
    for (int e = lid; e < HW; e += LSZ) {
#if EPI
        const float d = epi_grad(pd[e], py[e]);
#else
        const float d = pd[e];
#endif
        if (train) {
            const float xhat = (px[e] - mean) * invstd;
            q[e] = k * (m * d - sdy - xhat * sdyx);
        } else {
            q[e] = d * k;
        }
    }
}

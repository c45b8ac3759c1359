/* norm.cl — batch normalisation over the channels of [n, C, HW] tensors: training forward with
 * batch statistics and PyTorch's running-statistics update, eval forward, and both backwards.
 * Build options: -DC= -DHW= -DEPS= -DMOMENTUM= (floats written with full precision by the host).
 * The batch count n is a runtime argument. Per-channel kernels run one work-group per channel
 * (global = C * local); the local size is a power of two chosen at launch and `red` is a __local
 * scratch of that many floats (two arrays where two sums are reduced at once). */

/* Tree reduction of red[0..lsz) into red[0]; lsz is a power of two. Every work-item of the group
 * must call it (barriers). */
static float group_sum(__local float *red, float v)
{
    const int lid = get_local_id(0), lsz = get_local_size(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* red is reused right after */
    return r;
}

static void group_sum2(__local float *ra, __local float *rb, float *a, float *b)
{
    const int lid = get_local_id(0), lsz = get_local_size(0);
    ra[lid] = *a;
    rb[lid] = *b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            ra[lid] += ra[lid + s];
            rb[lid] += rb[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    *a = ra[0];
    *b = rb[0];
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Element e of channel c, e in [0, n*HW): sample e / HW, position e % HW (HW is a constant, so the
 * division is cheap). int math: the host keeps n*C*HW below 2^31, and 64-bit lanes would halve
 * PoCL's vectors. */
#define AT(c, e) (((e) / HW) * (C * HW) + (c) * HW + (e) % HW)

/* Training forward. The variance is two-pass (sum of squared deviations from the mean), which
 * stays accurate when |mean| >> std; normalisation uses the biased variance, the running update
 * the unbiased one (m/(m-1)), as PyTorch does. */
__kernel void bn_fwd_train(const int n, __global const float *x, __global const float *gamma,
                           __global const float *beta, __global float *run_mean,
                           __global float *run_var, __global float *save_mean,
                           __global float *save_invstd, __global float *y, __local float *red)
{
    const int c = get_group_id(0), lid = get_local_id(0), lsz = get_local_size(0);
    const int m = n * HW;
    float s = 0.0f;
    for (int e = lid; e < m; e += lsz) s += x[AT(c, e)];
    const float mean = group_sum(red, s) / (float)m;
    float q = 0.0f;
    for (int e = lid; e < m; e += lsz) {
        const float d = x[AT(c, e)] - mean;
        q = fma(d, d, q);
    }
    const float var = group_sum(red, q) / (float)m;
    const float invstd = rsqrt(var + EPS);
    const float g = gamma[c] * invstd, b = beta[c] - mean * g;
    for (int e = lid; e < m; e += lsz) y[AT(c, e)] = fma(x[AT(c, e)], g, b);
    if (lid == 0) {
        save_mean[c] = mean;
        save_invstd[c] = invstd;
        /* a batch of one value has no unbiased variance (PyTorch refuses to train on it); keep
         * the biased one rather than writing inf into the running statistics */
        const float unbiased = m > 1 ? var * ((float)m / (float)(m - 1)) : var;
        run_mean[c] = (1.0f - MOMENTUM) * run_mean[c] + MOMENTUM * mean;
        run_var[c] = (1.0f - MOMENTUM) * run_var[c] + MOMENTUM * unbiased;
    }
}

/* Eval forward: elementwise with the running statistics, one work-item per element. */
__kernel void bn_fwd_eval(const int n, __global const float *x, __global const float *gamma,
                          __global const float *beta, __global const float *run_mean,
                          __global const float *run_var, __global float *y)
{
    const int i = get_global_id(0);
    if (i >= n * C * HW) return;
    const int c = (i / HW) % C;
    const float g = gamma[c] * rsqrt(run_var[c] + EPS);
    y[i] = fma(x[i] - run_mean[c], g, beta[c]);
}

/* Flags for which outputs the backward kernels write. */
#define BN_DX 1
#define BN_DGAMMA 2
#define BN_DBETA 4

/* Training backward through the batch statistics:
 *   xhat = (x - mean) * invstd, dbeta = sum dy, dgamma = sum dy * xhat,
 *   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma). */
__kernel void bn_bwd_train(const int n, const int flags, __global const float *x,
                           __global const float *dy, __global const float *gamma,
                           __global const float *save_mean, __global const float *save_invstd,
                           __global float *dx, __global float *dgamma, __global float *dbeta,
                           __local float *ra, __local float *rb)
{
    const int c = get_group_id(0), lid = get_local_id(0), lsz = get_local_size(0);
    const int m = n * HW;
    const float mean = save_mean[c], invstd = save_invstd[c];
    float sdy = 0.0f, sdyx = 0.0f;
    for (int e = lid; e < m; e += lsz) {
        const int i = AT(c, e);
        const float d = dy[i];
        sdy += d;
        sdyx = fma(d, (x[i] - mean) * invstd, sdyx);
    }
    group_sum2(ra, rb, &sdy, &sdyx);
    if (lid == 0) {
        if (flags & BN_DGAMMA) dgamma[c] = sdyx;
        if (flags & BN_DBETA) dbeta[c] = sdy;
    }
    if (!(flags & BN_DX)) return;
    const float k = gamma[c] * invstd / (float)m;
    for (int e = lid; e < m; e += lsz) {
        const int i = AT(c, e);
        const float xhat = (x[i] - mean) * invstd;
        dx[i] = k * ((float)m * dy[i] - sdy - xhat * sdyx);
    }
}

/* Eval backward: the statistics are constants, so dx = dy * gamma * invstd; dgamma and dbeta are
 * the same sums as in training, with the running statistics. */
__kernel void bn_bwd_eval(const int n, const int flags, __global const float *x,
                          __global const float *dy, __global const float *gamma,
                          __global const float *run_mean, __global const float *run_var,
                          __global float *dx, __global float *dgamma, __global float *dbeta,
                          __local float *ra, __local float *rb)
{
    const int c = get_group_id(0), lid = get_local_id(0), lsz = get_local_size(0);
    const int m = n * HW;
    const float mean = run_mean[c], invstd = rsqrt(run_var[c] + EPS);
    const float k = gamma[c] * invstd;
    float sdy = 0.0f, sdyx = 0.0f;
    for (int e = lid; e < m; e += lsz) {
        const int i = AT(c, e);
        const float d = dy[i];
        sdy += d;
        sdyx = fma(d, (x[i] - mean) * invstd, sdyx);
        if (flags & BN_DX) dx[i] = d * k;
    }
    /* no early return before the barriers here even when the sums are not wanted: PoCL 3.1 gave
     * NaN sums (Oclgrind: correct, no races) when a uniform `return` preceded them */
    group_sum2(ra, rb, &sdy, &sdyx);
    if (lid == 0) {
        if (flags & BN_DGAMMA) dgamma[c] = sdyx;
        if (flags & BN_DBETA) dbeta[c] = sdy;
    }
}

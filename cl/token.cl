/* token.cl — the token layers' plumbing over [n, T, D] tensors (layer_token.c): patches of an
 * image laid out as token rows, a per-sample parameter written into or added to every sample,
 * its gradient summed over the batch, and the mean over tokens. Sizes are runtime arguments, like
 * tensor.cl, so one program serves every layer; each kernel guards its index. */

/* The sum over the batch of a per-sample block: dp[r] = sum_i dy[i * stride + r], r < len. One
 * work-item per element, samples in order (deterministic run to run). */
__kernel void token_batch_sum(const int n, const int stride, const int len,
                              __global const float *dy, __global float *dp)
{
    const int r = get_global_id(0);
    if (r >= len) return;
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += dy[(long)i * stride + r];
    dp[r] = s;
}

/* y[i * stride + r] = p[r], r < len: a learned token into row 0 of every sample. */
__kernel void token_broadcast(const int n, const int stride, const int len,
                              __global const float *p, __global float *y)
{
    const long e = get_global_id(0);
    if (e >= (long)n * len) return;
    const long i = e / len, r = e - i * len;
    y[i * stride + r] = p[r];
}

/* y = x + p broadcast over the batch (x, y: [n, len]; p: [len]). */
__kernel void token_add(const int n, const int len, __global const float *x,
                        __global const float *p, __global float *y)
{
    const long e = get_global_id(0);
    if (e >= (long)n * len) return;
    const long i = e / len;
    y[e] = x[e] + p[e - i * len];
}

/* y[i, j] = mean over k of x[i, k, j] (x: [n, t, d]); one work-item per (i, j), tokens in order. */
__kernel void token_mean_fwd(const int n, const int t, const int d, __global const float *x,
                             __global float *y)
{
    const long e = get_global_id(0);
    if (e >= (long)n * d) return;
    const long i = e / d, j = e - i * d;
    __global const float *p = x + i * t * d + j;
    float s = 0.0f;
    for (int k = 0; k < t; k++) s += p[(long)k * d];
    y[e] = s / t;
}

__kernel void token_mean_bwd(const int n, const int t, const int d, __global const float *dy,
                             __global float *dx)
{
    const long e = get_global_id(0);
    if (e >= (long)n * t * d) return;
    const long i = e / ((long)t * d), j = e - e / d * d;
    dx[e] = dy[i * d + j] / t;
}

/* Patches of x [n, c, h, w] as rows of a [n, T, c * p * p] matrix, T = (h / p) * (w / p) in
 * row-major patch order, each row ordered (channel, ky, kx) like a conv weight [D, c, p, p], so
 * that rows times weight^T is the stride-p convolution. Patches do not overlap: the layout is a
 * permutation, and its backward (to_image = 1) writes every input element exactly once. One
 * work-item per element of the patch matrix. */
__kernel void token_patches(const int n, const int c, const int h, const int w, const int p,
                            const int to_image, __global const float *src, __global float *dst)
{
    const long e = get_global_id(0);
    const int pw = w / p, k = c * p * p;
    const long per = (long)(h / p) * pw * k;
    if (e >= (long)n * per) return;
    const long i = e / per;
    const int rem = (int)(e - i * per), tok = rem / k, col = rem - tok * k;
    const int ch = col / (p * p), kk = col - ch * p * p, ky = kk / p, kx = kk - ky * p;
    const int ty = tok / pw, tx = tok - ty * pw;
    const long img = ((i * c + ch) * h + ty * p + ky) * w + tx * p + kx;
    if (to_image) dst[img] = src[e];
    else dst[e] = src[img];
}

/* tensor.cl — shape-free tensor plumbing: add, accumulate, copy, channel concat, row gather and
 * the eval-mode batchnorm folded into a convolution's weights.
 * Sizes are runtime arguments (no -D options), so one program per context serves every layer;
 * each kernel guards its index against the real size. */

__kernel void add2_f32(const long count, __global const float *a, __global const float *b,
                       __global float *y)
{
    const long i = get_global_id(0);
    if (i < count) y[i] = a[i] + b[i];
}

/* y += x: how the compiler sums the gradients of a tensor read by several layers */
__kernel void accumulate_f32(const long count, __global const float *x, __global float *y)
{
    const long i = get_global_id(0);
    if (i < count) y[i] += x[i];
}

__kernel void copy_f32(const long count, __global const float *x, __global float *y)
{
    const long i = get_global_id(0);
    if (i < count) y[i] = x[i];
}

/* x [n, cx, hw] <-> channels [c0, c0 + cx) of y [n, cy, hw]. Work-item e walks x contiguously;
 * within one sample the cx * hw block is contiguous in y too, so both sides are unit-stride. */
__kernel void concat_fwd(const int n, const int cx, const int cy, const int c0, const int hw,
                         __global const float *x, __global float *y)
{
    const long e = get_global_id(0), blk = (long)cx * hw;
    if (e >= n * blk) return;
    const long i = e / blk, r = e - i * blk;
    y[(i * cy + c0) * hw + r] = x[e];
}

__kernel void concat_bwd(const int n, const int cx, const int cy, const int c0, const int hw,
                         __global const float *dy, __global float *dx)
{
    const long e = get_global_id(0), blk = (long)cx * hw;
    if (e >= n * blk) return;
    const long i = e / blk, r = e - i * blk;
    dx[e] = dy[(i * cy + c0) * hw + r];
}

/* Rows of a device-resident table (the feature cache) copied into a batch:
 * dst[r][j] = src[rows[r]][j] for r < n, j < row. Two dimensions (j / 16, r), so no division per
 * element and consecutive work-items copy consecutive 16-float pieces (the last piece of a row
 * takes what is left; one float a work-item made 832 work-groups of a 64 x 3136 batch, which
 * PoCL pays for one by one); the global size is rounded up to the work-group, so both indices
 * are guarded. Here rather than in a file of its own: a transfer that caches features then
 * builds no program its pretraining did not. (16: ROWS_GATHER_FLOATS in runtime.h, for the host
 * and the cost model.) */
__kernel void gather_rows(const int n, const int row, __global const float *src,
                          __global const int *rows, __global float *dst)
{
    const int j = get_global_id(0) * 16, r = get_global_id(1);
    if (j >= row || r >= n) return;
    __global const float *s = src + (long)rows[r] * row + j;
    __global float *d = dst + (long)r * row + j;
    if (j + 16 <= row)
        vstore16(vload16(0, s), 0, d);
    else
        for (int k = 0; k < row - j; k++) d[k] = s[k];
}

/* The eval-mode batchnorm folded into the convolution that feeds it (engine/compile/plan.c,
 * bn_fold): per output channel c (C of them) of a conv with k weights each, g = gamma * invstd,
 * wf = w * g and bf = (b - mean) * g + beta (b = 0 without a conv bias), so that
 * conv(x; wf, bf) = gamma * (conv(x; w, b) - mean) * invstd + beta. One work-item per channel.
 * Here rather than in norm.cl, whose programs are one per layer: a folded batchnorm needs no
 * other kernel, so it builds no program of its own. */
__kernel void bn_fold(const int C, const int k, const float eps, __global const float *w,
                      __global const float *cb, const int has_cb, __global const float *gamma,
                      __global const float *beta, __global const float *run_mean,
                      __global const float *run_var, __global float *wf, __global float *bf)
{
    const int c = get_global_id(0);
    if (c >= C) return;
    const float g = gamma[c] * rsqrt(run_var[c] + eps);
    __global const float *wr = w + (long)c * k;
    __global float *fr = wf + (long)c * k;
    for (int j = 0; j < k; j++) fr[j] = wr[j] * g;
    bf[c] = fma((has_cb ? cb[c] : 0.0f) - run_mean[c], g, beta[c]);
}

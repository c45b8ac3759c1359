/* bias.cl — bias add and bias gradient over [n, C, HW] (HW = 1 for dense layers). HW comes in as
 * a -D option, the batch count n and the channels C at run time (so a transfer's new head of
 * other width runs the program its pretraining compiled); -DHAS_BIAS=0 makes bias_fwd apply only
 * the fused activation (-DEPI, epilogue.cl), and epi_grad_inplace turns an activation's output
 * gradient into its producer's output gradient for the paths that cannot fold it into a read. */
#include "epilogue.cl"
#ifndef HAS_BIAS
#define HAS_BIAS 1
#endif

/* y[i, c, :] += b[c]; one work-item per (i, c) row (PoCL runs row loops far faster than one
 * element per work-item: see conv.cl). */
__kernel void bias_fwd(__global float *y, __global const float *b, const int n, const int C)
{
    const int t = get_global_id(0);
    if (t >= n * C) return;
#if HAS_BIAS
    const float bc = b[t - t / C * C]; /* t % C, spelled so LLVM emits no freeze (Oclgrind) */
#else
    const float bc = 0.0f;
    (void)b;
#endif
    __global float *row = y + (long)t * HW;
    for (int p = 0; p < HW; p++) row[p] = epi_fwd(row[p] + bc);
}

/* dy = epi'(y) * dy in place, one work-item per (i, c) row. */
__kernel void epi_grad_inplace(__global float *dy, __global const float *y, const int n,
                               const int C)
{
    const int t = get_global_id(0);
    if (t >= n * C) return;
    __global float *g = dy + (long)t * HW;
    __global const float *o = y + (long)t * HW;
    for (int p = 0; p < HW; p++) g[p] = epi_grad(g[p], o[p]);
}

/* epi_grad_inplace and then bias_bwd in one pass, one work-item per channel: dy = epi'(y) * dy
 * in place and db[c] its sum, in bias_bwd's order (so both are bias_bwd's bits). */
__kernel void epi_grad_bias_bwd(__global float *dy, __global const float *y, __global float *db,
                                const int n, const int C)
{
    const int c = get_global_id(0);
    if (c >= C) return;
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        __global float *g = dy + ((long)i * C + c) * HW;
        __global const float *o = y + ((long)i * C + c) * HW;
        float si = 0.0f;
        for (int p = 0; p < HW; p++) {
            const float v = epi_grad(g[p], o[p]);
            g[p] = v;
            si += v;
        }
        s += si;
    }
    db[c] = s;
}

/* db[c] = sum over i and p of dy[i, c, p]. One work-item per channel; the spatial sum of each
 * sample is formed first and then added to the total, which keeps float rounding near that of a
 * pairwise sum for the long reductions of early conv layers (n * HW ~ 50k terms). dy starts at
 * off; acc adds to db (a batch in launches of a few samples: loop-limited devices, op_conv.c),
 * the same additions in the same order. */
__kernel void bias_bwd(__global const float *dy, const long off, __global float *db, const int n,
                       const int C, const int acc)
{
    const int c = get_global_id(0);
    if (c >= C) return;
    dy += off;
    float s = acc ? db[c] : 0.0f;
    for (int i = 0; i < n; i++) {
        __global const float *row = dy + ((long)i * C + c) * HW;
        float si = 0.0f;
        for (int p = 0; p < HW; p++) si += row[p];
        s += si;
    }
    db[c] = s;
}

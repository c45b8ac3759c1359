/* attention.cl — the non-GEMM parts of multi-head self-attention (op_attention.c; the products
 * QK^T, PV and their gradients go through the shared GEMM path): the row softmax of the scores,
 * numerically stable (the row maximum subtracted before exp), its backward, and the projection
 * biases added to / summed from one column slice of the packed [rows, 3D] Q|K|V matrix.
 * Build options: -DT= (row length: the token count), -DLSZ= (work-items per row, reduce.cl).
 * Row counts and slices are runtime arguments. */
#include "reduce.cl"

/* p = softmax(s) per row of T scores, in place (s already holds QK^T / sqrt(d)). */
__kernel void attn_softmax_fwd(const int rows, __global float *s)
{
    __local float redf[LSZ];
    __local int redi[LSZ];
    const int r = ROW(), lid = LID();
    if (r >= rows) return;
    __global float *p = s + (long)r * T;
    float m = -INFINITY;
    for (int e = lid; e < T; e += LSZ) m = fmax(m, p[e]);
    int arg = 0;
    m = group_max_arg(redf, redi, m, &arg);
    float z = 0.0f;
    for (int e = lid; e < T; e += LSZ) {
        const float v = exp(p[e] - m);
        p[e] = v;
        z += v;
    }
    z = group_sum(redf, z);
    const float inv = 1.0f / z;
    for (int e = lid; e < T; e += LSZ) p[e] *= inv;
}

/* dS = P * (dP - sum(P * dP)) per row, in place on dp. */
__kernel void attn_softmax_bwd(const int rows, __global const float *p, __global float *dp)
{
    __local float redf[LSZ];
    const int r = ROW(), lid = LID();
    if (r >= rows) return;
    __global const float *pr = p + (long)r * T;
    __global float *g = dp + (long)r * T;
    float dot = 0.0f;
    for (int e = lid; e < T; e += LSZ) dot += pr[e] * g[e];
    dot = group_sum(redf, dot);
    for (int e = lid; e < T; e += LSZ) g[e] = pr[e] * (g[e] - dot);
}

/* y[r * ld + off + j] += b[boff + j] for j < cols, r < rows: one element per work-item. */
__kernel void attn_bias_fwd(const int rows, const int cols, const int ld, const int off,
                            __global const float *b, const int boff, __global float *y)
{
    const long e = get_global_id(0);
    if (e >= (long)rows * cols) return;
    const long r = e / cols, j = e - r * cols;
    y[r * ld + off + j] += b[boff + j];
}

/* db[boff + j] = sum over rows of dy[r * ld + off + j]: one work-item per column, rows in order. */
__kernel void attn_bias_bwd(const int rows, const int cols, const int ld, const int off,
                            __global const float *dy, const int boff, __global float *db)
{
    const int j = get_global_id(0);
    if (j >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += dy[(long)r * ld + off + j];
    db[boff + j] = s;
}

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

/* ---- fused attention: softmax(Q K^T / sqrt(DH)) V and its backward, without per-head GEMMs ----
 * One work-item per (sample i, head h, token r), enumerated g = (i * heads + h) * T + r, so
 * neighbouring work-items share a head's K and V rows (read as broadcasts) and PoCL vectorises
 * across tokens. Q|K|V is the packed [n T, 3D] matrix (D = heads * DH; Q, K, V of head h at columns
 * h DH, D + h DH, 2D + h DH); P is [n, heads, T, T] and keeps the softmax before dropout (its
 * backward needs it); O is [n T, D]. Build options add -DDH= (the head size, for the private rows)
 * and, for attention dropout, -DKEEP_THRESHOLD=<uint>u -DSCALE=<float>f (or -DKEEP_ALL).
 * Dropout on P uses dropout.cl's mask: element e = ((row0 + i) heads + h) T T + r T + j of the
 * global batch keeps iff word e % 4 of philox((e / 4, 0, step lo, hi), (seed lo, hi)) is below
 * KEEP_THRESHOLD, so a replica's share (row0 > 0) draws the one-device mask; `drop` = 0 (eval)
 * skips it. */
#include "philox.cl"

#ifndef DH
#define DH 1
#endif
#ifdef KEEP_ALL
#define KEEP_THRESHOLD 0u
#define SCALE 1.0f
#endif

/* The dropout factor of score element e: SCALE or 0 (1 without dropout). */
static float attn_keep(const int drop, const uint seed_lo, const uint seed_hi,
                       const uint step_lo, const uint step_hi, const long e)
{
#ifdef KEEP_ALL
    return 1.0f;
#else
    if (!drop) return 1.0f;
    const uint4 w = philox4x32_10((uint4)((uint)(e >> 2), 0u, step_lo, step_hi),
                                  (uint2)(seed_lo, seed_hi));
    const int k = (int)(e & 3);
    const uint v = k == 0 ? w.x : k == 1 ? w.y : k == 2 ? w.z : w.w;
    return v < KEEP_THRESHOLD ? SCALE : 0.0f;
#endif
}

#define ATTN_RNG_ARGS                                                                              \
    const int drop, const long row0, const uint seed_lo, const uint seed_hi, const uint step_lo,  \
        const uint step_hi
#define ATTN_RNG drop, seed_lo, seed_hi, step_lo, step_hi
/* the global score index of (g, j) for the mask: g's sample offset by row0 samples */
#define ATTN_E(g, j) ((row0 * heads + (long)(g) / T) * T * T + (long)((g) % T) * T + (j))

/* P row g = softmax(scale q_r . k_j) over j; O row r, head h = sum_j P'[r, j] v_j. */
__kernel void attn_fused_fwd(const int n, const int heads, const float scale,
                             __global const float *qkv, __global float *p, __global float *o,
                             ATTN_RNG_ARGS)
{
    const int g = get_global_id(0);
    if (g >= n * heads * T) return;
    const int r = g % T, ih = g / T, i = ih / heads, h = ih % heads, D = heads * DH, D3 = 3 * D;
    __global const float *q = qkv + (long)(i * T + r) * D3 + h * DH;
    __global const float *kb = qkv + (long)i * T * D3 + D + h * DH, *vb = kb + D;
    __global float *pr = p + (long)g * T;
    float qv[DH], acc[DH];
    #pragma unroll
    for (int c = 0; c < DH; c++) qv[c] = q[c] * scale;
    float m = -INFINITY;
    for (int j = 0; j < T; j++) {
        float s = 0.0f;
        #pragma unroll
        for (int c = 0; c < DH; c++) s = fma(qv[c], kb[(long)j * D3 + c], s);
        pr[j] = s;
        m = fmax(m, s);
    }
    float z = 0.0f;
    for (int j = 0; j < T; j++) {
        const float v = exp(pr[j] - m);
        pr[j] = v;
        z += v;
    }
    const float inv = 1.0f / z;
    #pragma unroll
    for (int c = 0; c < DH; c++) acc[c] = 0.0f;
    for (int j = 0; j < T; j++) {
        const float pj = pr[j] * inv;
        pr[j] = pj;
        const float pd = pj * attn_keep(ATTN_RNG, ATTN_E(g, j));
        #pragma unroll
        for (int c = 0; c < DH; c++) acc[c] = fma(pd, vb[(long)j * D3 + c], acc[c]);
    }
    __global float *orow = o + (long)(i * T + r) * D + h * DH;
    #pragma unroll
    for (int c = 0; c < DH; c++) orow[c] = acc[c];
}

/* Per query row: dP[r, j] = (dO_r . v_j) * mask; dS = P (dP - sum_j P dP) into dp;
 * dQ_r = scale sum_j dS[r, j] k_j into dqkv's Q slice. */
__kernel void attn_fused_bwd_rows(const int n, const int heads, const float scale,
                                  __global const float *qkv, __global const float *p,
                                  __global const float *dout, __global float *dp,
                                  __global float *dqkv, ATTN_RNG_ARGS)
{
    const int g = get_global_id(0);
    if (g >= n * heads * T) return;
    const int r = g % T, ih = g / T, i = ih / heads, h = ih % heads, D = heads * DH, D3 = 3 * D;
    __global const float *kb = qkv + (long)i * T * D3 + D + h * DH, *vb = kb + D;
    __global const float *dorow = dout + (long)(i * T + r) * D + h * DH;
    __global const float *pr = p + (long)g * T;
    __global float *dpr = dp + (long)g * T;
    float dov[DH], acc[DH];
    #pragma unroll
    for (int c = 0; c < DH; c++) dov[c] = dorow[c];
    float dot = 0.0f;
    for (int j = 0; j < T; j++) {
        float s = 0.0f;
        #pragma unroll
        for (int c = 0; c < DH; c++) s = fma(dov[c], vb[(long)j * D3 + c], s);
        s *= attn_keep(ATTN_RNG, ATTN_E(g, j));
        dpr[j] = s;
        dot = fma(pr[j], s, dot);
    }
    #pragma unroll
    for (int c = 0; c < DH; c++) acc[c] = 0.0f;
    for (int j = 0; j < T; j++) {
        const float ds = pr[j] * (dpr[j] - dot);
        dpr[j] = ds;
        #pragma unroll
        for (int c = 0; c < DH; c++) acc[c] = fma(ds, kb[(long)j * D3 + c], acc[c]);
    }
    __global float *dq = dqkv + (long)(i * T + r) * D3 + h * DH;
    #pragma unroll
    for (int c = 0; c < DH; c++) dq[c] = acc[c] * scale;
}

/* Per key row j (after attn_fused_bwd_rows): dV_j = sum_r P'[r, j] dO_r and
 * dK_j = scale sum_r dS[r, j] q_r, into dqkv's K and V slices. */
__kernel void attn_fused_bwd_cols(const int n, const int heads, const float scale,
                                  __global const float *qkv, __global const float *p,
                                  __global const float *dout, __global const float *dp,
                                  __global float *dqkv, ATTN_RNG_ARGS)
{
    const int g = get_global_id(0);
    if (g >= n * heads * T) return;
    const int j = g % T, ih = g / T, i = ih / heads, h = ih % heads, D = heads * DH, D3 = 3 * D;
    __global const float *qb = qkv + (long)i * T * D3 + h * DH;
    __global const float *dob = dout + (long)i * T * D + h * DH;
    __global const float *pc = p + (long)ih * T * T + j, *dsc = dp + (long)ih * T * T + j;
    float dv[DH], dk[DH];
    #pragma unroll
    for (int c = 0; c < DH; c++) dv[c] = dk[c] = 0.0f;
    for (int r = 0; r < T; r++) {
        const float pd = pc[(long)r * T] * attn_keep(ATTN_RNG, ATTN_E(ih * T + r, j));
        const float ds = dsc[(long)r * T];
        #pragma unroll
        for (int c = 0; c < DH; c++) {
            dv[c] = fma(pd, dob[(long)r * D + c], dv[c]);
            dk[c] = fma(ds, qb[(long)r * D3 + c], dk[c]);
        }
    }
    __global float *dkr = dqkv + (long)(i * T + j) * D3 + D + h * DH, *dvr = dkr + D;
    #pragma unroll
    for (int c = 0; c < DH; c++) {
        dkr[c] = dk[c] * scale;
        dvr[c] = dv[c];
    }
}

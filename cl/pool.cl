/* pool.cl — max (with argmax indexes), average (count_include_pad, PyTorch's default) and global
 * average pooling, forward and backward. Per-sample shapes are -D options: CI HI WI (input), HO WO
 * (output), KH KW SH SW PH PW; the batch count n is a runtime argument. One work-item per output
 * (or input) row of a (channel, sample) plane: PoCL runs row loops far faster than one element
 * per work-item (measured, see conv.cl). Backward kernels gather, so there are no atomics. */

#define PLANE_IN (HI * WI)
#define PLANE_OUT (HO * WO)

/* Every window lies inside the input (no padding, no ragged edge): the bounds tests fold away. */
#define FITS (PH == 0 && PW == 0 && (HO - 1) * SH + KH <= HI && (WO - 1) * SW + KW <= WI)
/* ... and the windows tile it without overlap (pool size = stride): each input element has one
 * window, so the backward is a select instead of a search. */
#define TILES (FITS && KH == SH && KW == SW)

/* The windows covering input row iy are oy in [oy_lo, oy_hi] (and likewise for columns). */
#define OUT_LO(i, P, K, S) ((i) + (P) - (K) + 1 <= 0 ? 0 : ((i) + (P) - (K) + (S)) / (S))
#define OUT_HI(i, P, S, O) min(((i) + (P)) / (S), (O) - 1)

/* y = max over the window of the real input elements: padded positions never win (PyTorch pads
 * max-pooling with -inf); idx = iy * WI + ix of the winner within its plane, the first one on ties,
 * and a NaN wins, as in PyTorch's CPU kernel. */
__kernel void pool_max_fwd(__global const float *x, __global float *y, __global int *idx,
                           const int n)
{
    const int t = get_global_id(0);
    if (t >= HO * CI * n) return;
    const int plane = t / HO, oy = t - plane * HO;
    __global const float *xp = x + (long)plane * PLANE_IN;
    const long o0 = (long)plane * PLANE_OUT + oy * WO;
    const int y0 = oy * SH - PH;
    int ox = 0;
#if TILES && KW == 2
    /* windows two columns wide tiling the row: four outputs at a time from float8 loads, the
     * window's columns as the even and odd lanes, and the scalar loop's test and order of
     * candidates (row by row, left column first) lane by lane. pool1 of fmnist-cnn at batch 64,
     * graft bench (Xeon, AVX-512, PoCL 3.1), ms: 3.0-3.3 -> 1.25-1.7, pool2 1.6-1.7 -> 0.9-1.2
     * (the scalar loop below alone: one output at a time, a chain of dependent selects) */
    for (; ox + 4 <= WO; ox += 4) {
        float4 m = (float4)(-INFINITY);
        int4 at = (int4)(0, 2, 4, 6) + (y0 * WI + ox * 2);
        for (int ky = 0; ky < KH; ky++) {
            const float8 v8 = vload8(0, xp + (y0 + ky) * WI + ox * 2);
            const int4 i0 = (int4)(0, 2, 4, 6) + ((y0 + ky) * WI + ox * 2);
            const float4 ve = v8.even, vo = v8.odd;
            int4 take = isgreater(ve, m) | isnotequal(ve, ve);
            m = select(m, ve, take);
            at = select(at, i0, take);
            take = isgreater(vo, m) | isnotequal(vo, vo);
            m = select(m, vo, take);
            at = select(at, i0 + 1, take);
        }
        vstore4(m, 0, y + o0 + ox);
        vstore4(at, 0, idx + o0 + ox);
    }
#endif
    for (; ox < WO; ox++) {
        const int x0 = ox * SW - PW;
        float m = -INFINITY;
        int at = max(y0, 0) * WI + max(x0, 0); /* PyTorch's index when every value is -inf */
        for (int ky = 0; ky < KH; ky++) {
            const int iy = y0 + ky;
            if (!FITS && (iy < 0 || iy >= HI)) continue;
            for (int kx = 0; kx < KW; kx++) {
                const int ix = x0 + kx;
                if (!FITS && (ix < 0 || ix >= WI)) continue;
                const float v = xp[iy * WI + ix];
                /* PyTorch's test, v > m || isnan(v): a NaN wins. Spelled v != v and as selects:
                 * PoCL's isnan() and the branch kept the loop scalar (pool1 of fmnist-cnn at batch
                 * 64: 5.9 ms of CPU per call -> 2.2 ms, Xeon, AVX-512). */
                const int take = (v > m) | (v != v);
                m = take ? v : m;
                at = take ? iy * WI + ix : at;
            }
        }
        y[o0 + ox] = m;
        idx[o0 + ox] = at;
    }
}

/* dx[iy, ix] = sum of dy over the windows whose saved argmax is this element. */
__kernel void pool_max_bwd(__global const float *dy, __global const int *idx, __global float *dx,
                           const int n)
{
    const int t = get_global_id(0);
    if (t >= HI * CI * n) return;
    const int plane = t / HI, iy = t - plane * HI;
    __global const float *g = dy + (long)plane * PLANE_OUT;
    __global const int *a = idx + (long)plane * PLANE_OUT;
    __global float *d = dx + (long)plane * PLANE_IN + iy * WI;
#if TILES
    const int oy = iy / SH;
    if (oy >= HO) { /* rows below the last window get no gradient */
        for (int ix = 0; ix < WI; ix++) d[ix] = 0.0f;
        return;
    }
    /* window by window: its saved index and gradient read once for its KW columns, no division.
     * fmnist-cnn at batch 64, graft bench, 4 interleaved rounds (Xeon, AVX-512, PoCL 3.1), ms:
     * pool1 2.9-3.9 -> 0.57-0.86, pool2 1.7-2.2 -> 0.45-0.73 (element by element with a division
     * and a gather per column before) */
    const int base = iy * WI;
    for (int ox = 0; ox < WO; ox++) {
        const int o = oy * WO + ox, at = a[o] - base;
        const float v = g[o];
        for (int kx = 0; kx < KW; kx++) d[ox * SW + kx] = at == ox * SW + kx ? v : 0.0f;
    }
    for (int ix = WO * SW; ix < WI; ix++) d[ix] = 0.0f; /* columns right of the last window */
#else
    const int oy_lo = OUT_LO(iy, PH, KH, SH), oy_hi = OUT_HI(iy, PH, SH, HO);
    for (int ix = 0; ix < WI; ix++) {
        const int ox_lo = OUT_LO(ix, PW, KW, SW), ox_hi = OUT_HI(ix, PW, SW, WO);
        const int me = iy * WI + ix;
        float s = 0.0f;
        for (int oy = oy_lo; oy <= oy_hi; oy++)
            for (int ox = ox_lo; ox <= ox_hi; ox++)
                if (a[oy * WO + ox] == me) s += g[oy * WO + ox];
        d[ix] = s;
    }
#endif
}

/* y = sum of the window's real elements / (KH*KW): padding counts as zeros in the divisor, PyTorch's
 * count_include_pad = true (without ceil_mode no window reaches past the padding). */
__kernel void pool_avg_fwd(__global const float *x, __global float *y, const int n)
{
    const int t = get_global_id(0);
    if (t >= HO * CI * n) return;
    const int plane = t / HO, oy = t - plane * HO;
    __global const float *xp = x + (long)plane * PLANE_IN;
    __global float *d = y + (long)plane * PLANE_OUT + oy * WO;
    const int y0 = oy * SH - PH;
    for (int ox = 0; ox < WO; ox++) {
        const int x0 = ox * SW - PW;
        float s = 0.0f;
        for (int ky = 0; ky < KH; ky++) {
            const int iy = y0 + ky;
            if (iy < 0 || iy >= HI) continue;
            for (int kx = 0; kx < KW; kx++) {
                const int ix = x0 + kx;
                if (ix >= 0 && ix < WI) s += xp[iy * WI + ix];
            }
        }
        d[ox] = s * (1.0f / (KH * KW));
    }
}

__kernel void pool_avg_bwd(__global const float *dy, __global float *dx, const int n)
{
    const int t = get_global_id(0);
    if (t >= HI * CI * n) return;
    const int plane = t / HI, iy = t - plane * HI;
    __global const float *g = dy + (long)plane * PLANE_OUT;
    __global float *d = dx + (long)plane * PLANE_IN + iy * WI;
    const int oy_lo = OUT_LO(iy, PH, KH, SH), oy_hi = OUT_HI(iy, PH, SH, HO);
    for (int ix = 0; ix < WI; ix++) {
        const int ox_lo = OUT_LO(ix, PW, KW, SW), ox_hi = OUT_HI(ix, PW, SW, WO);
        float s = 0.0f;
        for (int oy = oy_lo; oy <= oy_hi; oy++)
            for (int ox = ox_lo; ox <= ox_hi; ox++) s += g[oy * WO + ox];
        d[ix] = s * (1.0f / (KH * KW));
    }
}

/* Global average: one work-item per (sample, channel) plane. */
__kernel void pool_gavg_fwd(__global const float *x, __global float *y, const int n)
{
    const int t = get_global_id(0);
    if (t >= CI * n) return;
    __global const float *xp = x + (long)t * PLANE_IN;
    float s = 0.0f;
    for (int p = 0; p < PLANE_IN; p++) s += xp[p];
    y[t] = s * (1.0f / PLANE_IN);
}

__kernel void pool_gavg_bwd(__global const float *dy, __global float *dx, const int n)
{
    const int t = get_global_id(0);
    if (t >= CI * n) return;
    const float g = dy[t] * (1.0f / PLANE_IN);
    __global float *d = dx + (long)t * PLANE_IN;
    for (int p = 0; p < PLANE_IN; p++) d[p] = g;
}

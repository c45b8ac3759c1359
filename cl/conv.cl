/* conv.cl — the data-movement half of conv2d (im2col, col2im as a gather, and the layout
 * transforms of the batched GEMM); the arithmetic is CLBlast's GEMM. Per-sample shapes come in as
 * -D options: CI HI WI (input), CO HO WO (output), KH KW SH SW PH PW, HAS_BIAS; the batch count n
 * is a runtime argument. Every kernel is 1-D over its output with unit stride across work-items,
 * and guards its index because launch() rounds the global size up to the work-group size.
 *
 * The column matrix of a batch is col[CI*KH*KW, n*P] (P = HO*WO): row r = (c*KH + ky)*KW + kx,
 * column j = i*P + p, rows ld floats apart (ld >= n*P, padded by op_conv.c so that successive rows
 * fall in different cache sets; the padding is never read). A group's rows are contiguous, so
 * each group's GEMM addresses a row block. The packed product / gradient [CO, n*P] has the same
 * row stride.
 * The batched forward runs a batch in chunks of n samples (op_conv.c): im2col's input and
 * unpack's output then start at the chunk's first sample (xoff, yoff), the column side at 0.
 * -DEPI= is the fused activation (epilogue.cl) unpack applies and pack differentiates. */
#include "epilogue.cl"

#define P (HO * WO)
#define KK (KH * KW)
#define CKK (CI * KK)

/* Work-item granularity, measured on PoCL 3.1 (2-core EPYC, conv 32->32 at 28x28, batch 64):
 * im2col with one element per work-item ran at 2-4 GB/s written (15-28 ms) however it was
 * indexed, one output ROW per work-item (a loop over WO) at 28 GB/s (2.0 ms): PoCL's per-work-item
 * cost dominates element-wise kernels, so every kernel here moves whole rows. Consecutive
 * work-items still touch consecutive rows. Remainders are spelled t - q * D: LLVM turns a `%` next
 * to its `/` into a `freeze` instruction that Oclgrind's uninitialized-value checker cannot run. */

/* col[(c*KK + ky*KW + kx), i*P + oy*WO + ox] = x[i, c, oy*SH - PH + ky, ox*SW - PW + kx] or 0;
 * one work-item per (row r, sample i), consecutive work-items along i: each writes its P entries of
 * row r contiguously (a shifted copy of one input plane with zero borders), the valid range of
 * each output row computed once instead of testing every element. Against one work-item per
 * (oy, c, i) writing KK pieces of WO floats, process CPU time per call on the Xeon (AVX-512,
 * PoCL 3.1), batch 64: conv2 (32->32, 28x28) 5.0 -> 4.7 ms, conv4 (64->64, 14x14) 4.0 -> 2.9 ms. */
__kernel void conv2d_im2col(__global const float *x, const long xoff, __global float *col,
                            const long ld, const int n)
{
    const int t = get_global_id(0);
    if (t >= CKK * n) return;
    const int r = t / n, i = t - r * n;
    const int c = r / KK, kk = r - c * KK;
    const int ky = kk / KW, kx = kk - ky * KW;
    __global const float *xc = x + xoff + (long)(i * CI + c) * HI * WI;
    __global float *d = col + (long)r * ld + (long)i * P;
    /* input column of output column ox: ox * SW - a, inside [0, WI) for ox in [lo, hi) */
    const int a = PW - kx;
    const int lo = a <= 0 ? 0 : min((a + SW - 1) / SW, WO);
    const int b = WI - 1 + a;
    const int hi = b < 0 ? lo : max(lo, min(WO, b / SW + 1));
    for (int oy = 0; oy < HO; oy++, d += WO) {
        const int iy = oy * SH - PH + ky;
        if (iy < 0 || iy >= HI) {
            for (int ox = 0; ox < WO; ox++) d[ox] = 0.0f;
            continue;
        }
        __global const float *xr = xc + iy * WI;
        for (int ox = 0; ox < lo; ox++) d[ox] = 0.0f;
        for (int ox = lo; ox < hi; ox++) d[ox] = xr[ox * SW - a];
        for (int ox = hi; ox < WO; ox++) d[ox] = 0.0f;
    }
}

/* dx[i, c, iy, ix] = sum of the column entries that read that input element: a gather, so every
 * output is written exactly once and no atomics are needed. One work-item per (iy, c, i), the row
 * summed in a private array over (ky, kx) in that order (the order of the per-element form this
 * replaced, so the sums are bit-identical); with a unit stride along x each (ky, kx) adds a
 * contiguous run of the column row. conv2's data gradient at batch 64: 16.2 -> 4.5 ms of process
 * CPU time per call, conv4's 6.6 -> 3.8 ms (Xeon, AVX-512, PoCL 3.1). */
__kernel void conv2d_col2im(__global const float *col, __global float *dx, const long ld,
                            const int n)
{
    const int t = get_global_id(0);
    if (t >= HI * CI * n) return;
    const int q = t / HI, iy = t - q * HI;
    const int c = q / n, i = q - c * n;
    __global const float *src = col + (long)c * KK * ld + (long)i * P;
    __global float *d = dx + ((long)(i * CI + c) * HI + iy) * WI;
    float acc[WI];
    for (int ix = 0; ix < WI; ix++) acc[ix] = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        const int ty = iy + PH - ky;
        const int oy = ty / SH;
        if (ty < 0 || oy * SH != ty || oy >= HO) continue;
        for (int kx = 0; kx < KW; kx++) {
            __global const float *s = src + (ky * KW + kx) * ld + oy * WO;
#if SW == 1
            const int lo = max(0, kx - PW), hi = min(WI, WO + kx - PW);
            for (int ix = lo; ix < hi; ix++) acc[ix] += s[ix + PW - kx];
#else
            for (int ix = 0; ix < WI; ix++) {
                const int tx = ix + PW - kx;
                const int ox = tx / SW;
                if (tx < 0 || ox * SW != tx || ox >= WO) continue;
                acc[ix] += s[ox];
            }
#endif
        }
    }
    for (int ix = 0; ix < WI; ix++) d[ix] = acc[ix];
}

/* y[i, o, :] = epi(ycol[o, i*P : (i+1)*P] + b[o]): the batched GEMM's [CO, n*P] result back to
 * NCHW, with the bias add and the fused activation applied in the copy (ycol starts ycol_off
 * floats into its buffer). One work-item per (o, i) row. */
__kernel void conv2d_unpack(__global const float *ycol, const long ycol_off, const long ld,
                            __global const float *b, __global float *y, const long yoff,
                            const int n)
{
    y += yoff;
    const int t = get_global_id(0);
    if (t >= n * CO) return;
    const int i = t / CO, o = t - i * CO;
    __global const float *s = ycol + ycol_off + (long)o * ld + (long)i * P;
    __global float *d = y + (long)t * P;
#if HAS_BIAS
    const float bo = b[o];
#else
    const float bo = 0.0f;
#endif
    for (int p = 0; p < P; p++) d[p] = epi_fwd(s[p] + bo);
}

/* dycol[o, i*P : (i+1)*P] = dy[i, o, :]: NCHW gradients into the batched GEMM's [CO, n*P] layout,
 * through the fused activation's derivative (from the saved output y) when there is one. */
__kernel void conv2d_pack(__global const float *dy, __global const float *y,
                          __global float *dycol, const long dycol_off, const long ld,
                          const int n)
{
    const int t = get_global_id(0);
    if (t >= n * CO) return;
    const int i = t / CO, o = t - i * CO;
    __global const float *s = dy + (long)t * P;
    __global float *d = dycol + dycol_off + (long)o * ld + (long)i * P;
#if EPI
    __global const float *yr = y + (long)t * P;
    for (int p = 0; p < P; p++) d[p] = epi_grad(s[p], yr[p]);
#else
    (void)y;
    for (int p = 0; p < P; p++) d[p] = s[p];
#endif
}

/* db[o] = sum of row o of the packed gradient dycol [CO, n*P]: per sample first, then over the
 * batch, the same order of additions as bias.cl's bias_bwd. One work-item per channel; acc adds
 * to db (a batch in launches of a few samples: loop-limited devices, op_conv.c), the same
 * additions in the same order. */
__kernel void conv2d_bias_packed(__global const float *dycol, const long dycol_off,
                                 const long ld, __global float *db, const int n, const int acc)
{
    const int o = get_global_id(0);
    if (o >= CO) return;
    __global const float *r = dycol + dycol_off + (long)o * ld;
    float s = acc ? db[o] : 0.0f;
    for (int i = 0; i < n; i++) {
        float si = 0.0f;
        for (int p = 0; p < P; p++) si += r[(long)i * P + p];
        s += si;
    }
    db[o] = s;
}

/* ---- direct (implicit-GEMM) convolution for CPU devices: no column matrix ----
 * y[i, o, oy, :] = epi(b[o] + sum over c, ky, kx of w[o, c, ky, kx] * x[i, c, oy*SH - PH + ky, :]
 * shifted by kx - PW), for stride 1 along x (SW = 1). One work-item per output row (i, oy): for
 * each block of MR output channels it keeps MR x NV vectors of VW floats (a whole output row,
 * NV = ceil(WO / VW)) in registers; per (c, ky) it copies the input row, zero-padded, into a
 * private buffer, from which each kx is a plain vector load at a constant offset feeding MR x NV
 * fused multiply-adds against broadcast weights -- the register tile of gemm_outer with the im2col
 * gather folded into the row copy. Input element (i, c, iy, ix) is at
 * x[xoff + c * cstride + i * istride + iy * WI + ix] (runtime strides), so the same kernel reads NCHW
 * activations and the batched backward's packed gradient [C, n, H*W], and computes the backward
 * data pass as a convolution of dy with flipped weights (conv2d_flip) and padding K-1-P.
 * Extra options: -DVW (4, 8 or 16), -DNV, -DMR (divides CO). */
#ifdef VW
#include "vecw.cl"
#define RB (NV * VW + KW - 1)

__kernel void conv2d_direct(__global const float *x, const long xoff, const long cstride,
                            const long istride,
                            __global const float *w, __global const float *b,
                            __global float *y, const int n)
{
    const int t = get_global_id(0);
    if (t >= n * HO) return;
    const int i = t / HO, oy = t - i * HO;
    const int y0 = oy * SH - PH;
    float row[RB];
    for (int j = 0; j < RB; j++) row[j] = 0.0f;
    for (int o0 = 0; o0 < CO; o0 += MR) {
        floatv acc[MR][NV];
        for (int m = 0; m < MR; m++)
            for (int v = 0; v < NV; v++) acc[m][v] = (floatv)(0.0f);
        for (int c = 0; c < CI; c++) {
            __global const float *xc = x + xoff + c * cstride + i * istride;
            __global const float *wc = w + ((long)o0 * CI + c) * KH * KW;
            for (int ky = 0; ky < KH; ky++) {
                const int iy = y0 + ky;
                if (iy < 0 || iy >= HI) continue;
                __global const float *xr = xc + iy * WI;
                for (int j = 0; j < WI; j++) row[PW + j] = xr[j];
                for (int kx = 0; kx < KW; kx++) {
                    floatv xv[NV];
                    for (int v = 0; v < NV; v++) xv[v] = VLOAD(VW)(0, row + v * VW + kx);
                    for (int m = 0; m < MR; m++) {
                        const float wv = wc[(long)m * CI * KH * KW + ky * KW + kx];
                        for (int v = 0; v < NV; v++) acc[m][v] = fma((floatv)(wv), xv[v], acc[m][v]);
                    }
                }
            }
        }
        for (int m = 0; m < MR; m++) {
            const int o = o0 + m;
#if HAS_BIAS
            const float bo = b[o];
#else
            const float bo = 0.0f;
#endif
            __global float *yr = y + (((long)i * CO + o) * HO + oy) * WO;
            for (int v = 0; v < NV; v++) {
                float tmp[VW];
                VSTORE(VW)(acc[m][v], 0, tmp);
                for (int l = 0; l < VW; l++) {
                    const int ox = v * VW + l;
                    if (ox < WO) yr[ox] = epi_fwd(tmp[l] + bo);
                }
            }
        }
    }
}
#endif

/* wf[c, o, ky, kx] = w[o, c, KH-1-ky, KW-1-kx]: the weights of the backward data pass as a
 * forward convolution (built with the forward layer's options). One work-item per element. */
__kernel void conv2d_flip(__global const float *w, __global float *wf)
{
    const int t = get_global_id(0);
    if (t >= CO * CI * KH * KW) return;
    const int kx = t - t / KW * KW, q = t / KW;
    const int ky = q - q / KH * KH, q2 = q / KH;
    const int o = q2 - q2 / CO * CO, c = q2 / CO;
    wf[t] = w[(((long)o * CI + c) * KH + (KH - 1 - ky)) * KW + (KW - 1 - kx)];
}

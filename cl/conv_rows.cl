/* conv_rows.cl — conv2d's backward for CPU devices without a column matrix: the weight and data
 * gradients computed straight from zero-padded copies of x and of dy, whole output rows at a time
 * in vector registers. Shaped like conv.cl's conv2d_direct and gemm_outer (one work-item per
 * work-group, register tiles, no local memory); stride 1, one group.
 *
 * The im2col backward writes the batch's column matrix (conv2 of fmnist-cnn: 288 x 50,176 floats,
 * 58 MB), multiplies it twice against the packed gradient and gathers the data gradient back
 * with col2im: about 200 MB of memory traffic per layer and step for 1.9 GFLOP. Here the only
 * passes over memory are the two padded copies (each about the size of its tensor) and the
 * gradients themselves; the shifts of im2col become vector loads at a constant offset from a
 * padded row, so the inner loops have no bounds tests.
 *
 * Options: conv.cl's (CI HI WI CO HO WO KH KW SH SW PH PW HAS_BIAS, -DEPI for the fused
 * activation), VW (float vector width: 4, 8 or 16), NVO / NVI (vectors per output / input row:
 * ceil(WO / VW), ceil(WI / VW)), MRW (output channels per weight-gradient tile, divides CO), CB
 * (input channels per weight-gradient work-item, divides CI), MRD (input channels per
 * data-gradient tile, divides CI), MRF (output channels per forward tile, divides CO), RY (output
 * rows per forward work-item), RD (input rows per data-gradient work-item), WINO (1: the
 * Winograd forward and data gradient at the end of the file in place of conv_rows_fwd and
 * conv_rows_dgrad, with WT, MWF and MWD), WINO4 (1: also the Winograd F(4x4, 3x3) forward of
 * conv_wino4.cl, with W4T, W4S and W4M). Requires SH = SW = 1, PH < KH and PW < KW (op_conv.c
 * checks).
 *
 * The forward adds the bias and applies the epilogue, and pad_dy differentiates the epilogue, only
 * where their `flags` argument says so (FLAG_EPI, FLAG_BIAS): a layer a batchnorm follows is
 * built as the layer with that batchnorm folded in would be (a bias, the batchnorm's activation)
 * and runs with both off, so the transfer or evaluation that folds it runs the same program. The
 * weight gradient sums the bias whenever HAS_BIAS; the host does not read that sum without one.
 *
 * Padded layouts (every entry outside the copied data is 0):
 *   xp [n, CI, XROWS, XPITCH]: x[i, c, iy, ix] at row iy + PH, column ix + PW, so the input of
 *      output (oy, ox) and tap (ky, kx) is at row oy + ky, column ox + kx;
 *   dp [n, CO, DROWS, DPITCH]: dy (through the activation's derivative) at row oy + DT, column
 *      ox + DL with DT = KH-1-PH, DL = KW-1-PW: the full-padded gradient whose plain convolution
 *      with the flipped weights is the data gradient, and whose columns past WO are 0 for the
 *      weight gradient's whole-vector rows. */
#include "epilogue.cl"
#define FLAG_EPI 1
#define FLAG_BIAS 2
#define FLAG_POOL 4
#define FLAG_POOL_ONLY 8 /* with FLAG_POOL: yp alone, neither y nor ip (no backward follows) */

/* The max of a 2x2 window (y00 y01 / y10 y11, lane by lane) into m and the index of the winner
 * into at (IT vectors; c0 the index of y00, OW the row length): tested in pool.cl's order, row by
 * row, left column first; the first of equals, a NaN wins. */
#define POOL_ARGMAX(IT, y00, y01, y10, y11, c0, OW, m, at)                                         \
    {                                                                                              \
        IT take_ = isgreater((y01), (y00)) | isnotequal((y01), (y01));                             \
        (m) = select((y00), (y01), take_);                                                         \
        (at) = select((c0), (c0) + 1, take_);                                                      \
        take_ = isgreater((y10), (m)) | isnotequal((y10), (y10));                                  \
        (m) = select((m), (y10), take_);                                                           \
        (at) = select((at), (c0) + (OW), take_);                                                   \
        take_ = isgreater((y11), (m)) | isnotequal((y11), (y11));                                  \
        (m) = select((m), (y11), take_);                                                           \
        (at) = select((at), (c0) + (OW) + 1, take_);                                               \
    }

#define KK (KH * KW)
#define XROWS (HI + 2 * PH)
/* the rows rounded up to whole pairs of Winograd tile vectors (16 floats from VW 8 up, else 8) */
#define PADQ (VW >= 8 ? 16 : 8)
#define ROUNDQ(x) (((x) + PADQ - 1) / PADQ * PADQ)
#define XPITCH (ROUNDQ(NVO * VW) + KW - 1)
#define DT (KH - 1 - PH)
#define DL (KW - 1 - PW)
#define DROWS (HO + 2 * DT)
#define DPITCH_A (DL + NVO * VW)
#define DPITCH_B (ROUNDQ(NVI * VW) + KW - 1)
#define DPITCH (DPITCH_A > DPITCH_B ? DPITCH_A : DPITCH_B)

#include "vecw.cl"
#ifndef WINO
#define WINO 0
#endif
#ifndef WPAIR
#define WPAIR 0
#endif
#ifndef WINO4
#define WINO4 0
#endif

/* The lanes of v summed in a fixed order (halves, then halves of those). */
static inline float hsum(const floatv v)
{
#if VW == 16
    /* shuffle, not .lo / .hi: Oclgrind's checker took the halves of a float16 for uninitialised
     * values (as it did .even / .odd, see LOAD_EO) */
    const float8 h8 = shuffle(v, (uint8)(0, 1, 2, 3, 4, 5, 6, 7)) +
                      shuffle(v, (uint8)(8, 9, 10, 11, 12, 13, 14, 15));
#elif VW == 8
    const float8 h8 = v;
#endif
#if VW >= 8
    const float4 h4 = h8.lo + h8.hi;
#else
    const float4 h4 = v;
#endif
    const float2 h2 = h4.lo + h4.hi;
    return h2.x + h2.y;
}

/* One padded row per work-item: row r of plane q (plane = (i, c)) of a ROWS x PITCH layout whose
 * data sit at row T, column L; src rows of W floats, H per plane. */
static inline void pad_row(__global const float *src, __global const float *y,
                           __global float *dst, const int t, const int H, const int W,
                           const int ROWS, const int PITCH, const int T, const int L,
                           const int grad)
{
    const int q = t / ROWS, r = t - q * ROWS;
    __global float *d = dst + (long)t * PITCH;
    const int sy = r - T;
    if (sy < 0 || sy >= H) {
        for (int j = 0; j < PITCH; j++) d[j] = 0.0f;
        return;
    }
    const long s0 = ((long)q * H + sy) * W;
    for (int j = 0; j < L; j++) d[j] = 0.0f;
#if EPI
    if (grad)
        for (int j = 0; j < W; j++) d[L + j] = epi_grad(src[s0 + j], y[s0 + j]);
    else
#endif
        for (int j = 0; j < W; j++) d[L + j] = src[s0 + j];
    for (int j = L + W; j < PITCH; j++) d[j] = 0.0f;
}

#ifndef W4STEM
#define W4STEM 0
#endif
/* a stem program (conv_wino4.cl's conv_wino4_stem) holds that kernel and conv_wino4_wt alone */
#if !W4STEM
/* xp from x (NCHW): one work-item per padded row, n * CI * XROWS of them. */
__kernel void conv_rows_pad_x(__global const float *x, __global float *ws, const long xpo,
                              const int n)
{
    const int t = get_global_id(0);
    if (t >= n * CI * XROWS) return;
    pad_row(x, x, ws + xpo, t, HI, WI, XROWS, XPITCH, PH, PW, 0);
}

/* dp from dy (NCHW), through the fused activation's derivative (from the saved output y). */
__kernel void conv_rows_pad_dy(__global const float *dy, __global const float *y,
                               __global float *ws, const long dpo, const int n, const int flags)
{
    const int t = get_global_id(0);
    if (t >= n * CO * DROWS) return;
    pad_row(dy, y, ws + dpo, t, HO, WO, DROWS, DPITCH, DT, DL, flags & FLAG_EPI);
}

#if WINO || WINO4
/* dp as conv_rows_pad_dy makes it when a 2x2 max-pool (stride 2, even HO and WO) follows and
 * conv_wino_fwd wrote it (FLAG_POOL): dy is the pool's gradient [n, CO, HO/2, WO/2] and ip its
 * argmax indexes, so an output's gradient is its window's when it was the window's winner, else
 * 0 (pool.cl's pool_max_bwd, without writing that full-size dy and reading it back); also after
 * conv_wino4_fwd (WINO4), which writes the same indexes. */
__kernel void conv_rows_pad_dy_pool(__global const float *dy, __global const int *ip,
                                    __global const float *y, __global float *ws, const long dpo,
                                    const int n, const int flags)
{
    const int t = get_global_id(0);
    if (t >= n * CO * DROWS) return;
    const int q = t / DROWS, r = t - q * DROWS, sy = r - DT, PW_ = WO / 2;
    __global float *d = ws + dpo + (long)t * DPITCH;
    if (sy < 0 || sy >= HO) {
        for (int j = 0; j < DPITCH; j++) d[j] = 0.0f;
        return;
    }
    const long s0 = ((long)q * HO + sy) * WO, p0 = ((long)q * (HO / 2) + sy / 2) * PW_;
    const int grad = flags & FLAG_EPI;
    for (int j = 0; j < DL; j++) d[j] = 0.0f;
    __global const float *yr = y + s0;
    __global float *dr = d + DL;
    for (int jp = 0; jp < PW_; jp++) { /* the two columns of window jp */
        const float g = dy[p0 + jp];
        const int at = ip[p0 + jp] - sy * WO - 2 * jp; /* 0 or 1: the winner on this row */
        const float g0 = at == 0 ? g : 0.0f, g1 = at == 1 ? g : 0.0f;
#if EPI
        dr[2 * jp] = grad ? epi_grad(g0, yr[2 * jp]) : g0;
        dr[2 * jp + 1] = grad ? epi_grad(g1, yr[2 * jp + 1]) : g1;
#else
        dr[2 * jp] = g0;
        dr[2 * jp + 1] = g1;
        (void)grad;
        (void)yr;
#endif
    }
    for (int j = DL + WO; j < DPITCH; j++) d[j] = 0.0f;
}
#endif

/* One step of conv_rows_wgrad's walk down the padded x rows: the window moves down a row (dy row
 * r enters as dv[0] when LOAD, else zeros) and x row r, loaded at each offset kx, feeds the taps
 * (ky, kx) whose dy row r - ky exists (tested only when MASK: the unrolled first and last steps,
 * where r is a constant and the test folds away). */
#define WGRAD_TAIL (HO > KH - 1 ? HO : KH - 1) /* the first tail step (a constant: unrolled) */
#define WGRAD_STEP(r, LOAD, MASK)                                                                  \
    {                                                                                              \
        _Pragma("unroll") for (int ky = KH - 1; ky > 0; ky--)                                      \
            _Pragma("unroll") for (int m = 0; m < MRW; m++) dv[ky][m] = dv[ky - 1][m];             \
        _Pragma("unroll") for (int m = 0; m < MRW; m++) dv[0][m] =                                 \
            (LOAD) ? VLOAD(VW)(0, dc + ((long)m * DROWS + (r)) * DPITCH + v * VW)                  \
                   : (floatv)(0.0f);                                                               \
        __global const float *xr = xc + (r) * XPITCH + v * VW;                                     \
        _Pragma("unroll") for (int kx = 0; kx < KW; kx++)                                          \
        {                                                                                          \
            const floatv xv = VLOAD(VW)(0, xr + kx);                                               \
            _Pragma("unroll") for (int ky = 0; ky < KH; ky++)                                      \
            {                                                                                      \
                if (!(MASK) || ((r) - ky >= 0 && (r) - ky < HO))                                   \
                    _Pragma("unroll") for (int m = 0; m < MRW; m++)                                \
                        acc[m][ky * KW + kx] = fma(dv[ky][m], xv, acc[m][ky * KW + kx]);           \
            }                                                                                      \
        }                                                                                          \
    }

/* Partial weight (and bias) gradients of sample range s (samples n*s/S .. n*(s+1)/S - 1) and input
 * channels cb*CB .. cb*CB + CB - 1, one work-item per (s, cb): part[s] holds [CO, CI, KK] then
 * [CO] (the bias, from the cb = 0 work-items). For each block of MRW output channels and each
 * input channel, MRW x KK vector accumulators run over the range's padded x rows, one column
 * vector v at a time: x row r holds tap ky of output row r - ky, so the dy vectors of output rows
 * r, r-1, .., r-KH+1 are kept in registers (a window that moves down one row a step, zero above
 * row 0 and below row HO-1) and each x vector loaded at offset kx feeds all KH taps (ky, kx).
 * A step loads MRW dy and KW x vectors for MRW x KK FMAs, against MRW + KK loads when every
 * output row read its KH x rows itself. The taps on the window's zero rows take no FMAs (the
 * first and last KH-1 steps are unrolled with them left out), and the bias sums dy in a pass of
 * its own, so the steps between have no test. The lanes are summed once at the end. The range's
 * x planes (CB per sample) are read once per output-channel block, from cache. */
__kernel void conv_rows_wgrad(__global const float *xs, const long xpo, __global float *ws,
                              const long dpo, const long parto, const int n, const int S)
{
    __global const float *xp = xs + xpo, *dp = ws + dpo;
    __global float *part = ws + parto;
    const int t = get_global_id(0);
    if (t >= S * (CI / CB)) return;
    const int s = t / (CI / CB), cb = t - s * (CI / CB);
    const int i0 = (int)((long)n * s / S), i1 = (int)((long)n * (s + 1) / S);
    __global float *pw = part + (long)s * (CO * CI * KK + CO);
    for (int o0 = 0; o0 < CO; o0 += MRW) {
        for (int c = cb * CB; c < cb * CB + CB; c++) {
            floatv acc[MRW][KK], bacc[MRW];
            #pragma unroll
            for (int m = 0; m < MRW; m++) {
                bacc[m] = (floatv)(0.0f);
                #pragma unroll
                for (int k = 0; k < KK; k++) acc[m][k] = (floatv)(0.0f);
            }
            for (int i = i0; i < i1; i++) {
                __global const float *xc = xp + ((long)i * CI + c) * XROWS * XPITCH;
                __global const float *dc = dp + (((long)i * CO + o0) * DROWS + DT) * DPITCH + DL;
#if HAS_BIAS
                if (c == 0) /* the bias: the sums of dy, once per sample and channel block */
                    for (int v = 0; v < NVO; v++)
                        for (int r = 0; r < HO; r++)
                            #pragma unroll
                            for (int m = 0; m < MRW; m++)
                                bacc[m] += VLOAD(VW)(0, dc + ((long)m * DROWS + r) * DPITCH
                                                            + v * VW);
#endif
                for (int v = 0; v < NVO; v++) {
                    floatv dv[KH][MRW]; /* dv[ky]: the dy vectors of output row r - ky */
                    #pragma unroll
                    for (int ky = 0; ky < KH; ky++)
                        #pragma unroll
                        for (int m = 0; m < MRW; m++) dv[ky][m] = (floatv)(0.0f);
                    /* the first KH-1 and last KH-1 steps unrolled, their taps on zero rows
                     * (above row 0, below row HO-1) left out at compile time; the steps between
                     * have every tap, and no test */
                    #pragma unroll
                    for (int r = 0; r < KH - 1; r++) WGRAD_STEP(r, r < HO, 1);
                    for (int r = KH - 1; r < HO; r++) WGRAD_STEP(r, 1, 0);
                    #pragma unroll
                    for (int r = WGRAD_TAIL; r < HO + KH - 1; r++) WGRAD_STEP(r, 0, 1);
                }
            }
            #pragma unroll
            for (int m = 0; m < MRW; m++)
                #pragma unroll
                for (int k = 0; k < KK; k++)
                    pw[((long)(o0 + m) * CI + c) * KK + k] = hsum(acc[m][k]);
#if HAS_BIAS
            if (c == 0)
                #pragma unroll
                for (int m = 0; m < MRW; m++) pw[CO * CI * KK + o0 + m] = hsum(bacc[m]);
#endif
        }
    }
}

/* dw and db = the S partials summed in order s = 0, 1, ...: one work-item per element j of
 * [lo, hi) (dw at j < CO*CI*KK, db after it; the host leaves out the one it does not want). */
__kernel void conv_rows_wsum(__global const float *ws, const long parto, __global float *dw,
                             __global float *db, const int S, const int lo, const int hi)
{
    const int j = lo + get_global_id(0);
    const int NW = CO * CI * KK, T = NW + CO;
    if (j >= hi) return;
    __global const float *part = ws + parto;
    float sum = 0.0f;
    for (int s = 0; s < S; s++) sum += part[(long)s * T + j];
    if (j < NW)
        dw[j] = sum;
    else
        db[j - NW] = sum;
}

#if !WINO /* the Winograd kernels below replace these two */
/* dx[i, c, iy, :] = sum over o, ky, kx of w[o, c, ky, kx] * dp[i, o, iy + KH-1-ky, KW-1-kx + :]:
 * the plain convolution of the padded gradient with the flipped weights, one work-item per RD
 * consecutive input rows of a sample (the last block of an odd HI repeats row HI-1, written twice
 * with the same values), MRD input channels x RD rows x NVI vectors in registers per block, each
 * weight broadcast once for the RD rows (RD = 2 where a row is one vector, as the forward's RY). */
#define NDB ((HI + RD - 1) / RD)
__kernel void conv_rows_dgrad(__global const float *ws, const long dpo, __global const float *w,
                              __global float *dx, const int n)
{
    __global const float *dp = ws + dpo;
    const int t = get_global_id(0);
    if (t >= n * NDB) return;
    const int i = t / NDB, yb = t - i * NDB;
    int iys[RD];
    #pragma unroll
    for (int r = 0; r < RD; r++) iys[r] = min(yb * RD + r, HI - 1);
    for (int c0 = 0; c0 < CI; c0 += MRD) {
        floatv acc[MRD][RD][NVI];
        #pragma unroll
        for (int m = 0; m < MRD; m++)
            #pragma unroll
            for (int r = 0; r < RD; r++)
                #pragma unroll
                for (int v = 0; v < NVI; v++) acc[m][r][v] = (floatv)(0.0f);
        for (int o = 0; o < CO; o++) {
            __global const float *dpo = dp + ((long)i * CO + o) * DROWS * DPITCH;
            __global const float *wo = w + ((long)o * CI + c0) * KK;
            #pragma unroll
            for (int ky = 0; ky < KH; ky++) {
                #pragma unroll
                for (int kx = 0; kx < KW; kx++) {
                    floatv gv[RD][NVI];
                    #pragma unroll
                    for (int r = 0; r < RD; r++)
                        #pragma unroll
                        for (int v = 0; v < NVI; v++)
                            gv[r][v] = VLOAD(VW)(0, dpo + (iys[r] + KH - 1 - ky) * DPITCH + KW - 1
                                                        + v * VW - kx);
                    #pragma unroll
                    for (int m = 0; m < MRD; m++) {
                        const float wv = wo[m * KK + ky * KW + kx];
                        #pragma unroll
                        for (int r = 0; r < RD; r++)
                            #pragma unroll
                            for (int v = 0; v < NVI; v++)
                                acc[m][r][v] = fma((floatv)(wv), gv[r][v], acc[m][r][v]);
                    }
                }
            }
        }
        #pragma unroll
        for (int m = 0; m < MRD; m++) {
            #pragma unroll
            for (int r = 0; r < RD; r++) {
                __global float *xr = dx + (((long)i * CI + c0 + m) * HI + iys[r]) * WI;
                #pragma unroll
                for (int v = 0; v < NVI; v++) {
                    if ((v + 1) * VW <= WI) {
                        VSTORE(VW)(acc[m][r][v], 0, xr + v * VW);
                    } else {
                        float tmp[VW];
                        VSTORE(VW)(acc[m][r][v], 0, tmp);
                        for (int l = 0; v * VW + l < WI; l++) xr[v * VW + l] = tmp[l];
                    }
                }
            }
        }
    }
}

/* y[i, o, oy, :] = epi(b[o] + sum over c, ky, kx of w[o, c, ky, kx] * xp[i, c, oy + ky, kx + :]):
 * the forward from the padded input, one work-item per RY consecutive output rows of a sample
 * (the last block of an odd HO repeats row HO-1, written twice with the same values), MRF output
 * channels x RY rows x NVO vectors in registers per block, each weight broadcast once for the RY
 * rows: with one vector a row (14-wide layers at 16 lanes) a single row's tile loaded a vector and
 * MRF weights for MRF FMAs. Plane (i, o) of y starts at yo + (i CO + o) yrows ypitch, its rows
 * ypitch apart: dense (0, HO, WO), or the next conv's padded input (op_conv.c, conv2d_fwd_io). */
#define NYB ((HO + RY - 1) / RY)
__kernel void conv_rows_fwd(__global const float *ws, const long xpo, __global const float *w,
                            __global const float *b, __global float *y, const int n,
                            const int flags, const long yo, const int yrows, const int ypitch)
{
    __global const float *xp = ws + xpo;
    const int act = flags & FLAG_EPI;
    const int t = get_global_id(0);
    if (t >= n * NYB) return;
    const int i = t / NYB, yb = t - i * NYB;
    int oys[RY];
#pragma unroll
    for (int r = 0; r < RY; r++) oys[r] = min(yb * RY + r, HO - 1);
    for (int o0 = 0; o0 < CO; o0 += MRF) {
        floatv acc[MRF][RY][NVO];
#pragma unroll
        for (int m = 0; m < MRF; m++)
#pragma unroll
            for (int r = 0; r < RY; r++)
#pragma unroll
                for (int v = 0; v < NVO; v++) acc[m][r][v] = (floatv)(0.0f);
        for (int c = 0; c < CI; c++) {
            __global const float *xc = xp + ((long)i * CI + c) * XROWS * XPITCH;
            __global const float *wc = w + ((long)o0 * CI + c) * KK;
#pragma unroll
            for (int ky = 0; ky < KH; ky++) {
#pragma unroll
                for (int kx = 0; kx < KW; kx++) {
                    floatv xv[RY][NVO];
#pragma unroll
                    for (int r = 0; r < RY; r++)
#pragma unroll
                        for (int v = 0; v < NVO; v++)
                            xv[r][v] = VLOAD(VW)(0, xc + (oys[r] + ky) * XPITCH + v * VW + kx);
#pragma unroll
                    for (int m = 0; m < MRF; m++) {
                        const floatv wv = (floatv)(wc[(long)m * CI * KK + ky * KW + kx]);
#pragma unroll
                        for (int r = 0; r < RY; r++)
#pragma unroll
                            for (int v = 0; v < NVO; v++)
                                acc[m][r][v] = fma(wv, xv[r][v], acc[m][r][v]);
                    }
                }
            }
        }
#pragma unroll
        for (int m = 0; m < MRF; m++) {
            const int o = o0 + m;
#if HAS_BIAS
            const floatv bo = (floatv)(flags & FLAG_BIAS ? b[o] : 0.0f);
#else
            const floatv bo = (floatv)(0.0f);
#endif
#pragma unroll
            for (int r = 0; r < RY; r++) {
                __global float *yr = y + yo + (((long)i * CO + o) * yrows + oys[r]) * ypitch;
#pragma unroll
                for (int v = 0; v < NVO; v++) {
#if EPI_VEC
                    /* a whole vector of the row in one store: one input channel (conv1) gives
                     * 9 FMAs an output, and the scalar stores below took most of its time */
                    if ((v + 1) * VW <= WO) {
                        const floatv o = acc[m][r][v] + bo;
                        VSTORE(VW)(act ? epi_fwdv(floatv, o) : o, 0, yr + v * VW);
                        continue;
                    }
#endif
                    float tmp[VW];
                    VSTORE(VW)(acc[m][r][v] + bo, 0, tmp);
                    for (int l = 0; l < VW && v * VW + l < WO; l++)
                        yr[v * VW + l] = act ? epi_fwd(tmp[l]) : tmp[l];
                }
            }
        }
    }
}

#endif /* !WINO */

#if WINO
/* ---- Winograd F(2x2, 3x3): the forward and the data gradient of a 3x3 convolution with 16
 * multiplications per 2x2 outputs and channel pair instead of 36 (Lavin and Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016), from the same padded layouts as above.
 *
 * y = A^T [(G g G^T) . (B^T d B)] A for each 4x4 input tile d (stride 2) and 3x3 kernel g, with
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * conv_wino_wt writes U[xi][o][c] = (G w[o][c] G^T) (xi = 4 a + b) before each pass. A work-item
 * takes one row of 2x2 tiles (two output rows) of a sample: it transforms the input tiles of every
 * input channel into V[xi][q][t] (private, WT tiles a vector: the even and odd lanes of two
 * 2*WT-float loads make the four columns of WT tiles), then for each block of MW output channels
 * and each xi sums U[xi][p][q] V[xi][q][t] over the input channels q in registers (a GEMM of 16
 * small products, in a fixed order), and turns the 16 sums of a tile into its 2x2 outputs, stored
 * two rows of 2*WT floats (the halves interleaved) with the bias and the fused activation.
 * The data gradient is the same pass over dp with the weights rotated by 180 degrees and their
 * channels swapped: G J = P G (J reverses 3 columns, P swaps rows 0 and 3), so it reads
 * U[p(a) 4 + p(b)][o][c] as its kernel for input channel o and output channel c.
 * With WPAIR (WT 8 on 16-lane devices) a work-item takes the tile row of two samples, i and i+1,
 * in the low and high halves of 16-lane vectors (i alone, loaded twice, where i+1 = n).
 * Options: WT (tiles a vector, 4, 8 or 16), MWF / MWD (output channels a block, forward / data
 * gradient). Requires KH = KW = 3, pitches of at least 2 WT NT + 2 (op_conv.c checks). */
#if WT == 16
#define floatt float16
/* a stored part of an output row: 16 floats, the two outputs of 8 tiles interleaved; a row of
 * 16 tiles is two of them (NH) */
#define rowt float16
#define NH 2
/* the even and odd floats of p[0 .. 31] from two 16-float loads, picked lane by lane (as at WT 8):
 * PoCL 3.1 compiled shuffle2 with constant masks into 8-byte loads and inserts, about 500
 * instructions a channel in the forward's transform against 150 this way (conv2 of fmnist-cnn,
 * AVX-512), where its GEMM takes 544; the wider swizzles (.s02468ace of each half, or
 * __builtin_shufflevector) compile as well but crash or mislead Oclgrind's checker */
#define LOAD_EO(p, e, o)                                                                           \
    {                                                                                              \
        const float16 lo_ = vload16(0, (p)), hi_ = vload16(0, (p) + 16);                           \
        (e) = (float16)(lo_.s0, lo_.s2, lo_.s4, lo_.s6, lo_.s8, lo_.sa, lo_.sc, lo_.se, hi_.s0,   \
                        hi_.s2, hi_.s4, hi_.s6, hi_.s8, hi_.sa, hi_.sc, hi_.se);                   \
        (o) = (float16)(lo_.s1, lo_.s3, lo_.s5, lo_.s7, lo_.s9, lo_.sb, lo_.sd, lo_.sf, hi_.s1,   \
                        hi_.s3, hi_.s5, hi_.s7, hi_.s9, hi_.sb, hi_.sd, hi_.sf);                   \
    }
#define STORE_ROWT(v, p) vstore16((v), 0, (p))
#define intt int16
#define LANES_T ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define STORE_T(v, p) vstore16((v), 0, (p))
#define ILVH(a, b, h)                                                                              \
    ((h) ? (float16)((a).s8, (b).s8, (a).s9, (b).s9, (a).sa, (b).sa, (a).sb, (b).sb, (a).sc,       \
                     (b).sc, (a).sd, (b).sd, (a).se, (b).se, (a).sf, (b).sf)                       \
         : (float16)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, (a).s4,       \
                     (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#elif WT == 8
#if WPAIR /* two samples' rows of 8 tiles a 16-lane vector (conv_wino_fwd) */
#define floatt float16
#define poolt float8
#define HALF_T(v, sh)                                                                              \
    ((sh) ? (float8)((v).s8, (v).s9, (v).sa, (v).sb, (v).sc, (v).sd, (v).se, (v).sf)             \
          : (float8)((v).s0, (v).s1, (v).s2, (v).s3, (v).s4, (v).s5, (v).s6, (v).s7))
/* sample sh's two outputs of its 8 tiles interleaved (the lanes of WT 16's ILVH half sh) */
#define ILVS(a, b, sh, h)                                                                          \
    ((sh) ? (float16)((a).s8, (b).s8, (a).s9, (b).s9, (a).sa, (b).sa, (a).sb, (b).sb, (a).sc,      \
                      (b).sc, (a).sd, (b).sd, (a).se, (b).se, (a).sf, (b).sf)                      \
          : (float16)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, (a).s4,      \
                      (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#else
#define floatt float8
#endif
#define rowt float16
#define NH 1
/* the even and odd floats of p[0 .. 15] from two 8-float loads, lane by lane (see WT 16; 260
 * instructions a channel with shuffle2 against 140 in conv4's transform). Oclgrind's checker took
 * the .even / .odd halves of one 16-float load for uninitialised values, and crashed on the same
 * halves built as (float8)(lo.s0246, hi.s0246); single lanes it takes as they are. */
#define LOAD_EO(p, e, o)                                                                           \
    {                                                                                              \
        const float8 lo_ = vload8(0, (p)), hi_ = vload8(0, (p) + 8);                               \
        (e) = (float8)(lo_.s0, lo_.s2, lo_.s4, lo_.s6, hi_.s0, hi_.s2, hi_.s4, hi_.s6);            \
        (o) = (float8)(lo_.s1, lo_.s3, lo_.s5, lo_.s7, hi_.s1, hi_.s3, hi_.s5, hi_.s7);            \
    }
#define STORE_ROWT(v, p) vstore16((v), 0, (p))
#define intt int8
#define LANES_T ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#define STORE_T(v, p) vstore8((v), 0, (p))
#define ILVH(a, b, h)                                                                              \
    ((float16)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, (a).s4, (b).s4,    \
               (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#elif WT == 4
#define floatt float4
#define rowt float8
#define NH 1
#define LOAD_EO(p, e, o)                                                                           \
    {                                                                                              \
        const float8 v_ = vload8(0, (p));                                                          \
        (e) = v_.s0246;                                                                             \
        (o) = v_.s1357;                                                                             \
    }
#define STORE_ROWT(v, p) vstore8((v), 0, (p))
#define intt int4
#define LANES_T ((int4)(0, 1, 2, 3))
#define STORE_T(v, p) vstore4((v), 0, (p))
#define ILVH(a, b, h) ((float8)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3))
#else
#error "WT: 4, 8 or 16"
#endif
#if WPAIR
#define NS 2
/* lane by lane: Oclgrind crashed on (float16)(a, b) of two float8 */
#define CAT8(a, b)                                                                                 \
    ((float16)((a).s0, (a).s1, (a).s2, (a).s3, (a).s4, (a).s5, (a).s6, (a).s7, (b).s0, (b).s1,    \
               (b).s2, (b).s3, (b).s4, (b).s5, (b).s6, (b).s7))
/* the tiles' columns of two samples SS floats apart, one in each half */
#define LOAD_EOS(p, SS, e, o)                                                                      \
    {                                                                                              \
        float8 e0_, o0_, e1_, o1_;                                                                 \
        LOAD_EO((p), e0_, o0_);                                                                    \
        LOAD_EO((p) + (SS), e1_, o1_);                                                             \
        (e) = CAT8(e0_, e1_);                                                                      \
        (o) = CAT8(o0_, o1_);                                                                      \
    }
#else
#define NS 1
#define LOAD_EOS(p, SS, e, o) LOAD_EO((p), e, o)
#define poolt floatt
#define HALF_T(v, sh) (v)
#define ILVS(a, b, sh, h) ILVH(a, b, h)
#endif
#define ROWW (2 * WT / NH) /* floats a rowt */
#define NTO ((WO + 2 * WT - 1) / (2 * WT)) /* tile vectors a row of the forward */
#define NTI ((WI + 2 * WT - 1) / (2 * WT)) /* and of the data gradient */

/* U from w [CO, CI, 3, 3]: one work-item per (o, c); G g G^T row by row, in scalars. */
static inline void wino_wt_row(__global float *ua, const long S, const float h0, const float h1,
                               const float h2)
{
    ua[0] = h0;
    ua[S] = 0.5f * (h0 + h1 + h2);
    ua[2 * S] = 0.5f * (h0 - h1 + h2);
    ua[3 * S] = h2;
}

__kernel void conv_wino_wt(__global const float *w, __global float *u)
{
    const int t = get_global_id(0);
    if (t >= CO * CI) return;
    __global const float *g = w + (long)t * 9;
    const float g00 = g[0], g01 = g[1], g02 = g[2], g10 = g[3], g11 = g[4], g12 = g[5],
                g20 = g[6], g21 = g[7], g22 = g[8];
    const long S = (long)CO * CI;
    __global float *ut = u + t;
    /* the rows of G g: g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2 */
    wino_wt_row(ut, S, g00, g01, g02);
    wino_wt_row(ut + 4 * S, S, 0.5f * (g00 + g10 + g20), 0.5f * (g01 + g11 + g21),
                0.5f * (g02 + g12 + g22));
    wino_wt_row(ut + 8 * S, S, 0.5f * (g00 - g10 + g20), 0.5f * (g01 - g11 + g21),
                0.5f * (g02 - g12 + g22));
    wino_wt_row(ut + 12 * S, S, g20, g21, g22);
}

/* the xi of the rotated kernel: rows and columns 0 and 3 swapped */
static inline int wino_rot(const int x)
{
    const int a = x >> 2, b = x & 3;
    return ((a == 0 ? 3 : a == 3 ? 0 : a) << 2) | (b == 0 ? 3 : b == 3 ? 0 : b);
}

/* The 2x2 max-pool (stride 2) of a row of WT tiles' outputs y00 y01 / y10 y11 (before the
 * activation, applied here when ACT) into row ty of the pooled plane at yp, with pool.cl's
 * indexes at ip: iy * OW + ix of the winner in the conv's output plane, tested in pool.cl's
 * order (row by row, left column first; the first of equals, a NaN wins). */
static inline void wino_pool(poolt y00, poolt y01, poolt y10, poolt y11, const int ACT,
                             const int OH, const int OW, const int ty, const int t,
                             __global float *yp, __global int *ip, const int IDX)
{
#if EPI_VEC
    if (ACT) {
        y00 = epi_fwdv(poolt, y00);
        y01 = epi_fwdv(poolt, y01);
        y10 = epi_fwdv(poolt, y10);
        y11 = epi_fwdv(poolt, y11);
    }
#else
    if (ACT) {
        float a[4][WT];
        STORE_T(y00, a[0]);
        STORE_T(y01, a[1]);
        STORE_T(y10, a[2]);
        STORE_T(y11, a[3]);
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < WT; l++) a[r][l] = epi_fwd(a[r][l]);
        y00 = VLOAD(WT)(0, a[0]);
        y01 = VLOAD(WT)(0, a[1]);
        y10 = VLOAD(WT)(0, a[2]);
        y11 = VLOAD(WT)(0, a[3]);
    }
#endif
    const intt c0 = (LANES_T + WT * t) * 2 + 2 * ty * OW;
    poolt m;
    intt at;
    POOL_ARGMAX(intt, y00, y01, y10, y11, c0, OW, m, at);
    const int x0 = WT * t, PWO = OW / 2;
    if (x0 + WT <= PWO) {
        STORE_T(m, yp + x0);
        if (IDX) STORE_T(at, ip + x0);
        return;
    }
    float mt[WT];
    int it[WT];
    STORE_T(m, mt);
    STORE_T(at, it);
    for (int l = 0; l < WT && x0 + l < PWO; l++) {
        yp[x0 + l] = mt[l];
        if (IDX) ip[x0 + l] = it[l];
    }
}

/* wino_fwd_row and wino_dgrad_row: conv_wino.cl with the register tile as constants (MW output
 * channels x NT tile vectors), so that the accumulators stay in registers */
#define WINO_ROW wino_fwd_row
#define W_MW MWF
#define W_NT NTO
#include "conv_wino.cl"
#undef WINO_ROW
#undef W_MW
#undef W_NT
#define WINO_ROW wino_dgrad_row
#define W_MW MWD
#define W_NT NTI
#include "conv_wino.cl"

/* y from xp: one work-item per row of tiles (two output rows) of a sample. With FLAG_POOL (a 2x2
 * max-pool of stride 2 follows; HO and WO even, op_conv.c checks) also the pool's output yp
 * [n, CO, HO/2, WO/2] and indexes ip, as pool.cl's pool_max_fwd would write them from y; with
 * FLAG_POOL_ONLY too, yp alone (y and ip are only the backward's). yo, yrows, ypitch: the final
 * output's layout (yp's with FLAG_POOL, else y's), as conv_rows_fwd's; y under a pool is dense. */
__kernel void conv_wino_fwd(__global const float *xs, const long xpo, __global const float *u,
                            __global const float *b, __global float *y, __global float *yp,
                            __global int *ip, const int n, const int flags, const long yo,
                            const int yrows, const int ypitch)
{
    const int t = get_global_id(0), NTY = (HO + 1) / 2;
    if (t >= (n + NS - 1) / NS * NTY) return;
    floatt V[16 * CI * NTO], M[16 * MWF * NTO];
    wino_fwd_row(xs + xpo, XROWS, XPITCH, CI, CO, HO, WO, u, CI, 1, 0, b,
                 HAS_BIAS && (flags & FLAG_BIAS), flags & FLAG_EPI, y, t / NTY * NS, n, t % NTY,
                 V, M, yp, ip, flags & (FLAG_POOL | FLAG_POOL_ONLY), yo, yrows, ypitch);
}

/* dx from dp: one work-item per row of tiles (two input rows) of a sample. */
__kernel void conv_wino_dgrad(__global const float *ws, const long dpo, __global const float *u,
                              __global float *dx, const int n)
{
    const int t = get_global_id(0), NTY = (HI + 1) / 2;
    if (t >= (n + NS - 1) / NS * NTY) return;
    floatt V[16 * CO * NTI], M[16 * MWD * NTI];
    wino_dgrad_row(ws + dpo, DROWS, DPITCH, CO, CI, HI, WI, u, 1, CI, 1, 0, 0, 0, dx,
                   t / NTY * NS, n, t % NTY, V, M, 0, 0, 0, 0, HI, WI);
}
#endif /* WINO */
#endif /* !W4STEM */

#if WINO4
#include "conv_wino4.cl"
#endif

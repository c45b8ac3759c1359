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
 * rows per forward work-item), RD (input rows per data-gradient work-item). Requires
 * SH = SW = 1, PH < KH and PW < KW (op_conv.c checks).
 *
 * Padded layouts (every entry outside the copied data is 0):
 *   xp [n, CI, XROWS, XPITCH]: x[i, c, iy, ix] at row iy + PH, column ix + PW, so the input of
 *      output (oy, ox) and tap (ky, kx) is at row oy + ky, column ox + kx;
 *   dp [n, CO, DROWS, DPITCH]: dy (through the activation's derivative) at row oy + DT, column
 *      ox + DL with DT = KH-1-PH, DL = KW-1-PW: the full-padded gradient whose plain convolution
 *      with the flipped weights is the data gradient, and whose columns past WO are 0 for the
 *      weight gradient's whole-vector rows. */
#include "epilogue.cl"

#define KK (KH * KW)
#define XROWS (HI + 2 * PH)
#define XPITCH (NVO * VW + KW - 1)
#define DT (KH - 1 - PH)
#define DL (KW - 1 - PW)
#define DROWS (HO + 2 * DT)
#define DPITCH_A (DL + NVO * VW)
#define DPITCH_B (NVI * VW + KW - 1)
#define DPITCH (DPITCH_A > DPITCH_B ? DPITCH_A : DPITCH_B)

#include "vecw.cl"

/* The lanes of v summed in a fixed order (halves, then halves of those). */
static inline float hsum(const floatv v)
{
#if VW == 16
    const float8 h8 = v.lo + v.hi;
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
                               __global float *ws, const long dpo, const int n)
{
    const int t = get_global_id(0);
    if (t >= n * CO * DROWS) return;
    pad_row(dy, y, ws + dpo, t, HO, WO, DROWS, DPITCH, DT, DL, 1);
}

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
 * MRF weights for MRF FMAs. */
#define NYB ((HO + RY - 1) / RY)
__kernel void conv_rows_fwd(__global const float *ws, const long xpo, __global const float *w,
                            __global const float *b, __global float *y, const int n)
{
    __global const float *xp = ws + xpo;
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
            const floatv bo = (floatv)(b[o]);
#else
            const floatv bo = (floatv)(0.0f);
#endif
#pragma unroll
            for (int r = 0; r < RY; r++) {
                __global float *yr = y + (((long)i * CO + o) * HO + oys[r]) * WO;
#pragma unroll
                for (int v = 0; v < NVO; v++) {
#if EPI_VEC
                    /* a whole vector of the row in one store: one input channel (conv1) gives
                     * 9 FMAs an output, and the scalar stores below took most of its time */
                    if ((v + 1) * VW <= WO) {
                        const floatv o = acc[m][r][v] + bo;
                        VSTORE(VW)(epi_fwdv(floatv, o), 0, yr + v * VW);
                        continue;
                    }
#endif
                    float tmp[VW];
                    VSTORE(VW)(acc[m][r][v] + bo, 0, tmp);
                    for (int l = 0; l < VW && v * VW + l < WO; l++)
                        yr[v * VW + l] = epi_fwd(tmp[l]);
                }
            }
        }
    }
}

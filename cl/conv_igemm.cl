/* conv_igemm.cl — conv2d as implicit GEMMs shaped for GPUs: forward, backward data and backward
 * weight (with the bias gradient) each one kernel over the NCHW tensors, with no column matrix and
 * no layout pass. The tiles are gemm_tiled.cl's (work-groups of TX x TY = 64-256 work-items,
 * __local A and B tiles, RM x RN register blocks; igemm_core.cl); what differs is that a tile's
 * elements are gathered from the tensors as the tile loads. OpenCL C 1.2 only (NVIDIA's): no
 * subgroups, no generic address space, whole work-groups (the host rounds the grid up; loads past
 * an edge read 0, stores past an edge are skipped).
 *
 * Shapes as -D options like conv.cl (CI HI WI CO HO WO KH KW SH SW PH PW HAS_BIAS, -DEPI for the
 * fused activation of epilogue.cl) plus GR (groups) and the tile TX TY RM RN BK; the batch count
 * n at run time. Grid dimension 2 runs over groups (and, for the weight gradient, K splits).
 *   forward      per group: C[OG, n*P]     = W[OG, CG*KK] . X~[CG*KK, n*P], stored into y as NCHW
 *                with the bias and the activation applied on the way;
 *   data         per group: C[CG, n*HI*WI] = W~[CG, OG*KK] . DY~[OG*KK, n*HI*WI], dy gathered
 *                through the activation's derivative (from the saved output y) and the stride;
 *   weight       per group: C[OG, CG*KK+1] = DY[OG, n*P] . X~'[n*P, CG*KK+1], the last column all
 *                ones so that it sums dy into the bias gradient; K = n*P (50k for a 28x28 layer at
 *                batch 64) split into S ranges of KC whose partial products conv_ig_reduce adds in
 *                a fixed order (deterministic), so that small weight tensors still fill a GPU. */
#include "epilogue.cl"

#ifndef GR
#define GR 1
#endif
#include "tile.cl"

#define P (HO * WO)
#define PIN (HI * WI)
#define KK (KH * KW)
#define CG (CI / GR)
#define OG (CO / GR)
#define CGKK (CG * KK)

/* x~[k, j] = x[i, c, oy*SH - PH + ky, ox*SW - PW + kx] or 0 (padding), k = (c*KH + ky)*KW + kx,
 * j = i*P + oy*WO + ox; xg points at the group's first channel. Remainders are spelled t - q*D
 * (see conv.cl: Oclgrind cannot run the freeze LLVM emits for a % beside its /). */
static inline float x_col(__global const float *xg, const int k, const int j)
{
    const int c = k / KK, r = k - c * KK;
    const int ky = r / KW, kx = r - ky * KW;
    const int i = j / P, p = j - i * P;
    const int oy = p / WO, ox = p - oy * WO;
    const int iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
    return iy >= 0 && iy < HI && ix >= 0 && ix < WI ? xg[((long)i * CI + c) * PIN + iy * WI + ix]
                                                     : 0.0f;
}

/* The raw output's gradient at NCHW index t: dy through the fused activation's derivative. */
static inline float dy_raw(__global const float *dy, __global const float *y, const long t)
{
#if EPI
    return epi_grad(dy[t], y[t]);
#else
    (void)y;
    return dy[t];
#endif
}

__kernel __attribute__((reqd_work_group_size(TX, TY, 1))) void
conv_ig_fwd(__global const float *x, __global const float *w, __global const float *b,
            __global float *y, const int n)
{
    __local float as[BK][BM + 1];
    __local float bs[BK][BN + 1];
    const int tx = get_local_id(0), ty = get_local_id(1), lid = ty * TX + tx;
    const int g = get_group_id(2);
    const int i0 = get_group_id(1) * BM, j0 = get_group_id(0) * BN;
    const int np = n * P, kbeg = 0, kend = CGKK;
    __global const float *wg = w + (long)g * OG * CGKK;
    __global const float *xg = x + (long)g * CG * PIN;
    float acc[RM][RN];
#define M_ OG
#define N_ np
#define A_ALONG_K 1
#define B_ALONG_J 1
#define A_AT(gi, gk) wg[(long)(gi) * CGKK + (gk)]
#define B_AT(gk, gj) x_col(xg, (gk), (gj))
#include "igemm_core.cl"
#pragma unroll
    for (int r = 0; r < RM; r++) {
        const int m = i0 + ty + r * TY;
        if (m >= OG) break;
        const int o = g * OG + m;
#if HAS_BIAS
        const float bo = b[o];
#else
        const float bo = 0.0f;
        (void)b;
#endif
#pragma unroll
        for (int q = 0; q < RN; q++) {
            const int j = j0 + tx + q * TX;
            if (j >= np) continue;
            const int i = j / P, p = j - i * P;
            y[((long)i * CO + o) * P + p] = epi_fwd(acc[r][q] + bo);
        }
    }
}

/* dy~[k, j] for the data gradient: k = (o*KH + ky)*KW + kx over the group's output channels,
 * j = i*PIN + iy*WI + ix; the output position that input (iy, ix) met through tap (ky, kx), or 0
 * where the stride skips it or it falls outside the output. */
static inline float dy_col(__global const float *dyg, __global const float *yg, const int k,
                           const int j)
{
    const int o = k / KK, r = k - o * KK;
    const int ky = r / KW, kx = r - ky * KW;
    const int i = j / PIN, pix = j - i * PIN;
    const int iy = pix / WI, ix = pix - iy * WI;
    const int ty = iy + PH - ky, tx = ix + PW - kx;
    if (ty < 0 || tx < 0) return 0.0f;
    const int oy = ty / SH, ox = tx / SW;
    if (oy * SH != ty || ox * SW != tx || oy >= HO || ox >= WO) return 0.0f;
    return dy_raw(dyg, yg, ((long)i * CO + o) * P + oy * WO + ox);
}

__kernel __attribute__((reqd_work_group_size(TX, TY, 1))) void
conv_ig_bwd_data(__global const float *dy, __global const float *y, __global const float *w,
                 __global float *dx, const int n)
{
    __local float as[BK][BM + 1];
    __local float bs[BK][BN + 1];
    const int tx = get_local_id(0), ty = get_local_id(1), lid = ty * TX + tx;
    const int g = get_group_id(2);
    const int i0 = get_group_id(1) * BM, j0 = get_group_id(0) * BN;
    const int nq = n * PIN, kbeg = 0, kend = OG * KK;
    __global const float *wg = w + (long)g * OG * CGKK;
    __global const float *dyg = dy + (long)g * OG * P;
    __global const float *yg = y ? y + (long)g * OG * P : y;
    float acc[RM][RN];
    /* W~[c, (o, ky, kx)] = w[o, c, ky, kx] */
#define M_ CG
#define N_ nq
#define A_ALONG_K 1
#define B_ALONG_J 1
#define A_AT(gi, gk) wg[((long)((gk) / KK) * CG + (gi)) * KK + ((gk) - (gk) / KK * KK)]
#define B_AT(gk, gj) dy_col(dyg, yg, (gk), (gj))
#include "igemm_core.cl"
#pragma unroll
    for (int r = 0; r < RM; r++) {
        const int m = i0 + ty + r * TY;
        if (m >= CG) break;
#pragma unroll
        for (int q = 0; q < RN; q++) {
            const int j = j0 + tx + q * TX;
            if (j >= nq) continue;
            const int i = j / PIN, pix = j - i * PIN;
            dx[((long)i * CI + g * CG + m) * PIN + pix] = acc[r][q];
        }
    }
}

/* The weight gradient's B operand: x~ transposed, plus the all-ones bias column CGKK. */
static inline float xt_col(__global const float *xg, const int k, const int j)
{
    return j == CGKK ? 1.0f : x_col(xg, j, k);
}

/* Work-group z = g * S + s takes K range [s*kc, min((s+1)*kc, n*P)) of group g (kc a multiple of
 * BK). ncols is CGKK + 1 with the bias gradient, CGKK without. With S == 1 the result goes to dw
 * (and db) directly, else to part[s, CO, ncols] for conv_ig_reduce. */
__kernel __attribute__((reqd_work_group_size(TX, TY, 1))) void
conv_ig_bwd_weight(__global const float *x, __global const float *dy, __global const float *y,
                   __global float *dw, __global float *db, __global float *part, const int n,
                   const int S, const int kc, const int ncols)
{
    __local float as[BK][BM + 1];
    __local float bs[BK][BN + 1];
    const int tx = get_local_id(0), ty = get_local_id(1), lid = ty * TX + tx;
    const int z = get_group_id(2), g = z / S, s = z - g * S;
    const int i0 = get_group_id(1) * BM, j0 = get_group_id(0) * BN;
    const int np = n * P, kbeg = s * kc, kend = min(np, kbeg + kc);
    __global const float *xg = x + (long)g * CG * PIN;
    float acc[RM][RN];
    /* DY[o, (i, p)] */
#define M_ OG
#define N_ ncols
#define A_ALONG_K 1
#define B_ALONG_J 0
#define A_AT(gi, gk) dy_raw(dy, y, ((long)((gk) / P) * CO + g * OG + (gi)) * P + ((gk) - (gk) / P * P))
#define B_AT(gk, gj) xt_col(xg, (gk), (gj))
#include "igemm_core.cl"
#pragma unroll
    for (int r = 0; r < RM; r++) {
        const int m = i0 + ty + r * TY;
        if (m >= OG) break;
        const int o = g * OG + m;
#pragma unroll
        for (int q = 0; q < RN; q++) {
            const int j = j0 + tx + q * TX;
            if (j >= ncols) continue;
            if (S > 1)
                part[((long)s * CO + o) * ncols + j] = acc[r][q];
            else if (j == CGKK)
                db[o] = acc[r][q];
            else if (dw) /* NULL when only the bias is trained */
                dw[(long)o * CGKK + j] = acc[r][q];
        }
    }
}

/* dw[o, k] (and db[o] from column CGKK) = the sum of the S partial products, in order. One
 * work-item per element of part's [CO, ncols] slice; 1-D, guarded. */
__kernel void conv_ig_reduce(__global const float *part, __global float *dw, __global float *db,
                             const int S, const int ncols)
{
    const int t = get_global_id(0);
    if (t >= CO * ncols) return;
    const int o = t / ncols, j = t - o * ncols;
    float v = 0.0f;
    for (int s = 0; s < S; s++) v += part[(long)s * CO * ncols + t];
    if (j == CGKK)
        db[o] = v;
    else if (dw)
        dw[(long)o * CGKK + j] = v;
}

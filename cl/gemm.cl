/* gemm.cl — Graft's own row-major SGEMM kernels for CPU OpenCL devices (PoCL): one work-item per
 * work-group, each computing a register-blocked tile of C with floatv vectors, no local memory and
 * no barriers. Tile sizes come in as -D options chosen per shape by the tuner (tune.c); on GPUs the
 * tuner picks CLBlast instead, since one work-item per group wastes a GPU.
 *
 * C = alpha * op(A) * op(B) + beta * C; M N K and the leading dimensions are runtime arguments;
 * edges are handled by clamping loads (rows) and guarding stores, so any shape works. beta == 0
 * never reads C (it may hold NaNs from an earlier use of the buffer). */

/* gemm_outer: op(B) row-major with unit stride along N (TB = 0); A either way (TA).
 * The tile is MR rows x NV*VW columns; per k, NV vector loads of B and MR broadcasts of A feed
 * MR*NV fused multiply-adds (the usual AVX micro-kernel shape). A work-item walks MT row blocks
 * down one column panel, so the panel of B (K x NR) is read from memory once and then comes from
 * cache: with a small M (conv channels) and a long N (batch x positions) that halves the memory
 * traffic or better; a large M wants MT = 1 (the rows of A then come from cache instead). MT is an
 * argument, not an option: the walk is not unrolled, and each program PoCL builds for a new MT
 * cost ~0.7 s of a first run (four of them for fmnist-cnn's dense layers, Zen 4, PoCL 3.1). */
#ifndef MR
#define MR 4
#endif
#ifndef NV
#define NV 2
#endif
#ifndef NC
#define NC 4
#endif
#ifndef VW
#define VW 8
#endif
/* VW-wide vectors: 8 fills AVX2's ymm registers, 16 AVX-512's zmm (PoCL's LLVM otherwise prefers
 * 256-bit vectors on AVX-512 machines) */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define floatv CAT(float, VW)
#define vloadv CAT(vload, VW)
#define vstorev CAT(vstore, VW)
#define NR (NV * VW)

/* The output epilogue of gemm_inner (unsplit) and gemm_reduce, for dense layers (y = x W^T + b
 * with a fused activation): bias[j] added to column j when EPI_BIAS is set in epi, then the
 * activation epi & 15 (epilogue.cl's codes, taken at run time so that one program serves every
 * layer: 1 relu, 2 relu6, 3 leaky_relu with slope, 5 sigmoid, 6 tanh), with epilogue.cl's scalar
 * formulas, so the result is the bit pattern bias.cl's bias_fwd writes after a plain GEMM. */
#define EPI_BIAS 16
static inline float gemm_epi(float v, __global const float *bias, const int j, const int epi,
                             const float slope)
{
    v = v + (epi & EPI_BIAS ? bias[j] : 0.0f); /* as bias_fwd: + 0 without a bias (-0 -> 0) */
    switch (epi & 15) {
    case 1: return v > 0.0f ? v : 0.0f;
    case 2: return fmin(fmax(v, 0.0f), 6.0f);
    case 3: return v > 0.0f ? v : v * slope;
    case 5: return 1.0f / (1.0f + exp(-v));
    case 6: return tanh(v);
    default: return v;
    }
}

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
gemm_outer(const int M, const int N, const int K, const float alpha, __global const float *a,
           const long a_off, const int lda, __global const float *b, const long b_off,
           const int ldb, const float beta, __global float *c, const long c_off, const int ldc,
           const int MT)
{
    const int j0 = get_global_id(0) * NR;
    if (j0 >= N) return;
    a += a_off;
    b += b_off;
    c += c_off;
    for (int t = 0; t < MT; t++) {
        const int i0 = (get_global_id(1) * MT + t) * MR;
        if (i0 >= M) return;
        int row[MR];
#pragma unroll
        for (int r = 0; r < MR; r++) row[r] = min(i0 + r, M - 1);
#if TA
        /* op(A)[i][k] = a[k*lda + i] */
#define A_AT(r, k) ak[row[r]]
#else
        __global const float *ar[MR];
#pragma unroll
        for (int r = 0; r < MR; r++) ar[r] = a + (long)row[r] * lda;
#define A_AT(r, k) ar[r][k]
#endif
        floatv acc[MR][NV];
#pragma unroll
        for (int r = 0; r < MR; r++)
#pragma unroll
            for (int v = 0; v < NV; v++) acc[r][v] = (floatv)(0.0f);
        __global const float *bp = b + j0;
        const bool full = j0 + NR <= N;
        if (full) {
            for (int k = 0; k < K; k++) {
#if TA
                __global const float *ak = a + (long)k * lda;
#endif
                floatv bv[NV];
#pragma unroll
                for (int v = 0; v < NV; v++) bv[v] = vloadv(v, bp);
#pragma unroll
                for (int r = 0; r < MR; r++) {
                    const floatv av = (floatv)(A_AT(r, k));
#pragma unroll
                    for (int v = 0; v < NV; v++) acc[r][v] = fma(av, bv[v], acc[r][v]);
                }
                bp += ldb;
            }
        } else {
            const int left = N - j0;
            for (int k = 0; k < K; k++) {
#if TA
                __global const float *ak = a + (long)k * lda;
#endif
                float tmp[NR];
#pragma unroll
                for (int q = 0; q < NR; q++) tmp[q] = q < left ? bp[q] : 0.0f;
                floatv bv[NV];
#pragma unroll
                for (int v = 0; v < NV; v++) bv[v] = vloadv(v, tmp);
#pragma unroll
                for (int r = 0; r < MR; r++) {
                    const floatv av = (floatv)(A_AT(r, k));
#pragma unroll
                    for (int v = 0; v < NV; v++) acc[r][v] = fma(av, bv[v], acc[r][v]);
                }
                bp += ldb;
            }
        }
#undef A_AT
#pragma unroll
        for (int r = 0; r < MR; r++) {
            if (i0 + r >= M) break;
            __global float *cp = c + (long)(i0 + r) * ldc + j0;
            if (full) {
#pragma unroll
                for (int v = 0; v < NV; v++) {
                    floatv y = alpha * acc[r][v];
                    if (beta != 0.0f) y = fma((floatv)(beta), vloadv(v, cp), y);
                    vstorev(y, v, cp);
                }
            } else {
                float tmp[NR];
#pragma unroll
                for (int v = 0; v < NV; v++) vstorev(acc[r][v], v, tmp);
                for (int q = 0; q < N - j0; q++)
                    cp[q] = beta != 0.0f ? alpha * tmp[q] + beta * cp[q] : alpha * tmp[q];
            }
        }
    }
}

/* gemm_inner: A [M x K] and B [N x K] both with unit stride along K (TA = 0, TB = 1), as in the
 * weight gradients (dW = dY * X^T, K = batch x positions) and dense forward (Y = X W^T). Each
 * work-item keeps MR x NC vector partial dot products along K and sums their lanes at the end;
 * rows and columns past the edge are clamped for loads and skipped for stores.
 * ks > 1 splits K into ks ranges (the third grid dimension, slowest, so all tiles of one range run
 * together while its slices of A and B sit in cache): each range writes its partial product to
 * c + range*M*ldc with alpha 1, and gemm_reduce sums them. Without it a K of 50176 streams every
 * row of A and B from memory once per tile. ks is an argument, as gemm_outer's MT: the tuner's
 * inner candidates differ in it, and each value had been a program of its own for PoCL to build. */

/* One MR x NC tile of C at (i0, j0) over k in [klo, khi); split: a partial product (no epilogue,
 * gemm_reduce applies it). Inlined at both calls: left a call, PoCL's build ran fc1's split
 * forward 5 % slower (158.5 against 166 GFLOP/s, AVX2, five alternating pairs). */
#if defined(__clang__)
#define GEMM_TILE_FN static inline __attribute__((always_inline)) void
#else
#define GEMM_TILE_FN static inline void
#endif
GEMM_TILE_FN gemm_inner_tile(const int M, const int N, const int i0, const int j0, const int klo,
                             const int khi, const float alpha, __global const float *a,
                             const long a_off, const int lda, __global const float *b,
                             const long b_off, const int ldb, const float beta, __global float *c,
                             const long c_off, const int ldc, __global const float *bias,
                             const int epi, const float slope, const int split)
{
    __global const float *ar[MR], *br[NC];
#pragma unroll
    for (int r = 0; r < MR; r++) ar[r] = a + a_off + klo + (long)min(i0 + r, M - 1) * lda;
#pragma unroll
    for (int q = 0; q < NC; q++) br[q] = b + b_off + klo + (long)min(j0 + q, N - 1) * ldb;
    floatv acc[MR][NC];
#pragma unroll
    for (int r = 0; r < MR; r++)
#pragma unroll
        for (int q = 0; q < NC; q++) acc[r][q] = (floatv)(0.0f);
    const int kn = khi - klo, k8 = kn / VW;
    for (int kk = 0; kk < k8; kk++) {
        floatv bv[NC];
#pragma unroll
        for (int q = 0; q < NC; q++) bv[q] = vloadv(kk, br[q]);
#pragma unroll
        for (int r = 0; r < MR; r++) {
            const floatv av = vloadv(kk, ar[r]);
#pragma unroll
            for (int q = 0; q < NC; q++) acc[r][q] = fma(av, bv[q], acc[r][q]);
        }
    }
    float s[MR][NC];
#pragma unroll
    for (int r = 0; r < MR; r++)
#pragma unroll
        for (int q = 0; q < NC; q++) {
            const floatv v = acc[r][q];
#if VW == 16
            const float8 h8 = v.lo + v.hi;
#else
            const float8 h8 = v;
#endif
            const float4 h = h8.lo + h8.hi;
            const float2 h2 = h.lo + h.hi;
            s[r][q] = h2.x + h2.y;
        }
    for (int k = k8 * VW; k < kn; k++)
#pragma unroll
        for (int r = 0; r < MR; r++)
#pragma unroll
            for (int q = 0; q < NC; q++) s[r][q] = fma(ar[r][k], br[q][k], s[r][q]);
#pragma unroll
    for (int r = 0; r < MR; r++) {
        if (i0 + r >= M) break;
        __global float *cp = c + c_off + (long)(i0 + r) * ldc + j0;
#pragma unroll
        for (int q = 0; q < NC; q++)
            if (j0 + q < N) {
                const float v = beta != 0.0f ? alpha * s[r][q] + beta * cp[q] : alpha * s[r][q];
                cp[q] = !split && epi ? gemm_epi(v, bias, j0 + q, epi, slope) : v;
            }
    }
}
#undef GEMM_TILE_FN

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
gemm_inner(const int M, const int N, const int K, const float alpha, __global const float *a,
           const long a_off, const int lda, __global const float *b, const long b_off,
           const int ldb, const float beta, __global float *c, const long c_off, const int ldc,
           __global const float *bias, const int epi, const float slope, const int ks)
{
    const int i0 = get_global_id(1) * MR;
    if (i0 >= M) return;
    if (ks > 1) {
        /* one K range per work-item, all columns: the range's slices of A and B stay in cache
         * while the work-item walks every column tile (and PoCL runs few, large work-groups) */
        const int kc = ((K + ks - 1) / ks + VW - 1) / VW * VW;
        const int klo = min(K, (int)get_global_id(2) * kc), khi = min(K, klo + kc);
        __global float *cs = c + (long)get_global_id(2) * M * ldc;
        /* every column tile, or every get_global_size(0)-th one (loop-limited devices, gemm.c) */
        for (int j0 = get_global_id(0) * NC; j0 < N; j0 += get_global_size(0) * NC)
            gemm_inner_tile(M, N, i0, j0, klo, khi, alpha, a, a_off, lda, b, b_off, ldb, beta,
                            cs, c_off, ldc, bias, epi, slope, 1);
    } else {
        const int j0 = get_global_id(0) * NC;
        if (j0 >= N) return;
        gemm_inner_tile(M, N, i0, j0, 0, K, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
                        ldc, bias, epi, slope, 0);
    }
}

/* C = alpha * (sum of the ks partial products at part + s*M*N) + beta * C, then the epilogue;
 * a work-item per row of C, walking it with unit stride (every get_global_size(1)-th column:
 * a work-item per element on a loop-limited device, gemm.c). */
__kernel void gemm_reduce(const int M, const int N, const float alpha, __global const float *part,
                          const float beta, __global float *c, const long c_off, const int ldc,
                          __global const float *bias, const int epi, const float slope,
                          const int ks)
{
    const int i = get_global_id(0);
    if (i >= M) return;
    __global float *cr = c + c_off + (long)i * ldc;
    __global const float *pr = part + (long)i * N;
    for (int j = get_global_id(1); j < N; j += get_global_size(1)) {
        float s = 0.0f;
        for (int q = 0; q < ks; q++) s += pr[(long)q * M * N + j];
        const float v = beta != 0.0f ? alpha * s + beta * cr[j] : alpha * s;
        cr[j] = epi ? gemm_epi(v, bias, j, epi, slope) : v;
    }
}

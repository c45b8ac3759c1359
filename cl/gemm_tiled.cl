/* gemm_tiled.cl — a row-major SGEMM shaped for GPUs: work-groups of TX x TY work-items (64-256),
 * each work-item computing an RM x RN register block of a BM x BN tile of C (BM = TY*RM,
 * BN = TX*RN), with K walked in steps of BK through __local copies of the A and B tiles.
 * OpenCL C 1.2 only (NVIDIA): no subgroups, no generic address space, no half.
 *
 * C = alpha * op(A) * op(B) + beta * C for every transposition (TA, TB as -D options); M N K, the
 * offsets and leading dimensions are runtime arguments. The grid is whole work-groups (the host
 * rounds it up), so every work-item takes part in every barrier: loads past an edge read 0 into
 * the local tiles and stores past an edge are skipped. beta == 0 never reads C.
 *
 * The register block is strided: work-item (tx, ty) owns rows ty + r*TY and columns tx + c*TX of
 * the tile, so neighbouring work-items read neighbouring words of the B tile (no bank conflicts),
 * read the same word of the A tile (a broadcast), and store neighbouring words of C. Tile loads
 * run along the operand's unit-stride dimension, so they coalesce whatever the transposition.
 * Each work-item loads BM*BK/(TX*TY) elements of A and BN*BK/(TX*TY) of B per K step: the host
 * only picks TX, TY in {8, 16} with BK = 16, which divides evenly.
 *
 * Split K (a product of few tiles and a long K, like a dense layer's 64x128 output over K = 3136,
 * which would otherwise keep 2 of 132 GPU cores busy): the third grid dimension is the K range,
 * kc long; range q computes its partial product into c + q*M*ldc (the host passes a scratch buffer
 * with alpha 1, beta 0) and gemm_tiled_reduce sums the ranges in order. One range: kc = K. */
#include "tile.cl"
#ifndef TA
#define TA 0
#endif
#ifndef TB
#define TB 0
#endif

__kernel __attribute__((reqd_work_group_size(TX, TY, 1))) void
gemm_tiled(const int M, const int N, const int K, const float alpha, __global const float *a,
           const long a_off, const int lda, __global const float *b, const long b_off,
           const int ldb, const float beta, __global float *c, const long c_off, const int ldc,
           const int kc)
{
    /* +1 column of padding: the transposed loads write down a column */
    __local float as[BK][BM + 1];
    __local float bs[BK][BN + 1];
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * TX + tx;
    const int i0 = get_group_id(1) * BM, j0 = get_group_id(0) * BN;
    const int kbeg = min(K, (int)get_group_id(2) * kc), kend = min(K, kbeg + kc);
    c += (long)get_group_id(2) * M * ldc;
    a += a_off;
    b += b_off;
    float acc[RM][RN];
    /* the K loop is the implicit-GEMM convolutions' (igemm_core.cl) over plain matrices: op(A)[i][k]
     * is a[k*lda + i] (TA, unit stride along i) or a[i*lda + k]; op(B)[k][j] is b[j*ldb + k] (TB,
     * unit stride along k) or b[k*ldb + j] */
#define M_ M
#define N_ N
#if TA
#define A_ALONG_K 0
#define A_AT(gi, gk) a[(long)(gk) * lda + (gi)]
#else
#define A_ALONG_K 1
#define A_AT(gi, gk) a[(long)(gi) * lda + (gk)]
#endif
#if TB
#define B_ALONG_J 0
#define B_AT(gk, gj) b[(long)(gj) * ldb + (gk)]
#else
#define B_ALONG_J 1
#define B_AT(gk, gj) b[(long)(gk) * ldb + (gj)]
#endif
#include "igemm_core.cl"
#pragma unroll
    for (int r = 0; r < RM; r++) {
        const int i = i0 + ty + r * TY;
        if (i >= M) break;
        __global float *cr = c + c_off + (long)i * ldc;
#pragma unroll
        for (int q = 0; q < RN; q++) {
            const int j = j0 + tx + q * TX;
            if (j < N) cr[j] = beta != 0.0f ? alpha * acc[r][q] + beta * cr[j] : alpha * acc[r][q];
        }
    }
}

/* C = alpha * (the S partial products at part + q*M*N, summed in order q = 0..S-1) + beta * C,
 * one work-item per element of C (global N x M; beta == 0 never reads C). */
__kernel void gemm_tiled_reduce(const int M, const int N, const int S, const float alpha,
                                __global const float *part, const float beta, __global float *c,
                                const long c_off, const int ldc)
{
    const int j = get_global_id(0), i = get_global_id(1);
    if (i >= M || j >= N) return;
    float s = 0.0f;
    for (int q = 0; q < S; q++) s += part[((long)q * M + i) * N + j];
    __global float *cij = c + c_off + (long)i * ldc + j;
    *cij = beta != 0.0f ? alpha * s + beta * *cij : alpha * s;
}

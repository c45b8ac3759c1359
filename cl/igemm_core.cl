/* igemm_core.cl — the K loop of the GPU-shaped GEMM kernels: gemm_tiled.cl includes it over plain
 * matrices, conv_igemm.cl once per kernel over tensors. A work-group of TX x TY work-items
 * computes a BM x BN tile of C, each work-item an RM x RN register block (rows ty + r*TY, columns
 * tx + q*TX), K walked in steps of BK through __local tiles; op(A)[i][k] and op(B)[k][j] come from
 * A_AT(i, k) and B_AT(k, j), which for a convolution compute them from the tensors (the im2col
 * gather folded into the tile load), so no column matrix exists.
 *
 * Expects in scope: the __local tiles as[BK][BM + 1], bs[BK][BN + 1]; float acc[RM][RN]; ints
 * tx, ty, lid, i0, j0, kbeg, kend; macros M_ and N_ (the product's rows and columns, for the edge
 * guards), A_AT(gi, gk), B_AT(gk, gj) (called only inside the bounds), and A_ALONG_K, B_ALONG_J:
 * which index runs fastest across work-items while a tile loads (the operand's unit-stride one, so
 * the loads coalesce). The bounds and barriers are uniform: every work-item runs every iteration.
 * The six macros are undefined at the end, so the next kernel defines its own. */
#pragma unroll
for (int r = 0; r < RM; r++)
#pragma unroll
    for (int q = 0; q < RN; q++) acc[r][q] = 0.0f;
for (int k0 = kbeg; k0 < kend; k0 += BK) {
#pragma unroll
    for (int l = 0; l < BM * BK / NT; l++) {
        const int idx = lid + l * NT;
#if A_ALONG_K
        const int q_ = idx / BK, kk = idx - q_ * BK, ii = q_;
#else
        const int q_ = idx / BM, ii = idx - q_ * BM, kk = q_;
#endif
        const int gi = i0 + ii, gk = k0 + kk;
        as[kk][ii] = gi < (M_) && gk < kend ? A_AT(gi, gk) : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < BN * BK / NT; l++) {
        const int idx = lid + l * NT;
#if B_ALONG_J
        const int q_ = idx / BN, jj = idx - q_ * BN, kk = q_;
#else
        const int q_ = idx / BK, kk = idx - q_ * BK, jj = q_;
#endif
        const int gj = j0 + jj, gk = k0 + kk;
        bs[kk][jj] = gj < (N_) && gk < kend ? B_AT(gk, gj) : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
        float av[RM], bv[RN];
#pragma unroll
        for (int r = 0; r < RM; r++) av[r] = as[kk][ty + r * TY];
#pragma unroll
        for (int q = 0; q < RN; q++) bv[q] = bs[kk][tx + q * TX];
#pragma unroll
        for (int r = 0; r < RM; r++)
#pragma unroll
            for (int q = 0; q < RN; q++) acc[r][q] = fma(av[r], bv[q], acc[r][q]);
    }
    /* the next K step overwrites the tiles: everyone must be done reading them */
    barrier(CLK_LOCAL_MEM_FENCE);
}
#undef M_
#undef N_
#undef A_ALONG_K
#undef B_ALONG_J
#undef A_AT
#undef B_AT

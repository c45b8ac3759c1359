/* conv_wino.cl — the body of conv_rows.cl's Winograd passes, included there once per pass with
 * WINO_ROW (the function's name), W_MW (output channels a register block) and W_NT (tile vectors
 * a row) defined: OpenCL C has no templates, and with the tile's sizes as constants the
 * accumulators stay in registers (as parameters, even inlined, LLVM 15 kept them on the stack).
 *
 * Tile row ty of sample i: NQ input planes of IR rows x IP floats at in, NP output planes of
 * OH x OW at out; the kernel of (p, q) at u + xi * CO * CI + p * SP + q * SQ (xi rotated when
 * ROT); V [16][NQ][NT] and M [16][MW][NT] the caller's private arrays. The final output (the
 * pool's with POOL, else out) has plane p of sample i at YO + (i NP + p) YR YP, rows YP apart (a
 * dense plane, or the next conv's padded input); out under a pool is dense. */
#define MW W_MW
#define NT W_NT
static inline void WINO_ROW(__global const float *in, const int IR, const int IP, const int NQ,
                            const int NP, const int OH, const int OW, __global const float *u,
                            const int SP, const int SQ, const int ROT, __global const float *b,
                            const int BIAS, const int ACT, __global float *out, const int i,
                            const int n, const int ty, floatt *V, floatt *M, __global float *yp,
                            __global int *ip, const int POOL, const long YO, const int YR,
                            const int YP)
{
    /* with NS 2 (WPAIR), samples i and i+1 in the vectors' halves (i+1 < n, else i twice) */
    const long SS = NS > 1 && i + 1 < n ? (long)NQ * IR * IP : 0;
    for (int q = 0; q < NQ; q++) {
        __global const float *inq = in + ((long)i * NQ + q) * IR * IP;
        for (int t = 0; t < NT; t++) {
            floatt d[4][4];
#pragma unroll
            for (int r = 0; r < 4; r++) {
                /* the last row of an odd height reads a row it only uses for outputs it drops */
                __global const float *p = inq + min(2 * ty + r, IR - 1) * IP + 2 * WT * t;
                LOAD_EOS(p, SS, d[r][0], d[r][1]);
                LOAD_EOS(p + 2, SS, d[r][2], d[r][3]);
            }
            floatt e[4][4]; /* B^T d */
#pragma unroll
            for (int j = 0; j < 4; j++) {
                e[0][j] = d[0][j] - d[2][j];
                e[1][j] = d[1][j] + d[2][j];
                e[2][j] = d[2][j] - d[1][j];
                e[3][j] = d[1][j] - d[3][j];
            }
            floatt *v = V + q * NT + t; /* (B^T d) B */
            const int XS = NQ * NT;
#pragma unroll
            for (int r = 0; r < 4; r++) {
                v[(4 * r + 0) * XS] = e[r][0] - e[r][2];
                v[(4 * r + 1) * XS] = e[r][1] + e[r][2];
                v[(4 * r + 2) * XS] = e[r][2] - e[r][1];
                v[(4 * r + 3) * XS] = e[r][1] - e[r][3];
            }
        }
    }
    for (int p0 = 0; p0 < NP; p0 += MW) {
        for (int x = 0; x < 16; x++) {
            floatt acc[MW][NT];
#pragma unroll
            for (int m = 0; m < MW; m++)
#pragma unroll
                for (int t = 0; t < NT; t++) acc[m][t] = (floatt)(0.0f);
            __global const float *ux =
                u + (long)(ROT ? wino_rot(x) : x) * CO * CI + (long)p0 * SP;
            const floatt *vx = V + x * NQ * NT;
            for (int q = 0; q < NQ; q++) {
                floatt vv[NT];
#pragma unroll
                for (int t = 0; t < NT; t++) vv[t] = vx[q * NT + t];
#pragma unroll
                for (int m = 0; m < MW; m++) {
                    const floatt uw = (floatt)(ux[m * SP + q * SQ]);
#pragma unroll
                    for (int t = 0; t < NT; t++) acc[m][t] = fma(uw, vv[t], acc[m][t]);
                }
            }
#pragma unroll
            for (int m = 0; m < MW; m++)
#pragma unroll
                for (int t = 0; t < NT; t++) M[(x * MW + m) * NT + t] = acc[m][t];
        }
        for (int m = 0; m < MW; m++) {
            const int pc = p0 + m;
            const floatt bo = (floatt)(BIAS ? b[pc] : 0.0f);
            for (int t = 0; t < NT; t++) {
                floatt s0[4], s1[4]; /* A^T M */
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const floatt m0 = M[((0 + j) * MW + m) * NT + t];
                    const floatt m1 = M[((4 + j) * MW + m) * NT + t];
                    const floatt m2 = M[((8 + j) * MW + m) * NT + t];
                    const floatt m3 = M[((12 + j) * MW + m) * NT + t];
                    s0[j] = m0 + m1 + m2;
                    s1[j] = m1 - m2 - m3;
                }
                const floatt y00 = s0[0] + s0[1] + s0[2] + bo, y01 = s0[1] - s0[2] - s0[3] + bo;
                const floatt y10 = s1[0] + s1[1] + s1[2] + bo, y11 = s1[1] - s1[2] - s1[3] + bo;
#pragma unroll
                for (int sh = 0; sh < NS && i + sh < n; sh++) { /* the samples (WPAIR: 2) */
                    const int pitch = POOL ? OW : YP;
                    __global float *yo = POOL ? out + ((long)(i + sh) * NP + pc) * OH * OW
                                              : out + YO + ((long)(i + sh) * NP + pc) * YR * YP;
#pragma unroll
                    for (int r = 0; r < 2 && 2 * ty + r < OH && !(POOL & FLAG_POOL_ONLY); r++) {
                        __global float *yr = yo + (2 * ty + r) * pitch;
#pragma unroll
                        for (int h = 0; h < NH; h++) { /* the halves interleaved */
                            const int x0 = 2 * WT * t + h * ROWW;
                            const rowt v = r ? ILVS(y10, y11, sh, h) : ILVS(y00, y01, sh, h);
#if EPI_VEC
                            const bool whole = x0 + ROWW <= OW;
                            if (whole) STORE_ROWT(ACT ? epi_fwdv(rowt, v) : v, yr + x0);
#else
                            const bool whole = false;
#endif
                            if (!whole) {
                                float tmp[ROWW];
                                STORE_ROWT(v, tmp);
                                for (int l = 0; l < ROWW && x0 + l < OW; l++)
                                    yr[x0 + l] = ACT ? epi_fwd(tmp[l]) : tmp[l];
                            }
                        }
                    }
                    if (POOL && ty < OH / 2) { /* the 2x2 max-pool after it: conv_wino_fwd */
                        const long po = (((long)(i + sh) * NP + pc) * (OH / 2) + ty) * (OW / 2);
                        const long pl = YO + (((long)(i + sh) * NP + pc) * YR + ty) * YP;
                        wino_pool(HALF_T(y00, sh), HALF_T(y01, sh), HALF_T(y10, sh),
                                  HALF_T(y11, sh), ACT, OH, OW, ty, t, yp + pl,
                                  POOL & FLAG_POOL_ONLY ? ip : ip + po, !(POOL & FLAG_POOL_ONLY));
                    }
                }
            }
        }
    }
}
#undef MW
#undef NT

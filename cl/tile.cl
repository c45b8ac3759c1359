/* tile.cl — the work-group tile of the GPU-shaped GEMM kernels (gemm_tiled.cl, conv_igemm.cl;
 * their K loop is igemm_core.cl): TX x TY work-items, each an RM x RN register block, K steps of
 * BK, so a work-group computes a BM x BN tile of C. -D options override the defaults. */
#ifndef TX
#define TX 16
#endif
#ifndef TY
#define TY 16
#endif
#ifndef RM
#define RM 4
#endif
#ifndef RN
#define RN 4
#endif
#ifndef BK
#define BK 16
#endif
#define BM (TY * RM)
#define BN (TX * RN)
#define NT (TX * TY)
#if (BM * BK) % NT != 0 || (BN * BK) % NT != 0
#error "the tiles of A and B must split evenly over the work-group"
#endif

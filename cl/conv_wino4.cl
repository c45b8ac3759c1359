/* conv_wino4.cl — the forward of a 3x3 convolution as Winograd F(4x4, 3x3), included at the end of
 * conv_rows.cl when built with WINO4 (the wino4 path: this forward, the backward of the wino or
 * rows path). 36 multiplications per 4x4 outputs and channel pair, against 144 direct and 64 for
 * F(2x2, 3x3): the frozen convolutions of a transfer and an evaluation run only this pass, and
 * their products are most of its time (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016).
 *
 * y = A^T [(G g G^T) . (B^T d B)] A for each 6x6 input tile d (stride 4) and 3x3 kernel g, with
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
 * Tile rows of six output rows take F(6, 3) down the columns instead, where a launch asks (w6:
 * W6 of them, the first; the host picks the split with the fewest products, fmnist-cnn's 14 rows
 * as 6 + 4 + 4, 20 points a column against 24, and 28 as 4 x 6 + 4, and asks for it in forwards
 * no backward follows): eight input rows, B6^T, G6 and A6^T below, 48 points per 6x4 outputs.
 * conv_wino4_wt writes U[xi][o][c] = (G w[o][c] G^T) (xi = 6 a + b), and where W6 and asked
 * (six) the F(6x4) U after it. A work-item takes one row of tiles (four or six output rows) of
 * W4G W4S samples: lane s W4T + k of a vector is tile k of
 * sample i + g W4S + s in group g (W4T tiles a sample, rounded up to 4, 8 or 16; W4S = VW / W4T
 * samples share a vector, so that fmnist-cnn's 14-wide layers, four tiles, fill 8 and 16 lanes;
 * W4G groups so that a broadcast weight feeds more than one vector). It transforms every input
 * channel's tiles into V[xi][q][t] (private), then for each block of W4M output channels (the
 * last CO % W4M) and each xi sums U[xi][p][q] V[xi][q][t] over q in registers (a fixed order),
 * and turns the 36 (48) sums of a tile into its outputs with the bias and the fused activation,
 * stored (rows past HO and columns past WO never written: the output may be another conv's
 * padded input) and/or max-pooled 2x2 as conv_wino_fwd does (tile rows start at even rows). A last
 * tile row past the height reads rows clamped to the last padded row (zeros) for outputs it drops.
 * conv_wino4_stem (built with W4STEM) computes its input from the layer before instead of
 * reading it (see there).
 * Options: W4T, W4S, W4L (their product), W4G, W4M, W6; W4STEM, SCI, SEPI, SEPI_SLOPE; requires
 * KH = KW = 3 and a pitch of at least 4 W4T NT4 + 2 (op_conv.c checks). */
#if W4L != W4T * W4S /* lanes a vector: a number, for VEC's token pasting */
#error "W4L: W4T * W4S"
#endif
#define NT4 ((WO + 4 * W4T - 1) / (4 * W4T))        /* tile vectors a row */
#ifndef W4G
#define W4G 1 /* groups of W4S samples a work-item */
#endif
#define NV4 (NT4 * W4G) /* vectors a work-item's products share each weight with */
#define floatq VEC(W4L)
#if W4L == 4
#define intq int4
#define LANES_Q ((int4)(0, 1, 2, 3))
#elif W4L == 8
#define intq int8
#define LANES_Q ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#elif W4L == 16
#define intq int16
#define LANES_Q ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
#error "W4T * W4S: 4, 8 or 16"
#endif

/* Columns j = 0..5 of 4 (8) tiles of a padded row at p: lane k of c[j] is p[4 k + j], from vector
 * loads picked lane by lane (see conv_rows.cl's LOAD_EO: the form PoCL compiles well and
 * Oclgrind's checker takes as it is); columns 4 and 5 of the last tile are the two floats after. */
static inline void w4_cols4(__global const float *p, float4 *c)
{
    const float8 a = vload8(0, p), b = vload8(1, p);
    const float e0 = p[16], e1 = p[17];
    c[0] = (float4)(a.s0, a.s4, b.s0, b.s4);
    c[1] = (float4)(a.s1, a.s5, b.s1, b.s5);
    c[2] = (float4)(a.s2, a.s6, b.s2, b.s6);
    c[3] = (float4)(a.s3, a.s7, b.s3, b.s7);
    c[4] = (float4)(a.s4, b.s0, b.s4, e0);
    c[5] = (float4)(a.s5, b.s1, b.s5, e1);
}

#if W4T >= 8
static inline void w4_cols8(__global const float *p, float8 *c)
{
    const float8 a = vload8(0, p), b = vload8(1, p), g = vload8(2, p), h = vload8(3, p);
    const float e0 = p[32], e1 = p[33];
    c[0] = (float8)(a.s0, a.s4, b.s0, b.s4, g.s0, g.s4, h.s0, h.s4);
    c[1] = (float8)(a.s1, a.s5, b.s1, b.s5, g.s1, g.s5, h.s1, h.s5);
    c[2] = (float8)(a.s2, a.s6, b.s2, b.s6, g.s2, g.s6, h.s2, h.s6);
    c[3] = (float8)(a.s3, a.s7, b.s3, b.s7, g.s3, g.s7, h.s3, h.s7);
    c[4] = (float8)(a.s4, b.s0, b.s4, g.s0, g.s4, h.s0, h.s4, e0);
    c[5] = (float8)(a.s5, b.s1, b.s5, g.s1, g.s5, h.s1, h.s5, e1);
}
#endif

/* lane by lane (Oclgrind crashed on (float16)(a, b) of two float8) */
#define CAT44(a, b) ((float8)((a).s0, (a).s1, (a).s2, (a).s3, (b).s0, (b).s1, (b).s2, (b).s3))
#define CAT88(a, b)                                                                                \
    ((float16)((a).s0, (a).s1, (a).s2, (a).s3, (a).s4, (a).s5, (a).s6, (a).s7, (b).s0, (b).s1,    \
               (b).s2, (b).s3, (b).s4, (b).s5, (b).s6, (b).s7))
#define CAT4444(a, b, c, d)                                                                        \
    ((float16)((a).s0, (a).s1, (a).s2, (a).s3, (b).s0, (b).s1, (b).s2, (b).s3, (c).s0, (c).s1,    \
               (c).s2, (c).s3, (d).s0, (d).s1, (d).s2, (d).s3))

/* The six column vectors of a tile-vector row: sample s's part from ps[s] */
static inline void w4_row(__global const float *const *ps, floatq *c)
{
#if W4L == 4
    w4_cols4(ps[0], c);
#elif W4L == 8 && W4T == 8
    w4_cols8(ps[0], c);
#elif W4L == 8
    float4 a[6], b[6];
    w4_cols4(ps[0], a);
    w4_cols4(ps[1], b);
#pragma unroll
    for (int j = 0; j < 6; j++) c[j] = CAT44(a[j], b[j]);
#elif W4T == 16
    float8 a[6], b[6];
    w4_cols8(ps[0], a);
    w4_cols8(ps[0] + 32, b);
#pragma unroll
    for (int j = 0; j < 6; j++) c[j] = CAT88(a[j], b[j]);
#elif W4T == 8
    float8 a[6], b[6];
    w4_cols8(ps[0], a);
    w4_cols8(ps[1], b);
#pragma unroll
    for (int j = 0; j < 6; j++) c[j] = CAT88(a[j], b[j]);
#else
    float4 a[6], b[6], g[6], h[6];
    w4_cols4(ps[0], a);
    w4_cols4(ps[1], b);
    w4_cols4(ps[2], g);
    w4_cols4(ps[3], h);
#pragma unroll
    for (int j = 0; j < 6; j++) c[j] = CAT4444(a[j], b[j], g[j], h[j]);
#endif
}

#define Q(v) ((floatq)(v))
/* o[k os] = (B^T x)[k] for x[k xs], k = 0..5 */
static inline void w4_bt(const floatq x0, const floatq x1, const floatq x2, const floatq x3,
                         const floatq x4, const floatq x5, floatq *o, const int os)
{
    const floatq t0 = fma(Q(-4.0f), x2, x4), t1 = fma(Q(-4.0f), x1, x3);
    const floatq t2 = x4 - x2, t3 = Q(2.0f) * (x3 - x1);
    o[0] = fma(Q(4.0f), x0, fma(Q(-5.0f), x2, x4));
    o[os] = t0 + t1;
    o[2 * os] = t0 - t1;
    o[3 * os] = t2 + t3;
    o[4 * os] = t2 - t3;
    o[5 * os] = fma(Q(4.0f), x1, fma(Q(-5.0f), x3, x5));
}

/* o[k] = (A^T m)[k], k = 0..3 */
static inline void w4_at(const floatq m0, const floatq m1, const floatq m2, const floatq m3,
                         const floatq m4, const floatq m5, floatq *o)
{
    const floatq s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    o[0] = m0 + s12 + s34;
    o[1] = fma(Q(2.0f), d34, d12);
    o[2] = fma(Q(4.0f), s34, s12);
    o[3] = fma(Q(8.0f), d34, d12) + m5;
}

/* o[k] = (G h)[k], k = 0..5, for a column (or row) h of 3 */
static inline void w4_g(const float h0, const float h1, const float h2, float *o)
{
    o[0] = 0.25f * h0;
    o[1] = -(h0 + h1 + h2) / 6.0f;
    o[2] = -(h0 - h1 + h2) / 6.0f;
    o[3] = h0 / 24.0f + h1 / 12.0f + h2 / 6.0f;
    o[4] = h0 / 24.0f - h1 / 12.0f + h2 / 6.0f;
    o[5] = h2;
}

/* F(6, 3) down the columns of a tile row of six output rows (W6: the tile rows that take it):
 * eight input rows a tile, points 0, +-1, +-2, +-1/2 and infinity (Lavin and Gray's F(6x6, 3x3)
 * matrices, one dimension of them; the rows keep F(4, 3)), 48 products per 6x4 outputs where F(4x4)
 * needs 54. o[k os] = (B6^T x)[k], k = 0..7 */
static inline void w6_bt(const floatq x0, const floatq x1, const floatq x2, const floatq x3,
                         const floatq x4, const floatq x5, const floatq x6, const floatq x7,
                         floatq *o, const int os)
{
    const floatq a = fma(Q(-4.25f), x4, x2 + x6), b = fma(Q(-4.25f), x3, x1 + x5);
    const floatq c = fma(Q(0.25f), x2, fma(Q(-1.25f), x4, x6));
    const floatq d = fma(Q(0.5f), x1, fma(Q(-2.5f), x3, Q(2.0f) * x5));
    const floatq f = fma(Q(4.0f), x2, fma(Q(-5.0f), x4, x6));
    const floatq h = fma(Q(2.0f), x1, fma(Q(-2.5f), x3, Q(0.5f) * x5));
    o[0] = fma(Q(5.25f), x4 - x2, x0 - x6);
    o[os] = a + b;
    o[2 * os] = a - b;
    o[3 * os] = c + d;
    o[4 * os] = c - d;
    o[5 * os] = f + h;
    o[6 * os] = f - h;
    o[7 * os] = fma(Q(5.25f), x3 - x5, x7 - x1);
}

/* o[k] = (A6^T m)[k], k = 0..5 */
static inline void w6_at(const floatq m0, const floatq m1, const floatq m2, const floatq m3,
                         const floatq m4, const floatq m5, const floatq m6, const floatq m7,
                         floatq *o)
{
    const floatq s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4, s56 = m5 + m6,
                 d56 = m5 - m6;
    o[0] = m0 + s12 + s34 + s56;
    o[1] = fma(Q(2.0f), d34, fma(Q(0.5f), d56, d12));
    o[2] = fma(Q(4.0f), s34, fma(Q(0.25f), s56, s12));
    o[3] = fma(Q(8.0f), d34, fma(Q(0.125f), d56, d12));
    o[4] = fma(Q(16.0f), s34, fma(Q(0.0625f), s56, s12));
    o[5] = fma(Q(32.0f), d34, fma(Q(0.03125f), d56, d12)) + m7;
}

/* o[k] = (G6 h)[k], k = 0..7 */
static inline void w6_g(const float h0, const float h1, const float h2, float *o)
{
    o[0] = h0;
    o[1] = -2.0f * (h0 + h1 + h2) / 9.0f;
    o[2] = -2.0f * (h0 - h1 + h2) / 9.0f;
    o[3] = h0 / 90.0f + h1 / 45.0f + 2.0f * h2 / 45.0f;
    o[4] = h0 / 90.0f - h1 / 45.0f + 2.0f * h2 / 45.0f;
    o[5] = 32.0f * h0 / 45.0f + 16.0f * h1 / 45.0f + 8.0f * h2 / 45.0f;
    o[6] = 32.0f * h0 / 45.0f - 16.0f * h1 / 45.0f + 8.0f * h2 / 45.0f;
    o[7] = h2;
}

#ifndef W6
#define W6 0 /* tile rows of six output rows, from the top, where a launch asks (w6); else four */
#endif
/* tile rows a sample with w6 (0 or W6) of six rows; a tile row's most points (36, 48 where W6) */
#define W4_NTY(w6) ((w6) + (HO > 6 * (w6) ? (HO - 6 * (w6) + 3) / 4 : 0))
#define W4_NP (W6 ? 48 : 36)

/* u[t + (6 a + b) S] = (G g G^T)[a][b] for the 3x3 kernel g, S = CO CI; where W6 and six, then
 * u[t + (36 + 6 a + b) S] = (G6 g G^T)[a][b], a = 0..7 (only for the forwards that take tile rows
 * of six: written by a training step's transform, those 48 points made its forward slower) */
static inline void w4_wt(const float g[9], __global float *u, const int t, const int six)
{
    float gg[6][3], g6[8][3]; /* G g and G6 g, column by column */
#pragma unroll
    for (int j = 0; j < 3; j++) {
        float o[8];
        w4_g(g[j], g[3 + j], g[6 + j], o);
#pragma unroll
        for (int a = 0; a < 6; a++) gg[a][j] = o[a];
        w6_g(g[j], g[3 + j], g[6 + j], o);
#pragma unroll
        for (int a = 0; a < 8; a++) g6[a][j] = o[a];
    }
    const long S = (long)CO * CI;
#pragma unroll
    for (int a = 0; a < 6; a++) { /* (G g) G^T, row by row */
        float o[6];
        w4_g(gg[a][0], gg[a][1], gg[a][2], o);
#pragma unroll
        for (int b = 0; b < 6; b++) u[t + (6 * a + b) * S] = o[b];
    }
    if (!W6 || !six) return;
#pragma unroll
    for (int a = 0; a < 8; a++) {
        float o[6];
        w4_g(g6[a][0], g6[a][1], g6[a][2], o);
#pragma unroll
        for (int b = 0; b < 6; b++) u[t + (36 + 6 * a + b) * S] = o[b];
    }
}

/* U from w [CO, CI, 3, 3]: one work-item per (o, c); G g G^T in scalars, U[6 a + b] at
 * u[(6 a + b) S ..], S = CO CI apart. In a stem program too, whose forward reads it: a pipeline
 * that runs the stem need not build the layer's own program (op_conv.c, rows_build). */
__kernel void conv_wino4_wt(__global const float *w, __global float *u, const int six)
{
    const int t = get_global_id(0);
    if (t >= CO * CI) return;
    float g[9];
#pragma unroll
    for (int k = 0; k < 9; k++) g[k] = w[(long)t * 9 + k];
    w4_wt(g, u, t, six);
}

#if !W4STEM
/* The data gradient as a forward: for a layer with as many channels in as out (CI = CO), 3x3,
 * stride 1, padding 1, dx is conv_wino4_fwd of the padded dy (conv_rows_pad_dy's dp, laid out as
 * xp there) with the weights turned 180 degrees and input and output channels swapped:
 * U[6 a + b][c][o] from w[o][c] reversed. One work-item per (c, o). */
__kernel void conv_wino4_wtd(__global const float *w, __global float *u)
{
    const int t = get_global_id(0);
    if (t >= CO * CI) return;
    const int c = t / CI, o = t - c * CI; /* U[.][c][o] at c CI + o, as conv_wino4_fwd reads it */
    float g[9];
#pragma unroll
    for (int k = 0; k < 9; k++) g[k] = w[((long)o * CI + c) * 9 + 8 - k];
    w4_wt(g, u, t, 0); /* for the data gradient: tile rows of four */
}
#endif /* !W4STEM */

/* The lanes of a, b (c, d) interleaved into seq: a0 b0 (c0 d0) a1 b1 .. (2-level shuffles of two
 * vectors each, lane by lane as above), so that lane k's outputs come out in column order: the
 * rows of the W4S samples one after the other. */
#if W4L == 16
#define ILO_(T, a, b)                                                                              \
    ((T)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, (a).s4, (b).s4, (a).s5,  \
         (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#define IHI_(T, a, b)                                                                              \
    ((T)((a).s8, (b).s8, (a).s9, (b).s9, (a).sa, (b).sa, (a).sb, (b).sb, (a).sc, (b).sc, (a).sd,  \
         (b).sd, (a).se, (b).se, (a).sf, (b).sf))
#define PLO_(T, a, b)                                                                              \
    ((T)((a).s0, (a).s1, (b).s0, (b).s1, (a).s2, (a).s3, (b).s2, (b).s3, (a).s4, (a).s5, (b).s4,  \
         (b).s5, (a).s6, (a).s7, (b).s6, (b).s7))
#define PHI_(T, a, b)                                                                              \
    ((T)((a).s8, (a).s9, (b).s8, (b).s9, (a).sa, (a).sb, (b).sa, (b).sb, (a).sc, (a).sd, (b).sc,  \
         (b).sd, (a).se, (a).sf, (b).se, (b).sf))
#elif W4L == 8
#define ILO_(T, a, b) ((T)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3))
#define IHI_(T, a, b) ((T)((a).s4, (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#define PLO_(T, a, b) ((T)((a).s0, (a).s1, (b).s0, (b).s1, (a).s2, (a).s3, (b).s2, (b).s3))
#define PHI_(T, a, b) ((T)((a).s4, (a).s5, (b).s4, (b).s5, (a).s6, (a).s7, (b).s6, (b).s7))
#else
#define ILO_(T, a, b) ((T)((a).s0, (b).s0, (a).s1, (b).s1))
#define IHI_(T, a, b) ((T)((a).s2, (b).s2, (a).s3, (b).s3))
#define PLO_(T, a, b) ((T)((a).s0, (a).s1, (b).s0, (b).s1))
#define PHI_(T, a, b) ((T)((a).s2, (a).s3, (b).s2, (b).s3))
#endif

static inline void w4_ilv4(const floatq a, const floatq b, const floatq c, const floatq d,
                           float *seq)
{
    const floatq abl = ILO_(floatq, a, b), abh = IHI_(floatq, a, b);
    const floatq cdl = ILO_(floatq, c, d), cdh = IHI_(floatq, c, d);
    VSTORE(W4L)(PLO_(floatq, abl, cdl), 0, seq);
    VSTORE(W4L)(PHI_(floatq, abl, cdl), 1, seq);
    VSTORE(W4L)(PLO_(floatq, abh, cdh), 2, seq);
    VSTORE(W4L)(PHI_(floatq, abh, cdh), 3, seq);
}

static inline void w4_ilv2(const floatq a, const floatq b, float *seq)
{
    VSTORE(W4L)(ILO_(floatq, a, b), 0, seq);
    VSTORE(W4L)(IHI_(floatq, a, b), 1, seq);
}

static inline void w4_ilv2i(const intq a, const intq b, int *seq)
{
    VSTORE(W4L)(ILO_(intq, a, b), 0, seq);
    VSTORE(W4L)(IHI_(intq, a, b), 1, seq);
}

/* dst[0 .. nv-1] = src[0 .. nv-1] of a span of COUNT (a constant, as src's offset once unrolled):
 * whole vectors of CH (a number: 16, or 8 for the 8-float pooled rows of 4 tiles) where the span
 * is whole, else 4 floats at a time and the rest one by one (never past nv: dst may be a row of
 * another conv's padded input) */
#if W4T == 4
#define W4_PCH 8
#else
#define W4_PCH 16
#endif
#define W4_SPAN(dst, src, COUNT, CH, nv)                                                           \
    {                                                                                              \
        if ((nv) >= (COUNT)) {                                                                     \
            _Pragma("unroll") for (int c_ = 0; c_ < (COUNT) / (CH); c_++)                          \
                VSTORE(CH)(VLOAD(CH)(c_, (src)), c_, (dst));                                       \
        } else {                                                                                   \
            _Pragma("unroll") for (int c_ = 0; c_ < (COUNT) / 4; c_++)                             \
            {                                                                                      \
                if (4 * c_ + 4 <= (nv))                                                            \
                    vstore4(vload4(c_, (src)), c_, (dst));                                         \
                else                                                                               \
                    _Pragma("unroll") for (int j_ = 0; j_ < 4; j_++) if (4 * c_ + j_ < (nv))       \
                        (dst)[4 * c_ + j_] = (src)[4 * c_ + j_];                                   \
            }                                                                                      \
        }                                                                                          \
    }

/* The products of one block of MB output channels from p0 (MB a constant: W4M, or the last
 * block's CO % W4M): M[(x W4M + m) NV4 + v] = sum over q of U[x][p0 + m][q] V[x][q][v] for the
 * tile row's nx points (U from ut), in registers, q in a fixed order */
#define W4_GEMM(MB)                                                                                \
    for (int x = 0; x < nx; x++) {                                                                 \
        floatq acc[MB][NV4];                                                                       \
        _Pragma("unroll") for (int m = 0; m < (MB); m++)                                           \
            _Pragma("unroll") for (int v = 0; v < NV4; v++) acc[m][v] = Q(0.0f);                   \
        __global const float *ux = ut + (long)x * CO * CI + (long)p0 * CI;                         \
        const floatq *vx = V + x * CI * NV4;                                                       \
        for (int q = 0; q < CI; q++) {                                                             \
            floatq vv[NV4];                                                                        \
            _Pragma("unroll") for (int v = 0; v < NV4; v++) vv[v] = vx[q * NV4 + v];               \
            _Pragma("unroll") for (int m = 0; m < (MB); m++)                                       \
            {                                                                                      \
                const floatq uw = Q(ux[m * CI + q]);                                               \
                _Pragma("unroll") for (int v = 0; v < NV4; v++) acc[m][v] =                        \
                    fma(uw, vv[v], acc[m][v]);                                                     \
            }                                                                                      \
        }                                                                                          \
        _Pragma("unroll") for (int m = 0; m < (MB); m++)                                           \
            _Pragma("unroll") for (int v = 0; v < NV4; v++) M[(x * W4M + m) * NV4 + v] =           \
                acc[m][v];                                                                         \
    }

/* inlined where called with a constant (TH below), so that its branch folds */
#ifdef __clang__
#define W4_INLINE static inline __attribute__((always_inline)) void
#else
#define W4_INLINE static inline void
#endif

/* f[r] = (d B)'s row r, r < TH + 2: the padded rows r0 + r (clamped to the last, zeros: rows
 * past HO are dropped) of the tile vector at p, column 4 W4T tv of a channel's plane, the W4S
 * samples' parts so[g][s] past it */
#define W4_ROWS(TH)                                                                                \
    _Pragma("unroll") for (int r = 0; r < (TH) + 2; r++)                                          \
    {                                                                                              \
        __global const float *ps[W4S];                                                             \
        _Pragma("unroll") for (int s = 0; s < W4S; s++) ps[s] =                                   \
            p + so[g][s] + (long)min(r0 + r, XROWS - 1) * XPITCH;                                  \
        floatq c[6];                                                                               \
        w4_row(ps, c);                                                                             \
        w4_bt(c[0], c[1], c[2], c[3], c[4], c[5], f[r], 1);                                        \
    }

/* B^T (d B) from the rows f of d B: column bb into v[(6 a + bb) XS]; the first TH + 2 rows, TH
 * the tile row's output rows (4: B^T, 6: B6^T) */
W4_INLINE w4_v(const int TH, floatq f[8][6], floatq *v, const int XS)
{
#pragma unroll
    for (int bb = 0; bb < 6; bb++)
        if (TH == 6)
            w6_bt(f[0][bb], f[1][bb], f[2][bb], f[3][bb], f[4][bb], f[5][bb], f[6][bb], f[7][bb],
                  v + bb * XS, 6 * XS);
        else
            w4_bt(f[0][bb], f[1][bb], f[2][bb], f[3][bb], f[4][bb], f[5][bb], v + bb * XS,
                  6 * XS);
}

#if W4STEM
/* The stem: a 3x3 convolution (stride 1, padding 1) of SCI channels whose output, through its
 * bias and activation (SEPI: epilogue.cl's kinds 0-3), is this layer's input, computed here as
 * each tile row's transform reads it instead of being written out and read back: fmnist-cnn's
 * conv1 (one channel in, on the rows path) wrote 6.4 MB a batch of 64 into conv2's padded input,
 * out of the caches and back, and took 0.17-0.18 s of a warm frozen-prefix transfer's kernel time
 * capped at AVX2 (87 batches); conv1 + conv2 166 + 342 and 178 + 374 ms against 367 and 393 ms
 * for this kernel (OpenCL profiling, runs alternating, Zen 4). The products and their order are
 * conv_rows_fwd's
 * (acc = 0, fma over channel, ky, kx, + bias, the activation), so the values are the ones that
 * layer writes, to the bit; outside its output (this layer's padding) they are zero. */
#ifndef SEPI_SLOPE
#define SEPI_SLOPE 0.01f
#endif
#if SEPI == 0
#define stem_act(v) (v)
#elif SEPI == 1
#define stem_act(v) ((v) > Q(0.0f) ? (v) : Q(0.0f))
#elif SEPI == 2
#define stem_act(v) fmin(fmax((v), Q(0.0f)), Q(6.0f))
#elif SEPI == 3
#define stem_act(v) ((v) > Q(0.0f) ? (v) : (v) * Q(SEPI_SLOPE))
#else
#error "SEPI: 0-3"
#endif

/* xv[(c 10 + rr) 8 + cc], lane s W4T + k: the stem's input x[is + s][c] at row r0 - PH - 1 + rr
 * (rr < nr), column 4 W4T tv + 4 k + cc - PW - 1 (zero outside the image; samples past n read the
 * work-item's first, i) */
static inline void w4_stem_in(__global const float *sx, const int i, const int is, const int n,
                              const int r0, const int nr, const int tv, floatq *xv)
{
    for (int c = 0; c < SCI; c++)
        for (int rr = 0; rr < nr; rr++) {
            const int iy = r0 - PH - 1 + rr;
            for (int cc = 0; cc < 8; cc++) {
                float l[W4L];
#pragma unroll
                for (int s = 0; s < W4S; s++) {
                    __global const float *xr =
                        sx + (((long)(is + s < n ? is + s : i) * SCI + c) * HI + iy) * WI;
#pragma unroll
                    for (int k = 0; k < W4T; k++) {
                        const int ix = 4 * W4T * tv + 4 * k + cc - PW - 1;
                        l[s * W4T + k] =
                            iy >= 0 && iy < HI && ix >= 0 && ix < WI ? xr[ix] : 0.0f;
                    }
                }
                xv[(c * 10 + rr) * 8 + cc] = VLOAD(W4L)(0, l);
            }
        }
}
#endif

/* y from xp (or from the stem's input): one work-item per row of tiles (four output rows) of
 * W4G W4S samples, W4G vectors (groups of W4S samples) of each of the row's NT4 tile vectors:
 * NV4 vectors share each weight a product loads (at 8 lanes, 16 registers, two vectors by six
 * channels kept the FMA units busier than one by eight); flags, yp, ip, yo, yrows and ypitch as
 * conv_wino_fwd's. */
/* a tile row of th (4 or 6) output rows from r0, of the samples from i */
W4_INLINE w4_rows(const int th, const int r0, const int i, const int stem,
                  __global const float *xs, const long xpo, __global const float *sx,
                  __global const float *sw, __global const float *sb, const int sflags,
                  __global const float *u, __global const float *b, __global float *y,
                  __global float *yp, __global int *ip, const int n, const int flags,
                  const long yo, const int yrows, const int ypitch)
{
    /* its nx points, its weights' transform from ut */
    const int nx = 6 * (th + 2);
    __global const float *ut = u + (th == 6 ? 36L * CO * CI : 0L);
    const int act = flags & FLAG_EPI, pool = flags & FLAG_POOL, only = flags & FLAG_POOL_ONLY;
    const int bias = HAS_BIAS && (flags & FLAG_BIAS);
    floatq V[W4_NP * CI * NV4], M[W4_NP * W4M * NV4];
    const int XS = CI * NV4;
#if W4STEM
    if (stem) {
        const int sact = sflags & FLAG_EPI, sbias = sflags & FLAG_BIAS;
        for (int g = 0; g < W4G; g++) {
            for (int tv = 0; tv < NT4; tv++) {
                floatq xv[SCI * 80];
                w4_stem_in(sx, i, i + g * W4S, n, r0, th + 4, tv, xv);
                int rok[8]; /* padded row r0 + r within the stem's output */
                intq cok[6]; /* lane k's padded column 4 W4T tv + 4 k + j within it */
#pragma unroll
                for (int r = 0; r < 8; r++) rok[r] = r0 + r >= PH && r0 + r < PH + HI;
#pragma unroll
                for (int j = 0; j < 6; j++) {
                    const intq col = (LANES_Q & (W4T - 1)) * 4 + 4 * W4T * tv + j;
                    cok[j] = col >= PW && col < PW + WI;
                }
                for (int q = 0; q < CI; q++) {
                    __global const float *wq = sw + (long)q * SCI * 9;
                    const floatq bq = Q(sbias ? sb[q] : 0.0f);
                    floatq f[8][6]; /* rows of d B */
                    for (int r = 0; r < th + 2; r++) {
                        floatq c[6];
#pragma unroll
                        for (int j = 0; j < 6; j++) {
                            floatq acc = Q(0.0f);
#pragma unroll
                            for (int ci = 0; ci < SCI; ci++)
#pragma unroll
                                for (int ky = 0; ky < 3; ky++)
#pragma unroll
                                    for (int kx = 0; kx < 3; kx++)
                                        acc = fma(Q(wq[ci * 9 + ky * 3 + kx]),
                                                  xv[(ci * 10 + r + ky) * 8 + j + kx], acc);
                            const floatq o = acc + bq, a = sact ? stem_act(o) : o;
                            c[j] = rok[r] ? select(Q(0.0f), a, cok[j]) : Q(0.0f);
                        }
                        w4_bt(c[0], c[1], c[2], c[3], c[4], c[5], f[r], 1);
                    }
                    if (th == 6)
                        w4_v(6, f, V + q * NV4 + g * NT4 + tv, XS);
                    else
                        w4_v(4, f, V + q * NV4 + g * NT4 + tv, XS);
                }
            }
        }
    } else
#endif
    {
        const long PLANE = (long)XROWS * XPITCH;
        __global const float *in = xs + xpo + (long)i * CI * PLANE;
        long so[W4G][W4S]; /* the samples' offsets from sample i (i itself again past n) */
#pragma unroll
        for (int g = 0; g < W4G; g++)
#pragma unroll
            for (int s = 0; s < W4S; s++)
                so[g][s] = i + g * W4S + s < n ? (g * W4S + s) * CI * PLANE : 0;
        for (int q = 0; q < CI; q++) {
            for (int g = 0; g < W4G; g++) {
                for (int tv = 0; tv < NT4; tv++) {
                    floatq f[8][6]; /* rows of d B */
                    __global const float *p = in + q * PLANE + 4 * W4T * tv;
                    if (th == 6) {
                        W4_ROWS(6)
                        w4_v(6, f, V + q * NV4 + g * NT4 + tv, XS);
                    } else {
                        W4_ROWS(4)
                        w4_v(4, f, V + q * NV4 + g * NT4 + tv, XS);
                    }
                }
            }
        }
    }
    for (int p0 = 0; p0 < CO; p0 += W4M) {
        const int mb = min(W4M, CO - p0);
#if CO % W4M
        if (mb < W4M) {
            W4_GEMM(CO % W4M)
        } else
#endif
        {
            W4_GEMM(W4M)
        }
        for (int m = 0; m < mb; m++) {
            const int pc = p0 + m;
            const floatq bo = Q(bias ? b[pc] : 0.0f);
            for (int v = 0; v < NV4; v++) {
                const int tv = v % NT4, is = i + v / NT4 * W4S; /* tile vector, first sample */
                floatq g[6][6], yv[6][4]; /* A^T M, then (A^T M) A */
#pragma unroll
                for (int bb = 0; bb < 6; bb++) {
                    floatq o[6];
#define MX(a) M[((6 * (a) + bb) * W4M + m) * NV4 + v]
                    if (th == 6)
                        w6_at(MX(0), MX(1), MX(2), MX(3), MX(4), MX(5), MX(6), MX(7), o);
                    else
                        w4_at(MX(0), MX(1), MX(2), MX(3), MX(4), MX(5), o);
#undef MX
#pragma unroll
                    for (int k = 0; k < 6; k++) g[k][bb] = o[k];
                }
                floatq yq[6][4]; /* [row][column in the tile], through the epilogue */
#pragma unroll
                for (int k = 0; k < 6; k++) {
                    /* (not a break at th: LLVM then could not unroll it, and yq went to memory) */
                    if (k >= th) continue;
                    w4_at(g[k][0], g[k][1], g[k][2], g[k][3], g[k][4], g[k][5], yv[k]);
#pragma unroll
                    for (int l = 0; l < 4; l++) {
                        const floatq o = yv[k][l] + bo;
#if EPI_VEC
                        yq[k][l] = act ? epi_fwdv(floatq, o) : o;
#else
                        float z[W4L];
                        VSTORE(W4L)(o, 0, z);
                        if (act)
                            for (int zz = 0; zz < W4L; zz++) z[zz] = epi_fwd(z[zz]);
                        yq[k][l] = VLOAD(W4L)(0, z);
#endif
                    }
                }
                const int x0 = 4 * W4T * tv, nx = min(4 * W4T, WO - x0);
                if (!(pool && only)) { /* the outputs: dense under a pool, else yo's layout */
                    const int pitch = pool ? WO : ypitch;
#pragma unroll
                    for (int k = 0; k < 6; k++) {
                        if (k >= th || r0 + k >= HO) continue;
                        /* the row of every sample in order: the 4 columns of lane 0, lane 1 .. */
                        float seq[4 * W4L];
                        w4_ilv4(yq[k][0], yq[k][1], yq[k][2], yq[k][3], seq);
#pragma unroll
                        for (int s = 0; s < W4S; s++) {
                            if (is + s >= n) break;
                            __global float *yr =
                                (pool ? y + ((long)(is + s) * CO + pc) * HO * WO
                                      : y + yo + ((long)(is + s) * CO + pc) * yrows * ypitch) +
                                (long)(r0 + k) * pitch + x0;
                            W4_SPAN(yr, seq + s * 4 * W4T, 4 * W4T, 16, nx);
                        }
                    }
                }
                if (!pool) continue;
                /* the 2x2 max-pool: pooled rows r0 / 2 + pr, columns 2 (W4T tv + k) + h, with the
                 * winner's index iy WO + ix in the conv's output plane (POOL_ARGMAX) */
                const intq kq = (LANES_Q & (W4T - 1)) + W4T * tv;
                const int PWO = WO / 2, px0 = 2 * W4T * tv, npx = min(2 * W4T, PWO - px0);
#pragma unroll
                for (int pr = 0; pr < 3; pr++) {
                    const int prow = r0 / 2 + pr;
                    if (2 * pr >= th || prow >= HO / 2) break;
                    floatq pm[2];
                    intq pi[2];
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const floatq v00 = yq[2 * pr][2 * h], v01 = yq[2 * pr][2 * h + 1],
                                     v10 = yq[2 * pr + 1][2 * h], v11 = yq[2 * pr + 1][2 * h + 1];
                        const intq c0 = kq * 4 + 2 * h + (2 * prow) * WO;
                        POOL_ARGMAX(intq, v00, v01, v10, v11, c0, WO, pm[h], pi[h]);
                    }
                    float pseq[2 * W4L];
                    int iseq[2 * W4L];
                    w4_ilv2(pm[0], pm[1], pseq);
                    if (!only) w4_ilv2i(pi[0], pi[1], iseq);
#pragma unroll
                    for (int s = 0; s < W4S; s++) {
                        if (is + s >= n) break;
                        __global float *pr_ =
                            yp + yo + (((long)(is + s) * CO + pc) * yrows + prow) * ypitch + px0;
                        W4_SPAN(pr_, pseq + s * 2 * W4T, 2 * W4T, W4_PCH, npx);
                        if (!only) {
                            __global int *ir_ =
                                ip + (((long)(is + s) * CO + pc) * (HO / 2) + prow) * PWO + px0;
                            W4_SPAN(ir_, iseq + s * 2 * W4T, 2 * W4T, W4_PCH, npx);
                        }
                    }
                }
            }
        }
    }
}

/* w6: 0 (rows of four only) or W6 (the program's split) */
static inline void w4_fwd(const int stem, __global const float *xs, const long xpo,
                          __global const float *sx, __global const float *sw,
                          __global const float *sb, const int sflags, __global const float *u,
                          __global const float *b, __global float *y, __global float *yp,
                          __global int *ip, const int n, const int flags, const long yo,
                          const int yrows, const int ypitch, const int w6)
{
    const int NTY = W4_NTY(w6), t = get_global_id(0);
    if (t >= (n + W4S * W4G - 1) / (W4S * W4G) * NTY) return;
    const int i = t / NTY * W4S * W4G, ty = t - t / NTY * NTY;
    /* one body for both kinds of tile row (their sizes a variable: a copy for each, their sizes
     * constant, measured no faster and doubled the code llvmpipe compiles) */
    const int six = W6 && ty < w6;
    w4_rows(six ? 6 : 4, six ? 6 * ty : 6 * w6 + 4 * (ty - w6), i, stem, xs, xpo, sx, sw, sb,
            sflags, u, b, y, yp, ip, n, flags, yo, yrows, ypitch);
}

#if !W4STEM
__kernel void conv_wino4_fwd(__global const float *xs, const long xpo, __global const float *u,
                             __global const float *b, __global float *y, __global float *yp,
                             __global int *ip, const int n, const int flags, const long yo,
                             const int yrows, const int ypitch, const int w6)
{
    w4_fwd(0, xs, xpo, xs, xs, xs, 0, u, b, y, yp, ip, n, flags, yo, yrows, ypitch, w6);
}
#else
/* The forward with the stem computed in the transform: sx [n, SCI, HI, WI], its weights sw
 * [CI, SCI, 3, 3] and bias sb [CI], sflags (FLAG_EPI, FLAG_BIAS) as conv_rows_fwd's flags. */
__kernel void conv_wino4_stem(__global const float *sx, __global const float *sw,
                              __global const float *sb, const int sflags,
                              __global const float *u, __global const float *b,
                              __global float *y, __global float *yp, __global int *ip,
                              const int n, const int flags, const long yo, const int yrows,
                              const int ypitch, const int w6)
{
    w4_fwd(1, sx, 0, sx, sw, sb, sflags, u, b, y, yp, ip, n, flags, yo, yrows, ypitch, w6);
}
#undef stem_act
#endif
#undef W4_GEMM
#undef W4_ROWS
#undef W4_INLINE
#undef W4_NTY
#undef W4_NP
#undef Q
#undef ILO_
#undef IHI_
#undef PLO_
#undef PHI_

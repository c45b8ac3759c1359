/* op_conv.c — conv2d forward and backward as im2col (cl/conv.cl) + CLBlast GEMM per group, bias
 * through cl/bias.cl. The kernels come from kernel_get: they belong to the context, so layers of
 * the same shape share one compiled program and conv2d_op_free has nothing to release. */
#include "ops.h"
#include "tune.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Two ways to run a batch's GEMMs, chosen by measurement:
 *   batched    = one GEMM per group over the whole batch [CKK x n*P], plus a layout transform
 *                (conv2d_pack / conv2d_unpack, which also adds the bias);
 *   per-sample = one GEMM per sample and group, straight on the NCHW tensors.
 * PoCL 3.1, CLBlast 1.5.3 default parameters, 2-core EPYC shared with other jobs (load ~4), the
 * two interleaved, best of 3 x 4 runs, batch 64, ms for fwd / bwd_data / bwd_weight:
 *   conv1  1->32 28x28: per-sample   6.8 /  -  /  9.6    batched  15.1 /  -  /   9.7
 *   conv2 32->32 28x28: per-sample 140   / 153 / 137      batched 114   / 117 / 111
 *   conv3 32->64 14x14: per-sample  66   /  64 /  61      batched  53   /  49 /  59
 *   conv4 64->64 14x14: per-sample 133   / 128 / 124      batched 100   / 104 / 119
 * (an earlier run on a quieter machine: conv2 63/75/65 vs 61/72/65, conv3 35-67 vs 30/31/32).
 * With a CPU-tuned CLBlast Xgemm (issue 6's parameter set, indirect kernel forced) the batched
 * forward and backward-data products gain most (conv3 fwd 7.7 vs 16-28 ms). So batched is the
 * rule; only a short GEMM K (conv1: CKK = 9) loses batched: CLBlast's direct kernel takes 14.7 ms
 * for 32 x 50176 x 9 but 5.3 ms for 64 calls of 32 x 784 x 9. Groups always go batched
 * (per-sample would be n * groups GEMM calls: 2048 for a 32-channel depthwise layer at batch 64).
 * The choice is a pure function of the shape, so conv2d_workspace_bytes knows it too. */
static bool use_batched(const conv2d_desc *d)
{
    return d->groups > 1 || d->c * d->kh * d->kw >= 32;
}

/* The batched forward runs a batch in chunks of samples whose column matrix and product, about
 * CONV_CHUNK_KB of both, stay in the CPU's caches from im2col through the GEMM to unpack; the
 * whole batch at once wrote conv2's 58 MB column matrix to memory and read it back. Interleaved
 * on a 2-core Xeon (AVX-512, PoCL 3.1), fmnist-cnn at batch 64, 3 rounds, ms forward: conv2
 * 22.0 -> 16.2, conv4 16.9 -> 13.4, conv3 8.2 -> 7.7. The backward stays whole-batch: chunked
 * (its weight gradient accumulated over the chunks) it lost as much as the forward gained (conv4
 * 37 -> 44 ms; the weight gradient's K split already keeps its slices in cache), and so did
 * chunking the data gradient alone (its GEMM and col2im per chunk: conv3 and conv4 9-15 % slower in
 * 6 paired rounds, conv2 even; measured again with the row-per-work-item col2im, 3 interleaved
 * rounds of graft bench, ms backward whole -> chunked: conv2 25/29/33 -> 25/28/30, conv3
 * 8.7/9.5/13.9 -> 10.1/11.9/12.9, conv4 18/20/29 -> 28/26/32), and so did chunking the whole
 * backward once the rows were padded (per chunk: pack, im2col, weight GEMM accumulating, bias,
 * data GEMM, col2im; 2026-12-03, 3 interleaved rounds, ms backward whole -> chunked: conv2
 * 28.5/33.8/31.5 -> 26.4/29.2/27.8, conv3 9.4/13.7/11.0 -> 12.7/14.8/14.0, conv4 19.8/28.6/21.9
 * -> 29.6/35.9/33.5: the chunks' weight-gradient products lose more than the cache gains), so
 * the workspace is still sized for the whole batch.
 * GRAFT_CONV_CHUNK_KB overrides the chunk (0: the whole batch). */
#define CONV_CHUNK_KB 4096
static size_t conv2d_fwd_chunk(size_t ckk, size_t o, size_t p, size_t n)
{
    static long kb = -1;
    if (kb < 0) {
        const char *v = getenv("GRAFT_CONV_CHUNK_KB");
        kb = v && *v ? strtol(v, NULL, 10) : CONV_CHUNK_KB;
        if (kb < 0) kb = 0;
    }
    if (kb == 0 || n < 1) return n;
    size_t per = (ckk + o) * p * sizeof(float);
    size_t k = (size_t)kb * 1024 / (per ? per : 1);
    if (k < 1) k = 1;
    return k < n ? k : n;
}

static int chunk_samples(const conv2d_desc *d, int n)
{
    return (int)conv2d_fwd_chunk((size_t)d->c * d->kh * d->kw, (size_t)d->o,
                                 (size_t)d->oh * d->ow, (size_t)n);
}

#define LOCAL 64

/* The row stride (floats) of the column matrix and of the packed product / gradient [O, n*P]:
 * n*P rounded up to whole 64-byte lines, then to an odd number of them. A stride that is a
 * multiple of 4 KiB (conv2's 50,176 floats at batch 64 are 49 pages) puts every row of a GEMM's
 * k-loop in the same L1 set: gemm_outer then streams its B panel from L2, and gemm_inner's MR + NC
 * rows thrash the same set. An odd number of lines spreads consecutive rows over all the sets.
 * Measured on the 2-core Xeon (AVX-512, PoCL 3.1), gemm_outer 8x32 MT 4 on conv2's forward
 * product (32 x N x 288), process CPU time per call (steal-proof), 3 rounds: N = 50,176 (the
 * whole batch) 19-20 ms -> 8.5-9.7 ms, N = 3,136 (a 4-sample chunk) 0.68-1.2 ms -> 0.48-0.51 ms. */
static size_t conv2d_row_stride(size_t np)
{
    size_t lines = (np + 15) / 16;
    return (lines | 1) * 16;
}

typedef struct conv_dims {
    size_t p, np, ld, cg, og, cgkk, ckk, colsz;
    bool identity; /* 1x1, stride 1, no padding: the column matrix of a sample is x itself */
} conv_dims;

static conv_dims dims_of(const conv2d_desc *d, int n)
{
    conv_dims s;
    s.p = (size_t)d->oh * d->ow;
    s.np = (size_t)n * s.p;
    s.ld = conv2d_row_stride(s.np);
    s.cg = (size_t)(d->c / d->groups);
    s.og = (size_t)(d->o / d->groups);
    s.cgkk = s.cg * d->kh * d->kw;
    s.ckk = (size_t)d->c * d->kh * d->kw;
    s.colsz = s.ckk * s.ld;
    s.identity = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0;
    return s;
}

static void product(gemm_shape *out, int *k, int cap, bool ta, bool tb, size_t m, size_t n,
                    size_t kk, size_t lda, size_t ldb, size_t ldc)
{
    if (*k < cap) out[(*k)++] = (gemm_shape){ta, tb, m, n, kk, lda, ldb, ldc};
}

/* As conv2d_fwd and conv2d_bwd below issue them (0 = tight; a 1x1 stride-1 layer per sample
 * multiplies the NCHW tensors themselves). */
int conv2d_gemm_products(const conv2d_desc *d, int n, bool need_dx, bool trains, gemm_shape *out,
                         int cap)
{
    if (n < 1 || d->groups < 1) return 0;
    conv_dims s = dims_of(d, n);
    int k = 0;
    if (use_batched(d)) {
        const int S = chunk_samples(d, n), rest = n % S;
        conv_dims c = dims_of(d, S);
        product(out, &k, cap, false, false, c.og, c.np, c.cgkk, 0, c.ld, c.ld); /* W x cols */
        if (rest) {
            conv_dims r = dims_of(d, rest);
            product(out, &k, cap, false, false, r.og, r.np, r.cgkk, 0, r.ld, r.ld);
        }
        if (need_dx) product(out, &k, cap, true, false, s.cgkk, s.np, s.og, 0, s.ld, s.ld);
        if (trains) product(out, &k, cap, false, true, s.og, s.cgkk, s.np, s.ld, s.ld, 0);
        return k;
    }
    size_t lc = s.identity ? 0 : s.ld;
    product(out, &k, cap, false, false, s.og, s.p, s.cgkk, 0, lc, 0);        /* forward */
    if (need_dx) product(out, &k, cap, true, false, s.cgkk, s.p, s.og, 0, 0, lc); /* data */
    if (trains) product(out, &k, cap, false, true, s.og, s.cgkk, s.p, 0, lc, 0);  /* weight */
    return k;
}

static void conv_options_as(const conv2d_desc *d, const epilogue *epi, bool bias, char *buf,
                            size_t n)
{
    char eo[96];
    epilogue_options(epi, eo, sizeof eo);
    snprintf(buf, n,
             "-DCI=%d -DHI=%d -DWI=%d -DCO=%d -DHO=%d -DWO=%d -DKH=%d -DKW=%d -DSH=%d -DSW=%d "
             "-DPH=%d -DPW=%d -DHAS_BIAS=%d%s",
             d->c, d->h, d->w, d->o, d->oh, d->ow, d->kh, d->kw, d->sh, d->sw, d->ph, d->pw,
             bias ? 1 : 0, eo);
}

static void conv_options(const conv2d_desc *d, char *buf, size_t n)
{
    conv_options_as(d, &d->epi, d->bias, buf, n);
}

/* bias.cl's kernels for this layer's output [n, O, P], with the epilogue. */
static graft_status bias_kernel(graft_context *ctx, const conv2d_desc *d, const char *name,
                                cl_kernel *k, graft_error *e)
{
    char opts[192], eo[96];
    epilogue_options(&d->epi, eo, sizeof eo);
    snprintf(opts, sizeof opts, "-DHW=%d -DHAS_BIAS=%d%s", d->oh * d->ow, d->bias ? 1 : 0, eo);
    return kernel_get(ctx, "bias", opts, name, k, e);
}

static graft_status conv_kernel(graft_context *ctx, const conv2d_desc *d, const char *name,
                                cl_kernel *k, graft_error *e)
{
    char opts[512];
    conv_options(d, opts, sizeof opts);
    return kernel_get(ctx, "conv", opts, name, k, e);
}

/* ---- the direct (implicit-GEMM) path, cl/conv.cl's conv2d_direct ----
 * A register tile of MR output channels x a whole output row (NV vectors of VW floats): VW is the
 * device's preferred float vector width (16 on AVX-512, 8 on AVX2), MR the largest divisor of the
 * output channels that keeps MR * NV <= 24 accumulators (at most 16 channels). Shaped for CPU
 * devices like gemm_outer (one work-item per work-group, registers, no local memory); groups of
 * 1, a unit stride along x, rows of at most 16 vectors. */
typedef struct direct_tile {
    int vw, nv, mr;
} direct_tile;

static bool direct_tile_of(const graft_context *ctx, int co, int wo, direct_tile *t)
{
    int vw = (int)ctx->info.vec_float;
    vw = vw >= 16 ? 16 : vw >= 8 ? 8 : 4;
    int nv = (wo + vw - 1) / vw;
    if (nv > 16) return false;
    int mr = 24 / nv;
    if (mr > 16) mr = 16;
    while (mr > 1 && co % mr) mr--;
    *t = (direct_tile){vw, nv, mr};
    return true;
}

/* Which convolution a layer runs: im2col + GEMM (conv.cl + CLBlast or the tuned GEMM), the direct
 * CPU kernel (conv.cl's conv2d_direct), the implicit GEMM (conv_igemm.cl), the rows kernels
 * (conv_rows.cl), the rows kernels with a Winograd forward and data gradient (wino), or wino with
 * the forward as Winograd F(4x4, 3x3) (wino4). GRAFT_CONV=im2col, direct, igemm, rows, wino or
 * wino4 forces one where it applies; by default GPUs get the implicit GEMM (work-groups of 64-256
 * with local-memory tiles, three launches per layer and step instead of six), CPUs wino4, wino or
 * rows where they apply (default_path) and im2col elsewhere
 * (strides, groups, kernels over 3x3). On the Xeon VM (AVX-512, PoCL 3.1) rows took fmnist-cnn's
 * conv2 from 14.4 / 35.5 ms (forward / backward, im2col) to 7.7 / 17.1. */
static const char *const path_names[CONV_PATHS] = {"im2col", "direct", "igemm", "rows", "wino",
                                                   "wino4"};

const char *conv2d_path_name(conv_path p)
{
    return p >= 0 && p < CONV_PATHS ? path_names[p] : "?";
}

static conv_path forced_path(void)
{
    const char *v = getenv("GRAFT_CONV");
    for (int p = 0; v && p < CONV_PATHS; p++)
        if (strcmp(v, path_names[p]) == 0) return (conv_path)p;
    return CONV_PATHS;
}

/* ---- the rows path, cl/conv_rows.cl: forward and backward from zero-padded copies ----
 * Shaped for CPU devices: VW the device's preferred float vector width (16 on AVX-512, 8 on
 * AVX2), a register budget of 28 vectors at VW 16 (32 zmm registers) and 14 below (16 ymm),
 * tiles as large as fit: MRW output channels x KK taps of weight-gradient accumulators (+ a
 * window of KH x MRW dy vectors and one x vector), MRD input channels x RD rows x NVI vectors of
 * data gradient and MRF output channels x RY rows x NVO vectors of forward (+ the rows' vectors;
 * RD, RY = 2 where a row is one vector, RY also where it is two of at most 3 input channels, else
 * 1). Applies to stride 1, one group, padding below the kernel size, rows of at most 16 vectors
 * and kernels whose taps and window fit the budget (3x3 and 1x1; not 5x5 or 7x7). */
typedef struct rows_geom {
    int vw, nvo, nvi, mrw, cb, mrd, mrf, ry, rd;
    size_t xrows, xpitch, drows, dpitch; /* the padded layouts, as conv_rows.cl defines them */
} rows_geom;

static int largest_divisor(int n, int cap)
{
    int m = cap < n ? cap : n;
    while (m > 1 && n % m) m--;
    return m < 1 ? 1 : m;
}

/* d needs oh and ow */
static bool rows_geom_of(const graft_context *ctx, const conv2d_desc *d, rows_geom *g)
{
    if (d->groups != 1 || d->sh != 1 || d->sw != 1 || d->ph >= d->kh || d->pw >= d->kw)
        return false;
    int vw = (int)ctx->info.vec_float;
    vw = vw >= 16 ? 16 : vw >= 8 ? 8 : 4;
    const int budget = vw >= 16 ? 28 : 14, kk = d->kh * d->kw;
    g->vw = vw;
    g->nvo = (d->ow + vw - 1) / vw;
    g->nvi = (d->w + vw - 1) / vw;
    if (g->nvo > 16 || g->nvi > 16 || kk + d->kh + 1 > budget || 2 * g->nvi > budget ||
        2 * g->nvo > budget)
        return false;
    const int wcap = (budget - 1) / (kk + d->kh); /* KK accumulators + KH window vectors each */
    g->mrw = largest_divisor(d->o, wcap < 8 ? wcap : 8);
    g->cb = largest_divisor(d->c, 8);
    g->rd = g->nvi == 1 && d->h > 1 ? 2 : 1; /* see conv_rows_dgrad */
    int dcap = budget / (g->rd * g->nvi) - 1;
    g->mrd = largest_divisor(d->c, dcap < 16 ? dcap : 16);
    /* see conv_rows_fwd; two rows also where a row is two vectors of few input channels: conv1
     * of fmnist-cnn (1 -> 32, 28x28) has 9 FMAs an output, and two rows a work-item share their
     * input rows and halve the work-items (0.48 -> 0.37 ms a batch of 64, Zen 4, AVX-512) */
    g->ry = (g->nvo == 1 || (g->nvo == 2 && d->c <= 3)) && d->oh > 1 ? 2 : 1;
    int fcap = budget / (g->ry * g->nvo) - 1;
    g->mrf = largest_divisor(d->o, fcap < 16 ? fcap : 16);
    g->xrows = (size_t)d->h + 2 * d->ph;
    /* rows rounded up to whole pairs of Winograd tile vectors (conv_rows.cl's PADQ): <= VMAX */
    const size_t q = vw >= 8 ? 16 : 8;
#define ROUNDQ(x) (((size_t)(x) + q - 1) / q * q)
    g->xpitch = ROUNDQ(g->nvo * vw) + d->kw - 1;
    size_t dt = (size_t)(d->kh - 1 - d->ph), dl = (size_t)(d->kw - 1 - d->pw);
    g->drows = (size_t)d->oh + 2 * dt;
    size_t pa = dl + (size_t)g->nvo * vw, pb = ROUNDQ(g->nvi * vw) + d->kw - 1;
#undef ROUNDQ
    g->dpitch = pa > pb ? pa : pb;
    return true;
}

/* d with its output size (oh, ow) filled in: callers pass descriptions without it. */
static conv2d_desc with_output_size(const conv2d_desc *d)
{
    conv2d_desc full = *d;
    full.oh = (d->h + 2 * d->ph - d->kh) / d->sh + 1;
    full.ow = (d->w + 2 * d->pw - d->kw) / d->sw + 1;
    return full;
}

/* ---- the wino path: the rows path with Winograd F(2x2, 3x3) forward and data gradient ----
 * WT tiles a vector (8 where the device's width is 8 or more, 16 at 16 where that idles no more
 * lanes, else 4; at 8 on a 16-lane device two samples' rows share a vector, ns = 2: fmnist-cnn's
 * 14x14 layers, whose 8-float vectors PoCL compiled to 256-bit FMAs, half Zen 5's rate, with
 * V twice as large: up to 64 KiB, the set of layers on wino unchanged); MWF / MWD output channels a
 * register block (MW x NT accumulators + NT V vectors + a broadcast within the rows budget);
 * 3x3 kernels whose padded pitches hold the tiles' loads, and private V arrays of at most 32 KiB
 * a work-item (fmnist-cnn's layers: 16-32 KiB). At 64 KiB (resnet18's 128-channel 8x8 layers)
 * the op test still passed but a training step of resnet18 on PoCL went wrong (weights 1.7e-2
 * from torchvision's step against 1e-5 with rows, test tv_resnet18), so larger layers keep rows.
 * The frame's size was not the cause: a trial that packed two tile rows a float16 and made V in
 * chunks of planes (8 KiB at the least) put wino on those layers again and the step differed by
 * the same 1.74e-2, as it did with any one of the three layers on wino alone (64 KiB, 8 tiles),
 * and not with im2col there. Only channel 32 of layer3.0.bn1 differed (its bias update 4.0e-5
 * against -4.3e-4; the other 255 within 2e-8), with the forward's loss equal to 1e-7. Most
 * likely Winograd's other rounding flips the relu after that batchnorm (batch 2, 4x4 planes) at
 * an activation next to 0, which the direct convolutions of PyTorch and rows leave on one side
 * (inferred, not seen element by element): the check is that sensitive there. */
typedef struct wino_geom {
    int wt, nto, nti, mwf, mwd;
    int ns; /* samples a vector: 2 where 8-tile rows would leave a 16-lane device half idle */
} wino_geom;

#define WINO_PRIVATE_MAX 32768
#define WINO_PAIR_PRIVATE_MAX 65536

static int wino_block(int np, int nt, int budget)
{
    int cap = (budget + 2 - nt - 1) / nt;
    return largest_divisor(np, cap < 16 ? cap : 16);
}

static bool wino_geom_of(const conv2d_desc *d, const rows_geom *g, wino_geom *w)
{
    if (d->kh != 3 || d->kw != 3) return false;
    w->wt = g->vw >= 8 ? 8 : 4;
    /* 16 where the rows of both passes leave no more lanes idle than at 8 (widths 17-32, 49-64):
     * PoCL compiles 8-float vectors to 256-bit instructions, and a CPU with 512-bit FMA units
     * (Zen 5) then runs the products at half its rate */
#define WINO_LANES(width, wt) (((width) + 2 * (wt) - 1) / (2 * (wt)) * 2 * (wt))
    if (g->vw >= 16 && WINO_LANES(d->ow, 16) <= WINO_LANES(d->ow, 8) &&
        WINO_LANES(d->w, 16) <= WINO_LANES(d->w, 8))
        w->wt = 16;
#undef WINO_LANES
    w->nto = (d->ow + 2 * w->wt - 1) / (2 * w->wt);
    w->nti = (d->w + 2 * w->wt - 1) / (2 * w->wt);
    const int budget = g->vw >= 16 ? 28 : 14;
    w->mwf = wino_block(d->o, w->nto, budget);
    w->mwd = wino_block(d->c, w->nti, budget);
    if (!(g->xpitch >= (size_t)(2 * w->wt * w->nto + 2) &&
          g->dpitch >= (size_t)(2 * w->wt * w->nti + 2)))
        return false;
    /* 8-tile rows on a 16-lane device: two samples a vector (WPAIR), where V fits in 64 KiB */
    for (w->ns = g->vw >= 16 && w->wt == 8 ? 2 : 1; w->ns >= 1; w->ns--) {
        size_t lanes = (size_t)w->wt * w->ns, cap = w->ns > 1 ? WINO_PAIR_PRIVATE_MAX
                                                              : WINO_PRIVATE_MAX;
        size_t vf = 16 * (size_t)d->c * w->nto * lanes * sizeof(float);
        size_t vd = 16 * (size_t)d->o * w->nti * lanes * sizeof(float);
        if (vf <= cap && vd <= cap) return true;
    }
    return false;
}

/* ---- the wino4 path: the forward as Winograd F(4x4, 3x3), cl/conv_wino4.cl ----
 * W4T tiles of a sample a vector (the row's tiles rounded up to 4, 8 or 16, at most the device's
 * width), W4S = width / W4T samples a vector (fmnist-cnn's 14-wide layers: 4 tiles, two samples at
 * 8 lanes, four at 16), NT4 tile vectors a row, W4G groups of W4S samples a work-item, W4M output
 * channels a register block (W4M x NT4 W4G accumulators, NT4 W4G vectors and a broadcast weight
 * in the registers' budget, the last block CO % W4M); where the padded pitch holds the last tile
 * vector's 4 W4T + 2 columns and V (36 CI NT4 W4G vectors) fits in 160 KiB (conv4 of fmnist-cnn
 * at 16 lanes: 144 KiB).
 * W4G: below 16 lanes a row of one tile vector takes two groups where V fits, so that each
 * broadcast weight feeds two vectors: 16 registers hold two vectors by six channels (12 FMAs for
 * 2 vector loads and 6 broadcasts) where one vector held one by eight (8 FMAs for 9 loads). On a
 * Zen 4 core at 8 lanes a C loop of that shape ran 101-111 GFLOP/s against 80-90 (conv4's sizes,
 * 84 against 108 in the same run), and in PoCL's code for fmnist-cnn's layers (capped at AVX2,
 * cpu-clock samples in the kernel over the same work, three runs each) conv4 took 12 % fewer,
 * conv2 1 % fewer; batch-of-64 timings moved less than this VM's noise (conv4 medians 3.78 ->
 * 3.54 ms, conv3 2.23 -> 2.08, conv2 4.75 -> 4.68). At 16 lanes (AVX-512: 32 registers, the
 * weight a broadcast operand of the FMA) two groups were 10-15 % slower, and stay one. */
typedef struct wino4_geom {
    int wt, ns, nt, ng, mw;
    int w6; /* tile rows of six output rows (F(6, 3) down the columns), the first ones */
} wino4_geom;

/* V's most bytes (private: a work-item's stack on a CPU), and with tile rows of six (48 points,
 * wino6_rows), where fmnist-cnn's conv4 needs 48 x 64 vectors of 16 lanes */
#define WINO4_PRIVATE_MAX 163840
#define WINO6_PRIVATE_MAX 196608

/* Tile rows: w6 of six output rows (8 input rows, F(6, 3): 48 points with the columns' F(4, 3))
 * from the top, then (oh - 6 w6) / 4 rounded up of four (36 points): the split with the fewest
 * products, fewer tile rows where two tie. fmnist-cnn's 14-row layers 6 + 4 + 4 (20 points down
 * a column against 24 in four rows of four, whose last half were past the output), 28 rows
 * 4 x 6 + 4 (38 against 42). Only forwards no backward follows take it (a frozen prefix, an
 * evaluation, a stem), and only their weight transform writes U's F(6x4) part (wino4_weights): a
 * training step's forward and the data gradient keep rows of four. Written by every training
 * step, those 48 points a weight had made conv4's forward 3.2 -> 3.4-3.7 ms (stop 54). Measured
 * on the Xeon VM (family 6 model 167), medians of alternating runs (docs/performance.md, stop
 * 55): capped at AVX2, kernels of a warm fmnist-feature-extract 0.826 -> 0.794 s (conv3 + conv4
 * 0.312 -> 0.286 s, the stem 0.217 -> 0.211 s), the whole transfer 1.090 -> 1.071 s, a training
 * step the same (48.11 / 48.18 ms, programs built with W6 0 and with this) and a first run on
 * empty caches 13.18 -> 13.27 s (the programs' larger code); at AVX-512 kernels 0.671 -> 0.668 s.
 * GRAFT_WINO6=0: rows of four only (to compare). */
static int wino6_rows(int oh)
{
    static int off = -1;
    if (off < 0) {
        const char *v = getenv("GRAFT_WINO6");
        off = v && strcmp(v, "0") == 0;
    }
    int best = 0, cost = 6 * ((oh + 3) / 4), rows = (oh + 3) / 4;
    for (int a = 1; !off && 6 * (a - 1) < oh; a++) {
        int b = oh > 6 * a ? (oh - 6 * a + 3) / 4 : 0, c = 8 * a + 6 * b;
        if (c < cost || (c == cost && a + b < rows)) best = a, cost = c, rows = a + b;
    }
    return best;
}

static int wino4_tile_rows(int w6, int oh)
{
    return w6 + (oh > 6 * w6 ? (oh - 6 * w6 + 3) / 4 : 0);
}

static bool wino4_geom_of(const conv2d_desc *d, const rows_geom *g, wino4_geom *w)
{
    if (d->kh != 3 || d->kw != 3) return false;
    const int lanes = g->vw, tiles = (d->ow + 3) / 4; /* g->vw: 4, 8 or 16 */
    for (w->wt = 4; w->wt < tiles && w->wt < lanes;) w->wt *= 2;
    w->ns = lanes / w->wt;
    w->nt = (d->ow + 4 * w->wt - 1) / (4 * w->wt);
    size_t v = 36 * (size_t)d->c * w->nt * lanes * sizeof(float);
    w->ng = lanes < 16 && w->nt == 1 && 2 * v <= WINO4_PRIVATE_MAX ? 2 : 1;
    /* tile rows of six where their V fits; the rest of the geometry as without them */
    w->w6 = 48 * v / 36 * w->ng <= WINO6_PRIVATE_MAX ? wino6_rows(d->oh) : 0;
    const int nv = w->nt * w->ng, budget = g->vw >= 16 ? 28 : 14, cap = (budget + 1 - nv) / nv;
    w->mw = cap < 16 ? cap : 16;
    if (w->mw > d->o) w->mw = d->o;
    return g->xpitch >= (size_t)(4 * w->wt * w->nt + 2) && v * w->ng <= WINO4_PRIVATE_MAX;
}

/* Enough channels in and out for Winograd's transforms to pay (default_path, below) */
static bool winograd_channels(const conv2d_desc *d)
{
    return d->c >= 8 && d->o >= 8;
}

/* GPUs: the implicit GEMM; CPUs: the rows path where it applies, else im2col, and Winograd on
 * the rows path's 3x3 layers of 8 channels or more in and out. With fewer (fmnist-cnn's conv1,
 * one input channel) the transforms outweigh the products it saves: its forward took 1.3 ms
 * against 0.75 on rows. On the others, forward and data gradient, Zen 4 (convbench, minimum of
 * 30): AVX-512 5.4 / 5.3 ms against 6.1 / 7.1 (32->32 at 28x28), 4.4 / 4.4 against 5.7 / 6.0
 * (64->64 at 14x14); capped at AVX2 4.8 / 5.1 against 7.4 / 8.4 and 4.0 / 4.3 against 5.5 / 5.6.
 * Where it fits they get wino4, whose forward is F(4x4) (the data gradient stays wino's F(2x2)):
 * fmnist-cnn's layers at batch 64 with the relu and pool the transfer fuses (Zen 5, best of 15,
 * each shape in a process of its own): AVX-512 1.23 / 0.65 / 1.15 ms against 1.76 / 0.74 / 1.49
 * (conv2, conv3, conv4), capped at AVX2 1.82 / 1.12 / 2.49 against 2.61 / 1.51 / 2.66. Training
 * layers took wino until stop 47; in a training step, where the pooled forward also writes y and
 * the indexes, F(4x4) measured 2.97 / 1.33 / 2.46 ms against 3.85 / 1.71 / 3.33 at AVX-512 and
 * 3.59 / 1.62 / 3.40 against 4.84 / 2.18 / 4.23 capped at AVX2 (`graft bench` of fmnist-pretrain,
 * medians of 30 steps, Zen 4; the step 36.5 -> 34.0 and 46.1 -> 41.1 ms), and a first run then
 * generates machine code for one forward kernel a layer instead of two. A wino4 layer of as many
 * channels in as out (3x3, stride 1, padding 1) also computes its data gradient with that F(4x4)
 * forward (rows_init, rows_bwd): conv2 / conv4 3.81 / 3.39 -> 2.97 / 2.65 ms at AVX-512, 4.44 /
 * 4.02 -> 3.78 / 3.21 capped at AVX2 (medians of 30, batch 64), the step 34.0 -> 32.8 and
 * 41.1 -> 37.2 ms. */
static conv_path default_path(const graft_context *ctx, const conv2d_desc *d)
{
    /* a device that ends a work-item's loops early (Mesa's llvmpipe, context.c): im2col + GEMM,
     * whose GEMM keeps within it (gemm.c); the rows and Winograd work-items walk every channel of
     * a sample range, past 65535 iterations on fmnist-cnn's 32-channel layers there (its conv
     * weights came out 10x off after three steps) */
    if (ctx->loop_limit) return CONV_IM2COL;
    if (ctx->info.type == GRAFT_DEVICE_GPU) return CONV_IGEMM;
    const conv2d_desc full = with_output_size(d);
    rows_geom g;
    wino_geom w;
    wino4_geom w4;
    if (!rows_geom_of(ctx, &full, &g)) return CONV_IM2COL;
    if (!winograd_channels(d)) return CONV_ROWS;
    if (wino4_geom_of(&full, &g, &w4)) return CONV_WINO4;
    return wino_geom_of(&full, &g, &w) ? CONV_WINO : CONV_ROWS;
}

/* The key of a layer shape's path choice on this device: the shape without the bias and the
 * epilogue (they cost the same on every path; a conv with a folded batchnorm gains a bias), and
 * the kernels' sources, so a changed kernel invalidates the choice. */
static char *path_key(graft_context *ctx, const conv2d_desc *d, size_t *len)
{
    buf b = {0};
    const char *names[] = {"conv", "conv_igemm", "conv_rows", "gemm", "gemm_tiled"};
    tune_key_begin(&b, ctx, "conv-tune 2", names, 5);
    buf_printf(&b, "conv=%d %d %d %d %d %d %d %d %d %d %d\n", d->c, d->h, d->w, d->o, d->kh, d->kw,
               d->sh, d->sw, d->ph, d->pw, d->groups);
    if (d->forward_only) buf_printf(&b, "forward only\n");
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* A stored choice: "PATH SECONDS\n". */
static bool tuned_path(graft_context *ctx, const conv2d_desc *d, conv_path *out)
{
    size_t keylen;
    char *key = path_key(ctx, d, &keylen);
    if (!key) return false;
    char text[64], name[16];
    bool have = tune_cache_text(ctx, key, keylen, text, sizeof text);
    free(key);
    double secs;
    if (!have || sscanf(text, "%15s %lf", name, &secs) != 2) return false;
    for (int p = 0; p < CONV_PATHS; p++)
        if (strcmp(name, path_names[p]) == 0) {
            *out = (conv_path)p;
            return true;
        }
    return false;
}

bool conv2d_path_store(graft_context *ctx, const conv2d_desc *d, conv_path p, double seconds)
{
    size_t keylen;
    char *key = path_key(ctx, d, &keylen);
    if (!key || p < 0 || p >= CONV_PATHS) {
        free(key);
        return false;
    }
    char text[64];
    int len = snprintf(text, sizeof text, "%s %.6f\n", path_names[p], seconds);
    bool ok = cache_put(&ctx->cache, "tune", key, keylen, text, (size_t)len, NULL) == GRAFT_OK;
    free(key);
    return ok;
}

bool conv2d_path_tuned(graft_context *ctx, const conv2d_desc *d)
{
    conv_path p;
    conv2d_desc tr = *d, fo = *d; /* both choices (a cache from before had one) */
    tr.forward_only = false;
    fo.forward_only = true;
    return tuned_path(ctx, &tr, &p) && tuned_path(ctx, &fo, &p);
}

/* GRAFT_CONV first, then the tuner's stored choice, then the device type's default. */
static conv_path path_for(graft_context *ctx, const conv2d_desc *d)
{
    conv_path p = forced_path();
    if (p != CONV_PATHS) return p;
    if (!ctx->loop_limit && tuned_path(ctx, d, &p)) return p;
    return default_path(ctx, d);
}

static void direct_options(const conv2d_desc *d, const direct_tile *t, char *buf, size_t n)
{
    char base[512];
    conv_options(d, base, sizeof base);
    snprintf(buf, n, "%s -DVW=%d -DNV=%d -DMR=%d", base, t->vw, t->nv, t->mr);
}

/* The backward data pass as a forward convolution of dy: channels and sizes swapped, stride 1,
 * padding K-1-P, no bias and no epilogue (dy arrives as the raw output's gradient). */
static conv2d_desc direct_bwd_desc(const conv2d_desc *d)
{
    conv2d_desc b = *d;
    b.c = d->o;
    b.h = d->oh;
    b.w = d->ow;
    b.o = d->c;
    b.oh = d->h;
    b.ow = d->w;
    b.ph = d->kh - 1 - d->ph;
    b.pw = d->kw - 1 - d->pw;
    b.bias = false;
    b.epi = (epilogue){0};
    return b;
}

static graft_status direct_init(graft_context *ctx, conv2d_op *op, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    /* opt-in: on PoCL's CPU device (2-core EPYC, AVX-512, fmnist-cnn batch 64) it measured
     * slower than im2col + the tuned GEMM in every layer -- forward 9.2 vs 4.6 ms (conv3), 22.9 vs
     * 13.3 ms (conv2), backward data about equal for conv2 and 20 % slower at 14x14 -- because the
     * per-(channel, ky) row copy costs as much as the few FMAs it feeds at these sizes */
    if (op->path != CONV_DIRECT || d->groups != 1 || d->sw != 1) return GRAFT_OK;
    direct_tile t;
    char opts[768];
    graft_status s;
    if (direct_tile_of(ctx, d->o, d->ow, &t)) {
        direct_options(d, &t, opts, sizeof opts);
        if ((s = kernel_get(ctx, "conv", opts, "conv2d_direct", &op->direct_fwd, e))) return s;
    }
    conv2d_desc b = direct_bwd_desc(d);
    if (d->sh == 1 && b.ph >= 0 && b.pw >= 0 && direct_tile_of(ctx, b.o, b.ow, &t)) {
        direct_options(&b, &t, opts, sizeof opts);
        if ((s = kernel_get(ctx, "conv", opts, "conv2d_direct", &op->direct_bwd, e)) ||
            (s = conv_kernel(ctx, d, "conv2d_flip", &op->flip, e)) ||
            (s = buffer_create(ctx, (size_t)d->o * d->c * d->kh * d->kw * sizeof(float),
                               &op->wflip, e)) ||
            /* zeros from the host first, as wino_u: conv2d_flip writes every entry before each
             * use, but Oclgrind took the next launch's reads of a kernel-written buffer for
             * uninitialised ones (test_conv_direct, where the allocator handed out memory no
             * host write had touched) */
            (s = zero_from_host(ctx, op->wflip,
                                (size_t)d->o * d->c * d->kh * d->kw * sizeof(float), e)))
            return s;
    }
    return GRAFT_OK;
}

static graft_status direct_run(graft_context *ctx, cl_kernel k, cl_mem x, cl_long xoff,
                               cl_long cstride, cl_long istride, cl_mem w, cl_mem b, cl_mem y, int n,
                               int rows, graft_error *e)
{
    SET_ARGS(k, 8, KARG(x), KARG(xoff), KARG(cstride), KARG(istride), KARG(w), KARG(b), KARG(y),
             KARG(n));
    size_t g = (size_t)n * rows, l = 1;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

/* dx from dy read at (cstride, istride): flip the weights, then the backward convolution. */
static graft_status direct_bwd_data(graft_context *ctx, conv2d_op *op, int n, cl_mem dy,
                                    cl_long off, cl_long cstride, cl_long istride, cl_mem w,
                                    cl_mem dx, graft_error *e)
{
    cl_kernel k = op->flip;
    SET_ARGS(k, 2, KARG(w), KARG(op->wflip));
    size_t g = (size_t)op->d.o * op->d.c * op->d.kh * op->d.kw, l = LOCAL;
    graft_status s = launch(ctx, k, 1, &g, &l, NULL, e);
    if (s) return s;
    return direct_run(ctx, op->direct_bwd, dy, off, cstride, istride, op->wflip, NULL, dx, n,
                      op->d.h, e);
}

static graft_status run1d(graft_context *ctx, cl_kernel k, size_t total, graft_error *e)
{
    size_t g = total, l = LOCAL;
    return launch(ctx, k, 1, &g, &l, NULL, e);
}

/* ---- the implicit-GEMM path, cl/conv_igemm.cl ----
 * Tiles of RM = RN = 4 per work-item and BK = 16: TX = 16 columns of work-items, TY = 16 rows, or 8
 * when the product has at most 32 rows (a 32-channel layer would leave half of a 64-row tile idle);
 * 8 x 8 where the device cannot run 128-256 work-items in a group. */
enum { IG_FWD, IG_DATA, IG_WEIGHT };

static bool ig_tile_of(const graft_context *ctx, int m, int tile[2])
{
    size_t maxwg = ctx->info.max_work_group_size;
    if (maxwg < 64) return false;
    tile[0] = 16;
    tile[1] = m <= 32 ? 8 : 16;
    if ((size_t)tile[0] * tile[1] > maxwg) tile[0] = tile[1] = 8;
    return true;
}

static graft_status ig_kernel(graft_context *ctx, const conv2d_desc *d, const int tile[2],
                              const char *name, cl_kernel *k, graft_error *e)
{
    char base[512], opts[640];
    conv_options(d, base, sizeof base);
    snprintf(opts, sizeof opts, "%s -DGR=%d -DTX=%d -DTY=%d -DRM=4 -DRN=4 -DBK=16", base,
             d->groups, tile[0], tile[1]);
    return kernel_get(ctx, "conv_igemm", opts, name, k, e);
}

static graft_status igemm_init(graft_context *ctx, conv2d_op *op, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    if (op->path != CONV_IGEMM) return GRAFT_OK;
    int m[3] = {d->o / d->groups, d->c / d->groups, d->o / d->groups};
    for (int i = 0; i < 3; i++)
        if (!ig_tile_of(ctx, m[i], op->ig_tile[i])) return GRAFT_OK;
    graft_status s;
    if ((s = ig_kernel(ctx, d, op->ig_tile[IG_FWD], "conv_ig_fwd", &op->ig_fwd, e)) ||
        (s = ig_kernel(ctx, d, op->ig_tile[IG_DATA], "conv_ig_bwd_data", &op->ig_data, e)) ||
        (s = ig_kernel(ctx, d, op->ig_tile[IG_WEIGHT], "conv_ig_bwd_weight", &op->ig_weight, e)) ||
        (s = ig_kernel(ctx, d, op->ig_tile[IG_WEIGHT], "conv_ig_reduce", &op->ig_reduce, e)))
        op->ig_fwd = op->ig_data = op->ig_weight = op->ig_reduce = NULL;
    return s;
}

/* The grid of an m x ncols product over groups (times splits): whole work-groups. */
static graft_status ig_launch(graft_context *ctx, cl_kernel k, const int tile[2], size_t m,
                              size_t ncols, size_t depth, graft_error *e)
{
    size_t bm = (size_t)tile[1] * 4, bn = (size_t)tile[0] * 4;
    size_t g[3] = {(ncols + bn - 1) / bn * tile[0], (m + bm - 1) / bm * tile[1], depth};
    size_t l[3] = {(size_t)tile[0], (size_t)tile[1], 1};
    return launch(ctx, k, 3, g, l, NULL, e);
}

/* The forward and backward-data kernels' arguments: four buffers and the batch size. */
static void ig_args(cl_kernel k, cl_mem a0, cl_mem a1, cl_mem a2, cl_mem a3, int n)
{
    cl_mem m[4] = {a0, a1, a2, a3};
    for (cl_uint i = 0; i < 4; i++) kernel_arg(k, i, sizeof(cl_mem), &m[i]);
    kernel_arg(k, 4, sizeof n, &n);
}

static graft_status ig_fwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem w, cl_mem b,
                           cl_mem y, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    cl_kernel k = op->ig_fwd;
    ig_args(k, x, w, b, y, n);
    return ig_launch(ctx, k, op->ig_tile[IG_FWD], (size_t)(d->o / d->groups),
                     (size_t)n * d->oh * d->ow, (size_t)d->groups, e);
}

static graft_status ig_data(graft_context *ctx, conv2d_op *op, int n, cl_mem dy, cl_mem y, cl_mem w,
                            cl_mem dx, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    cl_kernel k = op->ig_data;
    ig_args(k, dy, y, w, dx, n);
    return ig_launch(ctx, k, op->ig_tile[IG_DATA], (size_t)(d->c / d->groups),
                     (size_t)n * d->h * d->w, (size_t)d->groups, e);
}

/* The size of a workspace buffer (0: none): what the passes below may use of it. */
static size_t mem_bytes(cl_mem m)
{
    size_t bytes = 0;
    if (m && clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS)
        bytes = 0;
    return bytes;
}

/* The weight gradient's K = n*P split into S ranges so that small weight tensors still give a GPU
 * enough work-groups (about 4 per compute unit, each range at least 256 long); the partial
 * products go to ws, so S is also capped by what ws holds (none: S = 1). GRAFT_IGEMM_SPLIT=S
 * forces a split (tests: the reduction on a CPU device). */
static int ig_splits(const graft_context *ctx, const conv2d_desc *d, const int t[2], int n,
                     size_t ncols, size_t ws_floats, int *kc)
{
    size_t np = (size_t)n * d->oh * d->ow;
    size_t tiles = ((size_t)(d->o / d->groups) + t[1] * 4 - 1) / (t[1] * 4) *
                   ((ncols + t[0] * 4 - 1) / (t[0] * 4)) * d->groups;
    size_t want = 4 * (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 1);
    size_t s = want > tiles ? (want + tiles - 1) / tiles : 1;
    if (s > np / 256) s = np / 256;
    const char *f = getenv("GRAFT_IGEMM_SPLIT");
    if (f && *f) s = (size_t)strtol(f, NULL, 10);
    if (s > (np + 15) / 16) s = (np + 15) / 16;
    if (s * d->o * ncols > ws_floats) s = ws_floats / ((size_t)d->o * ncols);
    if (s < 1) s = 1;
    size_t c = (np + s - 1) / s;
    c = (c + 15) / 16 * 16;
    *kc = (int)c;
    return (int)((np + c - 1) / c);
}

static graft_status ig_weight(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem dy,
                              cl_mem y, cl_mem dw, cl_mem db, cl_mem ws, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    int cgkk = d->c / d->groups * d->kh * d->kw, ncols = cgkk + (db ? 1 : 0), kc;
    int S = ig_splits(ctx, d, op->ig_tile[IG_WEIGHT], n, (size_t)ncols,
                      mem_bytes(ws) / sizeof(float), &kc);
    cl_mem part = S > 1 ? ws : NULL;
    cl_kernel k = op->ig_weight;
    SET_ARGS(k, 10, KARG(x), KARG(dy), KARG(y), KARG(dw), KARG(db), KARG(part), KARG(n), KARG(S),
             KARG(kc), KARG(ncols));
    graft_status st = ig_launch(ctx, k, op->ig_tile[IG_WEIGHT], (size_t)(d->o / d->groups),
                                (size_t)ncols, (size_t)d->groups * S, e);
    if (st || S == 1) return st;
    k = op->ig_reduce;
    SET_ARGS(k, 5, KARG(part), KARG(dw), KARG(db), KARG(S), KARG(ncols));
    return run1d(ctx, k, (size_t)d->o * ncols, e);
}


/* The weight gradient's sample ranges: enough (range, channel block) work-items to keep every
 * compute unit busy (32 per unit) while each range's x planes stay in cache. */
static int rows_splits(const graft_context *ctx, const conv2d_desc *d, const rows_geom *g, int n)
{
    int blocks = d->c / g->cb, cu = ctx->info.compute_units ? (int)ctx->info.compute_units : 1;
    int s = (32 * cu + blocks - 1) / blocks;
    return s < 1 ? 1 : s > n ? n : s;
}

/* Floats of the padded x of a batch of n (in ws, or the kept copy). */
static size_t rows_xp_floats(const conv2d_desc *d, const rows_geom *g, int n)
{
    return (size_t)n * d->c * g->xrows * g->xpitch;
}

/* Floats of ws the rows backward uses for a batch of n: xp, dp, then the S partials. */
static void rows_layout(const graft_context *ctx, const conv2d_desc *d, const rows_geom *g, int n,
                        size_t *xpo, size_t *dpo, size_t *parto, size_t *total)
{
    size_t xp = rows_xp_floats(d, g, n);
    size_t dp = (size_t)n * d->o * g->drows * g->dpitch;
    size_t nw = (size_t)d->o * d->c * d->kh * d->kw + d->o;
    *xpo = 0;
    *dpo = xp;
    *parto = xp + dp;
    *total = xp + dp + (size_t)rows_splits(ctx, d, g, n) * nw;
}

/* Whether rows_geom_of could accept d on some device; VMAX: the most floats a row's last vector
 * can run past it (VW 16), for the bounds below. */
#define VMAX 15
static bool rows_may_apply(const conv2d_desc *d, int n)
{
    return d->groups == 1 && d->sh == 1 && d->sw == 1 && d->ph < d->kh && d->pw < d->kw &&
           d->kh * d->kw + d->kh + 1 <= 28 && d->ow <= 256 && d->w <= 256 && n >= 1;
}

/* rows_xp_floats over every vector width (d needs oh and ow) */
static size_t rows_xp_bound(const conv2d_desc *d, int n)
{
    return (size_t)n * d->c * (d->h + 2 * d->ph) * (d->ow + VMAX + d->kw - 1);
}

/* rows_layout's total over every device rows_geom_of accepts (any VW, S <= n), in bytes; 0 where
 * the rows path cannot apply: the workspace is sized before a device picks a path. */
static size_t rows_workspace_bound(const conv2d_desc *d, int n)
{
    if (!rows_may_apply(d, n)) return 0;
    size_t vmax = VMAX, dt = (size_t)(d->kh - 1 - d->ph), dl = (size_t)(d->kw - 1 - d->pw);
    size_t xp = rows_xp_bound(d, n);
    size_t pa = dl + d->ow + vmax, pb = d->w + vmax + d->kw - 1;
    size_t dp = (size_t)n * d->o * (d->oh + 2 * dt) * (pa > pb ? pa : pb);
    size_t part = (size_t)n * ((size_t)d->o * d->c * d->kh * d->kw + d->o);
    return (xp + dp + part) * sizeof(float);
}

size_t conv2d_keep_bytes(const conv2d_desc *d, int n)
{
    const conv2d_desc full = with_output_size(d);
    return rows_may_apply(&full, n) ? rows_xp_bound(&full, n) * sizeof(float) : 0;
}

graft_status conv2d_keep_input(graft_context *ctx, conv2d_op *op, int n, graft_error *e)
{
    rows_geom g;
    if (!(op->rk & RK_PAD_X) || n < 1 || !rows_geom_of(ctx, &op->d, &g) || n <= op->keep_cap)
        return GRAFT_OK;
    if (op->keep) clReleaseMemObject(op->keep);
    op->keep = op->keep_x = NULL;
    op->keep_cap = op->keep_n = 0;
    size_t bytes = rows_xp_floats(&op->d, &g, n) * sizeof(float);
    /* zeros from the host, for Oclgrind (see zero_from_host): the forward writes it all */
    graft_status s = buffer_create(ctx, bytes, &op->keep, e);
    if (!s) s = zero_from_host(ctx, op->keep, bytes, e);
    if (!s) op->keep_cap = n;
    return s;
}

/* The options of a rows, wino or wino4 layer's conv_rows.cl program (all three paths share it,
 * see rows_init); false where d is on none of them. geom4/wino: where wino4's and wino's code go
 * in, w4 wino4's geometry. */
static bool rows_options(const graft_context *ctx, const conv2d_desc *d, conv_path path,
                         char *opts, size_t n, bool *geom4, bool *wino, wino4_geom *w4)
{
    rows_geom g;
    wino_geom w;
    if ((path != CONV_ROWS && path != CONV_WINO && path != CONV_WINO4) ||
        !rows_geom_of(ctx, d, &g))
        return false;
    *geom4 = wino4_geom_of(d, &g, w4);
    const bool wino4 = path == CONV_WINO4 && *geom4;
    const bool code4 = *geom4 && (wino4 || winograd_channels(d));
    *wino = (path == CONV_WINO || wino4) && wino_geom_of(d, &g, &w);
    char base[512], wo[96] = "", wo4[96] = "";
    /* built as the layer with the next batchnorm folded in would be (conv2d_desc.fold_ready) */
    conv_options_as(d, d->epi.kind || !d->fold_ready ? &d->epi : &d->epi_build,
                    d->bias || d->fold_ready, base, sizeof base);
    if (*wino)
        snprintf(wo, sizeof wo, " -DWINO=1 -DWT=%d -DMWF=%d -DMWD=%d -DWPAIR=%d", w.wt, w.mwf,
                 w.mwd, w.ns > 1);
    if (code4)
        snprintf(wo4, sizeof wo4,
                 " -DWINO4=1 -DW4T=%d -DW4S=%d -DW4L=%d -DW4G=%d -DW4M=%d -DW6=%d", w4->wt,
                 w4->ns, w4->wt * w4->ns, w4->ng, w4->mw, w4->w6);
    snprintf(opts, n,
             "%s -DVW=%d -DNVO=%d -DNVI=%d -DMRW=%d -DCB=%d -DMRD=%d -DMRF=%d -DRY=%d -DRD=%d%s%s",
             base, g.vw, g.nvo, g.nvi, g.mrw, g.cb, g.mrd, g.mrf, g.ry, g.rd, wo, wo4);
    return true;
}

static graft_status rows_build(graft_context *ctx, conv2d_op *op, graft_error *e);

static graft_status rows_init(graft_context *ctx, conv2d_op *op, bool lazy, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    wino4_geom w4 = {0};
    bool geom4 = false, wino = false;
    char opts[768];
    /* wino4: F(4x4) forward, F(2x2) data gradient where that fits, else the rows one. The F(4x4)
     * code goes into every program of a layer that runs on it when no backward follows (8+
     * channels in and out, default_path), whichever path this op takes, so that an evaluation or
     * a frozen-prefix transfer after a training builds no program of its own (test_fusion.sh).
     * It costs each build ~0.15 s (fmnist-cnn's conv2: 0.15 -> 0.30 s, PoCL on Zen 5). A
     * training op runs it too, for the forwards marked fwd_only (its evaluations): PoCL generates
     * a kernel's machine code at its first launch (0.6-0.75 s for conv_wino4_fwd, Zen 4), and so
     * the training run pays that, not the transfer after it (fmnist-feature-extract after a cold
     * pretraining: 3.1-3.3 s -> 1.3-1.6 s; the pretraining 9.5-9.8 -> 10.5-11.6 s). */
    if (!rows_options(ctx, d, op->path, opts, sizeof opts, &geom4, &wino, &w4)) return GRAFT_OK;
    rows_geom g;
    wino_geom w = {0};
    rows_geom_of(ctx, d, &g);
    if (wino) wino_geom_of(d, &g, &w);
    const bool wino4 = op->path == CONV_WINO4 && geom4;
    const bool code4 = geom4 && (wino4 || winograd_channels(d));
    const size_t ubytes = 16 * (size_t)d->o * d->c * sizeof(float); /* wino_u */
    /* U of the F(4x4) tile rows (the data gradient's: only those), then of the F(6x4) ones */
    const size_t u4bytes = 36 * (size_t)d->o * d->c * sizeof(float),
                 u6bytes = (w4.w6 ? 84 : 36) * (size_t)d->o * d->c * sizeof(float);
    graft_status s;
    unsigned rk = RK_PAD_X | RK_PAD_DY | RK_WGRAD | RK_WSUM;
    if (code4) {
        rk |= RK_W4 | (wino4 && !wino ? RK_PAD_DY_POOL : 0);
        if ((s = buffer_create(ctx, u6bytes, &op->wino4_u, e)) ||
            (s = zero_from_host(ctx, op->wino4_u, u6bytes, e)))
            return s;
    }
    /* wino4's data gradient as its F(4x4) forward where the padded dy has xp's layout and the
     * channel counts match (conv_wino4.cl's conv_wino4_wtd); the F(2x2) one is then not built,
     * nor its weights' buffer */
    const bool wtd = wino4 && d->c == d->o && d->groups == 1 && d->sh == 1 && d->sw == 1 &&
                     d->ph == 1 && d->pw == 1 && g.dpitch == g.xpitch && g.drows == g.xrows;
    if (wtd) {
        rk |= RK_W4D;
        if ((s = buffer_create(ctx, u4bytes, &op->wino4_ud, e)) ||
            (s = zero_from_host(ctx, op->wino4_ud, u4bytes, e)))
            return s;
    }
    if (code4) op->wino4_ns = w4.ns, op->wino4_ng = w4.ng, op->wino4_w6 = w4.w6;
    if (wino) {
        rk |= RK_PAD_DY_POOL;
        if (!wtd) {
            rk |= RK_WINO_WT | (!wino4 ? RK_WINO_FWD : 0) | RK_WINO_DGRAD;
            /* zeros from the host first, as op->keep: conv_wino_wt writes every entry before
             * each pass (a missed one would fail the op tests), yet at 4 lanes Oclgrind's
             * checker took the passes' reads of it for uninitialised values until the host had
             * written it */
            if ((s = buffer_create(ctx, ubytes, &op->wino_u, e)) ||
                (s = zero_from_host(ctx, op->wino_u, ubytes, e)))
                return s;
        }
        op->wino_tiles = w.wt;
        op->wino_ns = w.ns;
    } else {
        rk |= (!wino4 ? RK_ROWS_FWD : 0) | RK_ROWS_DGRAD;
    }
    op->rk = rk;
    snprintf(op->rows_opts, sizeof op->rows_opts, "%s", opts);
    return lazy ? GRAFT_OK : rows_build(ctx, op, e);
}

/* The kernels op->rk names, from the program of op->rows_opts: at op_init_path, or (lazy) before
 * the first pass that runs one, so that an evaluation in which a layer only ever runs inside
 * another's forward (conv2d_fwd_stem) builds no program of its own for it. */
static graft_status rows_build(graft_context *ctx, conv2d_op *op, graft_error *e)
{
    if (op->rows_pad_x || !op->rk) return GRAFT_OK; /* built (every rk has RK_PAD_X), or none */
    static const struct {
        unsigned bit;
        const char *name;
        size_t at;
    } all[] = {
        {RK_PAD_X, "conv_rows_pad_x", offsetof(conv2d_op, rows_pad_x)},
        {RK_PAD_DY, "conv_rows_pad_dy", offsetof(conv2d_op, rows_pad_dy)},
        {RK_WGRAD, "conv_rows_wgrad", offsetof(conv2d_op, rows_wgrad)},
        {RK_WSUM, "conv_rows_wsum", offsetof(conv2d_op, rows_wsum)},
        {RK_W4, "conv_wino4_wt", offsetof(conv2d_op, wino4_wt)},
        {RK_W4, "conv_wino4_fwd", offsetof(conv2d_op, wino4_fwd)},
        {RK_W4D, "conv_wino4_wtd", offsetof(conv2d_op, wino4_wtd)},
        {RK_PAD_DY_POOL, "conv_rows_pad_dy_pool", offsetof(conv2d_op, rows_pad_dy_pool)},
        {RK_WINO_WT, "conv_wino_wt", offsetof(conv2d_op, wino_wt)},
        {RK_WINO_FWD, "conv_wino_fwd", offsetof(conv2d_op, wino_fwd)},
        {RK_WINO_DGRAD, "conv_wino_dgrad", offsetof(conv2d_op, wino_dgrad)},
        {RK_ROWS_FWD, "conv_rows_fwd", offsetof(conv2d_op, rows_fwd)},
        {RK_ROWS_DGRAD, "conv_rows_dgrad", offsetof(conv2d_op, rows_dgrad)},
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (!(op->rk & all[i].bit)) continue;
        cl_kernel *k = (cl_kernel *)((char *)op + all[i].at);
        graft_status s = kernel_get(ctx, "conv_rows", op->rows_opts, all[i].name, k, e);
        if (s) {
            for (size_t j = 0; j <= i; j++) *(cl_kernel *)((char *)op + all[j].at) = NULL;
            return s;
        }
    }
    return GRAFT_OK;
}

/* conv_rows.cl's `flags` argument: its FLAG_EPI, FLAG_BIAS, FLAG_POOL */
enum { ROWS_FLAG_EPI = 1, ROWS_FLAG_BIAS = 2, ROWS_FLAG_POOL = 4, ROWS_FLAG_POOL_ONLY = 8 };

/* xp (in ws, at xpo) from samples 0 .. n-1 of x */
static graft_status rows_pad_x(graft_context *ctx, conv2d_op *op, const rows_geom *g, int n,
                               cl_mem x, cl_mem ws, cl_long xpo, graft_error *e)
{
    cl_kernel k = op->rows_pad_x;
    SET_ARGS(k, 4, KARG(x), KARG(ws), KARG(xpo), KARG(n));
    return run1d(ctx, k, (size_t)n * op->d.c * g->xrows, e);
}

/* The F(2x2) Winograd weights wino_u from w (conv_wino_wt): before each pass, since the optimizer
 * rewrites w in place; once while w is the same buffer when the caller keeps it constant
 * (w_const), wino_u_of remembering which. */
static graft_status wino_weights(graft_context *ctx, conv2d_op *op, cl_mem w, graft_error *e)
{
    if (op->w_const && op->wino_u_of == w) return GRAFT_OK;
    op->wino_u_of = NULL;
    cl_kernel k = op->wino_wt;
    SET_ARGS(k, 2, KARG(w), KARG(op->wino_u));
    graft_status s = run1d(ctx, k, (size_t)op->d.o * op->d.c, e);
    if (!s && op->w_const) op->wino_u_of = w;
    return s;
}

/* wino4_u from w with k (conv_wino4_wt, or the stem program's) as wino_weights, with the F(6x4)
 * part of tile rows of six only where the forward takes them (six): written by every training
 * step, those 48 points slowed its forward (see wino6_rows). */
static graft_status wino4_weights(graft_context *ctx, conv2d_op *op, cl_kernel k, cl_mem w,
                                  bool six, graft_error *e)
{
    if (op->w_const && op->wino4_u_of == w && (op->wino4_u_six || !six)) return GRAFT_OK;
    op->wino4_u_of = NULL;
    const cl_int asked = six;
    SET_ARGS(k, 3, KARG(w), KARG(op->wino4_u), KARG(asked));
    graft_status s = run1d(ctx, k, (size_t)op->d.o * op->d.c, e);
    if (!s && op->w_const) op->wino4_u_of = w, op->wino4_u_six = six;
    return s;
}

/* the wino4 path's op: F(4x4) for every forward (else only for fwd_only ones) */
static bool wino4_only(const conv2d_op *op)
{
    return (op->rk & RK_W4) && !(op->rk & (RK_WINO_FWD | RK_ROWS_FWD));
}

/* conv_rows.cl's flags for a forward writing y and/or the pool's yp (yp alone: no indexes), and
 * the final output's layout: dense, or out's (then *y or *yp becomes out's buffer) */
static int rows_output(const conv2d_op *op, const conv2d_xpad *out, cl_mem *y, cl_mem *yp,
                       cl_long *yo, cl_int *yrows, cl_int *ypitch)
{
    const int flags = (op->d.epi.kind ? ROWS_FLAG_EPI : 0) | (op->d.bias ? ROWS_FLAG_BIAS : 0) |
                      (*yp ? ROWS_FLAG_POOL : 0) | (*yp && !*y ? ROWS_FLAG_POOL_ONLY : 0);
    *yo = out ? out->off : 0;
    *yrows = out ? out->rows : *yp ? op->d.oh / 2 : op->d.oh;
    *ypitch = out ? out->pitch : *yp ? op->d.ow / 2 : op->d.ow;
    if (out && *yp) *yp = out->buf;
    else if (out) *y = out->buf;
    return flags;
}

/* conv_wino4_fwd's (and conv_wino4_stem's) work-items for n samples of `rows` output rows, w6
 * tile rows of them six rows */
static size_t wino4_items(const conv2d_op *op, int n, int rows, int w6)
{
    const int per = op->wino4_ns * op->wino4_ng; /* samples a work-item */
    return (size_t)(n + per - 1) / per * (size_t)wino4_tile_rows(w6, rows);
}

/* xin: x is already in this layer's padded layout there (no padding pass); out: the output (the
 * pool's with yp) goes into that layout (another conv's padded input) instead of y (or yp) */
static graft_status rows_fwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x,
                             const conv2d_xpad *xin, cl_mem w, cl_mem b, cl_mem y, cl_mem yp,
                             cl_mem ip, const conv2d_xpad *out, cl_mem ws, graft_error *e)
{
    graft_status st = rows_build(ctx, op, e);
    if (st) return st;
    rows_geom g;
    rows_geom_of(ctx, &op->d, &g);
    size_t xp = rows_xp_floats(&op->d, &g, n);
    /* into the kept copy when there is one (a training layer): its backward reads it there */
    cl_mem xs = xin ? xin->buf : op->keep && n <= op->keep_cap ? op->keep : ws;
    op->keep_x = NULL;
    if (!xs || (xs == ws && xp * sizeof(float) > mem_bytes(ws)))
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d rows: workspace of %zu floats too small",
                       xp);
    cl_long xpo = 0;
    st = xin ? GRAFT_OK : rows_pad_x(ctx, op, &g, n, x, xs, xpo, e);
    if (st) return st;
    if (xs == op->keep) {
        op->keep_x = x;
        op->keep_n = n;
    }
    cl_long yo;
    cl_int yrows, ypitch;
    const int flags = rows_output(op, out, &y, &yp, &yo, &yrows, &ypitch);
    if (op->wino4_fwd && (op->fwd_only || wino4_only(op))) {
        const cl_int w6 = op->fwd_only ? op->wino4_w6 : 0; /* see wino6_rows */
        if ((st = wino4_weights(ctx, op, op->wino4_wt, w, w6 > 0, e))) return st;
        cl_kernel k = op->wino4_fwd;
        SET_ARGS(k, 13, KARG(xs), KARG(xpo), KARG(op->wino4_u), KARG(b), KARG(y), KARG(yp),
                 KARG(ip), KARG(n), KARG(flags), KARG(yo), KARG(yrows), KARG(ypitch), KARG(w6));
        size_t gs = wino4_items(op, n, op->d.oh, w6), ls = 1;
        return launch(ctx, k, 1, &gs, &ls, NULL, e);
    }
    if (op->wino_fwd) {
        if ((st = wino_weights(ctx, op, w, e))) return st;
        cl_kernel k = op->wino_fwd;
        SET_ARGS(k, 12, KARG(xs), KARG(xpo), KARG(op->wino_u), KARG(b), KARG(y), KARG(yp),
                 KARG(ip), KARG(n), KARG(flags), KARG(yo), KARG(yrows), KARG(ypitch));
        size_t gs = (size_t)(n + op->wino_ns - 1) / op->wino_ns * ((op->d.oh + 1) / 2), ls = 1;
        return launch(ctx, k, 1, &gs, &ls, NULL, e);
    }
    cl_kernel k = op->rows_fwd;
    SET_ARGS(k, 10, KARG(xs), KARG(xpo), KARG(w), KARG(b), KARG(y), KARG(n), KARG(flags),
             KARG(yo), KARG(yrows), KARG(ypitch));
    size_t gs = (size_t)n * ((op->d.oh + g.ry - 1) / g.ry), ls = 1;
    return launch(ctx, k, 1, &gs, &ls, NULL, e);
}

static graft_status op_init_path(graft_context *ctx, conv2d_op *op, const conv2d_desc *d,
                                 conv_path path, bool lazy, graft_error *e);

/* The stem (conv_wino4.cl's conv_wino4_stem): where op runs its forward on F(4x4) and stem is
 * a layer on the rows path whose output is op's input, 3x3, stride 1, padding 1, one group, at
 * most CONV2D_STEM_MAX_C channels in (more would cost op's transform more than the pass saves),
 * with an activation of epilogue.cl's vector kinds. Its program: op's with the stem's options. */
graft_status conv2d_stem_init(graft_context *ctx, conv2d_op *op, conv2d_op *stem, bool *fits,
                              graft_error *e)
{
    const conv2d_desc *d = &op->d, *sd = &stem->d;
    *fits = false;
    op->wino4_stem = NULL;
    char opts[sizeof op->rows_opts + 128];
    if (!(op->rk & RK_W4) || sd->kh != 3 || sd->kw != 3 || sd->sh != 1 || sd->sw != 1 ||
        sd->ph != 1 || sd->pw != 1 || sd->groups != 1 || sd->c > CONV2D_STEM_MAX_C ||
        sd->o != d->c || sd->h != d->h || sd->w != d->w || sd->epi.kind > 3)
        return GRAFT_OK;
    /* The stem's own path does not matter where op computes it: a path tuned for the layer alone
     * (GRAFT_CONV or `graft tune`: fmnist-cnn's conv1 forward on F(2x2), 7 % ahead of rows on
     * an Intel Xeon) kept the pair apart, and its pass and op's padding pass then cost the
     * transfer ~5 %. It moves to the rows path, made lazily (built only if a pass of its own
     * runs: a scan, GRAFT_STEM=0), which the stem's code reproduces to the bit. */
    if (stem->path != CONV_ROWS) {
        conv2d_op rows;
        graft_status s = op_init_path(ctx, &rows, sd, CONV_ROWS, true, e);
        if (s) return s;
        if (!(rows.rk & RK_ROWS_FWD)) { /* not a rows shape */
            conv2d_op_free(&rows);
            return GRAFT_OK;
        }
        rows.w_const = stem->w_const;
        rows.fwd_only = stem->fwd_only;
        conv2d_op_free(stem);
        *stem = rows;
        sd = &stem->d;
    } else if (!(stem->rk & RK_ROWS_FWD)) {
        return GRAFT_OK; /* a rows op without the rows forward: remade, it would lack it too */
    }
    /* the reader's program options (rows_init; RK_W4: its F(4x4) geometry is in them) */
    snprintf(opts, sizeof opts, "%s -DW4STEM=1 -DSCI=%d -DSEPI=%d -DSEPI_SLOPE=%.9ef",
             op->rows_opts, sd->c, sd->epi.kind, (double)sd->epi.slope);
    graft_status s = kernel_get(ctx, "conv_rows", opts, "conv_wino4_stem", &op->wino4_stem, e);
    if (!s) s = kernel_get(ctx, "conv_rows", opts, "conv_wino4_wt", &op->wino4_stem_wt, e);
    if (s) {
        op->wino4_stem = op->wino4_stem_wt = NULL;
        return s;
    }
    op->stem_flags = (sd->epi.kind ? ROWS_FLAG_EPI : 0) | (sd->bias ? ROWS_FLAG_BIAS : 0);
    *fits = true;
    return GRAFT_OK;
}

graft_status conv2d_fwd_stem(graft_context *ctx, conv2d_op *op, int n, cl_mem sx, cl_mem sw,
                             cl_mem sb, cl_mem w, cl_mem b, cl_mem y, cl_mem yp,
                             const conv2d_xpad *out, graft_error *e)
{
    if (!op->wino4_stem || n < 1 || (yp && !conv2d_can_pool(op)) ||
        (out && (!out->buf || out->rows < (yp ? op->d.oh / 2 : op->d.oh) ||
                 out->pitch < (yp ? op->d.ow / 2 : op->d.ow))))
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_fwd_stem: batch count %d, path %s", n,
                       conv2d_path_name(op->path));
    const cl_int w6 = op->wino4_w6; /* no backward follows a stem */
    graft_status st = wino4_weights(ctx, op, op->wino4_stem_wt, w, w6 > 0, e);
    if (st) return st;
    if (yp) y = NULL; /* the pool's output alone: no backward follows */
    cl_long yo;
    cl_int yrows, ypitch;
    const int flags = rows_output(op, out, &y, &yp, &yo, &yrows, &ypitch);
    cl_mem none = NULL;
    cl_kernel k = op->wino4_stem;
    SET_ARGS(k, 15, KARG(sx), KARG(sw), KARG(sb), KARG(op->stem_flags), KARG(op->wino4_u),
             KARG(b), KARG(y), KARG(yp), KARG(none), KARG(n), KARG(flags), KARG(yo), KARG(yrows),
             KARG(ypitch), KARG(w6));
    size_t gs = wino4_items(op, n, op->d.oh, w6), ls = 1;
    return launch(ctx, k, 1, &gs, &ls, NULL, e);
}

bool conv2d_xpad_layout(graft_context *ctx, const conv2d_op *op, int n, conv2d_xpad *out)
{
    rows_geom g;
    if (!(op->rk & RK_PAD_X) || n < 1 || !rows_geom_of(ctx, &op->d, &g)) return false;
    *out = (conv2d_xpad){.buf = NULL,
                         .off = (long)op->d.ph * (long)g.xpitch + op->d.pw,
                         .rows = (int)g.xrows,
                         .pitch = (int)g.xpitch,
                         .bytes = rows_xp_floats(&op->d, &g, n) * sizeof(float)};
    return true;
}

graft_status conv2d_fwd_io(graft_context *ctx, conv2d_op *op, int n, cl_mem x,
                           const conv2d_xpad *xin, cl_mem w, cl_mem b, cl_mem y, cl_mem yp,
                           cl_mem ip, const conv2d_xpad *out, cl_mem ws, graft_error *e)
{
    const conv2d_desc *d = &op->d;
    conv2d_xpad own;
    if (n < 1 || !(op->rk & RK_PAD_X) || (yp && (!conv2d_can_pool(op) || !y != !ip)) ||
        (xin && (!conv2d_xpad_layout(ctx, op, n, &own) || !xin->buf || xin->off != own.off ||
                 xin->rows != own.rows || xin->pitch != own.pitch || xin->bytes < own.bytes)) ||
        (out && (!out->buf || out->rows < (yp ? d->oh / 2 : d->oh) ||
                 out->pitch < (yp ? d->ow / 2 : d->ow))))
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_fwd_io: batch count %d, path %s", n,
                       conv2d_path_name(op->path));
    return rows_fwd(ctx, op, n, x, xin, w, b, y, yp, ip, out, ws, e);
}

/* ip: dy is a fused 2x2 max-pool's gradient, ip its indexes (conv2d_bwd_pool) */
static graft_status rows_bwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem y,
                             cl_mem dy, cl_mem ip, cl_mem w, cl_mem dx, cl_mem dw, cl_mem db,
                             cl_mem ws, graft_error *e)
{
    graft_status st = rows_build(ctx, op, e);
    if (st) return st;
    const conv2d_desc *d = &op->d;
    rows_geom g;
    rows_geom_of(ctx, d, &g);
    size_t xpo_, dpo_, parto_, total;
    rows_layout(ctx, d, &g, n, &xpo_, &dpo_, &parto_, &total);
    if (!ws || total * sizeof(float) > mem_bytes(ws))
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d rows: workspace of %zu floats too small",
                       total);
    cl_long xpo = (cl_long)xpo_, dpo = (cl_long)dpo_, parto = (cl_long)parto_;
    cl_kernel k = op->rows_pad_dy;
    const int flags = d->epi.kind ? ROWS_FLAG_EPI : 0;
    if (ip) {
        k = op->rows_pad_dy_pool;
        SET_ARGS(k, 7, KARG(dy), KARG(ip), KARG(y), KARG(ws), KARG(dpo), KARG(n), KARG(flags));
    } else {
        SET_ARGS(k, 6, KARG(dy), KARG(y), KARG(ws), KARG(dpo), KARG(n), KARG(flags));
    }
    if ((st = run1d(ctx, k, (size_t)n * d->o * g.drows, e))) return st;
    if (dw || db) {
        /* x as the forward padded it, when it kept that copy for this x and batch; else again */
        cl_mem xs = ws;
        if (op->keep && op->keep_x == x && op->keep_n == n) {
            xs = op->keep;
            xpo = 0;
        } else if ((st = rows_pad_x(ctx, op, &g, n, x, ws, xpo, e))) {
            return st;
        }
        int S = rows_splits(ctx, d, &g, n);
        k = op->rows_wgrad;
        SET_ARGS(k, 7, KARG(xs), KARG(xpo), KARG(ws), KARG(dpo), KARG(parto), KARG(n), KARG(S));
        size_t gs = (size_t)S * (d->c / g.cb), ls = 1;
        if ((st = launch(ctx, k, 1, &gs, &ls, NULL, e))) return st;
        int nw = d->o * d->c * d->kh * d->kw, lo = dw ? 0 : nw, hi = db ? nw + d->o : nw;
        k = op->rows_wsum;
        SET_ARGS(k, 7, KARG(ws), KARG(parto), KARG(dw), KARG(db), KARG(S), KARG(lo), KARG(hi));
        if ((st = run1d(ctx, k, (size_t)(hi - lo), e))) return st;
    }
    if (!dx) return GRAFT_OK;
    if (op->wino4_wtd) {
        /* F(4x4): dx is the forward of dp (xp's layout: DROWS = XROWS, DPITCH = XPITCH at 3x3,
         * stride 1, padding 1) with the turned, transposed weights, no bias, activation or pool */
        k = op->wino4_wtd;
        SET_ARGS(k, 2, KARG(w), KARG(op->wino4_ud));
        if ((st = run1d(ctx, k, (size_t)d->o * d->c, e))) return st;
        const cl_mem none = NULL;
        const cl_int flags0 = 0, rows = d->h, pitch = d->w, w6 = 0; /* see wino6_rows */
        const cl_long at = 0;
        k = op->wino4_fwd;
        SET_ARGS(k, 13, KARG(ws), KARG(dpo), KARG(op->wino4_ud), KARG(none), KARG(dx), KARG(none),
                 KARG(none), KARG(n), KARG(flags0), KARG(at), KARG(rows), KARG(pitch), KARG(w6));
        size_t gs = wino4_items(op, n, d->h, w6), ls = 1;
        return launch(ctx, k, 1, &gs, &ls, NULL, e);
    }
    if (op->wino_dgrad) {
        if ((st = wino_weights(ctx, op, w, e))) return st;
        k = op->wino_dgrad;
        SET_ARGS(k, 5, KARG(ws), KARG(dpo), KARG(op->wino_u), KARG(dx), KARG(n));
        size_t gs = (size_t)(n + op->wino_ns - 1) / op->wino_ns * ((d->h + 1) / 2), ls = 1;
        return launch(ctx, k, 1, &gs, &ls, NULL, e);
    }
    k = op->rows_dgrad;
    SET_ARGS(k, 5, KARG(ws), KARG(dpo), KARG(w), KARG(dx), KARG(n));
    size_t gs = (size_t)n * ((d->h + g.rd - 1) / g.rd), ls = 1;
    return launch(ctx, k, 1, &gs, &ls, NULL, e);
}

graft_status conv2d_op_init(graft_context *ctx, conv2d_op *op, const conv2d_desc *d, graft_error *e)
{
    return op_init_path(ctx, op, d, path_for(ctx, d), false, e);
}

graft_status conv2d_op_init_lazy(graft_context *ctx, conv2d_op *op, const conv2d_desc *d,
                                 graft_error *e)
{
    return op_init_path(ctx, op, d, path_for(ctx, d), true, e);
}

bool conv2d_uses_gemm(graft_context *ctx, const conv2d_desc *d)
{
    const conv2d_desc full = with_output_size(d);
    rows_geom g;
    int t[2];
    switch (path_for(ctx, d)) {
    case CONV_ROWS:
    case CONV_WINO:
    case CONV_WINO4: return !rows_geom_of(ctx, &full, &g);
    case CONV_IGEMM:
        return !ig_tile_of(ctx, d->o / d->groups, t) || !ig_tile_of(ctx, d->c / d->groups, t);
    default: return true;
    }
}

/* The shape errors op_init_path refuses (no kernels built). */
static graft_status conv_check(const conv2d_desc *d, graft_error *e)
{
    if (d->c < 1 || d->h < 1 || d->w < 1 || d->o < 1 || d->kh < 1 || d->kw < 1 || d->sh < 1 ||
        d->sw < 1 || d->ph < 0 || d->pw < 0 || d->groups < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "conv2d: bad shape (c %d, h %d, w %d, o %d, kernel %dx%d, stride %dx%d, "
                       "padding %dx%d, groups %d)",
                       d->c, d->h, d->w, d->o, d->kh, d->kw, d->sh, d->sw, d->ph, d->pw, d->groups);
    if (d->c % d->groups || d->o % d->groups)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "conv2d: groups %d must divide input channels %d and output channels %d",
                       d->groups, d->c, d->o);
    if (d->h + 2 * d->ph < d->kh || d->w + 2 * d->pw < d->kw)
        return err_set(e, GRAFT_STATUS_INTERNAL,
                       "conv2d: kernel %dx%d larger than the padded input %dx%d", d->kh, d->kw,
                       d->h + 2 * d->ph, d->w + 2 * d->pw);
    return GRAFT_OK;
}

static graft_status op_init_path(graft_context *ctx, conv2d_op *op, const conv2d_desc *d,
                                 conv_path path, bool lazy, graft_error *e)
{
    memset(op, 0, sizeof *op);
    op->path = path;
    graft_status cs = conv_check(d, e);
    if (cs) return cs;
    op->d = with_output_size(d);
    graft_status s;
    /* the rows and implicit-GEMM paths run kernels of their own only: the im2col machinery
     * (conv.cl's program and bias.cl's for the shape, a PoCL compile each) is built for the
     * other paths, which use it */
    if ((s = rows_init(ctx, op, lazy, e)) || (s = igemm_init(ctx, op, e))) {
        conv2d_op_free(op);
        return s;
    }
    if (op->rk || op->ig_fwd) return GRAFT_OK;
    if ((s = conv_kernel(ctx, &op->d, "conv2d_im2col", &op->im2col, e)) ||
        (s = conv_kernel(ctx, &op->d, "conv2d_col2im", &op->col2im, e)))
        return s;
    if (d->bias || d->epi.kind) {
        if ((s = bias_kernel(ctx, &op->d, "bias_fwd", &op->bias_fwd, e)) ||
            (s = bias_kernel(ctx, &op->d, "bias_bwd", &op->bias_bwd, e)))
            return s;
    }
    if (d->epi.kind && (s = bias_kernel(ctx, &op->d, "epi_grad_inplace", &op->epi_grad, e)))
        return s;
    if ((s = conv_kernel(ctx, &op->d, "conv2d_pack", &op->pack, e)) ||
        (s = conv_kernel(ctx, &op->d, "conv2d_unpack", &op->unpack, e)) ||
        (s = conv_kernel(ctx, &op->d, "conv2d_bias_packed", &op->bias_packed, e)) ||
        (s = direct_init(ctx, op, e))) {
        conv2d_op_free(op);
        return s;
    }
    return GRAFT_OK;
}

/* The im2col path's column matrix (and batched, its product): also what the direct path's
 * backward packs into (d with its output size) */
static size_t im2col_workspace(const conv2d_desc *d, int n)
{
    conv_dims s = dims_of(d, n);
    return use_batched(d) ? (s.colsz + (size_t)d->o * s.ld) * sizeof(float)
           : s.identity   ? 0
                          : s.colsz * sizeof(float);
}

/* 0 for a per-sample 1x1/stride-1/unpadded conv: ws may then be NULL. */
size_t conv2d_workspace_bytes(const conv2d_desc *d, int n)
{
    const conv2d_desc full = with_output_size(d);
    size_t im = im2col_workspace(&full, n), rows = rows_workspace_bound(&full, n);
    return rows > im ? rows : im;
}

/* What a layer of shape d (its output size set) on `path` uses of ws at batch n (a path that
 * does not apply runs im2col, as op_init_path falls back): rows, wino and wino4 the padded x for
 * a forward whose input is neither padded by the layer before (padded_in) nor kept for the
 * backward (kept), and rows_layout's xp, dp and partial sums for a backward; igemm only the weight
 * gradient's partial products, at the split ig_splits picks when ws does not cap it; im2col and
 * direct the column matrix (direct's forward none). */
static size_t path_workspace(const graft_context *ctx, const conv2d_desc *d, conv_path path,
                             bool direct_fwd, int n, bool backward, bool padded_in, bool kept)
{
    rows_geom g;
    int tw[2], td[2]; /* igemm's weight-gradient tile (m = O / groups), data-gradient tile */
    if ((path == CONV_ROWS || path == CONV_WINO || path == CONV_WINO4) &&
        rows_geom_of(ctx, d, &g)) {
        size_t xpo, dpo, parto, total;
        rows_layout(ctx, d, &g, n, &xpo, &dpo, &parto, &total);
        return (backward ? total : padded_in || kept ? 0 : rows_xp_floats(d, &g, n)) *
               sizeof(float);
    }
    if (path == CONV_IGEMM && ig_tile_of(ctx, d->o / d->groups, tw) &&
        ig_tile_of(ctx, d->c / d->groups, td)) {
        if (!backward) return 0;
        int kc, ncols = d->c / d->groups * d->kh * d->kw + (d->bias ? 1 : 0);
        int S = ig_splits(ctx, d, tw, n, (size_t)ncols, SIZE_MAX, &kc);
        return S > 1 ? (size_t)S * d->o * ncols * sizeof(float) : 0;
    }
    if (path == CONV_DIRECT && direct_fwd && !backward) return 0;
    return im2col_workspace(d, n);
}

size_t conv2d_op_workspace_bytes(const graft_context *ctx, const conv2d_op *op, int n,
                                 bool backward, bool padded_in)
{
    const bool kept = op->keep && n <= op->keep_cap;
    return path_workspace(ctx, &op->d, conv2d_op_path(op), op->direct_fwd != NULL, n, backward,
                          padded_in, kept);
}

size_t conv2d_workspace_bytes_on(const graft_device_info *info, const conv2d_desc *d, int n,
                                 bool backward, bool kept)
{
    graft_context dev; /* default_path and the geometries read the device's figures only */
    memset(&dev, 0, sizeof dev);
    dev.info = *info;
    dev.loop_limit = device_loop_limit(info);
    const conv2d_desc full = with_output_size(d);
    conv_path p = forced_path();
    if (p == CONV_PATHS) p = default_path(&dev, &full);
    direct_tile t;
    const bool direct =
        full.groups == 1 && full.sw == 1 && direct_tile_of(&dev, full.o, full.ow, &t);
    return path_workspace(&dev, &full, p, direct, n, backward, false, kept);
}

void conv2d_op_free(conv2d_op *op)
{
    if (!op) return;
    if (op->wflip) clReleaseMemObject(op->wflip);
    if (op->keep) clReleaseMemObject(op->keep);
    if (op->wino_u) clReleaseMemObject(op->wino_u);
    if (op->wino4_u) clReleaseMemObject(op->wino4_u);
    if (op->wino4_ud) clReleaseMemObject(op->wino4_ud);
    memset(op, 0, sizeof *op); /* the kernels are the context's */
}

/* samples i0 .. i0+n-1 of x (NCHW) -> the column matrix [CKK, n*P] at the start of ws, rows
 * s->ld apart (s: the dims of those n samples) */
static graft_status im2col(graft_context *ctx, conv2d_op *op, const conv_dims *s, int i0, int n,
                           cl_mem x, cl_mem ws, graft_error *e)
{
    cl_kernel k = op->im2col;
    cl_long off = (cl_long)i0 * op->d.c * op->d.h * op->d.w, ld = (cl_long)s->ld;
    SET_ARGS(k, 5, KARG(x), KARG(off), KARG(ws), KARG(ld), KARG(n));
    return run1d(ctx, k, (size_t)op->d.c * op->d.kh * op->d.kw * n, e);
}

static graft_status col2im(graft_context *ctx, conv2d_op *op, const conv_dims *s, int n, cl_mem ws,
                           cl_mem dx, graft_error *e)
{
    cl_kernel k = op->col2im;
    cl_long ld = (cl_long)s->ld;
    SET_ARGS(k, 4, KARG(ws), KARG(dx), KARG(ld), KARG(n));
    return run1d(ctx, k, (size_t)op->d.h * op->d.c * n, e);
}

/* dy [n, O, P] -> ws at offset colsz, laid out [O, n*P] (rows s->ld apart), through the
 * epilogue's derivative (from the output y) when there is one */
static graft_status pack(graft_context *ctx, conv2d_op *op, const conv_dims *s, int n, cl_mem dy,
                         cl_mem y, cl_mem ws, graft_error *e)
{
    cl_kernel k = op->pack;
    cl_long off = (cl_long)s->colsz, ld = (cl_long)s->ld;
    SET_ARGS(k, 6, KARG(dy), KARG(y), KARG(ws), KARG(off), KARG(ld), KARG(n));
    return run1d(ctx, k, (size_t)op->d.o * n, e);
}

bool conv2d_can_pool(const conv2d_op *op)
{
    return ((op->rk & RK_WINO_FWD) || wino4_only(op)) && op->d.oh % 2 == 0 && op->d.ow % 2 == 0;
}

graft_status conv2d_fwd_pool(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem w,
                             cl_mem b, cl_mem y, cl_mem yp, cl_mem ip, cl_mem ws, graft_error *e)
{
    if (n < 1 || !conv2d_can_pool(op) || !yp || !y != !ip)
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_fwd_pool: batch count %d, path %s", n,
                       conv2d_path_name(op->path));
    return rows_fwd(ctx, op, n, x, NULL, w, b, y, yp, ip, NULL, ws, e);
}

graft_status conv2d_fwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem w, cl_mem b,
                        cl_mem y, cl_mem ws, graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_fwd: batch count %d", n);
    const conv2d_desc *d = &op->d;
    conv_dims s = dims_of(d, n);
    graft_status st;
    if (op->ig_fwd) return ig_fwd(ctx, op, n, x, w, b, y, e);
    if (op->rk) return rows_fwd(ctx, op, n, x, NULL, w, b, y, NULL, NULL, NULL, ws, e);
    if (op->direct_fwd)
        return direct_run(ctx, op->direct_fwd, x, 0, (cl_long)d->h * d->w,
                          (cl_long)d->c * d->h * d->w, w, b, y, n, d->oh, e);
    if (use_batched(d)) {
        /* chunk by chunk: its column matrix at 0, its [O, m*P] product right after it */
        const int S = chunk_samples(d, n);
        for (int i0 = 0; i0 < n; i0 += S) {
            const int m = n - i0 < S ? n - i0 : S;
            conv_dims c = dims_of(d, m);
            if ((st = im2col(ctx, op, &c, i0, m, x, ws, e))) return st;
            for (int g = 0; g < d->groups; g++)
                if ((st = gemm(ctx, false, false, c.og, c.np, c.cgkk, 1.0f, w, g * c.og * c.cgkk,
                               c.cgkk, ws, g * c.cgkk * c.ld, c.ld, 0.0f, ws,
                               c.colsz + g * c.og * c.ld, c.ld, e)))
                    return st;
            cl_kernel k = op->unpack;
            cl_long off = (cl_long)c.colsz, yoff = (cl_long)i0 * d->o * c.p, ld = (cl_long)c.ld;
            SET_ARGS(k, 7, KARG(ws), KARG(off), KARG(ld), KARG(b), KARG(y), KARG(yoff), KARG(m));
            if ((st = run1d(ctx, k, (size_t)d->o * m, e))) return st;
        }
        return GRAFT_OK;
    }
    if (!s.identity && (st = im2col(ctx, op, &s, 0, n, x, ws, e))) return st;
    for (int i = 0; i < n; i++)
        for (int g = 0; g < d->groups; g++) {
            cl_mem bm = s.identity ? x : ws;
            size_t boff = s.identity ? ((size_t)i * d->c + g * s.cg) * s.p
                                     : g * s.cgkk * s.ld + (size_t)i * s.p;
            size_t ldb = s.identity ? s.p : s.ld;
            if ((st = gemm(ctx, false, false, s.og, s.p, s.cgkk, 1.0f, w, g * s.og * s.cgkk, s.cgkk,
                           bm, boff, ldb, 0.0f, y, ((size_t)i * d->o + g * s.og) * s.p, s.p, e)))
                return st;
        }
    if (d->bias || d->epi.kind) {
        cl_kernel k = op->bias_fwd;
        SET_ARGS(k, 4, KARG(y), KARG(b), KARG(n), KARG(d->o));
        if ((st = run1d(ctx, k, (size_t)d->o * n, e))) return st;
    }
    return GRAFT_OK;
}

/* conv2d_bwd of a conv whose forward wrote the 2x2 max-pool after it (conv2d_fwd_pool): from the
 * pool's gradient dyp and argmax indexes ip, through rows_bwd's padded gradient, so the pool's
 * backward never runs and no full-size gradient is written. */
graft_status conv2d_bwd_pool(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem y,
                             cl_mem dyp, cl_mem ip, cl_mem w, cl_mem dx, cl_mem dw, cl_mem db,
                             cl_mem ws, graft_error *e)
{
    if (n < 1 || !conv2d_can_pool(op) || !ip || (op->d.epi.kind && !y))
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_bwd_pool: batch count %d, path %s", n,
                       conv2d_path_name(op->path));
    if (!op->d.bias) db = NULL;
    if (!dx && !dw && !db) return GRAFT_OK;
    return rows_bwd(ctx, op, n, x, y, dyp, ip, w, dx, dw, db, ws, e);
}

/* Backward of a batch: dx, dw and db as asked (each may be NULL). The batched form packs dy once
 * for both products (and the bias gradient), applying the epilogue's derivative in the pack; the
 * per-sample form first turns dy into the raw output's gradient in place when there is an
 * epilogue (dy is the fused activation's gradient, which nothing else reads afterwards). */
graft_status conv2d_bwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem y, cl_mem dy,
                        cl_mem w, cl_mem dx, cl_mem dw, cl_mem db, cl_mem ws, graft_error *e)
{
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_bwd: batch count %d", n);
    const conv2d_desc *d = &op->d;
    if (d->epi.kind && !y)
        return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_bwd: fused backward without its output");
    if (!d->bias) db = NULL;
    if (!dx && !dw && !db) return GRAFT_OK;
    conv_dims s = dims_of(d, n);
    graft_status st;
    if (op->rk) return rows_bwd(ctx, op, n, x, y, dy, NULL, w, dx, dw, db, ws, e);
    if (op->ig_fwd) { /* dy is read through the epilogue's derivative, never rewritten */
        if ((dw || db) && (st = ig_weight(ctx, op, n, x, dy, y, dw, db, ws, e))) return st;
        return dx ? ig_data(ctx, op, n, dy, y, w, dx, e) : GRAFT_OK;
    }
    if (use_batched(d)) {
        if ((st = pack(ctx, op, &s, n, dy, y, ws, e))) return st;
        if (dw) {
            if ((st = im2col(ctx, op, &s, 0, n, x, ws, e))) return st;
            for (int g = 0; g < d->groups; g++)
                if ((st = gemm(ctx, false, true, s.og, s.cgkk, s.np, 1.0f, ws,
                               s.colsz + g * s.og * s.ld, s.ld, ws, g * s.cgkk * s.ld, s.ld, 0.0f,
                               dw, g * s.og * s.cgkk, s.cgkk, e)))
                    return st;
        }
        /* the batch in one launch, or in as many samples as a loop-limited device allows */
        const int step = db ? loop_bounded_rows(ctx, n, s.p + 1) : n;
        for (int i0 = 0; db && i0 < n; i0 += step) {
            cl_kernel k = op->bias_packed;
            cl_long off = (cl_long)(s.colsz + (size_t)i0 * s.p), ld = (cl_long)s.ld;
            cl_int m = n - i0 < step ? n - i0 : step, acc = i0 > 0;
            SET_ARGS(k, 6, KARG(ws), KARG(off), KARG(ld), KARG(db), KARG(m), KARG(acc));
            size_t g = (size_t)d->o, l = 16;
            if ((st = launch(ctx, k, 1, &g, &l, NULL, e))) return st;
        }
        if (!dx) return GRAFT_OK;
        if (op->direct_bwd) /* from the packed gradient: channel o at o * ld, sample i at i*P */
            return direct_bwd_data(ctx, op, n, ws, (cl_long)s.colsz, (cl_long)s.ld, (cl_long)s.p,
                                   w, dx, e);
        for (int g = 0; g < d->groups; g++)
            if ((st = gemm(ctx, true, false, s.cgkk, s.np, s.og, 1.0f, w, g * s.og * s.cgkk, s.cgkk,
                           ws, s.colsz + g * s.og * s.ld, s.ld, 0.0f, ws, g * s.cgkk * s.ld, s.ld,
                           e)))
                return st;
        return col2im(ctx, op, &s, n, ws, dx, e);
    }
    if (d->epi.kind) {
        cl_kernel k = op->epi_grad;
        SET_ARGS(k, 4, KARG(dy), KARG(y), KARG(n), KARG(d->o));
        if ((st = run1d(ctx, k, (size_t)d->o * n, e))) return st;
    }
    if (dx && op->direct_bwd) {
        if ((st = direct_bwd_data(ctx, op, n, dy, 0, (cl_long)s.p, (cl_long)d->o * s.p, w, dx, e)))
            return st;
    } else if (dx) {
        for (int i = 0; i < n; i++)
            for (int g = 0; g < d->groups; g++) {
                cl_mem cm = s.identity ? dx : ws;
                size_t coff = s.identity ? ((size_t)i * d->c + g * s.cg) * s.p
                                         : g * s.cgkk * s.ld + (size_t)i * s.p;
                size_t ldc = s.identity ? s.p : s.ld;
                if ((st = gemm(ctx, true, false, s.cgkk, s.p, s.og, 1.0f, w, g * s.og * s.cgkk,
                               s.cgkk, dy, ((size_t)i * d->o + g * s.og) * s.p, s.p, 0.0f, cm, coff,
                               ldc, e)))
                    return st;
            }
        if (!s.identity && (st = col2im(ctx, op, &s, n, ws, dx, e))) return st;
    }
    if (dw) {
        if (!s.identity && (st = im2col(ctx, op, &s, 0, n, x, ws, e))) return st;
        for (int i = 0; i < n; i++)
            for (int g = 0; g < d->groups; g++) {
                cl_mem bm = s.identity ? x : ws;
                size_t boff = s.identity ? ((size_t)i * d->c + g * s.cg) * s.p
                                         : g * s.cgkk * s.ld + (size_t)i * s.p;
                size_t ldb = s.identity ? s.p : s.ld;
                if ((st = gemm(ctx, false, true, s.og, s.cgkk, s.p, 1.0f, dy,
                               ((size_t)i * d->o + g * s.og) * s.p, s.p, bm, boff, ldb,
                               i ? 1.0f : 0.0f, dw, g * s.og * s.cgkk, s.cgkk, e)))
                    return st;
            }
    }
    if (db) return bias_bwd_launch(ctx, op->bias_bwd, dy, db, n, d->o, s.p, e);
    return GRAFT_OK;
}

graft_status conv2d_bwd_data(graft_context *ctx, conv2d_op *op, int n, cl_mem dy, cl_mem w,
                             cl_mem dx, cl_mem ws, graft_error *e)
{
    return conv2d_bwd(ctx, op, n, NULL, NULL, dy, w, dx, NULL, NULL, ws, e);
}

graft_status conv2d_bwd_weight(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem dy,
                               cl_mem dw, cl_mem db, cl_mem ws, graft_error *e)
{
    return conv2d_bwd(ctx, op, n, x, NULL, dy, NULL, NULL, dw, db, ws, e);
}

conv_path conv2d_op_path(const conv2d_op *op)
{
    return op->ig_fwd       ? CONV_IGEMM
           : op->direct_fwd ? CONV_DIRECT
           : wino4_only(op) ? CONV_WINO4
           : op->rk & RK_WINO_FWD ? CONV_WINO
           : op->rk         ? CONV_ROWS
                            : CONV_IM2COL;
}

void conv2d_op_describe(const conv2d_op *op, char *buf, size_t n)
{
    const conv_path p = conv2d_op_path(op);
    snprintf(buf, n, "%s%s", conv2d_path_name(p),
             (op->rk & RK_W4) && p != CONV_WINO4 ? " (eval wino4)" : "");
}

/* ---- tuning the path ---- */
typedef struct tune_bufs {
    cl_mem x, w, b, y, dy, dx, dw, db, ws;
} tune_bufs;

static void tune_bufs_free(tune_bufs *t)
{
    cl_mem all[] = {t->x, t->w, t->b, t->y, t->dy, t->dx, t->dw, t->db, t->ws};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]) clReleaseMemObject(all[i]);
    memset(t, 0, sizeof *t);
}

/* Operands filled with small values (no NaN or denormal slow paths), written from the host (a
 * fill does not count as initialising for Oclgrind's checker). */
static graft_status tune_buf(graft_context *ctx, size_t floats, float v, cl_mem *out, graft_error *e)
{
    if (!floats) return GRAFT_OK;
    graft_status s = buffer_create(ctx, floats * sizeof(float), out, e);
    if (s) return s;
    float *h = malloc(floats * sizeof(float));
    if (!h) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < floats; i++) h[i] = v;
    s = buffer_write(ctx, *out, 0, h, floats * sizeof(float), e);
    free(h);
    return s;
}

/* One forward + backward; *fwd: the forward's part (waited for on its own). */
static graft_status tune_step(graft_context *ctx, conv2d_op *op, int n, tune_bufs *t, double *secs,
                              double *fwd, graft_error *e)
{
    double t0 = now_seconds();
    graft_status s = conv2d_fwd(ctx, op, n, t->x, t->w, t->b, t->y, t->ws, e);
    if (!s) s = cl_check(clFinish(ctx->queue), "clFinish", e);
    *fwd = now_seconds() - t0;
    if (!s)
        s = conv2d_bwd(ctx, op, n, t->x, t->y, t->dy, t->w, t->dx, t->dw, t->db, t->ws, e);
    if (!s) s = cl_check(clFinish(ctx->queue), "clFinish", e);
    *secs = now_seconds() - t0;
    return s;
}

/* The fastest of the timed paths that beats the default's time by 7 %, else the default. */
static conv_path tune_pick(const double *secs, conv_path deflt)
{
    conv_path best = deflt;
    for (int p = 0; p < CONV_PATHS; p++) {
        double v = secs[p];
        if (v > 0 && v < 0.93 * secs[deflt] && (best == deflt || v < secs[best]))
            best = (conv_path)p;
    }
    return best;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

bool conv2d_tune_has_rivals(const graft_context *ctx, const conv2d_desc *d, bool quick)
{
    if (ctx->loop_limit) return false; /* im2col alone keeps within the limit (default_path) */
    conv_path p = default_path(ctx, d);
    return !quick || (p != CONV_ROWS && p != CONV_WINO && p != CONV_WINO4);
}

graft_status conv2d_tune(graft_context *ctx, const conv2d_desc *d, int n, bool quick,
                         double stop_at, conv_tune_result *r, graft_error *e)
{
    memset(r, 0, sizeof *r);
    if (n < 1) return err_set(e, GRAFT_STATUS_INTERNAL, "conv2d_tune: batch count %d", n);
    graft_status s = conv_check(d, e);
    if (s) return s;
    conv2d_desc fo = *d, tr = *d; /* the forward-only and the training choice */
    fo.forward_only = true;
    tr.forward_only = false;
    r->deflt = r->best = default_path(ctx, &tr);
    r->deflt_fwd = r->best_fwd = default_path(ctx, &fo);
    if (!conv2d_tune_has_rivals(ctx, d, quick)) return GRAFT_OK; /* nothing to compare */
    const conv2d_desc full = with_output_size(d);
    tune_bufs t = {0};
    size_t nx = (size_t)n * d->c * d->h * d->w, ny = (size_t)n * d->o * full.oh * full.ow;
    size_t nw = (size_t)d->o * (d->c / d->groups) * d->kh * d->kw;
    size_t nws = conv2d_workspace_bytes(d, n) / sizeof(float);
    if ((s = tune_buf(ctx, nx, 0.01f, &t.x, e)) || (s = tune_buf(ctx, nw, 0.01f, &t.w, e)) ||
        (s = tune_buf(ctx, (size_t)d->o, 0.01f, &t.b, e)) || (s = tune_buf(ctx, ny, 0.0f, &t.y, e)) ||
        (s = tune_buf(ctx, ny, 0.01f, &t.dy, e)) || (s = tune_buf(ctx, nx, 0.0f, &t.dx, e)) ||
        (s = tune_buf(ctx, nw, 0.0f, &t.dw, e)) || (s = tune_buf(ctx, (size_t)d->o, 0.0f, &t.db, e)) ||
        (s = tune_buf(ctx, nws, 0.0f, &t.ws, e)))
        goto done;
    if (!d->bias) {
        clReleaseMemObject(t.b);
        clReleaseMemObject(t.db);
        t.b = t.db = NULL;
    }
    /* the default first: the others are measured against it */
    conv_path order[CONV_PATHS] = {r->deflt};
    int np = 1;
    for (int p = 0; p < CONV_PATHS; p++) {
        if (p == (int)r->deflt) continue;
        bool gpu = ctx->info.type == GRAFT_DEVICE_GPU;
        if (quick && ((p == CONV_IGEMM && !gpu) ||
                      ((p == CONV_DIRECT || p == CONV_ROWS || p == CONV_WINO ||
                        p == CONV_WINO4) &&
                       gpu)))
            continue;
        if (quick && (r->deflt == CONV_ROWS || r->deflt == CONV_WINO || r->deflt == CONV_WINO4))
            continue; /* see conv2d_tune in ops.h */
        order[np++] = (conv_path)p;
    }
    /* every path built and warmed (first launches, JIT, page faults), then timed in rounds, one
     * step of each path a round: a slow spell of the machine (a VM's neighbours) falls on every
     * path alike instead of on whichever was being timed; a path over 3x the best of the first
     * round keeps its one sample */
    conv2d_op ops[CONV_PATHS];
    int live[CONV_PATHS], nlive = 0;
    double v[CONV_PATHS][3], vf[CONV_PATHS][3];
    int nv[CONV_PATHS] = {0};
    bool complete = true;
    for (int i = 0; i < np && !s; i++) {
        if (stop_at > 0 && now_seconds() > stop_at) {
            complete = false; /* a later run measures the rest */
            break;
        }
        conv2d_op *op = &ops[nlive];
        if ((s = op_init_path(ctx, op, d, order[i], false, e))) break;
        if (conv2d_op_path(op) != order[i]) { /* does not apply to this shape */
            conv2d_op_free(op);
            continue;
        }
        live[nlive++] = order[i];
        double warm, warmf;
        s = tune_step(ctx, op, n, &t, &warm, &warmf, e);
    }
    for (int k = 0; k < 3 && !s && complete; k++) {
        double best0 = 0;
        for (int j = 0; j < nlive; j++)
            if (nv[j] && (best0 == 0 || v[j][0] < best0)) best0 = v[j][0];
        for (int j = 0; j < nlive && !s; j++) {
            if (k > 0 && v[j][0] > 3 * best0) continue; /* hopeless */
            if (stop_at > 0 && now_seconds() > stop_at) {
                complete = false;
                break;
            }
            s = tune_step(ctx, &ops[j], n, &t, &v[j][nv[j]], &vf[j][nv[j]], e);
            nv[j]++;
        }
    }
    for (int j = 0; j < nlive; j++) {
        conv2d_op_free(&ops[j]);
        if (s || !complete || !nv[j]) continue;
        qsort(v[j], (size_t)nv[j], sizeof v[j][0], cmp_dbl);
        qsort(vf[j], (size_t)nv[j], sizeof vf[j][0], cmp_dbl);
        r->seconds[live[j]] = v[j][nv[j] / 2];
        r->fwd_seconds[live[j]] = vf[j][nv[j] / 2];
    }
    if (s || !complete) goto done;
    r->best = tune_pick(r->seconds, r->deflt);
    r->best_fwd = tune_pick(r->fwd_seconds, r->deflt_fwd);
    r->stored = conv2d_path_store(ctx, &tr, r->best, r->seconds[r->best]) &&
                conv2d_path_store(ctx, &fo, r->best_fwd, r->fwd_seconds[r->best_fwd]);
done:
    tune_bufs_free(&t);
    return s;
}

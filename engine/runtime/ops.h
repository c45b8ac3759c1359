/* ops.h — host side of every kernel: one op struct per layer instance, built once at compile time
 * (kernels specialised with the per-sample shape as -D constants) and enqueued every step with the
 * batch count n as a runtime argument, so one compiled op serves the last, smaller batch too.
 * All tensors are float32, NCHW (or [n, F]), one cl_mem each, offset 0. Backward functions
 * OVERWRITE their outputs (dx, dw, db); the compiler sums fan-out gradients with accumulate_f32.
 * Nothing here synchronises with the host unless its comment says so. */
#ifndef GRAFT_OPS_H
#define GRAFT_OPS_H

#include "runtime.h"

#include <stdbool.h>

/* ---- fused epilogues: the activation layer after a conv2d, dense or batchnorm, applied by that
 * producer as it writes its output (cl/epilogue.cl); its backward applies the activation's
 * derivative, taken from that output, to the gradient as it reads it. The compiler decides
 * (plan.c); the op only bakes the choice into its kernels. ---- */
typedef struct epilogue {
    int kind;    /* 0: none; else act_kind + 1 */
    float slope; /* leaky_relu */
} epilogue;
/* Build options for the kernels (" -DEPI=k -DEPI_SLOPE=s", or "" for none). */
void epilogue_options(const epilogue *ep, char *buf, size_t n);

/* Work-items per group for kernels that give a work-group one row of `row` values to reduce
 * (cl/reduce.cl's LSZ): 1 on CPU devices, where PoCL's per-work-item cost makes one work-item
 * walking a contiguous row the fast form and a group of one needs no barrier; elsewhere a power of
 * two up to 256 (and the device's limit) so neighbouring work-items read neighbouring floats.
 * GRAFT_PLANE_LSZ=N forces N (tests run the GPU form on CPU devices with it). */
int group_local_size(const graft_context *ctx, long row);
/* Launch a cl/reduce.cl kernel over `rows` rows: a group per row when lsz > 1, else one work-item
 * per row in groups of 64. */
graft_status launch_rows(graft_context *ctx, cl_kernel k, int lsz, size_t rows, graft_error *e);
/* Set kernel argument i of k to v, returning the OpenCL error (through e) from the calling
 * function when it fails. */
#define SET_ARG(k, i, v)                                                                           \
    do {                                                                                           \
        cl_int rc_ = kernel_arg((k), (i), sizeof(v), &(v));                                        \
        if (rc_ != CL_SUCCESS) return cl_check(rc_, "clSetKernelArg", e);                          \
    } while (0)
/* Zeros written from the host into a new buffer (op_norm.c): Oclgrind's uninitialised-value
 * checker counts only host writes as initialising a buffer across launches. */
graft_status zero_from_host(graft_context *ctx, cl_mem m, size_t bytes, graft_error *e);

/* Row-major SGEMM through CLBlast: C = alpha * op(A) * op(B) + beta * C; recorded for profiling. */
graft_status gemm(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                  float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                  size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc, graft_error *e);
/* A dense layer's output epilogue: C[i][j] += bias[j] (bias NULL: none), then the activation. */
typedef struct gemm_epilogue {
    cl_mem bias;
    epilogue act;
} gemm_epilogue;
/* gemm() that applies ep as C is written when the chosen kernel can (Graft's gemm_inner and its
 * split-K reduce: *applied true); otherwise C is the plain product and the caller applies ep. */
graft_status gemm_epi(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                      size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc,
                      const gemm_epilogue *ep, bool *applied, graft_error *e);
/* Builds the program of the kernel gemm() would run for that shape (tuned or default choice), so
 * that a pipeline can build its GEMMs' programs while earlier work runs on the device; launches
 * nothing. */
graft_status gemm_prepare(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n,
                          size_t k, graft_error *e);

/* ---- conv2d: im2col/col2im + GEMM; groups supported; PyTorch weight layout OIHW ---- */
typedef struct conv2d_desc {
    int c, h, w;       /* input channels and size */
    int o;             /* output channels */
    int kh, kw, sh, sw, ph, pw; /* kernel, stride, padding (symmetric) */
    int groups;
    bool bias;
    int oh, ow;        /* output size (filled by conv2d_op_init) */
    epilogue epi;      /* fused activation on the output */
    /* a batchnorm follows, whose fold (a transfer's frozen prefix, an evaluation) would give the
     * layer a bias and that batchnorm's activation, epi_build: the rows and wino kernels are built
     * as the folded layer's and run with both switched off, so both run one program */
    bool fold_ready;
    epilogue epi_build;
    /* no backward runs through the layer (evaluation, a frozen prefix): the path is the one
     * fastest forward alone (the tuner stores both choices), not forward + backward */
    bool forward_only;
} conv2d_desc;
/* How a layer's convolutions run: im2col + GEMM (cl/conv.cl and the GEMM back ends), the direct
 * CPU kernel (conv.cl's conv2d_direct, forward and backward data), implicit GEMMs
 * (cl/conv_igemm.cl), the rows kernels (cl/conv_rows.cl, from zero-padded copies) or the rows
 * path with Winograd F(2x2, 3x3) forward and data gradient (wino), or wino with the forward as
 * Winograd F(4x4, 3x3) (wino4). Chosen per layer shape: GRAFT_CONV, else the tuner's stored
 * result, else the device type's default (GPUs igemm; other devices, on 3x3 layers of 8+ channels
 * in and out, wino4 for a layer no backward runs through (conv2d_desc.forward_only) and wino for
 * the others, rows where it applies, else im2col). */
typedef enum conv_path {
    CONV_IM2COL,
    CONV_DIRECT,
    CONV_IGEMM,
    CONV_ROWS,
    CONV_WINO,
    CONV_WINO4,
    CONV_PATHS
} conv_path;
const char *conv2d_path_name(conv_path p);
typedef struct conv2d_op {
    conv2d_desc d;
    conv_path path; /* asked for; a path that does not apply to the shape falls back to im2col */
    cl_kernel im2col, col2im, bias_fwd, bias_bwd, epi_grad, pack, unpack, bias_packed;
    /* the direct path (CPU devices; NULL where it does not apply): forward, backward data as a
     * convolution of dy with the flipped weights (flip writes them into wflip) */
    cl_kernel direct_fwd, direct_bwd, flip;
    cl_mem wflip;
    /* the implicit-GEMM path (cl/conv_igemm.cl, GPU-shaped; NULL when not chosen): one kernel each
     * for forward, backward data and backward weight + bias, and the split-K reduction */
    cl_kernel ig_fwd, ig_data, ig_weight, ig_reduce;
    int ig_tile[3][2]; /* per kernel: work-group TX, TY (RM = RN = 4, BK = 16) */
    /* the rows path (cl/conv_rows.cl, CPU-shaped; NULL when not chosen): forward and backward
     * from zero-padded copies of x and dy, with no column matrix */
    cl_kernel rows_pad_x, rows_pad_dy, rows_fwd, rows_wgrad, rows_wsum, rows_dgrad;
    /* the wino path: the rows path with the forward and the data gradient as Winograd F(2x2, 3x3)
     * (conv_rows.cl built with WINO; rows_fwd and rows_dgrad NULL), the transformed weights in
     * wino_u [16, O, C] (conv_wino_wt writes them before each pass, or once: w_const) */
    cl_kernel wino_wt, wino_fwd, wino_dgrad;
    cl_kernel rows_pad_dy_pool; /* pad_dy from a fused 2x2 max-pool's gradient (conv2d_bwd_pool) */
    cl_mem wino_u;
    /* the wino4 path: the forward as Winograd F(4x4, 3x3) (conv_rows.cl built with WINO4, from
     * wino4_u [36, O, C], then [48, O, C] for F(6x4) tile rows where wino4_w6), the backward the
     * wino path's (or the rows path's data gradient where F(2x2) does not fit); wino4_ns samples
     * a vector, wino4_ng such vectors a work-item, wino4_w6 tile rows of six output rows */
    cl_kernel wino4_wt, wino4_fwd;
    cl_mem wino4_u, wino4_u_of;
    bool wino4_u_six; /* wino4_u holds the F(6x4) part of wino4_u_of's weights too */
    int wino4_ns, wino4_ng, wino4_w6;
    /* and, for a layer of as many channels in as out (3x3, stride 1, padding 1), the data gradient
     * as that F(4x4) forward of the padded dy with wino4_ud [36, C, O] (conv_wino4_wtd: the
     * weights turned and transposed, before each backward; the F(2x2) data gradient, wino_wt
     * and wino_u are then NULL); NULL elsewhere */
    cl_kernel wino4_wtd;
    cl_mem wino4_ud;
    /* the F(4x4) forward with the layer before it computed in its transform (conv2d_stem_init),
     * and that layer's flags; NULL elsewhere */
    cl_kernel wino4_stem, wino4_stem_wt;
    int stem_flags;
    /* which of the kernels above the rows, wino and wino4 paths run (RK_* bits; 0 off them) and
     * the options of their program; the kernels are made at init, or (conv2d_op_init_lazy) at
     * the first pass that runs one */
    unsigned rk;
    char rows_opts[768];
    /* A rows or wino layer of 8+ channels in and out keeps wino4_wt and wino4_fwd too (its
     * program has them, rows_init), for the forwards its caller marks fwd_only: an evaluation
     * during a training, where no backward reads what the forward kept. Their F(4x4) code is
     * then compiled by the training run, not by a frozen-prefix transfer after it. */
    bool fwd_only;
    /* w_const: the caller's weights stay as they are until it sets wino_u_of and wino4_u_of to
     * NULL (a frozen layer: only an upload rewrites them), so wino_u (wino4_u), once it holds the
     * transform of the weights wino_u_of (wino4_u_of), is reused while the same buffer comes
     * back */
    bool w_const;
    cl_mem wino_u_of;
    int wino_tiles; /* tiles a vector (WT: 4, 8 or 16); 0 off the wino path */
    int wino_ns;    /* samples a vector: 2 for 8-tile rows on 16-lane devices, else 1 */
    /* the rows forward's padded copy of x, kept for the weight gradient of the backward that
     * follows (conv2d_keep_input; NULL: the backward pads x again into ws): its capacity in
     * samples, and the x and batch count it holds (keep_x NULL when it holds none) */
    cl_mem keep, keep_x;
    int keep_cap, keep_n;
} conv2d_op;
graft_status conv2d_op_init(graft_context *ctx, conv2d_op *op, const conv2d_desc *d, graft_error *e);
/* The same, but on the rows, wino and wino4 paths the layer's program is built at the first pass
 * that runs one of its kernels: for a pipeline that never trains, where a layer computed inside
 * the next one's forward (conv2d_stem_init) runs none. A failed build is then that pass's error. */
graft_status conv2d_op_init_lazy(graft_context *ctx, conv2d_op *op, const conv2d_desc *d,
                                 graft_error *e);
/* conv2d_op's rk: one bit a kernel of the rows, wino and wino4 paths (RK_W4: wino4_wt and
 * wino4_fwd) */
enum {
    RK_PAD_X = 1 << 0,
    RK_PAD_DY = 1 << 1,
    RK_WGRAD = 1 << 2,
    RK_WSUM = 1 << 3,
    RK_W4 = 1 << 4,
    RK_W4D = 1 << 5,
    RK_PAD_DY_POOL = 1 << 6,
    RK_WINO_WT = 1 << 7,
    RK_WINO_FWD = 1 << 8,
    RK_WINO_DGRAD = 1 << 9,
    RK_ROWS_FWD = 1 << 10,
    RK_ROWS_DGRAD = 1 << 11
};
/* A training layer's op: keep what the forward pads for batches up to n, so that the backward's
 * weight gradient reads it instead of padding x a second time (the rows path; elsewhere nothing to
 * do). conv2d_keep_bytes is its size at most, on any device, for the memory plan (0 where the rows
 * path cannot apply). */
graft_status conv2d_keep_input(graft_context *ctx, conv2d_op *op, int n, graft_error *e);
size_t conv2d_keep_bytes(const conv2d_desc *d, int n);
/* Whether the path conv2d_op_init would give this shape on ctx's device multiplies through the
 * GEMM (im2col, and direct's weight gradient) rather than its own kernels (rows, igemm). */
bool conv2d_uses_gemm(graft_context *ctx, const conv2d_desc *d);
/* The workspace (ws) a conv may use at batch n, on any path and device (the memory plan's bound;
 * 0 for a per-sample 1x1/stride-1/unpadded conv). A pass checks ws's own size against what it
 * uses, so ws may be smaller where the op's path needs less: */
size_t conv2d_workspace_bytes(const conv2d_desc *d, int n);
/* what op, on the path it runs, uses at batch n: its forward, where its input comes padded by
 * the layer before (padded_in: conv2d_fwd_io's xin, or a stem it computes) or kept
 * (conv2d_keep_input), and with backward its backward too */
size_t conv2d_op_workspace_bytes(const graft_context *ctx, const conv2d_op *op, int n,
                                 bool backward, bool padded_in);
/* and, for the memory plan of a device not yet opened, what a shape uses on the path that
 * device's type gets by default (or GRAFT_CONV's; a tuned choice may need more) */
size_t conv2d_workspace_bytes_on(const graft_device_info *info, const conv2d_desc *d, int n,
                                 bool backward, bool kept);
struct gemm_shape;
/* The GEMMs the im2col path issues for a batch of n (conv2d_fwd's and, with need_dx and trains,
 * conv2d_bwd's), with the leading dimensions it lays them out with: the shapes the tuner times.
 * d needs oh and ow. Returns how many were written (at most cap; repeats are left to the caller). */
int conv2d_gemm_products(const conv2d_desc *d, int n, bool need_dx, bool trains,
                         struct gemm_shape *out, int cap);
graft_status conv2d_fwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem w, cl_mem b,
                        cl_mem y, cl_mem ws, graft_error *e);
/* Whether conv2d_fwd_pool applies: the wino path, an even output (a 2x2 max-pool of stride 2
 * after it, and its activation, if any, fused in the op: plan.c's fused_pool). */
bool conv2d_can_pool(const conv2d_op *op);
/* conv2d_fwd that also writes that pool's output yp and argmax indexes ip (as pool_fwd would
 * from y), so the pool's own forward does not run; y is written as by conv2d_fwd. y and ip NULL
 * together (no backward follows: an evaluation, a layer without one): yp alone is written. */
graft_status conv2d_fwd_pool(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem w,
                             cl_mem b, cl_mem y, cl_mem yp, cl_mem ip, cl_mem ws, graft_error *e);
/* A conv's padded input as the rows and Winograd paths read it: [n, c, rows, pitch] floats of
 * buf, each plane's image at row ph and column pw (off = ph pitch + pw floats), zeros around it;
 * bytes for the batch asked. A producer that writes its output into it (conv2d_fwd_io's out)
 * spares the consumer its padding pass (conv2d_fwd_io's xin). */
typedef struct conv2d_xpad {
    cl_mem buf;
    long off;
    int rows, pitch;
    size_t bytes;
} conv2d_xpad;
/* op's padded input layout for n samples (buf NULL); false where op pads nothing (other paths). */
bool conv2d_xpad_layout(graft_context *ctx, const conv2d_op *op, int n, conv2d_xpad *out);
/* conv2d_fwd (yp NULL) or conv2d_fwd_pool on the rows and Winograd paths, with x already padded
 * in xin (then x is not read) and/or the output (yp when given, else y) written into out's layout
 * (then that buffer is not written); out's borders are never written, so they stay as they are
 * (zeros from whoever made it). Forward only: a backward needs y, ip and the kept input. */
graft_status conv2d_fwd_io(graft_context *ctx, conv2d_op *op, int n, cl_mem x,
                           const conv2d_xpad *xin, cl_mem w, cl_mem b, cl_mem y, cl_mem yp,
                           cl_mem ip, const conv2d_xpad *out, cl_mem ws, graft_error *e);
/* The stem: where op runs its forward on Winograd F(4x4) (wino4, CPUs), a layer `stem` whose
 * output only op reads (3x3, stride 1, padding 1, one group, up to CONV2D_STEM_MAX_C channels in,
 * a relu-like activation or none: fmnist-cnn's conv1) is computed inside op's forward from the
 * stem's input, to the bit as its own pass on the rows path would write it, instead of written
 * out and read back. A stem made for another path is made again on the rows path, lazily (its
 * own pass, if one runs, builds its program). *fits false (and GRAFT_OK) where it does not
 * apply. */
#define CONV2D_STEM_MAX_C 3
graft_status conv2d_stem_init(graft_context *ctx, conv2d_op *op, conv2d_op *stem, bool *fits,
                              graft_error *e);
/* op's forward (as conv2d_fwd_io's, ip NULL: forward only) from the stem's input sx [n, c, h, w],
 * weights sw and bias sb (the stem's conv2d_fwd arguments) */
graft_status conv2d_fwd_stem(graft_context *ctx, conv2d_op *op, int n, cl_mem sx, cl_mem sw,
                             cl_mem sb, cl_mem w, cl_mem b, cl_mem y, cl_mem yp,
                             const conv2d_xpad *out, graft_error *e);
/* conv2d_bwd after conv2d_fwd_pool, from the pool's gradient dyp and its indexes ip (as pool_bwd
 * would have made dy), so the pool's backward does not run. */
graft_status conv2d_bwd_pool(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem y,
                             cl_mem dyp, cl_mem ip, cl_mem w, cl_mem dx, cl_mem dw, cl_mem db,
                             cl_mem ws, graft_error *e);
/* dx, dw, db as asked (each may be NULL), packing dy once. y is the layer's output, read by a fused
 * epilogue's derivative (NULL without one); with an epilogue, dy may be overwritten. */
graft_status conv2d_bwd(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem y, cl_mem dy,
                        cl_mem w, cl_mem dx, cl_mem dw, cl_mem db, cl_mem ws, graft_error *e);
/* The two halves on their own (no epilogue). */
graft_status conv2d_bwd_data(graft_context *ctx, conv2d_op *op, int n, cl_mem dy, cl_mem w,
                             cl_mem dx, cl_mem ws, graft_error *e);
graft_status conv2d_bwd_weight(graft_context *ctx, conv2d_op *op, int n, cl_mem x, cl_mem dy,
                               cl_mem dw, cl_mem db, cl_mem ws, graft_error *e);
void conv2d_op_free(conv2d_op *op);
/* The path that actually runs (after any fallback). */
conv_path conv2d_op_path(const conv2d_op *op);
/* That path's name, with " (eval wino4)" where the op's fwd_only forwards (its evaluations) run
 * the F(4x4) forward instead: what `graft bench` shows per layer. */
void conv2d_op_describe(const conv2d_op *op, char *buf, size_t n);

/* Tuning the path of a layer shape: each candidate runs a forward and a backward (data, weight,
 * bias) at batch n on poison-free operands, timed as the median of 3 after a warm-up (a candidate
 * over 3x the best so far is dropped after one); the default is replaced only by a path 7 %
 * faster. quick leaves out the paths shaped for the other kind of device (igemm on CPUs: 20-30x
 * slower under PoCL; direct, rows and wino on GPUs), and where rows or wino is the default, every
 * other path (wino against rows: see default_path in op_conv.c):
 * direct runs the same register tiles with per-row copies (1.6-2.7x slower forward + backward
 * on fmnist-cnn's layers, graft bench on the Xeon VM) and im2col lost to rows by 1.3-2.0x on
 * every layer there, while timing it on a first run costs ~14 s of kernel compiles a shape
 * (`graft tune` still times every path). The choice goes into the program cache
 * (kind "tune") and every later conv2d_op_init of the shape on this device uses it. stop_at
 * (now_seconds(), 0 = none) skips the candidates not started by then, and then nothing is
 * stored (a later run measures them all). Where quick leaves the default alone
 * (conv2d_tune_has_rivals false) nothing is built, timed or stored: timing one candidate decides
 * nothing, and its unfused kernels were PoCL compiles of their own (fmnist-pretrain's first run
 * spent 30-35 s before its first step on them and on an im2col op built to check the shape). */
typedef struct conv_tune_result {
    conv_path best, deflt;
    double seconds[CONV_PATHS]; /* median per step, 0 = not timed */
    /* the same for the forward alone (the step's forward part, measured with it), which layers
     * with no backward run (conv2d_desc.forward_only), against their own default (wino4 where
     * the forward-only default differs) */
    conv_path best_fwd, deflt_fwd;
    double fwd_seconds[CONV_PATHS];
    bool stored;
} conv_tune_result;
graft_status conv2d_tune(graft_context *ctx, const conv2d_desc *d, int n, bool quick,
                         double stop_at, conv_tune_result *r, graft_error *e);
bool conv2d_tune_has_rivals(const graft_context *ctx, const conv2d_desc *d, bool quick);
/* Whether the shape has a stored choice; storing one (what conv2d_tune does with its winner). */
bool conv2d_path_tuned(graft_context *ctx, const conv2d_desc *d);
bool conv2d_path_store(graft_context *ctx, const conv2d_desc *d, conv_path p, double seconds);
/* with d->forward_only, these are the forward-only choice's */

/* ---- dense: y[n, out] = x[n, in] W^T + b, W is [out, in] ---- */
typedef struct dense_op {
    int in, out;
    bool bias;
    epilogue epi;
    cl_kernel bias_fwd, bias_bwd, epi_grad, epi_grad_bias;
} dense_op;
graft_status dense_op_init(graft_context *ctx, dense_op *op, int in, int out, bool bias, graft_error *e);
/* A fused activation: dense_fwd applies it with the bias; before the backward, dense_epi_grad turns
 * the activation's output gradient dy into this layer's, in place, from the output y, and with a
 * bias and db given also writes the bias gradient (*db_done: dense_bwd_weight then gets db NULL). */
graft_status dense_op_set_epilogue(graft_context *ctx, dense_op *op, const epilogue *epi,
                                   graft_error *e);
graft_status dense_epi_grad(graft_context *ctx, dense_op *op, int n, cl_mem dy, cl_mem y,
                            cl_mem db, bool *db_done, graft_error *e);
/* The programs of the GEMMs of n rows (gemm_prepare): the forward's, and with weight / data the
 * weight and data gradients'. */
graft_status dense_prepare(graft_context *ctx, dense_op *op, int n, bool weight, bool data,
                           graft_error *e);
graft_status dense_fwd(graft_context *ctx, dense_op *op, int n, cl_mem x, cl_mem w, cl_mem b,
                       cl_mem y, graft_error *e);
graft_status dense_bwd_data(graft_context *ctx, dense_op *op, int n, cl_mem dy, cl_mem w, cl_mem dx,
                            graft_error *e);
/* bias.cl's bias_bwd (built with -DHW=hw) over n samples of c x hw at dy: db = their sum per
 * channel, in launches of as many samples as a loop-limited device allows. */
graft_status bias_bwd_launch(graft_context *ctx, cl_kernel k, cl_mem dy, cl_mem db, int n, int c,
                             size_t hw, graft_error *e);
graft_status dense_bwd_weight(graft_context *ctx, dense_op *op, int n, cl_mem x, cl_mem dy,
                              cl_mem dw, cl_mem db, graft_error *e);
void dense_op_free(dense_op *op);

/* ---- batchnorm over channels of [n, c, hw] (hw = 1 after dense) ----
 * train: batch statistics; saves mean and inverse std for backward; updates running statistics with
 * PyTorch's semantics (running = (1-m)*running + m*stat, running_var from the unbiased variance).
 * eval (and frozen): running statistics. */
enum { BN_STATS_PARTIAL, BN_STATS_FINALIZE, BN_APPLY, BN_GRAD_PARTIAL, BN_GRAD_FINALIZE,
       BN_GRAD_APPLY, BN_NKERNELS };
typedef struct batchnorm_op {
    int c, hw, lsz;
    float momentum, eps;
    epilogue epi;
    cl_kernel k[BN_NKERNELS];
    int acc_bytes; /* 8: sums in double (devices with fp64), else 4 */
    cl_mem part;   /* per-plane partial sums, 2 * c * part_n of acc_bytes each */
    int part_n;
    cl_mem sums; /* per-channel gradient sums, 2 * c floats */
} batchnorm_op;
/* epi may be NULL (no fused activation). */
graft_status batchnorm_op_init(graft_context *ctx, batchnorm_op *op, int c, int hw, float momentum,
                               float eps, const epilogue *epi, graft_error *e);
graft_status batchnorm_fwd_train(graft_context *ctx, batchnorm_op *op, int n, cl_mem x,
                                 cl_mem gamma, cl_mem beta, cl_mem run_mean, cl_mem run_var,
                                 cl_mem save_mean, cl_mem save_invstd, cl_mem y, graft_error *e);
graft_status batchnorm_fwd_eval(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem gamma,
                                cl_mem beta, cl_mem run_mean, cl_mem run_var, cl_mem y,
                                graft_error *e);
/* dgamma/dbeta may be NULL (frozen affine); dx may be NULL (nothing below needs it). y is the
 * layer's output (read only by a fused epilogue's derivative; may be NULL without one). */
graft_status batchnorm_bwd(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem y, cl_mem dy,
                           cl_mem gamma, cl_mem save_mean, cl_mem save_invstd, cl_mem dx,
                           cl_mem dgamma, cl_mem dbeta, graft_error *e);
/* Backward through eval-mode BN (running statistics are constants). */
graft_status batchnorm_bwd_eval(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem y, cl_mem dy,
                                cl_mem gamma, cl_mem run_mean, cl_mem run_var, cl_mem dx,
                                cl_mem dgamma, cl_mem dbeta, graft_error *e);
/* The eval-mode normalisation folded into the conv2d before it: wf = w * g and
 * bf = (cb - mean) * g + beta per output channel (c of them), g = gamma / sqrt(running_var + eps),
 * for a conv with k weights per output channel; cb may be NULL (no conv bias). Its kernel is
 * shape-free (cl/tensor.cl): a folded batchnorm needs no batchnorm_op. */
graft_status batchnorm_fold(graft_context *ctx, int c, float eps, int k, cl_mem w, cl_mem cb,
                            cl_mem gamma, cl_mem beta, cl_mem run_mean, cl_mem run_var, cl_mem wf,
                            cl_mem bf, graft_error *e);
void batchnorm_op_free(batchnorm_op *op);
/* Synchronised batchnorm (train.sync_bn): one batch split across devices, normalised with the
 * statistics of the whole (global) batch of N rows. Each device computes the per-plane partials
 * of its n rows (batchnorm_sync_stats: (mean, M2) per plane; batchnorm_sync_grads: (sum d,
 * sum d * xhat) per plane, after writing its own dgamma / dbeta when given) into op->part and
 * reads them out (batchnorm_sync_read, acc_bytes * 2 * c * n bytes, non-blocking);
 * batchnorm_part_gather puts them, times scale, at rows [first, first + n) of the global array
 * [c][N][2] in double; every device is then handed the whole array and runs the very finalize
 * kernels of the one-device path over N rows (batchnorm_sync_fwd: running and saved statistics,
 * then this device's n rows normalised; batchnorm_sync_bwd: the gradient sums, then dx). */
graft_status batchnorm_sync_stats(graft_context *ctx, batchnorm_op *op, int n, cl_mem x,
                                  graft_error *e);
graft_status batchnorm_sync_grads(graft_context *ctx, batchnorm_op *op, int n, cl_mem x, cl_mem y,
                                  cl_mem dy, cl_mem save_mean, cl_mem save_invstd, cl_mem dgamma,
                                  cl_mem dbeta, graft_error *e);
graft_status batchnorm_sync_read(graft_context *ctx, batchnorm_op *op, int n, void *host,
                                 cl_event *done, graft_error *e);
void batchnorm_part_gather(const batchnorm_op *op, const void *host, int n, int first, int N,
                           double scale, double *global);
graft_status batchnorm_sync_fwd(graft_context *ctx, batchnorm_op *op, int N, const double *global,
                                int n, cl_mem x, cl_mem gamma, cl_mem beta, cl_mem run_mean,
                                cl_mem run_var, cl_mem save_mean, cl_mem save_invstd, cl_mem y,
                                graft_error *e);
graft_status batchnorm_sync_bwd(graft_context *ctx, batchnorm_op *op, int N, const double *global,
                                int n, cl_mem x, cl_mem y, cl_mem dy, cl_mem gamma,
                                cl_mem save_mean, cl_mem save_invstd, cl_mem dx, graft_error *e);

/* ---- layer normalisation over the last axis: rows of d values (cl/layernorm.cl) ----
 * PyTorch nn.LayerNorm(d) with elementwise_affine = affine: each row normalised by its own mean and
 * biased variance, the same in training and evaluation. The forward saves every row's mean and
 * inverse std (rows floats each) for the backward. */
enum { LN_FWD, LN_BWD_DATA, LN_GRAD_PARTIAL, LN_GRAD_FINALIZE, LN_NKERNELS };
typedef struct layernorm_op {
    int d, lsz;
    bool affine;
    float eps;
    cl_kernel k[LN_NKERNELS];
    int acc_bytes; /* 8: sums in double (devices with fp64), else 4 */
    cl_mem part;   /* parameter-gradient partials, 2 * d per chunk of rows */
    int part_chunks;
} layernorm_op;
graft_status layernorm_op_init(graft_context *ctx, layernorm_op *op, int d, float eps, bool affine,
                               graft_error *e);
/* x, y: [rows, d]; gamma, beta: [d] (ignored without affine); save_mean, save_invstd: [rows]. */
graft_status layernorm_fwd(graft_context *ctx, layernorm_op *op, long rows, cl_mem x, cl_mem gamma,
                           cl_mem beta, cl_mem y, cl_mem save_mean, cl_mem save_invstd,
                           graft_error *e);
/* dx may be NULL (nothing below needs it); dgamma and dbeta NULL together (frozen or no affine). */
graft_status layernorm_bwd(graft_context *ctx, layernorm_op *op, long rows, cl_mem x, cl_mem dy,
                           cl_mem gamma, cl_mem save_mean, cl_mem save_invstd, cl_mem dx,
                           cl_mem dgamma, cl_mem dbeta, graft_error *e);
void layernorm_op_free(layernorm_op *op);

/* ---- multi-head self-attention on tokens [n, T, D] (cl/attention.cl + the shared GEMM path) ----
 * Q|K|V = x W_p^T + b_p (p = q, k, v) into one [n T, 3D] matrix; per sample and head,
 * P = softmax(Q K^T / sqrt(D / heads)) (T x T) and O = P V into [n T, D]; y = O W_o^T + b_o.
 * The weights of a projection may be slices of one packed tensor (torchvision's in_proj_weight)
 * or tensors of their own (Hugging Face's query/key/value): each is a buffer and a float offset. */
typedef struct attn_params {
    cl_mem w[3], b[3]; /* query, key, value: [D, D] and [D] (b NULL without bias) */
    size_t w_off[3], b_off[3];
    cl_mem wo, bo;     /* output projection [D, D], [D] */
} attn_params;
enum {
    ATTN_SOFTMAX_FWD, ATTN_SOFTMAX_BWD, ATTN_BIAS_FWD, ATTN_BIAS_BWD, /* the GEMM form's */
    ATTN_FUSED_FWD, ATTN_FUSED_BWD_ROWS, ATTN_FUSED_BWD_COLS,         /* the fused form's */
    ATTN_NKERNELS
};
/* Up to ATTN_FUSED_MAX_DH (base.h) features per head, the fused kernels replace the per-(sample,
 * head) GEMMs: three launches for all samples and heads instead of n * heads * 6. */
typedef struct attention_op {
    int t, d, heads, lsz, max_n;
    bool bias, training, fused;
    float rate;    /* dropout on the attention probabilities (fused form only) */
    cl_kernel k[ATTN_NKERNELS];
    dense_op out;  /* the output projection */
    cl_mem qkv, p, o;      /* forward: [n T, 3D], [n heads T, T], [n T, D] (kept for backward) */
    cl_mem dqkv, dp, dout; /* training only: their gradients */
} attention_op;
/* Dropout's key for one step (the same scheme as dropout_fwd): seed, step, and the global index
 * of the launch's first sample (a data-parallel replica's share starts mid-batch). */
typedef struct attn_rng {
    uint64_t seed, step;
    long row0;
} attn_rng;
/* Buffers for batches up to max_n; training adds the gradient buffers. fused: the fused kernels
 * (needs d / heads <= ATTN_FUSED_MAX_DH) instead of per-head GEMMs; rate > 0 needs fused. */
graft_status attention_op_init(graft_context *ctx, attention_op *op, int t, int d, int heads,
                               bool bias, int max_n, bool training, bool fused, float rate,
                               graft_error *e);
/* The form a layer of T tokens runs: fused for small heads (T^2 dh up to 50^2 * 16: measured
 * there; larger ones run faster as GEMMs) and always with dropout (only the fused form has it),
 * where the head fits ATTN_FUSED_MAX_DH. GRAFT_ATTN=fused or gemm forces one, for measuring. */
bool attention_use_fused(int t, int d, int heads, float rate);
/* rng: the dropout key of a training step, NULL for no dropout (evaluation). */
graft_status attention_fwd(graft_context *ctx, attention_op *op, int n, cl_mem x,
                           const attn_params *w, const attn_rng *rng, cl_mem y, graft_error *e);
/* dx may be NULL; g NULL when the layer is frozen (else every weight and bias gradient of w's
 * layout, offsets included). Needs the forward of the same batch (and rng) just before. */
graft_status attention_bwd(graft_context *ctx, attention_op *op, int n, cl_mem x, cl_mem dy,
                           const attn_params *w, const attn_rng *rng, cl_mem dx,
                           const attn_params *g, graft_error *e);
void attention_op_free(attention_op *op);
/* Floats of the op's own buffers per sample (the plan's memory): forward, and training's extra. */
long attention_buffer_floats(int t, int d, int heads, bool training);

/* ---- token plumbing over [n, T, D] (cl/token.cl; the token layers of graph/layer_token.c) ---- */
/* dp[r] = sum over i < n of dy[i * stride + r], r < len (a per-sample parameter's gradient). */
graft_status token_batch_sum(graft_context *ctx, int n, int stride, int len, cl_mem dy, cl_mem dp,
                             graft_error *e);
/* y[i * stride + r] = p[r], r < len, for every sample i < n. */
graft_status token_broadcast(graft_context *ctx, int n, int stride, int len, cl_mem p, cl_mem y,
                             graft_error *e);
/* y[i, r] = x[i, r] + p[r] (x, y: [n, len]). */
graft_status token_add(graft_context *ctx, int n, int len, cl_mem x, cl_mem p, cl_mem y,
                       graft_error *e);
/* y [n, d] = mean over t of x [n, t, d]; its backward dx = dy / t broadcast over t. */
graft_status token_mean_fwd(graft_context *ctx, int n, int t, int d, cl_mem x, cl_mem y,
                            graft_error *e);
graft_status token_mean_bwd(graft_context *ctx, int n, int t, int d, cl_mem dy, cl_mem dx,
                            graft_error *e);
/* Images [n, c, h, w] <-> their p x p patches as rows [n, (h/p)(w/p), c*p*p] (row-major patch
 * order; each row (channel, ky, kx) like a conv weight): to_image false gathers the patches from
 * src, true scatters patch rows in src back to the image dst (a permutation: no sums). */
graft_status token_patches(graft_context *ctx, int n, int c, int h, int w, int p, bool to_image,
                           cl_mem src, cl_mem dst, graft_error *e);

/* ---- elementwise activations ---- */
typedef enum act_kind { ACT_RELU, ACT_RELU6, ACT_LEAKY_RELU, ACT_GELU, ACT_SIGMOID, ACT_TANH } act_kind;
typedef struct act_op {
    act_kind kind;
    long size; /* per sample */
    float slope;
    cl_kernel fwd, bwd;
} act_op;
graft_status act_op_init(graft_context *ctx, act_op *op, act_kind kind, long size, float slope,
                         graft_error *e);
graft_status act_fwd(graft_context *ctx, act_op *op, int n, cl_mem x, cl_mem y, graft_error *e);
/* dx from dy and the saved forward input x and output y (each kind uses what it needs). */
graft_status act_bwd(graft_context *ctx, act_op *op, int n, cl_mem x, cl_mem y, cl_mem dy, cl_mem dx,
                     graft_error *e);
/* Which saved tensor act_bwd reads: true = the input x (leaky_relu, gelu), false = the output y
 * (relu, relu6, sigmoid, tanh); the other may be NULL, so the planner keeps only that one alive. */
bool act_bwd_needs_input(act_kind kind);
void act_op_free(act_op *op);

/* ---- pooling: max (argmax saved as int indexes), avg (count_include_pad = true), global avg ---- */
typedef enum pool_kind { POOL_MAX, POOL_AVG, POOL_GLOBAL_AVG } pool_kind;
typedef struct pool_op {
    pool_kind kind;
    int c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
    cl_kernel fwd, bwd;
} pool_op;
graft_status pool_op_init(graft_context *ctx, pool_op *op, pool_kind kind, int c, int h, int w,
                          int kh, int kw, int sh, int sw, int ph, int pw, graft_error *e);
/* idx: int buffer of the output's size for POOL_MAX, else NULL. */
graft_status pool_fwd(graft_context *ctx, pool_op *op, int n, cl_mem x, cl_mem y, cl_mem idx,
                      graft_error *e);
graft_status pool_bwd(graft_context *ctx, pool_op *op, int n, cl_mem dy, cl_mem idx, cl_mem dx,
                      graft_error *e);
void pool_op_free(pool_op *op);

/* ---- dropout: Philox4x32-10 keyed by (seed, step); element i of the batch keeps with
 * probability 1-rate and is scaled by 1/(1-rate). The mask is recomputed in backward from the same
 * (seed, step), so nothing is stored and resume reproduces it exactly. row0: the position of the
 * launch's first row in the whole batch (a data-parallel share; 0 on one device), so a split batch
 * gets the whole batch's mask. ---- */
typedef struct dropout_op {
    long size;
    float rate;
    cl_kernel fwd, bwd;
} dropout_op;
graft_status dropout_op_init(graft_context *ctx, dropout_op *op, long size, float rate, graft_error *e);
/* The mask's build options for rate (-DKEEP_THRESHOLD=..u -DSCALE=..f, or -DKEEP_ALL for 0):
 * attention.cl draws its mask the same way. */
void dropout_options(float rate, char *buf, size_t n);
graft_status dropout_fwd(graft_context *ctx, dropout_op *op, int n, long row0, uint64_t seed,
                         uint64_t step, cl_mem x, cl_mem y, graft_error *e);
graft_status dropout_bwd(graft_context *ctx, dropout_op *op, int n, long row0, uint64_t seed,
                         uint64_t step, cl_mem dy, cl_mem dx, graft_error *e);
void dropout_op_free(dropout_op *op);

/* ---- add (k inputs), concat along channels, accumulate ---- */
/* These use kernel_get (kernels owned by the context), so they need no op struct. */
graft_status add2_f32(graft_context *ctx, long count, cl_mem a, cl_mem b, cl_mem y, graft_error *e);
/* y += x over count elements */
graft_status accumulate_f32(graft_context *ctx, long count, cl_mem x, cl_mem y, graft_error *e);
graft_status copy_f32(graft_context *ctx, long count, cl_mem x, cl_mem y, graft_error *e);
/* Copy x [n, cx, hw] into channels [c0, c0+cx) of y [n, cy, hw], and back for backward. */
graft_status concat_fwd(graft_context *ctx, int n, int cx, int cy, int c0, int hw, cl_mem x,
                        cl_mem y, graft_error *e);
graft_status concat_bwd(graft_context *ctx, int n, int cx, int cy, int c0, int hw, cl_mem dy,
                        cl_mem dx, graft_error *e);

/* ---- softmax + cross-entropy with label smoothing, fused and numerically stable ----
 * logits [n, k], labels int [n]. loss_out[i] = per-sample loss; correct[i] = 1 if argmax = label.
 * dlogits = (softmax - smoothed one-hot) / n: the gradient of the mean loss. */
typedef struct xent_op {
    int k, lsz;
    float smoothing;
    cl_kernel fwd_bwd;
} xent_op;
graft_status xent_op_init(graft_context *ctx, xent_op *op, int k, float smoothing, graft_error *e);
/* dlogits may be NULL (evaluation). */
graft_status xent_fwd_bwd(graft_context *ctx, xent_op *op, int n, cl_mem logits, cl_mem labels,
                          cl_mem loss_out, cl_mem correct, cl_mem dlogits, graft_error *e);
void xent_op_free(xent_op *op);

/* ---- optimizers, one fused launch per parameter tensor ----
 * PyTorch formulas. grad g is first extended with weight decay (SGD/Adam: g += wd*w; AdamW decays
 * w *= 1 - lr*wd separately) and L2-SP (g += alpha * (w - w0), w0 = the loaded weights). */
typedef struct optim_hparams {
    int kind; /* optimizer_kind from recipe.h: SGD, MOMENTUM, NESTEROV, ADAM, ADAMW */
    float lr, momentum, beta1, beta2, eps, weight_decay, l2sp;
    long t; /* 1-based step count for Adam's bias correction */
} optim_hparams;
typedef struct optim_op {
    int chunk; /* parameters per work-item */
    cl_kernel sgd, adam;
} optim_op;
graft_status optim_op_init(graft_context *ctx, optim_op *op, graft_error *e);
/* m, v: state buffers (v only for Adam/AdamW; m NULL for plain SGD); w0 NULL unless l2sp > 0. */
graft_status optim_step(graft_context *ctx, optim_op *op, const optim_hparams *h, long count,
                        cl_mem w, cl_mem g, cl_mem m, cl_mem v, cl_mem w0, graft_error *e);
/* The same over elements [base, base + count) of each buffer: a run of tensors kept side by side
 * in one buffer each, updated with one launch. */
graft_status optim_step_at(graft_context *ctx, optim_op *op, const optim_hparams *h, long base,
                           long count, cl_mem w, cl_mem g, cl_mem m, cl_mem v, cl_mem w0,
                           graft_error *e);
void optim_op_free(optim_op *op);

/* ---- domain adaptation (cl/adapt.cl): alignment losses on features f [ns + nt, d], rows
 * [0, ns) source and [ns, ns + nt) target, each domain 2 rows or more ----
 * align_fwd_bwd: weight * loss into out[0] (added to it with accumulate), and weight * dloss/df
 * ADDED into df (df may be NULL: loss only; out may be NULL: gradient only).
 * CORAL: |Cs - Ct|_F^2 / (4 d^2) with C the (m - 1)-normalised feature covariance per domain.
 * MMD: the unbiased multi-kernel MMD^2 estimate over Gaussian kernels of bandwidths 2 s2 x {1/4,
 * 1/2, 1, 2, 4}, s2 the batch's mean squared distance (held constant in the gradient, as DAN). */
/* ALIGN_DANN is no align_op: the compiled pipeline runs DANN's discriminator itself. */
typedef enum align_kind { ALIGN_CORAL = 1, ALIGN_MMD = 2, ALIGN_DANN = 3 } align_kind;
#define ALIGN_BUFFERS 6
typedef struct align_op {
    align_kind kind;
    int d, max_n;
    cl_kernel k1, k2, k3, sum;
    cl_mem b[ALIGN_BUFFERS];
} align_op;
graft_status align_op_init(graft_context *ctx, align_op *op, align_kind kind, int d, int max_n,
                           graft_error *e);
/* Device bytes of the op's workspace (for the plan's memory figures). */
size_t align_op_bytes(align_kind kind, int d, int max_n);
graft_status align_fwd_bwd(graft_context *ctx, align_op *op, int ns, int nt, cl_mem f,
                           float weight, cl_mem df, cl_mem out, bool accumulate, graft_error *e);
void align_op_free(align_op *op);
/* Gradient reversal's backward: dx += -lambda * g over count floats. */
graft_status grl_bwd(graft_context *ctx, long count, float lambda, cl_mem g, cl_mem dx,
                     graft_error *e);
/* Binary cross-entropy with logits [n] (rows < ns labelled 1, the rest 0): per-row loss, and
 * dlogit = scale * (sigmoid - label) (dlogit may be NULL). */
graft_status bce_fwd_bwd(graft_context *ctx, int n, int ns, float scale, cl_mem logit,
                         cl_mem loss, cl_mem dlogit, graft_error *e);
/* out[0] = (accumulate ? out[0] : 0) + scale * sum(part[0, rows)), summed in a fixed order. */
graft_status loss_sum_f32(graft_context *ctx, int rows, float scale, bool accumulate, cl_mem part,
                          cl_mem out, graft_error *e);
/* y[off, off + count) = 0 (floats). */
graft_status zero_rows_f32(graft_context *ctx, long off, long count, cl_mem y, graft_error *e);
#endif

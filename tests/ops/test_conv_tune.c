/* test_conv_tune.c — the convolution path tuner (conv2d_tune): it times the default first, stores
 * a choice that conv2d_op_init then follows, never keeps a path that does not apply to the shape,
 * leaves nothing behind when its time is up, and GRAFT_CONV overrides whatever is stored. A
 * private cache directory keeps its choices away from the other tests. */
#include "opcheck.h"

#include <stdlib.h>
#include <unistd.h>

static graft_context *ctx_in(const char *dir)
{
    graft_context *ctx;
    graft_error e = {0};
    graft_context_options o = {.cache_dir = dir};
    if (graft_context_create(&o, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
    return ctx;
}

static conv_path init_path(graft_context *ctx, const conv2d_desc *d)
{
    conv2d_op op;
    graft_error e = {0};
    if (conv2d_op_init(ctx, &op, d, &e)) {
        CHECKF(0, "conv2d_op_init: %s", e.message);
        return CONV_PATHS;
    }
    conv_path p = conv2d_op_path(&op);
    conv2d_op_free(&op);
    return p;
}

int main(void)
{
    unsetenv("GRAFT_CONV");
    char dir[] = "/tmp/graft-conv-tune-XXXXXX";
    if (!mkdtemp(dir)) SKIP("mkdtemp failed");
    graft_context *ctx = ctx_in(dir);
    printf("device: %s (%s)\n", ctx->info.name, ctx->info.platform);
    bool gpu = ctx->info.type == GRAFT_DEVICE_GPU;
    /* (the 3x3 stride-1 shape below is one the rows path runs) */
    conv_path deflt = gpu ? CONV_IGEMM : CONV_ROWS;
    graft_error e = {0};
    conv2d_desc d = {.c = 3, .h = 6, .w = 5, .o = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                     .ph = 1, .pw = 1, .groups = 1, .bias = true};

    /* untuned: the device type's default */
    CHECK(!conv2d_path_tuned(ctx, &d));
    CHECK(init_path(ctx, &d) == deflt);

    /* out of time before the first candidate: nothing measured, nothing stored */
    conv_tune_result r;
    CHECK_OK(conv2d_tune(ctx, &d, 2, false, 1e-9, &r, err));
    CHECK(!r.stored && !conv2d_path_tuned(ctx, &d));

    /* every path that applies, the default first; the winner is stored and followed */
    CHECK_OK(conv2d_tune(ctx, &d, 2, false, 0, &r, err));
    printf("tuned: im2col %.3f ms, direct %.3f ms, igemm %.3f ms, rows %.3f ms, wino %.3f ms, "
           "wino4 %.3f ms -> %s (default %s)\n",
           1e3 * r.seconds[CONV_IM2COL], 1e3 * r.seconds[CONV_DIRECT], 1e3 * r.seconds[CONV_IGEMM],
           1e3 * r.seconds[CONV_ROWS], 1e3 * r.seconds[CONV_WINO], 1e3 * r.seconds[CONV_WINO4],
           conv2d_path_name(r.best), conv2d_path_name(r.deflt));
    CHECK(r.deflt == deflt && r.seconds[deflt] > 0 && r.stored);
    for (int p = 0; p < CONV_PATHS; p++) CHECKF(r.seconds[p] > 0, "path %d not timed", p);
    CHECK(r.seconds[r.best] <= r.seconds[deflt]);
    CHECK(r.best == deflt || r.seconds[r.best] < 0.93 * r.seconds[deflt]);
    CHECK(conv2d_path_tuned(ctx, &d));
    CHECK(init_path(ctx, &d) == r.best);
    /* and the forward alone, for layers no backward runs through: its own choice, stored apart
     * and followed by a forward-only layer */
    for (int p = 0; p < CONV_PATHS; p++)
        CHECKF(r.fwd_seconds[p] > 0 && r.fwd_seconds[p] < r.seconds[p],
               "path %d: forward %.3f ms of %.3f", p, 1e3 * r.fwd_seconds[p], 1e3 * r.seconds[p]);
    CHECK(r.best_fwd == deflt || r.fwd_seconds[r.best_fwd] < 0.93 * r.fwd_seconds[deflt]);
    conv2d_desc fo = d;
    fo.forward_only = true;
    CHECK(init_path(ctx, &fo) == r.best_fwd);
    const conv_path other = r.best == CONV_DIRECT ? CONV_IM2COL : CONV_DIRECT;
    CHECK(conv2d_path_store(ctx, &fo, other, 1.0));
    CHECK(init_path(ctx, &fo) == other && init_path(ctx, &d) == r.best);

    /* a stored choice is followed by a new context on the same cache (not a memo) */
    CHECK(conv2d_path_store(ctx, &d, CONV_DIRECT, 1.0));
    graft_context_free(ctx);
    ctx = ctx_in(dir);
    CHECK(init_path(ctx, &d) == CONV_DIRECT);
    CHECK(conv2d_path_store(ctx, &d, CONV_IGEMM, 1.0));
    CHECK(init_path(ctx, &d) == CONV_IGEMM);
    CHECK(conv2d_path_store(ctx, &d, CONV_IM2COL, 1.0));
    CHECK(init_path(ctx, &d) == CONV_IM2COL && conv2d_uses_gemm(ctx, &d));

    /* ... unless GRAFT_CONV says otherwise */
    setenv("GRAFT_CONV", "im2col", 1);
    CHECK(init_path(ctx, &d) == CONV_IM2COL);
    unsetenv("GRAFT_CONV");

    /* a device that ends a work-item's loops early (Mesa's llvmpipe): im2col + GEMM on every
     * shape, a stored choice set aside, nothing to tune; GRAFT_CONV still rules */
    conv2d_desc w8 = d; /* a CPU's Winograd shape (below) */
    w8.c = 8;
    w8.o = 16;
    CHECK(conv2d_path_store(ctx, &d, CONV_DIRECT, 1.0));
    ctx->loop_limit = 65535;
    CHECK(init_path(ctx, &d) == CONV_IM2COL && init_path(ctx, &w8) == CONV_IM2COL);
    CHECK(!conv2d_tune_has_rivals(ctx, &w8, false) && !conv2d_tune_has_rivals(ctx, &d, false));
    setenv("GRAFT_CONV", "rows", 1);
    CHECK(init_path(ctx, &d) == CONV_ROWS);
    unsetenv("GRAFT_CONV");
    ctx->loop_limit = 0;
    CHECK(init_path(ctx, &d) == CONV_DIRECT);

    /* a path that cannot run the shape is not a candidate: the direct and rows kernels need a
     * unit stride, so a stride-2 layer times im2col and igemm only (and on a CPU im2col is then
     * the default, which the GEMM-shape list follows) */
    conv2d_desc s2 = d;
    s2.sw = s2.sh = 2;
    CHECK(conv2d_uses_gemm(ctx, &s2) == !gpu);
    CHECK_OK(conv2d_tune(ctx, &s2, 2, false, 0, &r, err));
    CHECK(r.seconds[CONV_DIRECT] == 0 && r.seconds[CONV_ROWS] == 0 && r.seconds[CONV_WINO] == 0 &&
          r.seconds[CONV_IM2COL] > 0 && r.seconds[CONV_IGEMM] > 0);
    CHECK(r.best != CONV_DIRECT && r.best != CONV_ROWS && r.best != CONV_WINO && r.stored);
    CHECK(r.deflt == (gpu ? CONV_IGEMM : CONV_IM2COL));

    /* quick leaves out the other kind of device's paths; where rows is the default it leaves
     * nothing to compare, and then nothing is timed or stored (and the trainer's search skips
     * the shape: conv2d_tune_has_rivals) */
    conv2d_desc q = d;
    q.o = 5;
    CHECK(!conv2d_uses_gemm(ctx, &q)); /* untuned: rows on a CPU, igemm on a GPU */
    CHECK(conv2d_tune_has_rivals(ctx, &q, false));
    CHECK(conv2d_tune_has_rivals(ctx, &q, true) == gpu);
    CHECK_OK(conv2d_tune(ctx, &q, 2, true, 0, &r, err));
    if (gpu)
        CHECK(r.seconds[CONV_DIRECT] == 0 && r.seconds[CONV_ROWS] == 0 &&
              r.seconds[CONV_WINO] == 0 && r.stored);
    else
        CHECK(r.seconds[CONV_IGEMM] == 0 && r.seconds[CONV_DIRECT] == 0 &&
              r.seconds[CONV_IM2COL] == 0 && r.seconds[CONV_ROWS] == 0 &&
              r.seconds[CONV_WINO] == 0 && !r.stored && !conv2d_path_tuned(ctx, &q));
    CHECK(r.best == r.deflt && r.deflt == deflt);
    /* 8 channels or more in and out: Winograd (wino4: the F(4x4) forward) is a CPU's default
     * there, also for a layer that trains (rows below), and quick leaves it alone the same way */
    conv2d_desc wq = d;
    wq.c = 8;
    wq.o = 16;
    CHECK(!wq.forward_only && init_path(ctx, &wq) == (gpu ? CONV_IGEMM : CONV_WINO4));
    CHECK(!conv2d_uses_gemm(ctx, &wq));
    CHECK(conv2d_tune_has_rivals(ctx, &wq, true) == gpu);
    wq.c = 7;
    CHECK(init_path(ctx, &wq) == deflt);
    /* ... but a CPU shape rows cannot run (stride 2: im2col the default) keeps its rivals */
    CHECK(conv2d_tune_has_rivals(ctx, &s2, true));

    /* a bad shape is refused by the quick search too, before anything is built */
    conv2d_desc badq = d;
    badq.kh = 9;
    CHECK(conv2d_tune(ctx, &badq, 2, true, 0, &r, &e) != GRAFT_OK &&
          strstr(e.message, "larger than the padded input"));

    /* a bad shape is an error, not a crash */
    conv2d_desc bad = d;
    bad.kh = 9;
    CHECK(conv2d_tune(ctx, &bad, 2, false, 0, &r, &e) != GRAFT_OK);

    graft_context_free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_conv_tune");
}

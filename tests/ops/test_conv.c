/* test_conv.c — conv2d forward, backward data and backward weight on the test device against a
 * double-precision reference written here as plain loops (scatter form, unlike the kernels'
 * gathers), whose own gradients are checked first by central finite differences. */
#include "opcheck.h"

#include <stdlib.h>

typedef struct conv_case {
    const char *name;
    int n, nsmall; /* the op's batch, and a smaller last batch run through the same op */
    int c, h, w, o, kh, kw, sh, sw, ph, pw, groups, bias;
} conv_case;

static const conv_case full_cases[] = {
    {"3x3 p1, odd sizes", 3, 2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 s2 p1, C 5", 2, 1, 5, 11, 10, 6, 3, 3, 2, 2, 1, 1, 1, 1},
    {"1x1 (im2col skipped)", 2, 1, 6, 5, 5, 7, 1, 1, 1, 1, 0, 0, 1, 0},
    {"1x1 s2", 3, 2, 4, 7, 7, 3, 1, 1, 2, 2, 0, 0, 1, 1},
    {"3x5 s2x1 p1x2 (asymmetric)", 2, 1, 3, 9, 8, 4, 3, 5, 2, 1, 1, 2, 1, 1},
    {"5x2 s1x3 p2x0 (asymmetric)", 2, 1, 2, 10, 11, 3, 5, 2, 1, 3, 2, 0, 1, 0},
    {"groups 2", 2, 1, 6, 8, 7, 4, 3, 3, 1, 1, 1, 1, 2, 1},
    {"groups 3, s2, no bias", 3, 1, 9, 9, 9, 6, 3, 3, 2, 2, 1, 1, 3, 0},
    {"depthwise 3x3 p1", 2, 1, 5, 9, 9, 5, 3, 3, 1, 1, 1, 1, 5, 1},
    {"depthwise 3x3 s2 p1, multiplier 2", 2, 1, 3, 8, 8, 6, 3, 3, 2, 2, 1, 1, 3, 1},
    {"7x7 s2 p3 stem", 2, 1, 3, 20, 20, 8, 7, 7, 2, 2, 3, 3, 1, 1},
    {"batch 1, no padding", 1, 1, 2, 6, 6, 3, 3, 3, 1, 1, 0, 0, 1, 1},
    {"3x5 p1x2, rows of 21 (two vectors at VW 16)", 3, 2, 3, 6, 21, 4, 3, 5, 1, 1, 1, 2, 1, 1},
    {"3x3 p1, rows of 21, odd height (Winograd: two tile vectors, the last partial)", 2, 1, 3, 5,
     21, 4, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p0, rows of 35 (Winograd: a third tile vector of one tile)", 2, 1, 2, 4, 35, 3,
     3, 3, 1, 1, 0, 0, 1, 0},
    {"3x3 p1, C 16, 7x9 (Winograd: partial tiles, odd rows, 16 channels)", 3, 2, 16, 7, 9, 5, 3,
     3, 1, 1, 1, 1, 1, 1},
    {"3x3 p0, C 32, rows of 21, no bias (Winograd)", 2, 1, 32, 6, 21, 3, 3, 3, 1, 1, 0, 0, 1, 0},
    {"3x3 p1, C 8, 4x32 (Winograd with a 2x2 max-pool: whole pooled vectors)", 2, 1, 8, 4, 32, 8,
     3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, C 8, 6x64 (Winograd 4x4: two tile vectors at 8 lanes, a partial tile row, pooled)",
     3, 2, 8, 6, 64, 8, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, C 8, 13x9 (Winograd 4x4: a tile row of six rows, two of four, the last partial)", 3,
     2, 8, 13, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1},
    {"fmnist conv1 1->32 28x28", 64, 17, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1},
    {"fmnist conv2 32->32 28x28", 64, 1, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1},
    {"fmnist conv3 32->64 14x14", 64, 33, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1},
    {"fmnist conv4 64->64 14x14", 64, 5, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1},
};

static const conv_case small_cases[] = {
    {"5x5 p0, C 6, 14x14 (LeNet's conv2: its weight gradient a split K)", 24, 1, 6, 14, 14, 16,
     5, 5, 1, 1, 0, 0, 1, 1},
    {"3x3 p1", 2, 1, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1},
    {"groups 2, s2", 2, 1, 4, 6, 5, 2, 3, 3, 2, 2, 1, 1, 2, 0},
    {"depthwise 3x3", 1, 1, 3, 4, 4, 3, 3, 3, 1, 1, 1, 1, 3, 1},
    {"2x3 p0x1, rows of 18", 2, 1, 2, 3, 18, 3, 2, 3, 1, 1, 0, 1, 1, 1},
    {"3x3 p1, rows of 4, odd height", 2, 1, 2, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, rows of 18 (Winograd at width 16: 16 tiles a vector, two stores, one partial)", 2,
     1, 2, 3, 18, 3, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, rows of 11, height 3 (Winograd: two tile vectors at 4 lanes)", 2, 1, 2, 3, 11, 3, 3,
     3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, C 16, 5x7 (Winograd, 16 channels)", 2, 1, 16, 5, 7, 3, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, 4x10 (Winograd with a 2x2 max-pool)", 2, 1, 3, 4, 10, 3, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, C 4, 6x14 (Winograd 4x4: samples past n in a vector, a partial tile row, pooled)", 3,
     2, 4, 6, 14, 4, 3, 3, 1, 1, 1, 1, 1, 1},
    {"3x3 p1, C 3, 10x6 (Winograd 4x4: a tile row of six rows, then one of four, pooled)", 2, 1, 3,
     10, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1},
};

typedef struct conv_shape {
    int n, c, h, w, o, kh, kw, sh, sw, ph, pw, g, oh, ow, bias;
} conv_shape;

static conv_shape shape_of(const conv_case *k, int n)
{
    conv_shape s = {n,     k->c,  k->h,  k->w,      k->o, k->kh, k->kw,  k->sh,
                    k->sw, k->ph, k->pw, k->groups, 0,    0,     k->bias};
    s.oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
    s.ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
    return s;
}

/* y = conv(x, w) + b */
static void ref_fwd(const conv_shape *s, const double *x, const double *w, const double *b,
                    double *y)
{
    int cg = s->c / s->g, og = s->o / s->g;
    for (int i = 0; i < s->n; i++)
        for (int o = 0; o < s->o; o++) {
            int g = o / og;
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    double acc = s->bias ? b[o] : 0.0;
                    for (int cc = 0; cc < cg; cc++)
                        for (int ky = 0; ky < s->kh; ky++)
                            for (int kx = 0; kx < s->kw; kx++) {
                                int iy = oy * s->sh - s->ph + ky, ix = ox * s->sw - s->pw + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                int c = g * cg + cc;
                                acc += w[((o * cg + cc) * s->kh + ky) * s->kw + kx] *
                                       x[((i * s->c + c) * s->h + iy) * s->w + ix];
                            }
                    y[((i * s->o + o) * s->oh + oy) * s->ow + ox] = acc;
                }
        }
}

/* Scatter each output gradient to the inputs and weights it came from. */
static void ref_bwd(const conv_shape *s, const double *x, const double *w, const double *dy,
                    double *dx, double *dw, double *db)
{
    int cg = s->c / s->g, og = s->o / s->g;
    memset(dx, 0, sizeof(double) * s->n * s->c * s->h * s->w);
    memset(dw, 0, sizeof(double) * s->o * cg * s->kh * s->kw);
    memset(db, 0, sizeof(double) * s->o);
    for (int i = 0; i < s->n; i++)
        for (int o = 0; o < s->o; o++) {
            int g = o / og;
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    double gy = dy[((i * s->o + o) * s->oh + oy) * s->ow + ox];
                    db[o] += gy;
                    for (int cc = 0; cc < cg; cc++)
                        for (int ky = 0; ky < s->kh; ky++)
                            for (int kx = 0; kx < s->kw; kx++) {
                                int iy = oy * s->sh - s->ph + ky, ix = ox * s->sw - s->pw + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                int c = g * cg + cc;
                                long xi = ((long)(i * s->c + c) * s->h + iy) * s->w + ix;
                                long wi = ((o * cg + cc) * s->kh + ky) * s->kw + kx;
                                dx[xi] += gy * w[wi];
                                dw[wi] += gy * x[xi];
                            }
                }
        }
}

static double *to_double(const float *p, long n)
{
    double *d = malloc(sizeof(double) * (size_t)n);
    for (long i = 0; i < n; i++)
        d[i] = p[i];
    return d;
}

/* L = sum(y * dy): its gradient is what ref_bwd computes. */
static double ref_loss(const conv_shape *s, const double *x, const double *w, const double *b,
                       const double *dy, double *ybuf)
{
    ref_fwd(s, x, w, b, ybuf);
    long ny = (long)s->n * s->o * s->oh * s->ow;
    double l = 0;
    for (long i = 0; i < ny; i++)
        l += ybuf[i] * dy[i];
    return l;
}

/* Central differences at up to 12 random coordinates of one tensor; returns the max error
 * normalised by the largest gradient entry. */
static double fd_check(const conv_shape *s, double *x, double *w, double *b, const double *dy,
                       double *t, long nt, const double *grad)
{
    long ny = (long)s->n * s->o * s->oh * s->ow;
    double *ybuf = malloc(sizeof(double) * (size_t)ny);
    double maxg = 1e-12, maxd = 0, h = 1e-3;
    for (long i = 0; i < nt; i++)
        maxg = fmax(maxg, fabs(grad[i]));
    for (int k = 0; k < 12; k++) {
        long j = (long)(oc_uniform() * (double)nt);
        double keep = t[j];
        t[j] = keep + h;
        double lp = ref_loss(s, x, w, b, dy, ybuf);
        t[j] = keep - h;
        double lm = ref_loss(s, x, w, b, dy, ybuf);
        t[j] = keep;
        maxd = fmax(maxd, fabs((lp - lm) / (2 * h) - grad[j]));
    }
    free(ybuf);
    return maxd / maxg;
}

/* Elements past the first `valid` must still hold the NaN poison. */
static int tail_untouched(const float *p, long valid, long total)
{
    for (long i = valid; i < total; i++)
        if (!isnan(p[i])) return 0;
    return 1;
}


/* Other weights than wf (-wf / 2), for the checks that a kept Winograd transform is not reused
 * where it must not be. malloc'ed. */
static float *other_weights(const float *wf, long nw)
{
    float *wn = malloc(sizeof(float) * (size_t)nw);
    for (long i = 0; i < nw; i++) wn[i] = -0.5f * wf[i];
    return wn;
}

/* w_const (a frozen layer): the Winograd weights are transformed once and reused while the same
 * buffer comes back, even when its contents change behind the op's back, until the caller clears
 * wino_u_of and wino4_u_of; then they follow the new weights. y0: conv2d_fwd's output with
 * w = wf. */
static void check_const(graft_context *ctx, conv2d_op *op, const conv_case *k, int n, long ny,
                        const float *y0, const float *wf, long nw, cl_mem bx, cl_mem bw, cl_mem bb,
                        cl_mem ws, long nws)
{
    cl_mem by = oc_buffer(ctx, NULL, ny);
    float *wn = other_weights(wf, nw), *ya, *yb, *yc;
    graft_error e = {0};
    op->w_const = true;
    op->wino_u_of = op->wino4_u_of = NULL;
    CHECK_OK(conv2d_fwd(ctx, op, n, bx, bw, bb, by, ws, err));
    ya = oc_read(ctx, by, ny);
    buffer_write(ctx, bw, 0, wn, sizeof(float) * (size_t)nw, &e);
    if (ws) oc_poison(ctx, ws, nws);
    oc_poison(ctx, by, ny);
    CHECK_OK(conv2d_fwd(ctx, op, n, bx, bw, bb, by, ws, err));
    yb = oc_read(ctx, by, ny);
    op->wino_u_of = op->wino4_u_of = NULL; /* what pipeline_upload does */
    oc_poison(ctx, by, ny);
    CHECK_OK(conv2d_fwd(ctx, op, n, bx, bw, bb, by, ws, err));
    yc = oc_read(ctx, by, ny);
    op->w_const = false;
    op->wino_u_of = op->wino4_u_of = NULL;
    cl_mem by2 = oc_buffer(ctx, NULL, ny);
    CHECK_OK(conv2d_fwd(ctx, op, n, bx, bw, bb, by2, ws, err));
    float *yd = oc_read(ctx, by2, ny);
    buffer_write(ctx, bw, 0, wf, sizeof(float) * (size_t)nw, &e);
    const size_t bytes = sizeof(float) * (size_t)ny;
    CHECKF(memcmp(ya, y0, bytes) == 0, "%s: n=%d w_const: the first pass differs", k->name, n);
    CHECKF(memcmp(yb, y0, bytes) == 0,
           "%s: n=%d w_const: the transform was not reused (the output followed new weights)",
           k->name, n);
    CHECKF(memcmp(yc, yd, bytes) == 0 && memcmp(yc, y0, bytes) != 0,
           "%s: n=%d w_const: after wino_u_of was cleared, the output did not follow the new weights",
           k->name, n);
    printf("  n=%d w_const: transform reused, then renewed\n", n);
    free(wn);
    free(ya);
    free(yb);
    free(yc);
    free(yd);
    clReleaseMemObject(by);
    clReleaseMemObject(by2);
}

/* The forward with the 2x2 max-pool after it (conv2d_fwd_pool, the Winograd path on an even
 * output): y bitwise as conv2d_fwd wrote it (y0), and the pool's output and indexes (outputs
 * poisoned first) as pool.cl computes them from y: the first of equal maxima in row-major order
 * within the window, a NaN winning. */
static void check_pool(graft_context *ctx, conv2d_op *op, const conv_case *k, int n,
                       conv_shape s, const float *y0, cl_mem bx, cl_mem bw, cl_mem bb, cl_mem ws,
                       long nws)
{
    const int ph = s.oh / 2, pw = s.ow / 2;
    const long ny = (long)n * s.o * s.oh * s.ow, np = (long)n * s.o * ph * pw;
    cl_mem by = oc_buffer(ctx, NULL, ny), bp = oc_buffer(ctx, NULL, np),
           bi = oc_buffer(ctx, NULL, np); /* indexes: int32, poisoned as floats */
    if (ws) oc_poison(ctx, ws, nws);
    CHECK_OK(conv2d_fwd_pool(ctx, op, n, bx, bw, bb, by, bp, bi, ws, err));
    float *y = oc_read(ctx, by, ny), *yp = oc_read(ctx, bp, np), *ipf = oc_read(ctx, bi, np);
    CHECKF(memcmp(y, y0, sizeof(float) * (size_t)ny) == 0, "%s: n=%d pooled forward's y differs",
           k->name, n);
    long bad = 0;
    for (long pl = 0; pl < (long)n * s.o; pl++)
        for (int py = 0; py < ph; py++)
            for (int px = 0; px < pw; px++) {
                const float *yq = y0 + pl * s.oh * s.ow;
                int at = 2 * py * s.ow + 2 * px;
                float m = yq[at];
                const int cand[3] = {at + 1, at + s.ow, at + s.ow + 1};
                for (int c = 0; c < 3; c++) {
                    const float v = yq[cand[c]];
                    if (v > m || v != v) {
                        m = v;
                        at = cand[c];
                    }
                }
                const long o = (pl * ph + py) * pw + px;
                int32_t gi;
                memcpy(&gi, &ipf[o], sizeof gi);
                if (memcmp(&yp[o], &m, sizeof m) != 0 || gi != at) bad++;
            }
    CHECKF(bad == 0, "%s: n=%d pooled forward: %ld of %ld outputs or indexes differ", k->name, n,
           bad, np);
    printf("  n=%d pooled forward (2x2 max-pool fused): %ld outputs, %ld differ\n", n, np, bad);
    {
        /* without y and the indexes (an evaluation): the same pooled output, bitwise */
        cl_mem bp2 = oc_buffer(ctx, NULL, np);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_fwd_pool(ctx, op, n, bx, bw, bb, NULL, bp2, NULL, ws, err));
        float *yp2 = oc_read(ctx, bp2, np);
        CHECKF(memcmp(yp2, yp, sizeof(float) * (size_t)np) == 0,
               "%s: n=%d pooled forward without y: the pooled output differs", k->name, n);
        free(yp2);
        clReleaseMemObject(bp2);
    }

    /* the backward from the pool's gradient (conv2d_bwd_pool): bitwise conv2d_bwd's from the
     * full-size gradient pool_bwd would have made (each window's to its winner, 0 elsewhere) */
    const long nx = (long)n * s.c * s.h * s.w, nw = (long)s.o * s.c * s.kh * s.kw;
    float *gp = malloc(sizeof(float) * (size_t)np), *gf = calloc((size_t)ny, sizeof(float));
    oc_fill(gp, np, -1, 1);
    for (long o = 0; o < np; o++) {
        int32_t gi;
        memcpy(&gi, &ipf[o], sizeof gi);
        gf[o / ((long)ph * pw) * s.oh * s.ow + gi] = gp[o];
    }
    cl_mem bgp = oc_buffer(ctx, gp, np), bgf = oc_buffer(ctx, gf, ny);
    cl_mem dx[2], dw[2], db[2];
    for (int v = 0; v < 2; v++) {
        dx[v] = oc_buffer(ctx, NULL, nx);
        dw[v] = oc_buffer(ctx, NULL, nw);
        db[v] = oc_buffer(ctx, NULL, s.o);
        if (ws) oc_poison(ctx, ws, nws);
        if (v)
            CHECK_OK(conv2d_bwd_pool(ctx, op, n, bx, by, bgp, bi, bw, dx[v], dw[v],
                                     bb ? db[v] : NULL, ws, err));
        else
            CHECK_OK(conv2d_bwd(ctx, op, n, bx, by, bgf, bw, dx[v], dw[v], bb ? db[v] : NULL, ws,
                                err));
    }
    const struct {
        const char *what;
        cl_mem *m;
        long count;
    } outs[3] = {{"dx", dx, nx}, {"dw", dw, nw}, {"db", db, bb ? s.o : 0}};
    for (int q = 0; q < 3; q++) {
        if (!outs[q].count) continue;
        float *a = oc_read(ctx, outs[q].m[0], outs[q].count);
        float *b = oc_read(ctx, outs[q].m[1], outs[q].count);
        CHECKF(memcmp(a, b, sizeof(float) * (size_t)outs[q].count) == 0,
               "%s: n=%d backward from the pool's gradient: %s differs", k->name, n,
               outs[q].what);
        free(a);
        free(b);
    }
    for (int v = 0; v < 2; v++) {
        clReleaseMemObject(dx[v]);
        clReleaseMemObject(dw[v]);
        clReleaseMemObject(db[v]);
    }
    clReleaseMemObject(bgp);
    clReleaseMemObject(bgf);
    free(gp);
    free(gf);
    free(y);
    free(yp);
    free(ipf);
    clReleaseMemObject(by);
    clReleaseMemObject(bp);
    clReleaseMemObject(bi);
}

/* conv2d_fwd_io (evaluation pipelines: the producer writes the consumer's padded input): x taken
 * already padded in the layer's own layout (the x argument NULL, so not read), the output (the
 * pool's, fused) written into a padded layout of other pitch and rows, and both at once: bitwise
 * what conv2d_fwd / conv2d_fwd_pool write, with nothing written outside the images (every other
 * float of the buffer keeps its sentinel). */
static void check_io(graft_context *ctx, conv2d_op *op, const conv_case *k, int n, conv_shape s,
                     const float *xf, const float *y0, cl_mem bx, cl_mem bw, cl_mem bb,
                     cl_mem ws, long nws)
{
    conv2d_xpad xl;
    if (!conv2d_xpad_layout(ctx, op, n, &xl)) return;
    const long xpf = (long)(xl.bytes / sizeof(float)), plane = (long)xl.rows * xl.pitch;
    CHECKF(xpf == (long)n * s.c * plane && xl.rows >= s.h + 2 * s.ph &&
               xl.off == (long)s.ph * xl.pitch + s.pw && xl.pitch >= s.w + 2 * s.pw,
           "%s: padded layout %d x %d at %ld for %d x %d", k->name, xl.rows, xl.pitch, xl.off,
           s.h, s.w);
    float *xp = calloc((size_t)xpf, sizeof(float));
    for (long pl = 0; pl < (long)n * s.c; pl++)
        for (int r = 0; r < s.h; r++)
            memcpy(xp + pl * plane + xl.off + (long)r * xl.pitch, xf + (pl * s.h + r) * s.w,
                   sizeof(float) * (size_t)s.w);
    xl.buf = oc_buffer(ctx, xp, xpf);
    const uint32_t SENT = 0x7fc0beefu;
    const int pools = conv2d_can_pool(op) ? 2 : 1;
    for (int pool = 0; pool < pools; pool++) {
        const int oh = pool ? s.oh / 2 : s.oh, ow = pool ? s.ow / 2 : s.ow;
        const long nr = (long)n * s.o * oh * ow;
        float *ref = NULL;
        if (pool) { /* the pooled output, as check_pool proved it */
            cl_mem bp = oc_buffer(ctx, NULL, nr);
            if (ws) oc_poison(ctx, ws, nws);
            CHECK_OK(conv2d_fwd_pool(ctx, op, n, bx, bw, bb, NULL, bp, NULL, ws, err));
            ref = oc_read(ctx, bp, nr);
            clReleaseMemObject(bp);
        } else {
            ref = malloc(sizeof(float) * (size_t)nr);
            memcpy(ref, y0, sizeof(float) * (size_t)nr);
        }
        for (int mode = 1; mode <= 3; mode++) { /* 1: xin, 2: out, 3: both */
            conv2d_xpad ol = {.rows = oh + 3, .pitch = ow + 5, .off = 2L * (ow + 5) + 1};
            const long nol = (long)n * s.o * ol.rows * ol.pitch;
            ol.bytes = sizeof(float) * (size_t)nol;
            uint32_t *sent = malloc(ol.bytes);
            for (long q = 0; q < nol; q++) sent[q] = SENT;
            ol.buf = oc_buffer(ctx, (const float *)sent, nol);
            cl_mem bo = oc_buffer(ctx, NULL, nr);
            if (ws) oc_poison(ctx, ws, nws);
            CHECK_OK(conv2d_fwd_io(ctx, op, n, mode & 1 ? NULL : bx, mode & 1 ? &xl : NULL, bw,
                                   bb, pool ? NULL : bo, pool ? bo : NULL, NULL,
                                   mode & 2 ? &ol : NULL, ws, err));
            long bad = 0, stray = 0;
            if (mode & 2) {
                uint32_t *got = (uint32_t *)oc_read(ctx, ol.buf, nol);
                const long pl_size = (long)ol.rows * ol.pitch;
                for (long q = 0; q < nol; q++) {
                    const long pl = q / pl_size, at = q % pl_size - ol.off;
                    const long r = at >= 0 ? at / ol.pitch : -1, c = at >= 0 ? at % ol.pitch : -1;
                    if (r >= 0 && r < oh && c < ow)
                        bad += memcmp(&got[q], &ref[(pl * oh + r) * ow + c], 4) != 0;
                    else
                        stray += got[q] != SENT;
                }
                free(got);
            } else {
                float *got = oc_read(ctx, bo, nr);
                bad = memcmp(got, ref, sizeof(float) * (size_t)nr) != 0;
                free(got);
            }
            CHECKF(bad == 0 && stray == 0,
                   "%s: n=%d forward_io (%s%s%s): %ld outputs differ, %ld written outside",
                   k->name, n, mode & 1 ? "padded input" : "", mode == 3 ? ", " : "",
                   mode & 2 ? "padded output" : "", bad, stray);
            free(sent);
            clReleaseMemObject(ol.buf);
            clReleaseMemObject(bo);
        }
        printf("  n=%d forward into and from padded layouts%s: bitwise, nothing outside\n", n,
               pool ? " (pooled)" : "");
        free(ref);
    }
    free(xp);
    clReleaseMemObject(xl.buf);
}

/* The stem (conv2d_stem_init): where op runs F(4x4), a 3x3 padding-1 layer of 1 or 3 channels in
 * before it (the rows path, its bias and activation: relu, leaky relu; with and without its bias
 * and activation switched on) computed inside op's forward must give bitwise what the two passes
 * give (the stem's output written into op's padded input, then op from there), pooled and not,
 * and op's output within tol of a double-precision reference of the two layers. Elsewhere the
 * stem must not be taken. */
static void check_stem(graft_context *ctx, conv2d_op *op, const conv_case *k, int n, conv_shape s,
                       const double *w, const double *b, cl_mem bw, cl_mem bb, cl_mem ws,
                       long nws, double tol)
{
    conv2d_xpad xl;
    if (!conv2d_xpad_layout(ctx, op, n, &xl)) return;
    const bool fwd_only = op->fwd_only;
    op->fwd_only = true; /* as in a pipeline that never trains: F(4x4) both ways */
    bool want = false;
    /* v 2: the stem made lazily on the F(2x2) path (a pipeline that never trains, where `graft
     * tune` chose that path for the layer alone): conv2d_stem_init moves it to the rows path */
    for (int v = 0; v < 3; v++) {
        const int sc = v ? 3 : 1;
        conv2d_desc sd = {.c = sc, .h = s.h, .w = s.w, .o = s.c, .kh = 3, .kw = 3, .sh = 1,
                          .sw = 1, .ph = 1, .pw = 1, .groups = 1, .bias = v == 0,
                          .epi = {.kind = (v ? ACT_LEAKY_RELU : ACT_RELU) + 1, .slope = 0.1f}};
        conv2d_op st;
        graft_error e = {0};
        /* the stem on the rows (v 2: F(2x2)) path whatever GRAFT_CONV asks of op */
        char *was = getenv("GRAFT_CONV") ? strdup(getenv("GRAFT_CONV")) : NULL;
        setenv("GRAFT_CONV", v == 2 ? "wino" : "rows", 1);
        graft_status rs = v == 2 ? conv2d_op_init_lazy(ctx, &st, &sd, &e)
                                 : conv2d_op_init(ctx, &st, &sd, &e);
        if (was) setenv("GRAFT_CONV", was, 1);
        else unsetenv("GRAFT_CONV");
        free(was);
        CHECKF(!rs, "%s: stem init: %s", k->name, e.message);
        if (rs) break;
        CHECKF(v < 2 || !st.rows_pad_x, "%s: a lazy stem built its program at init", k->name);
        bool fits = false;
        if (v < 2)
            want = op->wino4_fwd && st.rows_fwd && s.kh == 3 && s.kw == 3 && s.sh == 1 &&
                   s.sw == 1 && s.g == 1;
        CHECK_OK(conv2d_stem_init(ctx, op, &st, &fits, err));
        CHECKF(fits == want, "%s: the stem %s", k->name, want ? "is not taken" : "is taken");
        if (!fits) {
            conv2d_op_free(&st);
            break;
        }
        CHECKF(conv2d_op_path(&st) == CONV_ROWS && (v < 2 || !st.rows_pad_x),
               "%s: a stem taken is not a lazy rows op (path %s)", k->name,
               conv2d_path_name(conv2d_op_path(&st)));
        const conv_shape ss = {n, sc, s.h, s.w, s.c, 3, 3, 1, 1, 1, 1, 1, s.h, s.w, sd.bias};
        const long nsx = (long)n * sc * s.h * s.w, nsw = (long)s.c * sc * 9, nmid = (long)n * s.c * s.h * s.w;
        float *sxf = malloc(sizeof(float) * nsx), *swf = malloc(sizeof(float) * nsw),
              *sbf = malloc(sizeof(float) * s.c);
        oc_fill(sxf, nsx, -1, 1);
        oc_fill(swf, nsw, -0.5, 0.5);
        oc_fill(sbf, s.c, -0.5, 0.5);
        cl_mem bsx = oc_buffer(ctx, sxf, nsx), bsw = oc_buffer(ctx, swf, nsw),
               bsb = oc_buffer(ctx, sbf, s.c);
        /* the reference: the stem, its activation, then op */
        double *sx = to_double(sxf, nsx), *sw = to_double(swf, nsw), *sb = to_double(sbf, s.c);
        double *mid = malloc(sizeof(double) * nmid);
        ref_fwd(&ss, sx, sw, sb, mid);
        for (long q = 0; q < nmid; q++)
            if (mid[q] <= 0) mid[q] = v ? mid[q] * (double)0.1f : 0;
        conv_shape so = s;
        so.n = n;
        const long ny = (long)n * s.o * s.oh * s.ow;
        double *yref = malloc(sizeof(double) * ny);
        ref_fwd(&so, mid, w, b, yref);
        const int pools = conv2d_can_pool(op) ? 2 : 1;
        for (int pool = 0; pool < pools; pool++) {
            const long nr = pool ? (long)n * s.o * (s.oh / 2) * (s.ow / 2) : ny;
            /* the two passes: the stem into op's padded input (zeros around), op from there */
            float *zeros = calloc(xl.bytes / sizeof(float), sizeof(float));
            xl.buf = oc_buffer(ctx, zeros, (long)(xl.bytes / sizeof(float)));
            free(zeros);
            cl_mem b2 = oc_buffer(ctx, NULL, nr), b1 = oc_buffer(ctx, NULL, nr);
            if (ws) oc_poison(ctx, ws, nws);
            CHECK_OK(conv2d_fwd_io(ctx, &st, n, bsx, NULL, bsw, sd.bias ? bsb : NULL, NULL,
                                   NULL, NULL, &xl, ws, err));
            CHECK_OK(conv2d_fwd_io(ctx, op, n, NULL, &xl, bw, bb, pool ? NULL : b2,
                                   pool ? b2 : NULL, NULL, NULL, ws, err));
            if (ws) oc_poison(ctx, ws, nws);
            CHECK_OK(conv2d_fwd_stem(ctx, op, n, bsx, bsw, sd.bias ? bsb : NULL, bw, bb,
                                     pool ? NULL : b1, pool ? b1 : NULL, NULL, err));
            float *two = oc_read(ctx, b2, nr), *one = oc_read(ctx, b1, nr);
            long bad = 0;
            for (long q = 0; q < nr; q++) bad += memcmp(&two[q], &one[q], 4) != 0;
            CHECKF(bad == 0, "%s: n=%d stem of %d channels%s: %ld of %ld outputs differ from "
                   "the two passes'", k->name, n, sc, pool ? " (pooled)" : "", bad, nr);
            if (!pool) {
                char what[64];
                snprintf(what, sizeof what, "n=%d forward with a stem of %d", n, sc);
                CHECK_CLOSE(what, one, yref, ny, tol);
            }
            printf("  n=%d stem of %d channels%s in the forward%s: bitwise the two passes'\n",
                   n, sc, v == 2 ? " (made on F(2x2))" : "", pool ? " (pooled)" : "");
            free(two);
            free(one);
            clReleaseMemObject(b1);
            clReleaseMemObject(b2);
            clReleaseMemObject(xl.buf);
        }
        free(sxf), free(swf), free(sbf), free(sx), free(sw), free(sb), free(mid), free(yref);
        clReleaseMemObject(bsx), clReleaseMemObject(bsw), clReleaseMemObject(bsb);
        conv2d_op_free(&st);
    }
    op->fwd_only = fwd_only;
}

static void run_case(graft_context *ctx, const conv_case *k)
{
    conv_shape s = shape_of(k, k->n);
    int cg = s.c / s.g;
    long nx = (long)s.n * s.c * s.h * s.w, nw = (long)s.o * cg * s.kh * s.kw;
    long ny = (long)s.n * s.o * s.oh * s.ow, nb = s.o;
    printf("case %s: n %d (then %d), %dx%dx%d -> %dx%dx%d, kernel %dx%d, stride %dx%d, pad %dx%d, "
           "groups %d%s\n",
           k->name, s.n, k->nsmall, s.c, s.h, s.w, s.o, s.oh, s.ow, s.kh, s.kw, s.sh, s.sw, s.ph,
           s.pw, s.g, s.bias ? ", bias" : "");
    float *xf = malloc(sizeof(float) * nx), *wf = malloc(sizeof(float) * nw);
    float *bf = malloc(sizeof(float) * nb), *dyf = malloc(sizeof(float) * ny);
    oc_fill(xf, nx, -1, 1);
    oc_fill(wf, nw, -0.5, 0.5);
    oc_fill(bf, nb, -1, 1);
    oc_fill(dyf, ny, -1, 1);
    double *x = to_double(xf, nx), *w = to_double(wf, nw), *b = to_double(bf, nb);
    double *dy = to_double(dyf, ny);
    double *y = malloc(sizeof(double) * ny), *dx = malloc(sizeof(double) * nx);
    double *dw = malloc(sizeof(double) * nw), *db = malloc(sizeof(double) * nb);
    ref_fwd(&s, x, w, b, y);
    ref_bwd(&s, x, w, dy, dx, dw, db);

    /* prove the reference's gradients where a forward is cheap enough to repeat */
    double macs = (double)ny * cg * s.kh * s.kw;
    if (macs * 72 < 4e8) {
        double ex = fd_check(&s, x, w, b, dy, x, nx, dx);
        double ew = fd_check(&s, x, w, b, dy, w, nw, dw);
        double eb = s.bias ? fd_check(&s, x, w, b, dy, b, nb, db) : 0;
        printf("  %-40s rel.err %.2e / %.2e / %.2e (tol 1e-06)\n",
               "reference vs finite diff dx/dw/db", ex, ew, eb);
        CHECKF(ex < 1e-6 && ew < 1e-6 && eb < 1e-6, "%s: finite differences", k->name);
    } else {
        printf("  %-40s skipped (forward too large to repeat)\n", "reference vs finite diff");
    }

    conv2d_desc d = {.c = s.c,
                     .h = s.h,
                     .w = s.w,
                     .o = s.o,
                     .kh = s.kh,
                     .kw = s.kw,
                     .sh = s.sh,
                     .sw = s.sw,
                     .ph = s.ph,
                     .pw = s.pw,
                     .groups = s.g,
                     .bias = s.bias};
    conv2d_op op;
    graft_error e = {0};
    if (conv2d_op_init(ctx, &op, &d, &e)) {
        CHECKF(0, "%s: conv2d_op_init: %s", k->name, e.message);
        goto done;
    }
    CHECK(op.d.oh == s.oh && op.d.ow == s.ow);
    /* GRAFT_CONV=igemm must really run the implicit GEMM (any device with work-groups of 64) */
    const char *path = getenv("GRAFT_CONV");
    const conv_path taken = conv2d_op_path(&op);
    /* a rows or wino layer of 8+ channels evaluates with its program's F(4x4) forward (the full
     * cases only: the small ones of rusticl and Oclgrind have fewer channels, and their F(4x4)
     * kernel is test_conv_wino4's there) */
    const bool eval4 = op.wino4_fwd && taken != CONV_WINO4;
    printf("  path: %s%s\n", conv2d_path_name(taken),
           eval4 ? " (forward only: wino4's F(4x4))" : "");
    if (path && strcmp(path, "igemm") == 0)
        CHECKF(op.ig_fwd && op.ig_data && op.ig_weight, "%s: implicit GEMM not chosen", k->name);
    /* GRAFT_CONV=wino must run Winograd on every 3x3 case the rows path takes (all fit) */
    if (path && strcmp(path, "wino") == 0 && s.kh == 3 && s.kw == 3 && op.rows_wgrad)
        CHECKF(op.wino_fwd && op.wino_dgrad && op.wino_u, "%s: Winograd not chosen", k->name);
    /* GRAFT_CONV=wino4 must run F(4x4) on every 3x3 case the rows path takes where the padded
     * pitch holds the last tile vector (ROUNDQ(vectors of the row) + 2 >= 4 W4T NT4 + 2) and V
     * fits in 160 KiB; W4T the row's tiles rounded up to 4, 8 or 16, at most the lanes. On the
     * rows and wino paths, the same cases with 8+ channels in and out (and only those) must
     * have it for their forward-only passes. */
    if (path && s.kh == 3 && s.kw == 3 && op.rows_wgrad) {
        int vw = (int)ctx->info.vec_float, q;
        vw = vw >= 16 ? 16 : vw >= 8 ? 8 : 4;
        q = vw >= 8 ? 16 : 8;
        int wt = 4, tiles = (s.ow + 3) / 4;
        while (wt < tiles && wt < vw) wt *= 2;
        int nt = (s.ow + 4 * wt - 1) / (4 * wt);
        int padded = ((s.ow + vw - 1) / vw * vw + q - 1) / q * q;
        bool fits = padded >= 4 * wt * nt && 36L * s.c * nt * vw * 4 <= 163840;
        bool has4 = op.wino4_fwd && op.wino4_u && op.wino4_ns == vw / wt;
        if (strcmp(path, "wino4") == 0) {
            printf("  Winograd 4x4: %d tiles a sample, %d samples a vector%s\n", wt, vw / wt,
                   fits ? "" : " (does not fit: not chosen)");
            CHECKF(!fits || has4, "%s: Winograd 4x4 not chosen as expected", k->name);
        } else if (strcmp(path, "rows") == 0 || strcmp(path, "wino") == 0) {
            bool want = fits && s.c >= 8 && s.o >= 8;
            CHECKF(want ? has4 && eval4 : !op.wino4_fwd,
                   "%s: the forward-only F(4x4) %s", k->name,
                   want ? "is missing" : "is there where it should not be");
        }
    }
    if (op.wino_fwd) {
        /* 16 tiles a vector at width 16 where rows (of 17-32, 49-64) lose no more lanes to it
         * than to 8, else 8 (4 below width 8) */
#define LANES(x, wt) (((x) + 2 * (wt) - 1) / (2 * (wt)) * 2 * (wt))
        int vw = (int)ctx->info.vec_float,
            wide = LANES(s.ow, 16) <= LANES(s.ow, 8) && LANES(s.w, 16) <= LANES(s.w, 8);
#undef LANES
        int want = vw >= 16 && wide ? 16 : vw >= 8 ? 8 : 4;
        printf("  Winograd tiles a vector: %d\n", op.wino_tiles);
        CHECKF(op.wino_tiles == want, "%s: %d Winograd tiles a vector, %d expected", k->name,
               op.wino_tiles, want);
    }
    /* the workspace as the pipeline sizes it for this op (the backward's need covers its
     * forward), and the forward's own need alone, for the plain forward: each exactly, so that a
     * pass using more than its op declares fails here (and reads past it under Oclgrind) */
    size_t wsb = conv2d_op_workspace_bytes(ctx, &op, s.n, true, false);
    size_t wsfb = conv2d_op_workspace_bytes(ctx, &op, s.n, false, false);
    CHECKF(wsb <= conv2d_workspace_bytes(&d, s.n) && wsfb <= wsb,
           "%s: workspace %zu (forward %zu) past the bound %zu", k->name, wsb, wsfb,
           conv2d_workspace_bytes(&d, s.n));
    cl_mem bx = oc_buffer(ctx, xf, nx), bw = oc_buffer(ctx, wf, nw), bb = oc_buffer(ctx, bf, nb);
    cl_mem bdy = oc_buffer(ctx, dyf, ny), by = oc_buffer(ctx, NULL, ny);
    cl_mem bdx = oc_buffer(ctx, NULL, nx), bdw = oc_buffer(ctx, NULL, nw);
    cl_mem bdb = oc_buffer(ctx, NULL, nb);
    /* exactly the bytes asked for (poisoned), or no buffer at all when none is needed */
    long nws = (long)(wsb / sizeof(float));
    cl_mem ws = nws ? oc_buffer(ctx, NULL, nws) : NULL;
    const long nwsf = (long)(wsfb / sizeof(float));
    cl_mem wsf = nwsf ? oc_buffer(ctx, NULL, nwsf) : NULL;
    printf("  workspace %ld floats, %ld for a forward\n", nws, nwsf);
    double tol = 1e-4;
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? k->nsmall : s.n;
        if (pass && n == s.n) break;
        conv_shape sn = shape_of(k, n);
        long nxn = (long)n * s.c * s.h * s.w, nyn = (long)n * s.o * s.oh * s.ow;
        if (pass) { /* the reference over the first n samples */
            ref_fwd(&sn, x, w, b, y);
            ref_bwd(&sn, x, w, dy, dx, dw, db);
        }
        char what[64];
        oc_poison(ctx, by, ny);
        if (wsf) oc_poison(ctx, wsf, nwsf);
        CHECK_OK(conv2d_fwd(ctx, &op, n, bx, bw, s.bias ? bb : NULL, by, wsf, err));
        float *got = oc_read(ctx, by, ny);
        snprintf(what, sizeof what, "n=%d forward", n);
        CHECK_CLOSE(what, got, y, nyn, tol);
        CHECKF(tail_untouched(got, nyn, ny), "%s: forward wrote past sample %d", k->name, n);
        if (conv2d_can_pool(&op))
            check_pool(ctx, &op, k, n, s, got, bx, bw, s.bias ? bb : NULL, ws, nws);
        check_io(ctx, &op, k, n, s, xf, got, bx, bw, s.bias ? bb : NULL, ws, nws);
        check_stem(ctx, &op, k, n, s, w, b, bw, s.bias ? bb : NULL, ws, nws, tol);
        if ((taken == CONV_WINO || taken == CONV_WINO4) && !pass)
            check_const(ctx, &op, k, n, ny, got, wf, nw, bx, bw, s.bias ? bb : NULL, ws, nws);
        free(got);
        if (op.wino4_fwd) {
            /* a forward no backward follows (pipeline.c sets fwd_only): an evaluation during a
             * training, a frozen layer. F(4x4), its first tile rows of six where the op has them
             * (wino4_w6); as a frozen layer (w_const) after a forward of rows of four, whose
             * transform lacks the six-row part: it must be renewed, not reused (the six-row
             * part left from other weights first, so that a reuse shows) */
            float *wn = other_weights(wf, nw);
            /* the cases named for it take six-row tiles (GRAFT_WINO6=0 turns them off) */
            const char *w6env = getenv("GRAFT_WINO6");
            CHECKF(!strstr(k->name, "tile row of six") || (w6env && !strcmp(w6env, "0")) ||
                       op.wino4_w6 > 0,
                   "%s: no tile row of six rows", k->name);
            op.w_const = op.fwd_only = true;
            op.wino_u_of = op.wino4_u_of = NULL;
            CHECK_OK(buffer_write(ctx, bw, 0, wn, sizeof(float) * (size_t)nw, err));
            CHECK_OK(conv2d_fwd(ctx, &op, n, bx, bw, s.bias ? bb : NULL, by, wsf, err));
            CHECK_OK(buffer_write(ctx, bw, 0, wf, sizeof(float) * (size_t)nw, err));
            free(wn);
            op.wino_u_of = op.wino4_u_of = NULL; /* what pipeline_upload does */
            op.fwd_only = false;
            CHECK_OK(conv2d_fwd(ctx, &op, n, bx, bw, s.bias ? bb : NULL, by, wsf, err));
            oc_poison(ctx, by, ny);
            if (wsf) oc_poison(ctx, wsf, nwsf);
            op.fwd_only = true;
            CHECK_OK(conv2d_fwd(ctx, &op, n, bx, bw, s.bias ? bb : NULL, by, wsf, err));
            op.fwd_only = op.w_const = false;
            op.wino_u_of = op.wino4_u_of = NULL;
            got = oc_read(ctx, by, ny);
            snprintf(what, sizeof what, "n=%d forward only, F(4x4), %d tile rows of six", n,
                     op.wino4_w6);
            CHECK_CLOSE(what, got, y, nyn, tol);
            CHECKF(tail_untouched(got, nyn, ny), "%s: forward only wrote past sample %d", k->name,
                   n);
            if (conv2d_can_pool(&op)) { /* and with the pool after it, as an evaluation runs */
                op.fwd_only = true;
                check_pool(ctx, &op, k, n, s, got, bx, bw, s.bias ? bb : NULL, ws, nws);
                op.fwd_only = false;
            }
            free(got);
        }

        oc_poison(ctx, bdx, nx);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_bwd_data(ctx, &op, n, bdy, bw, bdx, ws, err));
        got = oc_read(ctx, bdx, nx);
        snprintf(what, sizeof what, "n=%d backward data", n);
        CHECK_CLOSE(what, got, dx, nxn, tol);
        CHECKF(tail_untouched(got, nxn, nx), "%s: backward data wrote past sample %d", k->name, n);
        free(got);

        oc_poison(ctx, bdw, nw);
        oc_poison(ctx, bdb, nb);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_bwd_weight(ctx, &op, n, bx, bdy, bdw, s.bias ? bdb : NULL, ws, err));
        got = oc_read(ctx, bdw, nw);
        snprintf(what, sizeof what, "n=%d backward weight", n);
        CHECK_CLOSE(what, got, dw, nw, tol);
        free(got);
        if (s.bias) {
            got = oc_read(ctx, bdb, nb);
            snprintf(what, sizeof what, "n=%d backward bias", n);
            CHECK_CLOSE(what, got, db, nb, tol);
            free(got);
        }
    }

    /* a training layer's kept input (conv2d_keep_input, the rows path): the weight gradient reads
     * what the forward padded (ws poisoned in between, where the backward used to pad x again);
     * after a forward of other data it must pad x itself, or it would take the other data's
     * gradient (the reference's n = the last pass's) */
    CHECK_OK(conv2d_keep_input(ctx, &op, s.n, err));
    CHECKF(!op.rows_wgrad || op.keep, "%s: rows path without a kept input", k->name);
    if (op.keep) {
        int n = k->nsmall < s.n ? k->nsmall : s.n;
        float *x2f = malloc(sizeof(float) * nx);
        oc_fill(x2f, nx, -3, 3);
        cl_mem bx2 = oc_buffer(ctx, x2f, nx);
        for (int other = 0; other < 2; other++) {
            if (ws) oc_poison(ctx, ws, nws);
            cl_mem xin = other ? bx2 : bx;
            CHECK_OK(conv2d_fwd(ctx, &op, n, xin, bw, s.bias ? bb : NULL, by, ws, err));
            oc_poison(ctx, bdw, nw);
            oc_poison(ctx, bdb, nb);
            if (ws) oc_poison(ctx, ws, nws);
            CHECK_OK(conv2d_bwd_weight(ctx, &op, n, bx, bdy, bdw, s.bias ? bdb : NULL, ws, err));
            float *got = oc_read(ctx, bdw, nw);
            CHECK_CLOSE(other ? "kept input, other x: backward weight"
                              : "kept input: backward weight",
                        got, dw, nw, tol);
            free(got);
            if (s.bias) {
                got = oc_read(ctx, bdb, nb);
                CHECK_CLOSE(other ? "kept input, other x: backward bias"
                                  : "kept input: backward bias",
                            got, db, nb, tol);
                free(got);
            }
        }
        clReleaseMemObject(bx2);
        free(x2f);
    }
    conv2d_op_free(&op);

    /* with a fused relu epilogue: the forward writes relu(conv), and the backward takes relu's
     * output gradient, masked by the output the kernel wrote (so the reference uses that mask),
     * dx/dw/db from one conv2d_bwd; dy may be overwritten (the per-sample path masks in place) */
    d.epi = (epilogue){.kind = ACT_RELU + 1};
    if (conv2d_op_init(ctx, &op, &d, &e)) {
        CHECKF(0, "%s: conv2d_op_init with epilogue: %s", k->name, e.message);
    } else {
        cl_mem bdy2 = oc_buffer(ctx, dyf, ny);
        ref_fwd(&s, x, w, b, y);
        for (long i = 0; i < ny; i++) y[i] = y[i] > 0 ? y[i] : 0;
        oc_poison(ctx, by, ny);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_fwd(ctx, &op, s.n, bx, bw, s.bias ? bb : NULL, by, ws, err));
        float *yg = oc_read(ctx, by, ny);
        CHECK_CLOSE("fused relu: forward", yg, y, ny, tol);
        double *dym = malloc(sizeof(double) * ny);
        for (long i = 0; i < ny; i++) dym[i] = yg[i] > 0.0f ? dy[i] : 0.0;
        ref_bwd(&s, x, w, dym, dx, dw, db);
        oc_poison(ctx, bdx, nx);
        oc_poison(ctx, bdw, nw);
        oc_poison(ctx, bdb, nb);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_bwd(ctx, &op, s.n, bx, by, bdy2, bw, bdx, bdw, s.bias ? bdb : NULL, ws,
                            err));
        float *got = oc_read(ctx, bdx, nx);
        CHECK_CLOSE("fused relu: backward data", got, dx, nx, tol);
        free(got);
        got = oc_read(ctx, bdw, nw);
        CHECK_CLOSE("fused relu: backward weight", got, dw, nw, tol);
        free(got);
        if (s.bias) {
            got = oc_read(ctx, bdb, nb);
            CHECK_CLOSE("fused relu: backward bias", got, db, nb, tol);
            free(got);
        }
        free(yg);
        free(dym);
        clReleaseMemObject(bdy2);
        conv2d_op_free(&op);
    }

    /* the forward's other exact epilogues, relu6 and leaky_relu (the rows forward stores whole
     * vectors through them) */
    for (int a = 0; a < 2; a++) {
        d.epi = (epilogue){.kind = (a ? ACT_LEAKY_RELU : ACT_RELU6) + 1, .slope = 0.1f};
        if (conv2d_op_init(ctx, &op, &d, &e)) {
            CHECKF(0, "%s: conv2d_op_init with epilogue %d: %s", k->name, a, e.message);
            continue;
        }
        ref_fwd(&s, x, w, b, y);
        for (long i = 0; i < ny; i++)
            y[i] = a ? (y[i] > 0 ? y[i] : 0.1 * y[i]) : (y[i] < 0 ? 0 : y[i] > 6 ? 6 : y[i]);
        oc_poison(ctx, by, ny);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_fwd(ctx, &op, s.n, bx, bw, s.bias ? bb : NULL, by, ws, err));
        float *yg = oc_read(ctx, by, ny);
        CHECK_CLOSE(a ? "fused leaky_relu: forward" : "fused relu6: forward", yg, y, ny, tol);
        free(yg);
        conv2d_op_free(&op);
    }
    /* built as if a batchnorm with a relu were folded in (a bias and the relu), run with both
     * switched off (fold_ready: a conv a batchnorm follows): the plain convolution both ways,
     * dy unmasked, no bias read (the bias buffer is poisoned) */
    d.epi = (epilogue){0};
    d.fold_ready = true;
    d.epi_build = (epilogue){.kind = ACT_RELU + 1};
    if (conv2d_op_init(ctx, &op, &d, &e)) {
        CHECKF(0, "%s: conv2d_op_init, fold-ready: %s", k->name, e.message);
    } else {
        cl_mem bdy2 = oc_buffer(ctx, dyf, ny), bnan = oc_buffer(ctx, NULL, nb);
        oc_poison(ctx, bnan, nb);
        ref_fwd(&s, x, w, b, y);
        ref_bwd(&s, x, w, dy, dx, dw, db);
        oc_poison(ctx, by, ny);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_fwd(ctx, &op, s.n, bx, bw, s.bias ? bb : bnan, by, ws, err));
        float *got = oc_read(ctx, by, ny);
        CHECK_CLOSE("fold-ready, run plain: forward", got, y, ny, tol);
        free(got);
        oc_poison(ctx, bdx, nx);
        oc_poison(ctx, bdw, nw);
        if (ws) oc_poison(ctx, ws, nws);
        CHECK_OK(conv2d_bwd(ctx, &op, s.n, bx, by, bdy2, bw, bdx, bdw, NULL, ws, err));
        got = oc_read(ctx, bdx, nx);
        CHECK_CLOSE("fold-ready, run plain: backward data", got, dx, nx, tol);
        free(got);
        got = oc_read(ctx, bdw, nw);
        CHECK_CLOSE("fold-ready, run plain: backward weight", got, dw, nw, tol);
        free(got);
        clReleaseMemObject(bdy2);
        clReleaseMemObject(bnan);
        conv2d_op_free(&op);
    }
    cl_mem all[] = {bx, bw, bb, bdy, by, bdx, bdw, bdb, ws, wsf};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        clReleaseMemObject(all[i]);
done:
    free(xf), free(wf), free(bf), free(dyf);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

/* Bad descriptors are refused with a message that names the problem. */
static void bad_descs(graft_context *ctx)
{
    conv2d_op op;
    graft_error e = {0};
    conv2d_desc d = {
        .c = 6, .h = 5, .w = 5, .o = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .groups = 4};
    CHECK(conv2d_op_init(ctx, &op, &d, &e) != GRAFT_OK && strstr(e.message, "groups 4"));
    d.groups = 1;
    d.kh = 8;
    CHECK(conv2d_op_init(ctx, &op, &d, &e) != GRAFT_OK && strstr(e.message, "larger than"));
    d.kh = 3;
    d.sw = 0;
    CHECK(conv2d_op_init(ctx, &op, &d, &e) != GRAFT_OK && strstr(e.message, "bad shape"));
}

/* The bias gradient of im2col's two forms, in launches of two samples (what a loop-limited device
 * such as Mesa's llvmpipe gets, gemm.c and op_conv.c) against the whole batch in one: the same
 * additions in the same order, so the same bits, and the double-precision sum. C 1 (9 columns:
 * the per-sample form, bias.cl's bias_bwd) and C 4 (36: the batched one, conv2d_bias_packed). */
static void bias_in_pieces(graft_context *ctx)
{
    const char *path = getenv("GRAFT_CONV");
    if (!path || strcmp(path, "im2col") != 0) return;
    for (int c = 1; c <= 4; c += 3) {
        const int n = 7, h = 6, w = 5, o = 3;
        conv2d_desc d = {.c = c, .h = h, .w = w, .o = o, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                         .ph = 1, .pw = 1, .groups = 1, .bias = true};
        conv2d_op op;
        graft_error e = {0};
        if (conv2d_op_init(ctx, &op, &d, &e)) {
            CHECKF(0, "bias in pieces: conv2d_op_init: %s", e.message);
            return;
        }
        const long nx = (long)n * c * h * w, ny = (long)n * o * h * w, nw = (long)o * c * 9;
        float *xf = malloc(sizeof(float) * nx), *dyf = malloc(sizeof(float) * ny),
              *wf = malloc(sizeof(float) * nw);
        oc_fill(xf, nx, -1, 1);
        oc_fill(dyf, ny, -1, 1);
        oc_fill(wf, nw, -1, 1);
        double ref[4] = {0};
        for (int i = 0; i < n; i++)
            for (int q = 0; q < o; q++)
                for (int p = 0; p < h * w; p++) ref[q] += dyf[((long)i * o + q) * h * w + p];
        cl_mem bx = oc_buffer(ctx, xf, nx), bdy = oc_buffer(ctx, dyf, ny), bw = oc_buffer(ctx, wf, nw);
        cl_mem ws = oc_buffer(ctx, NULL, (long)(conv2d_workspace_bytes(&d, n) / sizeof(float)));
        cl_mem db = oc_buffer(ctx, NULL, o);
        float *got[2];
        const long own = ctx->loop_limit;
        for (int v = 0; v < 2; v++) {
            ctx->loop_limit = v ? 2 * 2 * (h * w + 1) : 0; /* two samples a launch */
            CHECK_OK(conv2d_bwd(ctx, &op, n, bx, NULL, bdy, bw, NULL, NULL, db, ws, err));
            got[v] = oc_read(ctx, db, o);
        }
        ctx->loop_limit = own;
        CHECKF(memcmp(got[0], got[1], sizeof(float) * o) == 0,
               "C %d: the bias gradient in pieces differs from the whole batch's", c);
        CHECK_CLOSE("bias gradient, two samples a launch", got[1], ref, o, 1e-5);
        printf("  C %d: the bias gradient in launches of two samples: bitwise the batch's\n", c);
        free(got[0]);
        free(got[1]);
        free(xf);
        free(dyf);
        free(wf);
        clReleaseMemObject(bx);
        clReleaseMemObject(bdy);
        clReleaseMemObject(bw);
        clReleaseMemObject(ws);
        clReleaseMemObject(db);
        conv2d_op_free(&op);
    }
}

int main(void)
{
    graft_context *ctx = oc_context();
    const char *small = getenv("GRAFT_TEST_SMALL");
    int is_small = small && *small && strcmp(small, "0") != 0;
    const conv_case *cases = is_small ? small_cases : full_cases;
    size_t ncases = is_small ? ARRAY_LEN(small_cases) : ARRAY_LEN(full_cases);
    /* LeNet's conv2 is there for devices that run it whole (it found llvmpipe's loop limit,
     * gemm.c); a simulator would spend minutes a variant on it, and its kernels are the smaller
     * cases' (its split-K GEMM is test_gemm's) */
    const bool simulator = strstr(ctx->info.platform, "Oclgrind") != NULL;
    for (size_t i = 0; i < ncases; i++)
        if (!simulator || !strstr(cases[i].name, "LeNet"))
            run_case(ctx, &cases[i]);
    bad_descs(ctx);
    bias_in_pieces(ctx);
    graft_context_free(ctx);
    return test_finish("test_conv");
}

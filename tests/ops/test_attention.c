/* test_attention.c — multi-head self-attention (forward, backward to the input and to every
 * projection weight and bias, packed torchvision and separate Hugging Face layouts) against a
 * double reference whose backward is checked by central finite differences of its forward.
 * Outputs are NaN-poisoned first. Token counts are never a multiple of a GEMM tile; heads = 1 too.
 * Every case runs in both forms (fused kernels, per-head GEMMs); attention dropout (fused form)
 * against the reference with the documented Philox mask, a replica's offset row0 included. */
#include "opcheck.h"

/* ---- double reference. w: q, k, v, o weights [D, D] each; b: their biases [D] (or NULL) ---- */
typedef struct ref_w {
    double *w[4], *b[4];
} ref_w;

/* attention dropout: rate 0 for none; element (i, h, a, b) keeps iff oc_keep of its global index
 * ((row0 + i) heads + h) t t + a t + b */
typedef struct ref_drop {
    float rate;
    uint64_t seed, step;
    long row0;
} ref_drop;

static double drop_factor(const ref_drop *dr, int heads, int t, int i, int h, int a, int b)
{
    if (!dr || dr->rate == 0.0f) return 1.0;
    const long e = ((dr->row0 + i) * heads + h) * (long)t * t + (long)a * t + b;
    return oc_keep(dr->seed, dr->step, dr->rate, e) ? 1.0 / (1.0 - (double)dr->rate) : 0.0;
}

static void ref_fwd(int n, int t, int d, int heads, const double *x, const ref_w *W,
                    const ref_drop *dr, double *y)
{
    const int dh = d / heads;
    double *q[3], *o = calloc((size_t)n * t * d, sizeof(double));
    double *s = malloc((size_t)t * sizeof(double));
    for (int p = 0; p < 3; p++) {
        q[p] = malloc((size_t)n * t * d * sizeof(double));
        for (long r = 0; r < (long)n * t; r++)
            for (int j = 0; j < d; j++) {
                double a = W->b[p] ? W->b[p][j] : 0.0;
                for (int k = 0; k < d; k++) a += x[r * d + k] * W->w[p][j * d + k];
                q[p][r * d + j] = a;
            }
    }
    for (int i = 0; i < n; i++)
        for (int h = 0; h < heads; h++)
            for (int a = 0; a < t; a++) {
                double m = -INFINITY, z = 0;
                for (int b = 0; b < t; b++) {
                    double v = 0;
                    for (int c = 0; c < dh; c++)
                        v += q[0][((long)i * t + a) * d + h * dh + c] *
                             q[1][((long)i * t + b) * d + h * dh + c];
                    s[b] = v / sqrt((double)dh);
                    if (s[b] > m) m = s[b];
                }
                for (int b = 0; b < t; b++) z += (s[b] = exp(s[b] - m));
                for (int c = 0; c < dh; c++) {
                    double v = 0;
                    for (int b = 0; b < t; b++)
                        v += s[b] / z * drop_factor(dr, heads, t, i, h, a, b) *
                             q[2][((long)i * t + b) * d + h * dh + c];
                    o[((long)i * t + a) * d + h * dh + c] = v;
                }
            }
    for (long r = 0; r < (long)n * t; r++)
        for (int j = 0; j < d; j++) {
            double a = W->b[3] ? W->b[3][j] : 0.0;
            for (int k = 0; k < d; k++) a += o[r * d + k] * W->w[3][j * d + k];
            y[r * d + j] = a;
        }
    for (int p = 0; p < 3; p++) free(q[p]);
    free(o);
    free(s);
}

/* The reference gradients by central differences of L = sum(y * r) (the forward is smooth), in
 * double: exact enough (h = 1e-6) to judge float kernels at 1e-4, and simple enough to trust. */
typedef struct problem {
    int n, t, d, heads;
    double *x, *r, *y;
    ref_w W;
    const ref_drop *dr;
} problem;

static double loss(problem *P)
{
    ref_fwd(P->n, P->t, P->d, P->heads, P->x, &P->W, P->dr, P->y);
    double L = 0;
    for (long i = 0; i < (long)P->n * P->t * P->d; i++) L += P->y[i] * P->r[i];
    return L;
}

static void fd_grad(problem *P, double *v, long count, double *g)
{
    const double h = 1e-6;
    for (long i = 0; i < count; i++) {
        const double o = v[i];
        v[i] = o + h;
        const double lp = loss(P);
        v[i] = o - h;
        const double lm = loss(P);
        v[i] = o;
        g[i] = (lp - lm) / (2 * h);
    }
}

static double *dup_d(const float *f, long n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (long i = 0; i < n; i++) d[i] = f[i];
    return d;
}

typedef struct attn_case {
    int n, t, d, heads;
    bool bias, packed;
    float rate; /* attention dropout (fused form only) */
    long row0;  /* the launch's first sample in the global batch */
} attn_case;

static void run_case(graft_context *ctx, const attn_case *c, bool fused)
{
    const int n = c->n, t = c->t, d = c->d;
    const long xs = (long)n * t * d, dd = (long)d * d;
    const ref_drop dr = {c->rate, 0xfedcba9876543210ull, (1ull << 32) + 7, c->row0};
    const attn_rng rng = {dr.seed, dr.step, dr.row0};
    printf("case n=%d t=%d d=%d heads=%d bias=%d %s, %s, dropout %g row0 %ld\n", n, t, d,
           c->heads, c->bias, c->packed ? "packed (torch)" : "separate (hf)",
           fused ? "fused" : "per-head GEMMs", (double)c->rate, c->row0);
    float *x = malloc(xs * sizeof(float)), *dy = malloc(xs * sizeof(float));
    float *w = malloc(4 * dd * sizeof(float)), *b = malloc(4 * d * sizeof(float));
    oc_fill(x, xs, -1.5, 1.5);
    oc_fill(dy, xs, -1.0, 1.0);
    oc_fill(w, 4 * dd, -0.6, 0.6); /* q, k, v, o stacked: q|k|v is torch's in_proj_weight */
    oc_fill(b, 4 * d, -0.3, 0.3);
    problem P = {n, t, d, c->heads, dup_d(x, xs), dup_d(dy, xs), malloc(xs * sizeof(double)),
                 {{0}, {0}}, &dr};
    double *wd = dup_d(w, 4 * dd), *bd = dup_d(b, 4 * d);
    for (int p = 0; p < 4; p++) {
        P.W.w[p] = wd + p * dd;
        P.W.b[p] = c->bias ? bd + p * d : NULL;
    }
    double *yref = malloc(xs * sizeof(double)), *dx = malloc(xs * sizeof(double));
    double *dw = malloc(4 * dd * sizeof(double)), *db = malloc(4 * d * sizeof(double));
    ref_fwd(n, t, d, c->heads, P.x, &P.W, &dr, yref);
    fd_grad(&P, P.x, xs, dx);
    fd_grad(&P, wd, 4 * dd, dw);
    if (c->bias) fd_grad(&P, bd, 4 * d, db);

    attention_op op;
    CHECK_OK(attention_op_init(ctx, &op, t, d, c->heads, c->bias, n + 1, true, fused, c->rate,
                               err));
    /* packed: one [3D, D] weight and [3D] bias for q|k|v (the slices at offsets); separate: a
     * buffer each. The output projection has its own either way. */
    cl_mem bw[4], bb[4], gw[4], gb[4];
    attn_params W = {0}, G = {0};
    for (int p = 0; p < 4; p++) bw[p] = bb[p] = gw[p] = gb[p] = NULL;
    if (c->packed) {
        bw[0] = oc_buffer(ctx, w, 3 * dd);
        bb[0] = oc_buffer(ctx, b, 3 * d);
        gw[0] = oc_buffer(ctx, NULL, 3 * dd);
        gb[0] = oc_buffer(ctx, NULL, 3 * d);
        for (int p = 0; p < 3; p++) {
            W.w[p] = bw[0], W.b[p] = c->bias ? bb[0] : NULL;
            G.w[p] = gw[0], G.b[p] = c->bias ? gb[0] : NULL;
            W.w_off[p] = G.w_off[p] = (size_t)(p * dd);
            W.b_off[p] = G.b_off[p] = (size_t)p * (size_t)d;
        }
    } else {
        for (int p = 0; p < 3; p++) {
            bw[p] = oc_buffer(ctx, w + p * dd, dd);
            bb[p] = oc_buffer(ctx, b + p * d, d);
            gw[p] = oc_buffer(ctx, NULL, dd);
            gb[p] = oc_buffer(ctx, NULL, d);
            W.w[p] = bw[p], W.b[p] = c->bias ? bb[p] : NULL;
            G.w[p] = gw[p], G.b[p] = c->bias ? gb[p] : NULL;
        }
    }
    bw[3] = oc_buffer(ctx, w + 3 * dd, dd);
    bb[3] = oc_buffer(ctx, b + 3 * d, d);
    gw[3] = oc_buffer(ctx, NULL, dd);
    gb[3] = oc_buffer(ctx, NULL, d);
    W.wo = bw[3], W.bo = c->bias ? bb[3] : NULL;
    G.wo = gw[3], G.bo = c->bias ? gb[3] : NULL;
    cl_mem bx = oc_buffer(ctx, x, xs), bdy = oc_buffer(ctx, dy, xs);
    cl_mem by = oc_buffer(ctx, NULL, xs + d), bdx = oc_buffer(ctx, NULL, xs + d);
    /* the op's own buffers poisoned too: nothing may read what it did not write */
    oc_poison(ctx, op.qkv, (long)(n + 1) * t * 3 * d);
    oc_poison(ctx, op.p, (long)(n + 1) * c->heads * t * t);
    oc_poison(ctx, op.o, (long)(n + 1) * t * d);
    oc_poison(ctx, op.dqkv, (long)(n + 1) * t * 3 * d);
    oc_poison(ctx, op.dp, (long)(n + 1) * c->heads * t * t);
    oc_poison(ctx, op.dout, (long)(n + 1) * t * d);

    CHECK_OK(attention_fwd(ctx, &op, n, bx, &W, &rng, by, err));
    float *got = oc_read(ctx, by, xs + d);
    CHECK_CLOSE("fwd y", got, yref, xs, 2e-5);
    CHECK(isnan(got[xs])); /* rows past the batch untouched */
    free(got);
    CHECK_OK(attention_bwd(ctx, &op, n, bx, bdy, &W, &rng, bdx, &G, err));
    got = oc_read(ctx, bdx, xs + d);
    CHECK_CLOSE("bwd dx", got, dx, xs, 1e-4);
    CHECK(isnan(got[xs]));
    free(got);
    const char *names[4] = {"dW query", "dW key", "dW value", "dW out"};
    const char *bnames[4] = {"db query", NULL, "db value", "db out"};
    for (int p = 0; p < 4; p++) {
        const bool pk = c->packed && p < 3;
        got = oc_read(ctx, pk ? gw[0] : gw[p], pk ? 3 * dd : dd);
        CHECK_CLOSE(names[p], got + (pk ? p * dd : 0), dw + p * dd, dd, 1e-4);
        free(got);
        if (!c->bias) continue;
        got = oc_read(ctx, pk ? gb[0] : gb[p], pk ? 3 * d : d);
        if (p == 1) {
            /* the key bias adds q.b to a whole row of scores, which softmax ignores: its true
             * gradient is 0, so judge it against the value bias's gradient scale instead */
            double worst = 0, scale = 1e-12;
            for (int j = 0; j < d; j++) {
                const double a = got[d * (pk ? 1 : 0) + j];
                worst = isfinite(a) ? fmax(worst, fabs(a)) : INFINITY;
                scale = fmax(scale, fabs(db[2 * d + j]));
            }
            printf("  %-40s max %.2e vs db value scale %.2e\n", "db key (true value 0)", worst,
                   scale);
            CHECK(worst <= 1e-5 * scale);
        } else {
            CHECK_CLOSE(bnames[p], got + (pk ? p * d : 0), db + p * d, d, 1e-4);
        }
        free(got);
    }
    /* frozen: dx alone, and the weight gradients untouched */
    oc_poison(ctx, bdx, xs + d);
    oc_poison(ctx, gw[3], dd);
    CHECK_OK(attention_bwd(ctx, &op, n, bx, bdy, &W, &rng, bdx, NULL, err));
    got = oc_read(ctx, bdx, xs);
    CHECK_CLOSE("bwd dx only (frozen)", got, dx, xs, 1e-4);
    free(got);
    got = oc_read(ctx, gw[3], 1);
    CHECK(isnan(got[0]));
    free(got);
    if (c->rate > 0.0f) { /* evaluation (no rng): no mask */
        ref_fwd(n, t, d, c->heads, P.x, &P.W, NULL, yref);
        oc_poison(ctx, by, xs + d);
        CHECK_OK(attention_fwd(ctx, &op, n, bx, &W, NULL, by, err));
        got = oc_read(ctx, by, xs);
        CHECK_CLOSE("eval fwd y (no dropout)", got, yref, xs, 2e-5);
        free(got);
    }

    for (int p = 0; p < 4; p++) {
        cl_mem m[4] = {bw[p], bb[p], gw[p], gb[p]};
        for (int k = 0; k < 4; k++)
            if (m[k]) clReleaseMemObject(m[k]);
    }
    cl_mem all[] = {bx, bdy, by, bdx};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) clReleaseMemObject(all[i]);
    attention_op_free(&op);
    free(x);
    free(dy);
    free(w);
    free(b);
    free(P.x);
    free(P.r);
    free(P.y);
    free(wd);
    free(bd);
    free(yref);
    free(dx);
    free(dw);
    free(db);
}

int main(void)
{
    const int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    static const attn_case full[] = {
        {2, 5, 6, 2, true, true, 0, 0},    /* torch's packed in_proj */
        {2, 7, 8, 1, true, false, 0, 0},   /* heads = 1, Hugging Face's separate tensors */
        {3, 17, 12, 3, false, true, 0, 0}, /* no bias; 17 tokens: no tile divides them */
        {2, 50, 16, 4, true, false, 0, 0}, /* a ViT's 49 patches + class token */
    };
    static const attn_case dropped[] = {
        {2, 7, 8, 2, true, true, 0.3f, 0},   /* attention dropout on one device */
        {2, 17, 12, 3, true, false, 0.5f, 5}, /* a replica's share from sample 5 */
    };
    static const attn_case tiny[] = {
        {2, 5, 6, 2, true, true, 0, 0},
        {1, 3, 4, 1, false, false, 0, 0},
    };
    static const attn_case tiny_dropped[] = {{1, 5, 4, 2, true, false, 0.4f, 3}};
    const attn_case *cases = small ? tiny : full, *dcases = small ? tiny_dropped : dropped;
    size_t nc = small ? ARRAY_LEN(tiny) : ARRAY_LEN(full);
    size_t nd = small ? ARRAY_LEN(tiny_dropped) : ARRAY_LEN(dropped);
    for (size_t i = 0; i < nc; i++) {
        run_case(ctx, &cases[i], true);
        run_case(ctx, &cases[i], false);
    }
    for (size_t i = 0; i < nd; i++) run_case(ctx, &dcases[i], true);

    attention_op op;
    graft_error e = {0};
    CHECK(attention_op_init(ctx, &op, 5, 6, 4, true, 2, false, true, 0, &e) != GRAFT_OK); /* 4 ∤ 6 */
    CHECK(strstr(e.message, "heads=4") != NULL);
    CHECK(attention_op_init(ctx, &op, 5, 8, 2, true, 2, true, false, 0.1f, &e) != GRAFT_OK);
    CHECK(strstr(e.message, "fused") != NULL); /* dropout needs the fused form */
    CHECK(attention_op_init(ctx, &op, 5, 2 * (ATTN_FUSED_MAX_DH + 1), 2, true, 2, true, true, 0,
                            &e) != GRAFT_OK);
    graft_context_free(ctx);
    return test_finish("attention");
}

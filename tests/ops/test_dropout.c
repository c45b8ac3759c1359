/* test_dropout.c — the Philox4x32-10 generator against Random123's known-answer vectors (on the
 * device and in an independent host implementation), then dropout masks: exact agreement with the
 * host reference, forward and backward identical, reproducible per (seed, step), different across
 * steps and seeds, and a keep fraction within statistical bounds. */
#include "opcheck.h"

#include <stdint.h>

/* Random123 1.14, tests/kat_vectors: "philox4x32 10" CTR[4] KEY[2] -> OUT[4] */
static const uint32_t kat[3][10] = {
    {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
     0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
     0x94fdcceb, 0x5001e420, 0x24126ea1},
};

static void test_kat(graft_context *ctx)
{
    uint32_t ctr[3][4], key[3][2], out[3][4];
    for (int i = 0; i < 3; i++) {
        memcpy(ctr[i], kat[i], 16);
        memcpy(key[i], kat[i] + 4, 8);
        uint32_t h[4];
        oc_philox(ctr[i], key[i], h);
        CHECKF(memcmp(h, kat[i] + 6, 16) == 0, "host philox vector %d: %08x %08x %08x %08x", i,
               h[0], h[1], h[2], h[3]);
    }
    graft_error e = {0};
    cl_kernel k;
    CHECK_OK(kernel_get(ctx, "dropout", "", "philox_kat", &k, err));
    cl_mem bc, bk, bo;
    CHECK_OK(buffer_create(ctx, sizeof ctr, &bc, err));
    CHECK_OK(buffer_create(ctx, sizeof key, &bk, err));
    CHECK_OK(buffer_create(ctx, sizeof out, &bo, err));
    CHECK_OK(buffer_write(ctx, bc, 0, ctr, sizeof ctr, err));
    CHECK_OK(buffer_write(ctx, bk, 0, key, sizeof key, err));
    int count = 3;
    clSetKernelArg(k, 0, sizeof count, &count);
    clSetKernelArg(k, 1, sizeof bc, &bc);
    clSetKernelArg(k, 2, sizeof bk, &bk);
    clSetKernelArg(k, 3, sizeof bo, &bo);
    size_t g = 3, l = 1;
    memset(out, 0, sizeof out);
    CHECK_OK(launch(ctx, k, 1, &g, &l, NULL, err));
    CHECK_OK(buffer_read(ctx, bo, 0, out, sizeof out, err));
    for (int i = 0; i < 3; i++) {
        int ok = memcmp(out[i], kat[i] + 6, 16) == 0;
        printf("  philox4x32-10 KAT %d on device: %08x %08x %08x %08x %s\n", i, out[i][0],
               out[i][1], out[i][2], out[i][3], ok ? "ok" : "MISMATCH");
        CHECK(ok);
    }
    clReleaseMemObject(bc);
    clReleaseMemObject(bk);
    clReleaseMemObject(bo);
    (void)e;
}

/* The documented mask: element i keeps iff word i%4 of philox((i/4 lo, hi, step lo, hi),
 * (seed lo, hi)) < round((1 - rate) 2^32). */
static void ref_mask(uint64_t seed, uint64_t step, float rate, long total, unsigned char *keep)
{
    for (long i = 0; i < total; i++) keep[i] = oc_keep(seed, step, rate, i);
}

static long count_diff(const float *a, const float *b, long n)
{
    long d = 0;
    for (long i = 0; i < n; i++) d += (a[i] != 0) != (b[i] != 0);
    return d;
}

static void run_case(graft_context *ctx, int nb, int n, long size, float rate)
{
    const long total = n * size, cap = nb * size;
    const double p = 1.0 - rate;
    printf("dropout rate=%g n=%d (buffers for %d) size=%ld\n", (double)rate, n, nb, size);
    float *x = malloc(cap * sizeof *x), *dy = malloc(cap * sizeof *dy);
    oc_fill(x, cap, 0.5, 2.0); /* nonzero, so a zero output means dropped */
    oc_fill(dy, cap, -2.0, -0.5);
    unsigned char *keep = malloc(cap);
    const uint64_t seed = 0x123456789abcdef0ull, step = (1ull << 33) + 5; /* high words matter */
    ref_mask(seed, step, rate, total, keep);
    const double scale = 1.0 / p;
    double *yref = malloc(total * sizeof *yref), *dxref = malloc(total * sizeof *dxref);
    for (long i = 0; i < total; i++) {
        yref[i] = keep[i] ? x[i] * scale : 0;
        dxref[i] = keep[i] ? dy[i] * scale : 0;
    }

    dropout_op op;
    CHECK_OK(dropout_op_init(ctx, &op, size, rate, err));
    cl_mem bx = oc_buffer(ctx, x, cap), bdy = oc_buffer(ctx, dy, cap), by = oc_buffer(ctx, NULL, cap),
           bdx = oc_buffer(ctx, NULL, cap);
    oc_poison(ctx, by, cap);
    CHECK_OK(dropout_fwd(ctx, &op, n, 0, seed, step, bx, by, err));
    float *y = oc_read(ctx, by, cap);
    long mism = 0;
    for (long i = 0; i < total; i++) mism += (y[i] != 0) != keep[i];
    printf("  %-40s %ld of %ld\n", "mask vs host Philox reference: differ", mism, total);
    CHECK(mism == 0);
    CHECK_CLOSE("fwd y", y, yref, total, 2e-7);
    if (cap > total) CHECK(isnan(y[total]));

    oc_poison(ctx, bdx, cap);
    CHECK_OK(dropout_bwd(ctx, &op, n, 0, seed, step, bdy, bdx, err));
    float *dx = oc_read(ctx, bdx, cap);
    long fb = count_diff(y, dx, total);
    printf("  %-40s %ld\n", "fwd and bwd masks: differ", fb);
    CHECK(fb == 0);
    CHECK_CLOSE("bwd dx", dx, dxref, total, 2e-7);

    /* keep fraction: binomial(total, p), allowed within 5 standard deviations; also per Philox
     * output word, since each word position feeds every fourth element */
    if (rate > 0) {
        long kept = 0, kw[4] = {0}, nw[4] = {0};
        for (long i = 0; i < total; i++) {
            kept += y[i] != 0;
            kw[i % 4] += y[i] != 0;
            nw[i % 4]++;
        }
        double sd = sqrt(total * p * (1 - p));
        printf("  %-40s %.5f (expected %.5f, %.1f sd)\n", "keep fraction", (double)kept / total, p,
               (kept - total * p) / sd);
        CHECK(fabs(kept - total * p) <= 5 * sd);
        for (int j = 0; j < 4; j++)
            if (nw[j] > 100)
                CHECKF(fabs(kw[j] - nw[j] * p) <= 5 * sqrt(nw[j] * p * (1 - p)),
                       "word %d keeps %ld of %ld", j, kw[j], nw[j]);
    }

    /* same (seed, step): the same mask; the next step and another seed: different masks, with
     * about 2p(1-p) of the elements flipping */
    oc_poison(ctx, by, cap);
    CHECK_OK(dropout_fwd(ctx, &op, n, 0, seed, step, bx, by, err));
    float *y2 = oc_read(ctx, by, cap);
    CHECK(memcmp(y, y2, total * sizeof *y) == 0);
    free(y2);
    for (int v = 0; v < 2 && rate > 0; v++) {
        oc_poison(ctx, by, cap);
        CHECK_OK(
            dropout_fwd(ctx, &op, n, 0, v ? seed + 1 : seed, v ? step : step + 1, bx, by, err));
        y2 = oc_read(ctx, by, cap);
        long d = count_diff(y, y2, total);
        double expect = total * 2 * p * (1 - p), sd = sqrt(total * 2 * p * (1 - p));
        printf("  %-40s %ld (expected %.0f)\n", v ? "another seed: elements differing"
                                                  : "next step: elements differing",
               d, expect);
        if (total >= 100) CHECK(d > 0);
        if (total >= 1000) CHECK(fabs(d - expect) <= 6 * sd);
        free(y2);
    }
    /* a smaller batch sees the same mask on its samples: the mask is per element index */
    if (n > 1) {
        oc_poison(ctx, by, cap);
        CHECK_OK(dropout_fwd(ctx, &op, 1, 0, seed, step, bx, by, err));
        y2 = oc_read(ctx, by, cap);
        CHECK(memcmp(y, y2, size * sizeof *y) == 0);
        CHECK(isnan(y2[size]));
        free(y2);
    }
    /* data parallelism: the rows [k, n) launched alone with row0 = k (a replica's share) get the
     * whole batch's mask on those rows, forward and backward, also when k * size is not a
     * multiple of four (the share starts inside a Philox block) */
    for (int k = 1; k < n && rate > 0; k += (n - 1 > 2 ? n / 2 : 1)) {
        long off = (long)k * size, rest = total - off;
        cl_mem sx = oc_buffer(ctx, x + off, rest), sdy = oc_buffer(ctx, dy + off, rest),
               sy = oc_buffer(ctx, NULL, rest), sdx = oc_buffer(ctx, NULL, rest);
        oc_poison(ctx, sy, rest);
        oc_poison(ctx, sdx, rest);
        CHECK_OK(dropout_fwd(ctx, &op, n - k, k, seed, step, sx, sy, err));
        CHECK_OK(dropout_bwd(ctx, &op, n - k, k, seed, step, sdy, sdx, err));
        float *ys = oc_read(ctx, sy, rest), *dxs = oc_read(ctx, sdx, rest);
        printf("  %-40s rows %d.. (element %ld, %ld mod 4)\n", "share launched alone: same mask", k,
               off, off % 4);
        CHECKF(memcmp(ys, y + off, rest * sizeof *y) == 0, "forward share from row %d", k);
        CHECKF(memcmp(dxs, dx + off, rest * sizeof *dx) == 0, "backward share from row %d", k);
        free(ys);
        free(dxs);
        clReleaseMemObject(sx);
        clReleaseMemObject(sdy);
        clReleaseMemObject(sy);
        clReleaseMemObject(sdx);
    }
    clReleaseMemObject(bx);
    clReleaseMemObject(bdy);
    clReleaseMemObject(by);
    clReleaseMemObject(bdx);
    dropout_op_free(&op);
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(keep);
    free(yref);
    free(dxref);
}

int main(void)
{
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    graft_context *ctx = oc_context();
    test_kat(ctx);
    if (small) {
        run_case(ctx, 3, 2, 3 * 5 * 5, 0.3f);
        run_case(ctx, 3, 3, 10, 0.5f); /* shares from rows 1 and 2 start 2 and 0 mod 4 */
    } else {
        run_case(ctx, 4, 4, 3 * 7 * 7, 0.3f);       /* odd size: groups of four straddle samples */
        run_case(ctx, 64, 17, 128, 0.5f);           /* dense features, last batch */
        run_case(ctx, 64, 64, 32 * 14 * 14, 0.25f); /* large: tight statistics */
        run_case(ctx, 1, 1, 7, 0.9f);               /* batch 1, high rate, size not /4 */
        run_case(ctx, 2, 2, 10, 0.0f);              /* rate 0: identity */
        run_case(ctx, 3, 3, 10, 0.5f); /* shares from rows 1 and 2 start 2 and 0 mod 4 */
    }
    dropout_op op;
    graft_error e = {0};
    CHECK(dropout_op_init(ctx, &op, 10, 1.0f, &e) != GRAFT_OK);
    CHECKF(strstr(e.message, "[0, 1)") != NULL, "%s", e.message);
    graft_context_free(ctx);
    return test_finish("dropout");
}

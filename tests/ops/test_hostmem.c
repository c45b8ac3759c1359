/* test_hostmem.c — the kernels and transfers of a step without host synchronisation: step_stats
 * (cl/stats.cl: per-step loss sum and correct count into one slot) and gather_rows (cl/gather.cl:
 * batches from a device-resident feature cache) against double references, with NaN-poisoned
 * outputs whose untouched parts must stay NaN; and pinned staging memory through non-blocking
 * writes and reads. */
#include "opcheck.h"

static void test_stats(graft_context *ctx, int n, int slot)
{
    enum { SLOTS = 4 };
    printf("step_stats n=%d slot=%d\n", n, slot);
    float *loss = malloc((size_t)n * sizeof *loss);
    int *correct = malloc((size_t)n * sizeof *correct);
    oc_fill(loss, n, 0, 5);
    double ref = 0;
    long cref = 0;
    for (int i = 0; i < n; i++) {
        correct[i] = oc_uniform() < 0.5;
        ref += loss[i];
        cref += correct[i];
    }
    cl_mem bl = oc_buffer(ctx, loss, n), bsum = oc_buffer(ctx, NULL, SLOTS), bc, bcs;
    graft_error e = {0};
    int poison[SLOTS] = {-7, -7, -7, -7};
    if (buffer_create(ctx, (size_t)n * sizeof(int), &bc, &e) ||
        buffer_create(ctx, SLOTS * sizeof(int), &bcs, &e))
        exit(1);
    buffer_write(ctx, bc, 0, correct, (size_t)n * sizeof(int), &e);
    buffer_write(ctx, bcs, 0, poison, sizeof poison, &e);
    CHECK_OK(step_stats_record(ctx, n, bl, bc, bsum, bcs, slot, err));
    float *got = oc_read(ctx, bsum, SLOTS);
    int cgot[SLOTS];
    CHECK_OK(buffer_read(ctx, bcs, 0, cgot, sizeof cgot, err));
    CHECK_CLOSE("step_stats loss sum", got + slot, &ref, 1, 1e-6);
    CHECKF(cgot[slot] == cref, "correct %d vs %ld", cgot[slot], cref);
    for (int k = 0; k < SLOTS; k++)
        if (k != slot) CHECK(isnan(got[k]) && cgot[k] == -7); /* other slots untouched */
    /* the same launch twice gives the same bits (fixed summation order) */
    float again;
    CHECK_OK(step_stats_record(ctx, n, bl, bc, bsum, bcs, slot, err));
    CHECK_OK(buffer_read(ctx, bsum, (size_t)slot * sizeof(float), &again, sizeof again, err));
    CHECK(memcmp(&again, got + slot, sizeof again) == 0);
    free(got);
    clReleaseMemObject(bl);
    clReleaseMemObject(bsum);
    clReleaseMemObject(bc);
    clReleaseMemObject(bcs);
    free(loss);
    free(correct);
}

static void test_gather(graft_context *ctx, int rows, int n, int row)
{
    printf("gather_rows table=%d n=%d row=%d\n", rows, n, row);
    long tn = (long)rows * row, out = (long)n * row, cap = out + 3;
    float *t = malloc((size_t)tn * sizeof *t);
    int *idx = malloc((size_t)n * sizeof *idx);
    double *ref = malloc((size_t)cap * sizeof *ref);
    oc_fill(t, tn, -2, 2);
    for (int r = 0; r < n; r++) idx[r] = (int)((r * 7919L + 3) % rows); /* repeats allowed */
    for (int r = 0; r < n; r++)
        for (int j = 0; j < row; j++) ref[(long)r * row + j] = t[(long)idx[r] * row + j];
    cl_mem bt = oc_buffer(ctx, t, tn), by = oc_buffer(ctx, NULL, cap), bi;
    graft_error e = {0};
    if (buffer_create(ctx, (size_t)n * sizeof(int), &bi, &e)) exit(1);
    buffer_write(ctx, bi, 0, idx, (size_t)n * sizeof(int), &e);
    CHECK_OK(rows_gather(ctx, n, row, bt, bi, by, err));
    float *got = oc_read(ctx, by, cap);
    CHECK_CLOSE("gather_rows", got, ref, out, 0);
    CHECK(isnan(got[out]) && isnan(got[cap - 1])); /* nothing written past n rows */
    free(got);
    clReleaseMemObject(bt);
    clReleaseMemObject(by);
    clReleaseMemObject(bi);
    free(t);
    free(idx);
    free(ref);
}

static void test_pinned(graft_context *ctx)
{
    enum { N = 1000 };
    printf("pinned staging round trip\n");
    host_buffer h;
    CHECK_OK(host_buffer_create(ctx, 2 * N * sizeof(float), &h, err));
    if (!h.ptr) return;
    float *up = h.ptr, *down = up + N;
    for (int i = 0; i < N; i++) up[i] = (float)i * 0.5f - 3.0f, down[i] = NAN;
    cl_mem m = oc_buffer(ctx, NULL, N);
    cl_event w = NULL, r = NULL;
    CHECK_OK(transfer_write_async(ctx, m, 0, up, N * sizeof(float), &w, err));
    CHECK_OK(transfer_read_async(ctx, m, 0, down, N * sizeof(float), &r, err));
    long blocked = 0;
    CHECK_OK(transfer_wait(&r, &blocked, err));
    /* the write ran before the read (in order), though its event may report it a little later
     * (rusticl does) */
    CHECK_OK(transfer_wait(&w, &blocked, err));
    CHECK(r == NULL && w == NULL && blocked <= 2);
    CHECK(transfer_done(NULL));
    CHECK(memcmp(up, down, N * sizeof(float)) == 0);
    CHECK_OK(transfer_wait(&r, NULL, err)); /* nothing pending: a no-op */
    clReleaseMemObject(m);
    host_buffer_free(ctx, &h);
    CHECK(h.mem == NULL && h.ptr == NULL);
}

int main(void)
{
    graft_context *ctx = oc_context();
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    const int ns[] = {1, 63, 64, 65, 200, 1000};
    for (int i = 0; i < (small ? 4 : 6); i++) test_stats(ctx, ns[i], i % 4);
    test_gather(ctx, 1, 1, 1);
    test_gather(ctx, 10, 7, 13);
    test_gather(ctx, 50, 64, small ? 100 : 3136);
    test_pinned(ctx);
    graft_context_free(ctx);
    return test_finish("test_hostmem");
}

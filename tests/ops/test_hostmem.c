/* test_hostmem.c — the memory and transfers of a step without host synchronisation: buffer slices
 * (the statistics slots), gather_rows (cl/tensor.cl: batches from a device-resident feature
 * cache) against a reference with NaN-poisoned outputs whose untouched parts must stay NaN, and
 * pinned staging memory through non-blocking writes and reads. */
#include "opcheck.h"

/* Slices of one buffer: what goes through slice k lands at k * stride of the parent, and nothing
 * else moves (the statistics slots of a pipeline). */
static void test_slices(graft_context *ctx, int count, size_t bytes)
{
    size_t stride = buffer_slice_stride(ctx, bytes);
    printf("slices count=%d bytes=%zu stride=%zu\n", count, bytes, stride);
    CHECK(stride >= bytes && stride % 4 == 0);
    long total = (long)((size_t)count * stride / sizeof(float)), per = (long)(bytes / sizeof(float));
    cl_mem parent, slice[8];
    CHECK_OK(buffer_slices(ctx, count, stride, &parent, slice, err));
    oc_poison(ctx, parent, total);
    float *v = malloc((size_t)per * sizeof *v);
    double *ref = malloc((size_t)total * sizeof *ref);
    for (long i = 0; i < total; i++) ref[i] = NAN;
    for (int k = 0; k < count; k += 2) { /* every other slice */
        for (long j = 0; j < per; j++) v[j] = (float)(k * 1000 + j), ref[k * (long)(stride / 4) + j] = v[j];
        graft_error e = {0};
        buffer_write(ctx, slice[k], 0, v, bytes, &e);
    }
    float *got = oc_read(ctx, parent, total);
    long bad = 0;
    for (long i = 0; i < total; i++)
        bad += isnan(ref[i]) ? !isnan(got[i]) : got[i] != (float)ref[i];
    CHECKF(bad == 0, "%ld elements misplaced", bad);
    for (int k = 0; k < count; k++) clReleaseMemObject(slice[k]);
    clReleaseMemObject(parent);
    free(got);
    free(v);
    free(ref);
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
    CHECK_OK(host_buffer_create(ctx, 2 * N * sizeof(float), &h, NULL, err));
    if (!h.ptr) return;
    float *up = h.ptr, *down = up + N;
    for (int i = 0; i < N; i++) up[i] = (float)i * 0.5f - 3.0f, down[i] = NAN;
    cl_mem m = oc_buffer(ctx, NULL, N);
    cl_event w = NULL, r = NULL;
    CHECK_OK(transfer_write_async(ctx, m, 0, up, N * sizeof(float), &w, err));
    CHECK_OK(transfer_read_async(ctx, m, 0, down, N * sizeof(float), &r, err));
    long blocked = 0;
    CHECK_OK(transfer_wait(ctx, &r, &blocked, err));
    /* the write ran before the read (in order), though its event may report it a little later
     * (rusticl does) */
    CHECK_OK(transfer_wait(ctx, &w, &blocked, err));
    CHECK(r == NULL && w == NULL && blocked <= 2);
    CHECK(transfer_done(NULL));
    CHECK(memcmp(up, down, N * sizeof(float)) == 0);
    CHECK_OK(transfer_wait(ctx, &r, NULL, err)); /* nothing pending: a no-op */
    clReleaseMemObject(m);
    host_buffer_free(ctx, &h);
    CHECK(h.mem == NULL && h.ptr == NULL);
}

int main(void)
{
    graft_context *ctx = oc_context();
    int small = getenv("GRAFT_TEST_SMALL") && atoi(getenv("GRAFT_TEST_SMALL"));
    test_slices(ctx, 5, 4);
    test_slices(ctx, 8, 64 * 4);
    test_slices(ctx, 3, small ? 1000 * 4 : 4096 * 4 + 12);
    test_gather(ctx, 1, 1, 1);
    test_gather(ctx, 10, 7, 13);
    test_gather(ctx, 50, 64, small ? 100 : 3136);
    test_gather(ctx, 3, 5, 65); /* a row just past one work-group */
    test_pinned(ctx);
    graft_context_free(ctx);
    return test_finish("test_hostmem");
}

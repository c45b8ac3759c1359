/* test_rrc.c — random-resized-crop in the batcher: reproducible from (seed, epoch), different
 * across epochs, bilinear (values stay within the image's range; a constant image stays
 * constant), and it really crops (most samples differ from the original). */
#include "data.h"
#include "harness.h"

#include <math.h>

enum { N = 16, C = 2, H = 12, W = 10 };

static void batches(const dataset *d, int epoch, float *out)
{
    batcher *b;
    graft_error e = {0};
    if (batcher_create(d, 4, false, true, 0, 42, &b, &e)) {
        fprintf(stderr, "%s\n", e.message);
        exit(1);
    }
    batcher_set_resized_crop(b, 0.08f);
    batcher_start_epoch(b, epoch);
    const float *x;
    const int *y;
    int n;
    long at = 0;
    while (batcher_next(b, &x, &y, &n)) {
        memcpy(out + at, x, (size_t)n * C * H * W * sizeof(float));
        at += (long)n * C * H * W;
    }
    batcher_free(b);
}

int main(void)
{
    static float x[N * C * H * W], a[N * C * H * W], b2[N * C * H * W], c2[N * C * H * W];
    static int y[N];
    for (int i = 0; i < N * C * H * W; i++) {
        int px = i % W, py = (i / W) % H;
        x[i] = (float)(px * 13 + py * 7) / 200.0f; /* a smooth ramp in [0, 1) */
    }
    dataset d = {.n = N, .c = C, .h = H, .w = W, .sample = C * H * W, .x = x, .y = y,
                 .nclasses = 1, .rank = 3};
    batches(&d, 3, a);
    batches(&d, 3, b2);
    batches(&d, 4, c2);
    CHECK(memcmp(a, b2, sizeof a) == 0);  /* same (seed, epoch): same crops */
    CHECK(memcmp(a, c2, sizeof a) != 0);  /* another epoch: other crops */
    float lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < N * C * H * W; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    int inside = 1, changed = 0;
    for (int s = 0; s < N; s++) {
        int diff = 0;
        for (int i = 0; i < C * H * W; i++) {
            float v = a[s * C * H * W + i];
            if (!isfinite(v) || v < lo - 1e-6f || v > hi + 1e-6f) inside = 0;
            if (fabsf(v - x[s * C * H * W + i]) > 1e-6f) diff = 1;
        }
        changed += diff;
    }
    CHECK(inside);
    CHECKF(changed >= N / 2, "only %d of %d samples changed", changed, N);
    for (int i = 0; i < N * C * H * W; i++) x[i] = 0.25f; /* constant stays constant */
    batches(&d, 5, a);
    int constant = 1;
    for (int i = 0; i < N * C * H * W; i++) constant &= fabsf(a[i] - 0.25f) < 1e-6f;
    CHECK(constant);
    return test_finish("rrc");
}

/* opcheck.h — shared helpers for op tests: a device context for the test device, seeded random
 * data, NaN poisoning of outputs, device<->host copies and error measures against double refs. */
#ifndef GRAFT_OPCHECK_H
#define GRAFT_OPCHECK_H

#include "ops.h"
#include "harness.h"

#include <math.h>
#include <stdint.h>

static uint64_t oc_rng = 0x9E3779B97F4A7C15ull;
static inline double oc_uniform(void) /* [0, 1) */
{
    oc_rng ^= oc_rng << 13;
    oc_rng ^= oc_rng >> 7;
    oc_rng ^= oc_rng << 17;
    return (double)(oc_rng >> 11) * (1.0 / 9007199254740992.0);
}
static inline void oc_fill(float *p, long n, double lo, double hi)
{
    for (long i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * oc_uniform());
}

/* Context on GRAFT_DEVICE (or the default); exits 77 (skip) when there is no OpenCL device. */
static inline graft_context *oc_context(void)
{
    graft_context *ctx;
    graft_error e = {0};
    graft_context_options o = {0};
    if (graft_context_create(&o, &ctx, &e)) SKIP("no OpenCL device: %s", e.message);
    printf("device: %s (%s)\n", ctx->info.name, ctx->info.platform);
    return ctx;
}

/* A device buffer holding host data (or NaN-poisoned when host is NULL). Exits on failure. */
/* Poisoning writes NaN from the host rather than with clEnqueueFillBuffer: Oclgrind's
 * --uninitialized does not see fills as initialising, and reported every poisoned element. */
static inline void oc_poison(graft_context *ctx, cl_mem m, long n)
{
    float *nan = malloc((size_t)n * sizeof(float));
    graft_error e = {0};
    if (!nan) exit(1);
    for (long i = 0; i < n; i++) nan[i] = NAN;
    buffer_write(ctx, m, 0, nan, (size_t)n * sizeof(float), &e);
    free(nan);
}

/* A device buffer holding host data (or NaN-poisoned when host is NULL). Exits on failure. */
static inline cl_mem oc_buffer(graft_context *ctx, const float *host, long n)
{
    cl_mem m;
    graft_error e = {0};
    if (buffer_create(ctx, (size_t)n * sizeof(float), &m, &e)) {
        fprintf(stderr, "buffer: %s\n", e.message);
        exit(1);
    }
    if (host) buffer_write(ctx, m, 0, host, (size_t)n * sizeof(float), &e);
    else oc_poison(ctx, m, n);
    return m;
}
static inline float *oc_read(graft_context *ctx, cl_mem m, long n)
{
    float *p = malloc((size_t)n * sizeof(float));
    graft_error e = {0};
    if (!p || buffer_read(ctx, m, 0, p, (size_t)n * sizeof(float), &e)) {
        fprintf(stderr, "read: %s\n", e.message);
        exit(1);
    }
    return p;
}

/* Normalised error: max |got - ref| / max(1e-6, max |ref|); NaN anywhere gives +inf. */
static inline double oc_error(const float *got, const double *ref, long n)
{
    double maxdiff = 0, maxref = 1e-6;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = fabs((double)got[i] - ref[i]);
        if (d > maxdiff) maxdiff = d;
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    }
    return maxdiff / maxref;
}

#define CHECK_CLOSE(what, got, ref, n, tol)                                                        \
    do {                                                                                           \
        double err_ = oc_error(got, ref, n);                                                       \
        printf("  %-40s rel.err %.2e (tol %.0e)\n", what, err_, (double)(tol));                   \
        CHECKF(err_ <= (tol), "%s: relative error %.3e > %.1e", what, err_, (double)(tol));        \
    } while (0)

#endif

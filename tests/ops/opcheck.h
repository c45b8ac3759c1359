/* opcheck.h — shared helpers for op tests: a device context for the test device, seeded random
 * data, NaN poisoning of outputs, device<->host copies and error measures against double refs. */
#ifndef GRAFT_OPCHECK_H
#define GRAFT_OPCHECK_H

#include "ops.h"
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* Host Philox4x32-10, written from the published round function with 64-bit products and the
 * key bumped after each round (the kernel bumps before rounds 2..10: same schedule). */
static inline void oc_philox(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4])
{
    uint32_t c[4] = {ctr_in[0], ctr_in[1], ctr_in[2], ctr_in[3]}, k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
        c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    memcpy(out, c, sizeof c);
}

/* Whether element e of a dropout mask of rate keeps (cl/dropout.cl's documented scheme): word
 * e % 4 of philox((e / 4 lo, hi, step lo, hi), (seed lo, hi)) < round((1 - rate) 2^32). */
static inline bool oc_keep(uint64_t seed, uint64_t step, float rate, long e)
{
    const uint64_t q = (uint64_t)e >> 2;
    uint32_t c[4] = {(uint32_t)q, (uint32_t)(q >> 32), (uint32_t)step, (uint32_t)(step >> 32)};
    uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, r[4];
    oc_philox(c, k, r);
    return (double)r[e & 3] < floor((1.0 - (double)rate) * 4294967296.0 + 0.5);
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

/* Normalised error: max |got - ref| / max(1e-6, max |ref|); NaN anywhere gives +inf. *worst
 * (when not NULL): the element the maximum comes from, or the first non-finite one. */
static inline double oc_error_at(const float *got, const double *ref, long n, long *worst)
{
    double maxdiff = 0, maxref = 1e-6;
    long w = 0;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            if (worst) *worst = i;
            return INFINITY;
        }
        double d = fabs((double)got[i] - ref[i]);
        if (d > maxdiff) maxdiff = d, w = i;
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    }
    if (worst) *worst = w;
    return maxdiff / maxref;
}
static inline double oc_error(const float *got, const double *ref, long n)
{
    return oc_error_at(got, ref, n, NULL);
}

/* On failure it names the worst element too: a flaky failure leaves what it saw in the log. */
#define CHECK_CLOSE(what, got, ref, n, tol)                                                        \
    do {                                                                                           \
        long w_ = 0;                                                                               \
        double err_ = oc_error_at(got, ref, n, &w_);                                               \
        printf("  %-40s rel.err %.2e (tol %.0e)\n", what, err_, (double)(tol));                   \
        if (!(err_ <= (tol))) {                                                                    \
            printf("  worst: element %ld of %ld, got %.9g, reference %.9g\n", w_, (long)(n),      \
                   (double)(got)[w_], (ref)[w_]);                                                  \
        }                                                                                          \
        CHECKF(err_ <= (tol), "%s: relative error %.3e > %.1e", what, err_, (double)(tol));        \
    } while (0)

#endif

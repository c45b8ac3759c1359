/* dropout.cl — inverted dropout with a counter-based RNG, so the mask is a pure function of
 * (seed, step, element index) and backward recomputes it instead of storing it.
 * RNG: Philox4x32-10 (Salmon et al., SC'11; Random123) with key = (seed lo, seed hi) and
 * counter = (element index / 4, 0, step lo, step hi); element i takes output word i % 4, so
 * one Philox call serves four consecutive elements and the mask of an element does not depend on
 * the batch size. Element kept iff word < KEEP_THRESHOLD = round((1 - rate) * 2^32) (host
 * computed), scaled by SCALE = 1 / (1 - rate). The element index is global: the launch's element 0
 * is element `offset` of the whole batch (a data-parallel replica's share starts mid-batch), so a
 * split batch draws the same mask as the whole one; offset 0 is the one-device launch. Build options: -DKEEP_THRESHOLD=<uint>u
 * -DSCALE=<float>f, or -DKEEP_ALL for rate 0. */

#include "philox.cl"

/* The raw generator, for the known-answer test: out[4*i..] = philox(ctr[i], key[i]). */
__kernel void philox_kat(const int count, __global const uint4 *ctr, __global const uint2 *key,
                         __global uint4 *out)
{
    const int i = get_global_id(0);
    if (i < count) out[i] = philox4x32_10(ctr[i], key[i]);
}

#ifndef KEEP_THRESHOLD
#define KEEP_THRESHOLD 0u
#define SCALE 1.0f
#endif

/* One work-item per group of four elements; y = x * mask * SCALE. Forward and backward are the same
 * computation (dx = dy * mask * SCALE), so both kernels share it. */
static void dropout_apply(const long total, const long offset, const uint seed_lo,
                          const uint seed_hi, const uint step_lo, const uint step_hi,
                          __global const float *x, __global float *y)
{
    /* int index math (the host keeps total below 2^31 * 4): 64-bit lanes halve PoCL's vectors */
    const int q = get_global_id(0);
    const long i0 = (long)q * 4;
    if (i0 >= total) return;
#ifdef KEEP_ALL
    if (i0 + 4 <= total) vstore4(vload4(q, x), q, y);
    else
        for (long i = i0; i < total; i++) y[i] = x[i];
#else
    /* elements offset+i0 .. +3 take words (offset+i0) % 4 .. of the counters (offset+i0) / 4 and
     * the next one: one Philox call when offset is a multiple of four (always on one device), two
     * otherwise (sh is the same for every work-item of a launch: no divergence) */
    const long g0 = offset + i0;
    const uint c0 = (uint)(g0 >> 2);
    const int sh = (int)(g0 & 3);
    uint4 r = philox4x32_10((uint4)(c0, 0u, step_lo, step_hi), (uint2)(seed_lo, seed_hi));
    if (sh) {
        const uint4 r2 = philox4x32_10((uint4)(c0 + 1u, 0u, step_lo, step_hi),
                                       (uint2)(seed_lo, seed_hi));
        r = sh == 1 ? (uint4)(r.y, r.z, r.w, r2.x)
            : sh == 2 ? (uint4)(r.z, r.w, r2.x, r2.y)
                      : (uint4)(r.w, r2.x, r2.y, r2.z);
    }
    /* select, not branches: the four lanes stay straight-line code */
    const float4 keep = select((float4)(0.0f), (float4)(SCALE), r < (uint4)(KEEP_THRESHOLD));
    if (i0 + 4 <= total) {
        vstore4(vload4(q, x) * keep, q, y);
    } else { /* the ragged end: total is not a multiple of four */
        y[i0] = x[i0] * keep.x;
        if (i0 + 1 < total) y[i0 + 1] = x[i0 + 1] * keep.y;
        if (i0 + 2 < total) y[i0 + 2] = x[i0 + 2] * keep.z;
    }
#endif
}

__kernel void dropout_fwd(const long total, const long offset, const uint seed_lo,
                          const uint seed_hi, const uint step_lo, const uint step_hi,
                          __global const float *x, __global float *y)
{
    dropout_apply(total, offset, seed_lo, seed_hi, step_lo, step_hi, x, y);
}

__kernel void dropout_bwd(const long total, const long offset, const uint seed_lo,
                          const uint seed_hi, const uint step_lo, const uint step_hi,
                          __global const float *dy, __global float *dx)
{
    dropout_apply(total, offset, seed_lo, seed_hi, step_lo, step_hi, dy, dx);
}

/* dropout.cl — inverted dropout with a counter-based RNG, so the mask is a pure function of
 * (seed, step, element index) and backward recomputes it instead of storing it.
 * RNG: Philox4x32-10 (Salmon et al., SC'11; Random123) with key = (seed lo, seed hi) and
 * counter = (element index / 4 lo, hi, step lo, step hi); element i takes output word i % 4, so
 * one Philox call serves four consecutive elements and the mask of an element does not depend on
 * the batch size. Element kept iff word < KEEP_THRESHOLD = round((1 - rate) * 2^32) (host
 * computed), scaled by SCALE = 1 / (1 - rate). Build options: -DKEEP_THRESHOLD=<uint>u
 * -DSCALE=<float>f, or -DKEEP_ALL for rate 0. */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static uint4 philox4x32_10(uint4 ctr, uint2 key)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0) { /* key schedule: bump before every round but the first */
            key.x += PHILOX_W0;
            key.y += PHILOX_W1;
        }
        const uint lo0 = PHILOX_M0 * ctr.x, hi0 = mul_hi(PHILOX_M0, ctr.x);
        const uint lo1 = PHILOX_M1 * ctr.z, hi1 = mul_hi(PHILOX_M1, ctr.z);
        ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

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
static void dropout_apply(const long total, const uint seed_lo, const uint seed_hi,
                          const uint step_lo, const uint step_hi, __global const float *x,
                          __global float *y)
{
    const long q = get_global_id(0);
    const long i0 = q * 4;
    if (i0 >= total) return;
#ifdef KEEP_ALL
    for (int j = 0; j < 4 && i0 + j < total; j++) y[i0 + j] = x[i0 + j];
#else
    const uint4 r = philox4x32_10((uint4)((uint)q, (uint)(q >> 32), step_lo, step_hi),
                                  (uint2)(seed_lo, seed_hi));
    const uint w[4] = {r.x, r.y, r.z, r.w};
    for (int j = 0; j < 4 && i0 + j < total; j++)
        y[i0 + j] = w[j] < KEEP_THRESHOLD ? x[i0 + j] * SCALE : 0.0f;
#endif
}

__kernel void dropout_fwd(const long total, const uint seed_lo, const uint seed_hi,
                          const uint step_lo, const uint step_hi, __global const float *x,
                          __global float *y)
{
    dropout_apply(total, seed_lo, seed_hi, step_lo, step_hi, x, y);
}

__kernel void dropout_bwd(const long total, const uint seed_lo, const uint seed_hi,
                          const uint step_lo, const uint step_hi, __global const float *dy,
                          __global float *dx)
{
    dropout_apply(total, seed_lo, seed_hi, step_lo, step_hi, dy, dx);
}

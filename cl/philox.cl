/* philox.cl — Philox4x32-10 (Salmon et al., SC'11; Random123), the counter-based generator behind
 * every random mask (dropout.cl, attention.cl): a pure function of (counter, key), so a mask is
 * recomputed in backward instead of stored and does not depend on how a batch is split. */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* One round: two 32x32 -> 64-bit products (vectorised by PoCL; mul_hi was slower there). */
#define PHILOX_ROUND(c, k)                                                                         \
    do {                                                                                           \
        const ulong p0 = (ulong)PHILOX_M0 * c.x, p1 = (ulong)PHILOX_M1 * c.z;                      \
        c = (uint4)((uint)(p1 >> 32) ^ c.y ^ k.x, (uint)p1, (uint)(p0 >> 32) ^ c.w ^ k.y,          \
                    (uint)p0);                                                                     \
    } while (0)
#define PHILOX_BUMP(k) (k += (uint2)(PHILOX_W0, PHILOX_W1))

/* ten rounds, the key bumped between them; written out so every compiler unrolls it */
static uint4 philox4x32_10(uint4 ctr, uint2 key)
{
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key); PHILOX_BUMP(key);
    PHILOX_ROUND(ctr, key);
    return ctr;
}

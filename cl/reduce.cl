/* reduce.cl — reductions over the LSZ work-items that share one row (a batchnorm plane, a sample's
 * logits). -DLSZ=1 on CPU devices: one work-item walks a whole contiguous row, no barrier, and the
 * work-items of a group are independent rows (ROW() is the global id; the host launches groups of
 * 64 rows: PoCL's cost per work-group makes groups of one slow). Elsewhere a power of two up to
 * 256: a work-group per row (ROW() is the group id) strides it with coalesced reads and reduces it
 * here in local memory; every work-item of the group must call these (barriers) and gets the
 * result. Included by the kernel files that use them (tools/embed_cl.py inlines it). */
#ifndef LSZ
#define LSZ 1
#endif
#if LSZ == 1
#define ROW() ((int)get_global_id(0))
#define LID() 0
#else
#define ROW() ((int)get_group_id(0))
#define LID() ((int)get_local_id(0))
#endif

/* Sum of v over the group; red has LSZ entries. RED_T is the type summed (float unless the file
 * including this defines it first, e.g. norm.cl's double accumulator). */
#ifndef RED_T
#define RED_T float
#endif
static RED_T group_sum(__local RED_T *red, RED_T v)
{
#if LSZ == 1
    (void)red;
    return v;
#else
    const int lid = get_local_id(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = LSZ >> 1; s > 0; s >>= 1) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const RED_T r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* red is reused right after */
    return r;
#endif
}

/* A row walked by one work-item (LSZ = 1) is summed in RED_CHAINS interleaved partial sums, element
 * e into sum e % RED_CHAINS, added up in a fixed order at the end (red_chains_sum): a single sum is
 * one chain of dependent adds, 4 cycles an element, and that chain was what bounded the CPU
 * batchnorm (fmnist-cnn's bn1 forward, 64 x 32 planes of 784: ~3.8 ms a step, Xeon, AVX-512).
 * The order is fixed, so results stay the same run to run. RED_CHAINS_LOOP(len, BODY) runs BODY
 * (with `e` the element and `j` its chain) over [0, len), the whole blocks unrolled; the tail past
 * the last whole block goes to chain 0. */
#define RED_CHAINS 8
#define RED_CHAINS_LOOP(len, BODY)                                                                 \
    {                                                                                              \
        int b_ = 0;                                                                                \
        for (; b_ + RED_CHAINS <= (len); b_ += RED_CHAINS)                                         \
            _Pragma("unroll") for (int j = 0; j < RED_CHAINS; j++)                                 \
            {                                                                                      \
                const int e = b_ + j;                                                              \
                BODY                                                                               \
            }                                                                                      \
        for (int e = b_, j = 0; e < (len); e++) {                                                  \
            BODY                                                                                   \
        }                                                                                          \
    }

#if RED_CHAINS != 8
#error "red_chains_sum adds eight partial sums"
#endif
static RED_T red_chains_sum(const RED_T *a)
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* The two sums of a normalisation's backward over a row, as group sums: s1 = the sum of G(e), the
 * incoming gradient at element e (G a function-like macro of the caller's), and s2 = the sum of
 * G(e) * xhat(e), xhat(e) = (px[e] - mean) * invstd in float as the forward computed it. */
#if LSZ == 1
#define RED_GRAD_SUMS(red, len, G, px, mean, invstd, s1, s2)                                       \
    {                                                                                              \
        (void)(red);                                                                               \
        RED_T ga_[RED_CHAINS], gb_[RED_CHAINS];                                                    \
        for (int j = 0; j < RED_CHAINS; j++) ga_[j] = gb_[j] = 0;                                  \
        RED_CHAINS_LOOP((len), const float g_ = G(e); ga_[j] += g_;                                \
                        gb_[j] += (RED_T)g_ * (((px)[e] - (mean)) * (invstd));)                    \
        s1 = red_chains_sum(ga_);                                                                  \
        s2 = red_chains_sum(gb_);                                                                  \
    }
#else
#define RED_GRAD_SUMS(red, len, G, px, mean, invstd, s1, s2)                                       \
    {                                                                                              \
        RED_T sa_ = 0, sb_ = 0;                                                                    \
        for (int e = LID(); e < (len); e += LSZ) {                                                 \
            const float g_ = G(e);                                                                 \
            sa_ += g_;                                                                             \
            sb_ += (RED_T)g_ * (((px)[e] - (mean)) * (invstd));                                    \
        }                                                                                          \
        s1 = group_sum((red), sa_);                                                                \
        s2 = group_sum((red), sb_);                                                                \
    }
#endif

/* The mean of row p[0..len) over the group, and in *m2 the sum of squared deviations from it: two
 * passes over a row that is in cache, so the variance stays accurate when |mean| >> std. */
static RED_T group_mean_m2(__local RED_T *red, __global const float *p, const int len, RED_T *m2)
{
#if LSZ == 1
    (void)red;
    RED_T a[RED_CHAINS], b[RED_CHAINS];
    for (int j = 0; j < RED_CHAINS; j++) a[j] = b[j] = 0;
    RED_CHAINS_LOOP(len, a[j] += p[e];)
    const RED_T mean = red_chains_sum(a) / len;
    RED_CHAINS_LOOP(len, const RED_T d = p[e] - mean; b[j] += d * d;)
    *m2 = red_chains_sum(b);
    return mean;
#else
    const int lid = LID();
    RED_T s = 0;
    for (int e = lid; e < len; e += LSZ) s += p[e];
    const RED_T mean = group_sum(red, s) / len;
    RED_T q = 0;
    for (int e = lid; e < len; e += LSZ) {
        const RED_T d = p[e] - mean;
        q += d * d;
    }
    *m2 = group_sum(red, q);
    return mean;
#endif
}

/* Maximum of v over the group and the lowest index *arg at which it occurs (ties go to the lower
 * index, as a sequential strict '>' scan gives); redf and redi have LSZ entries. */
static float group_max_arg(__local float *redf, __local int *redi, float v, int *arg)
{
#if LSZ == 1
    (void)redf;
    (void)redi;
    return v;
#else
    const int lid = get_local_id(0);
    redf[lid] = v;
    redi[lid] = *arg;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = LSZ >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            const float o = redf[lid + s];
            const int oi = redi[lid + s];
            if (o > redf[lid] || (o == redf[lid] && oi < redi[lid])) {
                redf[lid] = o;
                redi[lid] = oi;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = redf[0];
    *arg = redi[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
#endif
}

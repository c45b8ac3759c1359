/* loss.cl — softmax cross-entropy with label smoothing, fused with its gradient.
 * Build options: -DSMOOTH=<eps>f -DLSZ=<work-items per sample> (reduce.cl: 1 on CPU devices, where
 * one work-item walks a sample's K logits; on GPUs a work-group per sample strides them and
 * reduces in local memory, so 1000 classes cost about what 10 do). With LSZ 1 the class count K
 * comes at run time (argument k), so a transfer's head with its own classes runs the program its
 * pretraining compiled; the group form takes -DK=<classes> and ignores k (PoCL 3.1 crashed in
 * the group loops with a run-time bound, k = 3 at LSZ = 4, which Oclgrind found clean).
 * PyTorch's definition: loss = (1 - eps) * (-log p_y) + eps * mean_j (-log p_j). Everything is
 * computed relative to the row maximum mx, so exp never overflows: with s = sum exp(l_j - mx),
 * -log p_j = log s - (l_j - mx). dlogits is the gradient of the MEAN loss over the n samples:
 * (p_j - t_j) / n with t = (1 - eps) * onehot(y) + eps / K.
 * Outputs: loss[i] (float), correct[i] (int: 1 when the first maximal logit is the label),
 * dlogits; flags say which are written (1 loss, 2 correct, 4 dlogits). A label outside [0, K)
 * gives a NaN loss (and a NaN gradient row) rather than a silent wrong value. */
#include "reduce.cl"

/* A row per sample (reduce.cl). */
#if LSZ == 1
#define K k
#endif
__kernel void xent_fwd_bwd(const int n, const int flags, const int k, __global const float *logits,
                           __global const int *labels, __global float *loss,
                           __global int *correct, __global float *dlogits)
{
    __local float redf[LSZ];
    __local int redi[LSZ];
    const int i = ROW(), lid = LID();
    if (i >= n) return; /* a whole group when LSZ > 1 */
    __global const float *l = logits + (long)i * K;
    const int y = labels[i];
    const bool valid = y >= 0 && y < K;
    float mx = -INFINITY;
    int arg = K;
    /* every loop takes the same trip count in every work-item of a group (j0), the row's end
     * tested inside. With a work-item's own count (j from lid, none where lid >= K), PoCL 3.1's
     * work-group form (LSZ 4, K = 1) gave a wrong gradient in about one run in a hundred when two
     * processes kept the cores busy, and never with one PoCL thread (the cause not pinned down:
     * Oclgrind finds no race); 1,200 such runs of this form all passed */
    for (int j0 = 0; j0 < K; j0 += LSZ) {
        const int j = j0 + lid;
        if (j < K && (l[j] > mx || arg == K)) { /* strict: ties go to the lowest index */
            mx = l[j];
            arg = j;
        }
    }
    mx = group_max_arg(redf, redi, mx, &arg);
    float s = 0.0f, sum_shift = 0.0f;
    for (int j0 = 0; j0 < K; j0 += LSZ) {
        const int j = j0 + lid;
        if (j < K) {
            const float d = l[j] - mx;
            s += exp(d);
            sum_shift += d;
        }
    }
    s = group_sum(redf, s);
    sum_shift = group_sum(redf, sum_shift);
    const float logs = log(s);
    if (lid == 0 && (flags & 1)) {
        const float nll = valid ? logs - (l[valid ? y : 0] - mx) : NAN; /* no load past the row */
        loss[i] = (1.0f - SMOOTH) * nll + SMOOTH * (logs - sum_shift / (float)K);
    }
    if (lid == 0 && (flags & 2)) correct[i] = valid && arg == y;
    if (flags & 4) {
        const float inv_s = 1.0f / s, inv_n = 1.0f / (float)n;
        for (int j0 = 0; j0 < K; j0 += LSZ) {
            const int j = j0 + lid;
            const float t = (j == y ? 1.0f - SMOOTH : 0.0f) + SMOOTH / (float)K;
            if (j < K)
                dlogits[(long)i * K + j] = valid ? (exp(l[j] - mx) * inv_s - t) * inv_n : NAN;
        }
    }
}

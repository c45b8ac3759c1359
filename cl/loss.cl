/* loss.cl — softmax cross-entropy with label smoothing, fused with its gradient.
 * Build options: -DK=<classes> -DSMOOTH=<eps>f. One work-item per sample (K is small for the
 * classifiers Graft trains; the K loops are sequential and unit-stride).
 * PyTorch's definition: loss = (1 - eps) * (-log p_y) + eps * mean_j (-log p_j). Everything is
 * computed relative to the row maximum mx, so exp never overflows: with s = sum exp(l_j - mx),
 * -log p_j = log s - (l_j - mx). dlogits is the gradient of the MEAN loss over the n samples:
 * (p_j - t_j) / n with t = (1 - eps) * onehot(y) + eps / K.
 * Outputs: loss[i] (float), correct[i] (int: 1 when the first maximal logit is the label),
 * dlogits; flags say which are written (1 loss, 2 correct, 4 dlogits). A label outside [0, K)
 * gives a NaN loss (and a NaN gradient row) rather than a silent wrong value. */

__kernel void xent_fwd_bwd(const int n, const int flags, __global const float *logits,
                           __global const int *labels, __global float *loss,
                           __global int *correct, __global float *dlogits)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    __global const float *l = logits + (long)i * K;
    const int y = labels[i];
    const bool valid = y >= 0 && y < K;
    float mx = l[0];
    int arg = 0;
    for (int j = 1; j < K; j++)
        if (l[j] > mx) { /* strict: ties go to the lowest index */
            mx = l[j];
            arg = j;
        }
    float s = 0.0f, sum_shift = 0.0f;
    for (int j = 0; j < K; j++) {
        const float d = l[j] - mx;
        s += exp(d);
        sum_shift += d;
    }
    const float logs = log(s);
    if (flags & 1) {
        const float nll = valid ? logs - (l[y] - mx) : NAN;
        loss[i] = (1.0f - SMOOTH) * nll + SMOOTH * (logs - sum_shift / (float)K);
    }
    if (flags & 2) correct[i] = valid && arg == y;
    if (flags & 4) {
        const float inv_s = 1.0f / s, inv_n = 1.0f / (float)n;
        for (int j = 0; j < K; j++) {
            const float t = (j == y ? 1.0f - SMOOTH : 0.0f) + SMOOTH / (float)K;
            dlogits[(long)i * K + j] = valid ? (exp(l[j] - mx) * inv_s - t) * inv_n : NAN;
        }
    }
}

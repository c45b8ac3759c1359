/* optim.cl — fused optimizer updates following torch.optim (1.13) operation by operation so float
 * results track PyTorch's closely. Every hyperparameter is a runtime argument (schedules change lr
 * every step); the one build option -DCHUNK is how many consecutive parameters a work-item updates:
 * 1 on GPUs (neighbouring work-items, neighbouring floats), more on CPU devices, where PoCL pays per
 * work-item and work-group and a contiguous loop vectorises (a dense layer of 400k weights was
 * 6,250 groups of 64 single updates).
 * The gradient is first extended: g += wd * w (SGD family, Adam; not AdamW) and
 * g += l2sp * (w - w0) (L2-SP towards the loaded weights w0; skipped when l2sp == 0, w0 may then be
 * NULL). `first` is 1 on step t = 1: PyTorch creates the state there (momentum buffer = g, Adam
 * moments from zero), so the state buffers' old contents are never read on that step.
 * Every buffer is indexed from `base`: the pipeline keeps its trained tensors in one buffer each
 * (weights, gradients, moments) and updates a run of neighbours with one launch. */

#ifndef CHUNK
#define CHUNK 1
#endif

/* kind: 0 = plain SGD (m unused, may be NULL), 1 = momentum, 2 = Nesterov. dampening is 0. */
__kernel void optim_sgd(const long count, const int kind, const int first, const float lr,
                        const float momentum, const float wd, const float l2sp,
                        __global float *w, __global const float *g, __global float *m,
                        __global const float *w0, const long base)
{
    const long i0 = base + get_global_id(0) * (long)CHUNK;
    const long i1 = min(i0 + CHUNK, base + count);
    for (long i = i0; i < i1; i++) {
    const float p = w[i];
    float d = g[i];
    if (wd != 0.0f) d = fma(wd, p, d);
    if (l2sp != 0.0f) d = fma(l2sp, p - w0[i], d);
    if (kind != 0) {
        const float buf = first ? d : fma(momentum, m[i], d);
        m[i] = buf;
        d = kind == 2 ? fma(momentum, buf, d) : buf;
    }
    w[i] = p - lr * d;
    }
}

/* decoupled: 0 = Adam (L2 in the gradient), 1 = AdamW (w *= 1 - lr * wd first).
 * step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t), both computed in double on the host:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   w -= step_size * m / (sqrt(v) / bc2_sqrt + eps). */
__kernel void optim_adam(const long count, const int decoupled, const int first, const float lr,
                         const float beta1, const float beta2, const float eps, const float wd,
                         const float l2sp, const float step_size, const float bc2_sqrt,
                         __global float *w, __global const float *g, __global float *m,
                         __global float *v, __global const float *w0, const long base)
{
    const long i0 = base + get_global_id(0) * (long)CHUNK;
    const long i1 = min(i0 + CHUNK, base + count);
    for (long i = i0; i < i1; i++) {
    float p = w[i];
    float d = g[i];
    if (l2sp != 0.0f) d = fma(l2sp, p - w0[i], d);
    if (decoupled) p *= 1.0f - lr * wd;
    else if (wd != 0.0f) d = fma(wd, p, d);
    const float mo = first ? 0.0f : m[i], vo = first ? 0.0f : v[i];
    /* torch 1.13: exp_avg.mul_(b1).add_(g, alpha=1 - b1) */
    const float mn = fma(1.0f - beta1, d, beta1 * mo);
    const float vn = fma(beta2, vo, (1.0f - beta2) * d * d);
    m[i] = mn;
    v[i] = vn;
    w[i] = p - step_size * (mn / (sqrt(vn) / bc2_sqrt + eps));
    }
}

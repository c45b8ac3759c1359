/* adapt.cl — domain-adaptation losses on a feature tensor f [n, D] whose rows [0, ns) are the
 * source batch and rows [ns, n) the target batch (adapt: in a recipe; host side op_adapt.c).
 * Deep CORAL and multi-kernel MMD take their matrix products from the GEMM (covariances, Gram
 * matrix, gradients); these kernels do the element-wise and reduction parts. Gradient reversal and
 * the discriminator's binary cross-entropy serve DANN.
 * Build options: -DD= (feature size). Every kernel checks its bounds: launches are rounded up. */

/* Column-centred rows [r0, r0 + m) of f into xc [m, D]: one work-item per column. */
__kernel void adapt_center(const int r0, const int m, __global const float *f,
                           __global float *xc)
{
    const int j = get_global_id(0);
    if (j >= D) return;
    float s = 0.0f;
    for (int r = 0; r < m; r++) s += f[(long)(r0 + r) * D + j];
    const float mean = s / (float)m;
    for (int r = 0; r < m; r++) xc[(long)r * D + j] = f[(long)(r0 + r) * D + j] - mean;
}

/* CORAL: dm = cs - ct, and each row's sum of squares into partial (one work-item per row). */
__kernel void coral_diff(__global const float *cs, __global const float *ct, __global float *dm,
                         __global float *partial)
{
    const int i = get_global_id(0);
    if (i >= D) return;
    float s = 0.0f;
    for (int j = 0; j < D; j++) {
        const float v = cs[(long)i * D + j] - ct[(long)i * D + j];
        dm[(long)i * D + j] = v;
        s += v * v;
    }
    partial[i] = s;
}

/* out[0] (=, or += with accumulate) scale * the sum of partial[0, rows): one work-item, in a fixed
 * order, so the value does not depend on the device's scheduling. */
__kernel void adapt_loss_sum(const int rows, const float scale, const int accumulate,
                             __global const float *partial, __global float *out)
{
    if (get_global_id(0) != 0) return;
    float s = 0.0f;
    for (int i = 0; i < rows; i++) s += partial[i];
    out[0] = (accumulate ? out[0] : 0.0f) + scale * s;
}

/* MMD: squared distances from the Gram matrix g = Z Z^T [n, n]; each row's sum into partial. */
__kernel void mmd_dist(const int n, __global const float *g, __global float *dist,
                       __global float *partial)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const float gii = g[(long)i * n + i];
    float s = 0.0f;
    for (int j = 0; j < n; j++) {
        const float v = fmax(gii + g[(long)j * n + j] - 2.0f * g[(long)i * n + j], 0.0f);
        dist[(long)i * n + j] = v;
        s += v;
    }
    partial[i] = s;
}

/* MMD with the Gaussian kernels k_m = exp(-d / (2 s2 a_m)), a_m in {1/4, 1/2, 1, 2, 4}, s2 the
 * mean squared distance of the batch (a constant: no gradient flows through the bandwidth, as in
 * DAN). w_ij: 1/(ns(ns-1)) within the source and 1/(nt(nt-1)) within the target (i != j),
 * -1/(ns nt) across. Row i gets its loss terms sum_j w_ij sum_m k_m (into lossrow), the
 * coefficients a_ij = w_ij dK/dd (into a) and their sum (into rowsum). One work-item per row. */
__kernel void mmd_coef(const int n, const int ns, __global const float *dist,
                       __global const float *partial, __global float *a, __global float *lossrow,
                       __global float *rowsum)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    float tot = 0.0f;
    for (int r = 0; r < n; r++) tot += partial[r];
    const float s2 = fmax(tot / ((float)n * (float)n), 1e-12f);
    const int nt = n - ns;
    const bool si = i < ns;
    float l = 0.0f, rs = 0.0f;
    for (int j = 0; j < n; j++) {
        const bool sj = j < ns;
        float w;
        if (i == j) w = 0.0f;
        else if (si && sj) w = 1.0f / ((float)ns * (float)(ns - 1));
        else if (!si && !sj) w = 1.0f / ((float)nt * (float)(nt - 1));
        else w = -1.0f / ((float)ns * (float)nt);
        const float d = dist[(long)i * n + j];
        float k = 0.0f, dk = 0.0f;
        for (int m = -2; m <= 2; m++) {
            const float bw = 2.0f * s2 * ldexp(1.0f, m);
            const float e = exp(-d / bw);
            k += e;
            dk -= e / bw;
        }
        l += w * k;
        a[(long)i * n + j] = w * dk;
        rs += w * dk;
    }
    lossrow[i] = l;
    rowsum[i] = rs;
}

/* The diagonal part of the MMD gradient: df[i, :] += c * rowsum[i] * f[i, :] (the host adds
 * -c * A f with the GEMM). */
__kernel void mmd_grad_diag(const int n, const float c, __global const float *rowsum,
                            __global const float *f, __global float *df)
{
    const long t = get_global_id(0);
    if (t >= (long)n * D) return;
    df[t] += c * rowsum[t / D] * f[t];
}

/* Gradient reversal, backward: dx += -lambda * g (its forward is the identity: no launch). */
__kernel void grl_bwd(const long count, const float lambda, __global const float *g,
                      __global float *dx)
{
    const long t = get_global_id(0);
    if (t >= count) return;
    dx[t] -= lambda * g[t];
}

/* Binary cross-entropy with logits for the domain discriminator: row i < ns is source (label 1),
 * the rest target (0). loss[i] = max(l, 0) - l t + log(1 + exp(-|l|)); dl = scale * (sigmoid(l) - t),
 * scale = 1/n for the mean loss times the trade-off weight. */
__kernel void bce_fwd_bwd(const int n, const int ns, const float scale,
                          __global const float *logit, __global float *loss,
                          __global float *dlogit)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const float l = logit[i], t = i < ns ? 1.0f : 0.0f;
    loss[i] = fmax(l, 0.0f) - l * t + log1p(exp(-fabs(l)));
    const float sig = l >= 0.0f ? 1.0f / (1.0f + exp(-l)) : exp(l) / (1.0f + exp(l));
    if (dlogit) dlogit[i] = scale * (sig - t);
}

/* y[off, off + count) = 0: the logit gradient of the unlabelled target rows. */
__kernel void adapt_zero(const long off, const long count, __global float *y)
{
    const long t = get_global_id(0);
    if (t >= count) return;
    y[off + t] = 0.0f;
}

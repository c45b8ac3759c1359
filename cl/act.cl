/* act.cl — elementwise activations, forward and backward, one work-item per element.
 * Build options: -DACT=<0..5> (act_kind: relu, relu6, leaky_relu, gelu, sigmoid, tanh) and
 * -DSLOPE=<float> for leaky_relu. The element count (n * per-sample size) is a runtime argument.
 * Backward uses whichever saved tensor gives the derivative exactly and cheaply: y for relu,
 * relu6, sigmoid and tanh (so x need not be kept), x for leaky_relu (any slope sign) and gelu. */

#define ACT_RELU 0
#define ACT_RELU6 1
#define ACT_LEAKY_RELU 2
#define ACT_GELU 3
#define ACT_SIGMOID 4
#define ACT_TANH 5

#ifndef SLOPE
#define SLOPE 0.01f
#endif

__kernel void act_fwd(const long total, __global const float *x, __global float *y)
{
    const long i = get_global_id(0);
    if (i >= total) return;
    const float v = x[i];
#if ACT == ACT_RELU
    y[i] = v > 0.0f ? v : 0.0f;
#elif ACT == ACT_RELU6
    y[i] = fmin(fmax(v, 0.0f), 6.0f);
#elif ACT == ACT_LEAKY_RELU
    y[i] = v > 0.0f ? v : v * (SLOPE);
#elif ACT == ACT_GELU
    /* exact form (PyTorch's default approximate='none'): x * Phi(x) */
    y[i] = 0.5f * v * (1.0f + erf(v * M_SQRT1_2_F));
#elif ACT == ACT_SIGMOID
    y[i] = 1.0f / (1.0f + exp(-v));
#elif ACT == ACT_TANH
    y[i] = tanh(v);
#else
#error "unknown ACT"
#endif
}

__kernel void act_bwd(const long total, __global const float *x, __global const float *y,
                      __global const float *dy, __global float *dx)
{
    const long i = get_global_id(0);
    if (i >= total) return;
    const float g = dy[i];
#if ACT == ACT_RELU
    dx[i] = y[i] > 0.0f ? g : 0.0f; /* PyTorch: threshold_backward on the result */
#elif ACT == ACT_RELU6
    const float o = y[i];
    dx[i] = (o > 0.0f && o < 6.0f) ? g : 0.0f; /* hardtanh_backward: open interval */
#elif ACT == ACT_LEAKY_RELU
    dx[i] = x[i] > 0.0f ? g : g * (SLOPE);
#elif ACT == ACT_GELU
    /* d/dx x*Phi(x) = Phi(x) + x*phi(x), phi(x) = exp(-x^2/2)/sqrt(2*pi) */
    const float v = x[i];
    const float cdf = 0.5f * (1.0f + erf(v * M_SQRT1_2_F));
    const float pdf = exp(-0.5f * v * v) * 0.3989422804014327f;
    dx[i] = g * fma(v, pdf, cdf);
#elif ACT == ACT_SIGMOID
    const float o = y[i];
    dx[i] = g * o * (1.0f - o);
#elif ACT == ACT_TANH
    const float o = y[i];
    dx[i] = g * (1.0f - o * o);
#endif
}

/* act.cl — elementwise activations, forward and backward, eight elements per work-item.
 * Build options: -DACT=<0..5> (act_kind: relu, relu6, leaky_relu, gelu, sigmoid, tanh) and
 * -DSLOPE=<float> for leaky_relu. The element count (n * per-sample size) is a runtime argument.
 * Backward uses whichever saved tensor gives the derivative exactly and cheaply: y for relu,
 * relu6, sigmoid and tanh (so x need not be kept), x for leaky_relu (any slope sign) and gelu.
 * Why eight per work-item as a float8: PoCL vectorises work-items, but not a scalar call of a
 * builtin like erf or exp, which it runs one lane at a time; called on a float8 it takes the
 * library's vector form (gelu forward 23 ns -> 2.3 ns per element on an AVX-512 EPYC). The
 * formulas are macros over the operand's type, so the tail (total not a multiple of eight) runs
 * the same expressions on floats. */

#define ACT_RELU 0
#define ACT_RELU6 1
#define ACT_LEAKY_RELU 2
#define ACT_GELU 3
#define ACT_SIGMOID 4
#define ACT_TANH 5

#ifndef SLOPE
#define SLOPE 0.01f
#endif

/* F(v): the activation; B(x, y, g): its backward from the saved input x or output y and the
 * incoming gradient g. On a float8 the conditional operator selects lane by lane (OpenCL C
 * 1.2 6.3.i), with a scalar 0.0f widened, so one expression serves floats and float8s. */
#if ACT == ACT_RELU
#define F(v) ((v) > 0.0f ? (v) : 0.0f)
#define B(x, y, g) ((y) > 0.0f ? (g) : 0.0f) /* PyTorch: threshold_backward on y */
#elif ACT == ACT_RELU6
#define F(v) fmin(fmax((v), 0.0f), 6.0f)
#define B(x, y, g) ((y) > 0.0f && (y) < 6.0f ? (g) : 0.0f) /* hardtanh: open interval */
#elif ACT == ACT_LEAKY_RELU
#define F(v) ((v) > 0.0f ? (v) : (v) * (SLOPE))
#define B(x, y, g) ((x) > 0.0f ? (g) : (g) * (SLOPE))
#elif ACT == ACT_GELU
/* exact form (PyTorch's default approximate='none'): x * Phi(x); the derivative
 * d/dx x*Phi(x) = Phi(x) + x*phi(x), phi(x) = exp(-x^2/2)/sqrt(2*pi) */
#define F(v) (0.5f * (v) * (1.0f + erf((v) * M_SQRT1_2_F)))
#define B(x, y, g)                                                                                 \
    ((g) * fma((x), exp(-0.5f * (x) * (x)) * 0.3989422804014327f,                                 \
               0.5f * (1.0f + erf((x) * M_SQRT1_2_F))))
#elif ACT == ACT_SIGMOID
#define F(v) (1.0f / (1.0f + exp(-(v))))
#define B(x, y, g) ((g) * (y) * (1.0f - (y)))
#elif ACT == ACT_TANH
#define F(v) tanh(v)
#define B(x, y, g) ((g) * (1.0f - (y) * (y)))
#else
#error "unknown ACT"
#endif

__kernel void act_fwd(const long total, __global const float *x, __global float *y)
{
    const int q = get_global_id(0);
    const long i0 = (long)q * 8;
    if (i0 >= total) return;
    if (i0 + 8 <= total) {
        const float8 v = vload8(q, x);
        vstore8(F(v), q, y);
    } else {
        for (long i = i0; i < total; i++) {
            const float v = x[i];
            y[i] = F(v);
        }
    }
}

/* x or y may be an unused NULL for kinds that do not read it (act_bwd_needs_input). */
__kernel void act_bwd(const long total, __global const float *x, __global const float *y,
                      __global const float *dy, __global float *dx)
{
    const int q = get_global_id(0);
    const long i0 = (long)q * 8;
    if (i0 >= total) return;
    if (i0 + 8 <= total) {
        const float8 g = vload8(q, dy);
#if ACT == ACT_LEAKY_RELU || ACT == ACT_GELU
        const float8 xv = vload8(q, x), yv = 0.0f;
#else
        const float8 yv = vload8(q, y), xv = 0.0f;
#endif
        vstore8(B(xv, yv, g), q, dx);
    } else {
        for (long i = i0; i < total; i++) {
            const float g = dy[i];
#if ACT == ACT_LEAKY_RELU || ACT == ACT_GELU
            const float xv = x[i], yv = 0.0f;
#else
            const float yv = y[i], xv = 0.0f;
#endif
            dx[i] = B(xv, yv, g);
        }
    }
}

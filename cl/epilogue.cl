/* epilogue.cl — the activation a producer kernel (conv2d's output write, the bias add, batchnorm's
 * apply) performs as it writes its output when the compiler fused the activation layer after it
 * (engine/compile/plan.c), and that activation's derivative taken from the written output, which
 * the producer's backward applies to the incoming gradient as it reads it. Included by the kernel
 * files that have an epilogue (tools/embed_cl.py inlines it).
 * Build option -DEPI=<n>: 0 none, else act_kind + 1 (1 relu, 2 relu6, 3 leaky_relu, 5 sigmoid,
 * 6 tanh; gelu's derivative needs the input, so it is never fused); -DEPI_SLOPE for leaky_relu,
 * fused only with a positive slope (then y > 0 exactly when x > 0). */
#ifndef EPI
#define EPI 0
#endif
#ifndef EPI_SLOPE
#define EPI_SLOPE 0.01f
#endif

static inline float epi_fwd(const float v)
{
#if EPI == 0
    return v;
#elif EPI == 1
    return v > 0.0f ? v : 0.0f;
#elif EPI == 2
    return fmin(fmax(v, 0.0f), 6.0f);
#elif EPI == 3
    return v > 0.0f ? v : v * (EPI_SLOPE);
#elif EPI == 5
    return 1.0f / (1.0f + exp(-v));
#elif EPI == 6
    return tanh(v);
#else
#error "EPI: no epilogue of that kind"
#endif
}

/* epi_fwd lane by lane on a float vector of the kernel's width (vecw.cl's floatv), with the same
 * operations as the scalar version, so every lane is the scalar result to the bit: defined for the
 * epilogues whose scalar form is a comparison or a clamp (EPI_VEC 1), not for sigmoid and tanh,
 * whose vector exp and tanh need not round like the scalar ones. */
#if EPI <= 3
#define EPI_VEC 1
#define epi_fwdv(VT, v) epi_fwdv_(VT, v)
#if EPI == 0
#define epi_fwdv_(VT, v) (v)
#elif EPI == 1
#define epi_fwdv_(VT, v) ((v) > (VT)(0.0f) ? (v) : (VT)(0.0f))
#elif EPI == 2
#define epi_fwdv_(VT, v) fmin(fmax((v), (VT)(0.0f)), (VT)(6.0f))
#elif EPI == 3
#define epi_fwdv_(VT, v) ((v) > (VT)(0.0f) ? (v) : (v) * (VT)(EPI_SLOPE))
#endif
#else
#define EPI_VEC 0
#endif

/* The gradient of the producer's raw output from the activation's output gradient g and output y
 * (the same formulas as act.cl's backward). */
static inline float epi_grad(const float g, const float y)
{
#if EPI == 0
    return g;
#elif EPI == 1
    return y > 0.0f ? g : 0.0f;
#elif EPI == 2
    return (y > 0.0f && y < 6.0f) ? g : 0.0f;
#elif EPI == 3
    return y > 0.0f ? g : g * (EPI_SLOPE);
#elif EPI == 5
    return g * y * (1.0f - y);
#elif EPI == 6
    return g * (1.0f - y * y);
#endif
}

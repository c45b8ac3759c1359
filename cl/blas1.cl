/* blas1.cl — elementwise vector helpers used by the runtime and the optimizer plumbing.
 * N is the element count, baked in at build time; the guard handles global sizes rounded up to a
 * multiple of the work-group size (NVIDIA's OpenCL 1.2 has no non-uniform groups). */

__kernel void fill_f32(__global float *y, const float value)
{
    const int i = get_global_id(0);
    if (i < N) y[i] = value;
}

/* y = alpha * x + y */
__kernel void axpy_f32(const float alpha, __global const float *x, __global float *y)
{
    const int i = get_global_id(0);
    if (i < N) y[i] = fma(alpha, x[i], y[i]);
}

/* y = x */
__kernel void copy_f32(__global const float *x, __global float *y)
{
    const int i = get_global_id(0);
    if (i < N) y[i] = x[i];
}

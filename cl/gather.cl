/* gather.cl — rows of a device-resident table (the feature cache) copied into a batch:
 * dst[r][j] = src[rows[r]][j] for r < n, j < row. One work-item per element (the global size is
 * rounded up to the work-group, so the index is guarded). */
__kernel void gather_rows(const int n, const int row, __global const float *src,
                          __global const int *rows, __global float *dst)
{
    const long i = get_global_id(0);
    if (i >= (long)n * row) return;
    const long r = i / row, j = i - r * row;
    dst[i] = src[(long)rows[r] * row + j];
}

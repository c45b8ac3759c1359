/* gather.cl — rows of a device-resident table (the feature cache) copied into a batch:
 * dst[r][j] = src[rows[r]][j] for r < n, j < row. Two dimensions (j, r), so no division per
 * element and consecutive work-items copy consecutive floats; the global size is rounded up to
 * the work-group, so both indices are guarded. */
__kernel void gather_rows(const int n, const int row, __global const float *src,
                          __global const int *rows, __global float *dst)
{
    const int j = get_global_id(0), r = get_global_id(1);
    if (j >= row || r >= n) return;
    dst[(long)r * row + j] = src[(long)rows[r] * row + j];
}

/* stats.cl — training statistics kept on the device, so a step needs no read-back: each step's
 * per-sample loss and correct flags (written by xent_fwd_bwd) are summed into one slot of a small
 * array that the host reads once per progress update.
 * One work-group of STATS_WG (64) work-items per launch: item t sums samples t, t+64, t+128, ...
 * in order, then a tree in local memory adds the 64 partial sums, always in the same order, so the
 * result is the same run to run (no atomics). Launch with global = local = STATS_WG. */
#define STATS_WG 64

__kernel void step_stats(const int n, __global const float *loss, __global const int *correct,
                         __global float *loss_sums, __global int *correct_sums, const int slot)
{
    __local float ls[STATS_WG];
    __local int cs[STATS_WG];
    const int t = get_local_id(0);
    float l = 0.0f;
    int c = 0;
    for (int i = t; i < n; i += STATS_WG) {
        l += loss[i];
        c += correct[i];
    }
    ls[t] = l;
    cs[t] = c;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = STATS_WG / 2; h > 0; h >>= 1) {
        if (t < h) {
            ls[t] += ls[t + h];
            cs[t] += cs[t + h];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (t == 0) {
        loss_sums[slot] = ls[0];
        correct_sums[slot] = cs[0];
    }
}

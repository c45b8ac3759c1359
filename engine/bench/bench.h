/* bench.h — the benchmark stage: what `graft bench` and `graft report` compute that a C API user
 * may want too: the per-layer FLOP/byte model, the per-step cost model (launches, host
 * synchronisations, host<->device bytes and a device-memory traffic estimate per op family, from
 * the runtime's cost counters), the launch/bandwidth/compute estimate for another device, and the
 * JSON objects for a device's identity and a step's cost (docs/bench-schema.md). */
#ifndef GRAFT_BENCH_H
#define GRAFT_BENCH_H

#include <jansson.h>

#include "compile.h"
#include "graph.h"
#include "runtime.h"

/* ---- per-layer FLOPs and bytes: a compulsory-traffic model (what the op must read and write once,
 * n samples), so GB/s from it is a lower bound on what the kernels really moved ---- */
typedef struct layer_cost {
    double fwd_flops, fwd_bytes, bwd_flops, bwd_bytes;
} layer_cost;
layer_cost bench_layer_cost(const graph *g, const layer *l, const layer_plan *lp, double n);

/* ---- op families a launch, sync or transfer is attributed to ---- */
typedef enum bench_family {
    FAM_CONV,
    FAM_DENSE,
    FAM_BATCHNORM,
    FAM_ACTIVATION,
    FAM_POOL,
    FAM_DROPOUT,
    FAM_LOSS,
    FAM_OPTIMIZER,
    FAM_LAYOUT, /* im2col/col2im, packing, copies, fills, concat */
    FAM_GEMM,
    FAM_TRANSFER, /* host <-> device copies and their waits */
    FAM_OTHER,    /* anything not labelled with a layer, the loss or an update */
    FAM_COUNT
} bench_family;
extern const char *const BENCH_FAMILY_NAMES[FAM_COUNT];

/* The family of a cost row: by the kernel (GEMM, layout, transfer) first, then by the layer its
 * label names ("<layer>.fwd|.bwd", "<layer>.update" = optimizer, "loss"). */
bench_family bench_family_of(const graph *g, const char *label, const char *kernel);

typedef struct bench_cost {
    double launches, clblast_calls, gemm_calls, syncs, h2d_bytes, d2h_bytes, traffic_bytes, flops;
} bench_cost;

/* One step's cost per family (and the total in fam[FAM_COUNT]) from the rows the runtime filed
 * while ctx->cost.rows_on was set over exactly one training step of batch n:
 *  - launches, CLBlast calls, syncs, H2D/D2H bytes: counted;
 *  - traffic (bytes read + written in device memory), an estimate: GEMM from each call's shape
 *    ((m*k + k*n + m*n [+ m*n when beta != 0]) * 4); im2col/col2im the column matrix and the
 *    input once, other layout kernels the layer's output read and written once, fills 4 bytes a
 *    float; the loss reads logits and labels and writes their gradient, loss and correctness; an
 *    update reads w, g and the optimizer state and writes w and the state; every other layer
 *    phase that launched kernels of its own its bench_layer_cost bytes; a conv or dense phase
 *    that also called GEMM only its epilogue (one pass over y, or a read of dy);
 *  - FLOPs: GEMM counted, other layers from bench_layer_cost. */
void bench_step_cost(const graft_context *ctx, const graph *g, const graph_plan *gp,
                     int optimizer, bool l2sp, double n, bench_cost fam[FAM_COUNT + 1]);

/* "What this means on another device": a lower bound on a step's time for a device whose launch
 * overhead is launch_us, memory bandwidth bandwidth_gbs and FP32 peak peak_gflops (0 = leave the
 * FLOPs out): launches * L + max(traffic / B, FLOPs / P), each kernel assumed to reach the
 * bandwidth or the peak and launches not overlapping. */
typedef struct bench_estimate {
    double launch_us, bandwidth_gbs, peak_gflops;
    double launch_s, memory_s, compute_s, step_s;
} bench_estimate;
bench_estimate bench_estimate_step(const bench_cost *total, double launch_us, double bandwidth_gbs,
                                   double peak_gflops);

/* JSON (docs/bench-schema.md): the cost object of a step; the estimate object; a device's
 * identity and capabilities, shared by `graft devices --json` (which names the device "name") and
 * the bench's identity (which names it "device"): name_key is that key. */
json_t *bench_cost_json(const graft_context *ctx, const graph *g, const bench_cost fam[FAM_COUNT + 1],
                        int profiled_events);
json_t *bench_estimate_json(const bench_estimate *est, double batch);
json_t *bench_device_json(const graft_device_info *d, const char *name_key);

#endif

/* bench.h — the benchmark stage: what `graft bench` and `graft report` compute that a C API user
 * may want too: a recipe's training step profiled on one device (cold and warm start, per-layer
 * times from profiling events, step time), the per-layer FLOP/byte model, the per-step cost model
 * (launches, host synchronisations, host<->device bytes and a device-memory traffic estimate per
 * op family, from the runtime's cost counters), the launch/bandwidth/compute estimate for another
 * device, and the JSON objects of a run (docs/bench-schema.md). Printing stays in cli/. */
#ifndef GRAFT_BENCH_H
#define GRAFT_BENCH_H

#include <jansson.h>

#include "compile.h"
#include "graph.h"
#include "recipe.h"
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
    FAM_LAYERNORM,
    FAM_ATTENTION,
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

/* The layer a profiling label names ("<layer>.fwd|.bwd|.update", "loss" = g->nlayers) with its
 * phase in *phase; -1 when it names none. */
enum { BENCH_FWD, BENCH_BWD, BENCH_UPD, BENCH_PHASES };
int bench_label_layer(const graph *g, const char *label, int *phase);

/* The family of a cost row: by the kernel (GEMM, layout, transfer) first, then by the layer its
 * label names ("<layer>.fwd|.bwd", "<layer>.update" = optimizer, "loss"). */
bench_family bench_family_of(const graph *g, const char *label, const char *kernel);

typedef struct bench_cost {
    double launches, clblast_calls, gemm_calls, syncs, h2d_bytes, d2h_bytes, traffic_bytes, flops;
} bench_cost;

/* One step's cost per family (and the total in fam[FAM_COUNT]) from the rows the runtime filed
 * (ctx->cost.rows) while rows were on over exactly one training step of batch n:
 *  - launches, CLBlast calls, syncs, H2D/D2H bytes: counted;
 *  - traffic (bytes read + written in device memory), an estimate: GEMM from each call's shape
 *    ((m*k + k*n + m*n [+ m*n when beta != 0]) * 4); im2col/col2im the column matrix and the
 *    input once, add/accumulate two tensors of the output's size read and one written, other
 *    layout kernels the layer's output read and written once, fills 4 bytes a float; the loss reads logits and labels and writes their gradient, loss and correctness; an
 *    update reads w, g and the optimizer state and writes w and the state; every other layer
 *    phase that launched kernels of its own its bench_layer_cost bytes; a conv or dense phase
 *    that also called GEMM only its epilogue (one pass over y, or a read of dy);
 *  - FLOPs: GEMM counted, other layers from bench_layer_cost. */
void bench_step_cost(const cost_row *rows, int nrows, const graph *g, const graph_plan *gp,
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
json_t *bench_cost_json(const cost_row *rows, int nrows, const graph *g,
                        const bench_cost fam[FAM_COUNT + 1], int profiled_events);
json_t *bench_estimate_json(const bench_estimate *est, double batch);
json_t *bench_device_json(const graft_device_info *d, const char *name_key);

/* ---- timings over the measured steps ---- */
#define BENCH_SPREAD_FLAG 0.10 /* (max - min) / median above this marks a timing as unsteady */
typedef struct bench_stats {
    double median, min, max, spread; /* seconds; spread = (max - min) / median */
    bool flagged;
} bench_stats;
bench_stats bench_stats_of(const double *v, int n);

/* ---- a recipe's training step on one device ---- */
typedef struct bench_settings {
    int batch, steps, warmup;
    bool tune;                                                  /* cold start runs the GEMM tuner */
    double model_launch_us, model_bandwidth_gbs, model_gflops; /* the estimate; 0: none */
} bench_settings;

typedef struct bench_layer_result {
    bench_stats phase[BENCH_PHASES]; /* per step: the phase's profiled events summed */
    int events[BENCH_PHASES];        /* profiled events of the phase in one step */
    layer_cost cost;                 /* its FLOP/byte model at the batch */
    char kernel[40];                 /* pipeline_layer_kernel: conv2d's path, else "" */
} bench_layer_result;

typedef struct bench_result {
    graft_device_info info;
    peak_result peak;
    double cold_seconds, cold_compile_seconds, cold_tune_seconds, warm_seconds;
    int tuned_shapes, programs_built, programs_loaded, programs_built_warm;
    plan_memory memory;
    bench_stats step; /* wall time of whole steps, waited for */
    double images_per_second;
    int nlayers;
    bench_layer_result *layers; /* nlayers + 1: the last is the loss (forward phase only) */
    int unlabelled_events;
    /* the cost model of the first measured step */
    int profiled_events;
    cost_row *rows;
    int nrows;
    bench_cost cost[FAM_COUNT + 1];
    bool has_estimate;
    bench_estimate estimate;
    /* a recipe whose frozen prefix graft train computes once (its first cache_cut layers; 0:
     * none): that prefix's forward of one batch into a device table of features, and a training
     * step of the layers after it from the table's rows */
    int cache_cut;
    bench_stats feature_pass, cached_step;
    /* and that step's cost model (rows as above, one untimed step; the estimate when asked) */
    int cached_events;
    cost_row *cached_rows;
    int ncached_rows;
    bench_cost cached_cost[FAM_COUNT + 1];
    bench_estimate cached_estimate;
} bench_result;

/* Profile rc's training step on the device spec with synthetic inputs: the peak probe (kept in the
 * user's cache), a cold start from an empty cache in a temporary directory (with the GEMM tuner
 * when s->tune), a warm start on that cache, s->warmup untimed steps, then s->steps measured ones
 * of every layer; where graft train would cache the frozen prefix's features, then also that
 * step as trained (cache_cut above). *out is filled (free it with bench_result_free) or left
 * empty on an error. */
graft_status bench_run(graft_recipe *rc, const char *spec, const bench_settings *s, bench_result *out,
                       graft_error *e);
void bench_result_free(bench_result *r);

#define BENCH_SCHEMA_VERSION 2 /* docs/bench-schema.md; 2 added cost_model */
/* The JSON of a run (docs/bench-schema.md): a device's results into dev (identity, spec and error
 * are the caller's), and the top-level object with no devices yet. */
void bench_result_json(const bench_result *r, const graph *g, const bench_settings *s, json_t *dev);
json_t *bench_run_json(const char *recipe_file, const graft_recipe *rc, const bench_settings *s);

/* The settings' bounds (`graft bench`'s options and graft_bench_json), and whether the estimate
 * they ask for is whole: launch and bandwidth together, the peak only with them, none negative. */
#define BENCH_MAX_STEPS 100000
#define BENCH_MAX_BATCH (1 << 20)
bool bench_estimate_settings_ok(const bench_settings *s);

/* The devices a list names as "P:D" specs: "all" every device, NULL the usual one, else each
 * comma-separated spec once (at most max). An error when none is left. */
graft_status bench_resolve_devices(const char *list, char specs[][16], int max, int *n,
                                   graft_error *e);
/* bench_run on each spec in turn: the run's JSON (bench_run_json with a "devices" entry each,
 * a failed device's with its error), *failed counting failures. each (when set) is called before
 * a device's run (r and e NULL) and after it, with its result or its error. */
typedef void (*bench_each_fn)(void *user, int i, int n, const char *spec, const bench_result *r,
                              const graft_error *e);
json_t *bench_devices(graft_recipe *rc, const bench_settings *s, char specs[][16], int n,
                      bench_each_fn each, void *user, int *failed);

#endif

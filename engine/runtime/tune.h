/* tune.h — GEMM back ends (CLBlast with per-shape parameter sets, Graft's own CPU kernels in
 * cl/gemm.cl) and the per-device tuner whose choices persist in the program cache (kind "tune",
 * keyed by device, driver, CLBlast version, kernel source and the GEMM's shape). */
#ifndef GRAFT_TUNE_H
#define GRAFT_TUNE_H

#include <stdbool.h>

#include "runtime.h"

typedef enum gemm_backend {
    GEMM_BACKEND_CLBLAST, /* p[0]: parameter set, 0 = CLBlast's own database (tune.c's table) */
    GEMM_BACKEND_OUTER,   /* cl/gemm.cl gemm_outer: p = MR, NV, NT, VW */
    GEMM_BACKEND_INNER,   /* cl/gemm.cl gemm_inner: p = MR, NC, -, VW */
    GEMM_BACKEND_COUNT
} gemm_backend;

typedef struct gemm_shape {
    bool ta, tb;
    size_t m, n, k;
} gemm_shape;

typedef struct gemm_choice {
    gemm_backend backend;
    int p[4];
} gemm_choice;

/* ---- gemm.c ---- */
/* One GEMM with an explicit choice (the tuner and `graft bench gemm` use it); gemm() in ops.h is
 * this with gemm_choose's answer. */
graft_status gemm_run(graft_context *ctx, const gemm_choice *ch, bool trans_a, bool trans_b,
                      size_t m, size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                      size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta, cl_mem c,
                      size_t c_off, size_t ldc, graft_error *e);
/* Whether a back end can run a shape at all (layout and 32-bit index limits). */
bool gemm_choice_fits(const gemm_choice *ch, const gemm_shape *s);
/* "graft-outer MR=6 NV=2 NT=4", "clblast set 2 (KWG=32 MWG=128 ...)" */
void gemm_choice_describe(const gemm_choice *ch, char *buf, size_t n);
/* Parse what gemm_choice_describe's short form names: "clblast[:SET]", "outer:MR,NV,NT[,VW]",
 * "inner:MR,NC[,VW]" (for `graft bench gemm --kernel`). */
graft_status gemm_choice_parse(const char *text, gemm_choice *out, graft_error *e);

/* ---- tune.c ---- */
/* The best known choice for a shape without tuning: Graft's kernels on CPU devices, CLBlast's
 * own database elsewhere. */
gemm_choice gemm_default_choice(const graft_context *ctx, const gemm_shape *s);
/* What gemm() uses for a shape: the context's memo, then the cache's tuning result, then the
 * default. *tuned (may be NULL) says whether it came from tuning. Never measures anything. */
gemm_choice gemm_choose(graft_context *ctx, const gemm_shape *s, bool *tuned);
/* Whether this device has any tuning results in the cache (the trainer says so when it has none:
 * untuned GEMMs run at the defaults' speed). */
bool tune_results_exist(graft_context *ctx);

/* Number of CLBlast parameter sets in the table (set 0 = CLBlast's database). */
int tune_clblast_sets(void);
/* Apply parameter set `set` to CLBlast for this device: complete Xgemm, XgemmDirect and
 * GemmRoutine sets, every return code checked (CLBlast rejects incomplete sets). */
graft_status tune_clblast_apply(graft_context *ctx, int set, graft_error *e);
void tune_clblast_describe(int set, char *buf, size_t n);

typedef struct tune_result {
    gemm_shape shape;
    gemm_choice best, deflt;
    double best_gflops, default_gflops;
    int tried;
    double seconds; /* wall time of the whole search, compiles included */
} tune_result;

/* Progress of a search: called after each candidate (may be NULL). */
typedef void (*tune_progress_fn)(void *user, const gemm_shape *s, const gemm_choice *ch,
                                 double gflops);

/* Measure the candidates for one shape (every back end that fits, a few parameter sets each),
 * keep the fastest, remember it in the context and store it in the cache. Results are checked
 * against the default choice's output, so a wrong kernel can never win. */
graft_status tune_gemm(graft_context *ctx, const gemm_shape *s, tune_progress_fn progress,
                       void *user, tune_result *r, graft_error *e);

/* The candidates tune_gemm tries for a shape on this device, the default first; returns the count. */
int tune_candidates(const graft_context *ctx, const gemm_shape *s, gemm_choice *out, int cap);

/* Time one choice on one shape: best of `reps` after a warm-up (compiles excluded). */
graft_status tune_time(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s, int reps,
                       double *seconds, graft_error *e);

#endif

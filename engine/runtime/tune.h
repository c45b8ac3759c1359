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
    GEMM_BACKEND_INNER,   /* cl/gemm.cl gemm_inner: p = MR, NC, KS, VW */
    GEMM_BACKEND_TILED,   /* cl/gemm_tiled.cl (GPU-shaped, local memory): p = TX, TY, RM, RN */
    GEMM_BACKEND_COUNT
} gemm_backend;

/* A GEMM's shape. The leading dimensions are how the pipeline lays the operands out (0: tight,
 * the row length); the tuner times a candidate with them, since a padded stride changes which
 * cache sets a k-loop's rows fall in. They are not part of the tuning key. */
typedef struct gemm_shape {
    bool ta, tb;
    size_t m, n, k;
    size_t lda, ldb, ldc;
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
/* Whether the parameters are ones the back end accepts (what parse checks; cache entries too). */
bool gemm_choice_valid(const gemm_choice *ch);
/* Whether this device can run the choice at all: work-group size and local memory of the tiled
 * kernel against what the device reports (the compiled kernel's own limit is checked at launch). */
bool gemm_choice_fits_device(const graft_context *ctx, const gemm_choice *ch);
/* How many K ranges the tiled kernel splits a product into on this device (1 = none; few tiles
 * and a long K split, cl/gemm_tiled.cl), and the length of each in *kc (NULL: not wanted). */
int gemm_tiled_splits(const graft_context *ctx, const gemm_choice *ch, size_t m, size_t n,
                      size_t k, int *kc);
/* "graft-outer MR=6 NV=2 NT=4", "clblast set 2 (KWG=32 MWG=128 ...)" */
void gemm_choice_describe(const gemm_choice *ch, char *buf, size_t n);
/* Parse what gemm_choice_describe's short form names: "clblast[:SET]", "outer:MR,NV[,MT[,VW]]",
 * "inner:MR,NC[,KS[,VW]]", "tiled:TX,TY,RM,RN" (for `graft bench gemm --kernel`). */
graft_status gemm_choice_parse(const char *text, gemm_choice *out, graft_error *e);

/* ---- tune.c ---- */
/* The start of a tuning result's key in the program cache (kind "tune"): a kind line, the
 * device's identity (platform and its version, device, driver, CLBlast version) and a hash of the
 * named kernel sources, so that a new driver or a changed kernel invalidates every result. */
void tune_key_begin(buf *b, graft_context *ctx, const char *kind,
                    const char *const *sources, int nsources);
/* A stored result's text (at most n - 1 bytes, NUL-terminated); false when there is none. */
bool tune_cache_text(graft_context *ctx, const char *key, size_t keylen, char *text, size_t n);

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
    double best_gflops, default_gflops; /* medians; from the head to head when there was one */
    int tried;
    double seconds;    /* wall time of the whole search, compiles included */
    bool partial;      /* the time share ran out before every candidate was tried */
    bool kept_default; /* the screening's winner did not beat the default by the margin */
    bool out_of_time;  /* the budget ended before the head to head: nothing stored */
    bool stored;       /* the choice is in the cache and the context's memo */
} tune_result;

/* How a search runs: quick = the trainer's short candidate list; stop_at (now_seconds() time,
 * 0 = none) stops trying candidates; hard_stop also skips the head to head (nothing stored). */
typedef struct tune_options {
    bool quick;
    double stop_at, hard_stop;
} tune_options;

/* Progress of a search: called after each candidate (may be NULL). */
typedef void (*tune_progress_fn)(void *user, const gemm_shape *s, const gemm_choice *ch,
                                 double gflops);

/* Measure the candidates for one shape (every back end that fits, a few parameter sets each;
 * medians of several samples, operands rotated past the cache), then the fastest against the
 * default head to head: it replaces the default only when its median is 7 % faster. The choice
 * is remembered in the context and stored in the cache. Results are checked against the default
 * choice's output, so a wrong kernel can never win. tune_gemm is tune_gemm_with(NULL): the full
 * candidate list, no time limit. */
graft_status tune_gemm(graft_context *ctx, const gemm_shape *s, tune_progress_fn progress,
                       void *user, tune_result *r, graft_error *e);
graft_status tune_gemm_with(graft_context *ctx, const gemm_shape *s, const tune_options *o,
                            tune_progress_fn progress, void *user, tune_result *r, graft_error *e);

/* ---- tuning a recipe's shapes (the trainer's first run on a device, `graft tune`) ---- */
typedef enum tune_mode { TUNE_AUTO, TUNE_OFF, TUNE_FULL } tune_mode; /* recipe train.tune order */
#define TUNE_AUTO_BUDGET 60.0 /* seconds */

/* The mode from the recipe's train.tune, overridden by GRAFT_TUNE=off|auto|auto:SECONDS|full;
 * an unknown GRAFT_TUNE value is a usage error. */
graft_status tune_mode_resolve(int recipe_mode, tune_mode *mode, double *budget_s,
                               graft_error *e);
/* The shapes without a tuning result, most FLOPs first; out holds n; returns the count. */
int tune_missing(graft_context *ctx, const gemm_shape *shapes, int n, gemm_shape *out);

typedef struct tune_summary {
    int shapes;   /* without results before */
    int tuned;    /* stored now */
    int changed;  /* of those, a choice other than the default */
    int partial;  /* searches cut short by their time share */
    int skipped;  /* left at the default: the budget ran out */
    double seconds;
} tune_summary;

/* Tune the shapes that have no result yet, biggest first: TUNE_AUTO with the quick candidate
 * list within budget_s seconds (a shape gets the share of the time left that its FLOPs are of
 * the FLOPs left; shapes the budget does not reach keep the default and are tuned by a later
 * run), TUNE_FULL with every candidate and no limit, TUNE_OFF nothing. */
graft_status tune_shapes(graft_context *ctx, const gemm_shape *shapes, int n, tune_mode mode,
                         double budget_s, tune_progress_fn progress, void *user,
                         tune_summary *sum, graft_error *e);

/* The candidates tune_gemm tries for a shape on this device, the default first; returns the count. */
int tune_candidates(const graft_context *ctx, const gemm_shape *s, gemm_choice *out, int cap);
/* The tiled kernel's variants this device can run (all of them are GPU candidates; tests run
 * every one on every device). */
int tune_tiled_variants(const graft_context *ctx, gemm_choice *out, int cap);

/* Time one choice on one shape: the median of `reps` samples after a warm-up (compiles
 * excluded), operands rotated past the cache as in tune_gemm. */
graft_status tune_time(graft_context *ctx, const gemm_choice *ch, const gemm_shape *s, int reps,
                       double *seconds, graft_error *e);

#endif

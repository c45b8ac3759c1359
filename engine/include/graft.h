/* graft.h — the public door of libgraft: status codes, errors with source positions, diagnostics,
 * devices and contexts, recipes, training, evaluation, prediction, reports and the recipe schema.
 * Everything a program using Graft needs is declared here; the stage headers under engine/ are
 * private to the library. Handles (graft_context, graft_recipe) are opaque; the structs declared
 * here are plain data whose every field is documented, filled by the library for the caller.
 * Build against the installed library with `cc prog.c $(pkg-config --cflags --libs graft)`.
 *
 * Ownership: every _create or _load function has its _free; strings and arrays the library returns through
 * a char ** or T ** out-parameter are malloc'ed and released with graft_free(). */
#ifndef GRAFT_H
#define GRAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_VERSION "0.1.0"
#define GRAFT_VERSION_MAJOR 0
#define GRAFT_VERSION_MINOR 1
#define GRAFT_VERSION_PATCH 0

/* The version of the library actually loaded (GRAFT_VERSION is the header's). */
const char *graft_version(void);
/* Library, OpenCL (ICD loader and each platform), CLBlast and libyaml versions, one per line
 * ("graft 0.1.0", "OpenCL ICD loader: ...", "OpenCL platform: ...", "CLBlast 1.5.3",
 * "libyaml 0.2.5"), into buf (always NUL-terminated). */
void graft_version_text(char *buf, size_t n);
/* Release a string or array the library returned through an out-parameter. */
void graft_free(void *p);

typedef enum graft_status {
    GRAFT_OK = 0,
    GRAFT_STATUS_USAGE,       /* bad command line: exit 2 */
    GRAFT_STATUS_BAD_RECIPE,  /* recipe/config error, with positions: exit 2 */
    GRAFT_STATUS_BAD_DATA,    /* a data, weight or cache file is malformed: exit 1 */
    GRAFT_STATUS_IO,          /* a file could not be read or written: exit 1 */
    GRAFT_STATUS_OPENCL,      /* no platform, a failed OpenCL call or kernel build: exit 1 */
    GRAFT_STATUS_NOMEM,       /* host or device allocation failed: exit 1 */
    GRAFT_STATUS_UNSUPPORTED, /* the device or build lacks something needed: exit 1 */
    GRAFT_STATUS_INTERNAL,    /* a bug in Graft: exit 1 */
} graft_status;

/* A position in a source file. line and col count from 1; line 0 means "no position". */
typedef struct graft_mark {
    const char *file;
    int line;
    int col;
} graft_mark;

/* One error: the status, an optional position and a message saying what was expected and found.
 * Callers zero it ({0}) and pass it to any function that can fail; on failure it is filled. */
typedef struct graft_error {
    graft_status status; /* the status the function returned */
    char file[512];      /* the file the problem is in, or "" */
    int line, col;       /* 1-based position in file; line 0 = no position */
    char message[1536];  /* what was expected and what was found */
} graft_error;

/* A list of problems found in one pass (recipe checking reports all of them at once). Callers
 * zero it ({0}), read items[0..count) and release it with graft_diags_free. */
typedef struct graft_diag {
    char *file;    /* the file, or "" (e.g. a problem with a --set override) */
    int line, col; /* 1-based; 0 = no position */
    char *message;
} graft_diag;

typedef struct graft_diags {
    graft_diag *items;
    int count; /* problems in items */
    int cap;   /* allocated items (the library's business) */
    bool nomem; /* an allocation failed while checking: the result is incomplete (not a bad input) */
} graft_diags;

const char *graft_status_name(graft_status s);
/* 2 for usage and recipe errors, 1 for every other failure, 0 for GRAFT_OK. */
int graft_exit_code(graft_status s);
/* "FILE:LINE:COL: error: MESSAGE" (or "error: MESSAGE" without a position) into buf. */
void graft_error_format(const graft_error *e, char *buf, size_t n);

/* Number of problems, and the i-th as "FILE:LINE:COL: error: MESSAGE" into buf (for bindings that
 * would rather not mirror the structs). */
int graft_diags_count(const graft_diags *d);
void graft_diags_format(const graft_diags *d, int i, char *buf, size_t n);
void graft_diags_add(graft_diags *d, graft_mark at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sort by file, line, column (stable), so output reads top to bottom. */
void graft_diags_sort(graft_diags *d);
void graft_diags_print(const graft_diags *d, FILE *to);
void graft_diags_free(graft_diags *d);

/* ---- devices ---------------------------------------------------------------------------- */

typedef enum graft_device_type {
    GRAFT_DEVICE_CPU = 1,
    GRAFT_DEVICE_GPU = 2,
    GRAFT_DEVICE_ACCELERATOR = 4,
    GRAFT_DEVICE_OTHER = 8,
} graft_device_type;

/* What the capability probe learns about one device. */
typedef struct graft_device_info {
    int platform_index, device_index;
    char platform[128];
    char platform_version[128];
    char vendor[128];
    char name[256];
    char driver[128];
    char cl_version[128];
    char cl_c_version[128];
    graft_device_type type;
    unsigned compute_units;
    unsigned clock_mhz;
    uint64_t global_mem_bytes;
    uint64_t local_mem_bytes;
    uint64_t max_alloc_bytes;
    size_t max_work_group_size;
    unsigned vec_char, vec_short, vec_int, vec_long, vec_float, vec_double, vec_half;
    int fp16, fp64;
} graft_device_info;

/* Every device of every platform the ICD loader knows. *out is malloc'ed; free() it. */
graft_status graft_devices_list(graft_device_info **out, int *count, graft_error *err);
const char *graft_device_type_name(graft_device_type t);
/* The same list as a JSON array of objects (what `graft devices --json` prints); graft_free it. */
graft_status graft_devices_json(char **json, graft_error *err);
/* The device a spec selects ("cpu", "gpu", "nvidia", "amd", "intel", "pocl", "P:D", or a name
 * substring; NULL or "" = GRAFT_DEVICE or else first GPU, else first CPU). Returns its index in list. */
graft_status graft_device_select(const graft_device_info *list, int count, const char *spec,
                                 int *index, graft_error *err);

/* A context owns one device, its queue, the program cache and everything built on them. */
typedef struct graft_context graft_context;

typedef struct graft_context_options {
    const char *device;    /* device spec; NULL = GRAFT_DEVICE env, else default rule */
    const char *cache_dir; /* NULL = GRAFT_CACHE_DIR, else $XDG_CACHE_HOME/graft, ~/.cache/graft */
    int no_cache;          /* 1 = do not read or write the disk cache (also GRAFT_NO_CACHE=1) */
    int profile;           /* 1 = enable OpenCL profiling on the queue */
} graft_context_options;

graft_status graft_context_create(const graft_context_options *opt, graft_context **out,
                                  graft_error *err);
void graft_context_free(graft_context *ctx);
const graft_device_info *graft_context_device(const graft_context *ctx);

/* ---- recipes, training, evaluation, prediction ---------------------------------------- */

typedef struct graft_recipe graft_recipe;

/* Load a recipe file (extends chains, model files) and apply "path.to.key=YAML" overrides. On
 * failure every problem is in diags (FILE:LINE:COL) and the status is GRAFT_STATUS_BAD_RECIPE. */
graft_status graft_recipe_load(const char *file, const char *const *sets, int nsets,
                               graft_recipe **out, graft_diags *diags);
void graft_recipe_free(graft_recipe *r);
/* Layers, parameters (not buffers) and the trainable ones after freezing. */
void graft_recipe_size(const graft_recipe *r, int *layers, long *params, long *trainable);
/* The model's input shape (without the batch dimension): its rank, dims[0..rank) (rank <= 4). */
int graft_recipe_input_shape(const graft_recipe *r, long dims[4]);
/* Values per row of the model's output (the logits of one sample). */
long graft_recipe_output_size(const graft_recipe *r);
/* What `graft plan RECIPE --json` prints: one JSON object (layers with shapes, parameters,
 * frozen/trainable, backward, fusion, checkpoint loading; totals; feature cache; memory). */
graft_status graft_recipe_plan_json(const graft_recipe *r, char **json, graft_error *err);
/* The JSON Schema (draft 2020-12) of the recipe language, generated from the checker's own
 * tables (what `graft schema` prints). */
graft_status graft_recipe_schema_json(char **json, graft_error *err);

typedef struct graft_train_result {
    double test_accuracy, test_loss;
    int best_epoch, epochs_run;
    double train_seconds, images_per_second;
    int feature_cache;   /* 1 when the frozen prefix's features were computed once and reused */
    char run_dir[2048];  /* the run directory written (summary.json, report.html, weights) */
} graft_train_result;

/* Train into out_dir (NULL = the recipe's output:) on device (NULL = recipe or default). The run
 * directory receives model.safetensors, last.safetensors, state.safetensors, metrics.jsonl,
 * summary.json, recipe.yaml and report.html, each written aside and renamed. */
graft_status graft_run_train(graft_recipe *r, const char *out_dir, const char *device,
                             graft_train_result *res, graft_error *err);

/* Training progress: called after every step (at most a few times a second carries fresh
 * numbers), once at each epoch's end (epoch_done), and for events (note != NULL). */
typedef struct graft_progress {
    int epoch, epochs;        /* 1-based epoch, of epochs */
    long batch, batches;      /* batches done in this epoch, of batches */
    double loss, accuracy;    /* running means over the epoch so far (NAN before the first read) */
    double images_per_second; /* this epoch so far */
    double eta_seconds;       /* rest of this epoch */
    int epoch_done;           /* 1 at the end of an epoch; val_* are then set */
    double val_loss, val_accuracy; /* NAN without a validation split */
    double lr;                /* the learning rate of the last step */
    const char *note;         /* an event ("compiling kernels", "unfreezing: ...") or NULL */
} graft_progress;
typedef void (*graft_progress_fn)(void *user, const graft_progress *p);

typedef struct graft_train_options {
    const char *out_dir;        /* NULL = the recipe's output: */
    const char *device;         /* NULL = the recipe's device:, GRAFT_DEVICE, or the default */
    const char *resume;         /* a run directory to resume from, or NULL */
    graft_progress_fn progress; /* or NULL */
    void *user;                 /* passed to progress */
    /* or NULL; set *stop nonzero (from progress or another thread) to end training after the
     * current step, as train.max_steps does: the partial epoch is checkpointed, the test split
     * evaluated and the run directory complete (graft_run_train_opts returns GRAFT_OK) */
    const volatile int *stop;
} graft_train_options;

/* graft_run_train with a progress callback and resume. */
graft_status graft_run_train_opts(graft_recipe *r, const graft_train_options *opt,
                                  graft_train_result *res, graft_error *err);
/* Test-split loss and accuracy of weights. */
graft_status graft_run_eval(graft_recipe *r, const char *weights, const char *device,
                            double *loss, double *accuracy, graft_error *err);
/* What `graft eval --json` prints: {loss, accuracy, n, per_class_accuracy, confusion} (rows: true
 * class, columns: predicted) on the test split; graft_free the string. */
graft_status graft_run_eval_json(graft_recipe *r, const char *weights, const char *device,
                                 char **json, graft_error *err);
/* Logits [N, classes] for an .npy input, written to an .npy file. */
graft_status graft_run_predict(graft_recipe *r, const char *weights, const char *input_npy,
                               const char *output_npy, const char *device, long *rows,
                               graft_error *err);

/* Kinds of raw input for graft_run_predict_rows. */
typedef enum graft_dtype {
    GRAFT_DTYPE_F32 = 1, /* float32, already preprocessed (normalised) */
    GRAFT_DTYPE_F64 = 2, /* float64, already preprocessed */
    GRAFT_DTYPE_U8 = 3,  /* pixels 0..255: scaled to [0, 1] and normalised as training data is */
} graft_dtype;

/* Logits for rows samples held in memory: data is rows × the input shape (C-contiguous), logits
 * receives rows × graft_recipe_output_size(r) floats (the caller's array). */
graft_status graft_run_predict_rows(graft_recipe *r, const char *weights, const char *device,
                                    const void *data, graft_dtype dtype, long rows, float *logits,
                                    graft_error *err);

/* ---- reports ---------------------------------------------------------------------------- */

/* One self-contained HTML page (inline SVG, no network) for the run directories dirs[0..n): loss,
 * accuracy and learning-rate curves per epoch (all runs on the same axes), unfreeze events; for a
 * single run also per-class test accuracy, the confusion matrix, the frozen/trainable layout and
 * timing. Written aside and renamed into out_html. */
graft_status graft_report_runs(const char *const *dirs, int n, const char *out_html,
                               graft_error *err);

/* The table of those runs that `graft report RUN_DIR...` prints: run, directory, epochs, best
 * epoch, test accuracy and loss, best validation accuracy, training seconds ("unfinished" for a
 * run without summary.json yet); aligned text, or Markdown when markdown is non-zero. *text is
 * malloc'ed: graft_free it. */
graft_status graft_report_runs_table(const char *const *dirs, int n, int markdown, char **text,
                                     graft_error *err);

/* ---- benchmarks (graft bench RECIPE) --------------------------------------------------------- */

/* Zero-initialised except warmup = -1 gives `graft bench`'s defaults. */
typedef struct graft_bench_options {
    int steps;   /* measured steps; 0: 10 */
    int warmup;  /* untimed steps after the warm start; negative: 2 */
    int batch;   /* 0: the recipe's train.batch_size */
    int no_tune; /* the cold start compiles only (no GEMM tuning) */
    /* an estimate of a step on another device from the cost model: launch_us and bandwidth_gbs
     * together (gflops optional); 0: none */
    double model_launch_us, model_bandwidth_gbs, model_gflops;
} graft_bench_options;

/* Profile r's training step on devices ("all", a comma-separated list of device specs, or NULL
 * for the usual device) as `graft bench RECIPE --json` does: per device a cold and a warm start,
 * per-layer timings with each conv's kernel path, the step and its cost model; the JSON of
 * docs/bench-schema.md into *json (graft_free it). A device that fails has its "error" set and
 * the others still run; the call fails only when none can be named or memory runs out.
 * opt NULL: the defaults. */
graft_status graft_bench_json(graft_recipe *r, const char *devices, const graft_bench_options *opt,
                              char **json, graft_error *err);

/* Zero-initialised: aligned text, the first device of the first run as the baseline, no page. */
typedef struct graft_bench_report_options {
    const char *baseline; /* the device ratios compare with: a case-insensitive substring of its
                           * name (or name @ host), or its spec */
    int markdown;         /* Markdown tables instead of aligned text */
    const char *html;     /* also write one self-contained HTML page (inline SVG) here, aside and
                           * renamed; NULL: none */
} graft_bench_report_options;

/* `graft report RUN.json...`: the runs of `graft bench --json` files[0..n) (one or many devices
 * each, from any machines) merged into tables of devices, of layers (each device's forward and
 * backward medians and its speed-up against the baseline), of achieved GFLOP/s with each
 * convolution's kernel path, and of the cost model of a step; what the command prints, into *text.
 * Devices that failed in their run are skipped and named, one a line, in *notes (NULL: not
 * wanted). Both malloc'ed: graft_free them. Errors: a file that is not a bench run, holds a newer
 * schema or is not JSON (with its line and column), GRAFT_STATUS_BAD_DATA; a baseline that matches
 * no device, GRAFT_STATUS_USAGE (the message lists the devices); a page that cannot be written,
 * GRAFT_STATUS_IO. opt NULL: the defaults. */
graft_status graft_bench_report(const char *const *files, int n,
                                const graft_bench_report_options *opt, char **text, char **notes,
                                graft_error *err);

/* ---- choosing what to transfer (graft rank, graft sweep) ---------------------------------- */

enum { GRAFT_EST_LOGME, GRAFT_EST_HSCORE, GRAFT_EST_NCE, GRAFT_EST_LEEP, GRAFT_EST_COUNT };

/* One candidate checkpoint scored for a recipe: ok = 0 means it could not be (error says why);
 * has[i] = 0 for NCE and LEEP when it has no classifier of its own (skipped says why). */
typedef struct graft_rank_result {
    int ok;
    char error[1024];
    char skipped[512];
    char layer[128]; /* the features are this layer's input */
    int dim;
    long images;
    int has[GRAFT_EST_COUNT];
    double score[GRAFT_EST_COUNT]; /* higher is better for all four */
    double seconds;
} graft_rank_result;

/* Score n candidate checkpoints for a recipe file on its training split, without training:
 * each candidate's frozen prefix (up to layer, NULL = transfer.head.cut or the last layer's input)
 * once over the data, LogME, H-score, NCE and LEEP on the host. out has n entries. Fails only
 * when the recipe or its data cannot be loaded. */
graft_status graft_run_rank(const char *recipe_file, const char *const *sets, int nsets,
                            const char *const *candidates, int n, const char *layer,
                            const char *device, graft_rank_result *out, graft_error *err);

/* The estimators themselves on host arrays (row-major float64 features f, n×d; labels in [0, k)):
 * LogME (You et al. 2021), H-score (Bao et al. 2019); NCE from source argmax classes z in
 * [0, ks), LEEP from source class probabilities p (n×ks). */
graft_status graft_logme(const double *f, long n, int d, const int *y, int k, double *score,
                         graft_error *err);
graft_status graft_hscore(const double *f, long n, int d, const int *y, int k, double *score,
                          graft_error *err);
graft_status graft_nce(const int *z, int ks, const int *y, int k, long n, double *score,
                       graft_error *err);
graft_status graft_leep(const double *p, int ks, const int *y, int k, long n, double *score,
                        graft_error *err);

#ifdef __cplusplus
}
#endif
#endif

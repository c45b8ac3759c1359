/* graft.h — the public door of libgraft: status codes, errors with source positions, diagnostics,
 * devices and contexts. Everything a program using Graft needs is declared here; the stage headers
 * under engine/ are private to the library. */
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

/* One error: the status, an optional position and a message saying what was expected and found. */
typedef struct graft_error {
    graft_status status;
    char file[512];
    int line, col;
    char message[1536];
} graft_error;

/* A list of problems found in one pass (recipe checking reports all of them at once). */
typedef struct graft_diag {
    char *file;
    int line, col;
    char *message;
} graft_diag;

typedef struct graft_diags {
    graft_diag *items;
    int count, cap;
    bool
        nomem; /* an allocation failed while checking: the result is incomplete (not a bad input) */
} graft_diags;

const char *graft_status_name(graft_status s);
/* 2 for usage and recipe errors, 1 for every other failure, 0 for GRAFT_OK. */
int graft_exit_code(graft_status s);
/* "FILE:LINE:COL: error: MESSAGE" (or "error: MESSAGE" without a position) into buf. */
void graft_error_format(const graft_error *e, char *buf, size_t n);

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

typedef struct graft_train_result {
    double test_accuracy, test_loss;
    int best_epoch, epochs_run;
    double train_seconds, images_per_second;
    int feature_cache;
} graft_train_result;

/* Train into out_dir (NULL = the recipe's output:) on device (NULL = recipe or default). */
graft_status graft_run_train(graft_recipe *r, const char *out_dir, const char *device,
                             graft_train_result *res, graft_error *err);
/* Test-split loss and accuracy of weights. */
graft_status graft_run_eval(graft_recipe *r, const char *weights, const char *device,
                            double *loss, double *accuracy, graft_error *err);
/* Logits [N, classes] for an .npy input, written to an .npy file. */
graft_status graft_run_predict(graft_recipe *r, const char *weights, const char *input_npy,
                               const char *output_npy, const char *device, long *rows,
                               graft_error *err);

#ifdef __cplusplus
}
#endif
#endif

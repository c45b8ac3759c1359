/* base.h — small shared pieces every stage uses: error setting, arenas, growable buffers,
 * SHA-256, and file helpers that write aside then rename. Nothing here knows about OpenCL or YAML. */
#ifndef GRAFT_BASE_H
#define GRAFT_BASE_H

#include "graft.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Set *e (when non-NULL) and return s, so callers write `return err_set(e, S, "...")`. */
graft_status err_set(graft_error *e, graft_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
graft_status err_at(graft_error *e, graft_status s, graft_mark at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
graft_status err_vset(graft_error *e, graft_status s, graft_mark at, const char *fmt, va_list ap);
/* Prepend "what: " to an existing message (adds context while an error travels up). */
void err_prefix(graft_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- arena: many small allocations freed at once ---- */
typedef struct arena_block arena_block;
typedef struct arena {
    arena_block *head;
    bool failed; /* an allocation returned NULL: whatever was being built is incomplete */
} arena;
void *arena_alloc(arena *a, size_t n); /* zeroed, 16-byte aligned; NULL on failure */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(arena *a);

/* ---- growable byte buffer ---- */
typedef struct buf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed; contents are incomplete */
} buf;
void buf_append(buf *b, const void *p, size_t n);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(buf *b);
/* s with &, <, >, " escaped and control characters (but newline and tab) dropped: HTML text */
void buf_html(buf *b, const char *s);

/* ---- tables of string cells (reports; table.c) ---- */
typedef struct table {
    int cols, rows;
    char **cell; /* rows * cols, row 0 = header */
} table;
void table_init(table *t, int cols, int rows); /* t->cell NULL when out of memory */
void table_set(table *t, int row, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *table_cell(const table *t, int r, int c); /* "" when unset */
void table_free(table *t);
bool table_numeric(const char *s); /* a number, "-" or "nan": right-aligned */
/* Aligned text (two spaces between columns) or Markdown (md) into to, one line per row. */
void table_print(const table *t, bool md, buf *to);
/* An HTML <table> (row 0 the header; numeric cells class "n", a '!' cell titled). */
void table_html(const table *t, buf *b);

/* ---- SHA-256 (FIPS 180-4) ---- */
typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    uint8_t block[64];
    size_t fill;
} sha256_ctx;
void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *p, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
void sha256(const void *p, size_t n, uint8_t out[32]);
void hex_encode(const uint8_t *p, size_t n, char *out); /* out holds 2n+1 chars */

/* ---- files ---- */
/* Read a whole file (at most max_bytes; larger is an error). *out is malloc'ed and NUL-terminated. */
graft_status fs_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                          graft_error *e);
/* Write to PATH.tmp.PID in the same folder, fsync, rename over path: complete or absent. */
graft_status fs_write_atomic(const char *path, const void *data, size_t len, graft_error *e);
graft_status fs_mkdir_p(const char *path, graft_error *e);
/* Graft's cache folder (compiled programs, tuning results, decoded data): dir when given, else
 * GRAFT_CACHE_DIR, $XDG_CACHE_HOME/graft, ~/.cache/graft. False when GRAFT_NO_CACHE is set or
 * there is nowhere to keep one. Not created here. */
bool fs_cache_dir(const char *dir, char *out, size_t n);
bool fs_exists(const char *path);
/* dirname of path into out ("." when it has none). */
void fs_dirname(const char *path, char *out, size_t n);
/* Join dir and rel (rel absolute = rel). */
void fs_join(const char *dir, const char *rel, char *out, size_t n);

/* Levenshtein distance, capped: used for did-you-mean suggestions. */
int edit_distance(const char *a, const char *b);
/* The candidate closest to word (distance <= max(2, len/3)), or NULL. */
const char *did_you_mean(const char *word, const char *const *cands, int n);

double now_seconds(void); /* monotonic clock */
void str_trim(char *s);   /* strip leading and trailing white space in place */
/* The index of the first NaN or infinity among x[0..n), or -1: a scan the compiler vectorises
 * (an epoch end checks every weight of the model with it). */
long first_nonfinite_f32(const float *x, long n);

/* ---- device specs (devspec.c): the grammar below recipe/ and runtime/, pure so it can be tested
 * without any OpenCL platform ---- */
typedef enum devspec_kind {
    DEVSPEC_DEFAULT,   /* empty: first GPU, else first CPU */
    DEVSPEC_TYPE,      /* cpu | gpu */
    DEVSPEC_VENDOR,    /* nvidia | amd | intel | pocl */
    DEVSPEC_INDEX,     /* P:D */
    DEVSPEC_SUBSTRING, /* anything else: case-insensitive substring of the device or platform name */
} devspec_kind;

typedef struct devspec {
    devspec_kind kind;
    graft_device_type type;
    char word[128]; /* vendor word or substring */
    int platform, device;
} devspec;

graft_status devspec_parse(const char *spec, devspec *out, graft_error *e);
/* Index into list of the first device matching, or an error listing what is there. */
graft_status devspec_match(const devspec *s, const graft_device_info *list, int n, int *index,
                           graft_error *e);
/* --devices / train.devices: a comma-separated list of specs, or "all" (every device in list).
 * idx gets the matched indexes into list in the order named (at most cap, *n of them); a device
 * named twice is an error (one replica per device). */
#define DEVSPEC_MAX_LIST 16
graft_status devspec_parse_list(const char *specs, devspec *out, int cap, int *n, bool *all,
                                graft_error *e);
graft_status devspec_match_list(const char *specs, const graft_device_info *list, int count,
                                int *idx, int cap, int *n, graft_error *e);
/* A spec of one rank of an MPI job: every {local_rank} replaced by its number ("0:{local_rank}"
 * gives rank 1 on a node "0:1"); the result is cut to n bytes. */
void devspec_local_rank(const char *spec, int local_rank, char *out, size_t n);

/* The optimizers, shared by the recipe (train.optimizer) and the runtime's fused updates
 * (op_optim.c), which must not depend on the recipe stage. */
typedef enum optimizer_kind { OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM, OPT_ADAMW } optimizer_kind;

/* The largest attention head (D / heads) the runtime's fused attention kernels take: they keep a
 * head's row in private memory. Larger heads run as per-head GEMMs, without attention dropout;
 * the graph stage refuses dropout there. */
#define ATTN_FUSED_MAX_DH 128

#endif

/* runtime.h — the runtime stage: devices, the persistent program cache, kernels built from the
 * embedded cl/ sources, buffers, launches (each one can be profiled) and GEMM through CLBlast.
 * Everything here hangs off a graft_context; the one global state is compile ahead's copy of the
 * kernel arguments set (ahead.c), behind a mutex. */
#ifndef GRAFT_RUNTIME_H
#define GRAFT_RUNTIME_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "base.h"

/* ---- embedded kernel sources (generated from cl/ *.cl at build time) ---- */
const char *cl_source_get(const char *name); /* "act" for cl/act.cl; NULL if absent */
int cl_source_count(void);
const char *cl_source_name(int i);
/* The declarations of cl/builtins_lean.cl for the builtins the program text src names (whole
 * overload sets; the double ones under #ifdef cl_khr_fp64), malloc'd; NULL when out of memory. */
char *cl_builtin_decls(const char *src);

/* ---- the program cache ----
 * Entries are files named by the SHA-256 of their key; each carries a magic, a format number, its
 * key and a SHA-256 of its payload. Anything that does not check out is ignored (and rebuilt). */
typedef struct cache {
    char dir[2048]; /* "" when disabled */
    int hits, misses, rejected;
} cache;

#define CACHE_FORMAT 1
graft_status cache_open(cache *c, const char *dir, int disabled, graft_error *e);
/* Read the payload stored under key; GRAFT_OK with *data NULL means "no valid entry". */
graft_status cache_get(cache *c, const char *kind, const void *key, size_t keylen, void **data,
                       size_t *len);
graft_status cache_put(cache *c, const char *kind, const void *key, size_t keylen,
                       const void *data, size_t len, graft_error *e);
/* Who keeps the device's compiled programs (GRAFT_PROGRAM_CACHE; context.c): 1 the driver, from
 * source builds (PoCL with its kernel cache on, by default), 0 Graft's cache, as driver binaries;
 * -1 the variable holds neither "driver" nor "graft". */
int program_cache_by_driver(const graft_device_info *info);
bool device_is_pocl(const graft_device_info *info);
long device_loop_limit(const graft_device_info *info);
/* Of n rows (samples) that a work-item walks per_row loop iterations each, how many one launch
 * may take on a loop-limited device (half its limit; n where there is none). */
int loop_bounded_rows(const graft_context *ctx, int n, size_t per_row);
/* what a bad GRAFT_PROGRAM_CACHE is called (a printf format for its value) */
#define PROGRAM_CACHE_BAD_VALUE "GRAFT_PROGRAM_CACHE: expected graft or driver, found '%s'"
/* The file an entry lives in (for tests that corrupt it). */
void cache_entry_path(const cache *c, const char *kind, const void *key, size_t keylen, char *out,
                      size_t n);

/* ---- GEMM choices remembered per shape (gemm.c, tune.c) ----
 * gemm() looks a shape up here first, then in the tuning results of the program cache (kind
 * "tune"), then falls back to the device type's defaults; the table lives inline in the context so
 * the context needs nothing freed for it. */
typedef struct gemm_memo {
    size_t m, n, k;
    unsigned char ta, tb, tuned;
    int backend, p[4];
} gemm_memo;
#define GEMM_MEMO_MAX 64

/* ---- context ---- */
typedef struct program_entry program_entry;
typedef struct kernel_entry kernel_entry;

/* One profiled launch: the label the compiler set (e.g. "conv1.fwd") and its event. */
typedef struct prof_event {
    char label[96];
    cl_event evt;
} prof_event;

/* ---- cost counters (context.c): what the host asks of the device, so a step's cost can be read
 * on any device. Counted: every kernel launch (launch(); a fill counts as one), every GEMM call
 * (gemm_run: its operand traffic and FLOPs; a CLBlast call counts as one launch, marked clblast,
 * since the kernels it enqueues internally are not visible), every host synchronisation
 * (queue_finish, events_wait, blocking buffer_read/buffer_write) and every byte moved between host
 * and device. The totals are always kept; while rows_on is set each count is also filed under
 * (profiling label, kernel name) so a reader can attribute it to an op family. Reading profiling
 * events (event_seconds) happens after a step and is not counted. */
typedef struct cost_row {
    char label[96];  /* ctx->prof_label when counted */
    char kernel[48]; /* kernel function name, or clblast_sgemm, gemm (traffic), fill, write, read,
                        finish, wait */
    long launches, clblast_calls, gemm_calls, syncs;
    double items;               /* work-items launched (global size, before rounding up) */
    double h2d_bytes, d2h_bytes; /* host -> device, device -> host */
    double traffic_bytes;       /* device memory read + written, where known (GEMM, fill) */
    double flops;               /* where known (GEMM: 2mnk) */
} cost_row;

typedef struct cost_counters {
    long launches, clblast_calls, gemm_calls, syncs;
    double h2d_bytes, d2h_bytes, gemm_traffic_bytes, gemm_flops;
    int rows_on;
    cost_row *rows;
    int nrows, caprows;
} cost_counters;

struct graft_context {
    graft_device_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl;
    cl_command_queue queue;
    int profiling;
    cache cache;
    program_entry *programs; /* in-memory programs built in this context */
    kernel_entry *kernels;   /* kernels owned by the context (kernel_get) */
    /* profiling: while record is set (and the queue profiles), every launch and GEMM appends an
     * event labelled with prof_label */
    int record;
    char prof_label[96];
    prof_event *prof;
    int nprof, capprof;
    double compile_seconds;  /* time spent building programs from source */
    double slowest_build;    /* the longest of them (compile ahead's sign of a cold cache) */
    int programs_built, programs_loaded;
    /* the driver keeps its own builds (PoCL's kernel cache): programs are built from source every
     * time and Graft's cache holds only a marker per program (program_get) */
    int driver_caches;
    /* loop iterations a work-item may run in all, 0 = no limit (device_loop_limit) */
    long loop_limit;
    /* GEMM (gemm.c, tune.c): per-shape choices, and how many of them came from tuning results */
    gemm_memo gemm_memo[GEMM_MEMO_MAX];
    int ngemm_memo, gemm_tuned_hits, gemm_default_uses;
    /* tuning keys (tune.c): the hash of each kind's kernel sources, computed once per context */
    struct {
        const char *kind;
        char hex[65];
    } src_hash[4];
    int nsrc_hash;
    /* cost counters (see cost_counters above) */
    cost_counters cost;
    /* compile ahead (ahead.c): the launches recorded for a helper process; NULL when off */
    struct ahead *ahead;
};

/* The program for cl/<source>.cl built with options (shapes and constants as -D), from memory, the
 * disk cache, or a fresh build. On a build failure the error names the source and has the log. */
graft_status program_get(graft_context *ctx, const char *source, const char *options,
                         cl_program *out, graft_error *e);
/* The same for source text src, kept under the name source (one no embedded source has, for
 * tests of the build itself). */
graft_status program_get_text(graft_context *ctx, const char *source, const char *src,
                              const char *options, cl_program *out, graft_error *e);
/* An unbuilt program of src with the prelude every Graft program starts with (context.c: it turns
 * off a clang warning that AVX2 builds of float16 code print); program_get and the peak probe.
 * decls: builtin declarations put in front (cl_builtin_decls, for a build with -D_OPENCL_H_ on
 * PoCL), or NULL. */
cl_program program_from_source(graft_context *ctx, const char *src, const char *decls,
                               cl_int *rc);
/* A new kernel object (caller releases it) for a kernel of that program. */
graft_status kernel_create(graft_context *ctx, const char *source, const char *options,
                           const char *kernel, cl_kernel *out, graft_error *e);

/* kernel_create for each of n kernels of one program into out[0..n-1] (stops at the first
 * failure; the caller releases what was made with kernels_release, which skips NULLs). */
graft_status kernels_create(graft_context *ctx, const char *source, const char *options,
                            const char *const *names, int n, cl_kernel *out, graft_error *e);
void kernels_release(cl_kernel *k, int n);

/* A kernel owned and cached by the context: do not release it. Set its arguments right before
 * enqueueing it (the queue captures argument values at enqueue time). */
graft_status kernel_get(graft_context *ctx, const char *source, const char *options,
                        const char *kernel, cl_kernel *out, graft_error *e);

/* Profiling records: events appended while ctx->record is set; prof_clear releases them. */
void prof_set_label(graft_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cl_event *prof_next_event(graft_context *ctx); /* NULL when not recording */
void prof_clear(graft_context *ctx);

const char *cl_error_name(cl_int code);
graft_status cl_check(cl_int code, const char *what, graft_error *e);

/* Device buffers. */
graft_status buffer_create(graft_context *ctx, size_t bytes, cl_mem *out, graft_error *e);
graft_status buffer_write(graft_context *ctx, cl_mem m, size_t offset, const void *src, size_t bytes,
                          graft_error *e);
graft_status buffer_read(graft_context *ctx, cl_mem m, size_t offset, void *dst, size_t bytes,
                         graft_error *e);
graft_status buffer_fill_f32(graft_context *ctx, cl_mem m, float value, size_t count,
                             graft_error *e);

/* Arguments 0 .. n-1 of k from n (size, pointer) pairs, KARG(v) each; a failure is reported.
 * SET_ARGS(k, n, KARG(a), KARG(b), ..) returns it from the calling function, which must return
 * graft_status and have its graft_error *e in scope: one line per launch instead of one
 * clSetKernelArg line per argument (whose status went unchecked). */
#define KARG(v) sizeof(v), (const void *)&(v)
graft_status kernel_args(cl_kernel k, graft_error *e, int n, ...);
#define SET_ARGS(k, n, ...)                                                                        \
    do {                                                                                           \
        graft_status sa_ = kernel_args((k), e, (n), __VA_ARGS__);                                  \
        if (sa_) return sa_;                                                                       \
    } while (0)

/* clSetKernelArg, with a copy kept for compile ahead while a context records (ahead.c). Every
 * argument of a kernel that launch() enqueues is set through this or kernel_args. */
cl_int kernel_arg(cl_kernel k, cl_uint i, size_t size, const void *value);

/* Enqueue a 1-3 dimensional launch. local may be NULL. evt may be NULL; when recording, the launch
 * is profiled under ctx->prof_label whatever evt is. The global
 * size is rounded up to a multiple of local, since NVIDIA's OpenCL 1.2 has no non-uniform groups:
 * kernels guard their index against the real size. */
graft_status launch(graft_context *ctx, cl_kernel k, int dims, const size_t *global,
                    const size_t *local, cl_event *evt, graft_error *e);
/* Host synchronisations: every wait on the device goes through these so it is counted. */
graft_status queue_finish(graft_context *ctx, graft_error *e);
graft_status events_wait(graft_context *ctx, cl_uint n, const cl_event *events, graft_error *e);

/* Cost counters: zero the totals and rows; file counts under (label, kernel) or stop doing so. */
void cost_reset(graft_context *ctx);
void cost_rows(graft_context *ctx, int on);
/* For transfers enqueued outside buffer_read/buffer_write (non-blocking or mapped): bytes moved,
 * and whether the host waited for them. */
void cost_count_transfer(graft_context *ctx, int to_host, size_t bytes, int blocking);
/* A host synchronisation done outside queue_finish/events_wait (hostmem.c's transfer_wait). */
void cost_count_sync(graft_context *ctx, const char *what);
/* One GEMM call of m x n x k (beta != 0: C is read too): its operand traffic
 * (m*k + k*n + m*n [+ m*n]) * 4 bytes and 2mnk FLOPs; clblast: the call enqueues its own kernels
 * (one launch, marked as such), otherwise the kernels come through launch(). */
void cost_count_gemm(graft_context *ctx, size_t m, size_t n, size_t k, float beta, int clblast);

/* ---- compile ahead (ahead.c) ----
 * On PoCL, kernels compile at their first launch, one at a time. With a cold cache, at each host
 * synchronisation the launches enqueued since the last one whose kernel and work-group size are
 * new go to a helper process (the CLI's `graft __compile-ahead`), which runs them newest first on
 * zero-filled buffers of its own, so that PoCL's cache has them by the time this queue gets there.
 * GRAFT_COMPILE_AHEAD=auto|on|off|save:FILE. */
void ahead_set_helper(const char *exe); /* the executable with `__compile-ahead` (the CLI's) */
/* graft_context_create; a bad GRAFT_COMPILE_AHEAD is a usage error */
graft_status ahead_start(graft_context *ctx, graft_error *e);
#define COMPILE_AHEAD_BAD_VALUE                                                                    \
    "GRAFT_COMPILE_AHEAD: expected auto, on, off or save:FILE, found '%s'"
void ahead_note(graft_context *ctx, cl_kernel k, int dims, const size_t *global,
                const size_t *local); /* launch(), before it enqueues */
void ahead_flush(graft_context *ctx); /* at every host synchronisation */
void ahead_stop(graft_context *ctx);  /* graft_context_free: the helper is killed */
long ahead_launches_sent(const graft_context *ctx);
int ahead_helper_started(const graft_context *ctx);
/* `graft __compile-ahead --device SPEC (--fd N | FILE)`: replay launch records */
int ahead_helper_main(int argc, char **argv);
/* The source name and options a program of this context was built from (NULLs if none). */
void program_lookup(graft_context *ctx, cl_program prog, const char **source, const char **options);
/* With a driver that compiles a kernel at its first launch for the work-group size (PoCL): 1 when
 * no earlier process launched this kernel of prog with these sizes on this cache (a marker now
 * says one did), 0 when one did, -1 when there is no telling: Graft's cache is off, prog is not
 * Graft's, or Graft's cache had no marker of prog either. */
int kernel_first_launch(graft_context *ctx, cl_program prog, const char *kernel,
                        const size_t *sizes, int n);

/* Seconds between an event's start and end (profiling must be on). */
double event_seconds(cl_event evt);

/* ---- peak probe (peak.c): FMA GFLOP/s per vector width and copy GB/s, like clpeak; measured
 * once per device and driver and kept in the program cache (kind "peak") ---- */
#define PEAK_FMA_TYPES 4 /* float, float4, float8, float16 */
extern const char *const PEAK_FMA_NAMES[PEAK_FMA_TYPES];
typedef struct peak_result {
    double gflops[PEAK_FMA_TYPES];
    double copy_gbps; /* bytes read + written per second / 1e9 */
    double seconds;   /* how long the measurement took (when it ran) */
    int from_cache;
} peak_result;
/* The cached result when use_cache and there is one, else measure (and store it). */
graft_status peak_probe(graft_context *ctx, int use_cache, peak_result *out, graft_error *e);
double peak_best_gflops(const peak_result *p); /* the best of the vector widths */

/* ---- host memory and non-blocking transfers (hostmem.c) ----
 * Pinned staging memory: a CL_MEM_ALLOC_HOST_PTR buffer mapped once; ptr stays valid until
 * host_buffer_free. Transfers to and from it can run while the host prepares the next step. */
typedef struct host_buffer {
    cl_mem mem;
    void *ptr;
    size_t bytes;
} host_buffer;
/* mapped NULL: the buffer is mapped before this returns (after the queue's work so far). Else
 * the map is enqueued and *mapped gets its event: the host may touch ptr once it completes, and
 * commands enqueued after it may use ptr at once (the queue is in order). */
graft_status host_buffer_create(graft_context *ctx, size_t bytes, host_buffer *out,
                                cl_event *mapped, graft_error *e);
void host_buffer_free(graft_context *ctx, host_buffer *h);
/* Enqueue without waiting; *done (when not NULL) gets an event to wait for before src is reused
 * or dst is read. */
graft_status transfer_write_async(graft_context *ctx, cl_mem dst, size_t offset, const void *src,
                                  size_t bytes, cl_event *done, graft_error *e);
graft_status transfer_read_async(graft_context *ctx, cl_mem src, size_t offset, void *dst,
                                 size_t bytes, cl_event *done, graft_error *e);
/* Whether evt (NULL: nothing pending) has finished; never blocks. */
bool transfer_done(cl_event evt);
/* Wait for *evt and release it (NULL: nothing to do); *blocked (when not NULL) counts the waits
 * that really blocked the host. A failed transfer is an error. */
graft_status transfer_wait(graft_context *ctx, cl_event *evt, long *blocked, graft_error *e);
/* Slices: one buffer of count * stride bytes and a sub-buffer per stride (stride from
 * buffer_slice_stride: bytes rounded up to the device's sub-buffer alignment). Release the slices
 * before the parent. */
size_t buffer_slice_stride(graft_context *ctx, size_t bytes);
graft_status buffer_slices(graft_context *ctx, int count, size_t stride, cl_mem *parent,
                           cl_mem *slices, graft_error *e);
/* dst[r] = src[rows[r]] for n rows of `row` floats (cl/tensor.cl): batches from a device-resident
 * feature cache. rows is an int32 device buffer. A work-item moves ROWS_GATHER_FLOATS of a row
 * (the cost model counts that much read and written per work-item). */
#define ROWS_GATHER_FLOATS 16
graft_status rows_gather(graft_context *ctx, int n, int row, cl_mem src, cl_mem rows, cl_mem dst,
                         graft_error *e);
/* A device-to-device copy, enqueued without waiting. */
graft_status buffer_copy_async(graft_context *ctx, cl_mem src, size_t src_offset, cl_mem dst,
                               size_t dst_offset, size_t bytes, graft_error *e);

#endif

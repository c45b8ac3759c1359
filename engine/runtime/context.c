/* context.c — a device with its queue, programs built from the embedded cl/ sources through the
 * persistent cache, buffers and launches. */
#define _POSIX_C_SOURCE 200809L
#include "runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

graft_status device_open(const char *spec, graft_device_info *info, cl_platform_id *platform,
                         cl_device_id *device, graft_error *e);

struct program_entry {
    program_entry *next;
    char *source, *options;
    char *key;  /* program_key(): what the kernel markers of kernel_first_launch() extend */
    int marked; /* Graft's cache had its marker: the driver built it before (build_program) */
    cl_program program;
};

struct kernel_entry {
    kernel_entry *next;
    char *source, *options, *name;
    cl_kernel kernel;
};

const char *cl_error_name(cl_int code)
{
    switch (code) {
#define E(x) case x: return #x;
        E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE)
        E(CL_COMPILER_NOT_AVAILABLE) E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES)
        E(CL_OUT_OF_HOST_MEMORY) E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP)
        E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE) E(CL_INVALID_VALUE)
        E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT)
        E(CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR)
        E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS)
        E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
        E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX)
        E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS)
        E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE)
        E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_EVENT)
        E(CL_INVALID_OPERATION) E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_GLOBAL_WORK_SIZE)
        E(CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
#undef E
    }
    return "unknown OpenCL error";
}

graft_status cl_check(cl_int code, const char *what, graft_error *e)
{
    if (code == CL_SUCCESS) return GRAFT_OK;
    /* the driver refusing memory at run time (drivers allocate lazily, so it can come from an
     * enqueue as well as from clCreateBuffer): the same advice as the check before training */
    if (code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_RESOURCES)
        return err_set(e, GRAFT_STATUS_NOMEM,
                       "%s failed: the device ran out of memory or resources (%s); lower "
                       "train.batch_size or freeze more layers (transfer.freeze)",
                       what, cl_error_name(code));
    graft_status s = code == CL_OUT_OF_HOST_MEMORY ? GRAFT_STATUS_NOMEM : GRAFT_STATUS_OPENCL;
    return err_set(e, s, "%s failed: %s (%d)", what, cl_error_name(code), (int)code);
}

/* GRAFT_PROGRAM_CACHE: "graft" keeps the driver's program binaries in Graft's cache, "driver"
 * relies on the driver's own cache of builds from source; unset, "driver" on PoCL with its kernel
 * cache on, else "graft". PoCL writes a binary only after building every kernel of the program a
 * second time for any work-group size (on top of the sizes it was launched with): fetching them
 * took 18 of the 30 s of a cold `graft bench` of fmnist-pretrain on a Zen 4 core, and its own
 * cache serves a warm start from source in well under a second. */
bool device_is_pocl(const graft_device_info *info)
{
    return strstr(info->platform, "Portable Computing Language") != NULL;
}

int program_cache_by_driver(const graft_device_info *info)
{
    const char *v = getenv("GRAFT_PROGRAM_CACHE");
    if (v && *v) return strcmp(v, "driver") == 0 ? 1 : strcmp(v, "graft") == 0 ? 0 : -1;
    const char *pc = getenv("POCL_KERNEL_CACHE");
    return device_is_pocl(info) && !(pc && strcmp(pc, "0") == 0);
}

/* Mesa's llvmpipe (under rusticl) ends every loop of a work-item once the work-item has run
 * 65535 loop iterations in all, counting every loop of the kernel together (gallivm's
 * LP_MAX_TGSI_LOOP_ITERATIONS, Mesa 22.3), and says nothing: a GEMM work-item that walked 75
 * column tiles over a K range of 800 left the last 40 unwritten. Kernels whose work per work-item
 * grows with a shape bound it on such a device (gemm.c). GRAFT_LOOP_LIMIT sets the limit on any
 * device (0 = none), for testing those bounds where the driver has none. */
long device_loop_limit(const graft_device_info *info)
{
    const char *v = getenv("GRAFT_LOOP_LIMIT");
    if (v && *v) return atol(v) > 0 ? atol(v) : 0;
    return strstr(info->platform, "rusticl") && strncmp(info->name, "llvmpipe", 8) == 0 ? 65535
                                                                                        : 0;
}

int loop_bounded_rows(const graft_context *ctx, int n, size_t per_row)
{
    if (ctx->loop_limit <= 0 || per_row == 0) return n;
    size_t rows = (size_t)ctx->loop_limit / 2 / per_row;
    return rows < 1 ? 1 : rows < (size_t)n ? (int)rows : n;
}

graft_status graft_context_create(const graft_context_options *opt, graft_context **out,
                                  graft_error *e)
{
    *out = NULL;
    graft_context_options none = {0};
    if (!opt) opt = &none;
    graft_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    graft_status s = device_open(opt->device, &ctx->info, &ctx->platform, &ctx->device, e);
    if (s) goto fail;
    cl_int rc;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->cl = clCreateContext(props, 1, &ctx->device, NULL, NULL, &rc);
    if ((s = cl_check(rc, "clCreateContext", e))) goto fail;
    ctx->profiling = opt->profile;
    ctx->queue = clCreateCommandQueue(ctx->cl, ctx->device,
                                      opt->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
    if ((s = cl_check(rc, "clCreateCommandQueue", e))) goto fail;
    if ((s = cache_open(&ctx->cache, opt->cache_dir, opt->no_cache, e))) goto fail;
    if ((ctx->driver_caches = program_cache_by_driver(&ctx->info)) < 0) {
        s = err_set(e, GRAFT_STATUS_USAGE, PROGRAM_CACHE_BAD_VALUE, getenv("GRAFT_PROGRAM_CACHE"));
        goto fail;
    }
    ctx->loop_limit = device_loop_limit(&ctx->info);
    if ((s = ahead_start(ctx, e))) goto fail;
    *out = ctx;
    return GRAFT_OK;
fail:
    graft_context_free(ctx);
    return s;
}

void graft_context_free(graft_context *ctx)
{
    if (!ctx) return;
    ahead_stop(ctx);
    prof_clear(ctx);
    free(ctx->prof);
    free(ctx->cost.rows);
    kernel_entry *k = ctx->kernels;
    while (k) {
        kernel_entry *n = k->next;
        clReleaseKernel(k->kernel);
        free(k->source);
        free(k->options);
        free(k->name);
        free(k);
        k = n;
    }
    program_entry *p = ctx->programs;
    while (p) {
        program_entry *n = p->next;
        clReleaseProgram(p->program);
        free(p->source);
        free(p->options);
        free(p->key);
        free(p);
        p = n;
    }
    if (ctx->queue) {
        clFinish(ctx->queue);
        clReleaseCommandQueue(ctx->queue);
    }
    if (ctx->cl) clReleaseContext(ctx->cl);
    free(ctx);
}

const graft_device_info *graft_context_device(const graft_context *ctx)
{
    return &ctx->info;
}

/* What every program built here starts with: a float16 argument or return on a device without
 * AVX-512 (AVX2 CPUs through PoCL) makes clang warn that it "changes the ABI" at every call of a
 * float16 builtin, harmless in a kernel built whole for one target and printed on stderr by PoCL;
 * the warning is turned off, and #line keeps the source's line numbers in build logs. On PoCL the
 * declarations of the builtins the program names go in between (cl_builtin_decls, from
 * cl/builtins_lean.cl; see there and lean_builtins()). */
static const char CL_PRAGMAS[] =
    "#ifdef __clang__\n#pragma clang diagnostic ignored \"-Wunknown-warning-option\"\n"
    "#pragma clang diagnostic ignored \"-Wpsabi\"\n#endif\n";
static const char CL_LINE1[] = "#line 1\n";
/* with it, the option that keeps clang's opencl-c.h out */
static const char LEAN_OPTION[] = " -D_OPENCL_H_";

/* GRAFT_LEAN_BUILTINS: unset or "1", PoCL builds declare only the builtins the program names
 * (from cl/builtins_lean.cl: PoCL lexes every declaration on every load, warm or cold) and fall
 * back to the full header for a program that needs more; "strict" makes that fallback an error
 * (the tests); "0" builds every program with the full header. */
static int lean_builtins(const graft_device_info *info)
{
    const char *v = getenv("GRAFT_LEAN_BUILTINS");
    if (!device_is_pocl(info) || !cl_source_get("builtins_lean")) return 0;
    if (v && strcmp(v, "0") == 0) return 0;
    return v && strcmp(v, "strict") == 0 ? 2 : 1;
}

/* the strings a program is built from; returns how many */
static int program_text(const char *src, const char *decls, const char *parts[4])
{
    int n = 0;
    parts[n++] = CL_PRAGMAS;
    if (decls) parts[n++] = decls;
    parts[n++] = CL_LINE1;
    parts[n++] = src;
    return n;
}

cl_program program_from_source(graft_context *ctx, const char *src, const char *decls,
                               cl_int *rc)
{
    const char *parts[4];
    int n = program_text(src, decls, parts);
    return clCreateProgramWithSource(ctx->cl, (cl_uint)n, parts, NULL, rc);
}

/* The identity a cached binary depends on: any change of source, options, device or driver is a
 * different key. */
static char *program_key(graft_context *ctx, const char *src, const char *decls,
                         const char *options, size_t *len)
{
    uint8_t h[32];
    char hex[65];
    sha256_ctx sc;
    sha256_init(&sc);
    const char *parts[4];
    int n = program_text(src, decls, parts); /* what is built: every part */
    for (int i = 0; i < n; i++) sha256_update(&sc, parts[i], strlen(parts[i]));
    sha256_final(&sc, h);
    hex_encode(h, 32, hex);
    buf b = {0};
    buf_printf(&b, "platform=%s\nplatform_version=%s\ndevice=%s\nvendor=%s\ndriver=%s\n"
                   "options=%s\nsource=%s\n",
               ctx->info.platform, ctx->info.platform_version, ctx->info.name, ctx->info.vendor,
               ctx->info.driver, options, hex);
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* The program's build log without trailing blank space (calloc'd; NULL when out of memory). */
static char *read_build_log(graft_context *ctx, cl_program prog)
{
    size_t n = 0;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *log = calloc(n + 1, 1);
    if (!log) return NULL;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
    size_t len = strlen(log);
    while (len && (log[len - 1] == '\n' || log[len - 1] == ' ' || log[len - 1] == '\r'))
        log[--len] = 0;
    return log;
}

static graft_status build_log(graft_context *ctx, cl_program prog, const char *source,
                              const char *options, cl_int rc, graft_error *e)
{
    char *log = read_build_log(ctx, prog);
    /* the compiler's log follows on its own lines; without one (the driver ran out of memory,
     * say) the error stays one line */
    if (log && *log)
        err_set(e, GRAFT_STATUS_OPENCL,
                "kernel source cl/%s.cl failed to build (%s) with options '%s':\n%s", source,
                cl_error_name(rc), options, log);
    else
        err_set(e, GRAFT_STATUS_OPENCL,
                "kernel source cl/%s.cl failed to build (%s) with options '%s' (no build log)",
                source, cl_error_name(rc), options);
    free(log);
    return GRAFT_STATUS_OPENCL;
}

/* After a failed build with the driver's cache in charge: PoCL writes the source and its
 * preprocessed text into its kernel cache directory on every build from source, warm or cold, and a
 * failed write there (a full disk, a file-size limit) fails the build with no compiler message.
 * Tries a 64 KiB write where PoCL would; on failure returns 1 with the directory and the reason. */
static int pocl_cache_unwritable(const graft_context *ctx, char *dir, size_t dn, char *why,
                                 size_t wn)
{
    if (!device_is_pocl(&ctx->info)) return 0;
    const char *env;
    if ((env = getenv("POCL_CACHE_DIR")) && *env) snprintf(dir, dn, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env) snprintf(dir, dn, "%s/pocl/kcache", env);
    else if ((env = getenv("HOME")) && *env) snprintf(dir, dn, "%s/.cache/pocl/kcache", env);
    else return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/graft-probe-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(why, wn, "%s", strerror(errno));
        return 1;
    }
    static const char zeros[4096];
    int bad = 0;
    for (int i = 0; i < 16 && !bad; i++)
        if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros) {
            snprintf(why, wn, "%s", strerror(errno));
            bad = 1;
        }
    if (!bad && fsync(fd) != 0) {
        snprintf(why, wn, "%s", strerror(errno));
        bad = 1;
    }
    close(fd);
    unlink(path);
    return bad;
}

static cl_program from_binary(graft_context *ctx, const unsigned char *bin, size_t n,
                              const char *opts)
{
    cl_int rc, st;
    cl_program p = clCreateProgramWithBinary(ctx->cl, 1, &ctx->device, &n, &bin, &st, &rc);
    if (rc != CL_SUCCESS || st != CL_SUCCESS) {
        if (p) clReleaseProgram(p);
        return NULL;
    }
    if (clBuildProgram(p, 1, &ctx->device, opts, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p);
        return NULL;
    }
    return p;
}

/* Builds one program from its embedded source, or loads it from a cache; with decls (from
 * cl_builtin_decls) in place of clang's opencl-c.h, or the full header when NULL. */
static graft_status build_program_with(graft_context *ctx, const char *source, const char *src,
                                       const char *options, const char *decls, cl_program *out,
                                       char **key_out, int *marked, cl_int *build_rc,
                                       graft_error *e)
{
    *build_rc = CL_SUCCESS;
    *key_out = NULL;
    *marked = 0;
    char opts[4096];
    /* on PoCL with its cache in charge, compile ahead (ahead.c) reads which arguments are
     * buffers; the flag is metadata only, and the same for every program so built */
    const char *arg_info =
        ctx->driver_caches && device_is_pocl(&ctx->info) ? " -cl-kernel-arg-info" : "";
    if (snprintf(opts, sizeof opts, "-cl-std=CL1.2%s%s %s", arg_info, decls ? LEAN_OPTION : "",
                 options) >= (int)sizeof opts)
        return err_set(e, GRAFT_STATUS_INTERNAL, "build options too long for cl/%s.cl", source);

    size_t keylen = 0;
    char *key = program_key(ctx, src, decls, opts, &keylen);
    if (!key) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    cl_program prog = NULL;
    void *bin = NULL;
    size_t binlen = 0;
    /* with a driver that caches, the entry is a marker: the driver has built this program before,
     * so the build below is its cache's to serve (and counts as loaded) */
    cache_get(&ctx->cache, ctx->driver_caches ? "clsrc" : "clbin", key, keylen, &bin, &binlen);
    int seen = bin && ctx->driver_caches;
    *marked = seen;
    if (seen) {
        free(bin);
    } else if (bin) {
        prog = from_binary(ctx, bin, binlen, opts);
        if (!prog) ctx->cache.rejected++; /* the driver refused it: rebuild from source */
        else ctx->programs_loaded++;
        free(bin);
    }
    if (!prog) {
        double t0 = now_seconds();
        cl_int rc;
        prog = program_from_source(ctx, src, decls, &rc);
        graft_status s = cl_check(rc, "clCreateProgramWithSource", e);
        if (s) {
            free(key);
            return s;
        }
        rc = clBuildProgram(prog, 1, &ctx->device, opts, NULL, NULL);
        if (rc != CL_SUCCESS) {
            *build_rc = rc;
            char dir[2048], why[256];
            if (ctx->driver_caches && pocl_cache_unwritable(ctx, dir, sizeof dir, why, sizeof why))
                err_set(e, GRAFT_STATUS_OPENCL,
                        "kernel source cl/%s.cl failed to build: PoCL cannot write its kernel "
                        "cache %s (%s), which every build from source needs; make room there or "
                        "point POCL_CACHE_DIR elsewhere",
                        source, dir, why);
            else
                build_log(ctx, prog, source, opts, rc, e);
            clReleaseProgram(prog);
            free(key);
            return GRAFT_STATUS_OPENCL;
        }
        double dt = now_seconds() - t0;
        ctx->compile_seconds += dt;
        if (dt > ctx->slowest_build) ctx->slowest_build = dt;
        /* GRAFT_BUILD_LOG=1: a successful build's log (the compiler's warnings) on stderr;
         * 2: also every build from source, with its time */
        const char *show = getenv("GRAFT_BUILD_LOG");
        if (show && strcmp(show, "2") == 0)
            fprintf(stderr, "graft: cl/%s.cl %s in %.3f s, options '%s'\n", source,
                    seen ? "loaded" : "built", dt, options);
        if (show && *show && strcmp(show, "0") != 0) {
            char *log = read_build_log(ctx, prog);
            if (log && *log)
                fprintf(stderr, "graft: cl/%s.cl built with options '%s', log:\n%s\n", source,
                        opts, log);
            free(log);
        }
        if (seen) {
            ctx->programs_loaded++;
        } else {
            ctx->programs_built++;
            if (ctx->driver_caches) cache_put(&ctx->cache, "clsrc", key, keylen, "1", 1, NULL);
        }
        size_t size = 0;
        if (!ctx->driver_caches &&
            clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) ==
                CL_SUCCESS &&
            size > 0) {
            unsigned char *b = malloc(size);
            if (b && clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof b, &b, NULL) == CL_SUCCESS)
                cache_put(&ctx->cache, "clbin", key, keylen, b, size, NULL); /* best effort */
            free(b);
        }
    }
    *key_out = key;
    *out = prog;
    return GRAFT_OK;
}

static graft_status build_program(graft_context *ctx, const char *source, const char *src,
                                  const char *options, int lean, cl_program *out, char **key_out,
                                  int *marked, cl_int *build_rc, graft_error *e)
{
    *build_rc = CL_SUCCESS;
    *key_out = NULL;
    *marked = 0;
    char *decls = lean ? cl_builtin_decls(src) : NULL;
    if (lean && !decls) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    graft_status s =
        build_program_with(ctx, source, src, options, decls, out, key_out, marked, build_rc, e);
    free(decls);
    return s;
}

graft_status program_get(graft_context *ctx, const char *source, const char *options,
                         cl_program *out, graft_error *e)
{
    if (!options) options = "";
    for (program_entry *p = ctx->programs; p; p = p->next)
        if (strcmp(p->source, source) == 0 && strcmp(p->options, options) == 0) {
            *out = p->program;
            return GRAFT_OK;
        }
    const char *src = cl_source_get(source);
    if (!src)
        return err_set(e, GRAFT_STATUS_INTERNAL, "no embedded kernel source cl/%s.cl", source);
    return program_get_text(ctx, source, src, options, out, e);
}

graft_status program_get_text(graft_context *ctx, const char *source, const char *src,
                              const char *options, cl_program *out, graft_error *e)
{
    if (!options) options = "";
    cl_program prog = NULL;
    char *key = NULL;
    int lean = lean_builtins(&ctx->info), marked = 0;
    cl_int rc;
    graft_status s = build_program(ctx, source, src, options, lean, &prog, &key, &marked, &rc, e);
    if (s && lean == 1 && rc == CL_BUILD_PROGRAM_FAILURE) {
        /* a builtin cl/builtins_lean.cl lacks, or a PoCL whose clang declares builtins its own
         * way: the full header decides (a failure there is reported as ever) */
        graft_error lean_err = *e;
        s = build_program(ctx, source, src, options, 0, &prog, &key, &marked, &rc, e);
        if (!s) {
            const char *m = strstr(lean_err.message, "error: ");
            fprintf(stderr,
                    "graft: warning: cl/%s.cl built with the full OpenCL header, not with "
                    "cl/builtins_lean.cl (%.*s)\n",
                    source, m ? (int)strcspn(m, "\n") : 0, m ? m : "");
        }
    }
    if (s) return s;
    program_entry *pe = calloc(1, sizeof *pe);
    if (pe) {
        pe->source = strdup(source);
        pe->options = strdup(options);
        pe->key = key;
        pe->marked = marked;
        key = NULL;
    }
    if (!pe || !pe->source || !pe->options) {
        if (pe) {
            free(pe->source);
            free(pe->options);
            free(pe->key);
            free(pe);
        }
        free(key);
        clReleaseProgram(prog);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    pe->program = prog;
    pe->next = ctx->programs;
    ctx->programs = pe;
    *out = prog;
    return GRAFT_OK;
}

void program_lookup(graft_context *ctx, cl_program prog, const char **source, const char **options)
{
    *source = *options = NULL;
    for (program_entry *p = ctx->programs; p; p = p->next)
        if (p->program == prog) {
            *source = p->source;
            *options = p->options;
            return;
        }
}

int kernel_first_launch(graft_context *ctx, cl_program prog, const char *kernel,
                        const size_t *sizes, int n)
{
    if (!ctx->cache.dir[0]) return -1;
    const program_entry *pe = NULL;
    for (program_entry *p = ctx->programs; p && !pe; p = p->next)
        if (p->program == prog) pe = p;
    if (!pe || !pe->key) return -1;
    buf b = {0};
    buf_printf(&b, "%skernel=%s\nsizes=", pe->key, kernel);
    for (int i = 0; i < n; i++) buf_printf(&b, "%zu ", sizes[i]);
    if (b.failed) {
        buf_free(&b);
        return -1;
    }
    char path[2300];
    cache_entry_path(&ctx->cache, "clkernel", b.data, b.len, path, sizeof path);
    int first = !fs_exists(path);
    if (first) cache_put(&ctx->cache, "clkernel", b.data, b.len, "1", 1, NULL); /* best effort */
    buf_free(&b);
    /* a program Graft had no marker of (its cache is new, or the build was): no telling */
    return pe->marked ? first : -1;
}

graft_status kernel_create(graft_context *ctx, const char *source, const char *options,
                           const char *kernel, cl_kernel *out, graft_error *e)
{
    cl_program p;
    graft_status s = program_get(ctx, source, options, &p, e);
    if (s) return s;
    cl_int rc;
    *out = clCreateKernel(p, kernel, &rc);
    if (rc == CL_INVALID_KERNEL_NAME)
        return err_set(e, GRAFT_STATUS_INTERNAL, "cl/%s.cl has no kernel named %s", source, kernel);
    return cl_check(rc, kernel, e);
}

graft_status kernels_create(graft_context *ctx, const char *source, const char *options,
                            const char *const *names, int n, cl_kernel *out, graft_error *e)
{
    graft_status s = GRAFT_OK;
    for (int i = 0; i < n && !s; i++) s = kernel_create(ctx, source, options, names[i], &out[i], e);
    return s;
}

void kernels_release(cl_kernel *k, int n)
{
    for (int i = 0; i < n; i++)
        if (k[i]) clReleaseKernel(k[i]);
}

graft_status kernel_get(graft_context *ctx, const char *source, const char *options,
                        const char *kernel, cl_kernel *out, graft_error *e)
{
    if (!options) options = "";
    for (kernel_entry *k = ctx->kernels; k; k = k->next)
        if (strcmp(k->name, kernel) == 0 && strcmp(k->source, source) == 0 &&
            strcmp(k->options, options) == 0) {
            *out = k->kernel;
            return GRAFT_OK;
        }
    cl_kernel kk;
    graft_status s = kernel_create(ctx, source, options, kernel, &kk, e);
    if (s) return s;
    kernel_entry *k = calloc(1, sizeof *k);
    if (k) {
        k->source = strdup(source);
        k->options = strdup(options);
        k->name = strdup(kernel);
    }
    if (!k || !k->source || !k->options || !k->name) {
        if (k) {
            free(k->source);
            free(k->options);
            free(k->name);
            free(k);
        }
        clReleaseKernel(kk);
        return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    }
    k->kernel = kk;
    k->next = ctx->kernels;
    ctx->kernels = k;
    *out = kk;
    return GRAFT_OK;
}

void prof_set_label(graft_context *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->prof_label, sizeof ctx->prof_label, fmt, ap);
    va_end(ap);
}

cl_event *prof_next_event(graft_context *ctx)
{
    if (!ctx->record || !ctx->profiling) return NULL;
    if (ctx->nprof == ctx->capprof) {
        int cap = ctx->capprof ? ctx->capprof * 2 : 256;
        prof_event *p = realloc(ctx->prof, (size_t)cap * sizeof *p);
        if (!p) return NULL; /* lose the record, not the launch */
        ctx->prof = p;
        ctx->capprof = cap;
    }
    prof_event *p = &ctx->prof[ctx->nprof++];
    memcpy(p->label, ctx->prof_label, sizeof p->label);
    p->evt = NULL;
    return &p->evt;
}

void prof_clear(graft_context *ctx)
{
    for (int i = 0; i < ctx->nprof; i++)
        if (ctx->prof[i].evt) clReleaseEvent(ctx->prof[i].evt);
    ctx->nprof = 0;
}

/* ---- cost counters ---- */
void cost_reset(graft_context *ctx)
{
    cost_counters *c = &ctx->cost;
    cost_row *rows = c->rows;
    int cap = c->caprows, on = c->rows_on;
    memset(c, 0, sizeof *c);
    c->rows = rows;
    c->caprows = cap;
    c->rows_on = on;
}

void cost_rows(graft_context *ctx, int on)
{
    ctx->cost.rows_on = on;
}

/* The row for (current label, kernel), or NULL when rows are off (or out of memory: the totals
 * still count). */
static cost_row *cost_row_for(graft_context *ctx, const char *kernel)
{
    cost_counters *c = &ctx->cost;
    if (!c->rows_on) return NULL;
    for (int i = c->nrows - 1; i >= 0; i--)
        if (strcmp(c->rows[i].kernel, kernel) == 0 && strcmp(c->rows[i].label, ctx->prof_label) == 0)
            return &c->rows[i];
    if (c->nrows == c->caprows) {
        int cap = c->caprows ? c->caprows * 2 : 64;
        cost_row *r = realloc(c->rows, (size_t)cap * sizeof *r);
        if (!r) return NULL;
        c->rows = r;
        c->caprows = cap;
    }
    cost_row *r = &c->rows[c->nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->label, sizeof r->label, "%s", ctx->prof_label);
    snprintf(r->kernel, sizeof r->kernel, "%s", kernel);
    return r;
}

static void count_launch(graft_context *ctx, const char *kernel, double items, double traffic)
{
    ctx->cost.launches++;
    cost_row *r = cost_row_for(ctx, kernel);
    if (r) {
        r->launches++;
        r->items += items;
        r->traffic_bytes += traffic;
    }
}

void cost_count_sync(graft_context *ctx, const char *what)
{
    ctx->cost.syncs++;
    cost_row *r = cost_row_for(ctx, what);
    if (r) r->syncs++;
    ahead_flush(ctx);
}

void cost_count_transfer(graft_context *ctx, int to_host, size_t bytes, int blocking)
{
    if (to_host) ctx->cost.d2h_bytes += (double)bytes;
    else ctx->cost.h2d_bytes += (double)bytes;
    if (blocking) {
        ctx->cost.syncs++;
        ahead_flush(ctx);
    }
    cost_row *r = cost_row_for(ctx, to_host ? "read" : "write");
    if (!r) return;
    if (to_host) r->d2h_bytes += (double)bytes;
    else r->h2d_bytes += (double)bytes;
    if (blocking) r->syncs++;
}

void cost_count_gemm(graft_context *ctx, size_t m, size_t n, size_t k, float beta, int clblast)
{
    double mm = (double)m, nn = (double)n, kk = (double)k;
    double bytes = 4 * (mm * kk + kk * nn + mm * nn + (beta != 0.0f ? mm * nn : 0));
    ctx->cost.gemm_traffic_bytes += bytes;
    ctx->cost.gemm_flops += 2 * mm * nn * kk;
    ctx->cost.gemm_calls++;
    if (clblast) {
        ctx->cost.launches++;
        ctx->cost.clblast_calls++;
    }
    cost_row *r = cost_row_for(ctx, clblast ? "clblast_sgemm" : "gemm");
    if (!r) return;
    r->gemm_calls++;
    r->traffic_bytes += bytes;
    r->flops += 2 * mm * nn * kk;
    if (clblast) {
        r->launches++;
        r->clblast_calls++;
        r->items += mm * nn;
    }
}

graft_status queue_finish(graft_context *ctx, graft_error *e)
{
    cost_count_sync(ctx, "finish");
    return cl_check(clFinish(ctx->queue), "clFinish", e);
}

graft_status events_wait(graft_context *ctx, cl_uint n, const cl_event *events, graft_error *e)
{
    if (!n) return GRAFT_OK;
    cost_count_sync(ctx, "wait");
    return cl_check(clWaitForEvents(n, events), "clWaitForEvents", e);
}

graft_status buffer_create(graft_context *ctx, size_t bytes, cl_mem *out, graft_error *e)
{
    cl_int rc;
    if (bytes == 0) bytes = 4; /* OpenCL rejects empty buffers */
    if (bytes > ctx->info.max_alloc_bytes && ctx->info.max_alloc_bytes)
        return err_set(e, GRAFT_STATUS_NOMEM,
                       "a device buffer of %zu bytes exceeds %s's largest allocation (%llu bytes); "
                       "lower train.batch_size or freeze more layers (transfer.freeze)",
                       bytes, ctx->info.name, (unsigned long long)ctx->info.max_alloc_bytes);
    *out = clCreateBuffer(ctx->cl, CL_MEM_READ_WRITE, bytes, NULL, &rc);
    return cl_check(rc, "clCreateBuffer", e);
}

graft_status buffer_write(graft_context *ctx, cl_mem m, size_t offset, const void *src, size_t bytes,
                          graft_error *e)
{
    if (!bytes) return GRAFT_OK;
    cost_count_transfer(ctx, 0, bytes, 1);
    return cl_check(clEnqueueWriteBuffer(ctx->queue, m, CL_TRUE, offset, bytes, src, 0, NULL, NULL),
                    "clEnqueueWriteBuffer", e);
}

graft_status buffer_read(graft_context *ctx, cl_mem m, size_t offset, void *dst, size_t bytes,
                         graft_error *e)
{
    if (!bytes) return GRAFT_OK;
    cost_count_transfer(ctx, 1, bytes, 1);
    return cl_check(clEnqueueReadBuffer(ctx->queue, m, CL_TRUE, offset, bytes, dst, 0, NULL, NULL),
                    "clEnqueueReadBuffer", e);
}

graft_status buffer_fill_f32(graft_context *ctx, cl_mem m, float value, size_t count,
                             graft_error *e)
{
    if (!count) return GRAFT_OK;
    count_launch(ctx, "fill", (double)count, 4.0 * (double)count);
    return cl_check(clEnqueueFillBuffer(ctx->queue, m, &value, sizeof value, 0,
                                        count * sizeof(float), 0, NULL, NULL),
                    "clEnqueueFillBuffer", e);
}

graft_status kernel_args(cl_kernel k, graft_error *e, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    cl_int rc = CL_SUCCESS;
    int i = 0;
    for (; i < n && rc == CL_SUCCESS; i++) {
        size_t size = va_arg(ap, size_t);
        const void *value = va_arg(ap, const void *);
        rc = kernel_arg(k, (cl_uint)i, size, value);
    }
    va_end(ap);
    if (rc == CL_SUCCESS) return GRAFT_OK;
    char what[48];
    snprintf(what, sizeof what, "clSetKernelArg (argument %d)", i - 1);
    return cl_check(rc, what, e);
}

graft_status launch(graft_context *ctx, cl_kernel k, int dims, const size_t *global,
                    const size_t *local, cl_event *evt, graft_error *e)
{
    size_t g[3];
    double items = 1;
    if (evt) *evt = NULL;
    for (int i = 0; i < dims; i++) {
        g[i] = global[i] ? global[i] : 1;
        items *= (double)g[i];
        if (local && local[i]) g[i] = (g[i] + local[i] - 1) / local[i] * local[i];
    }
    char kname[48] = "kernel";
    if (ctx->cost.rows_on) clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof kname, kname, NULL);
    count_launch(ctx, kname, items, 0);
    if (ctx->ahead) ahead_note(ctx, k, dims, g, local);
    cl_event *rec = prof_next_event(ctx);
    cl_int rc = clEnqueueNDRangeKernel(ctx->queue, k, (cl_uint)dims, NULL, g, local, 0, NULL,
                                       rec ? rec : (ctx->profiling ? evt : NULL));
    if (rc == CL_SUCCESS && rec && evt && *rec) {
        clRetainEvent(*rec);
        *evt = *rec;
    }
    if (rc != CL_SUCCESS) {
        char name[128] = "kernel";
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        return cl_check(rc, name, e);
    }
    return GRAFT_OK;
}

double event_seconds(cl_event evt)
{
    cl_ulong a = 0, b = 0;
    if (!evt) return 0;
    clWaitForEvents(1, &evt);
    clGetEventProfilingInfo(evt, CL_PROFILING_COMMAND_START, sizeof a, &a, NULL);
    clGetEventProfilingInfo(evt, CL_PROFILING_COMMAND_END, sizeof b, &b, NULL);
    return b > a ? (double)(b - a) * 1e-9 : 0.0;
}

/* test_kernel.c — a real kernel round trip on the selected device (GRAFT_DEVICE), then the program
 * cache under attack: every cached file truncated, bit-flipped or swapped must be rebuilt and give
 * the same results, and a warm run must load from the cache instead of compiling; both with the
 * driver's binaries in the cache and with markers for a driver that caches its own builds. */
#include "runtime.h"
#include "harness.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define N 1000

static int run_axpy(const char *cache_dir, int *built, int *loaded)
{
    graft_context_options o = {.cache_dir = cache_dir};
    graft_context *ctx;
    graft_error e = {0};
    if (graft_context_create(&o, &ctx, &e)) {
        fprintf(stderr, "context: %s\n", e.message);
        return -1;
    }
    float x[N], y[N], out[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)i * 0.5f;
        y[i] = 3.0f - (float)i;
    }
    cl_mem bx = NULL, by = NULL;
    cl_kernel k = NULL;
    int bad = -1;
    if (buffer_create(ctx, sizeof x, &bx, &e) || buffer_create(ctx, sizeof y, &by, &e)) goto done;
    if (buffer_write(ctx, bx, 0, x, sizeof x, &e) || buffer_write(ctx, by, 0, y, sizeof y, &e))
        goto done;
    if (kernel_create(ctx, "blas1", "-DN=1000", "axpy_f32", &k, &e)) goto done;
    float alpha = 2.0f;
    clSetKernelArg(k, 0, sizeof alpha, &alpha);
    clSetKernelArg(k, 1, sizeof bx, &bx);
    clSetKernelArg(k, 2, sizeof by, &by);
    size_t g = N, l = 64; /* 1000 is not a multiple of 64: exercises the rounding and guard */
    for (int i = 0; i < N; i++) out[i] = NAN;
    if (launch(ctx, k, 1, &g, &l, NULL, &e) || buffer_read(ctx, by, 0, out, sizeof out, &e))
        goto done;
    bad = 0;
    for (int i = 0; i < N; i++)
        if (out[i] != 2.0f * x[i] + y[i]) bad++;
    *built = ctx->programs_built;
    *loaded = ctx->programs_loaded;
done:
    if (bad < 0) fprintf(stderr, "round trip: %s\n", e.message);
    if (k) clReleaseKernel(k);
    if (bx) clReleaseMemObject(bx);
    if (by) clReleaseMemObject(by);
    graft_context_free(ctx);
    return bad;
}

typedef void (*attack_fn)(const char *path);
static void att_truncate(const char *p)
{
    if (truncate(p, 100) != 0) perror("truncate");
}
static void att_empty(const char *p)
{
    if (truncate(p, 0) != 0) perror("truncate");
}
static void att_flip_payload(const char *p)
{
    FILE *f = fopen(p, "r+b");
    fseek(f, -10, SEEK_END);
    int c = fgetc(f);
    fseek(f, -10, SEEK_END);
    fputc(c ^ 1, f);
    fclose(f);
}
static void att_flip_header(const char *p)
{
    FILE *f = fopen(p, "r+b");
    fseek(f, 20, SEEK_SET);
    fputc(0xff, f);
    fclose(f);
}
static void att_garbage(const char *p)
{
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 5000; i++) fputc((i * 7919) & 0xff, f);
    fclose(f);
}

static int for_each_entry(const char *dir, attack_fn fn)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        fn(p);
        n++;
    }
    if (d) closedir(d);
    return n;
}

/* files in dir whose names end in ext */
static int count_ext(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name), m = strlen(ext);
        if (l > m && strcmp(de->d_name + l - m, ext) == 0) n++;
    }
    if (d) closedir(d);
    return n;
}

/* On PoCL every program is built with cl/builtins_lean.cl in place of opencl-c.h: a kernel calling a
 * builtin it does not declare (mad_sat) is built again with the full header, with a warning, and
 * runs right; GRAFT_LEAN_BUILTINS=strict (the tests' setting) makes it a build error instead. */
static void lean_fallback(graft_context *ctx)
{
    if (!device_is_pocl(graft_context_device(ctx))) {
        printf("lean builtins: not PoCL, nothing to check\n");
        return;
    }
    static const char SRC[] = "kernel void k(global int *a) { a[0] = mad_sat(a[0], 2, 3); }\n";
    graft_error e = {0};
    cl_program p;
    const char *was = getenv("GRAFT_LEAN_BUILTINS");
    char *keep = was ? strdup(was) : NULL;
    setenv("GRAFT_LEAN_BUILTINS", "strict", 1);
    CHECK(program_get_text(ctx, "lean_probe_strict", SRC, "", &p, &e) == GRAFT_STATUS_OPENCL);
    CHECKF(strstr(e.message, "mad_sat") != NULL, "strict: %s", e.message);

    /* the default: the warning goes to stderr, caught in a file */
    setenv("GRAFT_LEAN_BUILTINS", "1", 1);
    char errpath[] = "/tmp/graft-test-lean-XXXXXX";
    int fd = mkstemp(errpath);
    CHECK(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    graft_status s = program_get_text(ctx, "lean_probe", SRC, "", &p, &e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char said[1024] = "";
    ssize_t got = pread(fd, said, sizeof said - 1, 0);
    said[got > 0 ? got : 0] = 0;
    close(fd);
    unlink(errpath);
    CHECKF(s == GRAFT_OK, "fallback: %s", e.message);
    CHECKF(strstr(said, "warning: cl/lean_probe.cl built with the full OpenCL header") &&
               strstr(said, "mad_sat"),
           "fallback warning: '%s'", said);
    if (s == GRAFT_OK) {
        cl_int rc;
        cl_kernel k = clCreateKernel(p, "k", &rc);
        cl_mem b = NULL;
        int a = 5;
        CHECK_OK(buffer_create(ctx, sizeof a, &b, err));
        CHECK_OK(buffer_write(ctx, b, 0, &a, sizeof a, err));
        CHECK(rc == CL_SUCCESS && kernel_arg(k, 0, sizeof b, &b) == CL_SUCCESS);
        size_t one = 1;
        CHECK_OK(launch(ctx, k, 1, &one, NULL, NULL, err));
        CHECK_OK(buffer_read(ctx, b, 0, &a, sizeof a, err));
        CHECKF(a == 13, "mad_sat(5, 2, 3) = %d", a);
        clReleaseMemObject(b);
        clReleaseKernel(k);
    }
    if (keep) setenv("GRAFT_LEAN_BUILTINS", keep, 1);
    else unsetenv("GRAFT_LEAN_BUILTINS");
    free(keep);
}

/* The declarations a PoCL build gets: whole overload sets of the builtins the text names (vload##n
 * names every vloadN), the double overloads under cl_khr_fp64, nothing for words that only contain
 * a builtin's name. */
static void builtin_decls(void)
{
    char *d =
        cl_builtin_decls("y = fma(a, b, c); /* sqrtf */ myexp(x) + exp_2 + 2exp2 + vload##n");
    CHECK(d != NULL);
    if (!d) return;
    const char *fp64 = strstr(d, "#ifdef cl_khr_fp64\n");
    CHECKF(fp64 && strstr(d, "#endif\n"), "%s", d);
    const char *CN = "__attribute__((overloadable, const))";
    char want[160], wantd[160];
    snprintf(want, sizeof want, "float %s fma(float, float, float);", CN);
    snprintf(wantd, sizeof wantd, "double %s fma(double, double, double);", CN);
    const char *f = strstr(d, want), *f16 = strstr(d, "fma(float16, float16, float16);"),
               *dbl = strstr(d, wantd),
               *v = strstr(d, "vload16(size_t, const __global float *);"),
               *v2 = strstr(d, "vload2(size_t, const __private uchar *);");
    CHECKF(f && f16 && v && v2 && fp64 && f < fp64 && v < fp64, "float overloads: %.300s", d);
    CHECKF(dbl && dbl > fp64, "double fma under cl_khr_fp64");
    CHECKF(!strstr(d, " sqrt(") && !strstr(d, " exp(") && !strstr(d, " exp2(") &&
               !strstr(d, " vstore"),
           "a builtin the text does not name");
    free(d);
    /* every builtin the file declares, named by the file itself */
    char *all = cl_builtin_decls(cl_source_get("builtins_lean"));
    CHECK(all && strstr(all, " barrier(cl_mem_fence_flags);") && strstr(all, " vstore8(") &&
          strstr(all, " shuffle(") && strstr(all, " isnan("));
    free(all);
}

int main(void)
{
    builtin_decls();
    unsetenv("GRAFT_NO_CACHE");
    char dir[] = "/tmp/graft-test-kernel-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    graft_device_info *list;
    int n;
    graft_error e = {0};
    if (graft_devices_list(&list, &n, &e)) SKIP("no OpenCL device: %s", e.message);
    free(list);

    /* both program caches (GRAFT_PROGRAM_CACHE): the driver's binaries in Graft's cache, and a
     * marker per program where the driver keeps its own builds; each in a fresh directory */
    const char *modes[] = {"graft", "driver"}, *exts[] = {".clbin", ".clsrc"};
    for (int m = 0; m < 2; m++) {
        char mdir[64];
        snprintf(mdir, sizeof mdir, "%s/%s", dir, modes[m]);
        CHECK(mkdir(mdir, 0700) == 0);
        setenv("GRAFT_PROGRAM_CACHE", modes[m], 1);
        int built = 0, loaded = 0;
        CHECK(run_axpy(mdir, &built, &loaded) == 0);
        CHECKF(built == 1 && loaded == 0, "%s: cold run built %d loaded %d", modes[m], built,
               loaded);
        CHECKF(count_ext(mdir, exts[m]) == 1 && count_ext(mdir, exts[1 - m]) == 0,
               "%s: the cache holds %d %s and %d %s entries", modes[m], count_ext(mdir, exts[m]),
               exts[m], count_ext(mdir, exts[1 - m]), exts[1 - m]);
        CHECK(run_axpy(mdir, &built, &loaded) == 0);
        CHECKF(built == 0 && loaded == 1, "%s: warm run built %d loaded %d", modes[m], built,
               loaded);

        attack_fn attacks[] = {att_truncate, att_empty, att_flip_payload, att_flip_header,
                               att_garbage};
        for (size_t a = 0; a < ARRAY_LEN(attacks); a++) {
            CHECK(for_each_entry(mdir, attacks[a]) >= 1);
            CHECK(run_axpy(mdir, &built, &loaded) == 0); /* still right */
            CHECKF(built == 1 && loaded == 0, "%s: attack %zu: built %d loaded %d", modes[m], a,
                   built, loaded);
            CHECK(run_axpy(mdir, &built, &loaded) == 0); /* and the rebuilt entry is good again */
            CHECKF(built == 0 && loaded == 1, "%s: after attack %zu: built %d loaded %d",
                   modes[m], a, built, loaded);
        }
    }

    /* a value that is neither is a usage error naming the variable */
    setenv("GRAFT_PROGRAM_CACHE", "pocl", 1);
    {
        graft_context *bad = NULL;
        graft_context_options o = {.cache_dir = dir};
        CHECK(graft_context_create(&o, &bad, &e) == GRAFT_STATUS_USAGE && bad == NULL);
        CHECKF(strstr(e.message, "GRAFT_PROGRAM_CACHE") && strstr(e.message, "'pocl'"), "%s",
               e.message);
    }
    unsetenv("GRAFT_PROGRAM_CACHE");

    /* a kernel that fails to compile names its source and shows the build log */
    graft_context *ctx;
    graft_context_options o = {.cache_dir = dir};
    CHECK_OK(graft_context_create(&o, &ctx, err));
    cl_kernel k;
    graft_status s = kernel_create(ctx, "blas1", "-DN=undefined_symbol_here", "fill_f32", &k, &e);
    CHECK(s == GRAFT_STATUS_OPENCL);
    CHECKF(strstr(e.message, "cl/blas1.cl failed to build") != NULL, "%s", e.message);
    CHECKF(strstr(e.message, "undefined_symbol_here") != NULL, "log missing: %s", e.message);
    s = kernel_create(ctx, "blas1", "-DN=4", "no_such_kernel", &k, &e);
    CHECK(s == GRAFT_STATUS_INTERNAL && strstr(e.message, "no_such_kernel"));
    CHECK(kernel_create(ctx, "nonexistent", "", "x", &k, &e) == GRAFT_STATUS_INTERNAL);
    lean_fallback(ctx);
    graft_context_free(ctx);
    return test_finish("kernel");
}

/* peak.c — a clpeak-like probe of a device's peak: FMA throughput with float, float4, float8 and
 * float16 and copy bandwidth. Measured once per device and driver, then kept in the program cache
 * (kind "peak"), so `graft bench` can say "% of peak" on any device without re-measuring. */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

#define PEAK_FORMAT 4

/* Independent chains per work-item, interleaved (one FMA on each chain in turn): a CPU device runs
 * a work-item's chains serially, so one chain measures FMA latency, not throughput, and chains
 * written one after another (eight FMAs on x0, then x1, ..) fill the out-of-order window with
 * dependent FMAs. Each type runs with 16 chains and with 8, and the faster counts: 16 hide the
 * latency of two FMA units, but 16 float8 or float16 chains are 16 or 32 ymm registers on an AVX2
 * CPU (16 of them), and the spills then measure the stack. PoCL pthread on the AVX-512 Xeon VM,
 * both cores, float16: 21 GFLOP/s with one chain, 76 with eight chained mad()s, 240-293 with 16
 * interleaved, as a C loop of twelve zmm accumulators per core (264-276); compiled for haswell,
 * float8: 41-55 with 16 chains, 131-135 with 8; a C loop of twelve ymm accumulators, 117.
 * The FMA goes through a function of the vector type: LLVM's x86 targets that prefer 256-bit
 * vectors (its skylake-avx512, which PoCL picks on AMD's AVX-512 CPUs too) split a float16 into
 * two ymm halves unless a function of the kernel takes or returns one, and on a Zen 5 VM (two
 * 512-bit FMA pipes a core) the probe then read 225 GFLOP/s against 455 from a C loop of zmm
 * FMAs on both cores (the convolutions, whose helpers take float16, were at "130-145 %").
 * Per iteration 128 FMAs (16 chains x 8 rounds or 8 x 16) = 256 flops per lane. GPUs hide latency
 * with work-items anyway. The source is short enough for one string literal, and it lives here
 * because it is a probe, not an op. */
static const char PEAK_SOURCE[] =
    "#define R(x) x = F(x, b, c);\n"
    "#define R8 R(x0) R(x1) R(x2) R(x3) R(x4) R(x5) R(x6) R(x7)\n"
    "#define R16 R8 R(y0) R(y1) R(y2) R(y3) R(y4) R(y5) R(y6) R(y7)\n"
    "#define BODY16 R16 R16 R16 R16 R16 R16 R16 R16\n"
    "#define BODY8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8 R8\n"
    "#define FMA_KERNEL(T, NAME, BODY)                                             \\\n"
    "__kernel void NAME(__global T *out, float a, int iters) {                     \\\n"
    "    T b = (T)(a * 0.999f), c = (T)((float)get_local_id(0) * 1e-3f);           \\\n"
    "    T x0 = c, x1 = c + 1, x2 = c + 2, x3 = c + 3, x4 = c + 4, x5 = c + 5;      \\\n"
    "    T x6 = c + 6, x7 = c + 7, y0 = c + 8, y1 = c + 9, y2 = c + 10, y3 = c + 11; \\\n"
    "    T y4 = c + 12, y5 = c + 13, y6 = c + 14, y7 = c + 15;                      \\\n"
    "    for (int i = 0; i < iters; i++) { BODY }                                  \\\n"
    "    out[get_global_id(0)] = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7))  \\\n"
    "                          + ((y0 + y1) + (y2 + y3)) + ((y4 + y5) + (y6 + y7)); }\n"
    "#define FMA_FN(T) static T fma_##T(T x, T b, T c) { return fma(x, b, c); }\n"
    "FMA_FN(float) FMA_FN(float4) FMA_FN(float8) FMA_FN(float16)\n"
    "#define F fma_float\n"
    "FMA_KERNEL(float, peak_fma_float, BODY16)\n"
    "FMA_KERNEL(float, peak_fma8_float, BODY8)\n"
    "#undef F\n#define F fma_float4\n"
    "FMA_KERNEL(float4, peak_fma_float4, BODY16)\n"
    "FMA_KERNEL(float4, peak_fma8_float4, BODY8)\n"
    "#undef F\n#define F fma_float8\n"
    "FMA_KERNEL(float8, peak_fma_float8, BODY16)\n"
    "FMA_KERNEL(float8, peak_fma8_float8, BODY8)\n"
    "#undef F\n#define F fma_float16\n"
    "FMA_KERNEL(float16, peak_fma_float16, BODY16)\n"
    "FMA_KERNEL(float16, peak_fma8_float16, BODY8)\n"
    "__kernel void peak_copy(__global const float4 *in, __global float4 *out) {\n"
    "    out[get_global_id(0)] = in[get_global_id(0)]; }\n";

/* [chains 16, chains 8][type] */
static const char *const FMA_KERNELS[2][PEAK_FMA_TYPES] = {
    {"peak_fma_float", "peak_fma_float4", "peak_fma_float8", "peak_fma_float16"},
    {"peak_fma8_float", "peak_fma8_float4", "peak_fma8_float8", "peak_fma8_float16"}};
static const int FMA_WIDTH[PEAK_FMA_TYPES] = {1, 4, 8, 16};
const char *const PEAK_FMA_NAMES[PEAK_FMA_TYPES] = {"float", "float4", "float8", "float16"};

/* Seconds of one launch, waited for (wall clock: the probe must work without a profiling queue). */
static graft_status time_launch(graft_context *ctx, cl_kernel k, size_t global, size_t local,
                                double *sec, graft_error *e)
{
    double t0 = now_seconds();
    cl_int rc = clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &global, local ? &local : NULL, 0,
                                       NULL, NULL);
    if (rc == CL_SUCCESS) rc = clFinish(ctx->queue);
    *sec = now_seconds() - t0;
    return cl_check(rc, "peak probe launch", e);
}

/* Best of five after one warm-up, with the iteration count grown until a launch takes ~20 ms
 * (so launch overhead is noise on fast GPUs and slow CPUs alike). */
static graft_status probe_fma(graft_context *ctx, cl_program prog, const char *name, int t,
                              double *gflops, graft_error *e)
{
    cl_int rc;
    cl_kernel k = clCreateKernel(prog, name, &rc);
    graft_status s = cl_check(rc, "clCreateKernel (peak)", e);
    if (s) return s;
    size_t local = 64;
    size_t global = (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 1) * 1024;
    if (ctx->info.type == GRAFT_DEVICE_GPU && global < 65536) global = 65536;
    if (ctx->info.max_work_group_size && ctx->info.max_work_group_size < local)
        local = ctx->info.max_work_group_size;
    global = (global + local - 1) / local * local;
    cl_mem out = NULL;
    if ((s = buffer_create(ctx, global * (size_t)FMA_WIDTH[t] * sizeof(float), &out, e))) goto done;
    float a = 1.0f;
    int iters = 4;
    double sec = 0, best = 1e30;
    kernel_arg(k, 0, sizeof out, &out);
    kernel_arg(k, 1, sizeof a, &a);
    for (int grow = 0; grow < 16; grow++) {
        kernel_arg(k, 2, sizeof iters, &iters);
        if ((s = time_launch(ctx, k, global, local, &sec, e))) goto done;
        if (sec >= 0.02 || iters >= (1 << 20)) break;
        double f = sec > 1e-6 ? 0.025 / sec : 16;
        if (f > 16) f = 16;
        if (f < 2) f = 2;
        iters = (int)(iters * f);
    }
    for (int r = 0; r < 5; r++) {
        if ((s = time_launch(ctx, k, global, local, &sec, e))) goto done;
        if (sec < best) best = sec;
    }
    *gflops = (double)global * iters * 256.0 * FMA_WIDTH[t] / best / 1e9;
done:
    if (out) clReleaseMemObject(out);
    clReleaseKernel(k);
    return s;
}

static graft_status probe_copy(graft_context *ctx, cl_program prog, double *gbps, graft_error *e)
{
    cl_int rc;
    cl_kernel k = clCreateKernel(prog, "peak_copy", &rc);
    graft_status s = cl_check(rc, "clCreateKernel (peak_copy)", e);
    if (s) return s;
    size_t bytes = 64u << 20;
    if (ctx->info.max_alloc_bytes && bytes > ctx->info.max_alloc_bytes / 2)
        bytes = (size_t)(ctx->info.max_alloc_bytes / 2) & ~(size_t)4095;
    size_t global = bytes / 16, local = 64;
    if (ctx->info.max_work_group_size && ctx->info.max_work_group_size < local)
        local = ctx->info.max_work_group_size;
    global = global / local * local;
    cl_mem in = NULL, out = NULL;
    if ((s = buffer_create(ctx, bytes, &in, e))) goto done;
    if ((s = buffer_create(ctx, bytes, &out, e))) goto done;
    if ((s = buffer_fill_f32(ctx, in, 1.0f, bytes / 4, e))) goto done;
    kernel_arg(k, 0, sizeof in, &in);
    kernel_arg(k, 1, sizeof out, &out);
    double sec, best = 1e30;
    for (int r = 0; r < 4; r++) { /* the first touches the pages: dropped by taking the best */
        if ((s = time_launch(ctx, k, global, local, &sec, e))) goto done;
        if (sec < best) best = sec;
    }
    *gbps = 2.0 * (double)global * 16.0 / best / 1e9; /* read + write */
done:
    if (in) clReleaseMemObject(in);
    if (out) clReleaseMemObject(out);
    clReleaseKernel(k);
    return s;
}

static void peak_key(const graft_context *ctx, buf *k)
{
    const graft_device_info *d = &ctx->info;
    buf_printf(k, "peak %d\n%s\n%s\n%s\n%s\n%s\n%u\n%u\n", PEAK_FORMAT, d->platform,
               d->platform_version, d->name, d->driver, d->cl_version, d->compute_units,
               d->clock_mhz);
    buf_append(k, PEAK_SOURCE, sizeof PEAK_SOURCE);
}

graft_status peak_probe(graft_context *ctx, int use_cache, peak_result *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    buf key = {0};
    peak_key(ctx, &key);
    if (!key.data) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    graft_status s = GRAFT_OK;
    if (use_cache) {
        void *data = NULL;
        size_t len = 0;
        cache_get(&ctx->cache, "peak", key.data, key.len, &data, &len);
        if (data && len == sizeof(double) * (PEAK_FMA_TYPES + 2)) {
            const double *v = data;
            for (int t = 0; t < PEAK_FMA_TYPES; t++) out->gflops[t] = v[t];
            out->copy_gbps = v[PEAK_FMA_TYPES];
            out->seconds = v[PEAK_FMA_TYPES + 1];
            out->from_cache = 1;
            free(data);
            buf_free(&key);
            return GRAFT_OK;
        }
        free(data);
    }
    double t0 = now_seconds();
    cl_int rc;
    cl_program prog = program_from_source(ctx, PEAK_SOURCE, NULL, &rc);
    if ((s = cl_check(rc, "clCreateProgramWithSource (peak)", e))) goto done;
    rc = clBuildProgram(prog, 1, &ctx->device, "", NULL, NULL);
    if (rc != CL_SUCCESS) {
        char log[1024] = "";
        clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        s = err_set(e, GRAFT_STATUS_OPENCL, "building the peak probe failed: %s (%d)\n%s",
                    cl_error_name(rc), (int)rc, log);
        clReleaseProgram(prog);
        goto done;
    }
    for (int t = 0; t < PEAK_FMA_TYPES && !s; t++)
        for (int v = 0; v < 2 && !s; v++) { /* 16 chains, then 8: the faster counts */
            double g = 0;
            s = probe_fma(ctx, prog, FMA_KERNELS[v][t], t, &g, e);
            if (g > out->gflops[t]) out->gflops[t] = g;
        }
    if (!s) s = probe_copy(ctx, prog, &out->copy_gbps, e);
    clReleaseProgram(prog);
    if (s) goto done;
    out->seconds = now_seconds() - t0;
    if (use_cache) {
        double v[PEAK_FMA_TYPES + 2];
        for (int t = 0; t < PEAK_FMA_TYPES; t++) v[t] = out->gflops[t];
        v[PEAK_FMA_TYPES] = out->copy_gbps;
        v[PEAK_FMA_TYPES + 1] = out->seconds;
        graft_error ignore = {0}; /* a cache that cannot be written costs a re-probe, nothing more */
        cache_put(&ctx->cache, "peak", key.data, key.len, v, sizeof v, &ignore);
    }
done:
    buf_free(&key);
    return s;
}

double peak_best_gflops(const peak_result *p)
{
    double b = 0;
    for (int t = 0; t < PEAK_FMA_TYPES; t++)
        if (p->gflops[t] > b) b = p->gflops[t];
    return b;
}

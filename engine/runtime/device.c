/* device.c — enumerate OpenCL platforms and devices through the ICD loader, probe what each can do,
 * and resolve the one device-spec grammar used by --device, GRAFT_DEVICE and the recipe's device:. */
#define _POSIX_C_SOURCE 200809L
#include "runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *graft_device_type_name(graft_device_type t)
{
    switch (t) {
    case GRAFT_DEVICE_CPU: return "cpu";
    case GRAFT_DEVICE_GPU: return "gpu";
    case GRAFT_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
    }
}

static void dev_str(cl_device_id d, cl_device_info what, char *out, size_t n)
{
    out[0] = 0;
    if (clGetDeviceInfo(d, what, n, out, NULL) != CL_SUCCESS) out[0] = 0;
    out[n - 1] = 0;
    str_trim(out);
}

static cl_uint dev_uint(cl_device_id d, cl_device_info what)
{
    cl_uint v = 0;
    clGetDeviceInfo(d, what, sizeof v, &v, NULL);
    return v;
}

static cl_ulong dev_ulong(cl_device_id d, cl_device_info what)
{
    cl_ulong v = 0;
    clGetDeviceInfo(d, what, sizeof v, &v, NULL);
    return v;
}

/* GRAFT_DEVICE_MEM_LIMIT / GRAFT_DEVICE_MAX_ALLOC: bytes with an optional K, M or G suffix (powers
 * of 1024). They lower what Graft takes as the device's global memory and largest allocation, to
 * rehearse a smaller device (PoCL's CPU device offers most of the host's memory). -1: not set;
 * -2: not a size. */
static long long env_bytes(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || errno || *v == '-') return -2;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift) end++;
    if (*end || n == 0 || n > (1ull << 50) >> shift) return -2;
    return (long long)(n << shift);
}

static void apply_limits(graft_device_info *info)
{
    long long mem = env_bytes("GRAFT_DEVICE_MEM_LIMIT"),
              alloc = env_bytes("GRAFT_DEVICE_MAX_ALLOC");
    if (mem > 0 && (uint64_t)mem < info->global_mem_bytes) info->global_mem_bytes = (uint64_t)mem;
    if (alloc > 0 && (uint64_t)alloc < info->max_alloc_bytes)
        info->max_alloc_bytes = (uint64_t)alloc;
    if (info->max_alloc_bytes > info->global_mem_bytes)
        info->max_alloc_bytes = info->global_mem_bytes;
}

/* GRAFT_DEVICE_VECTOR_WIDTH: the float vector width (1, 2, 4, 8 or 16) Graft takes in place of the
 * device's preferred one, which shapes the CPU kernels' tiles. PoCL derives its preferred widths
 * from the host's features even when POCL_LLVM_CPU_NAME has it compile for a smaller ISA (16 on an
 * AVX-512 host compiling for haswell), so rehearsing an AVX2 machine on an AVX-512 one needs 8
 * here too. 0: not set; -1: not a width. */
static int env_vector_width(void)
{
    const char *v = getenv("GRAFT_DEVICE_VECTOR_WIDTH");
    if (!v || !*v) return 0;
    for (int w = 1; w <= 16; w *= 2) {
        char s[4];
        snprintf(s, sizeof s, "%d", w);
        if (strcmp(v, s) == 0) return w;
    }
    return -1;
}

static void probe(cl_platform_id p, cl_device_id d, graft_device_info *info)
{
    memset(info, 0, sizeof *info);
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform - 1, info->platform, NULL);
    clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof info->platform_version - 1,
                      info->platform_version, NULL);
    str_trim(info->platform);
    str_trim(info->platform_version);
    dev_str(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    dev_str(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    dev_str(d, CL_DRIVER_VERSION, info->driver, sizeof info->driver);
    dev_str(d, CL_DEVICE_VERSION, info->cl_version, sizeof info->cl_version);
    dev_str(d, CL_DEVICE_OPENCL_C_VERSION, info->cl_c_version, sizeof info->cl_c_version);
    cl_device_type t = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    info->type = (t & CL_DEVICE_TYPE_GPU)           ? GRAFT_DEVICE_GPU
                 : (t & CL_DEVICE_TYPE_CPU)         ? GRAFT_DEVICE_CPU
                 : (t & CL_DEVICE_TYPE_ACCELERATOR) ? GRAFT_DEVICE_ACCELERATOR
                                                    : GRAFT_DEVICE_OTHER;
    info->compute_units = dev_uint(d, CL_DEVICE_MAX_COMPUTE_UNITS);
    info->clock_mhz = dev_uint(d, CL_DEVICE_MAX_CLOCK_FREQUENCY);
    info->global_mem_bytes = dev_ulong(d, CL_DEVICE_GLOBAL_MEM_SIZE);
    info->local_mem_bytes = dev_ulong(d, CL_DEVICE_LOCAL_MEM_SIZE);
    info->max_alloc_bytes = dev_ulong(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    apply_limits(info);
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->max_work_group_size = wg;
    info->vec_char = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_CHAR);
    info->vec_short = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_SHORT);
    info->vec_int = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_INT);
    info->vec_long = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_LONG);
    info->vec_float = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT);
    if (env_vector_width() > 0) info->vec_float = (unsigned)env_vector_width();
    info->vec_double = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_DOUBLE);
    info->vec_half = dev_uint(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_HALF);
    char ext[8192];
    dev_str(d, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    info->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    info->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
}

/* Walk every platform and device. When ids is non-NULL it receives the handles (same order). */
static graft_status enumerate(graft_device_info **out, cl_platform_id **pids, cl_device_id **dids,
                              int *count, graft_error *e)
{
    *out = NULL;
    *count = 0;
    cl_uint np = 0;
    cl_int rc = clGetPlatformIDs(0, NULL, &np);
    if (rc == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0)
        return err_set(e, GRAFT_STATUS_OPENCL,
                       "no OpenCL platform is installed (the ICD loader found none); install a "
                       "driver, e.g. `apt-get install pocl-opencl-icd` for the CPU");
    if (rc != CL_SUCCESS) return cl_check(rc, "clGetPlatformIDs", e);
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats) return err_set(e, GRAFT_STATUS_NOMEM, "out of memory");
    clGetPlatformIDs(np, plats, NULL);
    int cap = 16, n = 0;
    graft_device_info *list = calloc((size_t)cap, sizeof *list);
    cl_platform_id *pl = calloc((size_t)cap, sizeof *pl);
    cl_device_id *dl = calloc((size_t)cap, sizeof *dl);
    if (!list || !pl || !dl) goto nomem;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
            continue;
        cl_device_id *devs = calloc(nd, sizeof *devs);
        if (!devs) goto nomem;
        clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL);
        for (cl_uint d = 0; d < nd; d++) {
            if (n == cap) {
                cap *= 2;
                void *a = realloc(list, (size_t)cap * sizeof *list);
                if (a) list = a;
                void *b = realloc(pl, (size_t)cap * sizeof *pl);
                if (b) pl = b;
                void *c = realloc(dl, (size_t)cap * sizeof *dl);
                if (c) dl = c;
                if (!a || !b || !c) {
                    free(devs);
                    goto nomem;
                }
            }
            probe(plats[p], devs[d], &list[n]);
            list[n].platform_index = (int)p;
            list[n].device_index = (int)d;
            pl[n] = plats[p];
            dl[n] = devs[d];
            n++;
        }
        free(devs);
    }
    free(plats);
    if (n == 0) {
        free(list);
        free(pl);
        free(dl);
        return err_set(e, GRAFT_STATUS_OPENCL,
                       "OpenCL platforms are installed but none has a device");
    }
    *out = list;
    *count = n;
    if (pids) *pids = pl;
    else free(pl);
    if (dids) *dids = dl;
    else free(dl);
    return GRAFT_OK;
nomem:
    free(plats);
    free(list);
    free(pl);
    free(dl);
    return err_set(e, GRAFT_STATUS_NOMEM, "out of memory listing devices");
}

graft_status graft_devices_list(graft_device_info **out, int *count, graft_error *e)
{
    return enumerate(out, NULL, NULL, count, e);
}

graft_status device_open(const char *spec, graft_device_info *info, cl_platform_id *platform,
                         cl_device_id *device, graft_error *e)
{
    graft_device_info *list;
    cl_platform_id *pl;
    cl_device_id *dl;
    int n, idx;
    const char *const limits[] = {"GRAFT_DEVICE_MEM_LIMIT", "GRAFT_DEVICE_MAX_ALLOC"};
    for (int k = 0; k < 2; k++)
        if (env_bytes(limits[k]) == -2)
            return err_set(e, GRAFT_STATUS_USAGE,
                           "%s: expected a size in bytes such as 268435456, 256M or 2G, found '%s'",
                           limits[k], getenv(limits[k]));
    if (env_vector_width() < 0)
        return err_set(e, GRAFT_STATUS_USAGE,
                       "GRAFT_DEVICE_VECTOR_WIDTH: expected 1, 2, 4, 8 or 16, found '%s'",
                       getenv("GRAFT_DEVICE_VECTOR_WIDTH"));
    graft_status s = enumerate(&list, &pl, &dl, &n, e);
    if (s) return s;
    s = graft_device_select(list, n, spec, &idx, e);
    if (!s) {
        *info = list[idx];
        *platform = pl[idx];
        *device = dl[idx];
    }
    free(list);
    free(pl);
    free(dl);
    return s;
}

graft_status graft_device_select(const graft_device_info *list, int count, const char *spec,
                                 int *index, graft_error *e)
{
    if (!spec || !*spec) spec = getenv("GRAFT_DEVICE");
    devspec s;
    graft_status st = devspec_parse(spec, &s, e);
    if (st) return st;
    return devspec_match(&s, list, count, index, e);
}

/* version.c — what this libgraft is and what it runs on: its own version and those of the OpenCL
 * ICD loader and platforms, CLBlast and libyaml (`graft --version`, the Python package). */
#include "base.h"

#define CL_USE_DEPRECATED_OPENCL_1_1_APIS /* clGetExtensionFunctionAddress: the ICD loader query */
#include <CL/cl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

const char *graft_version(void)
{
    return GRAFT_VERSION;
}

void graft_free(void *p)
{
    free(p);
}

static void add(char *buf, size_t n, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t n, size_t *at, const char *fmt, ...)
{
    if (*at >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *at, n - *at, fmt, ap);
    va_end(ap);
    if (k > 0) *at += (size_t)k < n - *at ? (size_t)k : n - *at - 1;
}

/* ocl-icd's loader answers clGetICDLoaderInfoOCLICD (an extension function, not in its headers);
 * 1 = the OpenCL version it implements, 2 = its own version, 3 = its name. */
typedef cl_int (*icd_info_fn)(cl_uint, size_t, void *, size_t *);

void graft_version_text(char *buf, size_t n)
{
    size_t at = 0;
    if (!n) return;
    buf[0] = 0;
    add(buf, n, &at, "graft %s\n", graft_version());
    icd_info_fn icd = (icd_info_fn)(void (*)(void))clGetExtensionFunctionAddress(
        "clGetICDLoaderInfoOCLICD");
    char name[128] = "", ver[64] = "", ocl[64] = "";
    if (icd && icd(3, sizeof name, name, NULL) == CL_SUCCESS &&
        icd(2, sizeof ver, ver, NULL) == CL_SUCCESS && icd(1, sizeof ocl, ocl, NULL) == CL_SUCCESS)
        add(buf, n, &at, "OpenCL ICD loader: %s %s (%s)\n", name, ver, ocl);
    else
        add(buf, n, &at, "OpenCL ICD loader: built against OpenCL %s headers\n",
            GRAFT_OPENCL_VERSION);
    cl_uint np = 0;
    cl_platform_id ids[16];
    if (clGetPlatformIDs(16, ids, &np) != CL_SUCCESS) np = 0;
    if (np > 16) np = 16;
    for (cl_uint i = 0; i < np; i++) {
        char pn[256] = "", pv[256] = "";
        clGetPlatformInfo(ids[i], CL_PLATFORM_NAME, sizeof pn - 1, pn, NULL);
        clGetPlatformInfo(ids[i], CL_PLATFORM_VERSION, sizeof pv - 1, pv, NULL);
        add(buf, n, &at, "OpenCL platform %u: %s (%s)\n", i, pn, pv);
    }
    if (!np) add(buf, n, &at, "OpenCL platforms: none found\n");
    add(buf, n, &at, "CLBlast %s\n", GRAFT_CLBLAST_VERSION);
    add(buf, n, &at, "libyaml %s\n", yaml_get_version_string());
}

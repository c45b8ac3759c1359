/* fault.c — the fault-injection build (meson -Dfault_injection=true): the linker routes Graft's own
 * calls to malloc, calloc, realloc, strdup, clCreateBuffer, clCreateSubBuffer, clBuildProgram and
 * clEnqueue* here (-Wl,--wrap=…; the libraries Graft uses keep theirs), each kind is counted, and
 * GRAFT_FAULT=KIND:N[,KIND:N…] makes the N-th call of that kind fail the way the real one can
 * (NULL and ENOMEM; CL_MEM_OBJECT_ALLOCATION_FAILURE; CL_OUT_OF_HOST_MEMORY; CL_OUT_OF_RESOURCES).
 * KIND is alloc, buffer, build or enqueue. GRAFT_FAULT_REPORT=FILE writes the counts at exit, so a
 * test knows how far to loop. Not compiled into normal builds. */
#include <CL/cl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_ALLOC, F_BUFFER, F_BUILD, F_ENQUEUE, F_KINDS };
static const char *const kind_names[F_KINDS] = {"alloc", "buffer", "build", "enqueue"};
static atomic_long counts[F_KINDS];
static long targets[F_KINDS];
static atomic_int state; /* 0 not read, 1 reading, 2 ready */

static void report(void)
{
    const char *path = getenv("GRAFT_FAULT_REPORT");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (int k = 0; k < F_KINDS; k++) fprintf(f, "%s %ld\n", kind_names[k], (long)counts[k]);
    fclose(f);
}

/* GRAFT_FAULT is parsed without allocating (this runs inside malloc). */
static void setup(void)
{
    int expect = 0;
    if (atomic_load(&state) == 2) return;
    if (!atomic_compare_exchange_strong(&state, &expect, 1)) {
        while (atomic_load(&state) != 2) {
        }
        return;
    }
    const char *v = getenv("GRAFT_FAULT");
    while (v && *v) {
        for (int k = 0; k < F_KINDS; k++) {
            size_t n = strlen(kind_names[k]);
            if (strncmp(v, kind_names[k], n) == 0 && v[n] == ':') targets[k] = atol(v + n + 1);
        }
        v = strchr(v, ',');
        if (v) v++;
    }
    if (getenv("GRAFT_FAULT_REPORT")) atexit(report);
    atomic_store(&state, 2);
}

/* Under a sanitizer, GRAFT_FAULT_TRACE=1 prints where the injected fault struck. */
void __sanitizer_print_stack_trace(void) __attribute__((weak));

static int fail_now(int kind)
{
    setup();
    long c = atomic_fetch_add(&counts[kind], 1) + 1;
    int hit = targets[kind] > 0 && c == targets[kind];
    if (hit && getenv("GRAFT_FAULT_TRACE") && __sanitizer_print_stack_trace)
        __sanitizer_print_stack_trace();
    return hit;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
    if (fail_now(F_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (fail_now(F_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_now(F_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    if (fail_now(F_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

cl_mem __real_clCreateBuffer(cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *rc);
cl_mem __wrap_clCreateBuffer(cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *rc)
{
    if (fail_now(F_BUFFER)) {
        if (rc) *rc = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        return NULL;
    }
    return __real_clCreateBuffer(c, f, n, host, rc);
}

cl_mem __real_clCreateSubBuffer(cl_mem m, cl_mem_flags f, cl_buffer_create_type t, const void *info,
                                cl_int *rc);
cl_mem __wrap_clCreateSubBuffer(cl_mem m, cl_mem_flags f, cl_buffer_create_type t, const void *info,
                                cl_int *rc)
{
    if (fail_now(F_BUFFER)) {
        if (rc) *rc = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        return NULL;
    }
    return __real_clCreateSubBuffer(m, f, t, info, rc);
}

cl_int __real_clBuildProgram(cl_program p, cl_uint nd, const cl_device_id *d, const char *opts,
                             void(CL_CALLBACK *cb)(cl_program, void *), void *user);
cl_int __wrap_clBuildProgram(cl_program p, cl_uint nd, const cl_device_id *d, const char *opts,
                             void(CL_CALLBACK *cb)(cl_program, void *), void *user)
{
    if (fail_now(F_BUILD)) return CL_OUT_OF_HOST_MEMORY;
    return __real_clBuildProgram(p, nd, d, opts, cb, user);
}

/* ---- enqueues: the same wrapper for each ---- */
#define ENQ_FAIL()                                                                                 \
    do {                                                                                           \
        if (fail_now(F_ENQUEUE)) return CL_OUT_OF_RESOURCES;                                       \
    } while (0)

cl_int __real_clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dim, const size_t *off,
                                     const size_t *gws, const size_t *lws, cl_uint ne,
                                     const cl_event *wl, cl_event *ev);
cl_int __wrap_clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dim, const size_t *off,
                                     const size_t *gws, const size_t *lws, cl_uint ne,
                                     const cl_event *wl, cl_event *ev)
{
    ENQ_FAIL();
    return __real_clEnqueueNDRangeKernel(q, k, dim, off, gws, lws, ne, wl, ev);
}

cl_int __real_clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t off, size_t n,
                                  void *p, cl_uint ne, const cl_event *wl, cl_event *ev);
cl_int __wrap_clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t off, size_t n,
                                  void *p, cl_uint ne, const cl_event *wl, cl_event *ev)
{
    ENQ_FAIL();
    return __real_clEnqueueReadBuffer(q, m, b, off, n, p, ne, wl, ev);
}

cl_int __real_clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t off, size_t n,
                                   const void *p, cl_uint ne, const cl_event *wl, cl_event *ev);
cl_int __wrap_clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t off, size_t n,
                                   const void *p, cl_uint ne, const cl_event *wl, cl_event *ev)
{
    ENQ_FAIL();
    return __real_clEnqueueWriteBuffer(q, m, b, off, n, p, ne, wl, ev);
}

cl_int __real_clEnqueueCopyBuffer(cl_command_queue q, cl_mem a, cl_mem b, size_t ao, size_t bo,
                                  size_t n, cl_uint ne, const cl_event *wl, cl_event *ev);
cl_int __wrap_clEnqueueCopyBuffer(cl_command_queue q, cl_mem a, cl_mem b, size_t ao, size_t bo,
                                  size_t n, cl_uint ne, const cl_event *wl, cl_event *ev)
{
    ENQ_FAIL();
    return __real_clEnqueueCopyBuffer(q, a, b, ao, bo, n, ne, wl, ev);
}

cl_int __real_clEnqueueFillBuffer(cl_command_queue q, cl_mem m, const void *pat, size_t ps,
                                  size_t off, size_t n, cl_uint ne, const cl_event *wl,
                                  cl_event *ev);
cl_int __wrap_clEnqueueFillBuffer(cl_command_queue q, cl_mem m, const void *pat, size_t ps,
                                  size_t off, size_t n, cl_uint ne, const cl_event *wl,
                                  cl_event *ev)
{
    ENQ_FAIL();
    return __real_clEnqueueFillBuffer(q, m, pat, ps, off, n, ne, wl, ev);
}

void *__real_clEnqueueMapBuffer(cl_command_queue q, cl_mem m, cl_bool b, cl_map_flags f,
                                size_t off, size_t n, cl_uint ne, const cl_event *wl, cl_event *ev,
                                cl_int *rc);
void *__wrap_clEnqueueMapBuffer(cl_command_queue q, cl_mem m, cl_bool b, cl_map_flags f,
                                size_t off, size_t n, cl_uint ne, const cl_event *wl, cl_event *ev,
                                cl_int *rc)
{
    if (fail_now(F_ENQUEUE)) {
        if (rc) *rc = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    return __real_clEnqueueMapBuffer(q, m, b, f, off, n, ne, wl, ev, rc);
}

cl_int __real_clEnqueueUnmapMemObject(cl_command_queue q, cl_mem m, void *p, cl_uint ne,
                                      const cl_event *wl, cl_event *ev);
cl_int __wrap_clEnqueueUnmapMemObject(cl_command_queue q, cl_mem m, void *p, cl_uint ne,
                                      const cl_event *wl, cl_event *ev)
{
    ENQ_FAIL();
    return __real_clEnqueueUnmapMemObject(q, m, p, ne, wl, ev);
}

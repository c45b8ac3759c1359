/* hostmem.c — the host side of a training step's transfers: pinned staging memory (a buffer made
 * with CL_MEM_ALLOC_HOST_PTR and mapped once, which drivers can DMA from without a bounce copy),
 * non-blocking writes and reads with an event to wait for later, slices of one buffer (so a
 * step's statistics can stay on the device until one read fetches many steps), and gathering
 * batch rows from a device-resident table. Every wait of a training step goes through
 * transfer_wait, so counting host synchronisations has one place. */
#include "runtime.h"

#include <string.h>

graft_status host_buffer_create(graft_context *ctx, size_t bytes, host_buffer *out,
                                cl_event *mapped, graft_error *e)
{
    if (mapped) *mapped = NULL;
    memset(out, 0, sizeof *out);
    if (bytes == 0) bytes = 4;
    cl_int rc;
    out->mem = clCreateBuffer(ctx->cl, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &rc);
    graft_status s = cl_check(rc, "clCreateBuffer (pinned host memory)", e);
    if (s) {
        out->mem = NULL;
        return s;
    }
    /* mapped once for the buffer's whole life: the pointer stays valid until host_buffer_free
     * (blocking, the map waits for the work in the queue before it: a pipeline made while the
     * device runs another's batches would wait for all of them) */
    out->ptr = clEnqueueMapBuffer(ctx->queue, out->mem, mapped ? CL_FALSE : CL_TRUE,
                                  CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL, mapped, &rc);
    if ((s = cl_check(rc, "clEnqueueMapBuffer (pinned host memory)", e))) {
        clReleaseMemObject(out->mem);
        memset(out, 0, sizeof *out);
        return s;
    }
    out->bytes = bytes;
    return GRAFT_OK;
}

void host_buffer_free(graft_context *ctx, host_buffer *h)
{
    if (!h->mem) return;
    if (h->ptr) {
        cl_event done = NULL;
        if (clEnqueueUnmapMemObject(ctx->queue, h->mem, h->ptr, 0, NULL, &done) == CL_SUCCESS &&
            done) {
            clWaitForEvents(1, &done);
            clReleaseEvent(done);
        }
    }
    clReleaseMemObject(h->mem);
    memset(h, 0, sizeof *h);
}

graft_status transfer_write_async(graft_context *ctx, cl_mem dst, size_t offset, const void *src,
                                  size_t bytes, cl_event *done, graft_error *e)
{
    if (done) *done = NULL;
    if (!bytes) return GRAFT_OK;
    cost_count_transfer(ctx, 0, bytes, 0);
    return cl_check(clEnqueueWriteBuffer(ctx->queue, dst, CL_FALSE, offset, bytes, src, 0, NULL,
                                         done),
                    "clEnqueueWriteBuffer (non-blocking)", e);
}

graft_status transfer_read_async(graft_context *ctx, cl_mem src, size_t offset, void *dst,
                                 size_t bytes, cl_event *done, graft_error *e)
{
    if (done) *done = NULL;
    if (!bytes) return GRAFT_OK;
    cost_count_transfer(ctx, 1, bytes, 0);
    return cl_check(clEnqueueReadBuffer(ctx->queue, src, CL_FALSE, offset, bytes, dst, 0, NULL,
                                        done),
                    "clEnqueueReadBuffer (non-blocking)", e);
}

bool transfer_done(cl_event evt)
{
    if (!evt) return true;
    cl_int st = CL_QUEUED;
    if (clGetEventInfo(evt, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL) != CL_SUCCESS)
        return false; /* let transfer_wait report it */
    return st == CL_COMPLETE || st < 0;
}

graft_status transfer_wait(graft_context *ctx, cl_event *evt, long *blocked, graft_error *e)
{
    if (!*evt) return GRAFT_OK;
    cl_int st = CL_QUEUED;
    clGetEventInfo(*evt, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL);
    cl_int rc = CL_SUCCESS;
    if (st != CL_COMPLETE) {
        if (blocked) ++*blocked;
        cost_count_sync(ctx, "wait"); /* only a wait that blocks is a host synchronisation */
        rc = clWaitForEvents(1, evt);
        if (rc == CL_SUCCESS)
            clGetEventInfo(*evt, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL);
    }
    clReleaseEvent(*evt);
    *evt = NULL;
    if (rc == CL_SUCCESS && st < 0) rc = st; /* the transfer itself failed */
    return cl_check(rc, "waiting for a transfer", e);
}

size_t buffer_slice_stride(graft_context *ctx, size_t bytes)
{
    cl_uint bits = 0;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL);
    size_t align = bits >= 8 ? bits / 8 : 128;
    if (align < 4) align = 4;
    return (bytes + align - 1) / align * align;
}

graft_status buffer_slices(graft_context *ctx, int count, size_t stride, cl_mem *parent,
                           cl_mem *slices, graft_error *e)
{
    graft_status s = buffer_create(ctx, (size_t)count * stride, parent, e);
    for (int k = 0; k < count && !s; k++) {
        cl_buffer_region region = {(size_t)k * stride, stride};
        cl_int rc;
        slices[k] = clCreateSubBuffer(*parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION,
                                      &region, &rc);
        if ((s = cl_check(rc, "clCreateSubBuffer", e))) slices[k] = NULL;
    }
    return s;
}

graft_status rows_gather(graft_context *ctx, int n, int row, cl_mem src, cl_mem rows, cl_mem dst,
                         graft_error *e)
{
    if (n < 1 || row < 1)
        return err_set(e, GRAFT_STATUS_INTERNAL, "gather: bad count %d or row size %d", n, row);
    cl_kernel k;
    graft_status s = kernel_get(ctx, "tensor", "", "gather_rows", &k, e);
    if (s) return s;
    cl_int rc = kernel_arg(k, 0, sizeof n, &n);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 1, sizeof row, &row);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 2, sizeof src, &src);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 3, sizeof rows, &rows);
    if (rc == CL_SUCCESS) rc = kernel_arg(k, 4, sizeof dst, &dst);
    if (rc != CL_SUCCESS) return cl_check(rc, "clSetKernelArg", e);
    /* ROWS_GATHER_FLOATS a work-item; wide work-groups for wide rows (PoCL pays per work-group) */
    size_t chunks = ((size_t)row + ROWS_GATHER_FLOATS - 1) / ROWS_GATHER_FLOATS;
    size_t g[2] = {chunks, (size_t)n}, l[2] = {chunks >= 64 ? 64 : 16, 1};
    return launch(ctx, k, 2, g, l, NULL, e);
}

graft_status buffer_copy_async(graft_context *ctx, cl_mem src, size_t src_offset, cl_mem dst,
                               size_t dst_offset, size_t bytes, graft_error *e)
{
    if (!bytes) return GRAFT_OK;
    return cl_check(clEnqueueCopyBuffer(ctx->queue, src, dst, src_offset, dst_offset, bytes, 0,
                                        NULL, NULL),
                    "clEnqueueCopyBuffer", e);
}

/* gemm.c — SGEMM through CLBlast's C API (row-major), recorded for profiling like any launch. */
#include "ops.h"

#include <clblast_c.h>

graft_status gemm(graft_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                  float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                  size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc, graft_error *e)
{
    if (m == 0 || n == 0) return GRAFT_OK;
    cl_event *rec = prof_next_event(ctx);
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor,
                                       trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                                       trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k,
                                       alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc,
                                       &ctx->queue, rec);
    if (s != CLBlastSuccess)
        return err_set(e, GRAFT_STATUS_OPENCL,
                       "CLBlast SGEMM %zux%zux%zu (trans %d/%d, ld %zu/%zu/%zu) failed: status %d",
                       m, n, k, trans_a, trans_b, lda, ldb, ldc, (int)s);
    return GRAFT_OK;
}

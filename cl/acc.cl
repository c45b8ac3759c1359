/* acc.cl — the accumulator type of the normalisation kernels (norm.cl, layernorm.cl): double where
 * the host says the device has it (-DACC_DOUBLE=1), as PyTorch's CPU kernels accumulate, else
 * float. Included by the kernel files that use it (tools/embed_cl.py inlines it). */
#if ACC_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double acc_t;
#else
typedef float acc_t;
#endif

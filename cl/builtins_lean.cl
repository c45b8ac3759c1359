/* builtins_lean.cl — the OpenCL C builtins Graft's kernels call, declared for builds on PoCL.
 *
 * Not a program: tools/embed_cl.py expands it at build time into its ~2,000 single declarations,
 * by function name, and context.c puts in front of every program it builds on PoCL those of the
 * builtins the program names (cl_builtin_decls), defining _OPENCL_H_, the include guard of clang's
 * opencl-c.h, which PoCL otherwise pulls into every build. PoCL preprocesses each program before
 * it looks in its cache (the hash is over the preprocessed text): 18,000 lines of declarations
 * made that ~20 ms a program, most of a warm start, and this whole file still ~4 ms. The
 * vector types, size_t and the constants (CLK_*_MEM_FENCE, M_*_F, FLT_MAX) come from
 * opencl-c-base.h, which PoCL still includes.
 *
 * The declarations follow the OpenCL C 1.2 specification's signatures, so calls mangle to the
 * same names the driver's kernel library defines. Each function gets its whole overload set, every
 * type opencl-c.h has but half (no kernel uses it): overload resolution picks from what is
 * declared, and a missing overload could make a call convert its arguments to another one
 * silently (a double sqrt computed in float). tests/unit/test_lean_builtins.py checks both,
 * overload by overload, against the opencl-c.h PoCL ships, and that every builtin cl/ calls is
 * here. A builtin not declared fails the build ("implicit declaration"); context.c then builds
 * the program with the full header and warns (an error under GRAFT_LEAN_BUILTINS=strict, as in
 * the tests).
 */
#define GL_OV __attribute__((overloadable))
#define GL_CN __attribute__((overloadable, const))
#define GL_PURE __attribute__((overloadable, pure))

/* ---- work-items and synchronisation ---- */
uint GL_CN get_work_dim(void);
size_t GL_CN get_global_size(uint);
size_t GL_CN get_global_id(uint);
size_t GL_CN get_local_size(uint);
size_t GL_CN get_local_id(uint);
size_t GL_CN get_num_groups(uint);
size_t GL_CN get_group_id(uint);
size_t GL_CN get_global_offset(uint);
void __attribute__((overloadable, convergent)) barrier(cl_mem_fence_flags);
void GL_OV mem_fence(cl_mem_fence_flags);
void GL_OV read_mem_fence(cl_mem_fence_flags);
void GL_OV write_mem_fence(cl_mem_fence_flags);

/* ---- the type lists: M(gentype, relational result, select's signed and unsigned masks, the
 * integer of ldexp and pown) ---- */
#define GL_FLOATS(M)                                                                               \
    M(float, int, int, uint, int)                                                                  \
    M(float2, int2, int2, uint2, int2)                                                             \
    M(float3, int3, int3, uint3, int3)                                                             \
    M(float4, int4, int4, uint4, int4)                                                             \
    M(float8, int8, int8, uint8, int8) M(float16, int16, int16, uint16, int16)
#define GL_FLOATVS(M)                                                                              \
    M(float2, float) M(float3, float) M(float4, float) M(float8, float) M(float16, float)
/* double: the normalisation kernels accumulate in it (acc.cl); without its overloads a double
 * argument would convert to float and pick the float one */
#define GL_DOUBLES(M)                                                                              \
    M(double, int, long, ulong, int)                                                               \
    M(double2, long2, long2, ulong2, int2)                                                         \
    M(double3, long3, long3, ulong3, int3)                                                         \
    M(double4, long4, long4, ulong4, int4)                                                         \
    M(double8, long8, long8, ulong8, int8) M(double16, long16, long16, ulong16, int16)
#define GL_DOUBLEVS(M)                                                                             \
    M(double2, double) M(double3, double) M(double4, double) M(double8, double)                    \
        M(double16, double)
#define GL_INTS_OF(M, s, u)                                                                        \
    M(s, s, u) M(s##2, s##2, u##2) M(s##3, s##3, u##3) M(s##4, s##4, u##4) M(s##8, s##8, u##8)     \
        M(s##16, s##16, u##16) M(u, s, u) M(u##2, s##2, u##2) M(u##3, s##3, u##3)                  \
            M(u##4, s##4, u##4) M(u##8, s##8, u##8) M(u##16, s##16, u##16)
#define GL_INTS(M)                                                                                 \
    GL_INTS_OF(M, char, uchar)                                                                     \
    GL_INTS_OF(M, short, ushort) GL_INTS_OF(M, int, uint) GL_INTS_OF(M, long, ulong)
/* a vector integer type with its scalar: M(vector, scalar) */
#define GL_INTVS_OF(M, t) M(t##2, t) M(t##3, t) M(t##4, t) M(t##8, t) M(t##16, t)
#define GL_INTVS(M)                                                                                \
    GL_INTVS_OF(M, char)                                                                           \
    GL_INTVS_OF(M, uchar) GL_INTVS_OF(M, short) GL_INTVS_OF(M, ushort) GL_INTVS_OF(M, int)         \
        GL_INTVS_OF(M, uint) GL_INTVS_OF(M, long) GL_INTVS_OF(M, ulong)

/* ---- float math ---- */
#define GL_F1(T, R, S, U, K)                                                                       \
    T GL_CN acos(T);                                                                               \
    T GL_CN asin(T);                                                                               \
    T GL_CN atan(T);                                                                               \
    T GL_CN ceil(T);                                                                               \
    T GL_CN cos(T);                                                                                \
    T GL_CN cosh(T);                                                                               \
    T GL_CN erf(T);                                                                                \
    T GL_CN erfc(T);                                                                               \
    T GL_CN exp(T);                                                                                \
    T GL_CN exp2(T);                                                                               \
    T GL_CN exp10(T);                                                                              \
    T GL_CN expm1(T);                                                                              \
    T GL_CN fabs(T);                                                                               \
    T GL_CN floor(T);                                                                              \
    T GL_CN log(T);                                                                                \
    T GL_CN log2(T);                                                                               \
    T GL_CN log10(T);                                                                              \
    T GL_CN log1p(T);                                                                              \
    T GL_CN rint(T);                                                                               \
    T GL_CN round(T);                                                                              \
    T GL_CN rsqrt(T);                                                                              \
    T GL_CN sin(T);                                                                                \
    T GL_CN sinh(T);                                                                               \
    T GL_CN sqrt(T);                                                                               \
    T GL_CN tan(T);                                                                                \
    T GL_CN tanh(T);                                                                               \
    T GL_CN trunc(T);                                                                              \
    T GL_CN sign(T);                                                                               \
    T GL_CN atan2(T, T);                                                                           \
    T GL_CN copysign(T, T);                                                                        \
    T GL_CN fdim(T, T);                                                                            \
    T GL_CN fmod(T, T);                                                                            \
    T GL_CN pow(T, T);                                                                             \
    T GL_CN fmax(T, T);                                                                            \
    T GL_CN fmin(T, T);                                                                            \
    T GL_CN max(T, T);                                                                             \
    T GL_CN min(T, T);                                                                             \
    T GL_CN step(T, T);                                                                            \
    T GL_CN fma(T, T, T);                                                                          \
    T GL_CN mad(T, T, T);                                                                          \
    T GL_CN mix(T, T, T);                                                                          \
    T GL_CN clamp(T, T, T);                                                                        \
    T GL_CN ldexp(T, K);                                                                           \
    T GL_CN pown(T, K);                                                                            \
    R GL_CN isequal(T, T);                                                                         \
    R GL_CN isnotequal(T, T);                                                                      \
    R GL_CN isgreater(T, T);                                                                       \
    R GL_CN isgreaterequal(T, T);                                                                  \
    R GL_CN isless(T, T);                                                                          \
    R GL_CN islessequal(T, T);                                                                     \
    R GL_CN isfinite(T);                                                                           \
    R GL_CN isinf(T);                                                                              \
    R GL_CN isnan(T);                                                                              \
    R GL_CN signbit(T);                                                                            \
    T GL_CN select(T, T, S);                                                                       \
    T GL_CN select(T, T, U);
GL_FLOATS(GL_F1)
#define GL_NATIVE(T, R, S, U, K)                                                                   \
    T GL_CN native_exp(T);                                                                         \
    T GL_CN native_log(T);                                                                         \
    T GL_CN native_recip(T);                                                                       \
    T GL_CN native_rsqrt(T);                                                                       \
    T GL_CN native_sqrt(T);                                                                        \
    T GL_CN native_divide(T, T);
GL_FLOATS(GL_NATIVE)
/* a float vector with a scalar operand */
#define GL_FV(T, E)                                                                                \
    T GL_CN fmax(T, E);                                                                            \
    T GL_CN fmin(T, E);                                                                            \
    T GL_CN max(T, E);                                                                             \
    T GL_CN min(T, E);                                                                             \
    T GL_CN step(E, T);                                                                            \
    T GL_CN mix(T, T, E);                                                                          \
    T GL_CN clamp(T, E, E);                                                                        \
    T GL_CN ldexp(T, int);
GL_FLOATVS(GL_FV)
#ifdef cl_khr_fp64
GL_DOUBLES(GL_F1)
GL_DOUBLEVS(GL_FV)
#endif

/* ---- integers ---- */
#define GL_I1(T, S, U)                                                                             \
    T GL_CN max(T, T);                                                                             \
    T GL_CN min(T, T);                                                                             \
    T GL_CN clamp(T, T, T);                                                                        \
    T GL_CN mul_hi(T, T);                                                                          \
    T GL_CN rotate(T, T);                                                                          \
    T GL_CN clz(T);                                                                                \
    T GL_CN popcount(T);                                                                           \
    U GL_CN abs(T);                                                                                \
    T GL_CN select(T, T, S);                                                                       \
    T GL_CN select(T, T, U);
GL_INTS(GL_I1)
#define GL_IV(T, E)                                                                                \
    T GL_CN max(T, E);                                                                             \
    T GL_CN min(T, E);                                                                             \
    T GL_CN clamp(T, E, E);
GL_INTVS(GL_IV)
#define GL_ANYALL(T)                                                                               \
    int GL_CN any(T);                                                                              \
    int GL_CN all(T);
GL_ANYALL(char) GL_ANYALL(short) GL_ANYALL(int) GL_ANYALL(long)
#define GL_ANYALLV(T, E) GL_ANYALL(T)
GL_INTVS_OF(GL_ANYALLV, char)
GL_INTVS_OF(GL_ANYALLV, short) GL_INTVS_OF(GL_ANYALLV, int) GL_INTVS_OF(GL_ANYALLV, long)

/* ---- float geometry ---- */
#define GL_GEO(T, E)                                                                               \
    E GL_CN dot(T, T);                                                                             \
    E GL_CN length(T);
GL_GEO(float, float) GL_GEO(float2, float) GL_GEO(float3, float) GL_GEO(float4, float)
#ifdef cl_khr_fp64
GL_GEO(double, double) GL_GEO(double2, double) GL_GEO(double3, double) GL_GEO(double4, double)
#endif

/* ---- shuffle: from an n-vector by an m-vector mask to an m-vector ---- */
#define GL_SHUF_TO(t, u, n)                                                                        \
    t##2 GL_CN shuffle(t##n, u##2);                                                                \
    t##4 GL_CN shuffle(t##n, u##4);                                                                \
    t##8 GL_CN shuffle(t##n, u##8);                                                                \
    t##16 GL_CN shuffle(t##n, u##16);
#define GL_SHUF(t, u)                                                                              \
    GL_SHUF_TO(t, u, 2) GL_SHUF_TO(t, u, 4) GL_SHUF_TO(t, u, 8) GL_SHUF_TO(t, u, 16)
GL_SHUF(char, uchar)
GL_SHUF(uchar, uchar) GL_SHUF(short, ushort) GL_SHUF(ushort, ushort) GL_SHUF(int, uint)
    GL_SHUF(uint, uint) GL_SHUF(long, ulong) GL_SHUF(ulong, ulong) GL_SHUF(float, uint)
#ifdef cl_khr_fp64
GL_SHUF(double, ulong)
#endif

/* ---- vloadn / vstoren over each address space ---- */
#define GL_VLS_N(t, n)                                                                             \
    t##n GL_PURE vload##n(size_t, const __global t *);                                             \
    t##n GL_PURE vload##n(size_t, const __local t *);                                              \
    t##n GL_PURE vload##n(size_t, const __constant t *);                                           \
    t##n GL_PURE vload##n(size_t, const __private t *);                                            \
    void GL_OV vstore##n(t##n, size_t, __global t *);                                              \
    void GL_OV vstore##n(t##n, size_t, __local t *);                                               \
    void GL_OV vstore##n(t##n, size_t, __private t *);
#define GL_VLS(t) GL_VLS_N(t, 2) GL_VLS_N(t, 3) GL_VLS_N(t, 4) GL_VLS_N(t, 8) GL_VLS_N(t, 16)
GL_VLS(char)
GL_VLS(uchar) GL_VLS(short) GL_VLS(ushort) GL_VLS(int) GL_VLS(uint) GL_VLS(long) GL_VLS(ulong)
    GL_VLS(float)
#ifdef cl_khr_fp64
GL_VLS(double)
#endif

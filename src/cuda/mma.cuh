/* mma.cuh — the few PTX instructions the tensor-core assignment is built from (sm_80+):
 * asynchronous global->shared copies, ldmatrix and mma.sync, with the operand type (f16 or
 * bf16) as a template parameter so that one kernel source serves both. */
#ifndef FKM_CUDA_MMA_CUH
#define FKM_CUDA_MMA_CUH

#include "cuda/common.cuh"

__device__ __forceinline__ uint32_t fkm_smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte async copy; bytes < 16 zero-fills the rest (bytes = 0: all zeros, src unread). */
__device__ __forceinline__ void fkm_cp_async16(void *smem, const void *gmem, int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(fkm_smem_addr(smem)), "l"(gmem),
                 "r"(bytes));
}
__device__ __forceinline__ void fkm_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void fkm_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void fkm_ldmatrix_x4(uint32_t r[4], const void *smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fkm_smem_addr(smem)));
}

/* D = A * B + D, m16n8k16, A row-major 16x16, B "col" (n-major) 16x8, f32 accumulators. */
/* The operand list is the same for every type; INSTR names the shape and the types. */
#define FKM_MMA_SYNC(INSTR, d, a0, a1, a2, a3, b0, b1)                                              \
    asm volatile(INSTR " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                 \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                    \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
template <typename T> struct fkm_mma;
template <> struct fkm_mma<__half> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2])
    {
        FKM_MMA_SYNC("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", d, a[0], a[1], a[2], a[3], b[0], b[1]);
    }
};
template <> struct fkm_mma<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2])
    {
        FKM_MMA_SYNC("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", d, a[0], a[1], a[2], a[3], b[0], b[1]);
    }
};

/* f32 inputs on tensor cores: TF32, m16n8k8. The fragments have the same register counts and
 * the same lane layout in 32-byte row pieces as the 2-byte types' m16n8k16, so one kernel
 * serves all three. A is rounded to TF32 (nearest) here; centroids are rounded when staged. */
__device__ __forceinline__ uint32_t fkm_to_tf32(uint32_t f)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(f)));
    return r;
}
/* The operand copy of an f32 value: rounded to T (to nearest even for f16 and bf16), for
 * tf32 != 0 first to nearest TF32 once (cvt.rna; the tensor cores would truncate). The
 * centroids' copy (prepare_centroids in assign.cu) and exact mode's measure of its rounding
 * error (exact.cu, EXACTNESS.md 5.2) both call this. */
template <typename T> __device__ __forceinline__ T fkm_from_float(float v);
template <> __device__ __forceinline__ float fkm_from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half fkm_from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 fkm_from_float<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}
__device__ __forceinline__ float fkm_round_tf32(float v) { return __uint_as_float(fkm_to_tf32(__float_as_uint(v))); }
template <typename T> __device__ __forceinline__ T fkm_operand(float v, int tf32)
{
    return fkm_from_float<T>(tf32 ? fkm_round_tf32(v) : v);
}

template <> struct fkm_mma<float> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2])
    {
        FKM_MMA_SYNC("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", d, fkm_to_tf32(a[0]), fkm_to_tf32(a[1]),
                     fkm_to_tf32(a[2]), fkm_to_tf32(a[3]), b[0], b[1]);
    }
};

/* Shared-memory tiles have 128-byte rows (eight 16-byte chunks: 64 two-byte or 32 four-byte
 * elements). Chunk c of row r is stored at chunk position c ^ (r & 7), so the eight row
 * addresses of one ldmatrix phase fall in eight different bank groups (no conflicts).
 * Returns the element offset. */
template <typename T> __device__ __forceinline__ int fkm_swz(int row, int chunk)
{
    return row * (int)(128 / sizeof(T)) + ((chunk ^ (row & 7)) * (int)(16 / sizeof(T)));
}

#endif

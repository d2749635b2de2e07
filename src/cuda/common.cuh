/* common.cuh — what every CUDA file of the backend shares: error reporting that names file and
 * line, element loads for every input dtype (one template, no per-dtype copies), and the
 * problem as the device sees it. The library's CUDA code is CUDA C++ only where the language
 * needs it (templates over dtype, CUB); it has the C library's rules: no exceptions, no
 * printing, every error returned as an fkm_status with a message. */
#ifndef FKM_CUDA_COMMON_CUH
#define FKM_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include "core/internal.h"
}

/* Records "file:line: what: cuda error text" on ctx and returns the matching status
 * (FKM_E_NOMEM for cudaErrorMemoryAllocation, FKM_E_NO_DEVICE when there is none, else
 * FKM_E_DEVICE). Clears the sticky-free error state of the runtime (cudaGetLastError). */
fkm_status fkm_cuda_fail(fkm_ctx *ctx, cudaError_t err, const char *file, int line, const char *what);

#define FKM_CUDA_TRY(ctx, expr)                                                       \
    do {                                                                              \
        cudaError_t fkm_err_ = (expr);                                                \
        if (fkm_err_ != cudaSuccess) return fkm_cuda_fail((ctx), fkm_err_, __FILE__, __LINE__, #expr); \
    } while (0)

/* Lets `func` be launched with `need` bytes of dynamic shared memory. The limit is an attribute
 * of the function for the whole process, so it is set to the same value by every caller: all
 * the device allows beside the function's static shared memory (setting each launch's own need
 * let a concurrent fit on another context, needing less, lower it under this one's launch). The
 * occupancy follows each launch's own request, not this limit. cudaErrorInvalidValue when
 * `need` is more than the device allows. */
cudaError_t fkm_cuda_allow_smem(const void *func, size_t need);

/* After a kernel launch: reports launch-configuration errors. */
#define FKM_CUDA_LAUNCHED(ctx, what) FKM_CUDA_TRY(ctx, cudaGetLastError())

/* max_per_problem.cu: out[b] = max of v[b*k .. b*k+k) for b < batch, values >= 0. */
fkm_status fkm_cuda_max_per_problem(fkm_ctx *ctx, const double *v, int64_t k, int64_t batch, double *out,
                                    cudaStream_t stream);

/* Same, for code paths that must clean up: sets `status` and jumps to `label`. */
#define FKM_CUDA_TRY_GOTO(ctx, expr, status, label)                                   \
    do {                                                                              \
        cudaError_t fkm_err_ = (expr);                                                \
        if (fkm_err_ != cudaSuccess) {                                                \
            status = fkm_cuda_fail((ctx), fkm_err_, __FILE__, __LINE__, #expr);       \
            goto label;                                                               \
        }                                                                             \
    } while (0)

/* ---------------------------------------------------------------- element types */

/* Storage type of each input dtype. */
template <fkm_dtype DT> struct fkm_elem;
template <> struct fkm_elem<FKM_F32> { typedef float type; };
template <> struct fkm_elem<FKM_F16> { typedef __half type; };
template <> struct fkm_elem<FKM_BF16> { typedef __nv_bfloat16 type; };
template <> struct fkm_elem<FKM_F64> { typedef double type; };

__device__ __forceinline__ float fkm_to_float(float v) { return v; }
__device__ __forceinline__ float fkm_to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float fkm_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float fkm_to_float(double v) { return (float)v; }
__device__ __forceinline__ double fkm_to_double(float v) { return v; }
__device__ __forceinline__ double fkm_to_double(__half v) { return __half2float(v); }
__device__ __forceinline__ double fkm_to_double(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ double fkm_to_double(double v) { return v; }

/* Calls f.template operator()<DT>() for the run-time dtype: the one place a dtype switch
 * is written, so kernels are generated from one template per operation. */
#define FKM_DISPATCH_DTYPE(dtype, CALL)                                                \
    switch (dtype) {                                                                   \
    case FKM_F32: { constexpr fkm_dtype DT = FKM_F32; CALL; } break;                  \
    case FKM_F16: { constexpr fkm_dtype DT = FKM_F16; CALL; } break;                  \
    case FKM_BF16: { constexpr fkm_dtype DT = FKM_BF16; CALL; } break;                \
    case FKM_F64: { constexpr fkm_dtype DT = FKM_F64; CALL; } break;                  \
    }

/* ---------------------------------------------------------------- device problem */

/* One problem (or a batch of `batch` equal-shaped problems laid out one after another) as the
 * kernels see it. All pointers are device pointers. Problem b's rows start at
 * X + b * batch_stride elements; its labels at labels + b * n; its centroids at
 * centroids + b * k * d. */
typedef struct fkm_dev_problem {
    const void *X;
    fkm_dtype dtype;
    int64_t n, d, ld;
    int64_t batch_stride;   /* elements between problems (n * ld when packed) */
    int32_t batch;          /* >= 1 */
    const float *weights;   /* n (per problem: weights + b * n), or NULL = all ones */
    int64_t k;
    fkm_metric metric;
} fkm_dev_problem;

static inline int64_t fkm_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

#endif

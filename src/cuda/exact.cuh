/* exact.cuh — certified-exact assignment on the GPU (docs/EXACTNESS.md): the tensor-core
 * pass's top-2 variant, the certification of each point on the device with the bound of
 * src/core/cert.h, and the exact re-decision of the uncertain points on the host by
 * src/core/exact.c (their rows gathered and copied over in chunks). l2 and dot on f32, f16
 * and bf16 input; cosine and f64 input are FKM_E_UNSUPPORTED for now (fkm_cuda_exact_create
 * says why). */
#ifndef FKM_CUDA_EXACT_CUH
#define FKM_CUDA_EXACT_CUH

#include "cuda/assign.cuh"

typedef struct fkm_cuda_exact_ws fkm_cuda_exact_ws;

fkm_status fkm_cuda_exact_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_cuda_exact_ws **out);
void fkm_cuda_exact_destroy(fkm_cuda_exact_ws *ws);

/* One certified assignment of the batch: labels (device, batch*n) become the exact argmin
 * against the device centroids cent (batch*k*d f32), changed[b] (device) the number that
 * differ from the previous labels; *rechecked the number of points re-decided on the host
 * (with n_threads threads). Synchronises the stream. */
fkm_status fkm_cuda_exact_assign(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                 const fkm_dev_problem *pb, const float *cent, int32_t *labels,
                                 unsigned long long *changed, int n_threads, int64_t *rechecked,
                                 cudaStream_t stream);

#endif

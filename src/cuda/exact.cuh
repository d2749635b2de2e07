/* exact.cuh — certified-exact assignment on the GPU (docs/EXACTNESS.md 3.6 and 5): the
 * tensor-core pass's top-3 variant, the certification of each point on the device with the
 * bound of src/core/cert.h, the pair test, the candidate pass (5.4) and the filters of
 * section 4 on the device, and the exact re-decision of what they leave on the host by
 * src/core/exact.c (their rows gathered and copied over in chunks). l2, dot and cosine on
 * f32, f16 and bf16 input; f64 input is FKM_E_UNSUPPORTED for now (fkm_cuda_exact_create). */
#ifndef FKM_CUDA_EXACT_CUH
#define FKM_CUDA_EXACT_CUH

#include "cuda/assign.cuh"

typedef struct fkm_cuda_exact_ws fkm_cuda_exact_ws;

fkm_status fkm_cuda_exact_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_cuda_exact_ws **out);
void fkm_cuda_exact_destroy(fkm_cuda_exact_ws *ws);

/* What one assignment re-checked: the points the bound did not certify, and how they were
 * decided (pair + filter + host = rechecked). */
typedef struct fkm_cuda_exact_counts {
    int64_t rechecked;
    int64_t pair;   /* by the pair test on the device (the argmin is the label or the second) */
    int64_t filter; /* on the device by the candidate pass or the filters over every centroid */
    int64_t host;   /* by the exact re-decision on the host */
} fkm_cuda_exact_counts;

/* One certified assignment of the batch: labels (device, batch*n) become the exact argmin
 * against the device centroids cent (batch*k*d f32), changed[b] (device) the number that
 * differ from the previous labels; *counts what was re-checked and where (the host part with
 * n_threads threads). Synchronises the stream. */
fkm_status fkm_cuda_exact_assign(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                 const fkm_dev_problem *pb, const float *cent, int32_t *labels,
                                 unsigned long long *changed, int n_threads, fkm_cuda_exact_counts *counts,
                                 cudaStream_t stream);

#endif

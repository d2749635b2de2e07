/* scan.cuh — the data scan a fit starts with, on the GPU: the first row holding NaN or Inf and
 * the mean over columns of the per-column variance (two passes, as on the CPU, so that a large
 * common offset does not cancel), in fixed-size row chunks combined in a fixed order. */
#ifndef FKM_CUDA_SCAN_CUH
#define FKM_CUDA_SCAN_CUH

#include "cuda/common.cuh"

/* For each problem b of the batch: first_bad[b] = first row with a non-finite value (-1 if
 * none), mean_var[b] (host outputs). Rows are normalised first for cosine. Synchronises
 * `stream`. */
fkm_status fkm_cuda_scan(fkm_ctx *ctx, const fkm_dev_problem *pb, int64_t *first_bad, double *mean_var,
                         cudaStream_t stream);

#endif

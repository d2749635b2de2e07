/* max_per_problem.cu — the largest of each problem's k non-negative values (squared centroid
 * shifts for finalize, centroid norms for exact mode's certification bound). */
#include "cuda/common.cuh"

#define MAX_THREADS 256

/* out[b] = the largest of problem b's k values (0 when all are 0); one block per problem.
 * max is exact in any order, so the result does not depend on the launch shape. */
__global__ void max_per_problem_kernel(const double *v, int64_t k, double *out)
{
    __shared__ double part[MAX_THREADS];
    const double *vb = v + (int64_t)blockIdx.x * k;
    double m = 0.0;
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) m = fmax(m, vb[i]);
    part[threadIdx.x] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] = fmax(part[threadIdx.x], part[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

fkm_status fkm_cuda_max_per_problem(fkm_ctx *ctx, const double *v, int64_t k, int64_t batch, double *out,
                                    cudaStream_t stream)
{
    max_per_problem_kernel<<<(unsigned)batch, MAX_THREADS, 0, stream>>>(v, k, out);
    FKM_CUDA_LAUNCHED(ctx, "max_per_problem_kernel");
    return FKM_OK;
}

/* scan.cu — see scan.cuh. */
#include "cuda/scan.cuh"

#include <math.h>
#include <stdlib.h>

#define SCAN_ROWS 1024     /* rows per chunk: fixed, so the result never depends on the GPU */
#define SCAN_THREADS 256

/* 1 / ||row|| in double for cosine (1 for other metrics); one warp per row. */
template <typename T>
__global__ void row_scales(const T *Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int cosine,
                           double *scale)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int64_t b = blockIdx.y;
    if (row >= n) return;
    const T *x = Xall + b * bstride + row * ld;
    double ss = 0.0;
    if (cosine)
        for (int64_t j = lane; j < d; j += 32) {
            const double v = fkm_to_double(x[j]);
            ss += v * v;
        }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) scale[b * n + row] = !cosine ? 1.0 : (ss > 0.0 ? 1.0 / sqrt(ss) : 0.0);
}

/* Pass 0: per-chunk column sums and the first non-finite row; pass 1: per-chunk sums of
 * squared deviations from `mean`. Thread t of a block owns columns t, t + 256, ... of the
 * chunk's rows (consecutive threads read consecutive elements of a row). The value used is
 * the row as f32, normalised (like the CPU's fkm_load_row) for cosine. */
template <typename T>
__global__ void scan_chunks(const T *Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, const double *scale,
                            const double *mean, double *part, unsigned long long *first_bad)
{
    const int64_t b = blockIdx.z;
    const int64_t chunk = blockIdx.x, nchunks = gridDim.x;
    const int64_t col = (int64_t)blockIdx.y * SCAN_THREADS + threadIdx.x;
    if (col >= d) return;
    const T *X = Xall + b * bstride;
    const int64_t r0 = chunk * SCAN_ROWS, r1 = r0 + SCAN_ROWS < n ? r0 + SCAN_ROWS : n;
    double acc = 0.0;
    int64_t bad = -1;
    for (int64_t r = r0; r < r1; r++) {
        const double raw = fkm_to_double(X[r * ld + col]);
        const double v = (double)(float)(raw * scale[b * n + r]);
        if (!mean) {
            if (!isfinite(raw) && bad < 0) bad = r;
            acc += v;
        } else {
            const double t = v - mean[b * d + col];
            acc += t * t;
        }
    }
    part[(b * nchunks + chunk) * d + col] = acc;
    if (bad >= 0) atomicMin(first_bad + b, (unsigned long long)bad);
}

/* Sums the chunk partials of each column in chunk order; out[b*d + col] = total / n. */
__global__ void combine_columns(const double *part, int64_t nchunks, int64_t n, int64_t d, int64_t batch, double *out)
{
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= batch * d) return;
    const int64_t b = t / d, col = t % d;
    double s = 0.0;
    for (int64_t c = 0; c < nchunks; c++) s += part[(b * nchunks + c) * d + col];
    out[t] = s / (double)n;
}

template <fkm_dtype DT>
static fkm_status scan_typed(fkm_ctx *ctx, const fkm_dev_problem *pb, double *scale, double *part, double *mean,
                             double *var, unsigned long long *bad, cudaStream_t stream)
{
    typedef typename fkm_elem<DT>::type T;
    const T *X = (const T *)pb->X;
    const int64_t nchunks = fkm_ceil_div(pb->n, SCAN_ROWS);
    row_scales<T><<<dim3((unsigned)fkm_ceil_div(pb->n, 8), (unsigned)pb->batch), 256, 0, stream>>>(
        X, pb->n, pb->d, pb->ld, pb->batch_stride, pb->metric == FKM_METRIC_COSINE, scale);
    FKM_CUDA_LAUNCHED(ctx, "row_scales");
    const dim3 grid((unsigned)nchunks, (unsigned)fkm_ceil_div(pb->d, SCAN_THREADS), (unsigned)pb->batch);
    const unsigned cgrid = (unsigned)fkm_ceil_div(pb->batch * pb->d, 256);
    scan_chunks<T><<<grid, SCAN_THREADS, 0, stream>>>(X, pb->n, pb->d, pb->ld, pb->batch_stride, scale, NULL, part, bad);
    FKM_CUDA_LAUNCHED(ctx, "scan_chunks");
    combine_columns<<<cgrid, 256, 0, stream>>>(part, nchunks, pb->n, pb->d, pb->batch, mean);
    FKM_CUDA_LAUNCHED(ctx, "combine_columns");
    scan_chunks<T><<<grid, SCAN_THREADS, 0, stream>>>(X, pb->n, pb->d, pb->ld, pb->batch_stride, scale, mean, part, bad);
    FKM_CUDA_LAUNCHED(ctx, "scan_chunks");
    combine_columns<<<cgrid, 256, 0, stream>>>(part, nchunks, pb->n, pb->d, pb->batch, var);
    FKM_CUDA_LAUNCHED(ctx, "combine_columns");
    return FKM_OK;
}

fkm_status fkm_cuda_scan(fkm_ctx *ctx, const fkm_dev_problem *pb, int64_t *first_bad, double *mean_var,
                         cudaStream_t stream)
{
    if (fkm_ceil_div(pb->n, SCAN_ROWS) > INT32_MAX || pb->batch > 65535)
        return fkm_fail(ctx, FKM_E_OVERFLOW, "n = %lld is too large for the GPU scan", (long long)pb->n);
    const int64_t nchunks = fkm_ceil_div(pb->n, SCAN_ROWS), B = pb->batch, d = pb->d;
    double *scale = NULL, *part = NULL, *mean = NULL, *var = NULL, *var_h = NULL;
    unsigned long long *bad = NULL, *bad_h = NULL;
    fkm_status s = FKM_OK;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&scale, (size_t)(B * pb->n) * sizeof(double)), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&part, (size_t)(B * nchunks * d) * sizeof(double)), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&mean, (size_t)(B * d) * sizeof(double)), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&var, (size_t)(B * d) * sizeof(double)), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&bad, (size_t)B * sizeof(unsigned long long)), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(bad, 0xff, (size_t)B * sizeof(unsigned long long), stream), s, out);
    FKM_DISPATCH_DTYPE(pb->dtype, s = scan_typed<DT>(ctx, pb, scale, part, mean, var, bad, stream));
    if (s != FKM_OK) goto out;
    var_h = (double *)malloc((size_t)(B * d) * sizeof(double));
    bad_h = (unsigned long long *)malloc((size_t)B * sizeof(unsigned long long));
    if (!var_h || !bad_h) {
        s = fkm_fail(ctx, FKM_E_NOMEM, "out of host memory in the scan");
        goto out;
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(var_h, var, (size_t)(B * d) * sizeof(double), cudaMemcpyDeviceToHost, stream), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(bad_h, bad, (size_t)B * sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(stream), s, out);
    for (int64_t b = 0; b < B; b++) {
        double m = 0.0;
        for (int64_t j = 0; j < d; j++) m += var_h[b * d + j];
        mean_var[b] = m / (double)d;
        first_bad[b] = bad_h[b] == ~0ull ? -1 : (int64_t)bad_h[b];
    }
out:
    cudaFree(scale), cudaFree(part), cudaFree(mean), cudaFree(var), cudaFree(bad);
    free(var_h), free(bad_h);
    return s;
}

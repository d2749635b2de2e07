/* scan.cu — see scan.cuh. */
#include "cuda/scan.cuh"

#include <math.h>
#include <stdlib.h>

/* scan_chunks: a block takes SCAN_COLS columns of one chunk, its SCAN_GROUPS warps the chunk's
 * rows g, g + SCAN_GROUPS, ... (warp g, lanes on consecutive columns of a row), each summing
 * its rows in order; then the group sums are added in group order. A thread per (chunk,
 * column) walking all 1024 rows (the former kernel) was a chain of 1024 dependent loads: 0.33
 * ms for 256 MB (N = 1M, D = 128 f16) on an H100, 4x the time a read of X takes. Both sizes
 * are part of the summation order (fixed, whatever the GPU): changing them changes the bits. */
#define SCAN_COLS 32
#define SCAN_GROUPS 8
/* combine_columns: a block takes COMBINE_COLS columns of one problem, its COMBINE_GROUPS warps
 * the chunks c = g, g + COMBINE_GROUPS, ...; the group sums are added in group order (the
 * former one-thread-per-column walk over all chunks took 0.19 ms at 977 chunks). */
#define COMBINE_COLS 32
#define COMBINE_GROUPS 32

struct fkm_cuda_scan_ws {
    int64_t batch, n, d, nchunks;   /* nchunks: chunks of one problem */
    double *scale;                  /* max piece rows: 1 / ||row|| (cosine only) */
    double *part;                   /* batch x nchunks x d chunk partials */
    double *mean, *var;             /* batch x d */
    unsigned long long *bad;        /* batch: first non-finite row (~0 = none) */
    double *var_h;                  /* host: batch x d */
    unsigned long long *bad_h;      /* host: batch */
};

/* 1 / ||row|| in double for cosine (0 for a zero row); one warp per row. */
template <typename T>
__global__ void row_scales(const T *Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, double *scale)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int64_t b = blockIdx.y;
    if (row >= n) return;
    const T *x = Xall + b * bstride + row * ld;
    double ss = 0.0;
    for (int64_t j = lane; j < d; j += 32) {
        const double v = fkm_to_double(x[j]);
        ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) scale[b * n + row] = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
}

/* Where a piece's chunks go: problem b of the piece is problem b0 + b of the batch, its chunk
 * c is chunk c0 + c of the problem, its row r is row r0 + r. */
struct scan_place {
    int64_t b0, c0, r0, nchunks;
};

/* Pass 0: per-chunk column sums and the first non-finite row; pass 1: per-chunk sums of
 * squared deviations from `mean`. The value used is the row as f32, normalised (like the
 * CPU's fkm_load_row) for cosine (scale non-NULL). Order: see SCAN_GROUPS. */
template <typename T>
__global__ void __launch_bounds__(SCAN_COLS *SCAN_GROUPS)
    scan_chunks(const T *Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, const double *scale,
                const double *mean, scan_place at, double *part, unsigned long long *first_bad)
{
    __shared__ double group_sum[SCAN_GROUPS][SCAN_COLS];
    const int64_t b = blockIdx.z, bg = at.b0 + b;
    const int64_t chunk = blockIdx.x;
    const int g = threadIdx.y;
    const T *X = Xall + b * bstride;
    const int64_t r0 = chunk * FKM_SCAN_ROWS, r1 = r0 + FKM_SCAN_ROWS < n ? r0 + FKM_SCAN_ROWS : n;
    /* column blocks: one per block row of the grid, walked in steps of gridDim.y past 65535 of
     * them (d > 2^21); the loop is uniform over the block, so every thread meets each barrier */
    for (int64_t cb = blockIdx.y; cb * SCAN_COLS < d; cb += gridDim.y) {
        const int64_t col = cb * SCAN_COLS + threadIdx.x;
        double acc = 0.0;
        int64_t bad = -1;
        if (col < d) {
            const double m = mean ? mean[bg * d + col] : 0.0;
#pragma unroll 4
            for (int64_t r = r0 + g; r < r1; r += SCAN_GROUPS) {
                const double raw = fkm_to_double(X[r * ld + col]);
                const double v = (double)(float)(scale ? raw * scale[b * n + r] : raw);
                if (!mean) {
                    if (!isfinite(raw) && bad < 0) bad = r;
                    acc += v;
                } else {
                    const double t = v - m;
                    acc += t * t;
                }
            }
        }
        __syncthreads(); /* the previous column block's readers of group_sum are done */
        group_sum[g][threadIdx.x] = acc;
        if (bad >= 0) atomicMin(first_bad + bg, (unsigned long long)(at.r0 + bad)); /* a minimum: any order */
        __syncthreads();
        if (g == 0 && col < d) {
            double s = 0.0;
            for (int i = 0; i < SCAN_GROUPS; i++) s += group_sum[i][threadIdx.x];
            part[(bg * at.nchunks + at.c0 + chunk) * d + col] = s;
        }
    }
}

/* Sums the chunk partials of each column (order: see COMBINE_GROUPS); out[b*d + col] = total / n. */
__global__ void __launch_bounds__(COMBINE_COLS *COMBINE_GROUPS)
    combine_columns(const double *part, int64_t nchunks, int64_t n, int64_t d, double *out)
{
    __shared__ double group_sum[COMBINE_GROUPS][COMBINE_COLS];
    const int g = threadIdx.y;
    const int64_t b = blockIdx.y, col = (int64_t)blockIdx.x * COMBINE_COLS + threadIdx.x;
    double s = 0.0;
    if (col < d)
        for (int64_t c = g; c < nchunks; c += COMBINE_GROUPS) s += part[(b * nchunks + c) * d + col];
    group_sum[g][threadIdx.x] = s;
    __syncthreads();
    if (g == 0 && col < d) {
        double t = 0.0;
        for (int i = 0; i < COMBINE_GROUPS; i++) t += group_sum[i][threadIdx.x];
        out[b * d + col] = t / (double)n;
    }
}

void fkm_cuda_scan_destroy(fkm_cuda_scan_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->scale), cudaFree(ws->part), cudaFree(ws->mean), cudaFree(ws->var), cudaFree(ws->bad);
    cudaFreeHost(ws->var_h), cudaFreeHost(ws->bad_h);
    free(ws);
}

fkm_status fkm_cuda_scan_create(fkm_ctx *ctx, int64_t batch, int64_t n, int64_t d, int64_t max_piece_rows,
                                fkm_cuda_scan_ws **out)
{
    *out = NULL;
    /* grid limits: scan_chunks has chunks in x (2^31 - 1), column blocks in y (at most 65535,
     * walked in steps past that) and problems in z (65535); combine_columns column blocks in x,
     * problems in y */
    if (fkm_ceil_div(n, FKM_SCAN_ROWS) > INT32_MAX || batch > 65535 || fkm_ceil_div(d, COMBINE_COLS) > INT32_MAX)
        return fkm_fail(ctx, FKM_E_OVERFLOW, "batch = %lld, n = %lld, d = %lld is too large for the GPU scan",
                        (long long)batch, (long long)n, (long long)d);
    fkm_cuda_scan_ws *ws = (fkm_cuda_scan_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the scan workspace");
    ws->batch = batch;
    ws->n = n;
    ws->d = d;
    ws->nchunks = fkm_ceil_div(n, FKM_SCAN_ROWS);
    fkm_status s = FKM_OK;
    const size_t bd = (size_t)(batch * d);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->scale, (size_t)max_piece_rows * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part, (size_t)ws->nchunks * bd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->mean, bd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->var, bd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->bad, (size_t)batch * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->var_h, bd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->bad_h, (size_t)batch * sizeof(unsigned long long)), s, fail);
    *out = ws;
    return FKM_OK;
fail:
    fkm_cuda_scan_destroy(ws);
    return s;
}

fkm_status fkm_cuda_scan_begin(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, cudaStream_t stream)
{
    FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->bad, 0xff, (size_t)ws->batch * sizeof(unsigned long long), stream));
    return FKM_OK;
}

template <fkm_dtype DT>
static fkm_status scan_piece_typed(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, const fkm_dev_problem *v, scan_place at,
                                   int pass, cudaStream_t stream)
{
    typedef typename fkm_elem<DT>::type T;
    const T *X = (const T *)v->X;
    /* cosine: the scales are recomputed per piece and pass (a piece is gone after its pass);
     * other metrics read the rows as they are */
    const int cosine = v->metric == FKM_METRIC_COSINE;
    if (cosine) {
        row_scales<T><<<dim3((unsigned)fkm_ceil_div(v->n, 8), (unsigned)v->batch), 256, 0, stream>>>(
            X, v->n, v->d, v->ld, v->batch_stride, ws->scale);
        FKM_CUDA_LAUNCHED(ctx, "row_scales");
    }
    const int64_t col_blocks = fkm_ceil_div(v->d, SCAN_COLS);
    const dim3 grid((unsigned)fkm_ceil_div(v->n, FKM_SCAN_ROWS), (unsigned)(col_blocks < 65535 ? col_blocks : 65535),
                    (unsigned)v->batch);
    scan_chunks<T><<<grid, dim3(SCAN_COLS, SCAN_GROUPS), 0, stream>>>(
        X, v->n, v->d, v->ld, v->batch_stride, cosine ? ws->scale : NULL, pass ? ws->mean : NULL, at, ws->part,
        ws->bad);
    FKM_CUDA_LAUNCHED(ctx, "scan_chunks");
    return FKM_OK;
}

fkm_status fkm_cuda_scan_piece(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, const fkm_dev_problem *view, int64_t b0,
                               int64_t r0, int pass, cudaStream_t stream)
{
    if (r0 % FKM_SCAN_ROWS != 0 || b0 + view->batch > ws->batch || r0 + view->n > ws->n)
        return fkm_fail(ctx, FKM_E_INTERNAL, "GPU scan: piece (problems %lld+%d, rows %lld+%lld) off the chunk grid",
                        (long long)b0, (int)view->batch, (long long)r0, (long long)view->n);
    const scan_place at = {b0, r0 / FKM_SCAN_ROWS, r0, ws->nchunks};
    fkm_status s = FKM_OK;
    FKM_DISPATCH_DTYPE(view->dtype, s = scan_piece_typed<DT>(ctx, ws, view, at, pass, stream));
    return s;
}

fkm_status fkm_cuda_scan_combine(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, int pass, cudaStream_t stream)
{
    const dim3 grid((unsigned)fkm_ceil_div(ws->d, COMBINE_COLS), (unsigned)ws->batch); /* batch <= 65535 (create) */
    combine_columns<<<grid, dim3(COMBINE_COLS, COMBINE_GROUPS), 0, stream>>>(ws->part, ws->nchunks, ws->n, ws->d,
                                                                           pass ? ws->var : ws->mean);
    FKM_CUDA_LAUNCHED(ctx, "combine_columns");
    return FKM_OK;
}

fkm_status fkm_cuda_scan_finish(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, int64_t *first_bad, double *mean_var,
                                cudaStream_t stream)
{
    const int64_t B = ws->batch, d = ws->d;
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->var_h, ws->var, (size_t)(B * d) * sizeof(double), cudaMemcpyDeviceToHost,
                                      stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->bad_h, ws->bad, (size_t)B * sizeof(unsigned long long),
                                      cudaMemcpyDeviceToHost, stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    for (int64_t b = 0; b < B; b++) {
        double m = 0.0;
        for (int64_t j = 0; j < d; j++) m += ws->var_h[b * d + j];
        mean_var[b] = m / (double)d;
        first_bad[b] = ws->bad_h[b] == ~0ull ? -1 : (int64_t)ws->bad_h[b];
    }
    return FKM_OK;
}

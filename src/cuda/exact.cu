/* exact.cu — certified-exact assignment on the GPU (exact.cuh, docs/EXACTNESS.md).
 *
 * Per assignment: the tensor-core kernel's top-2 instantiation (mma or wgmma, the path fast
 * mode would take) gives each point its label, best and second-best score; a certification kernel applies fkm_cert_ok (src/core/cert.h, the same
 * inline code as the CPU's) with the point's norm (computed once per fit: X does not change),
 * its centroid's norm and the problem's largest centroid norm, and appends the points it
 * cannot certify to a list. A second kernel runs the exact argmin's first stage on the device
 * (src/core/exact_filter.h: every centroid's score in double with a proven radius, one block
 * per point): a point with a single surviving centroid gets that label there. The few left
 * (near-ties at double precision, exact ties) go to the host, which sorts them (so the work is
 * in a fixed order), gathers their rows as f32 in chunks, re-decides them with
 * fkm_exact_argmin_rows (src/core/exact.c, the CPU backend's code) and scatters the labels
 * back. The change count is then recounted against a copy of the previous labels. */
#include "cuda/exact.cuh"

#include "core/exact.h" /* C declarations with their own extern "C"; cert.h's bound is inline */
#include "core/exact_filter.h"

#include <limits.h>
#include <stdlib.h>

struct fkm_cuda_exact_ws {
    fkm_cert cert;
    int64_t n_total, k_total, chunk;
    int xnorm_ready;
    /* device */
    int32_t *prev;             /* n_total: the labels before this assignment */
    float *best, *second;      /* n_total: the fast pass's two smallest scores */
    double *xnorm;             /* n_total: ||x|| in double */
    double *cnorm, *cmax;      /* k_total, batch */
    unsigned long long *count; /* [0] uncertain points, [1] of them left for the host */
    int64_t *idx;              /* n_total: the uncertain points' global indices */
    int64_t *idx2;             /* n_total: those left for the host */
    float *rows;               /* chunk x d: their rows as f32 */
    int32_t *lab;              /* chunk: their exact labels */
    /* host (pinned) */
    unsigned long long *count_h; /* 2 */
    int64_t *idx_h;
    float *rows_h, *cent_h;
    int32_t *lab_h;
};

#define EX_THREADS 256
#define EX_MAX_BLOCKS 4096
#define EX_CHUNK_BYTES ((int64_t)16 << 20) /* rows gathered per round trip: 16 MB of f32 */

/* ---------------------------------------------------------------- kernels */

/* One warp per row: sqrt of the sum of squares in double (any order: EXACTNESS.md 3.5). */
template <typename T>
__global__ void row_norms(const T *X, int64_t rows, int64_t d, int64_t ld, int64_t per_problem, int64_t bstride,
                          double *out)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return;
    const T *x = X + (r / per_problem) * bstride + (r % per_problem) * ld;
    double s = 0.0;
    for (int64_t j = lane; j < d; j += 32) {
        const double v = fkm_to_double(x[j]);
        s += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) out[r] = sqrt(s);
}

/* The points fkm_cert_ok cannot certify, appended to idx (in no particular order). */
__global__ void certify(fkm_cert cert, const float *best, const float *second, const int32_t *labels,
                        const double *xnorm, const double *cnorm, const double *cmax, int64_t n_total, int64_t n,
                        int64_t k, unsigned long long *count, int64_t *idx)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / n;
        const int ok = fkm_cert_ok(&cert, best[i], second[i], xnorm[i], cnorm[b * k + labels[i]], cmax[b]);
        if (!ok) idx[atomicAdd(count, 1ull)] = i;
    }
}

/* Stage 1 of the exact argmin on the device, one block per uncertain point idx[blockIdx.x]:
 * each thread takes centroids tid, tid + blockDim, ...; the smallest upper end of the score
 * intervals, then the centroids whose interval reaches below it. One survivor is the exact
 * argmin (EXACTNESS.md 4) and its label is written; otherwise the point goes to idx2 for the
 * host. The second pass recomputes the scores (the same arithmetic, the same values) rather
 * than storing k of them per point. x (d floats) lives in dynamic shared memory. */
template <typename T>
__global__ void __launch_bounds__(EX_THREADS)
filter_points(const T *X, int64_t d, int64_t ld, int64_t n, int64_t bstride, const float *cent, int64_t k, int dot,
              const int64_t *idx, int32_t *labels, unsigned long long *count2, int64_t *idx2)
{
    extern __shared__ float xs[];
    __shared__ double red_d[EX_THREADS];
    __shared__ long long red_l[EX_THREADS];
    __shared__ int red_c[EX_THREADS];
    const int tid = threadIdx.x;
    const int64_t i = idx[blockIdx.x], b = i / n;
    const T *x = X + b * bstride + (i % n) * ld;
    for (int64_t j = tid; j < d; j += blockDim.x) xs[j] = fkm_to_float(x[j]);
    __syncthreads();
    const float *C = cent + b * k * d;
    double hi = INFINITY;
    for (int64_t c = tid; c < k; c += blockDim.x) {
        double r;
        const double s = fkm_exact_approx(xs, C + c * d, d, dot, &r);
        hi = fmin(hi, s + r);
    }
    red_d[tid] = hi;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (tid < w) red_d[tid] = fmin(red_d[tid], red_d[tid + w]);
        __syncthreads();
    }
    const double best_hi = red_d[0];
    int cnt = 0;
    long long first = LLONG_MAX;
    for (int64_t c = tid; c < k; c += blockDim.x) {
        double r;
        const double s = fkm_exact_approx(xs, C + c * d, d, dot, &r);
        if (s - r <= best_hi) {
            cnt++;
            if (c < first) first = c;
        }
    }
    __syncthreads(); /* every thread has read red_d[0] */
    red_c[tid] = cnt;
    red_l[tid] = first;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (tid < w) {
            red_c[tid] += red_c[tid + w];
            red_l[tid] = red_l[tid] < red_l[tid + w] ? red_l[tid] : red_l[tid + w];
        }
        __syncthreads();
    }
    if (tid == 0) {
        if (red_c[0] == 1) labels[i] = (int32_t)red_l[0];
        else idx2[atomicAdd(count2, 1ull)] = i;
    }
}

/* rows[j] = the f32 row of point idx[j] (exact conversion from f32/f16/bf16). */
template <typename T>
__global__ void gather_rows(const T *X, int64_t d, int64_t ld, int64_t n, int64_t bstride, const int64_t *idx,
                            int64_t m, float *rows)
{
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < m * d;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = t / d, c = t % d, i = idx[j];
        rows[t] = fkm_to_float(X[(i / n) * bstride + (i % n) * ld + c]);
    }
}

__global__ void scatter_labels(const int64_t *idx, const int32_t *lab, int64_t m, int32_t *labels)
{
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < m; j += (int64_t)gridDim.x * blockDim.x)
        labels[idx[j]] = lab[j];
}

/* changed[b] = labels of problem b (grid.y) that differ from prev; one atomic per warp. */
__global__ void count_changed(const int32_t *labels, const int32_t *prev, int64_t n, unsigned long long *changed)
{
    const int64_t b = blockIdx.y;
    unsigned long long mine = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i - threadIdx.x < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int differs = i < n && labels[b * n + i] != prev[b * n + i];
        mine += (unsigned long long)__popc(__ballot_sync(0xffffffffu, differs));
    }
    if ((threadIdx.x & 31) == 0 && mine) atomicAdd(changed + b, mine);
}

static unsigned blocks_for(int64_t work)
{
    const int64_t b = fkm_ceil_div(work, EX_THREADS);
    return (unsigned)(b < 1 ? 1 : b > EX_MAX_BLOCKS ? EX_MAX_BLOCKS : b);
}

/* ---------------------------------------------------------------- host side */

void fkm_cuda_exact_destroy(fkm_cuda_exact_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->prev);
    cudaFree(ws->best);
    cudaFree(ws->second);
    cudaFree(ws->xnorm);
    cudaFree(ws->cnorm);
    cudaFree(ws->cmax);
    cudaFree(ws->count);
    cudaFree(ws->idx);
    cudaFree(ws->idx2);
    cudaFree(ws->rows);
    cudaFree(ws->lab);
    cudaFreeHost(ws->count_h);
    cudaFreeHost(ws->idx_h);
    cudaFreeHost(ws->rows_h);
    cudaFreeHost(ws->cent_h);
    cudaFreeHost(ws->lab_h);
    free(ws);
}

fkm_status fkm_cuda_exact_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_cuda_exact_ws **out)
{
    *out = NULL;
    /* cosine: the tensor-core kernels score -x.c on the raw rows, which the bound of
     * EXACTNESS.md 5 does not cover yet; f64: the FFMA path has no top-2 variant yet */
    if (pb->metric == FKM_METRIC_COSINE)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact with metric cosine is not available on the cuda "
                                                "backend yet (use the cpu backend)");
    if (pb->dtype == FKM_F64)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact with f64 input is not available on the cuda "
                                                "backend yet (use the cpu backend)");
    fkm_cuda_exact_ws *ws = (fkm_cuda_exact_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the exact-mode workspace");
    ws->cert = fkm_cert_tensor((long long)pb->d, pb->metric == FKM_METRIC_DOT, (int)pb->dtype);
    ws->n_total = pb->n * pb->batch;
    ws->k_total = pb->k * pb->batch;
    ws->chunk = EX_CHUNK_BYTES / (pb->d * (int64_t)sizeof(float));
    if (ws->chunk < 1) ws->chunk = 1;
    if (ws->chunk > ws->n_total) ws->chunk = ws->n_total;
    const size_t n = (size_t)ws->n_total, kd = (size_t)(ws->k_total * pb->d), ch = (size_t)ws->chunk;
    fkm_status s = FKM_OK;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->prev, n * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->best, n * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->second, n * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->xnorm, n * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cnorm, (size_t)ws->k_total * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cmax, (size_t)pb->batch * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->count, 2 * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->idx, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->idx2, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->rows, ch * (size_t)pb->d * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->lab, ch * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->count_h, 2 * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->idx_h, n * sizeof(int64_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->rows_h, ch * (size_t)pb->d * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->cent_h, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&ws->lab_h, ch * sizeof(int32_t)), s, fail);
    *out = ws;
    return FKM_OK;
fail:
    fkm_cuda_exact_destroy(ws);
    return s;
}

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

template <typename T>
static fkm_status launch_row_norms(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, cudaStream_t stream)
{
    const int64_t rows = ws->n_total, per_block = EX_THREADS / 32;
    row_norms<T><<<(unsigned)fkm_ceil_div(rows, per_block), EX_THREADS, 0, stream>>>(
        (const T *)pb->X, rows, pb->d, pb->ld, pb->n, pb->batch_stride, ws->xnorm);
    FKM_CUDA_LAUNCHED(ctx, "row_norms");
    return FKM_OK;
}

/* x rows above this many floats skip the device filter (its shared-memory copy of x). */
#define EX_FILTER_MAX_D 10240 /* 40 KB, with the reductions under the 48 KB default */

template <typename T>
static fkm_status launch_filter(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, const float *cent,
                                int64_t m, int32_t *labels, cudaStream_t stream)
{
    filter_points<T><<<(unsigned)m, EX_THREADS, (size_t)pb->d * sizeof(float), stream>>>(
        (const T *)pb->X, pb->d, pb->ld, pb->n, pb->batch_stride, cent, pb->k, pb->metric == FKM_METRIC_DOT, ws->idx,
        labels, ws->count + 1, ws->idx2);
    FKM_CUDA_LAUNCHED(ctx, "filter_points");
    return FKM_OK;
}

template <typename T>
static fkm_status launch_gather(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, const int64_t *idx,
                                int64_t m, cudaStream_t stream)
{
    gather_rows<T><<<blocks_for(m * pb->d), EX_THREADS, 0, stream>>>((const T *)pb->X, pb->d, pb->ld, pb->n,
                                                                     pb->batch_stride, idx, m, ws->rows);
    FKM_CUDA_LAUNCHED(ctx, "gather_rows");
    return FKM_OK;
}

/* Re-decides the m uncertain points listed (sorted) in ws->idx_h, chunk by chunk. */
static fkm_status redecide(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, int64_t m,
                           int32_t *labels, int n_threads, cudaStream_t stream)
{
    const int64_t d = pb->d, k = pb->k;
    const int dot = pb->metric == FKM_METRIC_DOT;
    for (int64_t off = 0; off < m; off += ws->chunk) {
        const int64_t c = m - off < ws->chunk ? m - off : ws->chunk;
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->idx, ws->idx_h + off, (size_t)c * sizeof(int64_t),
                                          cudaMemcpyHostToDevice, stream));
        fkm_status s = FKM_OK;
        if (pb->dtype == FKM_F16) s = launch_gather<__half>(ctx, ws, pb, ws->idx, c, stream);
        else if (pb->dtype == FKM_BF16) s = launch_gather<__nv_bfloat16>(ctx, ws, pb, ws->idx, c, stream);
        else s = launch_gather<float>(ctx, ws, pb, ws->idx, c, stream);
        if (s != FKM_OK) return s;
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->rows_h, ws->rows, (size_t)(c * d) * sizeof(float),
                                          cudaMemcpyDeviceToHost, stream));
        FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
        /* runs of points of one problem share its centroids */
        for (int64_t j0 = 0; j0 < c;) {
            const int64_t b = ws->idx_h[off + j0] / pb->n;
            int64_t j1 = j0 + 1;
            while (j1 < c && ws->idx_h[off + j1] / pb->n == b) j1++;
            if (fkm_exact_argmin_rows(ws->rows_h + j0 * d, j1 - j0, ws->cent_h + b * k * d, k, d, dot, n_threads,
                                      ws->lab_h + j0) != 0)
                return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the exact re-decision");
            j0 = j1;
        }
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->lab, ws->lab_h, (size_t)c * sizeof(int32_t), cudaMemcpyHostToDevice,
                                          stream));
        scatter_labels<<<blocks_for(c), EX_THREADS, 0, stream>>>(ws->idx, ws->lab, c, labels);
        FKM_CUDA_LAUNCHED(ctx, "scatter_labels");
        /* the pinned buffers are reused by the next chunk */
        FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    }
    return FKM_OK;
}

/* The fast kernel counted its own labels' changes: recount after the re-decision. */
static fkm_status recount(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, const fkm_dev_problem *pb, const int32_t *labels,
                          unsigned long long *changed, cudaStream_t stream)
{
    FKM_CUDA_TRY(ctx, cudaMemsetAsync(changed, 0, (size_t)pb->batch * sizeof *changed, stream));
    const dim3 grid(blocks_for(pb->n), (unsigned)pb->batch);
    count_changed<<<grid, EX_THREADS, 0, stream>>>(labels, ws->prev, pb->n, changed);
    FKM_CUDA_LAUNCHED(ctx, "count_changed");
    return FKM_OK;
}

fkm_status fkm_cuda_exact_assign(fkm_ctx *ctx, fkm_cuda_exact_ws *ws, fkm_cuda_assign_ws *aws,
                                 const fkm_dev_problem *pb, const float *cent, int32_t *labels,
                                 unsigned long long *changed, int n_threads, int64_t *rechecked,
                                 cudaStream_t stream)
{
    fkm_status s = FKM_OK;
    *rechecked = 0;
    if (!ws->xnorm_ready) {
        if (pb->dtype == FKM_F16) s = launch_row_norms<__half>(ctx, ws, pb, stream);
        else if (pb->dtype == FKM_BF16) s = launch_row_norms<__nv_bfloat16>(ctx, ws, pb, stream);
        else s = launch_row_norms<float>(ctx, ws, pb, stream);
        if (s != FKM_OK) return s;
        ws->xnorm_ready = 1;
    }
    /* centroid norms (rows of cent, f32) and each problem's largest */
    row_norms<float><<<(unsigned)fkm_ceil_div(ws->k_total, EX_THREADS / 32), EX_THREADS, 0, stream>>>(
        cent, ws->k_total, pb->d, pb->d, ws->k_total, 0, ws->cnorm);
    FKM_CUDA_LAUNCHED(ctx, "row_norms(centroids)");
    if ((s = fkm_cuda_max_per_problem(ctx, ws->cnorm, pb->k, pb->batch, ws->cmax, stream)) != FKM_OK) return s;

    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->prev, labels, (size_t)ws->n_total * sizeof(int32_t),
                                      cudaMemcpyDeviceToDevice, stream));
    if ((s = fkm_cuda_assign_top2(ctx, aws, pb, cent, labels, changed, ws->best, ws->second, stream)) != FKM_OK)
        return s;
    if (pb->k == 1) return FKM_OK; /* one centroid: nothing to decide */

    FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->count, 0, 2 * sizeof(unsigned long long), stream));
    certify<<<blocks_for(ws->n_total), EX_THREADS, 0, stream>>>(ws->cert, ws->best, ws->second, labels, ws->xnorm,
                                                                ws->cnorm, ws->cmax, ws->n_total, pb->n, pb->k,
                                                                ws->count, ws->idx);
    FKM_CUDA_LAUNCHED(ctx, "certify");
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->count_h, ws->count, sizeof(unsigned long long), cudaMemcpyDeviceToHost,
                                      stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    const int64_t m1 = (int64_t)ws->count_h[0];
    *rechecked = m1;
    if (m1 == 0) return FKM_OK;

    /* stage 1 on the device; only its undecided points go on to the host */
    const int64_t *left = ws->idx;
    int64_t m = m1;
    if (pb->d <= EX_FILTER_MAX_D && m1 <= INT32_MAX) {
        if (pb->dtype == FKM_F16) s = launch_filter<__half>(ctx, ws, pb, cent, m1, labels, stream);
        else if (pb->dtype == FKM_BF16) s = launch_filter<__nv_bfloat16>(ctx, ws, pb, cent, m1, labels, stream);
        else s = launch_filter<float>(ctx, ws, pb, cent, m1, labels, stream);
        if (s != FKM_OK) return s;
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->count_h + 1, ws->count + 1, sizeof(unsigned long long),
                                          cudaMemcpyDeviceToHost, stream));
        FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
        m = (int64_t)ws->count_h[1];
        left = ws->idx2;
    }
    if (m == 0) return recount(ctx, ws, pb, labels, changed, stream);

    /* the list and the centroids to the host; the list sorted so that the work (and the
     * chunks) do not depend on the order of the atomics */
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->idx_h, left, (size_t)m * sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(ws->cent_h, cent, (size_t)(ws->k_total * pb->d) * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(stream));
    qsort(ws->idx_h, (size_t)m, sizeof(int64_t), cmp_i64);
    if ((s = redecide(ctx, ws, pb, m, labels, n_threads, stream)) != FKM_OK) return s;
    return recount(ctx, ws, pb, labels, changed, stream);
}

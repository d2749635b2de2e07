/* update_atomic.cu — the atomicAdd baseline of the centroid update (see update_atomic.cuh),
 * and, when compiled with -DFKM_BENCH_UPDATE_MAIN, the bench_update driver that times the
 * sort-inverse update's stages against it:
 *
 *   bench_update [--n N] [--k K] [--d D] [--batch B] [--dtype f32|f16|bf16|f64]
 *                [--metric l2|cosine|dot] [--weights] [--reps R] [--seed S] [--peak-gbps G]
 *
 * Defaults: N = 1,000,000, K = 1024, D = 128, f16, l2, no weights, 20 timed reps.
 * Data, labels and centroids are generated on the device (a hash of the seed and the index;
 * labels uniform in [0, K)). Prints one JSON line: medians over the reps of each stage
 * (ms), the whole call timed with events around it (timing off), the memory floor (bytes of
 * the rows + labels + ids, and its time at --peak-gbps, default 3350 = H100 SXM), and the
 * atomic f32 / f64 variants, with their largest relative difference to the sort-inverse sums. */
#include "update_atomic.cuh"

#include <stdlib.h>

struct fkm_atomic_update_ws {
    int64_t batch, n, k, d;
    float *fsums;   /* batch*k*d */
    float *fweight; /* batch*k */
    int timing, events_ok;
    cudaEvent_t ev[4];
    fkm_atomic_update_times times;
};

void fkm_atomic_update_destroy(fkm_atomic_update_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->fsums);
    cudaFree(ws->fweight);
    if (ws->events_ok)
        for (int i = 0; i < 4; i++) cudaEventDestroy(ws->ev[i]);
    (void)cudaGetLastError();
    free(ws);
}

fkm_status fkm_atomic_update_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_atomic_update_ws **out)
{
    if (!out || !pb) return fkm_fail(ctx, FKM_E_NULL, "fkm_atomic_update_create: NULL argument");
    *out = NULL;
    if (pb->batch < 1 || pb->n < 1 || pb->k < 1 || pb->d < 1)
        return fkm_fail(ctx, FKM_E_INVALID, "fkm_atomic_update_create: batch, n, k, d must be >= 1");
    int64_t bk;
    size_t bytes;
    if (!fkm_mul_i64(pb->batch, pb->k, &bk) || !fkm_bytes(bk, pb->d, sizeof(float), &bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "fkm_atomic_update_create: size overflow");
    fkm_atomic_update_ws *ws = (fkm_atomic_update_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory");
    ws->batch = pb->batch;
    ws->n = pb->n;
    ws->k = pb->k;
    ws->d = pb->d;
    fkm_status st = FKM_OK;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->fsums, bytes), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->fweight, (size_t)bk * sizeof(float)), st, fail);
    for (int i = 0; i < 4; i++) {
        cudaError_t e = cudaEventCreate(&ws->ev[i]);
        if (e != cudaSuccess) {
            for (int j = 0; j < i; j++) cudaEventDestroy(ws->ev[j]);
            st = fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaEventCreate");
            goto fail;
        }
    }
    ws->events_ok = 1;
    *out = ws;
    return FKM_OK;
fail:
    fkm_atomic_update_destroy(ws);
    return st;
}

void fkm_atomic_update_set_timing(fkm_atomic_update_ws *ws, int on)
{
    if (ws) ws->timing = on != 0;
}

fkm_atomic_update_times fkm_atomic_update_last_times(const fkm_atomic_update_ws *ws)
{
    fkm_atomic_update_times t;
    memset(&t, 0, sizeof t);
    return ws ? ws->times : t;
}

__device__ __forceinline__ double atomic_warp_sum(double v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* the row value kept before normalisation: f32 (exact) for f32/f16/bf16, the double for f64 */
__device__ __forceinline__ float atomic_val(float v) { return v; }
__device__ __forceinline__ float atomic_val(__half v) { return __half2float(v); }
__device__ __forceinline__ float atomic_val(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ double atomic_val(double v) { return v; }

/* One warp per point (grid-stride over the batch's points). Cosine: the norm in double (a
 * first pass over the row), the normalised value rounded to f32, as in fkm_cuda_update. */
template <fkm_dtype DT>
__global__ void atomic_update_kernel(const void *X, int64_t n, int64_t d, int64_t ld, int64_t batch_stride,
                                     int64_t k, int64_t batch, const float *weights, const int32_t *labels,
                                     int cosine, int f64, int want_sums, float *fsums, float *fweight, double *dsums,
                                     double *dweight)
{
    typedef typename fkm_elem<DT>::type E;
    const int lane = threadIdx.x & 31;
    const int64_t total = batch * n;
    const int64_t wpb = blockDim.x / 32;
    for (int64_t gi = (int64_t)blockIdx.x * wpb + threadIdx.x / 32; gi < total; gi += (int64_t)gridDim.x * wpb) {
        const int64_t b = gi / n, i = gi % n;
        const int32_t L = labels[gi];
        if (L < 0 || L >= k) continue; /* warp-uniform */
        const int64_t g = b * k + L;
        const E *row = (const E *)X + b * batch_stride + i * ld;
        const float w = weights ? weights[gi] : 1.0f;
        double inv = 0.0;
        if (cosine && want_sums) {
            double ss = 0.0;
            for (int64_t j = lane; j < d; j += 32) {
                const double v = (double)atomic_val(row[j]);
                ss += v * v;
            }
            ss = atomic_warp_sum(ss);
            inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
        }
        if (want_sums)
            for (int64_t j = lane; j < d; j += 32) {
                const float xf = inv != 0.0 ? (float)((double)atomic_val(row[j]) * inv) : (float)atomic_val(row[j]);
                if (f64) atomicAdd(dsums + g * d + j, (double)w * (double)xf);
                else atomicAdd(fsums + g * d + j, w * xf);
            }
        if (lane == 0) {
            if (f64) {
                if (dweight) atomicAdd(dweight + g, (double)w);
            } else {
                atomicAdd(fweight + g, w);
            }
        }
    }
}

__global__ void atomic_widen_kernel(const float *src, double *dst, int64_t count)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = (double)src[i];
}

static unsigned atomic_grid(int64_t blocks)
{
    if (blocks < 1) return 1;
    return (unsigned)(blocks < (1 << 30) ? blocks : (1 << 30));
}

template <fkm_dtype DT>
static void launch_atomic(const fkm_dev_problem *pb, const int32_t *labels, int f64, int want_sums, float *fsums,
                          float *fweight, double *dsums, double *dweight, cudaStream_t stream)
{
    /* 8 warps per block, one point per warp: grid covers the points (capped; grid-stride) */
    const int64_t blocks = fkm_ceil_div(pb->batch * pb->n, 8);
    atomic_update_kernel<DT><<<atomic_grid(blocks < 1048576 ? blocks : 1048576), 256, 0, stream>>>(
        pb->X, pb->n, pb->d, pb->ld, pb->batch_stride, pb->k, pb->batch, pb->weights, labels,
        pb->metric == FKM_METRIC_COSINE, f64, want_sums, fsums, fweight, dsums, dweight);
}

fkm_status fkm_atomic_update(fkm_ctx *ctx, fkm_atomic_update_ws *ws, const fkm_dev_problem *pb,
                             const int32_t *labels, fkm_atomic_precision precision, double *sums,
                             double *weight, cudaStream_t stream)
{
    if (!ws || !pb || !labels || !pb->X) return fkm_fail(ctx, FKM_E_NULL, "fkm_atomic_update: NULL argument");
    if (pb->k != ws->k || pb->d != ws->d || pb->n > ws->n || pb->batch > ws->batch || pb->n < 1 || pb->batch < 1 ||
        pb->ld < pb->d)
        return fkm_fail(ctx, FKM_E_INVALID, "fkm_atomic_update: problem does not fit the workspace");
    if (pb->dtype != FKM_F32 && pb->dtype != FKM_F16 && pb->dtype != FKM_BF16 && pb->dtype != FKM_F64)
        return fkm_fail(ctx, FKM_E_DTYPE, "fkm_atomic_update: unknown dtype");
    const int f64 = precision == FKM_ATOMIC_F64;
    const int64_t bk = pb->batch * pb->k, bkd = bk * pb->d;
    const int timing = ws->timing && ws->events_ok;
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[0], stream));
    if (f64) {
        if (sums) FKM_CUDA_TRY(ctx, cudaMemsetAsync(sums, 0, (size_t)bkd * sizeof(double), stream));
        if (weight) FKM_CUDA_TRY(ctx, cudaMemsetAsync(weight, 0, (size_t)bk * sizeof(double), stream));
    } else {
        FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->fsums, 0, (size_t)bkd * sizeof(float), stream));
        FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->fweight, 0, (size_t)bk * sizeof(float), stream));
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[1], stream));
    FKM_DISPATCH_DTYPE(pb->dtype, launch_atomic<DT>(pb, labels, f64, sums != NULL, ws->fsums, ws->fweight, sums,
                                                    weight, stream));
    FKM_CUDA_LAUNCHED(ctx, "atomic_update_kernel");
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[2], stream));
    if (!f64) {
        if (sums) {
            atomic_widen_kernel<<<atomic_grid(fkm_ceil_div(bkd, 256) < 65536 ? fkm_ceil_div(bkd, 256) : 65536), 256, 0,
                                  stream>>>(ws->fsums, sums, bkd);
            FKM_CUDA_LAUNCHED(ctx, "atomic_widen_kernel");
        }
        if (weight) {
            atomic_widen_kernel<<<atomic_grid(fkm_ceil_div(bk, 256) < 65536 ? fkm_ceil_div(bk, 256) : 65536), 256, 0,
                                  stream>>>(ws->fweight, weight, bk);
            FKM_CUDA_LAUNCHED(ctx, "atomic_widen_kernel");
        }
    }
    if (timing) {
        FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[3], stream));
        FKM_CUDA_TRY(ctx, cudaEventSynchronize(ws->ev[3]));
        FKM_CUDA_TRY(ctx, cudaEventElapsedTime(&ws->times.zero, ws->ev[0], ws->ev[1]));
        FKM_CUDA_TRY(ctx, cudaEventElapsedTime(&ws->times.scatter, ws->ev[1], ws->ev[2]));
        FKM_CUDA_TRY(ctx, cudaEventElapsedTime(&ws->times.convert, ws->ev[2], ws->ev[3]));
    }
    return FKM_OK;
}

/* ==================================================================== bench_update driver */
#ifdef FKM_BENCH_UPDATE_MAIN

#include "cuda/update.cuh"

#include <math.h>
#include <stdio.h>
#include <vector>
#include <algorithm>

__device__ __forceinline__ uint64_t bench_hash(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
/* uniform in [-1, 1) */
__device__ __forceinline__ float bench_unif(uint64_t seed, uint64_t i)
{
    return (float)((double)(bench_hash(seed * 0x100000001b3ull + i) >> 11) * 0x1.0p-52 - 1.0);
}
__device__ __forceinline__ void bench_store(float *p, float v) { *p = v; }
__device__ __forceinline__ void bench_store(__half *p, float v) { *p = __float2half(v); }
__device__ __forceinline__ void bench_store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ void bench_store(double *p, float v) { *p = v; }

template <fkm_dtype DT>
__global__ void bench_gen_x(void *X, int64_t count, uint64_t seed)
{
    typedef typename fkm_elem<DT>::type E;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        bench_store((E *)X + i, bench_unif(seed, (uint64_t)i));
}
__global__ void bench_gen_misc(int32_t *labels, float *weights, int64_t count, int64_t k, float *C, int64_t ccount,
                               uint64_t seed)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x) {
        labels[i] = (int32_t)(bench_hash(seed ^ 0xabcdefull ^ ((uint64_t)i << 1)) % (uint64_t)k);
        if (weights) weights[i] = 0.5f + 0.75f * (bench_unif(seed + 7, (uint64_t)i) + 1.0f);
    }
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < ccount; i += (int64_t)gridDim.x * blockDim.x)
        C[i] = 0.1f * bench_unif(seed + 13, (uint64_t)i);
}

#define BCHECK(expr)                                                                       \
    do {                                                                                   \
        cudaError_t e_ = (expr);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "bench_update: %s: %s\n", #expr, cudaGetErrorString(e_));     \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)
#define FCHECK(expr)                                                                       \
    do {                                                                                   \
        fkm_status s_ = (expr);                                                            \
        if (s_ != FKM_OK) {                                                                \
            fprintf(stderr, "bench_update: %s: %s\n", #expr, fkm_last_error(ctx));        \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

static double med(std::vector<double> v)
{
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const size_t m = v.size();
    return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

int main(int argc, char **argv)
{
    long long n = 1000000, k = 1024, d = 128, batch = 1, reps = 20, seed = 1;
    double peak = 3350.0;
    fkm_dtype dtype = FKM_F16;
    fkm_metric metric = FKM_METRIC_L2;
    int use_w = 0;
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a];
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(o, "--weights")) { use_w = 1; continue; }
        if (!v) { fprintf(stderr, "bench_update: %s needs a value\n", o); return 2; }
        a++;
        if (!strcmp(o, "--n")) n = atoll(v);
        else if (!strcmp(o, "--k")) k = atoll(v);
        else if (!strcmp(o, "--d")) d = atoll(v);
        else if (!strcmp(o, "--batch")) batch = atoll(v);
        else if (!strcmp(o, "--reps")) reps = atoll(v);
        else if (!strcmp(o, "--seed")) seed = atoll(v);
        else if (!strcmp(o, "--peak-gbps")) peak = atof(v);
        else if (!strcmp(o, "--dtype")) {
            if (!strcmp(v, "f32")) dtype = FKM_F32;
            else if (!strcmp(v, "f16")) dtype = FKM_F16;
            else if (!strcmp(v, "bf16")) dtype = FKM_BF16;
            else if (!strcmp(v, "f64")) dtype = FKM_F64;
            else { fprintf(stderr, "bench_update: bad dtype %s\n", v); return 2; }
        } else if (!strcmp(o, "--metric")) {
            if (!strcmp(v, "l2")) metric = FKM_METRIC_L2;
            else if (!strcmp(v, "cosine")) metric = FKM_METRIC_COSINE;
            else if (!strcmp(v, "dot")) metric = FKM_METRIC_DOT;
            else { fprintf(stderr, "bench_update: bad metric %s\n", v); return 2; }
        } else { fprintf(stderr, "bench_update: unknown option %s\n", o); return 2; }
    }
    if (n < 1 || k < 1 || d < 1 || batch < 1 || reps < 1) { fprintf(stderr, "bench_update: bad sizes\n"); return 2; }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) { fprintf(stderr, "bench_update: no CUDA device\n"); return 77; }
    cudaDeviceProp prop;
    BCHECK(cudaGetDeviceProperties(&prop, 0));
    fkm_ctx *ctx = NULL;
    if (fkm_create(&ctx, FKM_BACKEND_CPU) != FKM_OK) { fprintf(stderr, "bench_update: fkm_create failed\n"); return 1; }

    const size_t es = fkm_dtype_size(dtype);
    const int64_t bn = batch * n, bk = batch * k;
    void *X;
    int32_t *labels;
    float *weights = NULL, *C;
    double *sums, *wsum, *obj, *asums, *aw; /* no per-point objectives, as in the fit */
    BCHECK(cudaMalloc(&X, (size_t)bn * (size_t)d * es));
    BCHECK(cudaMalloc((void **)&labels, (size_t)bn * 4));
    if (use_w) BCHECK(cudaMalloc((void **)&weights, (size_t)bn * 4));
    BCHECK(cudaMalloc((void **)&C, (size_t)bk * (size_t)d * 4));
    BCHECK(cudaMalloc((void **)&sums, (size_t)bk * (size_t)d * 8));
    BCHECK(cudaMalloc((void **)&asums, (size_t)bk * (size_t)d * 8));
    BCHECK(cudaMalloc((void **)&wsum, (size_t)bk * 8));
    BCHECK(cudaMalloc((void **)&aw, (size_t)bk * 8));
    BCHECK(cudaMalloc((void **)&obj, (size_t)batch * 8));
    FKM_DISPATCH_DTYPE(dtype, (bench_gen_x<DT><<<4096, 256>>>(X, bn * d, (uint64_t)seed)));
    bench_gen_misc<<<4096, 256>>>(labels, weights, bn, k, C, bk * d, (uint64_t)seed);
    BCHECK(cudaGetLastError());
    BCHECK(cudaDeviceSynchronize());

    fkm_dev_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.X = X;
    pb.dtype = dtype;
    pb.n = n;
    pb.d = d;
    pb.ld = d;
    pb.batch_stride = n * d;
    pb.batch = (int32_t)batch;
    pb.weights = weights;
    pb.k = k;
    pb.metric = metric;
    fkm_cuda_update_ws *ws = NULL;
    fkm_atomic_update_ws *aws = NULL;
    FCHECK(fkm_cuda_update_create(ctx, &pb, &ws));
    FCHECK(fkm_atomic_update_create(ctx, &pb, &aws));
    cudaStream_t stream;
    BCHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    BCHECK(cudaEventCreate(&e0));
    BCHECK(cudaEventCreate(&e1));

    std::vector<double> st[5], whole, at32[3], at64[3], a32w, a64w;
    /* warm-up */
    FCHECK(fkm_cuda_update(ctx, ws, &pb, labels, C, sums, wsum, NULL, obj, 0, stream));
    FCHECK(fkm_atomic_update(ctx, aws, &pb, labels, FKM_ATOMIC_F32, asums, aw, stream));
    FCHECK(fkm_atomic_update(ctx, aws, &pb, labels, FKM_ATOMIC_F64, asums, aw, stream));
    BCHECK(cudaStreamSynchronize(stream));
    for (long long r = 0; r < reps; r++) {
        /* whole call, no per-stage events */
        fkm_cuda_update_set_timing(ws, 0);
        BCHECK(cudaEventRecord(e0, stream));
        FCHECK(fkm_cuda_update(ctx, ws, &pb, labels, C, sums, wsum, NULL, obj, 0, stream));
        BCHECK(cudaEventRecord(e1, stream));
        BCHECK(cudaEventSynchronize(e1));
        float ms;
        BCHECK(cudaEventElapsedTime(&ms, e0, e1));
        whole.push_back(ms);
        /* per stage */
        fkm_cuda_update_set_timing(ws, 1);
        FCHECK(fkm_cuda_update(ctx, ws, &pb, labels, C, sums, wsum, NULL, obj, 0, stream));
        const fkm_cuda_update_times t = fkm_cuda_update_last_times(ws);
        st[0].push_back(t.histogram);
        st[1].push_back(t.scan);
        st[2].push_back(t.scatter);
        st[3].push_back(t.reduce);
        st[4].push_back(t.combine);
        for (int p = 0; p < 2; p++) {
            fkm_atomic_update_set_timing(aws, 1);
            BCHECK(cudaEventRecord(e0, stream));
            FCHECK(fkm_atomic_update(ctx, aws, &pb, labels, p ? FKM_ATOMIC_F64 : FKM_ATOMIC_F32, asums, aw, stream));
            BCHECK(cudaEventRecord(e1, stream));
            BCHECK(cudaEventSynchronize(e1));
            BCHECK(cudaEventElapsedTime(&ms, e0, e1));
            const fkm_atomic_update_times at = fkm_atomic_update_last_times(aws);
            std::vector<double> *dst = p ? at64 : at32;
            dst[0].push_back(at.zero);
            dst[1].push_back(at.scatter);
            dst[2].push_back(at.convert);
            (p ? a64w : a32w).push_back(ms);
        }
    }
    /* agreement of the last atomic (f64) run with the sort-inverse sums */
    std::vector<double> hs((size_t)(bk * d)), ha((size_t)(bk * d));
    BCHECK(cudaMemcpy(hs.data(), sums, hs.size() * 8, cudaMemcpyDeviceToHost));
    BCHECK(cudaMemcpy(ha.data(), asums, ha.size() * 8, cudaMemcpyDeviceToHost));
    double maxrel = 0.0;
    for (size_t i = 0; i < hs.size(); i++) {
        const double den = fabs(hs[i]) > 1e-30 ? fabs(hs[i]) : 1e-30;
        const double r = fabs(hs[i] - ha[i]) / den;
        if (r > maxrel) maxrel = r;
    }
    const double floor_bytes = (double)bn * (double)d * (double)es + 8.0 * (double)bn;
    const double floor_ms = floor_bytes / (peak * 1e9) * 1e3;
    const double whole_ms = med(whole);
    printf("{\"device\": \"%s\", \"n\": %lld, \"k\": %lld, \"d\": %lld, \"batch\": %lld, \"dtype\": \"%s\", "
           "\"metric\": %d, \"weights\": %d, \"reps\": %lld, "
           "\"histogram_ms\": %.4f, \"scan_ms\": %.4f, \"scatter_ms\": %.4f, \"reduce_ms\": %.4f, "
           "\"combine_ms\": %.4f, \"stages_sum_ms\": %.4f, \"whole_ms\": %.4f, "
           "\"floor_bytes\": %.0f, \"floor_ms_at_peak\": %.4f, \"peak_gbps\": %.0f, \"whole_over_floor\": %.3f, "
           "\"achieved_gbps\": %.1f, "
           "\"atomic_f32_ms\": %.4f, \"atomic_f32_scatter_ms\": %.4f, \"atomic_f64_ms\": %.4f, "
           "\"atomic_f64_scatter_ms\": %.4f, \"atomic_f64_max_rel_diff\": %.3g}\n",
           prop.name, n, k, d, batch, fkm_dtype_name(dtype), (int)metric, use_w, reps, med(st[0]), med(st[1]),
           med(st[2]), med(st[3]), med(st[4]), med(st[0]) + med(st[1]) + med(st[2]) + med(st[3]) + med(st[4]),
           whole_ms, floor_bytes, floor_ms, peak, whole_ms / floor_ms, floor_bytes / (whole_ms * 1e-3) / 1e9,
           med(a32w), med(at32[1]), med(a64w), med(at64[1]), maxrel);
    fkm_cuda_update_destroy(ws);
    fkm_atomic_update_destroy(aws);
    cudaStreamDestroy(stream);
    cudaFree(X);
    cudaFree(labels);
    cudaFree(weights);
    cudaFree(C);
    cudaFree(sums);
    cudaFree(asums);
    cudaFree(wsum);
    cudaFree(aw);
    cudaFree(obj);
    fkm_destroy(ctx);
    return 0;
}
#endif

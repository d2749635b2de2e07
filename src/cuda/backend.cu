/* backend.cu — the CUDA backend's table (see core/internal.h): per-call device state, input
 * placement (device inputs used in place, host inputs copied once), and the glue between the
 * Lloyd loop's host-side buffers and the kernels in assign.cu, update.cu and scan.cu.
 *
 * Per iteration the host sends the k x d f32 centroids and receives k x d double sums, k
 * weights and the objective (through pinned staging buffers); everything proportional to N
 * stays on the device. */
#include "cuda/assign.cuh"
#include "cuda/exact.cuh"
#include "cuda/scan.cuh"
#include "cuda/update.cuh"

#include <stdlib.h>
#include <string.h>

typedef struct cuda_state {
    fkm_problem pb;          /* the host view the core gave (X may be a device pointer) */
    fkm_dev_problem dp;      /* what the kernels read */
    cudaStream_t stream;
    int x_on_device;         /* the caller's X is device memory */
    void *x_owned;           /* our device copy of X, when needed */
    float *w_dev;            /* device weights (copied from pb.weights), or NULL */
    int32_t *labels;         /* n, device */
    float *cent;             /* k x d, device: centroids of the last assign (or finalize) */
    float *cent_next;        /* k x d, device: finalize's output before the swap */
    double *shift_rows;      /* batch x k, device: squared shift of each centroid in finalize */
    unsigned char *active, *active_h;    /* batch: problems finalize updates (device, pinned) */
    double *sums, *weight, *pobj, *obj;  /* update outputs, device */
    unsigned long long *changed;         /* device counter */
    /* pinned host staging */
    float *cent_h;
    double *sums_h, *weight_h, *obj_h;
    unsigned long long *changed_h;
    fkm_cuda_assign_ws *aws;
    fkm_cuda_update_ws *uws;
    fkm_cuda_exact_ws *ews;  /* precision = exact only (exact.cu) */
    int have_sums;           /* the last reduce computed sums (objectives valid either way) */
} cuda_state;

static int is_device_pointer(const void *p)
{
    cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static fkm_status cuda_copy(fkm_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    FKM_CUDA_TRY(ctx, cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    return FKM_OK;
}

static void cuda_close(void *state)
{
    cuda_state *st = (cuda_state *)state;
    if (!st) return;
    if (st->stream) cudaStreamSynchronize(st->stream);
    fkm_cuda_assign_destroy(st->aws);
    fkm_cuda_update_destroy(st->uws);
    fkm_cuda_exact_destroy(st->ews);
    cudaFree(st->x_owned), cudaFree(st->w_dev), cudaFree(st->labels), cudaFree(st->cent);
    cudaFree(st->cent_next), cudaFree(st->shift_rows), cudaFree(st->active), cudaFreeHost(st->active_h);
    cudaFree(st->sums), cudaFree(st->weight), cudaFree(st->pobj), cudaFree(st->obj), cudaFree(st->changed);
    cudaFreeHost(st->cent_h), cudaFreeHost(st->sums_h), cudaFreeHost(st->weight_h), cudaFreeHost(st->obj_h);
    cudaFreeHost(st->changed_h);
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st);
}

/* The tensor-core kernels read rows in 16-byte pieces: they need ld % 8 == 0, d % 8 == 0 and
 * an aligned base (a zero-padded copy is made otherwise). */
static int rows_fit_kernels(const fkm_problem *pb, const void *X)
{
    const size_t es = fkm_dtype_size(pb->dtype);
    return (pb->ld * (int64_t)es) % 16 == 0 && (pb->d * (int64_t)es) % 16 == 0 && ((uintptr_t)X % 16) == 0;
}

/* Places X on the device: in place when it is device memory the kernels can read, else one
 * copy with a padded leading dimension (columns past d zero). */
static fkm_status place_x(fkm_ctx *ctx, cuda_state *st)
{
    const fkm_problem *pb = &st->pb;
    const size_t es = fkm_dtype_size(pb->dtype);
    st->x_on_device = is_device_pointer(pb->X);
    if (st->x_on_device && rows_fit_kernels(pb, pb->X) &&
        (pb->batch_stride * (int64_t)es) % 16 == 0) {
        st->dp.X = pb->X;
        st->dp.ld = pb->ld;
        st->dp.batch_stride = pb->batch_stride;
        return FKM_OK;
    }
    const int64_t ldp = (pb->d + 7) / 8 * 8;
    size_t bytes;
    if (!fkm_bytes(pb->batch * pb->n, ldp, es, &bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "%lld rows of %lld elements overflow", (long long)(pb->batch * pb->n),
                        (long long)ldp);
    FKM_CUDA_TRY(ctx, cudaMalloc(&st->x_owned, bytes));
    if (ldp != pb->d) FKM_CUDA_TRY(ctx, cudaMemsetAsync(st->x_owned, 0, bytes, st->stream));
    for (int64_t b = 0; b < pb->batch; b++)
        FKM_CUDA_TRY(ctx, cudaMemcpy2DAsync((char *)st->x_owned + (size_t)(b * pb->n * ldp) * es, (size_t)ldp * es,
                                            (const char *)pb->X + (size_t)(b * pb->batch_stride) * es,
                                            (size_t)pb->ld * es, (size_t)pb->d * es, (size_t)pb->n,
                                            cudaMemcpyDefault, st->stream));
    st->dp.X = st->x_owned;
    st->dp.ld = ldp;
    st->dp.batch_stride = pb->n * ldp;
    return FKM_OK;
}

static fkm_status cuda_open(fkm_ctx *ctx, const fkm_problem *pb, void **out)
{
    *out = NULL;
    cuda_state *st = (cuda_state *)calloc(1, sizeof *st);
    if (!st) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the CUDA backend state");
    st->pb = *pb;
    fkm_status s = FKM_OK;
    const int64_t B = pb->batch, n = pb->n * B, k = pb->k * B, d = pb->d; /* n, k: over the batch */
    const size_t kd = (size_t)(k * d);
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking), s, fail);
    if ((s = place_x(ctx, st)) != FKM_OK) goto fail;
    st->dp.dtype = pb->dtype;
    st->dp.n = pb->n;
    st->dp.d = d;
    st->dp.batch = (int32_t)B;
    st->dp.k = pb->k;
    st->dp.metric = pb->metric;
    if (pb->weights) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->w_dev, (size_t)n * sizeof(float)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(st->w_dev, pb->weights, (size_t)n * sizeof(float), cudaMemcpyDefault,
                                               st->stream), s, fail);
    }
    st->dp.weights = st->w_dev;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->labels, (size_t)n * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(st->labels, 0xff, (size_t)n * sizeof(int32_t), st->stream), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->cent, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->cent_next, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->shift_rows, (size_t)k * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->sums, kd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->weight, (size_t)k * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->pobj, (size_t)n * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->obj, 2 * (size_t)B * sizeof(double)), s, fail); /* objectives, max shifts */
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->active, (size_t)B), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->changed, (size_t)B * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->cent_h, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->sums_h, kd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->weight_h, (size_t)k * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->obj_h, 2 * (size_t)B * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->changed_h, (size_t)B * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->active_h, (size_t)B), s, fail);
    if ((s = fkm_cuda_assign_create(ctx, &st->dp, pb->precision, &st->aws)) != FKM_OK) goto fail;
    if (pb->precision == FKM_PRECISION_EXACT && (s = fkm_cuda_exact_create(ctx, &st->dp, &st->ews)) != FKM_OK)
        goto fail;
    if ((s = fkm_cuda_update_create(ctx, &st->dp, &st->uws)) != FKM_OK) goto fail;
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(st->stream), s, fail);
    *out = st;
    return FKM_OK;
fail:
    cuda_close(st);
    return s;
}

static fkm_status cuda_scan(fkm_ctx *ctx, void *state, int64_t *first_nonfinite, double *mean_var)
{
    cuda_state *st = (cuda_state *)state;
    return fkm_cuda_scan(ctx, &st->dp, first_nonfinite, mean_var, st->stream);
}

static fkm_status cuda_fetch_row(fkm_ctx *ctx, void *state, int64_t i, float *row)
{
    cuda_state *st = (cuda_state *)state;
    const fkm_problem *pb = &st->pb;
    const int normalise = pb->metric == FKM_METRIC_COSINE;
    const size_t es = fkm_dtype_size(pb->dtype);
    /* global row i of the batch: problem i / n, row i % n */
    const unsigned char *X = (const unsigned char *)pb->X + (size_t)(i / pb->n * pb->batch_stride) * es;
    i %= pb->n;
    if (!st->x_on_device) {
        fkm_load_row(X, pb->dtype, pb->ld, i, pb->d, normalise, row);
        return FKM_OK;
    }
    /* a device row: bring its raw elements over, then convert exactly as the CPU does */
    unsigned char *raw = (unsigned char *)malloc((size_t)pb->d * es);
    if (!raw) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for a row");
    cudaError_t e = cudaMemcpy(raw, X + (size_t)(i * pb->ld) * es, (size_t)pb->d * es, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) fkm_load_row(raw, pb->dtype, pb->d, 0, pb->d, normalise, row);
    free(raw);
    if (e != cudaSuccess) return fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaMemcpy(row)");
    return FKM_OK;
}

static fkm_status cuda_assign(fkm_ctx *ctx, void *state, const float *centroids, int64_t *n_changed)
{
    cuda_state *st = (cuda_state *)state;
    const int64_t B = st->pb.batch;
    const size_t bytes = (size_t)(B * st->pb.k * st->pb.d) * sizeof(float);
    if (centroids) { /* else: the device centroids of the last finalize */
        memcpy(st->cent_h, centroids, bytes);
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->cent, st->cent_h, bytes, cudaMemcpyHostToDevice, st->stream));
    }
    int64_t rechecked = 0;
    fkm_status s = st->ews ? fkm_cuda_exact_assign(ctx, st->ews, st->aws, &st->dp, st->cent, st->labels, st->changed,
                                                   st->pb.n_threads, &rechecked, st->stream)
                           : fkm_cuda_assign(ctx, st->aws, &st->dp, st->cent, st->labels, st->changed, NULL, st->stream);
    if (s != FKM_OK) return s;
    if (st->ews) ctx->exact_points += B * st->pb.n, ctx->exact_rechecked += rechecked;
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->changed_h, st->changed, (size_t)B * sizeof *st->changed_h,
                                      cudaMemcpyDeviceToHost, st->stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
    for (int64_t b = 0; b < B; b++) n_changed[b] = (int64_t)st->changed_h[b];
    return FKM_OK;
}

static fkm_status cuda_reduce(fkm_ctx *ctx, void *state, const float *centroids, fkm_partials *out)
{
    (void)centroids; /* by contract the centroids of the last assign, already on the device */
    cuda_state *st = (cuda_state *)state;
    const int64_t B = st->pb.batch, k = st->pb.k * B, d = st->pb.d; /* k over the batch */
    const int want = out->sums != NULL;
    const int compute = want || out->keep_sums;
    fkm_status s = fkm_cuda_update(ctx, st->uws, &st->dp, st->labels, st->cent, compute ? st->sums : NULL,
                                   st->weight, st->pobj, st->obj, 0, st->stream);
    if (s != FKM_OK) return s;
    if (want)
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->sums_h, st->sums, (size_t)(k * d) * sizeof(double),
                                          cudaMemcpyDeviceToHost, st->stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->weight_h, st->weight, (size_t)k * sizeof(double), cudaMemcpyDeviceToHost,
                                      st->stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->obj_h, st->obj, (size_t)B * sizeof(double), cudaMemcpyDeviceToHost,
                                      st->stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
    if (want) memcpy(out->sums, st->sums_h, (size_t)(k * d) * sizeof(double));
    if (out->weight) memcpy(out->weight, st->weight_h, (size_t)k * sizeof(double));
    memcpy(out->objective, st->obj_h, (size_t)B * sizeof(double));
    return FKM_OK;
}

/* One thread per centroid of the batch: exactly core's divide_and_shift (lloyd.c), same
 * operations in the same order, so the device path and the host path give bitwise the same
 * centroids. Problems not active keep their centroids. */
__global__ void finalize_kernel(const double *sums, const double *weight, const float *old, int64_t k_total,
                                int64_t k, int64_t d, int cosine, const unsigned char *active, float *out,
                                double *shift_rows)
{
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= k_total) return;
    const double *sum = sums + c * d;
    const float *o = old + c * d;
    float *dst = out + c * d;
    if (!active[c / k]) {
        for (int64_t j = 0; j < d; j++) dst[j] = o[j];
        shift_rows[c] = 0.0;
        return;
    }
    double scale = weight[c] > 0.0 ? 1.0 / weight[c] : 0.0;
    if (scale > 0.0 && cosine) {
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += sum[j] * sum[j];
        scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    }
    double shift = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const float v = scale > 0.0 ? (float)(sum[j] * scale) : o[j];
        dst[j] = v;
        const double t = (double)v - o[j];
        shift += t * t;
    }
    shift_rows[c] = shift;
}

/* out[b] = the largest of problem b's k values; one block per problem (max is exact in any
 * order). */
__global__ void max_kernel(const double *v, int64_t k, double *out)
{
    __shared__ double part[256];
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

static fkm_status cuda_finalize(fkm_ctx *ctx, void *state, const unsigned char *active, double *max_shift)
{
    cuda_state *st = (cuda_state *)state;
    const int64_t B = st->pb.batch, k = st->pb.k, d = st->pb.d;
    memcpy(st->active_h, active, (size_t)B);
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->active, st->active_h, (size_t)B, cudaMemcpyHostToDevice, st->stream));
    finalize_kernel<<<(unsigned)fkm_ceil_div(B * k, 128), 128, 0, st->stream>>>(
        st->sums, st->weight, st->cent, B * k, k, d, st->pb.metric == FKM_METRIC_COSINE, st->active, st->cent_next,
        st->shift_rows);
    FKM_CUDA_LAUNCHED(ctx, "finalize_kernel");
    max_kernel<<<(unsigned)B, 256, 0, st->stream>>>(st->shift_rows, k, st->obj + B);
    FKM_CUDA_LAUNCHED(ctx, "max_kernel");
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->obj_h + B, st->obj + B, (size_t)B * sizeof(double), cudaMemcpyDeviceToHost,
                                      st->stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
    memcpy(max_shift, st->obj_h + B, (size_t)B * sizeof(double));
    float *t = st->cent;
    st->cent = st->cent_next;
    st->cent_next = t;
    return FKM_OK;
}

static fkm_status cuda_get_sums(fkm_ctx *ctx, void *state, double *sums)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(sums, st->sums, (size_t)(st->pb.batch * st->pb.k * st->pb.d) * sizeof(double),
                                 cudaMemcpyDeviceToHost));
    return FKM_OK;
}

static fkm_status cuda_get_centroids(fkm_ctx *ctx, void *state, float *centroids)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(centroids, st->cent, (size_t)(st->pb.batch * st->pb.k * st->pb.d) * sizeof(float),
                                 cudaMemcpyDeviceToHost));
    return FKM_OK;
}

/* Largest objective first, ties to the lower index. */
static int obj_before(const double *obj, int64_t a, int64_t b)
{
    return obj[a] > obj[b] || (obj[a] == obj[b] && a < b);
}

static fkm_status cuda_farthest(fkm_ctx *ctx, void *state, int64_t problem, int64_t count, int64_t *idx)
{
    /* rare (only with empty clusters): bring the objectives over and select on the host */
    cuda_state *st = (cuda_state *)state;
    const int64_t n = st->pb.n;
    if (count > n) count = n;
    double *obj = (double *)malloc((size_t)n * sizeof(double));
    if (!obj) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the farthest-point search");
    cudaError_t e = cudaMemcpy(obj, st->pobj + problem * n, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        free(obj);
        return fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaMemcpy(objectives)");
    }
    /* insertion into a sorted list of `count`: count is the number of empty clusters, small */
    int64_t size = 0;
    for (int64_t i = 0; i < n; i++) {
        if (size == count && !obj_before(obj, i, idx[size - 1])) continue;
        int64_t p = size < count ? size++ : size - 1;
        while (p > 0 && obj_before(obj, i, idx[p - 1])) {
            idx[p] = idx[p - 1];
            p--;
        }
        idx[p] = i;
    }
    free(obj);
    return FKM_OK;
}

static fkm_status cuda_get_label(fkm_ctx *ctx, void *state, int64_t i, int32_t *label)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(label, st->labels + i, sizeof *label, cudaMemcpyDeviceToHost));
    return FKM_OK;
}

static fkm_status cuda_get_labels(fkm_ctx *ctx, void *state, int32_t *labels)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(labels, st->labels, (size_t)(st->pb.batch * st->pb.n) * sizeof *labels,
                                 cudaMemcpyDefault));
    return FKM_OK;
}

/* Distances of every point to every centroid, in f32 from the f32 row (normalised for cosine)
 * and the f32 centroid, as the CPU backend defines them. One thread per (point, centroid):
 * transform is the one N x K output there is, and it is bound by writing it. */
template <typename T>
__global__ void transform_kernel(const T *X, int64_t n, int64_t d, int64_t ld, const float *C, int64_t k,
                                 int metric, float *dist)
{
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n * k) return;
    const int64_t i = t / k, c = t % k;
    const T *x = X + i * ld;
    const float *cc = C + c * d;
    double scale = 1.0;
    if (metric == FKM_METRIC_COSINE) {
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += fkm_to_double(x[j]) * fkm_to_double(x[j]);
        scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    }
    double acc = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const double v = (double)(float)(fkm_to_double(x[j]) * scale);
        if (metric == FKM_METRIC_L2) acc += (v - cc[j]) * (v - cc[j]);
        else acc += v * cc[j];
    }
    dist[t] = metric == FKM_METRIC_L2 ? (float)acc : metric == FKM_METRIC_COSINE ? (float)(1.0 - acc) : (float)acc;
}

template <fkm_dtype DT> static void launch_transform(const cuda_state *st, unsigned blocks, float *dist_d)
{
    typedef typename fkm_elem<DT>::type T;
    const fkm_problem *pb = &st->pb;
    transform_kernel<T><<<blocks, 256, 0, st->stream>>>((const T *)st->dp.X, pb->n, pb->d, st->dp.ld, st->cent, pb->k,
                                                        pb->metric, dist_d);
}

static fkm_status cuda_transform(fkm_ctx *ctx, void *state, const float *centroids, float *dist)
{
    cuda_state *st = (cuda_state *)state;
    const fkm_problem *pb = &st->pb;
    const size_t kd = (size_t)(pb->k * pb->d), nk = (size_t)(pb->n * pb->k);
    float *dist_d = NULL;
    fkm_status s = FKM_OK;
    const int out_on_device = is_device_pointer(dist);
    memcpy(st->cent_h, centroids, kd * sizeof(float));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->cent, st->cent_h, kd * sizeof(float), cudaMemcpyHostToDevice, st->stream));
    if (out_on_device) dist_d = dist;
    else FKM_CUDA_TRY(ctx, cudaMalloc((void **)&dist_d, nk * sizeof(float)));
    const unsigned blocks = (unsigned)fkm_ceil_div((int64_t)nk, 256);
    FKM_DISPATCH_DTYPE(pb->dtype, launch_transform<DT>(st, blocks, dist_d));
    FKM_CUDA_TRY_GOTO(ctx, cudaGetLastError(), s, out);
    if (!out_on_device)
        FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(dist, dist_d, nk * sizeof(float), cudaMemcpyDeviceToHost, st->stream), s,
                          out);
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(st->stream), s, out);
out:
    if (!out_on_device) cudaFree(dist_d);
    return s;
}

static const fkm_backend_vtbl cuda_vtbl = {
    "cuda",        cuda_open,       cuda_close,     cuda_scan,      cuda_fetch_row,     cuda_assign,
    cuda_reduce,   cuda_farthest,   cuda_get_label, cuda_get_labels, cuda_transform,    is_device_pointer,
    cuda_copy,     cuda_finalize,   cuda_get_sums,  cuda_get_centroids, 65535,
    NULL, /* k-means++: core runs the CPU backend's over a host view of X (for now) */
    1,    /* precision = exact: l2 and dot on f32/f16/bf16 (exact.cu) */
};

extern "C" const fkm_backend_vtbl *fkm_cuda_backend(void) { return &cuda_vtbl; }

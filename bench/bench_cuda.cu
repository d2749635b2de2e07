/* bench_cuda.cu — the GPU kernels timed alone with CUDA events (llm.c dev/cuda style): the
 * FlashAssign kernel, the sort-inverse update stage by stage, the atomicAdd update it replaces,
 * and the ceilings measured in the same run (cuBLAS f16 GEMM of the assignment's shape and of
 * 8192^3, device copy bandwidth). One CSV line per configuration on stdout (and --csv FILE).
 *
 *   bench_cuda [--reps R] [--csv FILE] [CONFIG ...]     CONFIG = N:K:D[:dtype[:B]]
 *
 * dtype is f16 (default), bf16 or f32 (f32 runs the FFMA path). Default configurations are
 * the CUDA issue's: 1000000:1024:128 8000000:1024:128 75600:1000:128:f16:32
 * 1000000:65536:128 1000000:16:128 1000000:1024:128:f32 1000000:1024:1024.
 * The assignment kernel that ran is the [path] of each line: FLASHKM_ASSIGN=mma and
 * FLASHKM_WGMMA_OVERLAP=0|2|3 (wgmma, wgmma-pingpong or wgmma-pingpong-persistent) change it on
 * sm_90, for A/B runs of one build.
 * Likewise the update's "scatter stage" (points per staged sub-tile, 0 = direct scatter, -1 =
 * radix path): FLASHKM_SCATTER_STAGE=0 forces the direct scatter, =P stages sub-tiles of up to P
 * points (update.cu: scatter_stage). */
#include "cuda/assign.cuh"
#include "cuda/update.cuh"
#include "update_atomic.cuh"

#include <cublas_v2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.cuh"
#include "bench_data.cuh"

template <typename T>
__global__ void rows_to_f32(const T *X, int64_t n, int64_t d, int64_t k, int64_t batch, float *C)
{
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= batch * k * d) return;
    const int64_t b = t / (k * d), c = (t / d) % k, j = t % d;
    const int64_t row = c * (n / k); /* k distinct rows spread over the problem */
    C[t] = (float)X[(b * n + row) * d + j];
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}
static float median(float *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return v[n / 2];
}

typedef struct config {
    int64_t n, k, d, batch;
    fkm_dtype dtype;
} config;

static cublasHandle_t blas;

/* cuBLAS f16 (bf16) GEMM with f32 accumulation, m x n x k, median TFLOP/s. */
static double gemm_tflops(int64_t m, int64_t n, int64_t k, cudaDataType dt, int reps)
{
    void *A, *B, *Cm;
    const size_t es = dt == CUDA_R_32F ? 4 : 2;
    CK(cudaMalloc(&A, (size_t)(m * k) * es));
    CK(cudaMalloc(&B, (size_t)(k * n) * es));
    CK(cudaMalloc(&Cm, (size_t)(m * n) * 4));
    CK(cudaMemset(A, 0, (size_t)(m * k) * es));
    CK(cudaMemset(B, 0, (size_t)(k * n) * es));
    const float one = 1.f, zero = 0.f;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ts[64];
    const cublasComputeType_t ct = dt == CUDA_R_32F ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    for (int r = -2; r < reps; r++) {
        CK(cudaEventRecord(e0));
        cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, B, dt, (int)k, A, dt, (int)k, &zero,
                     Cm, CUDA_R_32F, (int)n, ct, CUBLAS_GEMM_DEFAULT);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&ts[r], e0, e1));
    }
    const double ms = median(ts, reps);
    cudaFree(A), cudaFree(B), cudaFree(Cm);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return 2.0 * (double)m * n * k / (ms * 1e-3) / 1e12;
}

static double copy_gbps(int reps)
{
    const size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ts[64];
    for (int r = -2; r < reps; r++) {
        CK(cudaEventRecord(e0));
        CK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&ts[r], e0, e1));
    }
    const double ms = median(ts, reps);
    cudaFree(a), cudaFree(b);
    return 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
}

template <typename T>
static void fill(void *X, const config *c, float *C)
{
    const int64_t rows = c->batch * c->n;
    make_data<T><<<(unsigned)((rows * c->d + 255) / 256), 256>>>((T *)X, rows, c->d);
    rows_to_f32<T><<<(unsigned)((c->batch * c->k * c->d + 255) / 256), 256>>>((const T *)X, c->n, c->d, c->k,
                                                                             c->batch, C);
    CK(cudaGetLastError());
}

static void run_config(const config *c, int reps, double copy_bw, double peak, FILE *csv)
{
    fkm_ctx *ctx;
    fkm_create(&ctx, FKM_BACKEND_CPU); /* only to hold error messages */
    const size_t es = fkm_dtype_size(c->dtype);
    const int64_t rows = c->batch * c->n;
    void *X;
    float *C;
    int32_t *labels;
    unsigned long long *changed;
    double *sums, *weight, *obj; /* no per-point objectives: the fit asks for none (only relocation does) */
    CK(cudaMalloc(&X, (size_t)(rows * c->d) * es));
    CK(cudaMalloc((void **)&C, (size_t)(c->batch * c->k * c->d) * sizeof(float)));
    CK(cudaMalloc((void **)&labels, (size_t)rows * sizeof(int32_t)));
    CK(cudaMalloc((void **)&changed, (size_t)c->batch * sizeof(unsigned long long)));
    CK(cudaMalloc((void **)&sums, (size_t)(c->batch * c->k * c->d) * sizeof(double)));
    CK(cudaMalloc((void **)&weight, (size_t)(c->batch * c->k) * sizeof(double)));
    CK(cudaMalloc((void **)&obj, (size_t)c->batch * sizeof(double)));
    CK(cudaMemset(labels, 0xff, (size_t)rows * sizeof(int32_t)));
    if (c->dtype == FKM_F16) fill<__half>(X, c, C);
    else if (c->dtype == FKM_BF16) fill<__nv_bfloat16>(X, c, C);
    else fill<float>(X, c, C);
    fkm_dev_problem pb = {X, c->dtype, c->n, c->d, c->d, c->n * c->d, (int32_t)c->batch, NULL, c->k, FKM_METRIC_L2};
    const fkm_precision prec = FKM_PRECISION_FAST;
    fkm_cuda_assign_ws *aws;
    fkm_cuda_update_ws *uws;
    FK(ctx, fkm_cuda_assign_create(ctx, &pb, prec, &aws));
    FK(ctx, fkm_cuda_update_create(ctx, &pb, &uws));
    fkm_atomic_update_ws *atws;
    FK(ctx, fkm_atomic_update_create(ctx, &pb, &atws));
    fkm_cuda_update_set_timing(uws, 1);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float t_assign[64], t_update[64], t_atomic[64], st_h[64], st_s[64], st_sc[64], st_r[64], st_c[64];
    for (int r = -2; r < reps; r++) {
        CK(cudaEventRecord(e0));
        FK(ctx, fkm_cuda_assign(ctx, aws, &pb, C, labels, changed, NULL, 0));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&t_assign[r], e0, e1));
    }
    for (int r = -2; r < reps; r++) {
        CK(cudaEventRecord(e0));
        FK(ctx, fkm_cuda_update(ctx, uws, &pb, labels, C, sums, weight, NULL, obj, 0, 0));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) {
            CK(cudaEventElapsedTime(&t_update[r], e0, e1));
            const fkm_cuda_update_times t = fkm_cuda_update_last_times(uws);
            st_h[r] = t.histogram, st_s[r] = t.scan, st_sc[r] = t.scatter, st_r[r] = t.reduce, st_c[r] = t.combine;
        }
    }
    for (int r = -2; r < reps; r++) {
        CK(cudaEventRecord(e0));
        FK(ctx, fkm_atomic_update(ctx, atws, &pb, labels, FKM_ATOMIC_F32, sums, weight, 0));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&t_atomic[r], e0, e1));
    }
    const double ta = median(t_assign, reps), tu = median(t_update, reps), tat = median(t_atomic, reps);
    const double flops = 2.0 * (double)rows * c->k * c->d;
    const double tflops = flops / (ta * 1e-3) / 1e12;
    const cudaDataType gdt = c->dtype == FKM_F16 ? CUDA_R_16F : c->dtype == FKM_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const double ceil_shape = gemm_tflops(c->n < 262144 ? c->n : 262144, c->k, c->d, gdt, reps);
    /* update memory floor: X once, labels read twice (histogram, scatter), ids written and read */
    const double bytes = (double)rows * c->d * es + (double)rows * 4 * 4;
    const double floor_ms = bytes / (copy_bw * 1e9) * 1e3; /* copy_bw counts bytes read + written */
    const char *dn = fkm_dtype_name(c->dtype);
    printf("N=%lld K=%lld D=%lld %s B=%lld | assign %.3f ms %.0f TFLOP/s (%.0f%% of cuBLAS 8192^3; same shape %.0f) [%s]"
           " | update %.3f ms (hist %.3f scan %.3f scatter %.3f reduce %.3f combine %.3f; scatter stage %lld), floor %.3f ms (%.2fx)"
           " | atomic update %.3f ms\n",
           (long long)c->n, (long long)c->k, (long long)c->d, dn, (long long)c->batch, ta, tflops,
           100.0 * tflops / peak, ceil_shape, fkm_cuda_assign_path_name(fkm_cuda_assign_path(&pb, prec)), tu, median(st_h, reps),
           median(st_s, reps), median(st_sc, reps), median(st_r, reps), median(st_c, reps),
           (long long)fkm_cuda_update_scatter_stage(uws), floor_ms, tu / floor_ms, tat);
    if (csv)
        fprintf(csv, "%lld,%lld,%lld,%s,%lld,%s,%.4f,%.1f,%.1f,%.1f,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%.4f\n",
                (long long)c->n, (long long)c->k, (long long)c->d, dn, (long long)c->batch,
                fkm_cuda_assign_path_name(fkm_cuda_assign_path(&pb, prec)), ta, tflops, ceil_shape,
                100.0 * tflops / ceil_shape, 100.0 * tflops / peak, tu, median(st_h, reps), median(st_s, reps), median(st_sc, reps),
                median(st_r, reps), median(st_c, reps), floor_ms, tu / floor_ms, tat);
    fkm_cuda_assign_destroy(aws);
    fkm_cuda_update_destroy(uws);
    fkm_atomic_update_destroy(atws);
    cudaFree(X), cudaFree(C), cudaFree(labels), cudaFree(changed), cudaFree(sums), cudaFree(weight),
        cudaFree(obj);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    fkm_destroy(ctx);
}

static int parse_config(const char *s, config *c)
{
    char dt[16] = "f16";
    long long n, k, d, b = 1;
    const int got = sscanf(s, "%lld:%lld:%lld:%15[a-z0-9]:%lld", &n, &k, &d, dt, &b);
    if (got < 3) return 0;
    c->n = n, c->k = k, c->d = d, c->batch = b;
    c->dtype = strcmp(dt, "f32") == 0 ? FKM_F32 : strcmp(dt, "bf16") == 0 ? FKM_BF16 : FKM_F16;
    return 1;
}

int main(int argc, char **argv)
{
    int reps = 10;
    const char *csv_path = NULL;
    const char *defaults[] = {"1000000:1024:128",  "8000000:1024:128", "75600:1000:128:f16:32", "1000000:65536:128",
                              "1000000:16:128",    "1000000:1024:128:f32", "1000000:1024:1024"};
    const char *list[64];
    int nlist = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
        else if (nlist < 64) list[nlist++] = argv[i];
    }
    if (reps < 1 || reps > 60) reps = 10;
    if (nlist == 0)
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) list[nlist++] = defaults[i];
    int dev_count = 0;
    if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
        printf("bench_cuda: no CUDA device, nothing to measure\n");
        return 0;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    cublasCreate(&blas);
    const double bw = copy_gbps(reps);
    const double peak = gemm_tflops(8192, 8192, 8192, CUDA_R_16F, reps);
    printf("GPU %s: device copy %.0f GB/s (read + write), cuBLAS f16 8192^3 %.0f TFLOP/s\n", prop.name, bw, peak);
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv) {
        fprintf(csv, "# GPU %s, copy %.1f GB/s, cuBLAS f16 8192^3 %.1f TFLOP/s\n", prop.name, bw, peak);
        fprintf(csv, "n,k,d,dtype,batch,assign_path,assign_ms,assign_tflops,cublas_same_shape_tflops,assign_pct_of_same_shape,"
                     "assign_pct_of_cublas_8192,"
                     "update_ms,histogram_ms,scan_ms,scatter_ms,reduce_ms,combine_ms,update_floor_ms,update_vs_floor,"
                     "atomic_update_ms\n");
    }
    for (int i = 0; i < nlist; i++) {
        config c;
        if (!parse_config(list[i], &c)) {
            fprintf(stderr, "bad config %s (want N:K:D[:dtype[:B]])\n", list[i]);
            return 2;
        }
        run_config(&c, reps, bw, peak, csv);
    }
    if (csv) fclose(csv);
    cublasDestroy(blas);
    return 0;
}

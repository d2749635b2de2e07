/* bench_kpp_cuda.cu — k-means++ initialisation on the GPU (src/cuda/kmeanspp.cu), timed.
 *
 *   bench_kpp_cuda [--reps R] [--cpu-n M] [--data blobs|noise|both] [--ab] [CONFIG ...]
 *                                                             CONFIG = N:K:D[:dtype]
 *
 * For each configuration (default 1000000:1024:128:f16, the issue's target, <= 150 ms on an
 * H100) and data set (default blobs: 64 Gaussian blobs, bench_data.cuh; noise: unit normal
 * noise without clusters, where the distance pruning has little to prove): fkm_kmeanspp on
 * the CUDA backend with X already in device memory, wall clock, median of R runs (default 5)
 * after a warm-up; then one profiled run of the internal entry point, which times each
 * distance pass and pruning table of the run and the selection-only and full tails (selection
 * + D^2 sampling) alone with CUDA events, so the lines say where the time goes, and how much
 * the pruning skipped: the rows read per point visit, and the (point, row) distance pairs the
 * test could not rule out (a listed row computes all T + 1 pairs). With --ab the same runs
 * are repeated with FLASHKM_KPP_NO_PRUNE=1 (every distance computed) and the two results
 * compared bitwise. With --cpu-n M > 0 (default 100000) the same K and D at N = M also run on
 * the CPU backend, timed once, and the two results are compared bitwise. Exit 77 without a
 * GPU. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "cuda/kmeanspp.cuh"

#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_check.cuh"
#include "bench_data.cuh"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* the data (bench_data.cuh) is made on the device, then copied to the host for the CPU run */
template <typename T> static void make_on_device(T *X, int64_t n, int64_t d, int noise)
{
    const unsigned blocks = (unsigned)((n * d + 255) / 256);
    if (noise) make_noise<<<blocks, 256>>>(X, n, d);
    else make_data<<<blocks, 256>>>(X, n, d);
}

/* Times fkm_kmeanspp on X (device) and profiles one run; prints two or three lines; C gets
 * the centroids. */
static void measure(fkm_ctx *gpu, const void *Xd, int64_t n, int64_t k, int64_t d, fkm_dtype dt, int reps,
                    const char *data, float *C)
{
    const size_t es = fkm_dtype_size(dt), bytes = (size_t)(n * d) * es;
    fkm_params p = fkm_params_default();
    p.k = k;
    p.seed = 1;
    float *C2 = (float *)malloc((size_t)(k * d) * sizeof(float));
    FK(gpu, fkm_kmeanspp(gpu, &p, Xd, dt, n, d, d, NULL, C)); /* warm-up */
    double *t = (double *)malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        const double t0 = now_ms();
        FK(gpu, fkm_kmeanspp(gpu, &p, Xd, dt, n, d, d, NULL, C2));
        t[r] = now_ms() - t0;
    }
    std::sort(t, t + reps);
    const int same = memcmp(C, C2, (size_t)(k * d) * sizeof(float)) == 0;
    /* where the time goes: the internal entry point, X in place, profiled */
    fkm_dev_problem dp;
    memset(&dp, 0, sizeof dp);
    dp.X = Xd, dp.dtype = dt, dp.n = n, dp.d = d, dp.ld = d, dp.batch_stride = n * d, dp.batch = 1, dp.k = k;
    dp.metric = FKM_METRIC_L2;
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    fkm_cuda_kpp_profile pr;
    memset(&pr, 0, sizeof pr);
    FK(gpu, fkm_cuda_kmeanspp(gpu, &dp, 0, p.seed, C2, st, &pr));
    CK(cudaStreamDestroy(st));
    const int same_prof = memcmp(C, C2, (size_t)(k * d) * sizeof(float)) == 0;
    const double steps = (double)(pr.steps > 0 ? pr.steps : 1);
    const double sample = pr.tail_ms - pr.select_ms;
    printf("kpp_cuda N=%lld K=%lld D=%lld %s data=%s pruning=%s T=%lld chunks=%lld: median %.2f ms (min %.2f, %d "
           "reps; runs identical: %s)\n",
           (long long)n, (long long)k, (long long)d, fkm_dtype_name(dt), data, pr.pruning ? "on" : "off",
           (long long)pr.trials, (long long)pr.chunks, t[reps / 2], t[0], reps, same && same_prof ? "yes" : "NO");
    /* X-equivalent rate: a full read of X per pass over the pass time (with pruning most rows
     * are not read, so this can exceed the HBM bandwidth) */
    printf("  device time %.2f ms (profiled run): distance passes %.2f ms (%.1f us/step, %.0f GB/s X-equivalent), "
           "pruning tables %.2f ms (%.1f us/step), selection %.2f ms (%.1f us/step), sampling %.2f ms (%.1f "
           "us/step), rest (setup, launch gaps, events, copies) %.2f ms\n",
           pr.total_ms, pr.pass_ms, 1e3 * pr.pass_ms / steps, (double)bytes * steps / (pr.pass_ms * 1e6), pr.table_ms,
           1e3 * pr.table_ms / steps, pr.select_ms, 1e3 * pr.select_ms / steps, sample, 1e3 * sample / steps,
           pr.total_ms - pr.pass_ms - pr.table_ms - pr.tail_ms);
    if (pr.rows_ms > 0.0)
        printf("  the pass's kernels alone (last step's pass, repeated): mark %.1f us, rows %.1f us, sums %.1f us\n",
               1e3 * pr.mark_ms, 1e3 * pr.rows_ms, 1e3 * pr.sums_ms);
    if (pr.points > 0)
        printf("  pruning: rows read (and all their T + 1 distances computed) %.4f of %lld point visits (%lld passes); "
               "(point, row) pairs not ruled out %.4f of %lld\n",
               (double)pr.points_read / (double)pr.points, (long long)pr.points, (long long)(pr.steps + 1),
               (double)pr.pairs_needed / (double)pr.pairs, (long long)pr.pairs);
    free(C2), free(t);
}

static void run_config(fkm_ctx *gpu, fkm_ctx *cpu, int64_t n, int64_t k, int64_t d, fkm_dtype dt, int reps,
                       int64_t cpu_n, int noise, int ab)
{
    const size_t es = fkm_dtype_size(dt), bytes = (size_t)(n * d) * es;
    const char *data = noise ? "noise" : "blobs";
    void *Xd, *Xh = malloc(bytes);
    if (!Xh) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    CK(cudaMalloc(&Xd, bytes));
    if (dt == FKM_F16) make_on_device((__half *)Xd, n, d, noise);
    else if (dt == FKM_BF16) make_on_device((__nv_bfloat16 *)Xd, n, d, noise);
    else make_on_device((float *)Xd, n, d, noise);
    CK(cudaGetLastError());
    CK(cudaMemcpy(Xh, Xd, bytes, cudaMemcpyDeviceToHost));
    float *C = (float *)malloc((size_t)(k * d) * sizeof(float));
    measure(gpu, Xd, n, k, d, dt, reps, data, C);
    if (ab) {
        float *U = (float *)malloc((size_t)(k * d) * sizeof(float));
        setenv("FLASHKM_KPP_NO_PRUNE", "1", 1);
        measure(gpu, Xd, n, k, d, dt, reps, data, U);
        unsetenv("FLASHKM_KPP_NO_PRUNE");
        printf("  pruned == unpruned bitwise: %s\n", memcmp(C, U, (size_t)(k * d) * sizeof(float)) == 0 ? "yes" : "NO");
        free(U);
    }
    if (cpu_n > 0 && cpu_n >= k) {
        const int64_t m = cpu_n < n ? cpu_n : n;
        fkm_params p = fkm_params_default();
        p.k = k;
        p.seed = 1;
        float *G = (float *)malloc((size_t)(k * d) * sizeof(float)), *H = (float *)malloc((size_t)(k * d) * sizeof(float));
        FK(gpu, fkm_kmeanspp(gpu, &p, Xh, dt, m, d, d, NULL, G));
        const double t0 = now_ms();
        FK(cpu, fkm_kmeanspp(cpu, &p, Xh, dt, m, d, d, NULL, H));
        const double tc = now_ms() - t0;
        const double t1 = now_ms();
        FK(gpu, fkm_kmeanspp(gpu, &p, Xh, dt, m, d, d, NULL, G));
        const double tg = now_ms() - t1;
        printf("  N=%lld: CPU (%s, %d threads) %.1f ms, GPU (host X, copy included) %.1f ms; GPU == CPU bitwise: %s\n",
               (long long)m, fkm_cpu_simd_level(), fkm_cpu_max_threads(), tc, tg,
               memcmp(G, H, (size_t)(k * d) * sizeof(float)) == 0 ? "yes" : "NO");
        free(G), free(H);
    }
    CK(cudaFree(Xd));
    free(Xh), free(C);
}

int main(int argc, char **argv)
{
    int reps = 5, ab = 0;
    int64_t cpu_n = 100000;
    const char *list[64], *data = "blobs";
    int nlist = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpu-n") && i + 1 < argc) cpu_n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--ab")) ab = 1;
        else if (nlist < 64) list[nlist++] = argv[i];
    }
    if (strcmp(data, "blobs") && strcmp(data, "noise") && strcmp(data, "both")) {
        fprintf(stderr, "--data takes blobs, noise or both\n");
        return 2;
    }
    if (reps < 1) reps = 1;
    if (nlist == 0) list[nlist++] = "1000000:1024:128:f16";
    if (fkm_cuda_device_count() < 1) {
        printf("SKIP: no usable CUDA device\n");
        return 77;
    }
    fkm_ctx *gpu = NULL, *cpu = NULL;
    if (fkm_create(&gpu, FKM_BACKEND_CUDA) != FKM_OK || fkm_create(&cpu, FKM_BACKEND_CPU) != FKM_OK) {
        fprintf(stderr, "cannot create the contexts\n");
        return 1;
    }
    for (int c = 0; c < nlist; c++) {
        long long n = 0, k = 0, d = 0;
        char dts[16] = "f16";
        if (sscanf(list[c], "%lld:%lld:%lld:%15s", &n, &k, &d, dts) < 3 || n < 1 || k < 1 || k > n || d < 1) {
            fprintf(stderr, "bad configuration '%s' (N:K:D[:dtype])\n", list[c]);
            return 2;
        }
        const fkm_dtype dt = !strcmp(dts, "f32") ? FKM_F32 : !strcmp(dts, "bf16") ? FKM_BF16 : FKM_F16;
        for (int noise = 0; noise < 2; noise++)
            if (!strcmp(data, "both") || !strcmp(data, noise ? "noise" : "blobs"))
                run_config(gpu, cpu, n, k, d, dt, reps, cpu_n, noise, ab);
    }
    fkm_destroy(gpu);
    fkm_destroy(cpu);
    return 0;
}

/* test_scan.cu — the GPU data scan (src/cuda/scan.cuh), which a fit starts with, against a plain
 * fp64 host computation written from its contract:
 *
 *  - first_bad[b]: the first row of problem b holding a NaN or an Inf (as stored), -1 if none;
 *  - mean_var[b]: the mean over columns of the column variances (two passes: column means,
 *    then mean squared deviations from them), each value taken as the row in f32, normalised
 *    first for cosine (squared norm in double, value * (1 / sqrt(norm)) rounded to f32, as the
 *    CPU's fkm_load_row).
 *
 * The device adds in another (fixed) order, so mean_var is compared with a relative tolerance
 * of 1e-9: the sums have at most ~10^4 terms of one sign each (|error| <= n u sum|terms|,
 * ~10^-12 relative), and cosine's device norm, summed in another order, may move a normalised
 * value by one f32 ulp (2^-24 relative) in rare rows. Beyond the reference, the contract's
 * invariances are checked bit for bit: the same problems scanned in row pieces (r0 on the
 * 1024-row chunk grid, as the streamed placement cuts X) and a second run give the same
 * mean_var; first_bad is exact in every case (NaN / Inf planted at chosen rows, in f32, f16,
 * bf16 and f64, in some problems of a batch only).
 *
 * Exit status: 0 pass, 1 fail, 77 skipped (no CUDA device). */
#include "cuda/scan.cuh"
#include "device_test.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

static size_t elem_size(fkm_dtype t) { return t == FKM_F64 ? 8 : t == FKM_F32 ? 4 : 2; }

/* Stores v as dtype t at element i of raw, returns the stored value as double. */
static double store(void *raw, fkm_dtype t, size_t i, double v)
{
    switch (t) {
    case FKM_F32: ((float *)raw)[i] = (float)v; return ((float *)raw)[i];
    case FKM_F64: ((double *)raw)[i] = v; return v;
    case FKM_F16: {
        const __half h = __float2half((float)v);
        memcpy((char *)raw + 2 * i, &h, 2);
        return __half2float(h);
    }
    default: {
        const __nv_bfloat16 h = __float2bfloat16((float)v);
        memcpy((char *)raw + 2 * i, &h, 2);
        return __bfloat162float(h);
    }
    }
}

/* A non-finite value (NaN if nan, else +Inf) of dtype t at element i. */
static void plant(void *raw, fkm_dtype t, size_t i, int nan)
{
    switch (t) {
    case FKM_F32: ((float *)raw)[i] = nan ? NAN : INFINITY; break;
    case FKM_F64: ((double *)raw)[i] = nan ? NAN : -INFINITY; break;
    default: {
        const uint16_t bits = t == FKM_F16 ? (nan ? 0x7e00 : 0x7c00) : (nan ? 0x7fc0 : 0xff80);
        memcpy((char *)raw + 2 * i, &bits, 2);
    }
    }
}

struct scan_case {
    int batch;
    int64_t n, d, ld_extra;
    fkm_dtype dtype;
    fkm_metric metric;
    double offset;                /* common offset of every value (cancellation in one pass) */
    int64_t bad_row[2];           /* per problem 0 and 1: a planted non-finite row, -1 none */
};

/* mean_var of problem b from the stored values (vals: batch x n x d doubles), fp64 reference. */
static double reference_mean_var(const std::vector<double> &vals, int64_t b, int64_t n, int64_t d, int cosine)
{
    std::vector<double> v((size_t)(n * d));
    for (int64_t i = 0; i < n; i++) {
        const double *x = &vals[(size_t)((b * n + i) * d)];
        double scale = 1.0;
        if (cosine) {
            double ss = 0.0;
            for (int64_t j = 0; j < d; j++) ss += x[j] * x[j];
            scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
        }
        for (int64_t j = 0; j < d; j++) v[(size_t)(i * d + j)] = (double)(float)(x[j] * scale);
    }
    double mv = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double m = 0.0, s = 0.0;
        for (int64_t i = 0; i < n; i++) m += v[(size_t)(i * d + j)];
        m /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            const double t = v[(size_t)(i * d + j)] - m;
            s += t * t;
        }
        mv += s / (double)n;
    }
    return mv / (double)d;
}

/* Runs both passes over X (device, batch x n rows of ld elements), cut into row pieces of
 * piece_rows rows (a multiple of FKM_SCAN_ROWS; 0 = the whole batch in one view). */
static void run_scan(fkm_ctx *ctx, const scan_case &c, const void *X, int64_t piece_rows, cudaStream_t stream,
                     std::vector<int64_t> &bad, std::vector<double> &mv)
{
    const int64_t ld = c.d + c.ld_extra, B = c.batch;
    fkm_cuda_scan_ws *ws = NULL;
    fkm_status s = fkm_cuda_scan_create(ctx, B, c.n, c.d, B * c.n, &ws);
    EXPECT(s == FKM_OK, "create: %s", fkm_last_error(ctx));
    if (s != FKM_OK) exit(1);
    bad.assign((size_t)B, -2);
    mv.assign((size_t)B, NAN);
    EXPECT(fkm_cuda_scan_begin(ctx, ws, stream) == FKM_OK, "begin: %s", fkm_last_error(ctx));
    for (int pass = 0; pass < 2; pass++) {
        if (piece_rows == 0) {
            fkm_dev_problem v = {X, c.dtype, c.n, c.d, ld, c.n * ld, (int32_t)B, NULL, 1, c.metric};
            EXPECT(fkm_cuda_scan_piece(ctx, ws, &v, 0, 0, pass, stream) == FKM_OK, "piece: %s", fkm_last_error(ctx));
        } else {
            for (int64_t b = 0; b < B; b++)
                for (int64_t r0 = 0; r0 < c.n; r0 += piece_rows) {
                    const int64_t rows = c.n - r0 < piece_rows ? c.n - r0 : piece_rows;
                    const char *p = (const char *)X + (size_t)((b * c.n + r0) * ld) * elem_size(c.dtype);
                    fkm_dev_problem v = {p, c.dtype, rows, c.d, ld, c.n * ld, 1, NULL, 1, c.metric};
                    EXPECT(fkm_cuda_scan_piece(ctx, ws, &v, b, r0, pass, stream) == FKM_OK, "piece b %lld r0 %lld: %s",
                           (long long)b, (long long)r0, fkm_last_error(ctx));
                }
        }
        EXPECT(fkm_cuda_scan_combine(ctx, ws, pass, stream) == FKM_OK, "combine: %s", fkm_last_error(ctx));
    }
    EXPECT(fkm_cuda_scan_finish(ctx, ws, bad.data(), mv.data(), stream) == FKM_OK, "finish: %s",
           fkm_last_error(ctx));
    fkm_cuda_scan_destroy(ws);
}

static void run_case(fkm_ctx *ctx, const scan_case &c, uint64_t seed, cudaStream_t stream)
{
    const int64_t B = c.batch, ld = c.d + c.ld_extra;
    const size_t es = elem_size(c.dtype), elems = (size_t)(B * c.n * ld);
    std::vector<char> raw(elems * es);
    std::vector<double> vals((size_t)(B * c.n * c.d));
    uint64_t s = seed;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < c.n; i++)
            for (int64_t j = 0; j < ld; j++) {
                /* columns with their own spread and centre; the ld padding holds NaN (never read) */
                const size_t e = (size_t)((b * c.n + i) * ld + j);
                if (j >= c.d) {
                    plant(raw.data(), c.dtype, e, 1);
                    continue;
                }
                const double u = rng_unif(&s) - 0.5;
                const double v = c.offset + (double)(j % 7) + u * (1.0 + (double)(j % 5));
                vals[(size_t)((b * c.n + i) * c.d + j)] = store(raw.data(), c.dtype, e, v);
            }
    char what[160];
    snprintf(what, sizeof what, "B=%d n=%lld d=%lld ld=%lld dtype=%d metric=%d offset=%g", c.batch, (long long)c.n,
             (long long)c.d, (long long)ld, (int)c.dtype, (int)c.metric, c.offset);
    void *X;
    CU(cudaMalloc(&X, raw.size()));
    CU(cudaMemcpy(X, raw.data(), raw.size(), cudaMemcpyHostToDevice));

    /* finite data: mean_var against the reference; pieces and a second run bit for bit */
    std::vector<int64_t> bad, bad_p, bad_2;
    std::vector<double> mv, mv_p, mv_2;
    run_scan(ctx, c, X, 0, stream, bad, mv);
    run_scan(ctx, c, X, 2 * FKM_SCAN_ROWS, stream, bad_p, mv_p);
    run_scan(ctx, c, X, 0, stream, bad_2, mv_2);
    for (int64_t b = 0; b < B; b++) {
        const double ref = reference_mean_var(vals, b, c.n, c.d, c.metric == FKM_METRIC_COSINE);
        EXPECT(bad[(size_t)b] == -1, "%s: problem %lld: first bad row %lld on finite data", what, (long long)b,
               (long long)bad[(size_t)b]);
        EXPECT(fabs(mv[(size_t)b] - ref) <= 1e-9 * fabs(ref) + 1e-18, "%s: problem %lld: mean_var %.17g, reference %.17g",
               what, (long long)b, mv[(size_t)b], ref);
        EXPECT(memcmp(&mv[(size_t)b], &mv_p[(size_t)b], sizeof(double)) == 0 && bad_p[(size_t)b] == -1,
               "%s: problem %lld: pieces give %.17g, whole %.17g", what, (long long)b, mv_p[(size_t)b], mv[(size_t)b]);
        EXPECT(memcmp(&mv[(size_t)b], &mv_2[(size_t)b], sizeof(double)) == 0, "%s: problem %lld: second run differs",
               what, (long long)b);
    }

    /* non-finite values planted: the first such row of each problem, exactly */
    std::vector<int64_t> expect((size_t)B, -1);
    for (int p = 0; p < 2 && p < B; p++) {
        const int64_t r = c.bad_row[p];
        if (r < 0) continue;
        /* the planted row, and a later one (not the first) in another column */
        plant(raw.data(), c.dtype, (size_t)((p * c.n + r) * ld + (r % c.d)), p == 0);
        if (r + 1 < c.n) plant(raw.data(), c.dtype, (size_t)((p * c.n + c.n - 1) * ld + (c.d - 1)), p != 0);
        expect[(size_t)p] = r;
    }
    CU(cudaMemcpy(X, raw.data(), raw.size(), cudaMemcpyHostToDevice));
    run_scan(ctx, c, X, 0, stream, bad, mv);
    run_scan(ctx, c, X, FKM_SCAN_ROWS, stream, bad_p, mv_p);
    for (int64_t b = 0; b < B; b++) {
        EXPECT(bad[(size_t)b] == expect[(size_t)b], "%s: problem %lld: first bad row %lld, expected %lld", what,
               (long long)b, (long long)bad[(size_t)b], (long long)expect[(size_t)b]);
        EXPECT(bad_p[(size_t)b] == expect[(size_t)b], "%s: problem %lld (pieces): first bad row %lld, expected %lld",
               what, (long long)b, (long long)bad_p[(size_t)b], (long long)expect[(size_t)b]);
    }
    CU(cudaFree(X));
    printf("%s: ok\n", what);
}

int main(void)
{
    fkm_ctx *ctx = kernel_test_start();
    cudaStream_t stream;
    CU(cudaStreamCreate(&stream));
    /* batch, n, d, ld_extra, dtype, metric, offset, bad rows of problems 0 and 1 */
    const scan_case cases[] = {
        /* a large common offset: one-pass formulas would cancel; 5 chunks, the last partial */
        {1, 5000, 3, 0, FKM_F32, FKM_METRIC_L2, 1e4, {4097, -1}},
        /* d = 130: five column blocks, the last with 2 columns; n not on the chunk grid */
        {3, 4099, 130, 3, FKM_F16, FKM_METRIC_L2, 0.0, {0, 4098}},
        {2, 2048, 33, 0, FKM_BF16, FKM_METRIC_COSINE, 2.0, {-1, 1500}},
        {1, 3000, 300, 1, FKM_F64, FKM_METRIC_DOT, -3.0, {2999, -1}},
        /* a batch of many small problems (one chunk each, one partial) */
        {32, 1100, 128, 0, FKM_F16, FKM_METRIC_L2, 1.0, {1024, 1023}},
        /* fewer rows than row groups in the last chunk; d = 1 */
        {2, 1027, 1, 0, FKM_F32, FKM_METRIC_COSINE, 0.5, {1026, 1025}},
    };
    uint64_t seed = 7;
    for (const scan_case &c : cases) run_case(ctx, c, seed++, stream);
    CU(cudaStreamDestroy(stream));
    fkm_destroy(ctx);
    if (failures) {
        fprintf(stderr, "test_scan: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_scan: all passed\n");
    return 0;
}

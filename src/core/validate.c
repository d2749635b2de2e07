/* validate.c — argument checks shared by every public operation. */
#include "validate.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

fkm_status fkm_check_matrix(fkm_ctx *ctx, const void *X, fkm_dtype dtype, int64_t n, int64_t d,
                            int64_t ld)
{
    if (!X) return fkm_fail(ctx, FKM_E_NULL, "X is NULL");
    size_t esize = fkm_dtype_size(dtype);
    if (esize == 0) return fkm_fail(ctx, FKM_E_DTYPE, "unknown dtype %d", (int)dtype);
    if (n <= 0) return fkm_fail(ctx, FKM_E_INVALID, "n = %lld: need at least one point", (long long)n);
    if (d <= 0) return fkm_fail(ctx, FKM_E_INVALID, "d = %lld: need at least one feature", (long long)d);
    if (ld < d)
        return fkm_fail(ctx, FKM_E_INVALID, "leading dimension ld = %lld is smaller than d = %lld",
                        (long long)ld, (long long)d);
    int64_t last;
    size_t bytes;
    if (!fkm_mul_i64(n - 1, ld, &last) || last > INT64_MAX - d ||
        !fkm_bytes(last + d, 1, esize, &bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "n = %lld rows of ld = %lld elements overflow 64-bit sizes",
                        (long long)n, (long long)ld);
    return FKM_OK;
}

fkm_status fkm_check_metric(fkm_ctx *ctx, fkm_metric metric)
{
    if (metric != FKM_METRIC_L2 && metric != FKM_METRIC_COSINE && metric != FKM_METRIC_DOT)
        return fkm_fail(ctx, FKM_E_INVALID, "unknown metric %d", (int)metric);
    return FKM_OK;
}

/* The first index of a NaN or an infinity in v[0..count), or -1. Blocks of 4096 are tested
 * first with an integer OR over "all exponent bits set" (Inf and NaN exactly), which the
 * compiler vectorises (an early-exit isfinite loop does not: ~2 ms for 4M values, the
 * centroids of a B = 32 x 1000 x 128 fit), then the first block that has one is searched. */
static int64_t first_nonfinite_f32(const float *v, int64_t count)
{
    for (int64_t b0 = 0; b0 < count; b0 += 4096) {
        const int64_t b1 = count - b0 < 4096 ? count : b0 + 4096;
        uint32_t any = 0;
        for (int64_t i = b0; i < b1; i++) {
            uint32_t u;
            memcpy(&u, v + i, sizeof u);
            any |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (!any) continue;
        for (int64_t i = b0; i < b1; i++)
            if (!isfinite(v[i])) return i;
    }
    return -1;
}

fkm_status fkm_check_centroids(fkm_ctx *ctx, const float *C, int64_t k, int64_t d, const char *what)
{
    if (!C) return fkm_fail(ctx, FKM_E_NULL, "%s is NULL", what);
    if (k <= 0) return fkm_fail(ctx, FKM_E_INVALID, "k = %lld: need at least one cluster", (long long)k);
    int64_t kd;
    size_t bytes;
    if (!fkm_mul_i64(k, d, &kd) || !fkm_bytes(kd, 1, sizeof(float), &bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "k = %lld times d = %lld overflows", (long long)k,
                        (long long)d);
    int64_t bad = -1;
    if (ctx->ops->first_nonfinite && ctx->ops->is_device && ctx->ops->is_device(C)) {
        /* device memory (fkm_init_on_device): checked there, the same first index */
        fkm_status s = ctx->ops->first_nonfinite(ctx, C, kd, &bad);
        if (s != FKM_OK) return s;
    } else {
        bad = first_nonfinite_f32(C, kd);
    }
    if (bad >= 0)
        return fkm_fail(ctx, FKM_E_NONFINITE, "%s[%lld][%lld] is not finite", what, (long long)(bad / d),
                        (long long)(bad % d));
    return FKM_OK;
}

fkm_status fkm_check_weights(fkm_ctx *ctx, const float *w, int64_t n)
{
    if (!w) return FKM_OK;
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(w[i])) return fkm_fail(ctx, FKM_E_NONFINITE, "weight[%lld] is not finite", (long long)i);
        if (w[i] < 0.0f)
            return fkm_fail(ctx, FKM_E_INVALID, "weight[%lld] = %g is negative", (long long)i, (double)w[i]);
        total += w[i];
    }
    if (!(total > 0.0)) return fkm_fail(ctx, FKM_E_INVALID, "the weights sum to zero");
    return FKM_OK;
}

int fkm_resolve_threads(int32_t requested)
{
    if (requested > 0) return requested;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

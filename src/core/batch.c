/* batch.c — fkm_fit_batch: B independent problems of one shape. A backend that runs batches
 * (the GPU's) gets all problems in one Lloyd loop (lloyd.c), one set of launches per step;
 * otherwise the problems run one after another through fkm_fit, each with seed
 * params.seed + b — the results a batched run must reproduce, bit for bit. */
#include "internal.h"
#include "lloyd.h"
#include "validate.h"

#include <stdint.h>
#include <stdlib.h>

/* The layout checks both batched calls make: X holds `batch` problems of n x d (leading
 * dimension ld) batch_stride elements apart, all addressable; *kd = k * d. */
static fkm_status check_layout(fkm_ctx *ctx, const void *X, fkm_dtype dtype, int64_t batch, int64_t n, int64_t d,
                               int64_t ld, int64_t batch_stride, int64_t k, int64_t *kd)
{
    if (batch < 1) return fkm_fail(ctx, FKM_E_INVALID, "batch = %lld: need at least one problem", (long long)batch);
    fkm_status s;
    if ((s = fkm_check_matrix(ctx, X, dtype, n, d, ld)) != FKM_OK) return s;
    int64_t span, last;
    if (!fkm_mul_i64(n, ld, &span) || batch_stride < span)
        return fkm_fail(ctx, FKM_E_INVALID, "batch_stride = %lld is smaller than n * ld = %lld",
                        (long long)batch_stride, (long long)span);
    if (!fkm_mul_i64(batch - 1, batch_stride, &last) || last > INT64_MAX - span ||
        !fkm_bytes(last + span, 1, fkm_dtype_size(dtype), &(size_t){0}) || !fkm_mul_i64(k, d, kd))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "batch = %lld problems of %lld x %lld overflow 64-bit sizes",
                        (long long)batch, (long long)n, (long long)ld);
    return FKM_OK;
}

fkm_status fkm_fit_batch(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype,
                         int64_t batch, int64_t n, int64_t d, int64_t ld, int64_t batch_stride,
                         const float *weights, float *centroids_out, int32_t *labels_out,
                         fkm_result *results)
{
    if (!ctx) return FKM_E_NULL;
    fkm_clear_error(ctx);
    if (!params) return fkm_fail(ctx, FKM_E_NULL, "params is NULL");
    if (!centroids_out) return fkm_fail(ctx, FKM_E_NULL, "centroids_out is NULL");
    if (params->n_init != 1)
        return fkm_fail(ctx, FKM_E_INVALID, "n_init = %d: fkm_fit_batch runs each problem once (n_init = 1)",
                        (int)params->n_init);
    fkm_status s;
    int64_t kd;
    if ((s = check_layout(ctx, X, dtype, batch, n, d, ld, batch_stride, params->k, &kd)) != FKM_OK) return s;
    const size_t es = fkm_dtype_size(dtype);
    fkm_params p = *params;
    if (ctx->ops->max_batch >= batch && batch > 1) {
        if ((s = fkm_check_metric(ctx, params->metric)) != FKM_OK) return s;
        if (params->k <= 0 || params->k > n) /* the loop reports it; avoid sizing copies by it */
            return fkm_lloyd_run(ctx, params, X, dtype, batch, n, d, ld, batch_stride, NULL, centroids_out,
                                 labels_out, results);
        const void *w_view = NULL, *c_view = NULL;
        void *w_owned = NULL, *c_owned = NULL;
        if (weights && (s = fkm_host_view(ctx, weights, (size_t)(batch * n) * sizeof(float), &w_view, &w_owned)) != FKM_OK)
            return s;
        if (p.init == FKM_INIT_USER && p.init_centroids && !fkm_init_on_device(ctx, &p) &&
            (s = fkm_host_view(ctx, p.init_centroids, (size_t)(batch * kd) * sizeof(float), &c_view, &c_owned)) !=
                FKM_OK) {
            free(w_owned);
            return s;
        }
        if (c_view) p.init_centroids = c_view;
        s = fkm_lloyd_run(ctx, &p, X, dtype, batch, n, d, ld, batch_stride, w_view, centroids_out, labels_out,
                          results);
        free(w_owned);
        free(c_owned);
        return s;
    }
    /* the history of the last problem is the one left in the context */
    for (int64_t b = 0; b < batch; b++) {
        p.seed = params->seed + (uint64_t)b;
        if (params->init == FKM_INIT_USER && params->init_centroids)
            p.init_centroids = params->init_centroids + b * kd;
        s = fkm_fit(ctx, &p, (const char *)X + (size_t)(b * batch_stride) * es, dtype, n, d, ld,
                    weights ? weights + b * n : NULL, centroids_out + b * kd, labels_out ? labels_out + b * n : NULL,
                    results ? results + b : NULL);
        if (s != FKM_OK) return s;
    }
    return FKM_OK;
}

fkm_status fkm_predict_batch(fkm_ctx *ctx, fkm_metric metric, const void *X, fkm_dtype dtype, int64_t batch,
                             int64_t n, int64_t d, int64_t ld, int64_t batch_stride, const float *centroids,
                             int64_t k, int32_t *labels_out, double *inertia_out)
{
    if (!ctx) return FKM_E_NULL;
    fkm_clear_error(ctx);
    if (!labels_out) return fkm_fail(ctx, FKM_E_NULL, "labels_out is NULL");
    if (!centroids) return fkm_fail(ctx, FKM_E_NULL, "centroids is NULL");
    fkm_status s;
    int64_t kd;
    if ((s = check_layout(ctx, X, dtype, batch, n, d, ld, batch_stride, k, &kd)) != FKM_OK) return s;
    const size_t es = fkm_dtype_size(dtype);
    for (int64_t b = 0; b < batch; b++) {
        s = fkm_predict(ctx, metric, (const char *)X + (size_t)(b * batch_stride) * es, dtype, n, d, ld,
                        centroids + b * kd, k, labels_out + b * n, inertia_out ? inertia_out + b : NULL);
        if (s != FKM_OK) return s;
    }
    return FKM_OK;
}

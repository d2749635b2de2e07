/* ops.c — predict, transform and score: one assignment (or distance) pass against given
 * centroids, through the same backend table as fit. */
#include "init.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>

/* Validates the shared arguments, copies the centroids (normalised for cosine) and opens the
 * backend. On success the caller owns *C_copy and *state. */
static fkm_status prepare(fkm_ctx *ctx, fkm_metric metric, fkm_precision precision, const void *X,
                          fkm_dtype dtype, int64_t n, int64_t d, int64_t ld, const float *weights,
                          const float *C, int64_t k, fkm_problem *pb, float **C_copy, void **state)
{
    fkm_status s;
    if (precision != FKM_PRECISION_FAST && precision != FKM_PRECISION_F32 && precision != FKM_PRECISION_EXACT)
        return fkm_fail(ctx, FKM_E_INVALID, "unknown precision %d", (int)precision);
    if (precision == FKM_PRECISION_EXACT && !ctx->ops->exact)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact is not available on the %s backend yet",
                        ctx->ops->name);
    if ((s = fkm_check_matrix(ctx, X, dtype, n, d, ld)) != FKM_OK) return s;
    if ((s = fkm_check_metric(ctx, metric)) != FKM_OK) return s;
    if (!C) return fkm_fail(ctx, FKM_E_NULL, "centroids is NULL");
    if (k <= 0) return fkm_fail(ctx, FKM_E_INVALID, "k = %lld: need at least one cluster", (long long)k);
    if (k > INT32_MAX) return fkm_fail(ctx, FKM_E_INVALID, "k = %lld does not fit int32 labels", (long long)k);
    int64_t kd;
    if (!fkm_mul_i64(k, d, &kd) || !fkm_bytes(kd, 1, sizeof(float), &(size_t){0}))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "k = %lld times d = %lld overflows", (long long)k, (long long)d);
    /* centroids and weights may be device memory on a GPU backend: validate host copies */
    const void *c_view, *w_view;
    void *c_owned, *w_owned;
    if ((s = fkm_host_view(ctx, C, (size_t)kd * sizeof(float), &c_view, &c_owned)) != FKM_OK) return s;
    if ((s = fkm_host_view(ctx, weights, (size_t)n * sizeof(float), &w_view, &w_owned)) != FKM_OK) {
        free(c_owned);
        return s;
    }
    if ((s = fkm_check_centroids(ctx, c_view, k, d, "centroids")) == FKM_OK)
        s = fkm_check_weights(ctx, w_view, n);
    /* a host copy of the weights is only needed for validation: backends upload pb->weights;
     * the centroids' copy (normalised below for cosine) is the staging copy when there is one */
    *C_copy = NULL;
    if (s == FKM_OK && c_owned) {
        *C_copy = c_owned;
        c_owned = NULL;
    } else if (s == FKM_OK) {
        if ((*C_copy = malloc((size_t)kd * sizeof **C_copy)))
            memcpy(*C_copy, c_view, (size_t)kd * sizeof **C_copy);
        else
            s = fkm_fail(ctx, FKM_E_NOMEM, "out of memory for a copy of the centroids");
    }
    free(c_owned);
    free(w_owned);
    if (s != FKM_OK) return s;
    *pb = (fkm_problem){X, dtype, n, d, ld, weights, k, metric, fkm_resolve_threads(ctx->n_threads),
                        precision, 1, n * ld, fkm_gpu_budget(ctx, NULL)};
    if (metric == FKM_METRIC_COSINE) fkm_normalise_rows(*C_copy, k, d);
    if ((s = ctx->ops->open(ctx, pb, state)) != FKM_OK) {
        free(*C_copy);
        return s;
    }
    int64_t bad;
    double mean_var;
    if ((s = ctx->ops->scan(ctx, *state, &bad, &mean_var)) == FKM_OK && bad >= 0)
        s = fkm_fail(ctx, FKM_E_NONFINITE, "X row %lld contains NaN or Inf", (long long)bad);
    if (s != FKM_OK) {
        ctx->ops->close(*state);
        free(*C_copy);
    }
    return s;
}

/* Assignment plus objective: labels (optional) and weighted inertia (optional). */
static fkm_status assign_and_score(fkm_ctx *ctx, fkm_metric metric, fkm_precision precision, const void *X,
                                   fkm_dtype dtype, int64_t n, int64_t d, int64_t ld, const float *weights,
                                   const float *C, int64_t k, int32_t *labels, double *inertia)
{
    if (!ctx) return FKM_E_NULL;
    fkm_clear_error(ctx);
    fkm_problem pb;
    float *Cn;
    void *st;
    fkm_status s = prepare(ctx, metric, precision, X, dtype, n, d, ld, weights, C, k, &pb, &Cn, &st);
    if (s != FKM_OK) return s;
    int64_t changed;
    double objective = 0.0;
    fkm_partials part = {NULL, NULL, &objective, 0};
    s = ctx->ops->assign(ctx, st, Cn, &changed);
    if (s == FKM_OK && inertia) s = ctx->ops->reduce(ctx, st, Cn, &part);
    if (s == FKM_OK && labels) s = ctx->ops->get_labels(ctx, st, labels);
    if (s == FKM_OK && inertia) *inertia = objective;
    ctx->ops->close(st);
    free(Cn);
    return s;
}

fkm_status fkm_predict(fkm_ctx *ctx, fkm_metric metric, const void *X, fkm_dtype dtype, int64_t n,
                       int64_t d, int64_t ld, const float *centroids, int64_t k, int32_t *labels_out,
                       double *inertia_out)
{
    return fkm_predict_precision(ctx, metric, FKM_PRECISION_FAST, X, dtype, n, d, ld, centroids, k,
                                 labels_out, inertia_out);
}

fkm_status fkm_predict_precision(fkm_ctx *ctx, fkm_metric metric, fkm_precision precision, const void *X,
                                 fkm_dtype dtype, int64_t n, int64_t d, int64_t ld, const float *centroids,
                                 int64_t k, int32_t *labels_out, double *inertia_out)
{
    if (ctx && !labels_out) return fkm_fail(ctx, FKM_E_NULL, "labels_out is NULL");
    return assign_and_score(ctx, metric, precision, X, dtype, n, d, ld, NULL, centroids, k, labels_out,
                            inertia_out);
}

fkm_status fkm_exact_stats(const fkm_ctx *ctx, int64_t *points, int64_t *rechecked)
{
    if (!ctx) return FKM_E_NULL;
    if (points) *points = ctx->exact_points;
    if (rechecked) *rechecked = ctx->exact_rechecked;
    return FKM_OK;
}

fkm_status fkm_exact_stats_stages(const fkm_ctx *ctx, int64_t *pair, int64_t *filter, int64_t *host)
{
    if (!ctx) return FKM_E_NULL;
    if (pair) *pair = ctx->exact_pair;
    if (filter) *filter = ctx->exact_filter;
    if (host) *host = ctx->exact_host;
    return FKM_OK;
}

fkm_status fkm_score(fkm_ctx *ctx, fkm_metric metric, const void *X, fkm_dtype dtype, int64_t n,
                     int64_t d, int64_t ld, const float *weights, const float *centroids, int64_t k,
                     double *inertia_out)
{
    if (ctx && !inertia_out) return fkm_fail(ctx, FKM_E_NULL, "inertia_out is NULL");
    return assign_and_score(ctx, metric, FKM_PRECISION_FAST, X, dtype, n, d, ld, weights, centroids, k, NULL,
                            inertia_out);
}

fkm_status fkm_transform(fkm_ctx *ctx, fkm_metric metric, const void *X, fkm_dtype dtype, int64_t n,
                         int64_t d, int64_t ld, const float *centroids, int64_t k, float *dist_out)
{
    if (!ctx) return FKM_E_NULL;
    fkm_clear_error(ctx);
    if (!dist_out) return fkm_fail(ctx, FKM_E_NULL, "dist_out is NULL");
    int64_t nk;
    size_t bytes;
    if (!fkm_mul_i64(n, k, &nk) || !fkm_bytes(nk, 1, sizeof(float), &bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "n = %lld times k = %lld distances overflow", (long long)n,
                        (long long)k);
    fkm_problem pb;
    float *Cn;
    void *st;
    fkm_status s = prepare(ctx, metric, FKM_PRECISION_FAST, X, dtype, n, d, ld, NULL, centroids, k, &pb, &Cn, &st);
    if (s != FKM_OK) return s;
    s = ctx->ops->transform(ctx, st, Cn, dist_out);
    ctx->ops->close(st);
    free(Cn);
    return s;
}

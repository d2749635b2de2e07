/* lloyd.c — the one Lloyd loop every backend runs under (see flashkm.h "Semantics"). The
 * backend assigns and sums; this file turns sums into centroids, applies the empty-cluster
 * policy, measures shifts, decides when to stop and reports progress. */
#define _POSIX_C_SOURCE 200809L
#include "init.h"
#include "validate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct lloyd_buffers {
    float *C;        /* current centroids, k x d */
    float *C_new;    /* next centroids */
    double *sums;    /* k x d */
    double *weight;  /* k */
    int64_t *far;    /* k: farthest points for relocation */
    float *row;      /* d */
} lloyd_buffers;

static void free_buffers(lloyd_buffers *b)
{
    free(b->C), free(b->C_new), free(b->sums), free(b->weight), free(b->far), free(b->row);
}

static fkm_status alloc_buffers(fkm_ctx *ctx, int64_t k, int64_t d, lloyd_buffers *b)
{
    memset(b, 0, sizeof *b);
    const size_t kd = (size_t)(k * d);
    b->C = malloc(kd * sizeof *b->C);
    b->C_new = malloc(kd * sizeof *b->C_new);
    b->sums = malloc(kd * sizeof *b->sums);
    b->weight = malloc((size_t)k * sizeof *b->weight);
    b->far = malloc((size_t)k * sizeof *b->far);
    b->row = malloc((size_t)d * sizeof *b->row);
    if (!b->C || !b->C_new || !b->sums || !b->weight || !b->far || !b->row) {
        free_buffers(b);
        return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for centroid buffers (k = %lld, d = %lld)",
                        (long long)k, (long long)d);
    }
    return FKM_OK;
}

/* Moves the e-th empty cluster to the e-th farthest point, taking that point out of its old
 * cluster's sums (as scikit-learn does). Works on sums, before the division. */
static fkm_status relocate_empty(fkm_ctx *ctx, void *st, const fkm_problem *pb, lloyd_buffers *b,
                                 int64_t n_empty)
{
    const int64_t k = pb->k, d = pb->d;
    fkm_status s = ctx->ops->farthest(ctx, st, n_empty, b->far);
    for (int64_t c = 0, e = 0; c < k && e < n_empty && s == FKM_OK; c++) {
        if (b->weight[c] > 0.0) continue;
        const int64_t i = b->far[e++];
        int32_t donor;
        if ((s = ctx->ops->fetch_row(ctx, st, i, b->row)) != FKM_OK) break;
        if ((s = ctx->ops->get_label(ctx, st, i, &donor)) != FKM_OK) break;
        const double w = pb->weights ? pb->weights[i] : 1.0;
        if (w <= 0.0) continue; /* a zero-weight point cannot hold a cluster: stays empty */
        for (int64_t j = 0; j < d; j++) {
            b->sums[(int64_t)donor * d + j] -= w * b->row[j];
            b->sums[c * d + j] = w * b->row[j];
        }
        b->weight[donor] -= w;
        b->weight[c] = w;
    }
    return s;
}

/* C_new = sums / weight (normalised for cosine); clusters without weight keep C. Returns the
 * largest squared shift. */
static double divide_and_shift(const fkm_problem *pb, lloyd_buffers *b)
{
    const int64_t k = pb->k, d = pb->d;
    double max_shift = 0.0;
    for (int64_t c = 0; c < k; c++) {
        const float *old = b->C + c * d;
        float *dst = b->C_new + c * d;
        const double *sum = b->sums + c * d;
        double scale = b->weight[c] > 0.0 ? 1.0 / b->weight[c] : 0.0;
        if (scale > 0.0 && pb->metric == FKM_METRIC_COSINE) {
            double ss = 0.0;
            for (int64_t j = 0; j < d; j++) ss += sum[j] * sum[j];
            scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
        }
        double shift = 0.0;
        for (int64_t j = 0; j < d; j++) {
            dst[j] = scale > 0.0 ? (float)(sum[j] * scale) : old[j];
            const double t = (double)dst[j] - old[j];
            shift += t * t;
        }
        if (shift > max_shift) max_shift = shift;
    }
    return max_shift;
}

static fkm_status check_fit_params(fkm_ctx *ctx, const fkm_params *p, int64_t n, int64_t d)
{
    if (p->k <= 0) return fkm_fail(ctx, FKM_E_INVALID, "k = %lld: need at least one cluster", (long long)p->k);
    if (p->k > n)
        return fkm_fail(ctx, FKM_E_INVALID, "k = %lld is larger than the number of points n = %lld",
                        (long long)p->k, (long long)n);
    if (p->k > INT32_MAX)
        return fkm_fail(ctx, FKM_E_INVALID, "k = %lld does not fit int32 labels", (long long)p->k);
    if (p->max_iter < 1) return fkm_fail(ctx, FKM_E_INVALID, "max_iter = %d: must be >= 1", (int)p->max_iter);
    if (!(p->tol >= 0.0) || !isfinite(p->tol))
        return fkm_fail(ctx, FKM_E_INVALID, "tol = %g: must be finite and >= 0", p->tol);
    if (p->n_threads < 0) return fkm_fail(ctx, FKM_E_INVALID, "n_threads = %d: must be >= 0", (int)p->n_threads);
    if (p->empty != FKM_EMPTY_KEEP && p->empty != FKM_EMPTY_RELOCATE)
        return fkm_fail(ctx, FKM_E_INVALID, "unknown empty-cluster policy %d", (int)p->empty);
    if (p->precision == FKM_PRECISION_EXACT)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact is not available in this version");
    if (p->precision != FKM_PRECISION_FAST && p->precision != FKM_PRECISION_F32)
        return fkm_fail(ctx, FKM_E_INVALID, "unknown precision %d", (int)p->precision);
    if (p->init == FKM_INIT_USER) return fkm_check_centroids(ctx, p->init_centroids, p->k, d, "init_centroids");
    if (p->init != FKM_INIT_RANDOM) return fkm_fail(ctx, FKM_E_INVALID, "unknown init %d", (int)p->init);
    return FKM_OK;
}

/* The loop proper, once inputs are valid and the backend is open. */
static fkm_status run_lloyd(fkm_ctx *ctx, const fkm_params *p, const fkm_problem *pb, void *st,
                            lloyd_buffers *b, fkm_result *res)
{
    const fkm_backend_vtbl *ops = ctx->ops;
    int64_t bad;
    double mean_var;
    fkm_status s = ops->scan(ctx, st, &bad, &mean_var);
    if (s != FKM_OK) return s;
    if (bad >= 0) return fkm_fail(ctx, FKM_E_NONFINITE, "X row %lld contains NaN or Inf", (long long)bad);
    if ((s = fkm_init_centroids(ctx, p, pb, st, b->C)) != FKM_OK) return s;

    const double tol_abs = p->tol * mean_var;
    /* With a finalize op the centroids stay on the backend between iterations (host copy
     * b->C stale) unless an iteration needs the host path (empty clusters to relocate). */
    const int on_backend = ops->finalize != NULL;
    int host_stale = 0;
    int final_assign_needed = 1;
    res->converged = 0;
    res->n_iter = 0;
    for (int32_t it = 1; it <= p->max_iter; it++) {
        const double t0 = now_seconds();
        int64_t changed;
        if ((s = ops->assign(ctx, st, host_stale ? NULL : b->C, &changed)) != FKM_OK) return s;
        const double t1 = now_seconds();
        fkm_partials part = {on_backend ? NULL : b->sums, b->weight, 0.0, on_backend};
        if ((s = ops->reduce(ctx, st, host_stale ? NULL : b->C, &part)) != FKM_OK) return s;
        int64_t n_empty = 0;
        for (int64_t c = 0; c < pb->k; c++) n_empty += !(b->weight[c] > 0.0);
        const int relocate = n_empty > 0 && p->empty == FKM_EMPTY_RELOCATE;
        double shift;
        if (on_backend && !relocate) {
            if ((s = ops->finalize(ctx, st, &shift)) != FKM_OK) return s;
            host_stale = 1;
        } else {
            if (on_backend && (s = ops->get_sums(ctx, st, b->sums)) != FKM_OK) return s;
            if (host_stale && (s = ops->get_centroids(ctx, st, b->C)) != FKM_OK) return s;
            host_stale = 0;
            if (relocate && (s = relocate_empty(ctx, st, pb, b, n_empty)) != FKM_OK) return s;
            shift = divide_and_shift(pb, b);
            float *t = b->C;
            b->C = b->C_new;
            b->C_new = t;
        }
        const double t2 = now_seconds();

        ctx->inertia_history[it - 1] = part.objective;
        res->n_iter = it;
        res->inertia = part.objective;
        if (p->progress) {
            fkm_iter_info info = {it, part.objective, shift, mean_var > 0.0 ? shift / mean_var : shift,
                                  changed, n_empty, t2 - t0, t1 - t0, t2 - t1};
            if (p->progress(&info, p->progress_user))
                return fkm_fail(ctx, FKM_E_CANCELLED, "cancelled by the progress callback after iteration %d", (int)it);
        }
        /* an update that moved nothing leaves labels and inertia valid for C */
        final_assign_needed = shift != 0.0;
        if ((changed == 0 && it > 1) || shift <= tol_abs) {
            res->converged = 1;
            break;
        }
    }
    if (final_assign_needed) {
        int64_t changed;
        fkm_partials fin = {NULL, NULL, 0.0, 0};
        if ((s = ops->assign(ctx, st, host_stale ? NULL : b->C, &changed)) != FKM_OK) return s;
        if ((s = ops->reduce(ctx, st, host_stale ? NULL : b->C, &fin)) != FKM_OK) return s;
        res->inertia = fin.objective;
    }
    if (host_stale && (s = ops->get_centroids(ctx, st, b->C)) != FKM_OK) return s;
    return FKM_OK;
}

/* fkm_fit once weights and initial centroids are host-readable. */
static fkm_status fit_host_params(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype,
                                  int64_t n, int64_t d, int64_t ld, const float *weights, float *centroids_out,
                                  int32_t *labels_out, fkm_result *result)
{
    fkm_status s;
    if ((s = check_fit_params(ctx, params, n, d)) != FKM_OK) return s;
    if ((s = fkm_check_weights(ctx, weights, n)) != FKM_OK) return s;

    if (ctx->inertia_history_cap < params->max_iter) {
        double *h = realloc(ctx->inertia_history, (size_t)params->max_iter * sizeof *h);
        if (!h) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the inertia history");
        ctx->inertia_history = h;
        ctx->inertia_history_cap = params->max_iter;
    }
    fkm_problem pb = {X, dtype, n, d, ld, weights, params->k, params->metric,
                      fkm_resolve_threads(params->n_threads > 0 ? params->n_threads : ctx->n_threads),
                      params->precision};
    lloyd_buffers b;
    if ((s = alloc_buffers(ctx, pb.k, d, &b)) != FKM_OK) return s;
    void *st = NULL;
    if ((s = ctx->ops->open(ctx, &pb, &st)) != FKM_OK) {
        free_buffers(&b);
        return s;
    }
    fkm_result res = {0.0, 0, 0, ctx->inertia_history};
    s = run_lloyd(ctx, params, &pb, st, &b, &res);
    if (s == FKM_OK && labels_out) s = ctx->ops->get_labels(ctx, st, labels_out);
    if (s == FKM_OK) s = fkm_copy_out(ctx, centroids_out, b.C, (size_t)(pb.k * d) * sizeof *centroids_out);
    if (s == FKM_OK && result) *result = res;
    ctx->ops->close(st);
    free_buffers(&b);
    return s;
}

fkm_status fkm_fit(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype,
                   int64_t n, int64_t d, int64_t ld, const float *weights, float *centroids_out,
                   int32_t *labels_out, fkm_result *result)
{
    if (!ctx) return FKM_E_NULL;
    fkm_clear_error(ctx);
    if (!params) return fkm_fail(ctx, FKM_E_NULL, "params is NULL");
    if (!centroids_out) return fkm_fail(ctx, FKM_E_NULL, "centroids_out is NULL");
    fkm_status s;
    if ((s = fkm_check_matrix(ctx, X, dtype, n, d, ld)) != FKM_OK) return s;
    if ((s = fkm_check_metric(ctx, params->metric)) != FKM_OK) return s;
    /* weights and user centroids may be device memory on a GPU backend: read host copies */
    fkm_params p = *params;
    const void *w_view = NULL, *c_view = NULL;
    void *w_owned = NULL, *c_owned = NULL;
    if (weights && (s = fkm_host_view(ctx, weights, (size_t)n * sizeof(float), &w_view, &w_owned)) != FKM_OK)
        return s;
    if (p.init == FKM_INIT_USER && p.init_centroids && p.k > 0 && p.k <= n &&
        (s = fkm_host_view(ctx, p.init_centroids, (size_t)(p.k * d) * sizeof(float), &c_view, &c_owned)) != FKM_OK) {
        free(w_owned);
        return s;
    }
    if (c_view) p.init_centroids = c_view;
    s = fit_host_params(ctx, &p, X, dtype, n, d, ld, w_view, centroids_out, labels_out, result);
    free(w_owned);
    free(c_owned);
    return s;
}

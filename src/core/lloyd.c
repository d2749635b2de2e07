/* lloyd.c — the one Lloyd loop every backend runs under (see flashkm.h "Semantics"). The
 * backend assigns and sums; this file turns sums into centroids, applies the empty-cluster
 * policy, measures shifts, decides when to stop and reports progress. It runs a batch of
 * independent problems at once when the backend can (fkm_fit_batch on the GPU); each problem
 * follows exactly the iterations fkm_fit would run for it alone: once it stops, its centroids
 * freeze, and later assignments of the batch reproduce its final labels. */
#define _POSIX_C_SOURCE 200809L
#include "init.h"
#include "lloyd.h"
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

/* Host-side state of a batch of B problems: centroids, sums and per-problem bookkeeping. */
typedef struct lloyd_buffers {
    float *C;        /* current centroids, B x k x d */
    float *C_new;    /* next centroids */
    double *sums;    /* B x k x d */
    double *weight;  /* B x k */
    double *objective, *shift, *mean_var;   /* B each */
    int64_t *changed, *bad, *n_empty;       /* B each */
    unsigned char *active, *final_needed;   /* B each */
    int64_t *far;    /* k: farthest points for relocation */
    float *row;      /* d */
} lloyd_buffers;

static void free_buffers(lloyd_buffers *b)
{
    free(b->C), free(b->C_new), free(b->sums), free(b->weight), free(b->objective), free(b->shift);
    free(b->mean_var), free(b->changed), free(b->bad), free(b->n_empty), free(b->active), free(b->final_needed);
    free(b->far), free(b->row);
}

static fkm_status alloc_buffers(fkm_ctx *ctx, int64_t B, int64_t k, int64_t d, lloyd_buffers *b)
{
    memset(b, 0, sizeof *b);
    size_t kd;
    if (!fkm_bytes(B * k, d, 1, &kd))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "batch x k x d = %lld x %lld x %lld overflows", (long long)B,
                        (long long)k, (long long)d);
    b->C = malloc(kd * sizeof *b->C);
    b->C_new = malloc(kd * sizeof *b->C_new);
    b->sums = malloc(kd * sizeof *b->sums);
    b->weight = malloc((size_t)(B * k) * sizeof *b->weight);
    b->objective = malloc((size_t)B * sizeof *b->objective);
    b->shift = malloc((size_t)B * sizeof *b->shift);
    b->mean_var = malloc((size_t)B * sizeof *b->mean_var);
    b->changed = malloc((size_t)B * sizeof *b->changed);
    b->bad = malloc((size_t)B * sizeof *b->bad);
    b->n_empty = malloc((size_t)B * sizeof *b->n_empty);
    b->active = malloc((size_t)B);
    b->final_needed = malloc((size_t)B);
    b->far = malloc((size_t)k * sizeof *b->far);
    b->row = malloc((size_t)d * sizeof *b->row);
    if (!b->C || !b->C_new || !b->sums || !b->weight || !b->objective || !b->shift || !b->mean_var ||
        !b->changed || !b->bad || !b->n_empty || !b->active || !b->final_needed || !b->far || !b->row) {
        free_buffers(b);
        return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for centroid buffers (batch = %lld, k = %lld, d = %lld)",
                        (long long)B, (long long)k, (long long)d);
    }
    return FKM_OK;
}

/* Moves the e-th empty cluster of problem pr to its e-th farthest point, taking that point
 * out of its old cluster's sums (as scikit-learn does). Works on sums, before the division. */
static fkm_status relocate_empty(fkm_ctx *ctx, void *st, const fkm_problem *pb, lloyd_buffers *b, int64_t pr,
                                 int64_t n_empty)
{
    const int64_t k = pb->k, d = pb->d;
    double *sums = b->sums + pr * k * d, *weight = b->weight + pr * k;
    fkm_status s = ctx->ops->farthest(ctx, st, pr, n_empty, b->far);
    for (int64_t c = 0, e = 0; c < k && e < n_empty && s == FKM_OK; c++) {
        if (weight[c] > 0.0) continue;
        const int64_t i = b->far[e++];
        int32_t donor;
        if ((s = ctx->ops->fetch_row(ctx, st, pr * pb->n + i, b->row)) != FKM_OK) break;
        if ((s = ctx->ops->get_label(ctx, st, pr * pb->n + i, &donor)) != FKM_OK) break;
        const double w = pb->weights ? pb->weights[pr * pb->n + i] : 1.0;
        if (w <= 0.0) continue; /* a zero-weight point cannot hold a cluster: stays empty */
        for (int64_t j = 0; j < d; j++) {
            sums[(int64_t)donor * d + j] -= w * b->row[j];
            sums[c * d + j] = w * b->row[j];
        }
        weight[donor] -= w;
        weight[c] = w;
    }
    return s;
}

/* Problem pr: C_new = sums / weight (normalised for cosine); clusters without weight keep C.
 * Returns the largest squared shift. */
static double divide_and_shift(const fkm_problem *pb, lloyd_buffers *b, int64_t pr)
{
    const int64_t k = pb->k, d = pb->d;
    double max_shift = 0.0;
    for (int64_t c = pr * k; c < (pr + 1) * k; c++) {
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

static fkm_status check_fit_params(fkm_ctx *ctx, const fkm_params *p, int64_t batch, int64_t n, int64_t d)
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
    if (p->precision == FKM_PRECISION_EXACT && !ctx->ops->exact)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact is not available on the %s backend yet",
                        ctx->ops->name);
    if (p->precision != FKM_PRECISION_FAST && p->precision != FKM_PRECISION_F32 &&
        p->precision != FKM_PRECISION_EXACT)
        return fkm_fail(ctx, FKM_E_INVALID, "unknown precision %d", (int)p->precision);
    if (p->n_init < 1) return fkm_fail(ctx, FKM_E_INVALID, "n_init = %d: must be >= 1", (int)p->n_init);
    if (p->init == FKM_INIT_USER) {
        if (p->n_init > 1)
            return fkm_fail(ctx, FKM_E_INVALID, "n_init = %d with user centroids: every run would be the same",
                            (int)p->n_init);
        return fkm_check_centroids(ctx, p->init_centroids, batch * p->k, d, "init_centroids");
    }
    if (p->init != FKM_INIT_RANDOM && p->init != FKM_INIT_KMEANS_PP)
        return fkm_fail(ctx, FKM_E_INVALID, "unknown init %d", (int)p->init);
    return FKM_OK;
}

/* The loop proper, once inputs are valid and the backend is open. res has pb->batch entries;
 * history holds max_iter values per problem. The final centroids go to centroids_out (host or
 * device memory). */
static fkm_status run_lloyd(fkm_ctx *ctx, const fkm_params *p, const fkm_problem *pb, void *st,
                            lloyd_buffers *b, double *history, fkm_result *res, float *centroids_out)
{
    const fkm_backend_vtbl *ops = ctx->ops;
    const int64_t B = pb->batch, k = pb->k, d = pb->d;
    /* user centroids go to the backend's first assign as they are, from device memory
     * (fkm_init_on_device) or from host memory (validated in check_fit_params) alike: the host
     * copy b->C is filled only if a host-path iteration needs it (get_centroids below). (A
     * copy per problem into b->C, then the backend's copy from it, cost ~6 ms of page faults
     * and copies for B = 32 x 1000 x 128: more than the fit's iterations.) */
    const int init_dev = fkm_init_direct(ctx, p);
    fkm_status s = ops->scan(ctx, st, b->bad, b->mean_var);
    if (s != FKM_OK) return s;
    for (int64_t pr = 0; pr < B; pr++) {
        if (b->bad[pr] >= 0) {
            if (B == 1) return fkm_fail(ctx, FKM_E_NONFINITE, "X row %lld contains NaN or Inf", (long long)b->bad[pr]);
            return fkm_fail(ctx, FKM_E_NONFINITE, "X[%lld] row %lld contains NaN or Inf", (long long)pr,
                            (long long)b->bad[pr]);
        }
        if (!init_dev && (s = fkm_init_centroids(ctx, p, pb, st, pr, b->C + pr * k * d)) != FKM_OK) return s;
        b->active[pr] = 1;
        b->final_needed[pr] = 1;
        res[pr].converged = 0;
        res[pr].n_iter = 0;
        res[pr].inertia = 0.0;
        res[pr].inertia_per_iter = history + pr * p->max_iter;
    }

    /* With a finalize op the centroids stay on the backend between iterations (host copy
     * b->C stale) unless an iteration needs the host path (empty clusters to relocate). */
    const int on_backend = ops->finalize != NULL;
    int host_stale = init_dev; /* direct init: the backend has the centroids once assigned */
    int64_t n_active = B;
    for (int32_t it = 1; it <= p->max_iter && n_active > 0; it++) {
        const double t0 = now_seconds();
        const float *cent = init_dev && it == 1 ? p->init_centroids : host_stale ? NULL : b->C;
        if ((s = ops->assign(ctx, st, cent, b->changed)) != FKM_OK) return s;
        const double t1 = now_seconds();
        fkm_partials part = {on_backend ? NULL : b->sums, b->weight, b->objective, on_backend};
        if ((s = ops->reduce(ctx, st, host_stale ? NULL : b->C, &part)) != FKM_OK) return s;
        int relocate_any = 0;
        for (int64_t pr = 0; pr < B; pr++) {
            int64_t n_empty = 0;
            for (int64_t c = 0; c < k; c++) n_empty += !(b->weight[pr * k + c] > 0.0);
            b->n_empty[pr] = n_empty;
            if (b->active[pr] && n_empty > 0 && p->empty == FKM_EMPTY_RELOCATE) relocate_any = 1;
        }
        if (on_backend && !relocate_any) {
            if ((s = ops->finalize(ctx, st, b->active, b->shift)) != FKM_OK) return s;
            host_stale = 1;
        } else {
            if (on_backend && (s = ops->get_sums(ctx, st, b->sums)) != FKM_OK) return s;
            if (host_stale && (s = ops->get_centroids(ctx, st, b->C)) != FKM_OK) return s;
            host_stale = 0;
            for (int64_t pr = 0; pr < B; pr++) {
                if (!b->active[pr]) { /* a stopped problem keeps its centroids */
                    memcpy(b->C_new + pr * k * d, b->C + pr * k * d, (size_t)(k * d) * sizeof *b->C);
                    continue;
                }
                if (b->n_empty[pr] > 0 && p->empty == FKM_EMPTY_RELOCATE &&
                    (s = relocate_empty(ctx, st, pb, b, pr, b->n_empty[pr])) != FKM_OK)
                    return s;
                b->shift[pr] = divide_and_shift(pb, b, pr);
            }
            float *t = b->C;
            b->C = b->C_new;
            b->C_new = t;
        }
        const double t2 = now_seconds();

        for (int64_t pr = 0; pr < B; pr++) {
            if (!b->active[pr]) continue;
            const double shift = b->shift[pr], mean_var = b->mean_var[pr];
            history[pr * p->max_iter + it - 1] = b->objective[pr];
            res[pr].n_iter = it;
            res[pr].inertia = b->objective[pr];
            /* an update that moved nothing leaves labels and inertia valid for C */
            b->final_needed[pr] = shift != 0.0;
            if ((b->changed[pr] == 0 && it > 1) || shift <= p->tol * mean_var) {
                res[pr].converged = 1;
                b->active[pr] = 0;
                n_active--;
            }
        }
        if (p->progress && B == 1) {
            fkm_iter_info info = {it, b->objective[0], b->shift[0],
                                  b->mean_var[0] > 0.0 ? b->shift[0] / b->mean_var[0] : b->shift[0],
                                  b->changed[0], b->n_empty[0], t2 - t0, t1 - t0, t2 - t1};
            if (p->progress(&info, p->progress_user))
                return fkm_fail(ctx, FKM_E_CANCELLED, "cancelled by the progress callback after iteration %d", (int)it);
        }
    }
    int final_any = 0;
    for (int64_t pr = 0; pr < B; pr++) final_any |= b->final_needed[pr];
    if (final_any) {
        fkm_partials fin = {NULL, NULL, b->objective, 0};
        if ((s = ops->assign(ctx, st, host_stale ? NULL : b->C, b->changed)) != FKM_OK) return s;
        if ((s = ops->reduce(ctx, st, host_stale ? NULL : b->C, &fin)) != FKM_OK) return s;
        for (int64_t pr = 0; pr < B; pr++)
            if (b->final_needed[pr]) res[pr].inertia = b->objective[pr];
    }
    /* centroids kept on the backend go to the output directly (device to device when it is
     * device memory) rather than through b->C and back: the same floats, copied once */
    const size_t bytes = (size_t)(B * k * d) * sizeof *centroids_out;
    return host_stale ? ops->get_centroids(ctx, st, centroids_out) : fkm_copy_out(ctx, centroids_out, b->C, bytes);
}

int fkm_init_direct(const fkm_ctx *ctx, const fkm_params *p)
{
    const fkm_backend_vtbl *ops = ctx->ops;
    if (fkm_init_on_device(ctx, p)) return 1;
    return p->init == FKM_INIT_USER && p->init_centroids && p->metric != FKM_METRIC_COSINE && ops->finalize &&
           !(ops->is_device && ops->is_device(p->init_centroids));
}

int fkm_init_on_device(const fkm_ctx *ctx, const fkm_params *p)
{
    const fkm_backend_vtbl *ops = ctx->ops;
    return p->init == FKM_INIT_USER && p->init_centroids && p->metric != FKM_METRIC_COSINE && ops->finalize &&
           ops->first_nonfinite && ops->is_device && ops->is_device(p->init_centroids);
}

fkm_status fkm_lloyd_run(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype, int64_t batch,
                         int64_t n, int64_t d, int64_t ld, int64_t batch_stride, const float *weights,
                         float *centroids_out, int32_t *labels_out, fkm_result *results)
{
    fkm_status s;
    if ((s = check_fit_params(ctx, params, batch, n, d)) != FKM_OK) return s;
    for (int64_t pr = 0; weights && pr < batch; pr++)
        if ((s = fkm_check_weights(ctx, weights + pr * n, n)) != FKM_OK) return s;
    int64_t hist_len;
    if (!fkm_mul_i64(batch, params->max_iter, &hist_len) || hist_len > INT32_MAX)
        return fkm_fail(ctx, FKM_E_OVERFLOW, "batch x max_iter is too large");
    if (ctx->inertia_history_cap < hist_len) {
        double *h = realloc(ctx->inertia_history, (size_t)hist_len * sizeof *h);
        if (!h) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the inertia history");
        ctx->inertia_history = h;
        ctx->inertia_history_cap = (int32_t)hist_len;
    }
    fkm_problem pb = {X, dtype, n, d, ld, weights, params->k, params->metric,
                      fkm_resolve_threads(params->n_threads > 0 ? params->n_threads : ctx->n_threads),
                      params->precision, batch, batch_stride, fkm_gpu_budget(ctx, params)};
    lloyd_buffers b;
    if ((s = alloc_buffers(ctx, batch, pb.k, d, &b)) != FKM_OK) return s;
    fkm_result *res = calloc((size_t)batch, sizeof *res);
    void *st = NULL;
    if (!res) s = fkm_fail(ctx, FKM_E_NOMEM, "out of memory for results");
    if (s == FKM_OK) s = ctx->ops->open(ctx, &pb, &st);
    if (s == FKM_OK) s = run_lloyd(ctx, params, &pb, st, &b, ctx->inertia_history, res, centroids_out);
    if (s == FKM_OK && labels_out) s = ctx->ops->get_labels(ctx, st, labels_out);
    if (s == FKM_OK && results) memcpy(results, res, (size_t)batch * sizeof *res);
    if (st) ctx->ops->close(st);
    free(res);
    free_buffers(&b);
    return s;
}

/* fkm_fit with weights and initial centroids host-readable: a batch of one. */
static fkm_status fit_host_params(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype,
                                  int64_t n, int64_t d, int64_t ld, const float *weights, float *centroids_out,
                                  int32_t *labels_out, fkm_result *result)
{
    return fkm_lloyd_run(ctx, params, X, dtype, 1, n, d, ld, n * ld, weights, centroids_out, labels_out, result);
}

/* n_init runs with seeds seed + r; the lowest final inertia wins (ties: the first run). */
static fkm_status fit_restarts(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype, int64_t n,
                               int64_t d, int64_t ld, const float *weights, float *centroids_out,
                               int32_t *labels_out, fkm_result *result)
{
    const int64_t k = params->k;
    if (k <= 0 || k > n || params->max_iter < 1) /* reported by the first run; nothing to size buffers by */
        return fit_host_params(ctx, params, X, dtype, n, d, ld, weights, centroids_out, labels_out, result);
    const size_t kd = (size_t)(k * d);
    float *C = malloc(kd * sizeof *C), *bestC = malloc(kd * sizeof *bestC);
    int32_t *L = labels_out ? malloc((size_t)n * sizeof *L) : NULL;
    int32_t *bestL = labels_out ? malloc((size_t)n * sizeof *bestL) : NULL;
    double *hist = malloc((size_t)params->max_iter * sizeof *hist);
    fkm_status s = FKM_OK;
    if (!C || !bestC || !hist || (labels_out && (!L || !bestL)))
        s = fkm_fail(ctx, FKM_E_NOMEM, "out of memory for n_init = %d runs", (int)params->n_init);
    fkm_params p = *params;
    p.n_init = 1;
    fkm_result best = {INFINITY, 0, 0, NULL};
    for (int32_t r = 0; r < params->n_init && s == FKM_OK; r++) {
        fkm_result res;
        p.seed = params->seed + (uint64_t)r;
        if ((s = fit_host_params(ctx, &p, X, dtype, n, d, ld, weights, C, L, &res)) != FKM_OK) break;
        if (r == 0 || res.inertia < best.inertia) {
            best = res;
            float *tc = C;
            C = bestC, bestC = tc;
            int32_t *tl = L;
            L = bestL, bestL = tl;
            memcpy(hist, res.inertia_per_iter, (size_t)res.n_iter * sizeof *hist);
        }
    }
    if (s == FKM_OK) s = fkm_copy_out(ctx, centroids_out, bestC, kd * sizeof *bestC);
    if (s == FKM_OK && labels_out) s = fkm_copy_out(ctx, labels_out, bestL, (size_t)n * sizeof *bestL);
    if (s == FKM_OK) {
        memcpy(ctx->inertia_history, hist, (size_t)best.n_iter * sizeof *hist);
        best.inertia_per_iter = ctx->inertia_history;
        if (result) *result = best;
    }
    free(C), free(bestC), free(L), free(bestL), free(hist);
    return s;
}

/* The checks fkm_fit and fkm_kmeanspp start with (ctx is non-NULL). */
static fkm_status check_call(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype, int64_t n,
                             int64_t d, int64_t ld, const float *centroids_out)
{
    fkm_clear_error(ctx);
    if (!params) return fkm_fail(ctx, FKM_E_NULL, "params is NULL");
    if (!centroids_out) return fkm_fail(ctx, FKM_E_NULL, "centroids_out is NULL");
    fkm_status s = fkm_check_matrix(ctx, X, dtype, n, d, ld);
    return s == FKM_OK ? fkm_check_metric(ctx, params->metric) : s;
}

fkm_status fkm_fit(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype,
                   int64_t n, int64_t d, int64_t ld, const float *weights, float *centroids_out,
                   int32_t *labels_out, fkm_result *result)
{
    if (!ctx) return FKM_E_NULL;
    fkm_status s;
    if ((s = check_call(ctx, params, X, dtype, n, d, ld, centroids_out)) != FKM_OK) return s;
    /* weights and user centroids may be device memory on a GPU backend: read host copies */
    fkm_params p = *params;
    const void *w_view = NULL, *c_view = NULL;
    void *w_owned = NULL, *c_owned = NULL;
    if (weights && (s = fkm_host_view(ctx, weights, (size_t)n * sizeof(float), &w_view, &w_owned)) != FKM_OK)
        return s;
    if (p.init == FKM_INIT_USER && p.init_centroids && p.k > 0 && p.k <= n && !fkm_init_on_device(ctx, &p) &&
        (s = fkm_host_view(ctx, p.init_centroids, (size_t)(p.k * d) * sizeof(float), &c_view, &c_owned)) != FKM_OK) {
        free(w_owned);
        return s;
    }
    if (c_view) p.init_centroids = c_view;
    if (p.n_init > 1 && p.init != FKM_INIT_USER)
        s = fit_restarts(ctx, &p, X, dtype, n, d, ld, w_view, centroids_out, labels_out, result);
    else
        s = fit_host_params(ctx, &p, X, dtype, n, d, ld, w_view, centroids_out, labels_out, result);
    free(w_owned);
    free(c_owned);
    return s;
}

fkm_status fkm_kmeanspp(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype, int64_t n,
                        int64_t d, int64_t ld, const float *weights, float *centroids_out)
{
    if (!ctx) return FKM_E_NULL;
    fkm_status s;
    if ((s = check_call(ctx, params, X, dtype, n, d, ld, centroids_out)) != FKM_OK) return s;
    fkm_params p = *params;
    p.init = FKM_INIT_KMEANS_PP;
    p.n_init = 1;
    if ((s = check_fit_params(ctx, &p, 1, n, d)) != FKM_OK) return s;
    const void *w_view = NULL;
    void *w_owned = NULL;
    if (weights && (s = fkm_host_view(ctx, weights, (size_t)n * sizeof(float), &w_view, &w_owned)) != FKM_OK)
        return s;
    if ((s = fkm_check_weights(ctx, w_view, n)) != FKM_OK) {
        free(w_owned);
        return s;
    }
    fkm_problem pb = {X, dtype, n, d, ld, w_view, p.k, p.metric,
                      fkm_resolve_threads(p.n_threads > 0 ? p.n_threads : ctx->n_threads), p.precision, 1, n * ld,
                      fkm_gpu_budget(ctx, &p)};
    float *C = malloc((size_t)(p.k * d) * sizeof *C);
    void *st = NULL;
    int64_t bad = -1;
    double mean_var;
    if (!C) s = fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the centroids");
    if (s == FKM_OK) s = ctx->ops->open(ctx, &pb, &st);
    if (s == FKM_OK) s = ctx->ops->scan(ctx, st, &bad, &mean_var);
    if (s == FKM_OK && bad >= 0) s = fkm_fail(ctx, FKM_E_NONFINITE, "X row %lld contains NaN or Inf", (long long)bad);
    if (s == FKM_OK) s = fkm_init_centroids(ctx, &p, &pb, st, 0, C);
    if (s == FKM_OK) s = fkm_copy_out(ctx, centroids_out, C, (size_t)(p.k * d) * sizeof *C);
    if (st) ctx->ops->close(st);
    free(C);
    free(w_owned);
    return s;
}

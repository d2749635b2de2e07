/* test_reference.c — the library's fit equals the plain fp64 reference Lloyd (common.c) on
 * tie-free data: identical labels, iteration counts and stopping, centroids and inertia within
 * stated tolerances; for every dtype and metric, with and without weights, with ld > d, and
 * for both empty-cluster policies. Tie-freeness is measured, not assumed: the reference
 * reports the smallest relative gap between best and second-best in every assignment, and the
 * case fails if it is below the f32 rounding error the library's fast path may make. */
#include "common.h"

#include <math.h>
#include <string.h>

/* Relative gap below which an f32 evaluation could flip a label. The library compares
 * ||c||^2 - 2 x.c computed in f32: ||c||^2 rounded once, x.c accumulated with d FMAs
 * (|error| <= gamma_d ||x|| ||c||), one final FMA. The error of a difference of two such
 * values is below 2 (d + 2) u (||x||^2 + ||c||^2) with u = 2^-24; f64 input is first rounded
 * to f32 (another u per term). We ask for twice that margin. */
static double min_gap(int64_t d) { return 4.0 * (double)(d + 4) * 0x1p-24; }
/* Centroids: the library sums in double in a different order than the reference, then rounds
 * to f32: at most a 1-2 ulp difference, scaled to the data. */
#define CENTROID_RTOL 1e-6
#define INERTIA_RTOL 1e-9

typedef struct ref_case {
    const char *name;
    fkm_dtype dtype;
    fkm_metric metric;
    int weighted;
    int64_t n, d, ld, k;
    int blobs;
    double offset;
    fkm_empty empty;
    uint64_t seed;
} ref_case;

/* Tie-free data by rejection: seeds are tried in order until the reference run's smallest
 * gap clears min_gap(d). Deterministic: the same seed is found on every run. */
static void run_case(const ref_case *tc)
{
    const int32_t max_iter = 40;
    double *X = NULL;
    void *Xs = NULL;
    float *w = NULL, *init = NULL;
    tc_ref_result ref = {0};
    uint64_t seed = tc->seed;
    for (int attempt = 0; attempt < 400; attempt++, seed++) {
        if (X) {
            tc_ref_free(&ref);
            free(X), free(Xs), free(w), free(init);
            w = NULL;
        }
        X = tc_blobs(seed, tc->n, tc->d, tc->blobs, 6.0, tc->offset);
        Xs = tc_store(X, tc->n, tc->d, tc->ld, tc->dtype); /* X now holds the stored values */
        if (tc->weighted) {
            tc_rng r = {seed + 77};
            w = malloc((size_t)tc->n * sizeof *w);
            for (int64_t i = 0; i < tc->n; i++) w[i] = (float)(0.25 + 2.0 * tc_uniform(&r));
        }
        init = tc_pick_rows(X, tc->n, tc->d, tc->k, seed + 5);
        tc_reference_fit(X, tc->n, tc->d, w, tc->k, tc->metric, tc->empty, init, max_iter, 0.0, &ref);
        if (ref.min_gap > min_gap(tc->d)) break;
    }

    fkm_ctx *ctx = tc_create();
    fkm_params p = fkm_params_default();
    p.k = tc->k;
    p.max_iter = max_iter;
    p.tol = 0.0;
    p.init = FKM_INIT_USER;
    p.init_centroids = init;
    p.metric = tc->metric;
    p.empty = tc->empty;
    p.precision = tc_precision();
    float *C = malloc((size_t)(tc->k * tc->d) * sizeof *C);
    int32_t *labels = malloc((size_t)tc->n * sizeof *labels);
    fkm_result res;
    fkm_status s = fkm_fit(ctx, &p, Xs, tc->dtype, tc->n, tc->d, tc->ld, w, C, labels, &res);
    CHECK(s == FKM_OK, "%s: fit failed: %s", tc->name, fkm_last_error(ctx));
    CHECK(ref.min_gap > min_gap(tc->d), "%s: no tie-free data found (min relative gap %.3g)",
          tc->name, ref.min_gap);
    if (s == FKM_OK) {
        int64_t diff = 0;
        for (int64_t i = 0; i < tc->n; i++) diff += labels[i] != ref.labels[i];
        CHECK(diff == 0, "%s: %lld labels differ from the fp64 reference", tc->name, (long long)diff);
        CHECK(res.n_iter == ref.n_iter, "%s: n_iter %d vs reference %d", tc->name, res.n_iter, ref.n_iter);
        CHECK(res.converged == ref.converged, "%s: converged %d vs %d", tc->name, res.converged, ref.converged);
        double scale = 0.0, worst = 0.0;
        for (int64_t i = 0; i < tc->k * tc->d; i++) scale = fmax(scale, fabs(ref.centroids[i]));
        for (int64_t i = 0; i < tc->k * tc->d; i++) worst = fmax(worst, fabs(C[i] - ref.centroids[i]));
        CHECK(worst <= CENTROID_RTOL * scale, "%s: centroid error %.3g > %.3g", tc->name, worst,
              CENTROID_RTOL * scale);
        /* f64 input is rounded to f32 before the objective is evaluated */
        const double inertia_rtol = tc->dtype == FKM_F64 ? 1e-6 : INERTIA_RTOL;
        CHECK(fabs(res.inertia - ref.inertia) <= inertia_rtol * fabs(ref.inertia) + 1e-12,
              "%s: inertia %.17g vs reference %.17g", tc->name, res.inertia, ref.inertia);
        for (int32_t it = 0; it < res.n_iter && it < ref.n_iter; it++)
            CHECK(fabs(res.inertia_per_iter[it] - ref.inertia_per_iter[it]) <=
                      inertia_rtol * fabs(ref.inertia_per_iter[it]) + 1e-12,
                  "%s: iteration %d inertia %.17g vs %.17g", tc->name, it + 1, res.inertia_per_iter[it],
                  ref.inertia_per_iter[it]);
        printf("%-28s seed=%-5llu n_iter=%2d converged=%d inertia=%.6e min_gap=%.2e centroid_err=%.2e\n", tc->name,
               (unsigned long long)seed, res.n_iter, res.converged, res.inertia, ref.min_gap, worst / (scale > 0 ? scale : 1));
    }
    fkm_destroy(ctx);
    tc_ref_free(&ref);
    free(X), free(Xs), free(w), free(init), free(C), free(labels);
}

int main(void)
{
    static const fkm_dtype dtypes[] = {FKM_F32, FKM_F16, FKM_BF16, FKM_F64};
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    char name[64];
    for (size_t a = 0; a < sizeof dtypes / sizeof dtypes[0]; a++)
        for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++)
            for (int weighted = 0; weighted < 2; weighted++) {
                snprintf(name, sizeof name, "%s/%s/%s", fkm_dtype_name(dtypes[a]),
                         metrics[m] == FKM_METRIC_L2 ? "l2" : metrics[m] == FKM_METRIC_COSINE ? "cosine" : "dot",
                         weighted ? "weighted" : "unweighted");
                ref_case tc = {name, dtypes[a], metrics[m], weighted, 400, 13, 13 + 3, 7, 5, 0.0,
                               FKM_EMPTY_RELOCATE, 1000 + a * 10 + m * 2 + (uint64_t)weighted};
                run_case(&tc);
            }
    /* shapes the kernel tiles unevenly: k not a multiple of any panel, d = 1, k = 1, k = n */
    run_case(&(ref_case){"f32/l2/k=37,d=70", FKM_F32, FKM_METRIC_L2, 0, 500, 70, 70, 37, 9, 0.0, FKM_EMPTY_RELOCATE, 7});
    run_case(&(ref_case){"f32/l2/d=1", FKM_F32, FKM_METRIC_L2, 0, 300, 1, 1, 3, 3, 0.0, FKM_EMPTY_RELOCATE, 8});
    run_case(&(ref_case){"f32/l2/k=1", FKM_F32, FKM_METRIC_L2, 0, 333, 5, 5, 1, 2, 0.0, FKM_EMPTY_RELOCATE, 9});
    run_case(&(ref_case){"f32/l2/k=n", FKM_F32, FKM_METRIC_L2, 0, 40, 4, 4, 40, 3, 0.0, FKM_EMPTY_RELOCATE, 10});
    /* a large common offset: the ||c||^2 - 2x.c form cancels; gaps shrink relative to ||x||^2 */
    run_case(&(ref_case){"f32/l2/offset", FKM_F32, FKM_METRIC_L2, 0, 500, 8, 8, 4, 4, 20.0, FKM_EMPTY_RELOCATE, 11});
    /* more clusters than blobs: empty clusters appear; both policies */
    run_case(&(ref_case){"f32/l2/empty-keep", FKM_F32, FKM_METRIC_L2, 0, 300, 6, 6, 24, 3, 0.0, FKM_EMPTY_KEEP, 12});
    run_case(&(ref_case){"f32/dot/empty-relocate", FKM_F32, FKM_METRIC_DOT, 0, 300, 6, 6, 12, 3, 0.0, FKM_EMPTY_RELOCATE, 13});
    return tc_finish("test_reference");
}

/* test_kmeanspp.c — k-means++ and the other parts of a complete k-means: reproducibility of
 * k-means++ across runs and thread counts, k-means++ beating random initialisation on
 * separated blobs, integer weights equal to repeated rows (for the fit from given centroids
 * and for k-means++ itself), n_init returning exactly the best single run, every metric and
 * dtype running; the triangle-inequality pruning of k-means++ (core/kpp_prune.h) on tight
 * cases and end to end (pruned == unpruned, bit for bit); on the CUDA backend, the GPU's
 * k-means++ bitwise equal to the CPU's. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "common.h"
#include "core/internal.h"  /* ctx->kpp: the pruning counters */
#include "core/kpp_prune.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef struct fit_out {
    float *C;
    int32_t *labels;
    fkm_result r;
} fit_out;

static fkm_status fit(fkm_ctx *ctx, const fkm_params *p, const void *X, fkm_dtype dt, int64_t n, int64_t d,
                      const float *w, fit_out *o)
{
    o->C = malloc((size_t)(p->k * d) * sizeof *o->C);
    o->labels = malloc((size_t)n * sizeof *o->labels);
    fkm_status s = fkm_fit(ctx, p, X, dt, n, d, d, w, o->C, o->labels, &o->r);
    CHECK(s == FKM_OK, "fit: %s", fkm_last_error(ctx));
    return s;
}

static void fit_free(fit_out *o) { free(o->C), free(o->labels); }

static int same_fit(const fit_out *a, const fit_out *b, int64_t n, int64_t kd)
{
    return memcmp(a->C, b->C, (size_t)kd * sizeof(float)) == 0 &&
           memcmp(a->labels, b->labels, (size_t)n * sizeof(int32_t)) == 0 && a->r.n_iter == b->r.n_iter &&
           memcmp(&a->r.inertia, &b->r.inertia, sizeof(double)) == 0;
}

static void check_reproducible(fkm_ctx *ctx)
{
    /* large enough (n d k > 16 x 4e6) that the CPU backend really uses 16 threads; smaller
     * under FLASHKM_TEST_SMALL (the GPU sanitizer runs, where k-means++ runs on the device) */
    const int64_t n = getenv("FLASHKM_TEST_SMALL") ? 9001 : 70001, d = 13, k = 77;
    static const fkm_dtype dtypes[] = {FKM_F32, FKM_F16, FKM_BF16};
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    static const int threads[] = {1, 2, 3, 16};
    for (size_t a = 0; a < 3; a++)
        for (size_t m = 0; m < 3; m++) {
            double *Xd = tc_blobs(50 + a * 3 + m, n, d, 20, 5.0, 0.0);
            void *X = tc_store(Xd, n, d, d, dtypes[a]);
            fkm_params p = fkm_params_default();
            p.k = k;
            p.max_iter = 1; /* k-means++ plus one update: any difference in the init shows */
            p.seed = 7;
            p.metric = metrics[m];
            fit_out base;
            p.n_threads = 1;
            fit(ctx, &p, X, dtypes[a], n, d, NULL, &base);
            for (size_t t = 0; t < 4; t++) {
                fit_out o;
                p.n_threads = threads[t];
                fit(ctx, &p, X, dtypes[a], n, d, NULL, &o);
                CHECK(same_fit(&base, &o, n, k * d), "%s metric %d: k-means++ with %d threads differs",
                      fkm_dtype_name(dtypes[a]), (int)metrics[m], threads[t]);
                fit_free(&o);
            }
            fit_out other;
            p.seed = 8;
            p.n_threads = 2;
            fit(ctx, &p, X, dtypes[a], n, d, NULL, &other);
            CHECK(!same_fit(&base, &other, n, k * d), "%s metric %d: seeds 7 and 8 give the same init",
                  fkm_dtype_name(dtypes[a]), (int)metrics[m]);
            fit_free(&other);
            fit_free(&base);
            free(Xd), free(X);
        }
    printf("k-means++: identical for 1/2/3/16 threads, every dtype and metric; different seeds differ\n");
}

/* On 25 separated blobs with K = 25, k-means++ ends lower than random rows, over 6 seeds. */
static void check_beats_random(fkm_ctx *ctx)
{
    const int64_t n = 5000, d = 8, k = 25;
    double *Xd = tc_blobs(123, n, d, 25, 30.0, 0.0);
    float *X = tc_store(Xd, n, d, d, FKM_F32);
    double sum_pp = 0.0, sum_rand = 0.0;
    for (uint64_t seed = 0; seed < 6; seed++) {
        fkm_params p = fkm_params_default();
        p.k = k;
        p.seed = seed;
        fit_out a, b;
        p.init = FKM_INIT_KMEANS_PP;
        fit(ctx, &p, X, FKM_F32, n, d, NULL, &a);
        p.init = FKM_INIT_RANDOM;
        fit(ctx, &p, X, FKM_F32, n, d, NULL, &b);
        sum_pp += a.r.inertia;
        sum_rand += b.r.inertia;
        fit_free(&a), fit_free(&b);
    }
    CHECK(sum_pp < sum_rand, "k-means++ mean final inertia %.6g is not below random's %.6g", sum_pp / 6, sum_rand / 6);
    printf("separated blobs: mean final inertia k-means++ %.6g, random %.6g\n", sum_pp / 6, sum_rand / 6);
    free(Xd), free(X);
}

/* Integer weights (1..3) give the result of repeating the rows: for a fit from given
 * centroids and for k-means++. */
static void check_weights_repeat(fkm_ctx *ctx)
{
    const int64_t n = 1500, d = 6, k = 12;
    double *Xd = tc_blobs(77, n, d, 12, 6.0, 0.0);
    float *X = tc_store(Xd, n, d, d, FKM_F32);
    float *w = malloc((size_t)n * sizeof *w);
    tc_rng rng = {99};
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) m += (int64_t)(w[i] = (float)(1 + (int)(tc_uniform(&rng) * 3.0)));
    float *R = malloc((size_t)(m * d) * sizeof *R);
    int64_t *src = malloc((size_t)m * sizeof *src);
    for (int64_t i = 0, r = 0; i < n; i++)
        for (int c = 0; c < (int)w[i]; c++, r++) {
            memcpy(R + r * d, X + i * d, (size_t)d * sizeof *R);
            src[r] = i;
        }
    for (int pass = 0; pass < 2; pass++) {
        fkm_params p = fkm_params_default();
        p.k = k;
        p.max_iter = 30;
        p.tol = 0.0;
        float *init = NULL;
        if (pass == 0) {
            init = tc_pick_rows(Xd, n, d, k, 3);
            p.init = FKM_INIT_USER;
            p.init_centroids = init;
        }
        fit_out a, b;
        fit(ctx, &p, X, FKM_F32, n, d, w, &a);
        fit(ctx, &p, R, FKM_F32, m, d, NULL, &b);
        double worst = 0.0, scale = 0.0;
        for (int64_t i = 0; i < k * d; i++) {
            worst = fmax(worst, fabs((double)a.C[i] - b.C[i]));
            scale = fmax(scale, fabs((double)b.C[i]));
        }
        int64_t diff = 0;
        for (int64_t r = 0; r < m; r++) diff += a.labels[src[r]] != b.labels[r];
        CHECK(worst <= 1e-6 * scale && diff == 0 && a.r.n_iter == b.r.n_iter,
              "%s: weights vs repeated rows: centroid diff %.3g (scale %.3g), %lld labels differ, n_iter %d vs %d",
              pass ? "k-means++" : "given init", worst, scale, (long long)diff, a.r.n_iter, b.r.n_iter);
        CHECK(fabs(a.r.inertia - b.r.inertia) <= 1e-9 * fabs(b.r.inertia), "inertia %.17g vs %.17g", a.r.inertia,
              b.r.inertia);
        printf("weights 1..3 vs repeated rows (%s): centroids within %.2g, labels equal\n",
               pass ? "k-means++" : "given init", worst);
        fit_free(&a), fit_free(&b);
        free(init);
    }
    free(Xd), free(X), free(w), free(R), free(src);
}

/* n_init = 4 returns exactly the single run (seed + r) with the lowest inertia. */
static void check_n_init(fkm_ctx *ctx)
{
    const int64_t n = 3000, d = 5, k = 15;
    double *Xd = tc_blobs(5, n, d, 10, 3.0, 0.0);
    float *X = tc_store(Xd, n, d, d, FKM_F32);
    static const fkm_init inits[] = {FKM_INIT_KMEANS_PP, FKM_INIT_RANDOM};
    for (int a = 0; a < 2; a++) {
        fkm_params p = fkm_params_default();
        p.k = k;
        p.init = inits[a];
        p.seed = 40;
        fit_out single[4], multi;
        int best = 0;
        for (int r = 0; r < 4; r++) {
            p.seed = 40 + (uint64_t)r;
            fit(ctx, &p, X, FKM_F32, n, d, NULL, &single[r]);
            if (single[r].r.inertia < single[best].r.inertia) best = r;
        }
        p.seed = 40;
        p.n_init = 4;
        fit(ctx, &p, X, FKM_F32, n, d, NULL, &multi);
        CHECK(same_fit(&multi, &single[best], n, k * d), "init %d: n_init = 4 is not the best single run (%d)", a,
              best);
        for (int it = 0; it < multi.r.n_iter; it++)
            CHECK(multi.r.inertia_per_iter[it] > 0.0, "n_init: history entry %d missing", it);
        printf("n_init = 4 (init %d): equals the best single run, seed %d (inertias %.6g %.6g %.6g %.6g)\n", a,
               40 + best, single[0].r.inertia, single[1].r.inertia, single[2].r.inertia, single[3].r.inertia);
        for (int r = 0; r < 4; r++) fit_free(&single[r]);
        fit_free(&multi);
    }
    free(Xd), free(X);
}

/* fkm_kmeanspp gives exactly the centroids fkm_fit starts from: a fit from them as user
 * centroids equals the k-means++ fit. Errors are reported like fkm_fit's. */
static void check_init_alone(fkm_ctx *ctx)
{
    const int64_t n = 4000, d = 9, k = 21;
    double *Xd = tc_blobs(8, n, d, 15, 4.0, 0.0);
    uint16_t *X = tc_store(Xd, n, d, d, FKM_F16);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.seed = 3;
    float *C0 = malloc((size_t)(k * d) * sizeof *C0);
    CHECK(fkm_kmeanspp(ctx, &p, X, FKM_F16, n, d, d, NULL, C0) == FKM_OK, "kmeanspp: %s", fkm_last_error(ctx));
    fit_out a, b;
    fit(ctx, &p, X, FKM_F16, n, d, NULL, &a);
    p.init = FKM_INIT_USER;
    p.init_centroids = C0;
    fit(ctx, &p, X, FKM_F16, n, d, NULL, &b);
    CHECK(same_fit(&a, &b, n, k * d), "a fit from fkm_kmeanspp's centroids differs from the k-means++ fit");
    CHECK(fkm_kmeanspp(ctx, &p, X, FKM_F16, n, d, d, NULL, NULL) == FKM_E_NULL, "NULL centroids_out");
    p.k = n + 1;
    CHECK(fkm_kmeanspp(ctx, &p, X, FKM_F16, n, d, d, NULL, C0) == FKM_E_INVALID, "k > n");
    printf("fkm_kmeanspp: the centroids fkm_fit starts from\n");
    fit_free(&a), fit_free(&b);
    free(Xd), free(X), free(C0);
}

/* ---------------------------------------------------------------- pruning (core/kpp_prune.h) */

/* ||x - c||^2 as the library computes it in f32: u = x - c rounded, then an FMA per feature
 * (fused = 1) or a rounded product and a rounded sum (the CPU's generic level). */
static float chain(const float *x, const float *c, int64_t d, int fused)
{
    float acc = 0.0f;
    for (int64_t j = 0; j < d; j++) {
        const float u = x[j] - c[j];
        if (fused) {
            acc = fmaf(u, u, acc);
        } else {
            volatile float p = u * u; /* kept apart from the sum */
            acc = acc + p;
        }
    }
    return acc;
}

/* The test itself, where it is tightest: c near the reflection of the centre a through x
 * (then ||x - c|| = ||x - a|| when ||a - c|| = 2 ||x - a||), scaled so that cc straddles the
 * limit, at scales from subnormal squares to large common offsets. Whenever the test prunes,
 * the computed distance must be >= D; the prunings must be many (not a vacuous pass). */
static void check_prune_bound(void)
{
    tc_rng rng = {2024};
    static const double scales[] = {1e-23, 3e-21, 1e-19, 1.0, 1e3};
    static const double offsets[] = {0.0, 0.0, 0.0, 1e4, 0.0};
    static const int64_t dims[] = {1, 2, 3, 8, 64, 300};
    float x[300], a[300], c[300];
    int64_t trials = 0, pruned = 0, wrong = 0, naive_wrong = 0;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            const int64_t d = dims[di];
            const fkm_kpp_prune pr = fkm_kpp_prune_make(d, 1);
            for (int rep = 0; rep < 400; rep++) {
                /* how far past the reflection c lies: relative 1 + eps, eps within a few
                 * gamma_{d+3} of 0 (where the rounding decides) */
                const double eps = (tc_uniform(&rng) - 0.3) * 20.0 * (double)(d + 3) * 0x1p-24;
                for (int64_t j = 0; j < d; j++) {
                    const double xv = offsets[si] + scales[si] * tc_normal(&rng);
                    const double v = scales[si] * tc_normal(&rng);
                    x[j] = (float)xv;
                    a[j] = (float)(xv + v);
                    c[j] = (float)(xv - v * (1.0 + eps) + scales[si] * 1e-7 * tc_normal(&rng));
                }
                for (int fused = 0; fused < 2; fused++) {
                    const float D = chain(x, a, d, fused), cc = chain(a, c, d, fused), dc = chain(x, c, d, fused);
                    trials++;
                    if ((double)cc >= 4.0 * D && dc < D) naive_wrong++;
                    if (!fkm_kpp_pruned(fkm_kpp_prune_limit(&pr, D), cc)) continue;
                    pruned++;
                    if (dc < D) {
                        wrong++;
                        fprintf(stderr, "pruned but closer: d %lld scale %g: D %a cc %a d(x, c) %a\n", (long long)d,
                                scales[si], D, cc, dc);
                    }
                }
            }
        }
    CHECK(wrong == 0, "the pruning test proved %lld of %lld distances >= D that are not", (long long)wrong,
          (long long)pruned);
    CHECK(pruned > trials / 10, "only %lld of %lld tight cases pruned: the test is not exercised", (long long)pruned,
          (long long)trials);
    /* and far rows are pruned, near ones not: the test is not merely safe by never pruning */
    const fkm_kpp_prune pr = fkm_kpp_prune_make(4, 1), off = fkm_kpp_prune_make(4, 0);
    const float l1 = fkm_kpp_prune_limit(&pr, 1.0f), l0 = fkm_kpp_prune_limit(&pr, 0.0f);
    CHECK(fkm_kpp_pruned(l1, 4.001f) && !fkm_kpp_pruned(l1, 4.0f), "limit for D = 1 not just above 4");
    CHECK(!fkm_kpp_pruned(fkm_kpp_prune_limit(&pr, INFINITY), 1e30f) && !fkm_kpp_pruned(l1, INFINITY) &&
              !fkm_kpp_pruned(fkm_kpp_prune_limit(&off, 1.0f), 1e30f) && fkm_kpp_pruned(l0, 1e-40f) &&
              !fkm_kpp_pruned(l0, 0.0f),
          "special cases of the pruning test");
    /* the limit is the bound (evaluated in double) rounded up to the next float, so the f32
     * comparison decides as the double one would */
    int64_t bad_round = 0;
    for (int q = 0; q < 20000; q++) {
        const float D = (float)(ldexp(tc_uniform(&rng) + 0.5, (int)(tc_uniform(&rng) * 300.0) - 160));
        const float lim = fkm_kpp_prune_limit(&pr, D);
        const double bound = ((double)D + pr.slack) * pr.factor + pr.slack;
        if (!((double)lim >= bound && (double)nextafterf(lim, 0.0f) < bound)) bad_round++;
    }
    CHECK(bad_round == 0 && fkm_kpp_prune_limit(&pr, FLT_MAX) == INFINITY,
          "the f32 limit is not the bound rounded up (%lld cases)", (long long)bad_round);
    printf("pruning test: %lld of %lld tight cases pruned, %lld wrongly (the bare cc >= 4 D would be wrong in %lld)\n",
           (long long)pruned, (long long)trials, (long long)wrong, (long long)naive_wrong);
}

/* Data for the pruned vs unpruned runs. */
enum { PD_BLOBS, PD_DUPLICATES, PD_IDENTICAL, PD_TINY, PD_OFFSET };

typedef struct prune_case {
    const char *what;
    int64_t n, d, k;
    fkm_dtype dtype;
    fkm_metric metric;
    int weighted, data;
    double min_skipped; /* fraction of point visits pruning must skip (row not read; the CPU
                           skips ~0.6 of them on these blobs, the GPU a little less, its pass
                           also taking the newest centre); 0: no claim */
    int small;          /* also run under FLASHKM_TEST_SMALL (the GPU sanitizer runs) */
} prune_case;

static double *prune_data(const prune_case *pc, uint64_t seed)
{
    const int64_t n = pc->n, d = pc->d;
    double *X;
    switch (pc->data) {
    case PD_DUPLICATES: /* n / 4 distinct rows, each four times, interleaved */
        X = tc_blobs(seed, n, d, 8, 10.0, 0.0);
        for (int64_t i = n / 4; i < n; i++) memcpy(X + i * d, X + (i % (n / 4)) * d, (size_t)d * sizeof *X);
        return X;
    case PD_IDENTICAL:
        X = tc_blobs(seed, n, d, 1, 10.0, 0.0);
        for (int64_t i = 1; i < n; i++) memcpy(X + i * d, X, (size_t)d * sizeof *X);
        return X;
    case PD_TINY: /* squared distances ~1e-41: subnormal f32 */
        X = tc_blobs(seed, n, d, 16, 10.0, 0.0);
        for (int64_t i = 0; i < n * d; i++) X[i] *= 3e-21;
        return X;
    case PD_OFFSET: /* differences of ~1 on values of 1e4: cancellation */
        return tc_blobs(seed, n, d, 16, 10.0, 1e4);
    default:
        return tc_blobs(seed, n, d, 16, 10.0, 0.0);
    }
}

/* k-means++ with pruning (the default) and with FLASHKM_KPP_NO_PRUNE=1 choose the same
 * centroids bit for bit, on data built to break a wrong bound; on blobs pruning must skip
 * most rows (ctx->kpp), and the switch must really turn it off. On the CUDA backend the same
 * runs happen on the device, and its pruned centroids must also be the CPU's. */
static void check_prune(fkm_ctx *ctx)
{
    static const prune_case cases[] = {
        {"blobs", 6000, 16, 40, FKM_F32, FKM_METRIC_L2, 0, PD_BLOBS, 0.4, 1},
        {"blobs f16", 6000, 16, 40, FKM_F16, FKM_METRIC_L2, 0, PD_BLOBS, 0.4, 0},
        {"blobs bf16 weighted", 6000, 16, 40, FKM_BF16, FKM_METRIC_L2, 1, PD_BLOBS, 0.4, 0},
        {"blobs cosine", 5000, 16, 30, FKM_F32, FKM_METRIC_COSINE, 0, PD_BLOBS, 0.2, 0},
        {"blobs cosine f16 weighted", 5000, 16, 30, FKM_F16, FKM_METRIC_COSINE, 1, PD_BLOBS, 0.0, 1},
        {"duplicate rows", 4000, 8, 50, FKM_F32, FKM_METRIC_L2, 0, PD_DUPLICATES, 0.0, 0},
        {"identical rows", 1000, 5, 10, FKM_F32, FKM_METRIC_L2, 1, PD_IDENTICAL, 0.0, 1},
        {"tiny values", 4000, 8, 40, FKM_F32, FKM_METRIC_L2, 0, PD_TINY, 0.3, 1},
        {"tiny values bf16", 4000, 8, 40, FKM_BF16, FKM_METRIC_L2, 1, PD_TINY, 0.0, 0},
        {"offset 1e4", 4000, 8, 40, FKM_F32, FKM_METRIC_L2, 0, PD_OFFSET, 0.3, 1},
        {"d = 1", 3000, 1, 30, FKM_F32, FKM_METRIC_L2, 1, PD_BLOBS, 0.0, 0},
        {"d = 3", 3000, 3, 30, FKM_F16, FKM_METRIC_L2, 0, PD_BLOBS, 0.0, 0},
        {"d = 300", 2000, 300, 20, FKM_BF16, FKM_METRIC_L2, 1, PD_BLOBS, 0.2, 1},
        {"dot (seeds on L2)", 3000, 6, 25, FKM_F32, FKM_METRIC_DOT, 0, PD_BLOBS, 0.0, 0},
    };
    fkm_ctx *cpu = NULL;
    const int on_gpu = fkm_ctx_backend(ctx) == FKM_BACKEND_CUDA;
    const int fma_cpu = strcmp(fkm_cpu_simd_level(), "generic") != 0;
    if (on_gpu) CHECK(fkm_create(&cpu, FKM_BACKEND_CPU) == FKM_OK, "CPU context");
    const int small = getenv("FLASHKM_TEST_SMALL") != NULL;
    /* this check owns the switch: a FLASHKM_KPP_NO_PRUNE=1 set for the whole run (to run
     * the other checks unpruned) must not turn the "pruned" side off; restored at the end */
    const char *outer = getenv("FLASHKM_KPP_NO_PRUNE");
    char *outer_copy = outer ? strdup(outer) : NULL;
    unsetenv("FLASHKM_KPP_NO_PRUNE");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const prune_case *pc = &cases[c];
        if (small && !pc->small) continue;
        double *Xd = prune_data(pc, 700 + c);
        void *X = tc_store(Xd, pc->n, pc->d, pc->d, pc->dtype);
        float *w = NULL;
        if (pc->weighted) {
            tc_rng rng = {c + 1};
            w = malloc((size_t)pc->n * sizeof *w);
            for (int64_t i = 0; i < pc->n; i++) w[i] = (float)(0.05 + 4.0 * tc_uniform(&rng));
        }
        fkm_params p = fkm_params_default();
        p.k = pc->k;
        p.seed = 31 + c;
        p.metric = pc->metric;
        p.n_threads = 2;
        const size_t kd = (size_t)(pc->k * pc->d);
        float *A = malloc(kd * sizeof *A), *B = malloc(kd * sizeof *B);
        CHECK(fkm_kmeanspp(ctx, &p, X, pc->dtype, pc->n, pc->d, pc->d, w, A) == FKM_OK, "%s: %s", pc->what,
              fkm_last_error(ctx));
        const fkm_kpp_counts on = ctx->kpp;
        setenv("FLASHKM_KPP_NO_PRUNE", "1", 1);
        CHECK(fkm_kmeanspp(ctx, &p, X, pc->dtype, pc->n, pc->d, pc->d, w, B) == FKM_OK, "%s: %s", pc->what,
              fkm_last_error(ctx));
        const fkm_kpp_counts off = ctx->kpp;
        unsetenv("FLASHKM_KPP_NO_PRUNE");
        CHECK(memcmp(A, B, kd * sizeof *A) == 0, "%s: pruned and unpruned k-means++ differ", pc->what);
        CHECK(off.points > 0 && off.points_read == off.points && off.pairs_needed == off.pairs,
              "%s: FLASHKM_KPP_NO_PRUNE=1 still skipped rows (%lld of %lld read)", pc->what,
              (long long)off.points_read, (long long)off.points);
        CHECK(on.points == off.points && on.pairs == off.pairs && on.points_read <= on.points &&
                  on.pairs_needed <= on.pairs,
              "%s: inconsistent counters", pc->what);
        const double skipped = 1.0 - (double)on.points_read / (double)on.points;
        CHECK(skipped >= pc->min_skipped, "%s: pruning skipped only %.3f of the rows (expected >= %.2f)", pc->what,
              skipped, pc->min_skipped);
        int same_cpu = -1;
        if (on_gpu) {
            CHECK(fkm_kmeanspp(cpu, &p, X, pc->dtype, pc->n, pc->d, pc->d, w, B) == FKM_OK, "cpu: %s",
                  fkm_last_error(cpu));
            same_cpu = memcmp(A, B, kd * sizeof *A) == 0;
            if (fma_cpu) CHECK(same_cpu, "%s: pruned GPU k-means++ differs from the CPU's", pc->what);
        }
        printf("k-means++ pruned == unpruned (%s, %s, n %lld, d %lld, k %lld): rows skipped %.3f, pairs needed "
               "%.3f%s\n",
               pc->what, fkm_dtype_name(pc->dtype), (long long)pc->n, (long long)pc->d, (long long)pc->k, skipped,
               (double)on.pairs_needed / (double)on.pairs,
               same_cpu < 0 ? "" : same_cpu ? "; GPU == CPU" : "; GPU != CPU (CPU generic level)");
        free(A), free(B), free(w), free(X), free(Xd);
    }
    if (outer_copy) setenv("FLASHKM_KPP_NO_PRUNE", outer_copy, 1);
    free(outer_copy);
    fkm_destroy(cpu);
}

/* ---------------------------------------------------------------- GPU == CPU (cuda runs only) */

/* The CPU's k-means++ fixes every rounding (f32 distances with one FMA per feature, double
 * sums in fixed chunks); the CUDA version does the same operations in the same order, so the
 * chosen rows must be bitwise those of the CPU. The CPU's generic SIMD level (no FMA) rounds
 * the distances differently: there only the GPU's own reproducibility is asserted. */
typedef struct gpu_case {
    int64_t n, d, k;
    fkm_dtype dtype;
    fkm_metric metric;
    int weighted;
    uint64_t seed;
    int small; /* also run under FLASHKM_TEST_SMALL (the GPU sanitizer runs) */
} gpu_case;

/* Smallest (d2 - d1) / d1 over the points, d1 <= d2 the two smallest squared distances. */
static double min_relative_gap(const float *X, int64_t n, int64_t d, const float *C, int64_t k)
{
    double worst = INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double d1 = INFINITY, d2 = INFINITY;
        for (int64_t c = 0; c < k; c++) {
            double s = 0.0;
            for (int64_t j = 0; j < d; j++) {
                const double t = (double)X[i * d + j] - C[c * d + j];
                s += t * t;
            }
            if (s < d1) d2 = d1, d1 = s;
            else if (s < d2) d2 = s;
        }
        worst = fmin(worst, (d2 - d1) / fmax(d1, 1e-30));
    }
    return worst;
}

static void check_gpu_equals_cpu(fkm_ctx *gpu)
{
    static const gpu_case cases[] = {
        {10000, 13, 37, FKM_F32, FKM_METRIC_L2, 0, 1, 1},      /* d not a multiple of 8, T = 5 */
        {70001, 128, 200, FKM_F16, FKM_METRIC_L2, 1, 2, 0},    /* 18 chunks, the last partial */
        {9000, 33, 64, FKM_BF16, FKM_METRIC_COSINE, 1, 5, 1},  /* normalised rows */
        {6000, 8, 1100, FKM_F32, FKM_METRIC_DOT, 0, 3, 0},     /* T = 9; dot seeds on L2 */
        {3000, 5, 3, FKM_F64, FKM_METRIC_L2, 1, 4, 1},         /* T = 3, f64 rows */
        {5000, 300, 20, FKM_F16, FKM_METRIC_L2, 0, 6, 1},      /* several candidate tiles */
        {4097, 3, 1, FKM_F32, FKM_METRIC_L2, 1, 7, 1},         /* first centre only */
        {20000, 4, 3000, FKM_F32, FKM_METRIC_L2, 1, 8, 0},     /* T = 10 */
        {12345, 17, 150, FKM_F16, FKM_METRIC_COSINE, 0, 9, 0}, /* T = 7 */
    };
    const int small = getenv("FLASHKM_TEST_SMALL") != NULL;
    /* under the sanitizers (racecheck instruments every shared-memory access of every launch,
     * and k-means++ launches a handful of kernels per centre) at most 12 centres and no repeat
     * run: the kernels and their boundaries are the same, only fewer steps */
    const int sanitize = getenv("FLASHKM_TEST_SANITIZE") != NULL;
    fkm_ctx *cpu = NULL;
    CHECK(fkm_create(&cpu, FKM_BACKEND_CPU) == FKM_OK, "CPU context");
    const int fma_cpu = strcmp(fkm_cpu_simd_level(), "generic") != 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const gpu_case *g = &cases[c];
        if (small && !g->small) continue;
        double *Xd = tc_blobs(300 + c, g->n, g->d, 12, 6.0, 1.0);
        void *X = tc_store(Xd, g->n, g->d, g->d, g->dtype);
        float *w = NULL;
        if (g->weighted) {
            tc_rng rng = {g->seed};
            w = malloc((size_t)g->n * sizeof *w);
            for (int64_t i = 0; i < g->n; i++) w[i] = (float)(0.05 + 4.0 * tc_uniform(&rng));
        }
        const int64_t k = sanitize && g->k > 12 ? 12 : g->k;
        fkm_params p = fkm_params_default();
        p.k = k;
        p.seed = g->seed;
        p.metric = g->metric;
        const size_t kd = (size_t)(k * g->d);
        float *A = malloc(kd * sizeof *A), *B = malloc(kd * sizeof *B), *R = malloc(kd * sizeof *R);
        CHECK(fkm_kmeanspp(gpu, &p, X, g->dtype, g->n, g->d, g->d, w, A) == FKM_OK, "gpu: %s", fkm_last_error(gpu));
        if (!sanitize) {
            CHECK(fkm_kmeanspp(gpu, &p, X, g->dtype, g->n, g->d, g->d, w, R) == FKM_OK, "gpu: %s", fkm_last_error(gpu));
            CHECK(memcmp(A, R, kd * sizeof *A) == 0, "case %zu: two GPU runs differ", c);
        }
        CHECK(fkm_kmeanspp(cpu, &p, X, g->dtype, g->n, g->d, g->d, w, B) == FKM_OK, "cpu: %s", fkm_last_error(cpu));
        /* the GPU pass works on groups of chunks (2M points): groups of one chunk here, so that
         * these small problems cross group boundaries, and the result must not change */
        setenv("FLASHKM_KPP_GROUP_CHUNKS", "1", 1);
        CHECK(fkm_kmeanspp(gpu, &p, X, g->dtype, g->n, g->d, g->d, w, R) == FKM_OK, "gpu: %s", fkm_last_error(gpu));
        unsetenv("FLASHKM_KPP_GROUP_CHUNKS");
        CHECK(memcmp(A, R, kd * sizeof *A) == 0, "case %zu: groups of one chunk change the GPU result", c);
        int64_t first_diff = -1;
        for (int64_t q = 0; q < k && first_diff < 0; q++)
            if (memcmp(A + q * g->d, B + q * g->d, (size_t)g->d * sizeof *A) != 0) first_diff = q;
        if (fma_cpu)
            CHECK(first_diff < 0, "case %zu (%s n %lld d %lld k %lld metric %d weights %d): GPU centroid %lld differs "
                  "from the CPU's", c, fkm_dtype_name(g->dtype), (long long)g->n, (long long)g->d, (long long)k,
                  (int)g->metric, g->weighted, (long long)first_diff);
        printf("k-means++ GPU vs CPU (%s, n %lld, d %lld, k %lld, metric %d, weights %d): %s\n",
               fkm_dtype_name(g->dtype), (long long)g->n, (long long)g->d, (long long)k, (int)g->metric, g->weighted,
               first_diff < 0 ? "bitwise equal" : fma_cpu ? "DIFFERENT" : "differ (CPU generic level, no FMA)");
        free(A), free(B), free(R), free(w), free(X), free(Xd);
    }
    /* a fit with the default init: the same labels as the CPU on separated blobs (tie-free),
     * alone and as a batch (problem b seeded seed + b, its own rows and weights) */
    const int64_t Bn = 3, n = 8000, d = 10, k = 16;
    double *Xd = tc_blobs(444, Bn * n, d, 16, 40.0, 0.0);
    float *X = tc_store(Xd, Bn * n, d, d, FKM_F32);
    float *w = malloc((size_t)(Bn * n) * sizeof *w);
    tc_rng rng = {45};
    for (int64_t i = 0; i < Bn * n; i++) w[i] = (float)(0.5 + tc_uniform(&rng));
    fkm_params p = fkm_params_default();
    p.k = k;
    p.seed = 11;
    int32_t *lg = malloc((size_t)(Bn * n) * sizeof *lg), *lc = malloc((size_t)(Bn * n) * sizeof *lc);
    float *Cg = malloc((size_t)(Bn * k * d) * sizeof *Cg), *Cc = malloc((size_t)(Bn * k * d) * sizeof *Cc);
    fkm_result rg, rc, rbg[3], rbc[3];
    CHECK(fkm_fit(gpu, &p, X, FKM_F32, n, d, d, w, Cg, lg, &rg) == FKM_OK, "gpu fit: %s", fkm_last_error(gpu));
    CHECK(fkm_fit(cpu, &p, X, FKM_F32, n, d, d, w, Cc, lc, &rc) == FKM_OK, "cpu fit: %s", fkm_last_error(cpu));
    /* tie-free: every point's second-nearest CPU centroid is clearly farther than its nearest */
    const double gap = min_relative_gap(X, n, d, Cc, k);
    CHECK(gap > 1e-3, "the data is not tie-free (relative gap %.3g): choose other blobs", gap);
    CHECK(memcmp(lg, lc, (size_t)n * sizeof *lg) == 0 && rg.n_iter == rc.n_iter,
          "default-init fit: GPU labels differ from the CPU's (n_iter %d vs %d)", rg.n_iter, rc.n_iter);
    CHECK(fabs(rg.inertia - rc.inertia) <= 1e-6 * rc.inertia, "inertia %.17g vs %.17g", rg.inertia, rc.inertia);
    CHECK(fkm_fit_batch(gpu, &p, X, FKM_F32, Bn, n, d, d, n * d, w, Cg, lg, rbg) == FKM_OK, "gpu batch: %s",
          fkm_last_error(gpu));
    CHECK(fkm_fit_batch(cpu, &p, X, FKM_F32, Bn, n, d, d, n * d, w, Cc, lc, rbc) == FKM_OK, "cpu batch: %s",
          fkm_last_error(cpu));
    CHECK(memcmp(lg, lc, (size_t)(Bn * n) * sizeof *lg) == 0, "default-init batch fit: GPU labels differ from the CPU's");
    printf("default-init fit on the GPU (alone and a batch of 3, weighted): the CPU's labels\n");
    free(Xd), free(X), free(w), free(lg), free(lc), free(Cg), free(Cc);
    fkm_destroy(cpu);
}

/* fkm_predict_batch equals fkm_predict per problem. */
static void check_predict_batch(fkm_ctx *ctx)
{
    const int64_t B = 3, n = 700, d = 6, k = 9;
    double *Xd = tc_blobs(17, B * n, d, 9, 4.0, 0.0);
    float *X = tc_store(Xd, B * n, d, d, FKM_F32);
    float *C = tc_pick_rows(Xd, B * n, d, B * k, 4);
    int32_t *lb = malloc((size_t)(B * n) * sizeof *lb), *l1 = malloc((size_t)n * sizeof *l1);
    double inert[3], i1;
    CHECK(fkm_predict_batch(ctx, FKM_METRIC_L2, X, FKM_F32, B, n, d, d, n * d, C, k, lb, inert) == FKM_OK,
          "predict_batch: %s", fkm_last_error(ctx));
    for (int64_t b = 0; b < B; b++) {
        CHECK(fkm_predict(ctx, FKM_METRIC_L2, X + b * n * d, FKM_F32, n, d, d, C + b * k * d, k, l1, &i1) == FKM_OK,
              "predict");
        CHECK(memcmp(l1, lb + b * n, (size_t)n * sizeof *l1) == 0 && i1 == inert[b],
              "predict_batch problem %lld differs from predict", (long long)b);
    }
    CHECK(fkm_predict_batch(ctx, FKM_METRIC_L2, X, FKM_F32, B, n, d, d, n * d - 1, C, k, lb, NULL) == FKM_E_INVALID,
          "batch_stride < n * ld");
    printf("fkm_predict_batch: equal to fkm_predict per problem\n");
    free(Xd), free(X), free(C), free(lb), free(l1);
}

int main(void)
{
    fkm_ctx *ctx = tc_create();
    /* FLASHKM_TEST_SANITIZE (scripts/gpu-check.sh's compute-sanitizer runs, with
     * FLASHKM_TEST_SMALL): only the GPU == CPU cases, which launch every k-means++ kernel
     * (several candidate tiles, weights, cosine, groups of one chunk); the whole test under
     * racecheck takes longer than the stage allows */
    if (!getenv("FLASHKM_TEST_SANITIZE") || fkm_ctx_backend(ctx) != FKM_BACKEND_CUDA) {
        check_reproducible(ctx);
        check_beats_random(ctx);
        check_weights_repeat(ctx);
        check_n_init(ctx);
        check_init_alone(ctx);
        check_predict_batch(ctx);
        check_prune_bound();
        check_prune(ctx);
    }
    if (fkm_ctx_backend(ctx) == FKM_BACKEND_CUDA) check_gpu_equals_cpu(ctx);
    fkm_destroy(ctx);
    return tc_finish("test_kmeanspp");
}

/* test_api.c — the C API's contract outside the numerics: every bad input returns its status
 * and a message, contexts and defaults behave as documented, random init is reproducible,
 * predict/score/transform agree with fit and with a plain fp64 evaluation, the progress
 * callback can cancel. */
#include "common.h"

#include <math.h>
#include <string.h>

static fkm_ctx *ctx;

/* Expects status `want` and a non-empty message; prints the message for the log. */
static void expect(fkm_status got, fkm_status want, const char *what)
{
    CHECK(got == want, "%s: status %d (%s), want %d (%s); message: %s", what, got, fkm_status_string(got),
          want, fkm_status_string(want), fkm_last_error(ctx));
    if (got != FKM_OK) CHECK(fkm_last_error(ctx)[0] != '\0', "%s: empty error message", what);
    if (got == want && got != FKM_OK) printf("  %-34s -> %-18s %s\n", what, fkm_status_string(got), fkm_last_error(ctx));
}

static void test_statuses_and_defaults(void)
{
    for (int s = FKM_OK; s <= FKM_E_INTERNAL; s++) {
        const char *a = fkm_status_string((fkm_status)s);
        CHECK(a && a[0], "status %d has no string", s);
        for (int t = FKM_OK; t < s; t++) CHECK(strcmp(a, fkm_status_string((fkm_status)t)) != 0, "duplicate string %s", a);
    }
    CHECK(strcmp(fkm_status_string((fkm_status)999), "unknown status") == 0, "unknown status string");
    fkm_params p = fkm_params_default();
    CHECK(p.k == 8 && p.max_iter == 300 && p.tol == 1e-4 && p.init == FKM_INIT_KMEANS_PP && p.seed == 0 && p.n_init == 1 &&
              p.metric == FKM_METRIC_L2 && p.empty == FKM_EMPTY_RELOCATE && p.n_threads == 0 && !p.progress &&
              p.precision == FKM_PRECISION_FAST,
          "documented defaults");
    fkm_destroy(NULL); /* NULL-safe */
    CHECK(fkm_create(NULL, FKM_BACKEND_CPU) == FKM_E_NULL, "create(NULL)");
    fkm_ctx *c = (fkm_ctx *)1;
    CHECK(fkm_create(&c, (fkm_backend)42) == FKM_E_INVALID && c == NULL, "unknown backend");
    if (fkm_cuda_device_count() == 0) {
        fkm_status s = fkm_create(&c, FKM_BACKEND_CUDA);
        CHECK((s == FKM_E_UNSUPPORTED || s == FKM_E_NO_DEVICE) && c == NULL, "cuda without a device: %s",
              fkm_status_string(s));
        CHECK(fkm_create(&c, FKM_BACKEND_AUTO) == FKM_OK && fkm_ctx_backend(c) == FKM_BACKEND_CPU, "auto -> cpu");
    } else {
        CHECK(fkm_create(&c, FKM_BACKEND_AUTO) == FKM_OK && fkm_ctx_backend(c) == FKM_BACKEND_CUDA, "auto -> cuda");
    }
    CHECK(strcmp(fkm_backend_name(fkm_ctx_backend(c)), fkm_cuda_device_count() ? "cuda" : "cpu") == 0,
          "backend name");
    CHECK(fkm_last_error(c)[0] == '\0', "fresh context has no error");
    CHECK(fkm_set_threads(NULL, 1) == FKM_E_NULL, "set_threads(NULL)");
    CHECK(fkm_set_threads(c, -1) == FKM_E_INVALID && fkm_last_error(c)[0], "set_threads(-1)");
    CHECK(fkm_set_threads(c, 3) == FKM_OK, "set_threads(3)");
    fkm_destroy(c);
    CHECK(fkm_last_error(NULL)[0] != '\0', "last_error(NULL) explains itself");
    CHECK(fkm_dtype_size(FKM_BF16) == 2 && fkm_dtype_size((fkm_dtype)9) == 0, "dtype sizes");
    CHECK(strcmp(fkm_version(), "0.1.0") == 0, "version");
    const char *simd = fkm_cpu_simd_level();
    CHECK(!strcmp(simd, "avx512") || !strcmp(simd, "avx2") || !strcmp(simd, "generic"), "simd level %s", simd);
    CHECK(fkm_cpu_max_threads() >= 1 && fkm_cuda_device_count() >= 0, "build facts");
}

static void test_bad_inputs(void)
{
    enum { N = 50, D = 4, K = 3 };
    float X[N * D], C[K * D], w[N];
    int32_t labels[N];
    for (int i = 0; i < N * D; i++) X[i] = (float)((i * 37) % 11) - 5.0f;
    for (int i = 0; i < N; i++) w[i] = 1.0f;
    fkm_params p = fkm_params_default();
    p.k = K;
    p.max_iter = 5;
    fkm_result r;
#define FIT(pp, x, dt, n, d, ld, ww) fkm_fit(ctx, pp, x, dt, n, d, ld, ww, C, labels, &r)
    expect(FIT(&p, X, FKM_F32, N, D, D, NULL), FKM_OK, "valid input");
    CHECK(fkm_fit(NULL, &p, X, FKM_F32, N, D, D, NULL, C, labels, &r) == FKM_E_NULL, "NULL ctx");
    expect(FIT(NULL, X, FKM_F32, N, D, D, NULL), FKM_E_NULL, "NULL params");
    expect(FIT(&p, NULL, FKM_F32, N, D, D, NULL), FKM_E_NULL, "NULL X");
    expect(fkm_fit(ctx, &p, X, FKM_F32, N, D, D, NULL, NULL, labels, &r), FKM_E_NULL, "NULL centroids_out");
    expect(FIT(&p, X, FKM_F32, N, D, D, NULL), FKM_OK, "labels and result may be NULL (setup)");
    expect(fkm_fit(ctx, &p, X, FKM_F32, N, D, D, NULL, C, NULL, NULL), FKM_OK, "labels and result NULL");
    expect(FIT(&p, X, FKM_F32, 0, D, D, NULL), FKM_E_INVALID, "n = 0");
    expect(FIT(&p, X, FKM_F32, N, 0, D, NULL), FKM_E_INVALID, "d = 0");
    expect(FIT(&p, X, FKM_F32, -1, D, D, NULL), FKM_E_INVALID, "n < 0");
    expect(FIT(&p, X, FKM_F32, N, D, D - 1, NULL), FKM_E_INVALID, "ld < d");
    expect(FIT(&p, X, (fkm_dtype)7, N, D, D, NULL), FKM_E_DTYPE, "unknown dtype");
    expect(FIT(&p, X, FKM_F32, INT64_MAX / 2, D, D, NULL), FKM_E_OVERFLOW, "n * ld overflows");
    expect(FIT(&p, X, FKM_F32, 3, INT64_MAX / 2, INT64_MAX / 2, NULL), FKM_E_OVERFLOW, "ld * n overflows");
    fkm_params q = p;
    q.k = 0;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "k = 0");
    q.k = N + 1;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "k > n");
    q = p;
    q.metric = (fkm_metric)9;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "unknown metric");
    q = p;
    q.max_iter = 0;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "max_iter = 0");
    q = p;
    q.tol = -1.0;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "tol < 0");
    q.tol = NAN;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "tol NaN");
    q = p;
    q.n_threads = -2;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "n_threads < 0");
    q = p;
    q.empty = (fkm_empty)5;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "unknown empty policy");
    q = p;
    q.n_init = 0;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "n_init = 0");
    q = p;
    q.precision = FKM_PRECISION_EXACT; /* implemented on the CPU (tests/test_exact.c) */
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_OK, "precision exact");
    q.precision = (fkm_precision)9;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "unknown precision");
    q = p;
    q.init = (fkm_init)5;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "unknown init");
    q.init = FKM_INIT_USER;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_NULL, "user init without centroids");
    float bad_init[K * D] = {0};
    bad_init[5] = INFINITY;
    q.init_centroids = bad_init;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_NONFINITE, "Inf in init centroids");
    bad_init[5] = 0.0f;
    q.n_init = 2;
    expect(FIT(&q, X, FKM_F32, N, D, D, NULL), FKM_E_INVALID, "n_init > 1 with user centroids");

    /* non-finite data and weights */
    float Xbad[N * D];
    memcpy(Xbad, X, sizeof X);
    Xbad[7 * D + 2] = NAN;
    expect(FIT(&p, Xbad, FKM_F32, N, D, D, NULL), FKM_E_NONFINITE, "NaN in X");
    CHECK(strstr(fkm_last_error(ctx), "row 7") != NULL, "message names the row: %s", fkm_last_error(ctx));
    Xbad[7 * D + 2] = -INFINITY;
    expect(FIT(&p, Xbad, FKM_F32, N, D, D, NULL), FKM_E_NONFINITE, "-Inf in X");
    uint16_t h[N * D];
    for (int i = 0; i < N * D; i++) h[i] = 0x3c00; /* 1.0 */
    h[9] = 0x7c00;                                  /* +inf in f16 */
    expect(FIT(&p, h, FKM_F16, N, D, D, NULL), FKM_E_NONFINITE, "Inf in f16 X");
    h[9] = 0x7fc0; /* NaN in bf16 */
    expect(FIT(&p, h, FKM_BF16, N, D, D, NULL), FKM_E_NONFINITE, "NaN in bf16 X");
    /* padding beyond d (inside ld) is never read */
    float Xpad[N * (D + 1)];
    for (int i = 0; i < N; i++) {
        memcpy(Xpad + i * (D + 1), X + i * D, D * sizeof(float));
        Xpad[i * (D + 1) + D] = NAN;
    }
    expect(FIT(&p, Xpad, FKM_F32, N, D, D + 1, NULL), FKM_OK, "NaN only in the ld padding");
    w[3] = NAN;
    expect(FIT(&p, X, FKM_F32, N, D, D, w), FKM_E_NONFINITE, "NaN weight");
    w[3] = INFINITY;
    expect(FIT(&p, X, FKM_F32, N, D, D, w), FKM_E_NONFINITE, "Inf weight");
    w[3] = -1.0f;
    expect(FIT(&p, X, FKM_F32, N, D, D, w), FKM_E_INVALID, "negative weight");
    for (int i = 0; i < N; i++) w[i] = 0.0f;
    expect(FIT(&p, X, FKM_F32, N, D, D, w), FKM_E_INVALID, "all-zero weights");

    /* the other operations validate the same way */
    expect(fkm_predict(ctx, FKM_METRIC_L2, X, FKM_F32, N, D, D, NULL, K, labels, NULL), FKM_E_NULL, "predict NULL centroids");
    expect(fkm_predict(ctx, FKM_METRIC_L2, X, FKM_F32, N, D, D, C, 0, labels, NULL), FKM_E_INVALID, "predict k = 0");
    expect(fkm_predict(ctx, FKM_METRIC_L2, X, FKM_F32, N, D, D, C, K, NULL, NULL), FKM_E_NULL, "predict NULL labels");
    expect(fkm_predict(ctx, FKM_METRIC_L2, Xbad, FKM_F32, N, D, D, C, K, labels, NULL), FKM_E_NONFINITE, "predict Inf X");
    expect(fkm_predict(ctx, (fkm_metric)4, X, FKM_F32, N, D, D, C, K, labels, NULL), FKM_E_INVALID, "predict bad metric");
    expect(fkm_predict_precision(ctx, FKM_METRIC_L2, (fkm_precision)7, X, FKM_F32, N, D, D, C, K, labels, NULL),
           FKM_E_INVALID, "predict bad precision");
    expect(fkm_exact_stats(NULL, NULL, NULL), FKM_E_NULL, "exact stats NULL context");
    expect(fkm_exact_stats_stages(NULL, NULL, NULL, NULL), FKM_E_NULL, "exact stage stats NULL context");
    double inertia;
    expect(fkm_score(ctx, FKM_METRIC_L2, X, FKM_F32, N, D, D, NULL, C, K, NULL), FKM_E_NULL, "score NULL out");
    expect(fkm_score(ctx, FKM_METRIC_L2, X, (fkm_dtype)8, N, D, D, NULL, C, K, &inertia), FKM_E_DTYPE, "score bad dtype");
    float dist[N * K];
    expect(fkm_transform(ctx, FKM_METRIC_L2, X, FKM_F32, N, D, D, C, K, NULL), FKM_E_NULL, "transform NULL out");
    expect(fkm_transform(ctx, FKM_METRIC_L2, X, FKM_F32, INT64_MAX / 4, D, D, C, 8, dist), FKM_E_OVERFLOW,
           "transform n * k overflows");
    /* a success clears the previous message */
    expect(fkm_predict(ctx, FKM_METRIC_L2, X, FKM_F32, N, D, D, C, K, labels, NULL), FKM_OK, "predict ok");
    CHECK(fkm_last_error(ctx)[0] == '\0', "message cleared on success");
#undef FIT
}

static int count_calls(const fkm_iter_info *info, void *user)
{
    int *calls = user;
    ++*calls;
    return info->iter >= 2; /* stop after the second iteration */
}

static void test_random_init_and_ops(void)
{
    const int64_t n = 600, d = 7, k = 9;
    double *Xd = tc_blobs(5, n, d, 4, 5.0, 0.0);
    float *X = tc_store(Xd, n, d, d, FKM_F32);
    float *C1 = malloc((size_t)(k * d) * sizeof *C1), *C2 = malloc((size_t)(k * d) * sizeof *C2);
    int32_t *l1 = malloc((size_t)n * sizeof *l1), *l2 = malloc((size_t)n * sizeof *l2);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.seed = 1234;
    fkm_result r1, r2;
    p.max_iter = 20;
    CHECK(fkm_fit(ctx, &p, X, FKM_F32, n, d, d, NULL, C1, l1, &r1) == FKM_OK, "fit 1: %s", fkm_last_error(ctx));
    CHECK(fkm_fit(ctx, &p, X, FKM_F32, n, d, d, NULL, C2, l2, &r2) == FKM_OK, "fit 2");
    CHECK(memcmp(C1, C2, (size_t)(k * d) * sizeof *C1) == 0 && memcmp(l1, l2, (size_t)n * sizeof *l1) == 0 &&
              r1.inertia == r2.inertia && r1.n_iter == r2.n_iter,
          "same seed, same result");
    p.seed = 99;
    CHECK(fkm_fit(ctx, &p, X, FKM_F32, n, d, d, NULL, C2, l2, &r2) == FKM_OK, "fit 3");
    CHECK(memcmp(C1, C2, (size_t)(k * d) * sizeof *C1) != 0, "another seed, another start");

    /* k = n with random init: every point its own cluster, inertia 0 (init takes n distinct rows) */
    fkm_params pn = fkm_params_default();
    pn.k = 16;
    pn.seed = 3;
    float Cn[16 * 7];
    int32_t ln[16];
    fkm_result rn;
    CHECK(fkm_fit(ctx, &pn, X, FKM_F32, 16, d, d, NULL, Cn, ln, &rn) == FKM_OK, "k = n random");
    CHECK(rn.inertia == 0.0, "k = n gives zero inertia (distinct rows chosen): %g", rn.inertia);
    int seen[16] = {0};
    for (int i = 0; i < 16; i++) seen[ln[i]]++;
    for (int i = 0; i < 16; i++) CHECK(seen[i] == 1, "k = n: cluster %d has %d points", i, seen[i]);

    /* predict on the training data gives fit's labels; score gives fit's inertia */
    int32_t *lp = malloc((size_t)n * sizeof *lp);
    double inertia_p, inertia_s;
    CHECK(fkm_predict(ctx, FKM_METRIC_L2, X, FKM_F32, n, d, d, C1, k, lp, &inertia_p) == FKM_OK, "predict");
    CHECK(memcmp(lp, l1, (size_t)n * sizeof *lp) == 0, "predict == fit labels");
    CHECK(fkm_score(ctx, FKM_METRIC_L2, X, FKM_F32, n, d, d, NULL, C1, k, &inertia_s) == FKM_OK, "score");
    CHECK(fabs(inertia_s - r1.inertia) <= 1e-12 * r1.inertia && inertia_p == inertia_s, "score == fit inertia");

    /* transform against a plain fp64 evaluation; its argmin equals predict */
    float *dist = malloc((size_t)(n * k) * sizeof *dist);
    CHECK(fkm_transform(ctx, FKM_METRIC_L2, X, FKM_F32, n, d, d, C1, k, dist) == FKM_OK, "transform");
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        int64_t arg = 0;
        for (int64_t c = 0; c < k; c++) {
            double e = 0.0;
            for (int64_t j = 0; j < d; j++) e += ((double)X[i * d + j] - C1[c * d + j]) * ((double)X[i * d + j] - C1[c * d + j]);
            worst = fmax(worst, fabs(dist[i * k + c] - e) / (e + 1.0));
            if (dist[i * k + c] < dist[i * k + arg]) arg = c;
        }
        CHECK(arg == lp[i], "transform argmin == predict at %lld", (long long)i);
    }
    CHECK(worst < 1e-6, "transform relative error %.3g", worst);
    /* dot and cosine transforms */
    CHECK(fkm_transform(ctx, FKM_METRIC_DOT, X, FKM_F32, 1, d, d, C1, 1, dist) == FKM_OK, "transform dot");
    double dot = 0.0;
    for (int64_t j = 0; j < d; j++) dot += (double)X[j] * C1[j];
    CHECK(fabs(dist[0] - dot) <= 1e-5 * fabs(dot) + 1e-6, "dot transform %g vs %g", dist[0], dot);
    CHECK(fkm_transform(ctx, FKM_METRIC_COSINE, X, FKM_F32, 1, d, d, X, 1, dist) == FKM_OK, "transform cosine");
    CHECK(fabs(dist[0]) < 1e-6, "cosine distance of a row to itself %g", dist[0]);

    /* the progress callback sees every iteration and can cancel */
    int calls = 0;
    p.progress = count_calls;
    p.progress_user = &calls;
    p.tol = 0.0;
    expect(fkm_fit(ctx, &p, X, FKM_F32, n, d, d, NULL, C2, l2, &r2), FKM_E_CANCELLED, "cancel from callback");
    CHECK(calls == 2, "callback called %d times before cancelling", calls);

    free(Xd), free(X), free(C1), free(C2), free(l1), free(l2), free(lp), free(dist);
}

int main(void)
{
    CHECK(fkm_create(&ctx, FKM_BACKEND_CPU) == FKM_OK, "create");
    test_statuses_and_defaults();
    test_bad_inputs();
    test_random_init_and_ops();
    fkm_destroy(ctx);
    return tc_finish("test_api");
}

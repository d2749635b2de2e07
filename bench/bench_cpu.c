/*
 * bench_cpu — times flashkm's CPU Lloyd iterations.
 *
 *   bench_cpu --data X.npy --init C.npy --iters I --threads T
 *             [--reps R] [--fit1-reps R1] [--warmup W]
 *             [--labels OUT.npy] [--centroids OUT.npy] [--labels1 OUT.npy]
 *             [--precision fast|f32|exact]
 *   bench_cpu --n N --k K --d D [--seed S] --iters I --threads T ...
 *
 * The first form loads X (N x D) and the initial centroids (K x D, f32) with
 * fkm_matrix_load; the second generates standard-normal f32 data and takes K distinct rows
 * (chosen with the seed) as the initial centroids.
 *
 * Every fit runs fkm_fit with init = FKM_INIT_USER, tol = 0, max_iter = I,
 * empty = FKM_EMPTY_RELOCATE (what scikit-learn does) and n_threads = T, with a progress
 * callback that records each iteration's wall / assignment / update seconds.
 *
 * Timed: W untimed warm-up fits with max_iter = 1 (default 1), then R fits with max_iter = I
 * (default 1), then R1 fits with max_iter = 1 (default 0; for the "(T(I) - T(1)) / (I - 1)"
 * per-iteration estimate that bench/cpu_vs_sklearn.py also applies to scikit-learn).
 *
 * Prints one JSON line on stdout. Per-iteration medians are taken over all timed fits;
 * when a fit ran >= 3 iterations its iteration 1 is left out as warm-up
 * ("warmup_iter_excluded": true). Labels / centroids written are those of the last
 * max_iter = I fit; --labels1 writes the labels of the last max_iter = 1 fit (needs
 * --fit1-reps >= 1).
 */
#define _POSIX_C_SOURCE 199309L

#include <flashkm.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ helpers */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). NAN for n == 0. */
static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double min_of(const double *v, size_t n)
{
    double m = NAN;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i] < m)
            m = v[i];
    return m;
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo) {
        fprintf(stderr, "bench_cpu: %s: expected an integer >= %" PRId64 ", got '%s'\n",
                opt, lo, s);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* JSON number: null for NaN / Inf. */
static void json_num(const char *key, double v, int last)
{
    if (isfinite(v))
        printf("\"%s\":%.9g%s", key, v, last ? "" : ",");
    else
        printf("\"%s\":null%s", key, last ? "" : ",");
}

static void json_str(const char *key, const char *s)
{
    printf("\"%s\":\"", key);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    printf("\",");
}

/* ------------------------------------------------------------------ data generation */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) /* in (0, 1] */
{
    return ((double)(splitmix64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Standard-normal n x d f32 data; init = K distinct rows chosen with the seed. */
static int generate(int64_t n, int64_t k, int64_t d, uint64_t seed, float **x_out,
                    float **c_out)
{
    const double two_pi = 6.283185307179586;
    uint64_t st = seed ^ 0x5eed5eed12345678ULL;
    float *x = malloc((size_t)n * (size_t)d * sizeof *x);
    float *c = malloc((size_t)k * (size_t)d * sizeof *c);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!x || !c || !perm) {
        free(x);
        free(c);
        free(perm);
        return -1;
    }
    for (int64_t i = 0; i + 1 < n * d; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(&st))), t = two_pi * uniform01(&st);
        x[i] = (float)(r * cos(t));
        x[i + 1] = (float)(r * sin(t));
    }
    if ((n * d) % 2)
        x[n * d - 1] = (float)(sqrt(-2.0 * log(uniform01(&st))) * cos(two_pi * uniform01(&st)));
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = 0; i < k; i++) { /* partial Fisher-Yates */
        int64_t j = i + (int64_t)(splitmix64(&st) % (uint64_t)(n - i));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        memcpy(c + i * d, x + perm[i] * d, (size_t)d * sizeof *c);
    }
    free(perm);
    *x_out = x;
    *c_out = c;
    return 0;
}

/* ------------------------------------------------------------------ progress log */

typedef struct iter_log {
    fkm_iter_info *v;
    size_t len, cap;
    int failed;
} iter_log;

static int on_progress(const fkm_iter_info *info, void *user)
{
    iter_log *log = user;
    if (log->len == log->cap) {
        size_t cap = log->cap ? 2 * log->cap : 64;
        fkm_iter_info *v = realloc(log->v, cap * sizeof *v);
        if (!v) {
            log->failed = 1;
            return 0; /* keep fitting; the report says the log is incomplete */
        }
        log->v = v;
        log->cap = cap;
    }
    log->v[log->len++] = *info;
    return 0;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_cpu (--data X.npy --init C.npy | --n N --k K --d D [--seed S])\n"
            "                 --iters I [--threads T] [--reps R] [--fit1-reps R1]\n"
            "                 [--warmup W] [--labels OUT.npy] [--centroids OUT.npy]\n"
            "                 [--labels1 OUT.npy] [--precision fast|f32|exact]\n"
            "  --iters I      Lloyd iterations per fit (tol = 0), default 10\n"
            "  --threads T    CPU threads (0 = OpenMP default), default 0\n"
            "  --reps R       timed fits with max_iter = I, default 1\n"
            "  --fit1-reps R1 timed fits with max_iter = 1 (for the T(I)-T(1) method), default 0\n"
            "  --warmup W     untimed max_iter = 1 fits first, default 1\n"
            "  --labels OUT.npy, --centroids OUT.npy: results of the last max_iter = I fit\n"
            "  --labels1 OUT.npy: labels of the last max_iter = 1 fit\n"
            "  --precision P  fast (default), f32 or exact (certified labels; the JSON adds\n"
            "                 the fraction of point assignments re-checked exactly)\n"
            "Prints one JSON line.\n");
}

int main(int argc, char **argv)
{
    const char *data_path = NULL, *init_path = NULL, *labels_path = NULL, *cent_path = NULL;
    const char *labels1_path = NULL;
    int64_t gen_n = 0, gen_k = 0, gen_d = 0, seed = 0;
    int64_t iters = 10, threads = 0, reps = 1, fit1_reps = 0, warmup = 1;
    fkm_precision precision = FKM_PRECISION_FAST;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "bench_cpu: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--data"))
            data_path = v;
        else if (!strcmp(a, "--init"))
            init_path = v;
        else if (!strcmp(a, "--labels"))
            labels_path = v;
        else if (!strcmp(a, "--centroids"))
            cent_path = v;
        else if (!strcmp(a, "--labels1"))
            labels1_path = v;
        else if (!strcmp(a, "--n"))
            rc = parse_i64(a, v, 1, &gen_n);
        else if (!strcmp(a, "--k"))
            rc = parse_i64(a, v, 1, &gen_k);
        else if (!strcmp(a, "--d"))
            rc = parse_i64(a, v, 1, &gen_d);
        else if (!strcmp(a, "--seed"))
            rc = parse_i64(a, v, 0, &seed);
        else if (!strcmp(a, "--iters"))
            rc = parse_i64(a, v, 1, &iters);
        else if (!strcmp(a, "--threads"))
            rc = parse_i64(a, v, 0, &threads);
        else if (!strcmp(a, "--reps"))
            rc = parse_i64(a, v, 1, &reps);
        else if (!strcmp(a, "--fit1-reps"))
            rc = parse_i64(a, v, 0, &fit1_reps);
        else if (!strcmp(a, "--warmup"))
            rc = parse_i64(a, v, 0, &warmup);
        else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "fast") || !strcmp(v, "f32") || !strcmp(v, "exact"))
                precision = !strcmp(v, "fast") ? FKM_PRECISION_FAST
                            : !strcmp(v, "f32") ? FKM_PRECISION_F32 : FKM_PRECISION_EXACT;
            else {
                fprintf(stderr, "bench_cpu: --precision: expected fast, f32 or exact, got '%s'\n", v);
                return 2;
            }
        }
        else {
            fprintf(stderr, "bench_cpu: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (labels1_path && fit1_reps < 1) {
        fprintf(stderr, "bench_cpu: --labels1 needs --fit1-reps >= 1\n");
        return 2;
    }
    if (iters > INT32_MAX || threads > INT32_MAX) {
        fprintf(stderr, "bench_cpu: --iters / --threads too large\n");
        return 2;
    }
    int have_files = data_path || init_path;
    int have_gen = gen_n || gen_k || gen_d;
    if (have_files == have_gen || (have_files && !(data_path && init_path)) ||
        (have_gen && !(gen_n && gen_k && gen_d))) {
        fprintf(stderr, "bench_cpu: give either --data and --init, or --n, --k and --d\n");
        usage(stderr);
        return 2;
    }

    fkm_ctx *ctx = NULL;
    fkm_status st = fkm_create(&ctx, FKM_BACKEND_CPU);
    if (st != FKM_OK) {
        fprintf(stderr, "bench_cpu: fkm_create: %s\n", fkm_status_string(st));
        return 1;
    }

    int ret = 1;
    fkm_matrix xm = {0}, cm = {0};
    float *gen_x = NULL, *gen_c = NULL, *centroids = NULL;
    int32_t *labels = NULL, *labels1 = NULL;
    double *fit_s = NULL, *fit1_s = NULL, *it_s = NULL, *as_s = NULL, *up_s = NULL;
    iter_log log = {0};
    const void *X;
    const float *C0;
    fkm_dtype dtype;
    int64_t n, d, k;

    if (have_files) {
        if ((st = fkm_matrix_load(ctx, data_path, &xm)) != FKM_OK) {
            fprintf(stderr, "bench_cpu: %s: %s\n", data_path, fkm_last_error(ctx));
            goto done;
        }
        if ((st = fkm_matrix_load(ctx, init_path, &cm)) != FKM_OK) {
            fprintf(stderr, "bench_cpu: %s: %s\n", init_path, fkm_last_error(ctx));
            goto done;
        }
        if (cm.dtype != FKM_F32 || cm.cols != xm.cols) {
            fprintf(stderr, "bench_cpu: %s must be f32 with %" PRId64 " columns (is %s, %" PRId64
                    " columns)\n", init_path, xm.cols, fkm_dtype_name(cm.dtype), cm.cols);
            goto done;
        }
        X = xm.data;
        dtype = xm.dtype;
        n = xm.rows;
        d = xm.cols;
        k = cm.rows;
        C0 = cm.data;
    } else {
        if (gen_k > gen_n) {
            fprintf(stderr, "bench_cpu: --k must be <= --n\n");
            goto done;
        }
        if (generate(gen_n, gen_k, gen_d, (uint64_t)seed, &gen_x, &gen_c)) {
            fprintf(stderr, "bench_cpu: out of memory generating data\n");
            goto done;
        }
        X = gen_x;
        dtype = FKM_F32;
        n = gen_n;
        d = gen_d;
        k = gen_k;
        C0 = gen_c;
    }

    centroids = malloc((size_t)k * (size_t)d * sizeof *centroids);
    labels = malloc((size_t)n * sizeof *labels);
    labels1 = labels1_path ? malloc((size_t)n * sizeof *labels1) : NULL;
    fit_s = malloc((size_t)reps * sizeof *fit_s);
    fit1_s = malloc((size_t)(fit1_reps ? fit1_reps : 1) * sizeof *fit1_s);
    size_t max_samples = (size_t)reps * (size_t)iters;
    it_s = malloc(max_samples * sizeof *it_s);
    as_s = malloc(max_samples * sizeof *as_s);
    up_s = malloc(max_samples * sizeof *up_s);
    if (!centroids || !labels || (labels1_path && !labels1) || !fit_s || !fit1_s || !it_s ||
        !as_s || !up_s) {
        fprintf(stderr, "bench_cpu: out of memory\n");
        goto done;
    }

    fkm_params p = fkm_params_default();
    p.k = k;
    p.tol = 0.0;
    p.init = FKM_INIT_USER;
    p.init_centroids = C0;
    p.metric = FKM_METRIC_L2;
    p.empty = FKM_EMPTY_RELOCATE;
    p.n_threads = (int32_t)threads;
    p.precision = precision;
    p.progress = on_progress;
    p.progress_user = &log;

    fkm_result res;
    memset(&res, 0, sizeof res);

    /* warm-up: first touch of the library's buffers, OpenMP thread start-up */
    p.max_iter = 1;
    for (int64_t r = 0; r < warmup; r++) {
        log.len = 0;
        if ((st = fkm_fit(ctx, &p, X, dtype, n, d, d, NULL, centroids, labels, &res)) != FKM_OK) {
            fprintf(stderr, "bench_cpu: fkm_fit (warm-up): %s\n", fkm_last_error(ctx));
            goto done;
        }
    }

    size_t ns = 0;
    int warm_excluded = iters >= 3;
    int32_t n_iter = 0, converged = 0;
    int64_t n_changed_last = -1, n_changed_min = -1, n_empty_total = 0;
    int64_t exact_points = 0, exact_rechecked = 0;
    double inertia = NAN;
    p.max_iter = (int32_t)iters;
    for (int64_t r = 0; r < reps; r++) {
        log.len = 0;
        double t0 = now_seconds();
        st = fkm_fit(ctx, &p, X, dtype, n, d, d, NULL, centroids, labels, &res);
        fit_s[r] = now_seconds() - t0;
        if (st != FKM_OK) {
            fprintf(stderr, "bench_cpu: fkm_fit: %s\n", fkm_last_error(ctx));
            goto done;
        }
        int64_t ep = 0, er = 0;
        fkm_exact_stats(ctx, &ep, &er);
        exact_points += ep;
        exact_rechecked += er;
        n_iter = res.n_iter;
        converged = res.converged;
        inertia = res.inertia;
        n_empty_total = 0;
        n_changed_min = -1;
        for (size_t j = 0; j < log.len; j++) {
            const fkm_iter_info *it = &log.v[j];
            n_empty_total += it->n_empty;
            if (n_changed_min < 0 || it->n_changed < n_changed_min)
                n_changed_min = it->n_changed;
            if (warm_excluded && it->iter == 1)
                continue;
            if (ns < max_samples) {
                it_s[ns] = it->seconds;
                as_s[ns] = it->assign_seconds;
                up_s[ns] = it->update_seconds;
                ns++;
            }
        }
        n_changed_last = log.len ? log.v[log.len - 1].n_changed : -1;
    }

    p.max_iter = 1;
    for (int64_t r = 0; r < fit1_reps; r++) {
        log.len = 0;
        float *scratch_c = malloc((size_t)k * (size_t)d * sizeof *scratch_c);
        if (!scratch_c) {
            fprintf(stderr, "bench_cpu: out of memory\n");
            goto done;
        }
        double t0 = now_seconds();
        st = fkm_fit(ctx, &p, X, dtype, n, d, d, NULL, scratch_c, labels1, NULL);
        fit1_s[r] = now_seconds() - t0;
        free(scratch_c);
        if (st != FKM_OK) {
            fprintf(stderr, "bench_cpu: fkm_fit (1 iter): %s\n", fkm_last_error(ctx));
            goto done;
        }
    }

    if (labels_path && fkm_npy_save_labels(ctx, labels_path, labels, n) != FKM_OK) {
        fprintf(stderr, "bench_cpu: %s: %s\n", labels_path, fkm_last_error(ctx));
        goto done;
    }
    if (labels1_path && fkm_npy_save_labels(ctx, labels1_path, labels1, n) != FKM_OK) {
        fprintf(stderr, "bench_cpu: %s: %s\n", labels1_path, fkm_last_error(ctx));
        goto done;
    }
    if (cent_path && fkm_npy_save_matrix(ctx, cent_path, centroids, FKM_F32, k, d) != FKM_OK) {
        fprintf(stderr, "bench_cpu: %s: %s\n", cent_path, fkm_last_error(ctx));
        goto done;
    }

    double fit_min = min_of(fit_s, (size_t)reps);
    double fit_med = median(fit_s, (size_t)reps);
    double fit1_med = fit1_reps ? median(fit1_s, (size_t)fit1_reps) : NAN;
    double it_med = median(it_s, ns), as_med = median(as_s, ns), up_med = median(up_s, ns);
    double flops = 2.0 * (double)n * (double)k * (double)d;

    printf("{");
    json_str("tool", "bench_cpu");
    json_str("flashkm_version", fkm_version());
    json_str("simd", fkm_cpu_simd_level());
    json_str("dtype", fkm_dtype_name(dtype));
    json_str("precision", precision == FKM_PRECISION_FAST ? "fast"
                          : precision == FKM_PRECISION_F32 ? "f32" : "exact");
    if (precision == FKM_PRECISION_EXACT)
        json_num("exact_recheck_fraction",
                 exact_points ? (double)exact_rechecked / (double)exact_points : NAN, 0);
    printf("\"n\":%" PRId64 ",\"d\":%" PRId64 ",\"k\":%" PRId64 ",", n, d, k);
    printf("\"threads\":%d,", threads ? (int)threads : fkm_cpu_max_threads());
    printf("\"iters\":%" PRId64 ",\"n_iter\":%d,\"converged\":%d,", iters, (int)n_iter,
           (int)converged);
    printf("\"reps\":%" PRId64 ",\"fit1_reps\":%" PRId64 ",\"warmup_fits\":%" PRId64 ",", reps,
           fit1_reps, warmup);
    printf("\"warmup_iter_excluded\":%s,\"iter_samples\":%zu,", warm_excluded ? "true" : "false",
           ns);
    json_num("ms_per_iter", 1e3 * it_med, 0);
    json_num("assign_ms", 1e3 * as_med, 0);
    json_num("update_ms", 1e3 * up_med, 0);
    json_num("assign_gflops", flops / as_med * 1e-9, 0);
    json_num("fit_s_median", fit_med, 0);
    json_num("fit_s_min", fit_min, 0);
    json_num("fit1_s_median", fit1_med, 0);
    json_num("ms_per_iter_diff",
             (iters > 1 && fit1_reps) ? 1e3 * (fit_med - fit1_med) / (double)(iters - 1) : NAN, 0);
    printf("\"n_changed_last\":%" PRId64 ",\"n_changed_min\":%" PRId64
           ",\"n_empty_total\":%" PRId64 ",",
           n_changed_last, n_changed_min, n_empty_total);
    printf("\"log_complete\":%s,", log.failed ? "false" : "true");
    json_num("inertia", inertia, 1);
    printf("}\n");
    fflush(stdout);
    ret = 0;

done:
    free(log.v);
    free(it_s);
    free(as_s);
    free(up_s);
    free(fit_s);
    free(fit1_s);
    free(labels);
    free(labels1);
    free(centroids);
    free(gen_x);
    free(gen_c);
    fkm_matrix_free(&xm);
    fkm_matrix_free(&cm);
    fkm_destroy(ctx);
    return ret;
}

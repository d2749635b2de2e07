/* common.c — see common.h. */
#include "common.h"

#include <math.h>
#include <string.h>

int tc_failures = 0;

fkm_ctx *tc_create(void)
{
    const char *b = getenv("FLASHKM_TEST_BACKEND");
    return tc_create_backend(b && strcmp(b, "cuda") == 0 ? FKM_BACKEND_CUDA : FKM_BACKEND_CPU);
}

fkm_ctx *tc_create_backend(fkm_backend backend)
{
    fkm_ctx *ctx = NULL;
    fkm_status s = fkm_create(&ctx, backend);
    if (backend == FKM_BACKEND_CUDA && (s == FKM_E_NO_DEVICE || s == FKM_E_UNSUPPORTED)) {
        printf("SKIP: no usable CUDA device (%s)\n", fkm_status_string(s));
        exit(TC_SKIP);
    }
    if (s != FKM_OK) {
        fprintf(stderr, "fkm_create(%s) failed: %s\n", fkm_backend_name(backend), fkm_status_string(s));
        exit(1);
    }
    return ctx;
}

fkm_precision tc_precision(void)
{
    const char *p = getenv("FLASHKM_TEST_PRECISION");
    return p && strcmp(p, "f32") == 0 ? FKM_PRECISION_F32 : FKM_PRECISION_FAST;
}

int tc_finish(const char *name)
{
    if (tc_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, tc_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

static uint64_t next_u64(tc_rng *r)
{
    /* xorshift64* — a different family from the library's splitmix on purpose */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

double tc_uniform(tc_rng *r) { return (double)(next_u64(r) >> 11) * 0x1p-53; }

double tc_normal(tc_rng *r)
{
    double u = tc_uniform(r), v = tc_uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

double *tc_blobs(uint64_t seed, int64_t n, int64_t d, int blobs, double spread, double offset)
{
    tc_rng r = {seed * 2654435761u + 88172645463325252ull};
    double *centres = malloc((size_t)(blobs * d) * sizeof *centres);
    double *X = malloc((size_t)(n * d) * sizeof *X);
    for (int64_t i = 0; i < blobs * d; i++) centres[i] = spread * (2.0 * tc_uniform(&r) - 1.0);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = (int64_t)(tc_uniform(&r) * blobs);
        for (int64_t j = 0; j < d; j++) X[i * d + j] = centres[b * d + j] + tc_normal(&r) + offset;
    }
    free(centres);
    return X;
}

static uint16_t to_half(float f)
{
    /* round-to-nearest-even via the exact double path; inputs in tests are modest */
    if (f == 0.0f) return signbit(f) ? 0x8000u : 0;
    uint16_t sign = signbit(f) ? 0x8000u : 0;
    double a = fabs((double)f);
    int e = 0;
    frexp(a, &e);                    /* a = m * 2^e, m in [0.5, 1) */
    int exp = e - 1;                 /* a in [2^exp, 2^(exp+1)) */
    if (exp < -14) exp = -14;        /* subnormal range shares the smallest exponent */
    double q = ldexp(a, 10 - exp);   /* 10 fraction bits */
    double rq = nearbyint(q);        /* default rounding: ties to even */
    if (rq >= 2048.0) { rq /= 2; exp++; }
    if (exp > 15) return sign | 0x7c00u;
    uint16_t m = (uint16_t)rq;
    if (m < 1024) return sign | m;   /* subnormal */
    return sign | (uint16_t)((exp + 15) << 10) | (uint16_t)(m - 1024);
}

static double from_half(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000u) ? -v : v;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t lsb = (u >> 16) & 1u;
    return (uint16_t)((u + 0x7fffu + lsb) >> 16);
}

static double from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void *tc_store(double *X, int64_t n, int64_t d, int64_t ld, fkm_dtype dtype)
{
    size_t es = dtype == FKM_F64 ? 8 : dtype == FKM_F32 ? 4 : 2;
    unsigned char *buf = malloc((size_t)(n * ld) * es);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < ld; j++) {
            const int pad = j >= d;
            const double v = pad ? NAN : X[i * d + j];
            const int64_t at = i * ld + j;
            double back = v;
            switch (dtype) {
            case FKM_F64: ((double *)buf)[at] = v; break;
            case FKM_F32: ((float *)buf)[at] = (float)v; back = (float)v; break;
            case FKM_F16: {
                uint16_t h = pad ? 0x7e00u : to_half((float)v);
                ((uint16_t *)buf)[at] = h;
                back = from_half(h);
                break;
            }
            case FKM_BF16: {
                uint16_t h = pad ? 0x7fc0u : to_bf16((float)v);
                ((uint16_t *)buf)[at] = h;
                back = from_bf16(h);
                break;
            }
            }
            if (!pad) X[i * d + j] = back;
        }
    return buf;
}

float *tc_pick_rows(const double *X, int64_t n, int64_t d, int64_t k, uint64_t seed)
{
    tc_rng r = {seed * 0x9e3779b97f4a7c15ull + 1};
    char *used = calloc((size_t)n, 1);
    float *C = malloc((size_t)(k * d) * sizeof *C);
    for (int64_t c = 0; c < k; c++) {
        int64_t i;
        do i = (int64_t)(tc_uniform(&r) * (double)n);
        while (used[i]);
        used[i] = 1;
        for (int64_t j = 0; j < d; j++) C[c * d + j] = (float)X[i * d + j];
    }
    free(used);
    return C;
}

/* ------------------------------------------------------------ reference Lloyd */

/* Row i as the metric sees it: for cosine, normalised in double and rounded to f32 (the
 * stored value of a normalised row, as flashkm.h defines it). */
static void ref_row(const double *X, int64_t i, int64_t d, fkm_metric metric, double *out)
{
    for (int64_t j = 0; j < d; j++) out[j] = X[i * d + j];
    if (metric != FKM_METRIC_COSINE) return;
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += out[j] * out[j];
    if (ss > 0.0)
        for (int64_t j = 0; j < d; j++) out[j] = (float)(out[j] * (1.0 / sqrt(ss)));
}

static double ref_objective(const double *x, const float *c, int64_t d, fkm_metric metric)
{
    double acc = 0.0;
    for (int64_t j = 0; j < d; j++) {
        if (metric == FKM_METRIC_DOT) acc += x[j] * c[j];
        else acc += (x[j] - c[j]) * (x[j] - c[j]);
    }
    return metric == FKM_METRIC_DOT ? -acc : acc;
}

/* Assigns every point; returns the number of changed labels; tracks the smallest gap. */
static int64_t ref_assign(const double *Xm, int64_t n, int64_t d, const float *C, int64_t k,
                          fkm_metric metric, int32_t *labels, double *obj, int first, double *min_gap)
{
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i++) {
        const double *x = Xm + i * d;
        double best = INFINITY, second = INFINITY;
        int32_t arg = 0;
        for (int64_t c = 0; c < k; c++) {
            double o = ref_objective(x, C + c * d, d, metric);
            if (o < best) {
                second = best;
                best = o;
                arg = (int32_t)c;
            } else if (o < second) {
                second = o;
            }
        }
        if (k > 1) {
            double xx = 0.0, cc = 0.0;
            for (int64_t j = 0; j < d; j++) {
                xx += x[j] * x[j];
                cc += (double)C[arg * d + j] * C[arg * d + j];
            }
            double gap = (second - best) / (xx + cc + 1e-30);
            if (gap < *min_gap) *min_gap = gap;
        }
        changed += first || labels[i] != arg;
        labels[i] = arg;
        obj[i] = best;
    }
    return changed;
}

void tc_reference_fit(const double *X, int64_t n, int64_t d, const float *w, int64_t k,
                      fkm_metric metric, fkm_empty empty, const float *init, int32_t max_iter,
                      double tol, tc_ref_result *out)
{
    double *Xm = malloc((size_t)(n * d) * sizeof *Xm);
    for (int64_t i = 0; i < n; i++) ref_row(X, i, d, metric, Xm + i * d);
    float *C = malloc((size_t)(k * d) * sizeof *C);
    memcpy(C, init, (size_t)(k * d) * sizeof *C);
    if (metric == FKM_METRIC_COSINE)
        for (int64_t c = 0; c < k; c++) {
            double ss = 0.0;
            for (int64_t j = 0; j < d; j++) ss += (double)C[c * d + j] * C[c * d + j];
            if (ss > 0.0)
                for (int64_t j = 0; j < d; j++) C[c * d + j] = (float)(C[c * d + j] * (1.0 / sqrt(ss)));
        }
    /* tolerance: tol times the mean per-feature (population) variance of the rows */
    double mean_var = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double m = 0.0, v = 0.0;
        for (int64_t i = 0; i < n; i++) m += Xm[i * d + j];
        m /= (double)n;
        for (int64_t i = 0; i < n; i++) v += (Xm[i * d + j] - m) * (Xm[i * d + j] - m);
        mean_var += v / (double)n;
    }
    mean_var /= (double)d;

    int32_t *labels = calloc((size_t)n, sizeof *labels);
    double *obj = malloc((size_t)n * sizeof *obj);
    double *sums = malloc((size_t)(k * d) * sizeof *sums);
    double *wt = malloc((size_t)k * sizeof *wt);
    double *hist = calloc((size_t)max_iter, sizeof *hist);
    float *Cn = malloc((size_t)(k * d) * sizeof *Cn);
    double min_gap = INFINITY;
    int converged = 0, need_final = 1;
    int32_t it;
    double inertia = 0.0;
    for (it = 1; it <= max_iter; it++) {
        int64_t changed = ref_assign(Xm, n, d, C, k, metric, labels, obj, it == 1, &min_gap);
        memset(sums, 0, (size_t)(k * d) * sizeof *sums);
        memset(wt, 0, (size_t)k * sizeof *wt);
        inertia = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double wi = w ? w[i] : 1.0;
            wt[labels[i]] += wi;
            inertia += wi * obj[i];
            for (int64_t j = 0; j < d; j++) sums[labels[i] * d + j] += wi * Xm[i * d + j];
        }
        hist[it - 1] = inertia;
        if (empty == FKM_EMPTY_RELOCATE) {
            /* e-th empty cluster -> e-th largest objective (ties: lowest index) */
            char *taken = calloc((size_t)n, 1);
            for (int64_t c = 0; c < k; c++) {
                if (wt[c] > 0.0) continue;
                int64_t far = -1;
                for (int64_t i = 0; i < n; i++)
                    if (!taken[i] && (far < 0 || obj[i] > obj[far])) far = i;
                taken[far] = 1;
                double wi = w ? w[far] : 1.0;
                if (wi <= 0.0) continue;
                for (int64_t j = 0; j < d; j++) {
                    sums[labels[far] * d + j] -= wi * Xm[far * d + j];
                    sums[c * d + j] = wi * Xm[far * d + j];
                }
                wt[labels[far]] -= wi;
                wt[c] = wi;
            }
            free(taken);
        }
        double max_shift = 0.0;
        for (int64_t c = 0; c < k; c++) {
            double scale = wt[c] > 0.0 ? 1.0 / wt[c] : 0.0;
            if (scale > 0.0 && metric == FKM_METRIC_COSINE) {
                double ss = 0.0;
                for (int64_t j = 0; j < d; j++) ss += sums[c * d + j] * sums[c * d + j];
                scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
            }
            double sh = 0.0;
            for (int64_t j = 0; j < d; j++) {
                Cn[c * d + j] = scale > 0.0 ? (float)(sums[c * d + j] * scale) : C[c * d + j];
                sh += ((double)Cn[c * d + j] - C[c * d + j]) * ((double)Cn[c * d + j] - C[c * d + j]);
            }
            if (sh > max_shift) max_shift = sh;
        }
        memcpy(C, Cn, (size_t)(k * d) * sizeof *C);
        need_final = max_shift != 0.0;
        if ((changed == 0 && it > 1) || max_shift <= tol * mean_var) {
            converged = 1;
            break;
        }
    }
    if (it > max_iter) it = max_iter;
    if (need_final) {
        ref_assign(Xm, n, d, C, k, metric, labels, obj, 0, &min_gap);
        inertia = 0.0;
        for (int64_t i = 0; i < n; i++) inertia += (w ? w[i] : 1.0) * obj[i];
    }
    out->labels = labels;
    out->centroids = C;
    out->inertia = inertia;
    out->n_iter = it;
    out->converged = converged;
    out->inertia_per_iter = hist;
    out->min_gap = min_gap;
    free(Xm), free(obj), free(sums), free(wt), free(Cn);
}

void tc_ref_free(tc_ref_result *r)
{
    free(r->labels), free(r->centroids), free(r->inertia_per_iter);
}
